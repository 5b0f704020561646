#!/usr/bin/env bash
# Blue/green services end to end: the real binary, a real nginx routing an
# upstream Backstop writes, and real demo-service processes in two slots.
# Deploys under a request loop fail no request; a rollback inside
# keep_previous is a switch back (the old process is not restarted, the
# rolled-away slot stops); after keep_previous it starts, switches and stops;
# a release failing its health check is never routed to; a kill at each
# crash point of the blue/green steps, then --resume, ends as the
# uninterrupted run did; `backstop watch` stops the previous slot once
# keep_previous ends.
source "$(dirname "$0")/lib.sh"
source "$BACKSTOP_SOURCE_DIR/scripts/lib/servers.sh"

NGX="$WORK/nginx"
PORT=$(free_port)
BLUE_PORT=$(free_port)
GREEN_PORT=$(free_port)
URL="http://127.0.0.1:$PORT/version"

for v in v1 v2 v4; do make_release "$WORK/webui" webui "$v" true; done
make_release "$WORK/webui" webui v3 false

start_nginx "$NGX" || die "nginx did not start"
at_exit stop_nginx "$NGX"

SPEC="$WORK/backstop.yaml"
# write_spec KEEP_PREVIOUS
write_spec() {
  cat >"$SPEC" <<YAML
environment: test
components:
  front:
    kind: traffic
    driver: nginx
    site: nginx/sites/site.conf
    main_config: nginx/nginx.conf
    pid_file: nginx/nginx.pid
    prefix: nginx/
    error_log: nginx/error.log
    upstreams: nginx/upstreams
  webui:
    kind: service
    driver: process
    releases: webui/releases
    command: [bin/webui]
    env: { PORT: "{port}" }
    stop_timeout: 5s
    health: { http: "http://127.0.0.1:{port}/health", interval: 500ms, timeout: 500ms, retries: 3, start_period: 4s }
    traffic: { component: front, strategy: blue_green, ports: [$BLUE_PORT, $GREEN_PORT], keep_previous: $1 }
YAML
}
write_spec 10m
bs check; [[ $RC == 0 ]] || die "check: $OUT $ERR"
at_exit "$BACKSTOP_BIN" --spec "$SPEC" stop --all

slot_pid() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$WORK/.backstop/components/webui/slot-$1.json" 2>/dev/null | head -n1; }
slot_up() { curl -s --max-time 2 --noproxy '*' -o /dev/null "http://127.0.0.1:$1/health"; }
served() { curl -s --max-time 5 --noproxy '*' "$URL" | tr -d '\n' | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p'; }
routed() { grep -o 'server [^;]*' "$NGX/upstreams/webui.conf" | cut -d' ' -f2 | tr '\n' ' '; }

# The first deploy writes the upstream; then the operator's site uses it.
bs deploy webui v1
expect_rc 0 "deploy v1"
expect_eq "$(routed)" "127.0.0.1:$BLUE_PORT " "routing after deploying v1"
expect_eq "$(stat -c %a "$NGX/upstreams")" 700 "mode of the upstreams directory"
printf 'server {\n  listen 127.0.0.1:%s;\n  location / { proxy_pass http://webui; }\n}\n' "$PORT" \
  >"$NGX/sites/site.conf"
kill -HUP "$(cat "$NGX/nginx.pid")"
wait_for 10 bash -c "curl -s --noproxy '*' '$URL' | grep -q v1" || die "nginx never served v1"

# A request loop through nginx: one line per request, its HTTP status.
LOOP_LOG="$WORK/requests.log"
start_request_loop() {
  : >"$LOOP_LOG"
  rm -f "$WORK/stop-loop"
  (while [[ ! -e "$WORK/stop-loop" ]]; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 --noproxy '*' "$URL" >>"$LOOP_LOG" || true
  done) &
  LOOP_PID=$!
  wait_for 10 test -s "$LOOP_LOG" || die "the request loop made no request"
}
# stop_request_loop: after a few more requests; prints how many failed.
stop_request_loop() {
  local n
  n=$(wc -l <"$LOOP_LOG")
  wait_for 10 test "$(wc -l <"$LOOP_LOG")" -gt $((n + 5)) || true
  touch "$WORK/stop-loop"
  wait "$LOOP_PID" || true
  grep -vc '^200$' "$LOOP_LOG" || true
}

# Deploy v2 under load: green starts, traffic switches, blue keeps running v1.
start_request_loop
bs deploy webui v2
expect_rc 0 "deploy v2"
failed=$(stop_request_loop)
expect_eq "$failed" 0 "failed requests among $(wc -l <"$LOOP_LOG") during the deploy of v2"
expect_eq "$(served)" v2 "served after deploying v2"
expect_eq "$(routed)" "127.0.0.1:$GREEN_PORT " "routing after deploying v2"
v1_pid=$(slot_pid blue)
[[ -n "$v1_pid" ]] && kill -0 "$v1_pid" || fail "v1 no longer runs in the blue slot"
# The switch step times the validated reload apart (bench/traffic_rollback reports it).
route_ms=$(sqlite3 "$WORK/.backstop/state.db" "SELECT json_extract(result, '$.route_ms') FROM steps WHERE action = 'switch' ORDER BY started_us DESC LIMIT 1")
py 'import sys; assert 0 < float(sys.argv[1]) < 60000, sys.argv[1]' "$route_ms" || fail "no route_ms in the switch step: $route_ms"

# status and history show both slots: release, port, running, live, kept until.
bs status
expect_rc 0 status
expect_contains "$OUT" "green  port $GREEN_PORT  release v2 (running"
expect_contains "$OUT" "LIVE"
expect_contains "$OUT" "blue   port $BLUE_PORT  release v1 (running, pid $v1_pid)  previous, kept until"
bs --output json status
expect_eq "$(py 'import json,sys
d=json.load(sys.stdin); w=[c for c in d["components"] if c["name"]=="webui"][0]["slots"]
print(w["live"], w["previous"], bool(w["keep_previous_until"]), [(s["slot"], s["release"], s["port"], s["running"], s["live"]) for s in w["slots"]])' <<<"$OUT")" \
  "green blue True [('blue', 'v1', $BLUE_PORT, True, False), ('green', 'v2', $GREEN_PORT, True, True)]" "status --output json slots"
bs history webui
expect_contains "$OUT" "Slots:"
expect_contains "$OUT" "green  port $GREEN_PORT  release v2 (running"
bs --output json history webui
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(d["slots"]["live"], len(d["slots"]["slots"]))' <<<"$OUT")" \
  "green 2" "history --output json slots"

# Rollback inside keep_previous: a switch back, v1 not restarted, green stopped.
bs plan rollback --component webui
expect_contains "$OUT" "switches traffic back"
start_request_loop
bs rollback --component webui
expect_rc 0 "rollback inside keep_previous"
failed=$(stop_request_loop)
expect_eq "$failed" 0 "failed requests among $(wc -l <"$LOOP_LOG") during the switch back"
expect_eq "$(served)" v1 "served after the switch back"
expect_eq "$(slot_pid blue)" "$v1_pid" "pid of v1 after the switch back"
! slot_up "$GREEN_PORT" || fail "the green slot still answers after the switch back"

# A release failing its health check: traffic never switched, v1 untouched.
bs deploy webui v3
expect_rc 1 "deploy of an unhealthy v3"
expect_contains "$OUT$ERR" "traffic was not switched"
expect_eq "$(served)" v1 "served after the failed deploy"
expect_eq "$(routed)" "127.0.0.1:$BLUE_PORT " "routing after the failed deploy"
expect_eq "$(slot_pid blue)" "$v1_pid" "pid of v1 after the failed deploy"
! slot_up "$GREEN_PORT" || fail "the unhealthy v3 was left running in the green slot"

# Rollback after keep_previous: start, switch, stop the other.
write_spec 1s
bs deploy webui v2
expect_rc 0 "deploy v2 again"
wait_for 10 bash -c "'$BACKSTOP_BIN' --spec '$SPEC' plan rollback --component webui --to v1 2>&1 | grep -q 'keep_previous ended'" ||
  fail "the rollback plan never said keep_previous ended"
bs plan rollback --component webui --to v1
expect_contains "$OUT" "start webui release v1"
start_request_loop
bs rollback --component webui --to v1
expect_rc 0 "rollback after keep_previous"
failed=$(stop_request_loop)
expect_eq "$failed" 0 "failed requests among $(wc -l <"$LOOP_LOG") during the rollback after keep_previous"
expect_eq "$(served)" v1 "served after the rollback after keep_previous"
! slot_up "$GREEN_PORT" || fail "the green slot still answers after the rollback after keep_previous"

# The crash sweep: a rollback after keep_previous passes every blue/green step.
state_now() { echo "$(served)|$(routed)|$(readlink "$WORK/webui/current")"; }
prepare_sweep() {
  bs deploy webui v4
  [[ $RC == 0 ]] || die "deploy v4 before the sweep: $OUT $ERR"
  wait_for 10 bash -c "'$BACKSTOP_BIN' --spec '$SPEC' plan rollback --component webui --to v1 2>&1 | grep -q 'keep_previous ended'" ||
    die "keep_previous never ended"
}
prepare_sweep
crash_points_reached "$WORK/points.log" rollback --component webui --to v1
expect_rc 0 "uninterrupted rollback for the sweep"
base=$(state_now)
mapfile -t points < <(grep -E '^(run\.(start-slot|switch|stop-slot)|nginx)\.' "$WORK/points.log" | awk '!seen[$0]++')
for want in run.start-slot.after-start run.switch.after-route run.switch.after-current \
  run.switch.after-state run.stop-slot.after-stop nginx.before-reload; do
  [[ " ${points[*]} " == *" $want "* ]] || fail "crash point $want not reached: ${points[*]}"
done
for point in "${points[@]}"; do
  prepare_sweep
  crash_in "$point" rollback --component webui --to v1 || continue
  [[ -n "$CRASH_RUN_ID" ]] || { fail "no run id before the kill at $point"; continue; }
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at $point"
  expect_eq "$(state_now)" "$base" "state after a kill at $point and --resume"
  ! slot_up "$GREEN_PORT" || fail "green still answers after a kill at $point and --resume"
done

# keep_previous ends while `backstop watch` runs: the daemon stops the
# previous slot, clears it from the record and journals slot.retired; a
# rollback then starts the release afresh.
write_spec 3s
bs deploy webui v2
expect_rc 0 "deploy v2 before the watch"
prev=$(bs --output json status >/dev/null; py 'import json,sys
d=json.loads(sys.argv[1]); print([c for c in d["components"] if c["name"]=="webui"][0]["slots"]["previous"])' "$OUT")
[[ $prev == blue || $prev == green ]] || die "no previous slot after deploying v2: $OUT"
prev_port=$BLUE_PORT
[[ $prev == green ]] && prev_port=$GREEN_PORT
slot_up "$prev_port" || fail "the previous slot ($prev) does not answer before keep_previous ends"
"$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID 2>/dev/null"
wait_for 30 grep -q "previous slot retired" "$WORK/watch.log" ||
  fail "the daemon did not retire the previous slot: $(tail -n 20 "$WORK/watch.log")"
wait_for 10 bash -c "! curl -s --max-time 1 --noproxy '*' -o /dev/null http://127.0.0.1:$prev_port/health" ||
  fail "the previous slot still answers after it was retired"
expect_eq "$(served)" v2 "served while the previous slot is retired"
kill -TERM "$WATCH_PID"; wait "$WATCH_PID" || true
bs --output json status
expect_eq "$(py 'import json,sys
d=json.loads(sys.argv[1]); print([c for c in d["components"] if c["name"]=="webui"][0]["slots"]["previous"])' "$OUT")" \
  None "previous slot in the status after it was retired"
expect_eq "$(sqlite3 "$WORK/.backstop/state.db" "SELECT COUNT(*) FROM events WHERE kind = 'slot.retired'")" 1 \
  "slot.retired events"
expect_contains "$(sqlite3 "$WORK/.backstop/state.db" "SELECT detail FROM events WHERE kind = 'slot.retired'")" \
  "\"release\":\"v1\"" "the retired release in the journal"
bs plan rollback --component webui --to v1
expect_contains "$OUT" "start webui release v1"
