// The Backstop dashboard: pages over the daemon's JSON API, refreshed by its
// event stream (polling when the stream is not connected). Preact + htm, no
// build step; uPlot for the latency sparklines.
import { html, render, useState, useEffect, useRef, useCallback } from './vendor/preact-htm.js';
import uPlot from './vendor/uplot.js';
import { api, getToken, setToken, followEvents } from './api.js';

const PAGES = [
  ['environment', 'Environment'],
  ['triggers', 'Triggers'],
  ['runs', 'Runs'],
  ['restore-points', 'Restore points'],
  ['actions', 'Actions'],
];
const RUNS_PER_PAGE = 20;

// Health and trigger states as icon + word: colour is never the only signal.
const HEALTH = {
  pass: ['✔', 'healthy', 'good'],
  fail: ['✖', 'failing', 'bad'],
  pending: ['…', 'no result yet', 'unknown'],
  unknown: ['?', 'unknown', 'unknown'],
  'not probed': ['–', 'not probed', 'unknown'],
};
const TRIGGER = {
  ok: ['✔', 'ok', 'good'],
  pending: ['◔', 'pending', 'warn'],
  firing: ['▲', 'firing', 'bad'],
  resolved: ['✔', 'resolved', 'good'],
};
const RUN = {
  succeeded: ['✔', 'succeeded', 'good'],
  failed: ['✖', 'failed', 'bad'],
  running: ['▶', 'running', 'warn'],
  interrupted: ['!', 'interrupted', 'bad'],
  abandoned: ['–', 'abandoned', 'unknown'],
};

function Badge({ table, value }) {
  const [icon, word, tone] = table[value] || ['?', value || 'unknown', 'unknown'];
  return html`<span class="badge ${tone}" data-state=${value}><span aria-hidden="true">${icon}</span> ${word}</span>`;
}

function route() {
  const parts = (location.hash.replace(/^#\/?/, '') || 'environment').split('/');
  return { page: parts[0], arg: parts.slice(1).join('/') };
}

function ms(n) {
  if (n === undefined || n === null) return '';
  if (n < 1000) return Math.round(n) + ' ms';
  if (n < 60000) return (n / 1000).toFixed(1) + ' s';
  const s = Math.round((n % 60000) / 1000);
  return Math.floor(n / 60000) + ' min' + (s ? ' ' + s + ' s' : '');
}

// A sample value, short: 0.0529475 -> 0.0529, 1234.5 -> 1235.
function num(v) {
  return typeof v === 'number' && !Number.isInteger(v) ? String(Number(v.toPrecision(3))) : String(v);
}

function Sparkline({ points }) {
  const ref = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    if (!ref.current || points.length < 2) return;
    const data = [points.map((p) => p[0] / 1000), points.map((p) => p[1])];
    if (!plot.current) {
      plot.current = new uPlot(
        {
          width: 120, height: 28, legend: { show: false }, cursor: { show: false },
          axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
          // A canvas has no currentColor: the theme's colour, read from CSS.
          series: [{}, { stroke: getComputedStyle(ref.current).color, width: 1, points: { show: false } }],
        },
        data, ref.current);
    } else {
      plot.current.setData(data);
    }
  }, [points]);
  useEffect(() => () => plot.current && plot.current.destroy(), []);
  return html`<span class="spark" ref=${ref} role="img" data-points=${points.length} aria-label="latency over the last hour"></span>`;
}

function TokenBar({ mode, onToken }) {
  const [value, setValue] = useState('');
  const has = !!getToken();
  const save = (e) => {
    e.preventDefault();
    setToken(value.trim());
    setValue('');
    onToken();
  };
  const forget = () => {
    setToken('');
    onToken();
  };
  const modeText = {
    live: 'live: updates pushed by the daemon',
    polling: has ? 'polling every 5 s (the event stream is not connected)' : 'polling every 5 s',
    unauthorized: 'the API token was refused: enter the right one',
  }[mode] || mode;
  return html`<div class="tokenbar">
    <span class="mode" id="mode" data-mode=${mode} role="status">${modeText}</span>
    ${has && mode !== 'unauthorized'
      ? html`<button type="button" onClick=${forget}>Forget the token</button>`
      : html`<form onSubmit=${save}>
          <label for="token">API token</label>
          <input id="token" type="password" autocomplete="off" value=${value}
            onInput=${(e) => setValue(e.target.value)} placeholder="<state_dir>/api-token" />
          <button type="submit">Use token</button>
        </form>`}
  </div>`;
}

// What a component is on: the release of a service, else its driver's summary.
function position(d) {
  if (!d) return '';
  if (d.release) return d.release;
  if (d.error) return 'unknown (' + d.error + ')';
  return (d.state && (d.state.summary || d.state.version)) || '';
}

// The dependency graph from depends_on: a column per depth (dependencies on
// the left), each node's health as an icon and a word as well as a colour.
function DependencyGraph({ comps, described }) {
  const deps = (name) => ((described[name] || {}).depends_on || []);
  const depth = {};
  const depthOf = (name, seen = new Set()) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0;  // the spec has no cycles; never loop here
    seen.add(name);
    const d = deps(name).reduce((m, dep) => Math.max(m, depthOf(dep, seen) + 1), 0);
    depth[name] = d;
    return d;
  };
  comps.forEach((c) => depthOf(c.name));
  const columns = [];
  comps.forEach((c) => (columns[depth[c.name]] = columns[depth[c.name]] || []).push(c));
  const W = 170, H = 44, GX = 60, GY = 14;
  const pos = {};
  columns.forEach((col, x) => col.forEach((c, y) => (pos[c.name] = { x: x * (W + GX), y: y * (H + GY) })));
  const width = columns.length * (W + GX) - GX;
  const height = Math.max(...columns.map((col) => col.length)) * (H + GY) - GY;
  if (!comps.length || !Object.keys(described).length) return '';
  return html`<figure class="graph">
    <svg id="graph" viewBox=${`-2 -2 ${width + 4} ${height + 4}`} width=${width + 4} height=${height + 4}
      role="img" aria-label="dependency graph: each component points at what it depends on">
      ${comps.flatMap((c) => deps(c.name).filter((d) => pos[d]).map((d) => html`<line class="edge"
        x1=${pos[c.name].x} y1=${pos[c.name].y + H / 2} x2=${pos[d].x + W} y2=${pos[d].y + H / 2} />`))}
      ${comps.map((c) => {
        const [icon, word, tone] = HEALTH[c.health] || HEALTH.unknown;
        return html`<g class="node ${tone}" data-node=${c.name} transform=${`translate(${pos[c.name].x},${pos[c.name].y})`}>
          <rect width=${W} height=${H} rx="6" />
          <text x="10" y="18" class="name">${c.name}</text>
          <text x="10" y="36" class="state">${icon} ${word}</text></g>`;
      })}
    </svg>
    <figcaption>Dependencies: a line joins a component (right) to what it depends on (left).</figcaption>
  </figure>`;
}

function Environment({ status, history, described }) {
  const comps = status.components || [];
  return html`<section aria-labelledby="h-env">
    <h2 id="h-env">Environment ${status.environment}</h2>
    <${DependencyGraph} comps=${comps} described=${described} />
    <table class="list" id="components">
      <thead><tr><th>Component</th><th>Kind</th><th>Driver</th><th>Release or position</th>
        <th>Health</th><th>Latency</th><th>Last hour</th><th>Newest restore point</th><th>Depends on</th>
        <th>Detail</th></tr></thead>
      <tbody>${comps.map((c) => html`<tr data-component=${c.name}>
        <th scope="row">${c.name}</th><td>${c.kind}</td><td>${c.driver}</td>
        <td class="release">${position(described[c.name])}</td>
        <td class="health"><${Badge} table=${HEALTH} value=${c.health} /></td>
        <td>${c.latency_ms !== undefined ? ms(c.latency_ms) : ''}</td>
        <td><${Sparkline} points=${history[c.name] || []} /></td>
        <td class="restore-point">${described[c.name] && described[c.name].restore_point
          ? html`<span title=${described[c.name].restore_point.id}>${described[c.name].restore_point.label || described[c.name].restore_point.id}</span>` : ''}</td>
        <td>${((described[c.name] || {}).depends_on || []).join(', ')}</td>
        <td class="detail">${c.detail || c.probe || ''}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

// The same hold for every trigger (the banner says why at length): a short word.
const HELD_SHORT = {
  paused: 'would hold: automatic actions are paused',
  run_active: 'would hold: a rollback is running',
  lock_held: 'would hold: a manual operation holds the lock',
  cap: 'would hold: the hourly cap is reached',
};

function Triggers({ status }) {
  const ts = status.triggers || [];
  return html`<section aria-labelledby="h-trig">
    <h2 id="h-trig">Triggers</h2>
    ${ts.length === 0 ? html`<p>No trigger has been evaluated yet.</p>` : ''}
    <table class="list" id="triggers">
      <thead><tr><th>Trigger</th><th>Component</th><th>Signal</th><th>State</th><th>For</th>
        <th>Last value</th><th>Action</th><th>Reason</th><th>If it fired now</th></tr></thead>
      <tbody>${ts.map((t) => html`<tr data-trigger=${t.trigger} data-component=${t.component}>
        <th scope="row">${t.trigger}</th><td>${t.component}</td><td>${t.signal}</td>
        <td class="state"><${Badge} table=${TRIGGER} value=${t.state} /></td>
        <td class="for">${t.state === 'pending' && t.pending_for_ms
          ? ms(t.for_ms) + ' (fires in ' + ms(Math.max(0, t.pending_for_ms - t.for_ms)) + ')'
          : t.state !== 'ok' ? ms(t.for_ms) : ''}</td>
        <td>${t.last_value !== undefined ? num(t.last_value) : ''}</td>
        <td>${t.action}</td><td>${t.reason}</td>
        <td class="if-fired">${t.if_fired ? html`<span class="scenario">${t.if_fired.scenario}</span>
          ${t.if_fired.scope ? ' (' + t.if_fired.scope.replace(/_/g, ' ') + ')' : ''}${t.if_fired.recovery_max_ms
            ? ', target ' + ms(t.if_fired.recovery_min_ms) + '–' + ms(t.if_fired.recovery_max_ms) : ''}${': '}<span class=${t.if_fired.would_act ? 'good' : 'warn'} data-held-by=${t.if_fired.held_by || ''}
            title=${t.if_fired.now}>${t.if_fired.would_act ? '→ ' : '‖ '}${HELD_SHORT[t.if_fired.held_by] || t.if_fired.now}</span>`
          : ''}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

// One page of runs from the daemon (limit/offset): the list stays small
// however many runs the state database holds.
function RunList({ tick }) {
  const [page, setPage] = useState(0);
  const [runs, setRuns] = useState([]);
  const [more, setMore] = useState(false);
  useEffect(() => {
    api(`/api/v1/runs?limit=${RUNS_PER_PAGE + 1}&offset=${page * RUNS_PER_PAGE}`).then((r) => {
      if (r.status !== 200) return;
      setMore(r.body.runs.length > RUNS_PER_PAGE);
      setRuns(r.body.runs.slice(0, RUNS_PER_PAGE));
    });
  }, [page, tick]);
  const shown = runs;
  return html`<section aria-labelledby="h-runs">
    <h2 id="h-runs">Runs</h2>
    <table class="list" id="runs">
      <thead><tr><th>Run</th><th>Kind</th><th>By</th><th>Status</th><th>Started</th><th>Duration</th></tr></thead>
      <tbody>${shown.map((r) => html`<tr data-run=${r.id}>
        <th scope="row"><a href=${'#/runs/' + r.id}>${r.id}</a></th><td>${r.kind}</td>
        <td>${r.triggered_by}</td><td><${Badge} table=${RUN} value=${r.status} /></td>
        <td>${r.started}</td><td>${r.duration_ms !== undefined ? ms(r.duration_ms) : ''}</td></tr>`)}</tbody>
    </table>
    <nav class="pager" aria-label="pages of runs">
      <button type="button" disabled=${page === 0} onClick=${() => setPage(page - 1)}>Newer</button>
      <span>page ${page + 1}</span>
      <button type="button" disabled=${!more} onClick=${() => setPage(page + 1)}>Older</button>
    </nav>
  </section>`;
}

// A Gantt-like bar per step: where it started and how long it took, on the
// run's own time axis (start_ms/end_ms from the journal's step times).
function StepTimeline({ steps, total }) {
  const span = Math.max(1, total || 0, ...steps.map((s) => s.end_ms || s.start_ms || 0));
  return html`<ol class="timeline" id="steps">${steps.map((s) => {
    const from = s.start_ms ?? null;
    const to = s.end_ms ?? (from === null ? null : span);
    const bar = from === null ? null
      : { marginLeft: (100 * from / span) + '%', width: Math.max(0.5, 100 * (to - from) / span) + '%' };
    return html`<li class="step ${s.status}" data-status=${s.status}>
      <div class="gantt" aria-hidden="true">${bar ? html`<span class="gbar" style=${bar}></span>` : ''}</div>
      <${Badge} table=${RUN} value=${s.status === 'done' ? 'succeeded' : s.status} />
      <strong>${s.action}</strong> ${s.component} — ${s.description}
      <span class="note when">${from === null ? ' (not started)'
        : ` (at +${ms(from)}${s.end_ms !== null && s.end_ms !== undefined ? ', took ' + ms(s.end_ms - from) : ', running'})`}</span>
      ${s.attempts > 1 ? html` (${s.attempts} attempts)` : ''}
      ${s.detail && Object.keys(s.detail).length
        ? html`<details><summary>output</summary><pre>${JSON.stringify(s.detail, null, 2)}</pre></details>` : ''}
    </li>`;
  })}</ol>`;
}

// The data-loss ledger of a run, one row per object, filtered by component
// and by object name.
function LedgerTable({ loss }) {
  const [component, setComponent] = useState('');
  const [object, setObject] = useState('');
  const rows = (loss && loss.objects) || [];
  const components = [...new Set(rows.map((r) => r.component))];
  const shown = rows.filter((r) => (!component || r.component === component) &&
    (!object || r.object.toLowerCase().includes(object.toLowerCase())));
  return html`<section aria-labelledby="h-ledger">
    <h3 id="h-ledger">Data-loss ledger</h3>
    <p id="loss-summary">${loss ? loss.summary : 'not recorded'}</p>
    ${rows.length ? html`<form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <label>Component <select id="ledger-component" value=${component} onChange=${(e) => setComponent(e.target.value)}>
        <option value="">all</option>${components.map((c) => html`<option value=${c}>${c}</option>`)}</select></label>
      <label>Object <input id="ledger-object" type="search" value=${object} onInput=${(e) => setObject(e.target.value)} /></label>
      <span class="note">${shown.length} of ${rows.length}</span>
    </form>
    <table class="list" id="ledger">
      <thead><tr><th>Component</th><th>Object</th><th>Unit</th><th>Inserted</th><th>Deleted</th><th>Changed</th><th>Total</th></tr></thead>
      <tbody>${shown.map((r) => html`<tr data-object=${r.object}><td>${r.component}</td><th scope="row">${r.object}</th>
        <td>${r.unit}</td><td>${r.inserted}</td><td>${r.deleted}</td><td>${r.changed}</td><td>${r.total}</td></tr>`)}</tbody>
    </table>` : ''}
  </section>`;
}

// Measured recovery time against the decision matrix's target, as a bar and in words.
function Recovery({ recovery }) {
  if (!recovery) return '';
  const max = recovery.target_max_ms || 0;
  const measured = recovery.measured_ms;
  const tone = recovery.met === true ? 'good' : recovery.met === false ? 'bad' : 'unknown';
  const scale = Math.max(max, measured || 0, 1);
  return html`<section aria-labelledby="h-recovery">
    <h3 id="h-recovery">Recovery time</h3>
    <p id="recovery" class=${tone} data-met=${String(recovery.met)}>
      <span aria-hidden="true">${recovery.met === true ? '✔ ' : recovery.met === false ? '✖ ' : '– '}</span>${recovery.verdict}</p>
    ${typeof measured === 'number' ? html`<div class="rto" aria-hidden="true">
      <span class="rto-bar ${tone}" style=${{ width: (100 * measured / scale) + '%' }}></span>
      ${max ? html`<span class="rto-target" style=${{ left: (100 * max / scale) + '%' }}></span>` : ''}
    </div>
    <p class="note">${ms(measured)} from ${recovery.measured_from} to ${recovery.measured_to}${max ? '; target ' + ms(max) : ''}</p>` : ''}
  </section>`;
}

function Checklist({ checklist }) {
  if (!checklist) return '';
  const TONE = { ok: 'good', failed: 'bad', acknowledged: 'good', 'awaiting acknowledgement': 'warn' };
  return html`<section aria-labelledby="h-checklist">
    <h3 id="h-checklist">Recovery checklist</h3>
    <table class="list" id="checklist">
      <thead><tr><th>#</th><th>Item</th><th>Status</th><th>Evidence</th></tr></thead>
      <tbody>${checklist.items.map((i) => html`<tr data-item=${i.id}><td>${i.number}</td><th scope="row">${i.title}</th>
        <td><span class="badge ${TONE[i.status] || 'unknown'}" data-state=${i.status}>${i.status}</span></td>
        <td class="detail">${(i.evidence || []).join('; ')}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

function RunPage({ id, tick }) {
  const [run, setRun] = useState(null);
  const [extra, setExtra] = useState(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api('/api/v1/runs/' + encodeURIComponent(id)).then((r) => {
      if (r.status === 200) setRun(r.body);
      else setError(r.body.error || 'HTTP ' + r.status);
    });
    api('/api/v1/runs/' + encodeURIComponent(id) + '/report').then((r) => {
      setExtra(r.status === 200 ? r.body : { why: r.body.error || 'HTTP ' + r.status });
    });
  }, [id, tick]);
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!run) return html`<p>Loading run ${id}…</p>`;
  const steps = run.steps || [];
  const report = extra && extra.report;
  return html`<section aria-labelledby="h-run">
    <h2 id="h-run">Run ${run.id}</h2>
    <dl class="facts">
      <dt>Status</dt><dd><${Badge} table=${RUN} value=${run.status} /></dd>
      <dt>Triggered by</dt><dd>${run.triggered_by}</dd>
      ${run.trigger_detail && run.trigger_detail.actor
        ? html`<dt>Requested by</dt><dd id="run-actor">${run.trigger_detail.actor}</dd>` : ''}
      <dt>Command</dt><dd><code>${run.command}</code></dd>
      <dt>Started</dt><dd>${run.started}</dd>
      <dt>Duration</dt><dd>${run.duration_ms !== undefined ? ms(run.duration_ms) : 'running'}</dd>
      <dt>Restore point</dt><dd>${run.restore_point || '—'}</dd>
      ${run.error ? html`<dt>Error</dt><dd class="error">${run.error}</dd>` : ''}
    </dl>
    <h3>Steps</h3>
    <${StepTimeline} steps=${steps} total=${run.duration_ms} />
    ${report ? html`<${Recovery} recovery=${report.recovery} />
      <${LedgerTable} loss=${report.data_loss} />
      <${Checklist} checklist=${extra.checklist} />
      <details id="report"><summary>Incident report (JSON)</summary><pre>${JSON.stringify(report, null, 2)}</pre></details>`
      : html`<p class="note" id="no-report">${extra ? extra.why : 'Loading the report…'}</p>`}
    ${extra && extra.report && !extra.checklist && extra.why ? html`<p class="note">${extra.why}</p>` : ''}
    <details><summary>Plan</summary><pre>${JSON.stringify(run.plan, null, 2)}</pre></details>
    <p><a href="#/runs">All runs</a></p>
  </section>`;
}

// Bytes in powers of 1024, as `backstop snapshots` prints them.
function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (!(n >= 1024)) return (n || 0) + ' B';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return (v < 99.95 ? v.toFixed(1) : v.toFixed(0)) + ' ' + units[u];
}

function RestorePoints({ tick }) {
  const [points, setPoints] = useState(null);
  const [error, setError] = useState('');
  const [checks, setChecks] = useState({});
  useEffect(() => {
    api('/api/v1/restore-points').then((r) => {
      if (r.status === 200) setPoints(r.body.restore_points || []);
      else setError(r.body.error || 'HTTP ' + r.status);
    });
  }, [tick]);
  const verify = async (id) => {
    setChecks((c) => ({ ...c, [id]: { busy: true } }));
    const r = await api('/api/v1/restore-points/' + encodeURIComponent(id) + '/verify', { method: 'POST' });
    setChecks((c) => ({ ...c, [id]: r.status === 200 ? r.body : { error: r.body.error || 'HTTP ' + r.status } }));
  };
  const result = (c) => {
    if (!c) return '';
    if (c.busy) return html`<span role="status">verifying…</span>`;
    if (c.error) return html`<span class="error" role="alert">${c.error}</span>`;
    return c.ok
      ? html`<${Badge} table=${{ ok: ['✔', 'intact: manifest and ' + c.blobs + ' blobs', 'good'] }} value="ok" />`
      : html`<${Badge} table=${{ bad: ['✖', 'damaged: ' + (c.manifest_ok ? '' : c.manifest_detail + '; ') + c.failures.length + ' blob(s)', 'bad'] }} value="bad" />`;
  };
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!points) return html`<p>Loading restore points…</p>`;
  // With a remote store in the spec, each restore point says whether it is off the host yet.
  const remote = points.some((p) => p.replicated !== undefined);
  return html`<section aria-labelledby="h-rp">
    <h2 id="h-rp">Restore points</h2>
    ${points.length === 0 ? html`<p>No restore point yet: <code>backstop snapshot --label NAME</code> takes one.</p>` : ''}
    <table class="list" id="restore-points">
      <thead><tr><th>Restore point</th><th>Label</th><th>Kind</th><th>Taken</th><th>Components</th>
        <th>Blobs</th><th>Size (added)</th>${remote ? html`<th>Off host</th>` : ''}<th>Verify</th></tr></thead>
      <tbody>${points.map((p) => html`<tr data-restore-point=${p.id}>
        <th scope="row"><code>${p.id}</code></th><td>${p.label}</td><td>${p.kind}</td><td>${p.created}</td>
        <td>${p.components.join(', ')}</td><td>${p.blobs}</td>
        <td class="size" title="stored size of every blob it names; in brackets, what no older restore point shares"
          >${formatBytes(p.stored_bytes) + ' (+' + formatBytes(p.added_bytes) + ')'}${p.missing_blobs > 0
            ? html` <${Badge} table=${{ bad: ['✖', p.missing_blobs + ' blob(s) missing', 'bad'] }} value="bad" />` : ''}</td>
        ${remote ? html`<td class="replicated">${p.replicated
          ? html`<${Badge} table=${{ yes: ['✔', 'replicated', 'good'] }} value="yes" />`
          : html`<${Badge} table=${{ no: ['…', 'not yet replicated', 'warn'] }} value="no" />`}</td>` : ''}
        <td class="verify"><button type="button" disabled=${!getToken() || (checks[p.id] && checks[p.id].busy)}
          onClick=${() => verify(p.id)} aria-label=${'verify ' + p.id}>Verify</button> ${result(checks[p.id])}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

function Actions({ status, onDone }) {
  const [reason, setReason] = useState('');
  const [target, setTarget] = useState('');
  const [plan, setPlan] = useState(null);
  const [typed, setTyped] = useState('');
  const [message, setMessage] = useState(null);
  const comps = status.components || [];
  const body = () => (target === '__all' ? { all: true } : { component: target });
  const say = (r, ok) => setMessage({ ok: r.status >= 200 && r.status < 300, text: r.status >= 200 && r.status < 300 ? ok : r.body.error || 'HTTP ' + r.status });
  const pause = async (paused) => {
    const r = await api(paused ? '/api/v1/pause' : '/api/v1/resume', { method: 'POST', body: paused ? { reason } : {} });
    say(r, paused ? 'Automatic actions paused.' : 'Automatic actions resumed.');
    onDone();
  };
  const showPlan = async (e) => {
    e.preventDefault();
    setPlan(null);
    setTyped('');
    const r = await api('/api/v1/plan', { method: 'POST', body: body() });
    if (r.status === 200) setPlan(r.body);
    else say(r, '');
  };
  const rollback = async (e) => {
    e.preventDefault();
    const b = body();
    if (plan.protected) b.confirm = true;
    const r = await api('/api/v1/rollback', { method: 'POST', body: b });
    say(r, 'Rollback started' + (r.body.run ? ': run ' + r.body.run : '') + '.');
    setPlan(null);
    onDone();
  };
  const needsName = plan && plan.protected;
  return html`<section aria-labelledby="h-act">
    <h2 id="h-act">Actions</h2>
    ${!getToken() ? html`<p class="note" role="note">Actions need the API token: enter it above.</p>` : ''}
    ${message ? html`<p id="action-result" class=${message.ok ? 'ok' : 'error'} role="alert">${message.text}</p>` : ''}
    <h3>Automation</h3>
    <p id="paused-state">${status.paused
      ? html`<${Badge} table=${{ p: ['‖', 'paused', 'warn'] }} value="p" /> ${status.pause && status.pause.reason ? '(' + status.pause.reason + ')' : ''}`
      : html`<${Badge} table=${{ r: ['▶', 'automatic rollback on', 'good'] }} value="r" />`}</p>
    ${status.paused
      ? html`<button type="button" id="resume" onClick=${() => pause(false)}>Resume automatic actions</button>`
      : html`<form onSubmit=${(e) => { e.preventDefault(); pause(true); }}>
          <label for="pause-reason">Reason</label>
          <input id="pause-reason" value=${reason} onInput=${(e) => setReason(e.target.value)} />
          <button type="submit" id="pause">Pause automatic actions</button></form>`}
    <h3>Roll back</h3>
    <form onSubmit=${showPlan}>
      <label for="rollback-target">What</label>
      <select id="rollback-target" value=${target} onChange=${(e) => { setTarget(e.target.value); setPlan(null); }}>
        <option value="">choose…</option>
        <option value="__all">everything</option>
        ${comps.map((c) => html`<option value=${c.name}>${c.name}</option>`)}
      </select>
      <button type="submit" id="show-plan" disabled=${!target}>Show the plan</button>
    </form>
    ${plan ? html`<div class="plan" id="plan">
      <h4>The plan</h4>
      <pre>${plan.describe}</pre>
      ${(plan.unhealthy_targets || []).length ? html`<p class="error">Restores to a state recorded unhealthy: ${plan.unhealthy_targets.join(', ')}</p>` : ''}
      <p class="note">Data that changed after the restore point is lost for the restored databases and streams;
        the run's ledger records exactly what (see the run's page once it ran).</p>
      <form onSubmit=${rollback}>
        ${needsName ? html`<label for="confirm-name">Environment <strong>${plan.environment}</strong> is protected: type its name to confirm</label>
          <input id="confirm-name" autocomplete="off" value=${typed} onInput=${(e) => setTyped(e.target.value)} />` : ''}
        <button type="submit" id="confirm-rollback" class="danger" disabled=${needsName && typed !== plan.environment}>Roll back now</button>
      </form></div>` : ''}
  </section>`;
}

function App() {
  const [where, setWhere] = useState(route());
  const [status, setStatus] = useState(null);
  const [mode, setMode] = useState('polling');
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const [history, setHistory] = useState({});
  const [tokenEpoch, setTokenEpoch] = useState(0);
  const [events, setEvents] = useState([]);
  const [described, setDescribed] = useState({});

  // What each component is on (its driver's Describe): on load, after a run,
  // and every minute; not with every poll, as it may ask the databases.
  const loadComponents = useCallback(async () => {
    const r = await api('/api/v1/components');
    if (r.status !== 200) return;
    const map = {};
    for (const c of r.body.components || []) map[c.name] = c;
    setDescribed(map);
  }, []);
  useEffect(() => {
    loadComponents();
    const t = setInterval(loadComponents, 60000);
    return () => clearInterval(t);
  }, []);

  const reload = useCallback(async () => {
    const s = await api('/api/v1/status');
    if (s.status !== 200) {
      setError(s.body.error || 'the daemon did not answer');
      return;
    }
    setError('');
    setStatus(s.body);
    setTick((t) => t + 1);
  }, []);

  // The latencies of the last hour as the daemon keeps them (one point per
  // 10 s bucket): on load and every 10 s, not with every event.
  const loadLatency = useCallback(async () => {
    const r = await api('/api/v1/latency');
    if (r.status === 200) setHistory(r.body.latency || {});
  }, []);
  useEffect(() => {
    loadLatency();
    const t = setInterval(loadLatency, 10000);
    return () => clearInterval(t);
  }, []);

  useEffect(() => {
    const onHash = () => setWhere(route());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    reload();
    let pending = null;
    const stop = followEvents(
      (ev) => {
        setEvents((list) => [{ type: ev.type, data: ev.data, at: new Date().toLocaleTimeString() }, ...list].slice(0, 50));
        if (ev.type === 'hello') return;
        if (ev.type === 'run.finished' || ev.type === 'run.done') loadComponents();
        if (!pending) pending = setTimeout(() => { pending = null; reload(); }, 200);
      },
      (m) => {
        setMode(m);
        if (m === 'live') reload();
      });
    return () => { stop(); if (pending) clearTimeout(pending); };
  }, [tokenEpoch]);

  // A run that starts or ends changes what the components are on.
  const runKey = status ? JSON.stringify(status.current_run) : '';
  useEffect(() => {
    if (runKey) loadComponents();
  }, [runKey]);

  // Polling: every 5 s without the stream; every 15 s with it (latencies).
  useEffect(() => {
    const t = setInterval(reload, mode === 'live' ? 15000 : 5000);
    return () => clearInterval(t);
  }, [mode]);

  let body;
  if (!status) body = html`<p>${error || 'Loading…'}</p>`;
  else if (where.page === 'triggers') body = html`<${Triggers} status=${status} />`;
  else if (where.page === 'runs' && where.arg) body = html`<${RunPage} id=${where.arg} tick=${tick} />`;
  else if (where.page === 'runs') body = html`<${RunList} tick=${tick} />`;
  else if (where.page === 'restore-points') body = html`<${RestorePoints} tick=${tick} />`;
  else if (where.page === 'actions') body = html`<${Actions} status=${status} onDone=${reload} />`;
  else body = html`<${Environment} status=${status} history=${history} described=${described} />`;

  const current = status && status.current_run;
  return html`<header>
      <h1>Backstop <span class="env">${status ? status.environment : ''}</span></h1>
      <${TokenBar} mode=${mode} onToken=${() => setTokenEpoch((n) => n + 1)} />
    </header>
    <nav class="pages" aria-label="pages">${PAGES.map(([id, label]) => html`<a href=${'#/' + id}
      aria-current=${where.page === id ? 'page' : undefined}>${label}</a>`)}</nav>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${status && status.paused ? html`<p class="banner warn" role="status">‖ Automatic actions are paused.</p>` : ''}
    ${current ? html`<p class="banner warn" role="status" id="current-run">▶ Running: ${current.what}
      ${current.run ? html` — <a href=${'#/runs/' + current.run}>${current.run}</a>` : ''}</p>` : ''}
    <main>${body}</main>
    <aside aria-labelledby="h-events"><h2 id="h-events">Recent events</h2>
      <ol class="events" id="events">${events.map((e) => html`<li><time>${e.at}</time> <strong>${e.type}</strong> ${summary(e)}</li>`)}</ol>
    </aside>`;
}

function summary(e) {
  const d = e.data || {};
  if (e.type === 'component') return d.name + ': ' + d.health;
  if (e.type === 'trigger') return d.trigger + ' on ' + d.component + ': ' + d.from + ' → ' + d.to;
  if (e.type === 'run.step') return d.line;
  if (e.type === 'run.started' || e.type === 'run.finished') return (d.run || '') + ' ' + (d.status || d.what || '');
  if (e.type === 'pause') return d.paused ? 'paused' : 'resumed';
  return '';
}

// The loading line goes: Preact renders into an empty element.
const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
