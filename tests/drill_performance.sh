#!/usr/bin/env bash
# `backstop drill performance_degradation` end to end on the example
# environment: a webui release that answers every request after 6 s (the
# demo's response_delay_ms) is deployed, the example's response_time latency
# trigger (above 5 s) fires, the decision matrix's "Performance degradation"
# row rolls webui back to its restore point (v1), verified back. An unknown
# release fails the drill and leaves webui on v1.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=drills
# Probes wait 7 s (the interval: a timeout is no longer), so a release
# answering in 6 s is slow, not down; 1 s above the threshold fires.
export HEALTH_INTERVAL=7s HEALTH_TIMEOUT=7s RESPONSE_TIME_FOR=1s
start_drill_environment

# The operator's slow release, a latency trigger.
"$DEMO_SERVICE" make-release --role webui --version v1-slow --healthy true \
  --dir "$MISTERSMITH_ROOT/webui/releases/v1-slow" >/dev/null
py 'import json, sys
p = sys.argv[1]; r = json.load(open(p)); r["response_delay_ms"] = 6000; json.dump(r, open(p, "w"))' \
  "$MISTERSMITH_ROOT/webui/releases/v1-slow/release.json"
bs drill performance_degradation --component webui --release v1-nope; expect_rc 1 "an unknown release fails the drill"
expect_contains "$ERR" "no release 'v1-nope'"
expect_eq "$(service_version "$WEB_FRONT_PORT")" v1 "webui still on v1"
bs drill performance_degradation --component webui --release v1-slow --timeout 3m
expect_rc 0 "performance_degradation drill passes: $ERR"
PD=$(drill_id); [[ -n "$PD" ]] || die "no drill id in: $OUT"
expect_eq "$(service_version "$WEB_FRONT_PORT")" v1 "webui back on v1"
[[ -d "$MISTERSMITH_ROOT/webui/releases/v1-slow" ]] || fail "the operator's slow release was removed"
py 'import json, sqlite3, sys
d = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2])
assert d["passed"] and d["verified_back"] and d["component"] == "webui", d
assert d["fault"].startswith("deployed release v1-slow of webui, which answers slowly"), d["fault"]
assert d["trigger"]["name"] == "response_time" and d["trigger"]["component"] == "webui", d["trigger"]
assert d["decision"]["scenario"] == "Performance degradation" and d["decision"]["acted"], d["decision"]
assert "cleanup_run_id" not in d, d
assert d["target"]["recovery_max_ms"] == 10 * 60000, d["target"]
kind, scope, comp = db.execute("SELECT kind, json_extract(plan, \"$.scope\"), json_extract(plan, \"$.component\") FROM runs WHERE id = ?", (d["run_id"],)).fetchone()
assert (kind, scope, comp) == ("rollback", "component", "webui"), (kind, scope, comp)
' "$STATE/drills/$PD/drill.json" "$STATE/state.db" || fail "performance_degradation report"
log "ok"
