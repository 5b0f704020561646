#!/usr/bin/env bash
# The gRPC health probe against a real gRPC service: the demo orchestrator
# serves grpc.health.v1 (grpc++'s standard implementation) on its own port,
# and the spec checks it with `health: {grpc: 127.0.0.1:PORT}`, like the
# seed's grpc_health_probe. Its health is flipped at run time (POST
# /admin/health, SIGUSR1) and `backstop verify` must follow.
source "$(dirname "$0")/lib.sh"

HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
make_release "$WORK/orchestrator" orchestrator v1 true
make_release "$WORK/orchestrator" orchestrator v2 false
SPEC="$WORK/backstop.yaml"
cat >"$SPEC" <<YAML
environment: test
components:
  orchestrator:
    kind: service
    driver: process
    releases: orchestrator/releases
    command: [bin/orchestrator]
    env: { PORT: "$HTTP_PORT", GRPC_PORT: "$GRPC_PORT" }
    stop_timeout: 5s
    health: { grpc: "127.0.0.1:$GRPC_PORT", interval: 1s, timeout: 1s, retries: 3, start_period: 3s }
YAML

set_health() {  # set_health true|false: through the demo's admin endpoint
  curl -fsS --max-time 5 --noproxy '*' -X POST -d "{\"healthy\": $1}" \
    "http://127.0.0.1:$HTTP_PORT/admin/health" >/dev/null
}
http_health_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --noproxy '*' "http://127.0.0.1:$HTTP_PORT/health"
}

bs check
expect_rc 0 check

log "deploy v1: the start gate asks the gRPC health service"
bs deploy orchestrator v1
expect_rc 0 "deploy orchestrator v1"
expect_eq "$(service_version "$HTTP_PORT")" v1 "orchestrator version"

bs verify
expect_rc 0 "verify while SERVING"
expect_contains "$OUT" "SERVING in"
expect_contains "$OUT" "grpc 127.0.0.1:$GRPC_PORT"

log "health switched off at run time: NOT_SERVING"
set_health false || fail "POST /admin/health"
expect_eq "$(http_health_code)" 503 "HTTP /health follows the same flag"
bs verify
expect_rc 1 "verify while NOT_SERVING"
expect_contains "$OUT" "NOT_SERVING"
bs verify --output json
expect_rc 1 "verify --output json while NOT_SERVING"
expect_contains "$OUT" "NOT_SERVING"

log "and back on (SIGUSR1 toggles)"
pid=$(http_get "http://127.0.0.1:$HTTP_PORT/version" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
[[ -n "$pid" ]] || die "no pid from /version"
kill -USR1 "$pid"
wait_for 10 bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' \
  http://127.0.0.1:$HTTP_PORT/health) == 200 ]]" || fail "SIGUSR1 did not turn the health back on"
bs verify
expect_rc 0 "verify after the health is back"
expect_contains "$OUT" "SERVING in"

log "an unhealthy release fails the gRPC start gate"
bs deploy orchestrator v2
expect_rc 1 "deploy orchestrator v2 (NOT_SERVING)"
expect_contains "$OUT$ERR" "NOT_SERVING"
bs rollback --component orchestrator
expect_rc 0 "rollback --component orchestrator"
bs verify
expect_rc 0 "verify after the rollback"
expect_eq "$(service_version "$HTTP_PORT")" v1 "orchestrator version after the rollback"

log "nothing listening: unavailable"
bs stop --all
expect_rc 0 "stop --all"
bs verify
expect_rc 1 "verify with the service stopped"
expect_contains "$OUT" "unavailable"
