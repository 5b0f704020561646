// The dashboard in headless Chromium (see tests/dashboard.sh, which starts
// the daemon and passes API, TOKEN, SPEC, BACKSTOP_BIN, ARTIFACTS). Each step
// waits for the page to show a state (no sleeps); a step that does not see it
// within its time fails the test with a screenshot.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'web', 'package.json'));
const { chromium } = require('playwright-core');

const { API, TOKEN, SPEC, BACKSTOP_BIN, ARTIFACTS } = process.env;
const WAIT = { timeout: 60_000 };
let step = '';
const say = (s) => {
  step = s;
  console.log('dashboard: ' + s);
};

function backstop(...args) {
  try {
    return { rc: 0, out: execFileSync(BACKSTOP_BIN, ['--spec', SPEC, ...args], { encoding: 'utf8', stdio: 'pipe' }) };
  } catch (e) {
    return { rc: e.status, out: (e.stdout || '') + (e.stderr || '') };
  }
}

function expect(cond, what) {
  if (!cond) throw new Error('expected: ' + what);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  // Root in a sandbox; no network beyond loopback: nothing in the background.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let page;
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // A 401 answer is logged by the browser as a failed resource: expected here.
    if (m.type() === 'error' && !/401|Unauthorized/.test(m.text())) problems.push('console: ' + m.text());
  });
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, name + '.png'), fullPage: true });

  say('without a token: the state is readable, the stream and the actions are refused');
  await page.goto(API + '/');
  await page.locator('tr[data-component="orchestrator"] [data-state="pass"]').waitFor(WAIT);
  await page.locator('#mode[data-mode="polling"]').waitFor(WAIT);
  const noToken = await page.evaluate(async () => (await fetch('/api/v1/events')).status);
  expect(noToken === 401, 'GET /api/v1/events without a token is 401 (got ' + noToken + ')');
  await page.click('a[href="#/actions"]');
  await page.fill('#pause-reason', 'no token');
  await page.click('#pause');
  await page.locator('#action-result.error').waitFor(WAIT);
  expect(/Bearer/.test(await page.textContent('#action-result')), 'the 401 says a bearer token is needed');
  await shot('no-token');

  say('a wrong token is refused and said so');
  await page.fill('#token', 'not-the-token');
  await page.click('.tokenbar button[type="submit"]');
  await page.locator('#mode[data-mode="unauthorized"]').waitFor(WAIT);
  await shot('wrong-token');

  say('with the token: live, the environment shows releases and health');
  await page.fill('#token', TOKEN);
  await page.click('.tokenbar button[type="submit"]');
  await page.locator('#mode[data-mode="live"]').waitFor(WAIT);
  const stored = await page.evaluate(() => sessionStorage.getItem('backstop-api-token'));
  expect(stored === TOKEN, 'the token is kept in sessionStorage');
  expect((await context.cookies()).length === 0, 'no cookie is set');
  await page.click('a[href="#/environment"]');
  const orch = page.locator('tr[data-component="orchestrator"]');
  await orch.locator('td.release', { hasText: 'v1' }).waitFor(WAIT);
  expect((await orch.locator('td.health').textContent()).includes('healthy'), 'orchestrator healthy (in words)');
  await page.locator('tr[data-component="webui"] td.release', { hasText: 'v1' }).waitFor(WAIT);
  await page.locator('tr[data-component="orchestrator"] td.restore-point', { hasText: 'before-v2' }).waitFor(WAIT);
  // The dependency graph: a node per component, its health in words.
  await page.locator('#graph [data-node="orchestrator"] text.state', { hasText: 'healthy' }).waitFor(WAIT);
  expect(await page.locator('#graph [data-node]').count() === 3, 'a node per component');
  expect(await page.locator('#graph line.edge').count() === 2, 'an edge per depends_on');
  // The sparkline draws the daemon's latency history (GET /api/v1/latency).
  const latency = await page.evaluate(async () => (await (await fetch('/api/v1/latency')).json()).latency);
  expect(Array.isArray(latency.orchestrator) && latency.orchestrator.length > 0, 'the daemon keeps latencies');
  await page.locator('tr[data-component="orchestrator"] .spark:not([data-points="0"])').waitFor(WAIT);
  await shot('environment');
  // Dark when the system is dark: the page follows prefers-color-scheme.
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(dark === 'rgb(13, 17, 23)', 'a dark background when the system is dark (got ' + dark + ')');
  await shot('environment-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  // 200% zoom of a 1280-pixel window: the page reflows, nothing is cut off sideways.
  await page.setViewportSize({ width: 640, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  expect(overflow <= 0, 'no sideways scrolling of the page at 200% zoom (' + overflow + ' px too wide)');
  await shot('environment-zoom200');
  await page.setViewportSize({ width: 1280, height: 800 });
  // Keyboard: Tab reaches the page links, Enter follows one.
  await page.focus('a[href="#/triggers"]');
  await page.keyboard.press('Enter');
  await page.locator('#triggers').waitFor(WAIT);
  await page.click('a[href="#/environment"]');

  say('restore points: listed, one verified through the page');
  await page.click('a[href="#/restore-points"]');
  const rp = page.locator('#restore-points tr', { hasText: 'before-v2' });
  await rp.waitFor(WAIT);
  // Its size as the API measured it: stored bytes, then what it added.
  const size = (await rp.locator('td.size').innerText()).trim();
  if (!/^\d+(\.\d)? (B|KiB|MiB|GiB) \(\+\d+(\.\d)? (B|KiB|MiB|GiB)\)/.test(size)) {
    throw new Error('restore point size cell: ' + JSON.stringify(size));
  }
  await rp.locator('button').click();
  await rp.locator('td.verify', { hasText: 'intact' }).waitFor(WAIT);
  await shot('restore-points');

  say('pause through the page');
  await page.click('a[href="#/actions"]');
  await page.fill('#pause-reason', 'dashboard test');
  await page.click('#pause');
  await page.locator('#paused-state', { hasText: 'paused' }).waitFor(WAIT);
  await page.locator('#resume').waitFor(WAIT);

  say('a fault: orchestrator v2 is unhealthy; its trigger goes pending, then firing (held)');
  const deploy = backstop('deploy', 'orchestrator', 'v2');
  expect(deploy.rc === 1, 'deploy v2 fails its health gate and is left running (rc ' + deploy.rc + ')');
  await page.click('a[href="#/triggers"]');
  const trig = page.locator('tr[data-trigger="health_check_failures"][data-component="orchestrator"]');
  await page.locator('#events li', { hasText: 'health_check_failures on orchestrator: ok → pending' }).waitFor(WAIT);
  // error_rate (for: 2m) is pending meanwhile: the page counts down to when it fires.
  await page.locator('tr[data-trigger="error_rate"][data-component="orchestrator"] td.for',
    { hasText: 'fires in' }).waitFor(WAIT);
  await trig.locator('[data-state="firing"]').waitFor(WAIT);
  await page.locator('#events li', { hasText: 'health_check_failures on orchestrator: pending → firing' }).waitFor(WAIT);
  expect((await trig.locator('td.state').textContent()).includes('firing'), 'firing in words');
  // What the matrix would choose, and that the pause holds it.
  await trig.locator('td.if-fired', { hasText: 'would hold: automatic actions are paused' }).waitFor(WAIT);
  await shot('triggers-firing');
  await page.click('a[href="#/environment"]');
  await orch.locator('[data-state="fail"]').waitFor(WAIT);
  await page.locator('#graph [data-node="orchestrator"] text.state', { hasText: 'failing' }).waitFor(WAIT);
  await orch.locator('td.release', { hasText: 'v2' }).waitFor(WAIT);
  await shot('environment-failing');

  say('resume through the page: the daemon rolls back by itself, the run appears with its timeline');
  await page.click('a[href="#/actions"]');
  await page.click('#resume');
  await page.locator('#paused-state', { hasText: 'automatic rollback on' }).waitFor(WAIT);
  await page.click('a[href="#/runs"]');
  const autoRun = page.locator('#runs tr', { hasText: 'trigger:health_check_failures' }).first();
  await autoRun.locator('[data-state="succeeded"]').waitFor(WAIT);
  await shot('runs');
  await autoRun.locator('a').click();
  await page.locator('#steps li').first().waitFor(WAIT);
  const steps = await page.locator('#steps li').count();
  const done = await page.locator('#steps li[data-status="done"]').count();
  expect(steps > 0 && steps === done, `every step of the automatic run is done (${done}/${steps})`);
  // The timeline: a bar per step placed by its recorded times.
  expect(await page.locator('#steps li .gantt .gbar').count() === steps, 'a timeline bar per step');
  expect(await page.locator('#steps li .when', { hasText: 'took' }).count() === steps, 'each step says how long it took');
  // The incident report the run wrote: recovery time against its target, the ledger, the checklist.
  await page.locator('#recovery').waitFor(WAIT);
  const verdict = await page.textContent('#recovery');
  expect(/met|missed|no target|not measured/.test(verdict), 'the recovery time has a verdict (' + verdict + ')');
  expect((await page.textContent('#loss-summary')).length > 0, 'the data-loss summary is shown');
  await page.locator('#checklist tbody tr').first().waitFor(WAIT);
  expect(await page.locator('#checklist tbody tr').count() === 10, 'the ten checklist items');
  await shot('run');
  await page.click('a[href="#/environment"]');
  await orch.locator('td.release', { hasText: 'v1' }).waitFor(WAIT);
  await orch.locator('[data-state="pass"]').waitFor(WAIT);

  say('a confirmed rollback of everything through the page: the plan first, the name typed');
  const runsBefore = await page.evaluate(async () => (await (await fetch('/api/v1/runs')).json()).runs.length);
  await page.click('a[href="#/actions"]');
  await page.selectOption('#rollback-target', '__all');
  await page.click('#show-plan');
  await page.locator('#plan pre').waitFor(WAIT);
  expect((await page.textContent('#plan pre')).length > 20, 'the plan is described');
  expect(await page.isDisabled('#confirm-rollback'), 'not before the name is typed');
  await page.fill('#confirm-name', 'staging');
  expect(await page.isDisabled('#confirm-rollback'), 'not with a wrong name');
  await page.fill('#confirm-name', 'staging-dash');
  await shot('rollback-plan');
  expect(!(await page.isDisabled('#confirm-rollback')), 'enabled with the name');
  await page.click('#confirm-rollback');
  await page.locator('#action-result.ok', { hasText: 'Rollback started' }).waitFor(WAIT);
  await page.click('a[href="#/runs"]');
  await page.waitForFunction(
    async (n) => {
      const runs = (await (await fetch('/api/v1/runs')).json()).runs;
      return runs.length > n && runs[0].status === 'succeeded';
    }, runsBefore, { timeout: 120_000, polling: 250 });
  const manual = page.locator('#runs tr').nth(1);
  await manual.locator('[data-state="succeeded"]').waitFor(WAIT);
  expect((await manual.textContent()).includes('manual'), 'the newest run is the manual one');
  await manual.locator('a').click();
  await page.locator('#run-actor', { hasText: 'api 127.0.0.1' }).waitFor(WAIT);
  await shot('run-manual');

  expect(problems.length === 0, 'no page error or console error: ' + problems.join('; '));
  console.log('dashboard: all checks passed');
} catch (e) {
  console.error('dashboard: FAILED at "' + step + '": ' + e.message);
  if (problems.length) console.error('dashboard: ' + problems.join('\n'));
  if (page) await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
