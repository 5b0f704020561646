# Shared helpers for Backstop's black-box tests: each test is a bash script
# that runs the real binaries in a fresh temporary directory and cleans up
# every process it started, whatever happens.
#
# Environment (set by CTest, see cmake/BackstopTest.cmake):
#   BACKSTOP_BIN, DEMO_SERVICE_BIN, BACKSTOP_SOURCE_DIR, BACKSTOP_BUILD_DIR
set -euo pipefail

: "${BACKSTOP_BIN:?run through ctest, or set BACKSTOP_BIN}"
: "${DEMO_SERVICE_BIN:?run through ctest, or set DEMO_SERVICE_BIN}"

TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/backstop-${TEST_NAME}-XXXXXX")
chmod 755 "$WORK"
CLEANUP_CMDS=()
FAILURES=0

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }
fail() {
  printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
  FAILURES=$((FAILURES + 1))
}
die() {
  printf '[%s] FATAL: %s\n' "$TEST_NAME" "$*" >&2
  exit 1
}

on_exit() {
  local rc=$?
  local i
  for ((i = ${#CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
    eval "${CLEANUP_CMDS[$i]}" >/dev/null 2>&1 || true
  done
  # Any service a test started through Backstop: its pid is in a process.json.
  if [[ -d "$WORK" ]]; then
    while IFS= read -r f; do
      local pid
      pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$f" | head -n1)
      [[ -n "$pid" ]] && kill -9 -- "-$pid" "$pid" 2>/dev/null || true
    done < <(find "$WORK" -name process.json 2>/dev/null)
  fi
  if ((rc == 0 && FAILURES > 0)); then rc=1; fi
  if ((rc == 0)); then
    [[ -n "${BACKSTOP_KEEP_TEST_DIRS:-}" ]] || rm -rf "$WORK"
    log "PASS"
  else
    log "failed (exit $rc); files kept in $WORK"
  fi
  exit "$rc"
}
trap on_exit EXIT

at_exit() { CLEANUP_CMDS+=("$*"); }

source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/ports.sh"

# A free TCP port on 127.0.0.1, reserved for this test.
free_port() { pick_port || die "no free port found"; }

# Runs a command, recording its exit code in $RC and its output in $OUT / $ERR.
run() {
  set +e
  "$@" >"$WORK/.out" 2>"$WORK/.err"
  RC=$?
  set -e
  OUT=$(cat "$WORK/.out")
  ERR=$(cat "$WORK/.err")
}

bs() { run "$BACKSTOP_BIN" --spec "$SPEC" "$@"; }

# killed_by_hook VAR VALUE WHAT ARGS...: runs `backstop ARGS` with the test
# hook VAR=VALUE. When the hook killed it (exit 137), sets CRASH_RUN_ID to its
# run and returns 0; otherwise records a failure naming WHAT, shows the output
# and returns 1 (callers `|| continue`).
killed_by_hook() {
  local var=$1 value=$2 what=$3 rc
  shift 3
  set +e
  env "$var=$value" "$BACKSTOP_BIN" --spec "$SPEC" "$@" >"$WORK/crash.out" 2>&1
  rc=$?
  set -e
  if [[ $rc != 137 ]]; then
    fail "$what: expected the run to be killed (137), got $rc"
    sed 's/^/    | /' "$WORK/crash.out" >&2
    return 1
  fi
  CRASH_RUN_ID=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' "$WORK/crash.out" | head -n1 || true)  # none for a command that is not a run
}

# crash_at AT ARGS...: kills `backstop ARGS` after a step ("N", or
# "N:before-done": after it acted, before the journal says so).
crash_at() {
  local at=$1
  shift
  killed_by_hook BACKSTOP_CRASH_AT_STEP_FOR_TEST "$at" "crash at step $at" "$@"
}

# crash_in POINT ARGS...: kills `backstop ARGS` at a named crash point inside
# a step (src/base/crash_point.h: "NAME" or "NAME#N").
crash_in() {
  local point=$1
  shift
  killed_by_hook BACKSTOP_CRASH_POINT_FOR_TEST "$point" "crash in $point" "$@"
}

# crash_points_reached FILE ARGS...: runs `backstop ARGS` uninterrupted while
# logging every crash point it passes into FILE (one name a line, repeats kept).
crash_points_reached() {
  local file=$1
  shift
  : >"$file"
  BACKSTOP_CRASH_POINTS_LOG_FOR_TEST=$file bs "$@"
}

expect_rc() {
  local want=$1
  shift
  if [[ "$RC" != "$want" ]]; then
    fail "$* : exit $RC, expected $want"
    printf '%s\n--- stderr ---\n%s\n' "$OUT" "$ERR" | sed 's/^/    | /' >&2
  fi
}

expect_contains() {
  local haystack=$1 needle=$2 what=${3:-output}
  if [[ "$haystack" != *"$needle"* ]]; then
    fail "$what does not contain '$needle'"
    printf '%s\n' "$haystack" | sed 's/^/    | /' >&2
  fi
}

expect_eq() {
  if [[ "$1" != "$2" ]]; then fail "${3:-value}: got '$1', expected '$2'"; fi
}

# Waits until `cmd` succeeds (up to $1 seconds).
wait_for() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.05
  done
}

http_get() { curl -fsS --max-time 5 --noproxy '*' "$1"; }

# The release a demo service on 127.0.0.1:PORT reports.
service_version() {
  http_get "http://127.0.0.1:$1/version" | tr -d '\n' | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p'
}

# make_release ROOT ROLE VERSION HEALTHY [START_DELAY_MS]
# Writes ROOT/releases/VERSION as a demo-service release.
make_release() {
  local root=$1 role=$2 version=$3 healthy=$4 delay=${5:-0}
  "$DEMO_SERVICE_BIN" make-release --role "$role" --version "$version" --healthy "$healthy" \
    --dir "$root/releases/$version" >/dev/null
  if [[ "$delay" != 0 ]]; then
    cat >"$root/releases/$version/release.json" <<JSON
{"role": "$role", "version": "$version", "healthy": $healthy, "error_rate": 0.0,
 "ignore_sigterm": false, "start_delay_ms": $delay}
JSON
  fi
}

# write_services_spec [START_DELAY_MS] [START_PERIOD]: two demo services (orchestrator <- webui) and a config
# file, in a non-protected environment. Sets SPEC, ORCH_PORT, WEBUI_PORT.
write_services_spec() {
  local delay=${1:-0} start_period=${2:-4s}
  ORCH_PORT=$(free_port)
  WEBUI_PORT=$(free_port)
  for v in v1 v2; do
    local healthy=true
    [[ $v == v2 ]] && healthy=false
    make_release "$WORK/orchestrator" orchestrator "$v" "$healthy" "$delay"
    make_release "$WORK/webui" webui "$v" "$healthy" "$delay"
  done
  mkdir -p "$WORK/etc"
  echo '{"mode": "v1"}' >"$WORK/etc/app.json"
  SPEC="$WORK/backstop.yaml"
  cat >"$SPEC" <<YAML
environment: test
components:
  config:
    kind: config
    driver: files
    files: [etc/app.json]
  orchestrator:
    kind: service
    driver: process
    releases: orchestrator/releases
    command: [bin/orchestrator]
    env: { PORT: "$ORCH_PORT" }
    stop_timeout: 5s
    health: { http: "http://127.0.0.1:$ORCH_PORT/health", interval: 1s, timeout: 1s, retries: 3, start_period: $start_period }
    depends_on: [config]
  webui:
    kind: service
    driver: process
    releases: webui/releases
    command: [bin/webui]
    env: { PORT: "$WEBUI_PORT" }
    stop_timeout: 5s
    health: { http: "http://127.0.0.1:$WEBUI_PORT/health", interval: 1s, timeout: 1s, retries: 3, start_period: $start_period }
    depends_on: [orchestrator]
YAML
}

# start_mistersmith: the example environment (PostgreSQL, nats-server, the demo
# services' releases) in $WORK from examples/mistersmith, torn down at exit.
# Sets SPEC, DEMO_SERVICE and DEMO_SEED (and what setup_mistersmith sets: DB,
# PGPORT, NATS_URL, ...). Export BACKSTOP_ENVIRONMENT and the spec's other
# variables before calling it.
start_mistersmith() {
  source "$BACKSTOP_SOURCE_DIR/scripts/lib/servers.sh"
  source "$BACKSTOP_SOURCE_DIR/scripts/lib/mistersmith.sh"
  DEMO_SERVICE=$DEMO_SERVICE_BIN
  DEMO_SEED=$(dirname "$DEMO_SERVICE_BIN")/demo-seed
  SPEC="$BACKSTOP_SOURCE_DIR/examples/mistersmith/backstop.yaml"
  setup_mistersmith "$WORK" >"$WORK/setup.log"
  at_exit teardown_mistersmith "$WORK" "$SPEC" "$BACKSTOP_BIN"
}

# py CODE ARGS...: a short Python check over JSON the test reads.
py() { python3 -c "$1" "${@:2}"; }

# start_drill_environment: the example environment for the drill tests, with
# both services deployed on v1. Sets STATE. drill_id prints the id of the drill
# that $OUT names.
start_drill_environment() {
  start_mistersmith
  STATE="$BACKSTOP_STATE_DIR"
  bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
  bs deploy webui v1; expect_rc 0 "deploy webui v1"
}
drill_id() { grep -o 'Drill [0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1 | cut -d' ' -f2; }
