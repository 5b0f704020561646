#!/usr/bin/env bash
# bench/traffic_rollback: requests failed during a deploy and a rollback of a
# service behind nginx, blue/green against stop-then-start, in one run.
#
#   bench/traffic_rollback/run.sh [BUILD_DIR]        (root; RATE=200 ROUNDS=3 by default)
#
# One real nginx fronts two services built from the same releases (v1 and v2
# of the demo's web UI, both healthy): `app`, blue/green behind the upstream
# Backstop routes, and `plain`, an ordinary process service behind a fixed
# upstream, which a deploy or rollback stops before it starts the other
# release. traffic-load sends RATE requests per second through nginx for the
# whole of each operation (from 0.3 s before to 0.3 s after) and counts every
# answer that is not a 2xx and every connection error; the longest gap between
# two good answers is what a user saw as an outage. For blue/green the switch
# itself (the run's `switch` step: validated reload, new workers confirmed) is
# timed from the run's journal. Targets (issue 10): blue/green zero failed
# requests, switch under 100 ms.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
RATE=${RATE:-200}
ROUNDS=${ROUNDS:-3}
BACKSTOP="$build/backstop"
LOAD="$build/bench/traffic-load"
DEMO_SERVICE="$build/examples/mistersmith/demo/demo-service"
for b in "$BACKSTOP" "$LOAD" "$DEMO_SERVICE"; do
  [[ -x "$b" ]] || { echo "build first: $b is missing" >&2; exit 2; }
done
source "$root/scripts/lib/servers.sh"

WORK=$(mktemp -d /tmp/backstop-bench-traffic-XXXXXX)
chmod 755 "$WORK"
mapfile -t P < <(pick_ports 5)
FRONT_APP=${P[0]} FRONT_PLAIN=${P[1]} BLUE=${P[2]} GREEN=${P[3]} PLAIN=${P[4]}
SPEC="$WORK/backstop.yaml"
bs() { "$BACKSTOP" --spec "$SPEC" "$@"; }
cleanup() {
  bs stop --all >/dev/null 2>&1 || true
  stop_nginx "$WORK/nginx"
  [[ -n "${KEEP:-}" ]] && echo "files kept in $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

for role in app plain; do
  for v in v1 v2; do
    "$DEMO_SERVICE" make-release --role webui --version "$v" --healthy true \
      --dir "$WORK/$role/releases/$v" >/dev/null
  done
done

mkdir -p "$WORK/nginx/sites" "$WORK/nginx/upstreams"
chmod 700 "$WORK/nginx/upstreams"
cat >"$WORK/nginx/sites/site.conf" <<CONF
upstream plain { server 127.0.0.1:$PLAIN; }
server {
  listen 127.0.0.1:$FRONT_APP;
  location / { proxy_pass http://app; }
}
server {
  listen 127.0.0.1:$FRONT_PLAIN;
  location / { proxy_pass http://plain; }
}
CONF
# Until Backstop routes `app` the first time, it points at the blue port.
printf 'upstream app {\n  server 127.0.0.1:%s;\n}\n' "$BLUE" >"$WORK/nginx/upstreams/app.conf"
start_nginx "$WORK/nginx"

cat >"$SPEC" <<YAML
environment: bench-traffic
state_dir: $WORK/state
components:
  web:
    kind: traffic
    driver: nginx
    site: $WORK/nginx/sites/site.conf
    main_config: $WORK/nginx/nginx.conf
    pid_file: $WORK/nginx/nginx.pid
    prefix: $WORK/nginx
    error_log: $WORK/nginx/error.log
    upstreams: $WORK/nginx/upstreams
  app:
    kind: service
    driver: process
    releases: $WORK/app/releases
    current: $WORK/app/current
    command: [bin/webui]
    env: { PORT: "{port}" }
    stop_timeout: 5s
    health: { http: "http://127.0.0.1:{port}/health", interval: 1s, timeout: 1s, start_period: 10s }
    traffic: { component: web, strategy: blue_green, ports: [$BLUE, $GREEN], keep_previous: 10m }
  plain:
    kind: service
    driver: process
    releases: $WORK/plain/releases
    current: $WORK/plain/current
    command: [bin/webui]
    env: { PORT: "$PLAIN" }
    stop_timeout: 5s
    health: { http: "http://127.0.0.1:$PLAIN/health", interval: 1s, timeout: 1s, start_period: 10s }
YAML
bs check >/dev/null
bs deploy app v1 >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; exit 1; }
bs deploy plain v1 >>"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; exit 1; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# under_load FRONT_PORT NAME COMMAND...: COMMAND under traffic-load; prints
# "took_ms requests failed longest_gap_ms first_error".
under_load() {
  local port=$1 name=$2
  shift 2
  "$LOAD" --url "http://127.0.0.1:$port/version" --rate "$RATE" >"$WORK/$name.load" &
  local load=$!
  sleep 0.3
  local t0 t1
  t0=$(now_ms)
  "$@" >"$WORK/$name.log" 2>&1 || { echo "$name failed:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
  t1=$(now_ms)
  sleep 0.3
  kill -TERM "$load"
  wait "$load"
  python3 - "$WORK/$name.load" "$((t1 - t0))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[2], r["requests"], r["failed"], round(r["longest_gap_ms"]), r["first_error"] or "-")
PY
}
# The newest run's switch step: "<step_ms>/<route_ms>" ("-" when it has none).
# route_ms is the validated reload, from writing the upstream to nginx's new
# workers serving; the rest of the step is Backstop's bookkeeping after it.
switch_ms() {
  python3 - "$WORK/state/state.db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("""SELECT s.started_us, s.ended_us, s.result FROM steps s JOIN runs r ON r.id = s.run_id
                    WHERE s.action = 'switch' ORDER BY r.started_us DESC LIMIT 1""").fetchone()
if not row:
    print("-")
else:
    route = json.loads(row[2] or "null") or {}
    print("%d/%s" % ((row[1] - row[0]) // 1000, round(route["route_ms"]) if "route_ms" in route else "-"))
PY
}

printf '%-26s %6s %9s %7s %8s %9s  %s\n' "operation" "round" "took_ms" "reqs" "failed" "gap_ms" "switch_ms (step/route)  first error"
row() {  # LABEL ROUND RESULT SWITCH
  local label=$1 round=$2 switch=$4
  read -r took reqs failed gap err <<<"$3"
  printf '%-26s %6s %9s %7s %8s %9s  %-22s  %s\n' "$label" "$round" "$took" "$reqs" "$failed" "$gap" "$switch" "$err"
}
for round in $(seq 1 "$ROUNDS"); do
  r=$(under_load "$FRONT_APP" "bg-deploy-$round" bs deploy app v2)
  row "blue/green deploy v2" "$round" "$r" "$(switch_ms)"
  r=$(under_load "$FRONT_APP" "bg-rollback-$round" bs rollback --component app --to v1)
  row "blue/green rollback v1" "$round" "$r" "$(switch_ms)"
  r=$(under_load "$FRONT_PLAIN" "ss-deploy-$round" bs deploy plain v2)
  row "stop-start deploy v2" "$round" "$r" "-"
  r=$(under_load "$FRONT_PLAIN" "ss-rollback-$round" bs rollback --component plain --to v1)
  row "stop-start rollback v1" "$round" "$r" "-"
done
echo "rate $RATE requests/s through nginx, 4 keep-alive connections; failed = non-2xx + connection errors"
