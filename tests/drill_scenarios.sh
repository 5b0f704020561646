#!/usr/bin/env bash
# The drill scenarios beyond tests/drill.sh, end to end on the example
# environment (PostgreSQL, nats-server, the demo services):
# - full_system: every service gets a release that never answers its health
#   check at once, the health trigger fires, the decision is the matrix's row
#   with scope all ("Partial migration failure"), one rollback of every
#   component to the drill's restore point, verified back; refused while
#   `backstop watch` runs (the daemon would roll each service back on its own);
# - nats_outage: the nats-server is frozen (SIGSTOP), the health trigger fires
#   on nats, the matrix holds (a data restore does not fix an unreachable
#   server, and no service changed), the drill resumes the server and verifies
#   everything back on its restore point with every stream message kept;
#   in-process, then followed through a running `backstop watch`.
# performance_degradation is in tests/drill_performance.sh (slower probes).
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=drills
start_drill_environment

# 1. full_system.
bs drill full_system --component webui; expect_rc 2 "full_system takes no single component"
bs drill full_system --timeout 3m
expect_rc 0 "full_system drill passes: $ERR"
FS=$(drill_id); [[ -n "$FS" ]] || die "no drill id in: $OUT"
expect_eq "$(service_version "$ORCHESTRATOR_PORT")" v1 "orchestrator back on v1"
expect_eq "$(service_version "$WEB_FRONT_PORT")" v1 "webui back on v1"
[[ -z "$(ls -d "$MISTERSMITH_ROOT"/{orchestrator,webui}/releases/drill-* 2>/dev/null)" ]] ||
  fail "fault releases were left behind"
py 'import json, sqlite3, sys
d = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2])
assert d["passed"] and d["verified_back"] and d["component"] == "all", d
assert "cleanup_run_id" not in d, d
assert "drill-%s of orchestrator" % d["id"] in d["fault"] and "drill-%s of webui" % d["id"] in d["fault"], d["fault"]
assert d["trigger"]["name"] in ("health_check_failures", "service_unreachable"), d["trigger"]
assert d["decision"]["scenario"] == "Partial migration failure" and d["decision"]["acted"], d["decision"]
assert d["target"]["recovery_max_ms"] == 20 * 60000, d["target"]
# The fault: one deploy run per service, before the rollback; the rollback: one run of everything.
deploys = db.execute("SELECT json_extract(plan, \"$.component\"), status FROM runs WHERE kind = \"deploy\" AND triggered_by = ? ORDER BY started_us", ("drill:" + d["id"],)).fetchall()
assert [c for c, _ in deploys] == ["orchestrator", "webui"], deploys
kind, scope, rp, affected = db.execute("SELECT kind, json_extract(plan, \"$.scope\"), json_extract(plan, \"$.restore_point\"), json_extract(plan, \"$.affected\") FROM runs WHERE id = ?", (d["run_id"],)).fetchone()
assert (kind, scope, rp) == ("rollback", "all", d["restore_point"]), (kind, scope, rp)
assert {"postgres", "nats", "config", "orchestrator", "webui"} <= set(json.loads(affected)), affected
decision = [json.loads(r[0]) for r in db.execute("SELECT detail FROM events WHERE kind = \"decision\" ORDER BY id DESC LIMIT 1")]
assert decision[0]["decision"]["scope"] == "all", decision
' "$STATE/drills/$FS/drill.json" "$STATE/state.db" || fail "full_system report"
bs verify; expect_rc 0 "verify after the full_system drill"

# 2. full_system is refused, with nothing touched, while backstop watch runs.
"$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 20 test -s "$STATE/watch.json" || die "watch did not start: $(cat "$WORK/watch.log")"
before=$(ls "$STATE/drills" | wc -l)
bs drill full_system; expect_rc 3 "full_system refused while backstop watch runs"
expect_contains "$ERR" "backstop watch"
expect_eq "$(ls "$STATE/drills" | wc -l)" "$before" "a refused drill left no folder"
kill -TERM "$WATCH_PID"; wait "$WATCH_PID" || true
# 3. nats_outage, in-process, then with the daemon deciding.
nats_messages() { http_get "http://127.0.0.1:$NATS_MONITOR_PORT/jsz" | py 'import json,sys; print(json.load(sys.stdin)["messages"])'; }
nats_state() { sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$(cat "$MISTERSMITH_ROOT/nats/nats.pid")/status"; }
MESSAGES=$(nats_messages)
[[ "$MESSAGES" -gt 0 ]] || die "the example's streams hold no messages"
check_nats_drill() {
  local id=$1 detector=$2
  expect_eq "$(nats_state)" S "nats-server runs again after drill $id"
  expect_eq "$(nats_messages)" "$MESSAGES" "stream messages kept by drill $id"
  py 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["passed"] and d["verified_back"] and d["component"] == "nats", d
assert d["detector"].startswith(sys.argv[2]), d["detector"]
assert d["fault"].startswith("froze nats"), d["fault"]
assert d["trigger"]["component"] == "nats", d["trigger"]
assert d["decision"]["acted"] is False and d["decision"]["scenario"] == "Single service failure", d["decision"]
assert "cannot be reached" in d["decision"]["reason"] or "unreachable" in d["decision"]["reason"], d["decision"]
assert d["run_id"] == "" and "cleanup_run_id" not in d, d
assert 0 <= d["detection_ms"] <= d["recovery_ms"] <= d["target"]["recovery_max_ms"], d
' "$STATE/drills/$id/drill.json" "$detector" || fail "nats_outage report $id"
}
bs drill nats_outage --timeout 3m
expect_rc 0 "nats_outage drill passes: $ERR"
NO=$(drill_id); [[ -n "$NO" ]] || die "no drill id in: $OUT"
check_nats_drill "$NO" "in-process"
bs verify --data; expect_rc 0 "verify --data after the nats_outage drill"

"$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 >"$WORK/watch2.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 20 test -s "$STATE/watch.json" || die "watch did not start: $(cat "$WORK/watch2.log")"
bs drill nats_outage --timeout 3m
expect_rc 0 "nats_outage drill following the daemon passes: $ERR"
ND=$(drill_id); [[ -n "$ND" ]] || die "no drill id in: $OUT"
check_nats_drill "$ND" "backstop watch (pid"
kill -TERM "$WATCH_PID"; wait "$WATCH_PID" || true

log "ok"
