#!/usr/bin/env bash
# `backstop drill` on the example environment (PostgreSQL, nats-server, the
# demo services), end to end:
# - refusals before anything is touched: a slow-release drill without its release, a protected
#   environment without --confirm, an unfinished run, an open incident (a
#   failed run) (the firing trigger in the daemon's saved state is covered
#   by drill_runner_test);
# - service_failure: a release that never answers health is deployed, the
#   spec's health trigger fires, the matrix's "Single service failure" row
#   rolls the service back, and the environment is verified back on the
#   drill's restore point (in-process, then again with `backstop watch`
#   running: the daemon rolls back and the drill follows it; there on the
#   blue/green web UI, whose fault release breaks only after the switch and
#   whose rollback is a switch back to the same v1 process); database_corruption: a foreign key is dropped, the
#   integrity trigger fires, "Database corruption" restores the database;
# - drill.json / drill.md (0600) agree with the journal (drill.started,
#   trigger.firing, decision, drill.finished) and the run record, and
#   drill.finished is delivered to the spec's log notifier;
# - drill history lists both with the trend; --due runs the spec's weekly
#   drill on the next service in rotation and then says it is not due.
source "$(dirname "$0")/lib.sh"
# Not staging: the example's monthly full-system drill is for staging (tests/drill_scenarios.sh drills full_system).
export BACKSTOP_ENVIRONMENT=drills
start_drill_environment

# 1. Refusals, with nothing touched.
bs drill performance_degradation --component webui; expect_rc 2 "performance_degradation without --release"
expect_contains "$ERR" "--release"
bs drill service_failure --component postgres; expect_rc 2 "service_failure of a database"
BACKSTOP_ENVIRONMENT=production bs drill service_failure
expect_rc 3 "protected environment without --confirm"
expect_contains "$ERR" "--confirm"
bs deploy webui v2; expect_rc 1 "deploy webui v2 (fails its health gate)"
bs drill service_failure; expect_rc 3 "refused while an incident is open (a failed run)"
expect_contains "$ERR" "incident is open"
crash_at 1 rollback --component webui --to v1 || die "no unfinished run"
bs drill service_failure; expect_rc 3 "refused while a run is unfinished"
expect_contains "$ERR" "unfinished"
bs rollback --resume "$CRASH_RUN_ID"; expect_rc 0 "the resumed rollback of webui closes the incident"
[[ -z "$(ls "$STATE/drills" 2>/dev/null)" ]] || fail "a refused drill left a drill folder"
bs drill history -o json; expect_rc 0 "history"
expect_eq "$(py 'import json,sys; print(len(json.loads(sys.argv[1])["drills"]))' "$OUT")" 0 "no drill recorded"

# 2. service_failure, end to end.
bs drill service_failure --component orchestrator --timeout 2m
expect_rc 0 "service_failure drill passes: $ERR"
SF=$(drill_id); [[ -n "$SF" ]] || die "no drill id in: $OUT"
expect_eq "$(service_version "$ORCHESTRATOR_PORT")" v1 "orchestrator back on v1"
[[ -z "$(ls -d "$MISTERSMITH_ROOT"/orchestrator/releases/drill-* 2>/dev/null)" ]] ||
  fail "the fault release was left behind"

# 3. database_corruption, end to end.
bs drill database_corruption --timeout 3m
expect_rc 0 "database_corruption drill passes: $ERR"
DC=$(drill_id); [[ -n "$DC" ]] || die "no drill id in: $OUT"
bs verify --data; expect_rc 0 "verify --data after the drill"

# 3b. With `backstop watch` running, the daemon detects and rolls back; the
# drill follows its run through the journal.
"$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 20 test -s "$STATE/watch.json" || die "watch did not start: $(cat "$WORK/watch.log")"
# webui is blue/green: the fault passes its gate and the switch, then breaks,
# and the rollback switches back to v1, still running in its slot.
live_slot() {
  bs -o json status
  py 'import json,sys; d=json.loads(sys.argv[1]); print([c for c in d["components"] if c["name"]=="webui"][0]["slots"]["live"])' "$OUT"
}
slot_pid() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$STATE/components/webui/slot-$1.json" | head -n1; }
LIVE_BEFORE=$(live_slot); PID_BEFORE=$(slot_pid "$LIVE_BEFORE")
[[ -n "$LIVE_BEFORE" && -n "$PID_BEFORE" ]] || die "webui has no live slot: $OUT"
bs drill service_failure --component webui --timeout 2m
expect_rc 0 "a drill following the watch daemon passes: $ERR"
WD=$(drill_id); [[ -n "$WD" ]] || die "no drill id in: $OUT"
expect_eq "$(live_slot)" "$LIVE_BEFORE" "webui live again in the slot it served from before the drill"
expect_eq "$(slot_pid "$LIVE_BEFORE")" "$PID_BEFORE" "webui's v1 was switched back to, not restarted"
kill -TERM "$WATCH_PID"; wait "$WATCH_PID" || true
py 'import json, sqlite3, sys
d = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2])
assert d["passed"] and d["detector"].startswith("backstop watch (pid"), d
assert d["decision"]["scenario"] == "Single service failure", d["decision"]
assert "cleanup_run_id" not in d, d
cmd, by = db.execute("SELECT command, triggered_by FROM runs WHERE id = ?", (d["run_id"],)).fetchone()
assert cmd.startswith("backstop watch") and by == "trigger:" + d["trigger"]["name"], (cmd, by)
assert 0 <= d["detection_ms"] <= d["recovery_ms"], d
assert "of webui (blue/green), which served as v1 through its health gate and the switch" in d["fault"], d["fault"]
' "$STATE/drills/$WD/drill.json" "$STATE/state.db" || fail "drill following the daemon: $(tail -n 20 "$WORK/watch.log")"
expect_eq "$(service_version "$WEB_FRONT_PORT")" v1 "webui back on v1 (by the daemon)"

# 4. The reports against the journal and the run records.
bs -o json runs; expect_rc 0 "runs -o json"; printf '%s' "$OUT" >"$WORK/runs.json"
for id in "$SF" "$DC"; do
  for f in drill.json drill.md; do
    expect_eq "$(stat -c %a "$STATE/drills/$id/$f")" 600 "mode of $id/$f"
  done
  py 'import json, sqlite3, sys
d = json.load(open(sys.argv[1])); runs = json.load(open(sys.argv[2]))["runs"]
db = sqlite3.connect(sys.argv[3]); drill = sys.argv[4]
def eq(a, b, what):
    assert a == b, "%s %s: report %r, journal %r" % (drill, what, a, b)
eq(d["id"], drill, "id"); eq(d["passed"], True, "passed"); eq(d["verified_back"], True, "verified back")
ev = [dict(zip(("id","at_us","kind","run_id","component","trigger","detail"), r)) for r in
      db.execute("SELECT id, at_us, kind, run_id, component, trigger_name, detail FROM events ORDER BY id")]
started = [e for e in ev if e["kind"] == "drill.started" and json.loads(e["detail"]).get("drill") == drill]
finished = [e for e in ev if e["kind"] == "drill.finished" and json.loads(e["detail"]).get("id") == drill]
eq(len(started), 1, "drill.started events"); eq(len(finished), 1, "drill.finished events")
eq(finished[0]["run_id"], d["run_id"], "run of drill.finished")
eq(json.loads(finished[0]["detail"])["recovery_ms"], d["recovery_ms"], "recovery in the journal")
# The example spec has a log notifier that wants drill_finished: delivered at the end.
delivered = db.execute("SELECT delivered_us FROM deliveries WHERE event_id = ? AND target = ?", (finished[0]["id"], "log")).fetchone()
assert delivered and delivered[0] > 0, "drill.finished not delivered to the log notifier: %r" % (delivered,)
firing = [e for e in ev if e["kind"] == "trigger.firing" and started[0]["id"] < e["id"] < finished[0]["id"]]
assert firing, "no trigger.firing between the drill events"
eq(firing[0]["trigger"], d["trigger"]["name"], "trigger")
decision = [e for e in ev if e["kind"] == "decision" and started[0]["id"] < e["id"] < finished[0]["id"]]
assert decision and json.loads(decision[0]["detail"])["outcome"] == "acted", decision
run = next(r for r in runs if r["id"] == d["run_id"])
eq(run["status"], "succeeded", "rollback run status")
eq(db.execute("SELECT triggered_by FROM runs WHERE id = ?", (d["run_id"],)).fetchone()[0],
   "trigger:" + d["trigger"]["name"], "run triggered_by")
row = db.execute("SELECT status, detection_ms, recovery_ms, target_ms, run_id, restore_point FROM drills WHERE id = ?", (drill,)).fetchone()
eq(row, ("passed", d["detection_ms"], d["recovery_ms"], d["target"]["recovery_max_ms"], d["run_id"], d["restore_point"]), "drills row")
assert 0 <= d["detection_ms"] <= d["recovery_ms"] <= d["target"]["recovery_max_ms"], d
inj = d["injected"]; assert inj <= d["detected"] <= d["recovered"], d
' "$STATE/drills/$id/drill.json" "$WORK/runs.json" "$STATE/state.db" "$id" || fail "report of drill $id"
done
py 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["scenario"] == "service_failure" and d["component"] == "orchestrator", d
assert d["decision"]["scenario"] == "Single service failure", d["decision"]
assert d["target"]["recovery_max_ms"] == 300000, d["target"]' "$STATE/drills/$SF/drill.json" ||
  fail "service_failure report"
py 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["scenario"] == "database_corruption" and d["component"] == "postgres", d
assert d["trigger"]["name"] == "data_integrity", d["trigger"]
assert d["decision"]["scenario"] == "Database corruption", d["decision"]' "$STATE/drills/$DC/drill.json" ||
  fail "database_corruption report"
expect_contains "$(cat "$STATE/drills/$SF/drill.md")" "PASSED"

# 5. History and the schedule.
bs drill history; expect_rc 0 "drill history"
expect_contains "$OUT" "$SF"; expect_contains "$OUT" "$DC"; expect_contains "$OUT" "Trend: 3 of 3 passed"
# The spec's weekly drill has not run: it takes the first service, orchestrator.
bs drill --due; expect_rc 0 "drill --due runs the weekly drill: $ERR"
expect_contains "$OUT" "weekly-component: due"
expect_contains "$OUT" "monthly-full-system: for environment staging"
bs drill history -o json
expect_eq "$(py 'import json,sys; d=json.loads(sys.argv[1])["drills"][0]; print(d["name"], d["component"], d["status"])' "$OUT")" \
  "weekly-component orchestrator passed" "the weekly drill took the first service"
bs drill --due; expect_rc 0 "drill --due again"
expect_contains "$OUT" "weekly-component: not due"

# 6. A fault the triggers do not catch in time fails the drill loudly, and
# the drill rolls back by itself: the environment is still verified back.
bs drill service_failure --component webui --timeout 1s
expect_rc 1 "an undetected fault fails the drill"
expect_contains "$ERR" "not detected"
UD=$(drill_id)
py 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["passed"] is False and d["reason"].startswith("not detected"), d
assert d["detection_ms"] is None and d["cleanup_run_id"] and d["verified_back"] is True, d' \
  "$STATE/drills/$UD/drill.json" || fail "undetected drill report"
expect_eq "$(service_version "$WEB_FRONT_PORT")" v1 "webui back on v1 after the drill's own rollback"
bs drill history; expect_contains "$OUT" "Trend: 4 of 5 passed"
log "ok"
