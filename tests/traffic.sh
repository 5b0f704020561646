#!/usr/bin/env bash
# The nginx driver (kind traffic) end to end, the real binary against a real
# nginx: `check` names bad settings with their position; a rollback of the
# site puts the recorded one back with a graceful reload while a request loop
# sees no failure; a restore point whose site fails `nginx -t` is refused with
# nginx's message and nginx keeps serving; a kill at each of the driver's
# crash points, then --resume, ends as the uninterrupted rollback did.
source "$(dirname "$0")/lib.sh"
source "$BACKSTOP_SOURCE_DIR/scripts/lib/servers.sh"

NGX="$WORK/nginx"
PORT=$(free_port)
SITE="$NGX/sites/site.conf"
URL="http://127.0.0.1:$PORT/"

# site_answering BODY: the site config answering every GET with BODY.
site_answering() {
  printf 'server {\n  listen 127.0.0.1:%s;\n  location / { return 200 "%s\\n"; }\n}\n' "$PORT" "$1"
}
served() { curl -sS --max-time 5 --noproxy '*' "$URL" 2>&1 || true; }
# deploy_site BODY: what an operator's deploy does: a new site, then a reload.
deploy_site() {
  site_answering "$1" >"$SITE"
  kill -HUP "$(cat "$NGX/nginx.pid")"
  wait_for 10 bash -c "[[ \$(curl -s --noproxy '*' '$URL') == '$1' ]]" || die "nginx never served $1"
  # Until the old workers have exited, one that has not yet closed its
  # listening socket may still answer with the old site.
  wait_for 10 bash -c "! pgrep -P $(cat "$NGX/nginx.pid") -f 'shutting down' >/dev/null" ||
    die "nginx's old workers never exited after the reload"
}

mkdir -p "$NGX/sites"
site_answering v1 >"$SITE"
start_nginx "$NGX" || die "nginx did not start"
at_exit stop_nginx "$NGX"
expect_eq "$(served)" v1 "first site"

SPEC="$WORK/backstop.yaml"
cat >"$SPEC" <<YAML
environment: test
components:
  web:
    kind: traffic
    driver: nginx
    site: nginx/sites/site.conf
    main_config: nginx/nginx.conf
    pid_file: nginx/nginx.pid
    prefix: nginx/
    error_log: nginx/error.log
    health: { http: "$URL", interval: 1s, timeout: 1s }
YAML

# check: the driver is registered, its settings are validated with positions.
bs check; expect_rc 0 check
BAD="$WORK/bad.yaml"
sed -e 's/^    site: .*$//' -e 's/^    pid_file: .*$/    reload_timeout: soon/' "$SPEC" >"$BAD"
run "$BACKSTOP_BIN" --spec "$BAD" check
expect_rc 2 "check of a spec with bad nginx settings"
expect_contains "$ERR" "bad.yaml:3:3: components.web.site: missing required setting 'site'"
expect_contains "$ERR" "components.web.pid_file: missing required setting 'pid_file'"
expect_contains "$ERR" "bad.yaml:8:21: components.web.reload_timeout: bad duration 'soon'"

bs snapshot --label good; expect_rc 0 "snapshot"

# A request loop: one line per request, its HTTP status (000: no answer).
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

# Rollback under load: the recorded site is served again, no request failed.
deploy_site v2
start_request_loop
bs rollback --component web --to good
expect_rc 0 "rollback of the site"
failed=$(stop_request_loop)
expect_eq "$(served)" v1 "served after the rollback"
expect_eq "$failed" 0 "failed requests among $(wc -l <"$LOOP_LOG") during the rollback"
expect_eq "$(cat "$SITE")" "$(site_answering v1)" "site file after the rollback"

# A restore point whose site fails nginx -t: refused with nginx's words,
# the running site stays in place and keeps serving.
printf 'server {\n  listen 127.0.0.1:%s;\n  no_such_directive on;\n}\n' "$PORT" >"$SITE"
bs snapshot --label broken; expect_rc 0 "snapshot of a broken site"
deploy_site v3
bs rollback --component web --to broken
[[ $RC != 0 ]] || fail "a rollback to a site failing nginx -t succeeded"
expect_contains "$OUT$ERR" 'unknown directive "no_such_directive"' "the refusal"
expect_contains "$OUT$ERR" "fails nginx -t"
expect_eq "$(served)" v3 "served after the refused rollback"
expect_eq "$(cat "$SITE")" "$(site_answering v3)" "site file after the refused rollback"

# The crash sweep of the driver: a kill at each crash point the rollback
# passes, then --resume, ends as the uninterrupted rollback did.
leftovers() { ls -A "$NGX/sites" "$BACKSTOP_STATE/components/web" 2>/dev/null || true; }
BACKSTOP_STATE="$WORK/.backstop"
deploy_site v4
crash_points_reached "$WORK/points.log" rollback --component web --to good
expect_rc 0 "uninterrupted rollback"
base="$(served)|$(cat "$SITE")|$(leftovers)"
mapfile -t points < <(grep '^nginx\.' "$WORK/points.log" | awk '!seen[$0]++')
expect_eq "${points[*]}" "nginx.after-stage nginx.after-swap nginx.before-reload" "nginx crash points reached"
for point in "${points[@]}"; do
  deploy_site v4
  crash_in "$point" rollback --component web --to good || continue
  [[ -n "$CRASH_RUN_ID" ]] || { fail "no run id before the kill at $point"; continue; }
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at $point"
  expect_eq "$(served)|$(cat "$SITE")|$(leftovers)" "$base" "state after a kill at $point and --resume"
  kill -0 "$(cat "$NGX/nginx.pid")" || fail "nginx died after a kill at $point"
done
