#!/usr/bin/env bash
# Performance baselines (seed 4.3) on the mistersmith environment with the
# real PostgreSQL, nats-server and services:
# - a restore point records a baseline for each kind: probe p50/p95 of the
#   services, the database's baseline_query, NATS publish and consume rates
#   (none for the config files, which have nothing to measure);
# - `verify --performance` passes against it, and fails naming the service
#   once a release that answers slowly is deployed;
# - a rollback runs it last: a component still slow afterwards is reported
#   degraded in the run's output, its summary and the checklist, and the
#   rollback stands.
# The slow release waits 400 ms per answer and changes smaller than 100 ms
# are not counted, so the verdicts do not depend on how busy the machine is.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging
export PERF_SAMPLES=5 PERF_MIN_CHANGE=100ms PERF_THROUGHPUT_TOLERANCE=95%
export HEALTH_INTERVAL=3s HEALTH_TIMEOUT=3s
start_mistersmith
"$DEMO_SERVICE" make-release --role webui --version v3 --healthy true --response-delay-ms 400 \
  --dir "$WORK/webui/releases/v3" >/dev/null

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 "snapshot"
rp=$(grep -o 'rp-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
[[ -n "$rp" ]] || die "no restore point id in: $OUT"
manifest="$WORK/state/store/restore-points/$rp.json"

log "the restore point records a baseline for each kind"
metrics() {  # metrics COMPONENT: the names of its baseline metrics
  json "' '.join(m['name'] for m in d['components']['$1'].get('performance', {}).get('metrics', []))" <"$manifest"
}
expect_eq "$(metrics orchestrator)" "probe p50 probe p95" "orchestrator baseline"
expect_eq "$(metrics webui)" "probe p50 probe p95" "webui baseline"
expect_eq "$(metrics postgres)" "query p50 query p95" "postgres baseline"
expect_eq "$(metrics nats)" "publish rate consume rate" "nats baseline"
expect_eq "$(json "'performance' in d['components']['config']" <"$manifest")" False \
  "config has nothing to measure"
bs snapshots verify "$rp"; expect_rc 0 "the manifest's checksum covers the baseline"

log "verify --performance passes against the baseline"
bs verify --performance; expect_rc 0 "verify --performance"
expect_contains "$OUT" "performance within the baselines" "verify --performance"
bs verify --performance -o json; expect_rc 0 "verify --performance -o json"
expect_eq "$(json "d['performance']['ok']" <<<"$OUT")" True "performance ok in JSON"
expect_eq "$(json "sorted({r['component'] for r in d['performance']['rows'] if r['status']=='ok'})" <<<"$OUT")" \
  "['nats', 'orchestrator', 'postgres', 'webui']" "components compared"

log "a release that answers slowly is reported degraded"
bs deploy webui v3 --no-snapshot; expect_rc 0 "deploy the slow webui v3"
bs verify --performance -o json; expect_rc 1 "verify --performance with a slow webui"
expect_eq "$(json "sorted({r['component']+' '+r['metric'] for r in d['performance']['rows'] if r['status']=='degraded'})" <<<"$OUT")" \
  "['webui probe p50', 'webui probe p95']" "degraded metrics"
bs verify --performance; expect_rc 1 "verify --performance (text)"
expect_contains "$OUT" "performance DEGRADED: webui probe p50 degraded" "verify --performance table"

log "a rollback verifies performance last: degraded is loud, the rollback stands"
bs rollback --component orchestrator --to good; expect_rc 0 "rollback orchestrator (webui still slow)"
run=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
expect_contains "$OUT" "verifying performance against the baselines" "rollback output"
expect_contains "$OUT" "performance DEGRADED: webui probe" "rollback output"
expect_contains "$OUT" "the rollback stands" "rollback output"
bs checklist "$run" -o json; expect_rc 1 "checklist with a failed item"
expect_eq "$(json "[i['status'] for i in d['items'] if i['id']=='performance-baselines'][0]" <<<"$OUT")" \
  failed "checklist performance item after a degraded rollback"
bs checklist "$run"
expect_contains "$OUT" "webui probe p95: degraded" "checklist evidence"
bs report "$run"; expect_rc 0 "report"
expect_contains "$OUT" "**Performance:** performance DEGRADED: webui probe" "incident report"

log "rolled back to the baseline's release, performance is met again"
bs rollback --component webui --to good; expect_rc 0 "rollback webui"
run=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
expect_contains "$OUT" "performance within the baselines" "rollback output"
bs checklist "$run" -o json
expect_eq "$(json "[i['status'] for i in d['items'] if i['id']=='performance-baselines'][0]" <<<"$OUT")" \
  ok "checklist performance item"
