#!/usr/bin/env bash
# `backstop fallback` (seed 5.3) against a real nginx, a primary and a
# standby HTTP server: a standby failing its health check is refused and the
# primary keeps serving; a fallback switches under a request loop with no
# failed request, shows in `status` and is notified; --back refuses an
# unhealthy primary, then returns; a protected environment needs --confirm;
# a kill inside the route is completed by the same command run again;
# and `backstop watch` falls back by itself when a rule mapped to the
# decision matrix's fallback scope fires (with no restore point taken: a
# fallback needs none).
source "$(dirname "$0")/lib.sh"
source "$BACKSTOP_SOURCE_DIR/scripts/lib/servers.sh"

NGX="$WORK/nginx"
PORT=$(free_port)
PRIMARY_PORT=$(free_port)
STANDBY_PORT=$(free_port)
URL="http://127.0.0.1:$PORT/"

# serve NAME PORT: a small HTTP server answering NAME, in the background.
serve() {
  mkdir -p "$WORK/$1"
  echo "$1" >"$WORK/$1/index.html"
  python3 -m http.server "$2" --bind 127.0.0.1 --directory "$WORK/$1" >"$WORK/$1.log" 2>&1 &
  echo $! >"$WORK/$1.pid"
  wait_for 10 http_get "http://127.0.0.1:$2/" || die "$1 did not start"
}
unserve() {
  [[ -s "$WORK/$1.pid" ]] || return 0
  kill "$(cat "$WORK/$1.pid")" 2>/dev/null || true
  while kill -0 "$(cat "$WORK/$1.pid")" 2>/dev/null; do sleep 0.05; done
  rm -f "$WORK/$1.pid"
}
served() { curl -sS --max-time 5 --noproxy '*' "$URL" 2>&1 || true; }
routed() { grep -o 'server [^;]*' "$NGX/upstreams/app.conf" | cut -d' ' -f2 | tr '\n' ' '; }

serve primary "$PRIMARY_PORT"
at_exit unserve primary
at_exit unserve standby
mkdir -p "$NGX/sites" "$NGX/upstreams"
chmod 700 "$NGX/upstreams"
# The upstream as Backstop writes it (a first blue/green deploy would have).
printf 'upstream app {\n  server 127.0.0.1:%s;\n}\n' "$PRIMARY_PORT" >"$NGX/upstreams/app.conf"
chmod 600 "$NGX/upstreams/app.conf"
printf 'server {\n  listen 127.0.0.1:%s;\n  location / { proxy_pass http://app; }\n}\n' "$PORT" \
  >"$NGX/sites/site.conf"
start_nginx "$NGX" || die "nginx did not start"
at_exit stop_nginx "$NGX"
expect_eq "$(served)" primary "first answer"

# write_spec PROTECTED: the environment, its fallback, a rule mapped to the fallback scope.
write_spec() {
  cat <<YAML
environment: test
protected: $1
components:
  web:
    kind: traffic
    driver: nginx
    site: nginx/sites/site.conf
    main_config: nginx/nginx.conf
    pid_file: nginx/nginx.pid
    prefix: nginx/
    error_log: nginx/error.log
    upstreams: nginx/upstreams
    health: { http: "$URL", interval: 500ms, timeout: 500ms, retries: 1, start_period: 1s }
fallback:
  traffic: web
  upstream: app
  upstreams: [127.0.0.1:$STANDBY_PORT]
  health: { http: "http://127.0.0.1:$STANDBY_PORT/", timeout: 1s }
triggers:
  - name: site_down
    component: web
    signal: health
    consecutive: 2
    action: immediate_rollback
decision_matrix:
  - scenario: Site down
    triggers: [site_down]
    scope: fallback
    procedure: send the site to the standby environment
    recovery_time: 1m
notify:
  - name: record
    type: command
    command: [sh, -c, "cat >>$WORK/notified.jsonl"]
YAML
}
SPEC="$WORK/backstop.yaml"
write_spec false >"$SPEC"
bs check; [[ $RC == 0 ]] || die "check: $ERR"

# The standby is down: refused, nothing changes.
bs fallback
expect_rc 3 "fallback to a standby that is down"
expect_contains "$OUT$ERR" "failed its health check"
expect_contains "$OUT$ERR" "stays on 127.0.0.1:$PRIMARY_PORT"
expect_eq "$(served)" primary "served after the refused fallback"
expect_eq "$(routed)" "127.0.0.1:$PRIMARY_PORT " "routing after the refused fallback"

serve standby "$STANDBY_PORT"
bs fallback --dry-run
expect_rc 0 "fallback --dry-run"
expect_contains "$OUT" "would switch app of web from 127.0.0.1:$PRIMARY_PORT to the standby"
expect_eq "$(served)" primary "served after the dry run"

# A protected environment: nothing without --confirm.
write_spec true >"$WORK/protected.yaml"
run "$BACKSTOP_BIN" --spec "$WORK/protected.yaml" fallback
expect_rc 3 "fallback in a protected environment without --confirm"
expect_contains "$ERR" "rerun with --confirm"
expect_eq "$(served)" primary "served after the unconfirmed fallback"

# The fallback, under a request loop: no failed request.
LOOP_LOG="$WORK/requests.log"
: >"$LOOP_LOG"
(while [[ ! -e "$WORK/stop-loop" ]]; do
  curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 --noproxy '*' "$URL" >>"$LOOP_LOG" || true
done) &
LOOP_PID=$!
wait_for 10 test -s "$LOOP_LOG" || die "the request loop made no request"
bs --output json fallback
expect_rc 0 "fallback"
n=$(wc -l <"$LOOP_LOG")
wait_for 10 test "$(wc -l <"$LOOP_LOG")" -gt $((n + 5)) || true
touch "$WORK/stop-loop"
wait "$LOOP_PID" || true
expect_eq "$(grep -vc '^200$' "$LOOP_LOG" || true)" 0 "failed requests among $(wc -l <"$LOOP_LOG")"
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(d["changed"], d["fallback"]["state"])' <<<"$OUT")" \
  "True active" "fallback --output json"
expect_eq "$(served)" standby "served after the fallback"
bs status
expect_contains "$OUT" "FALLBACK ACTIVE since"
expect_contains "$OUT" "goes to the standby 127.0.0.1:$STANDBY_PORT"
grep -q '"fallback.switched"' "$WORK/notified.jsonl" 2>/dev/null || fail "no fallback.switched notification"
bs fallback
expect_rc 0 "a second fallback"
expect_contains "$OUT" "already fallen back"

# --back checks the recorded servers first.
unserve primary
bs fallback --back
expect_rc 3 "--back to a primary that is down"
expect_contains "$OUT$ERR" "traffic stays on the standby"
expect_eq "$(served)" standby "served after the refused return"
grep -q '"fallback.refused"' "$WORK/notified.jsonl" 2>/dev/null || fail "no fallback.refused notification"
serve primary "$PRIMARY_PORT"
bs fallback --back
expect_rc 0 "--back"
expect_eq "$(served)" primary "served after --back"
bs status
[[ "$OUT" != *FALLBACK* ]] || fail "status still shows a fallback after --back: $OUT"
grep -q '"fallback.returned"' "$WORK/notified.jsonl" 2>/dev/null || fail "no fallback.returned notification"

# A kill inside the route, then the same command again: it completes.
crash_in nginx.after-swap fallback || true
bs status
expect_contains "$OUT" "FALLBACK INTERRUPTED"
expect_eq "$(served)" primary "served after a kill before nginx -t"
bs fallback
expect_rc 0 "fallback after a kill inside the route"
expect_eq "$(served)" standby "served after the completed fallback"
crash_in nginx.before-reload fallback --back || true
bs fallback --back
expect_rc 0 "--back after a kill before the reload"
expect_eq "$(served)" primary "served after the completed return"
expect_eq "$(routed)" "127.0.0.1:$PRIMARY_PORT " "routing after the completed return"
[[ -z "$(ls -A "$WORK/.backstop/components/web" 2>/dev/null)" ]] ||
  fail "the driver's journal is left: $(ls -A "$WORK/.backstop/components/web")"

# The watch: the primary dies, the site fails its health check, site_down
# fires, its decision matrix row has scope fallback: the watch falls back.
"$BACKSTOP_BIN" --spec "$SPEC" watch --listen off --duration 60s >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit kill "$WATCH_PID"
wait_for 10 grep -q 'site_down' "$WORK/watch.log" || true
unserve primary
wait_for 30 bash -c "[[ \$(curl -s --noproxy '*' '$URL') == standby ]]" ||
  fail "the watch did not fall back: $(tail -n 20 "$WORK/watch.log")"
wait_for 10 grep -q 'fell back' "$WORK/watch.log" || fail "the watch's log does not say it fell back"
kill "$WATCH_PID" 2>/dev/null || true
wait "$WATCH_PID" 2>/dev/null || true
bs status
expect_contains "$OUT" "FALLBACK ACTIVE since"
expect_contains "$OUT" "trigger:site_down"
