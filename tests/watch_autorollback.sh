#!/usr/bin/env bash
# `backstop watch` rolls back an unhealthy service with no human, against real
# child processes:
#   v1 healthy -> restore point -> `watch pause` -> deploy v2 (unhealthy, left
#   running) -> the daemon sees health_check_failures fire and HOLDS (paused)
#   -> the API refuses to act without the token (and with a wrong one) ->
#   resume through the API with the token -> the daemon rolls back by itself:
#   the run says triggered_by trigger:health_check_failures, with the samples
#   and the decision; the service is on v1 and healthy; /metrics shows it.
# Then --dry-run decides without acting, the trigger state survives a
# restart, and the cooldown and the hourly cap hold further rollbacks.
source "$(dirname "$0")/lib.sh"
write_services_spec
# Probe every 200 ms: three failures take about 0.6 s.
sed -i "s/interval: 1s, timeout: 1s/interval: 200ms, timeout: 200ms/g" "$SPEC"
STATE="$WORK/.backstop"

# json_field JSON PYTHON_EXPR: evaluates EXPR with `j` bound to the parsed JSON.
json_field() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
api() { curl -sS --max-time 10 --noproxy '*' "$@"; }
# api_status METHOD PATH [AUTH_HEADER]: prints the HTTP status code only.
api_status() {
  local method=$1 path=$2 auth=${3:-}
  local args=(-o "$WORK/.api-body" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json')
  [[ -n "$auth" ]] && args+=(-H "$auth")
  [[ "$method" == POST ]] && args+=(--data '{"component": "orchestrator"}')
  api "${args[@]}" "$API$path"
}
start_watch() {
  "$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 --log-format json "$@" \
    >>"$WORK/watch.log" 2>&1 &
  WATCH_PID=$!
  at_exit "kill -9 $WATCH_PID"
  wait_for 20 test -s "$STATE/watch.json" || die "watch did not start: $(cat "$WORK/watch.log")"
  API=$(json_field "$(cat "$STATE/watch.json")" 'j["api"]')
}
stop_watch() {
  kill -TERM "$WATCH_PID"
  local rc=0
  wait "$WATCH_PID" || rc=$?
  expect_eq "$rc" 0 "watch exit status after SIGTERM"
}
log_has() { grep -q -- "$1" "$WORK/watch.log"; }

bs deploy orchestrator v1
expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1
expect_rc 0 "deploy webui v1"
bs snapshot --label before-v2
expect_rc 0 snapshot

# --once: one probe of everything, nothing firing, exit 0.
bs watch --once
expect_rc 0 "watch --once (healthy)"
expect_contains "$OUT" "all healthy"

bs watch pause --reason "change freeze"
expect_rc 0 "watch pause"

bs deploy orchestrator v2
expect_rc 1 "deploy orchestrator v2 (unhealthy, left running)"
expect_eq "$(service_version "$ORCH_PORT")" v2 "orchestrator runs v2"

start_watch --cooldown 1m
wait_for 20 log_has '"decision: hold"' || fail "no hold decision while paused"
expect_contains "$(grep '"decision: hold"' "$WORK/watch.log" | head -n1)" "paused" "hold reason"
expect_contains "$(grep '"trigger firing"' "$WORK/watch.log" | head -n1)" "health_check_failures"
expect_eq "$(service_version "$ORCH_PORT")" v2 "paused: orchestrator still on v2"

# Acting needs the token; reading does not.
expect_eq "$(api_status POST /api/v1/rollback)" 401 "rollback without a token"
expect_contains "$(cat "$WORK/.api-body")" '"unauthorized"' "401 body"
expect_eq "$(api_status POST /api/v1/resume 'Authorization: Bearer not-the-token')" 401 \
  "resume with a wrong token"
expect_eq "$(api_status POST /api/v1/pause)" 401 "pause without a token"
expect_eq "$(api_status GET /api/v1/status)" 200 "status without a token"
expect_eq "$(json_field "$(cat "$WORK/.api-body")" 'j["paused"]')" True "status says paused"
expect_eq "$(stat -c %a "$STATE/api-token")" 600 "api-token mode"
TOKEN=$(head -n1 "$STATE/api-token")

# Slow clients (200 connections from one address, 50 from another, each
# having sent one byte of its request) do not make the API unreachable: a
# normal request from a third address and from theirs is answered while they
# stay connected.
SLOW_RESULT=$(python3 - "$API" <<'PY'
import http.client, socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
slow = []
for i in range(250):
    s = socket.create_connection((u.hostname, u.port), timeout=10,
                                 source_address=("127.0.0.1" if i < 200 else "127.0.0.2", 0))
    s.send(b"G")
    slow.append(s)
answers = []
for source in ("127.0.0.3", "127.0.0.1", "127.0.0.2"):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10, source_address=(source, 0))
    c.request("GET", "/api/v1/status")
    answers.append(str(c.getresponse().status))
    c.close()
for s in slow:
    s.close()
print(" ".join(answers))
PY
)
expect_eq "$SLOW_RESULT" "200 200 200" "status answered while 250 slow clients are connected"
expect_eq "$(service_version "$ORCH_PORT")" v2 "refused requests changed nothing"

# Resume with the token: the trigger still fires, so the daemon decides again and acts.
expect_eq "$(api_status POST /api/v1/resume "Authorization: Bearer $TOKEN")" 200 "resume with the token"
run_by_trigger() {
  api "$API/api/v1/runs" | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
ok = [r for r in runs if r["triggered_by"] == "trigger:health_check_failures" and r["status"] == "succeeded"]
print(ok[0]["id"] if ok else "")' | grep -q run-
}
wait_for 60 run_by_trigger || fail "no automatic rollback run; log: $(tail -n 20 "$WORK/watch.log")"
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator back on v1"
bs verify
expect_rc 0 "verify after the automatic rollback"

RUNS=$(api "$API/api/v1/runs")
RUN_ID=$(json_field "$RUNS" '[r["id"] for r in j["runs"] if r["triggered_by"].startswith("trigger:")][0]')
DETAIL=$(api "$API/api/v1/runs/$RUN_ID")
expect_eq "$(json_field "$DETAIL" 'j["triggered_by"]')" "trigger:health_check_failures" "run triggered_by"
expect_eq "$(json_field "$DETAIL" 'j["status"]')" succeeded "run status"
expect_eq "$(json_field "$DETAIL" 'j["trigger_detail"]["event"]["trigger"]')" \
  health_check_failures "trigger detail names the trigger"
expect_eq "$(json_field "$DETAIL" 'j["trigger_detail"]["event"]["component"]')" orchestrator \
  "trigger detail names the component"
expect_eq "$(json_field "$DETAIL" 'all(s["value"] == 0 for s in j["trigger_detail"]["event"]["samples"][-3:])')" \
  True "the samples that fired it are failures"
expect_eq "$(json_field "$DETAIL" 'len(j["trigger_detail"]["event"]["samples"]) >= 3')" True \
  "at least the three failed samples"
expect_eq "$(json_field "$DETAIL" 'j["trigger_detail"]["decision"]["act"]')" True "decision act"
expect_eq "$(json_field "$DETAIL" 'j["trigger_detail"]["decision"]["scope"]')" component "decision scope"
expect_eq "$(json_field "$DETAIL" 'j["trigger_detail"]["decision"]["scenario"]')" \
  "Single service failure" "decision matrix row"

METRICS=$(api "$API/metrics")
expect_contains "$METRICS" 'backstop_runs_total{kind="rollback",status="succeeded"} 1' "metrics"
expect_contains "$METRICS" 'backstop_watch_paused 0' "metrics"
expect_contains "$METRICS" 'backstop_probe_success{component="orchestrator"}' "metrics"
expect_contains "$METRICS" 'backstop_trigger_state{trigger="health_check_failures",component="orchestrator"}' "metrics"

# The API answers a second rollback request with the token (nothing to go
# back to from v1: the plan is refused, but the request is accepted or
# refused cleanly, never a crash).
api_status POST /api/v1/rollback "Authorization: Bearer $TOKEN" >/dev/null

stop_watch
[[ ! -e "$STATE/watch.json" ]] || fail "watch.json left behind after a clean stop"
grep -q -- "$TOKEN" "$WORK/watch.log" && fail "the API token appears in the log"
# Every log line is one JSON object with ts, level, msg, fields.
python3 - "$WORK/watch.log" <<'PY' || fail "watch log is not JSON lines"
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    j = json.loads(line)
    assert set(j) == {"ts", "level", "msg", "fields"}, (n, j)
PY

# --dry-run: decides, logs, never acts.
bs deploy webui v2
expect_rc 1 "deploy webui v2 (unhealthy)"
mv "$WORK/watch.log" "$WORK/watch-1.log"  # kept for reading after a failure
start_watch --dry-run
wait_for 20 log_has '"decision: would roll back"' || fail "no dry-run decision"
expect_eq "$(service_version "$WEBUI_PORT")" v2 "dry run: webui still on v2"
stop_watch
log_has '"trigger state restored"' || fail "the saved trigger state was not reloaded"

# Safety gates, persisted across restarts: orchestrator was rolled back
# moments ago (cooldown, 10m by default); one automatic rollback this hour
# already reaches --max-per-hour 1.
bs deploy orchestrator v2
expect_rc 1 "deploy orchestrator v2 again"
mv "$WORK/watch.log" "$WORK/watch-2.log"
start_watch --max-per-hour 1
wait_for 20 log_has 'cap reached: 1 automatic rollbacks in the last hour' || fail "no cap hold"
wait_for 20 log_has 'cooldown: orchestrator was rolled back' || fail "no cooldown hold"
stop_watch
expect_eq "$(service_version "$WEBUI_PORT")" v2 "cap: webui still on v2"
expect_eq "$(service_version "$ORCH_PORT")" v2 "cooldown: orchestrator still on v2"

# With room under the cap, webui is rolled back; orchestrator stays held by its cooldown.
mv "$WORK/watch.log" "$WORK/watch-3.log"
start_watch --max-per-hour 5
webui_back() { [[ "$(service_version "$WEBUI_PORT")" == v1 ]]; }
wait_for 60 webui_back || fail "webui not rolled back; log: $(tail -n 20 "$WORK/watch.log")"
wait_for 20 log_has 'cooldown: orchestrator was rolled back' || fail "no cooldown hold"
stop_watch
expect_eq "$(service_version "$ORCH_PORT")" v2 "cooldown: orchestrator still on v2"

bs watch resume
expect_rc 0 "watch resume"
bs watch --once
expect_rc 1 "watch --once with orchestrator unhealthy"
expect_contains "$OUT" "NOT healthy"
