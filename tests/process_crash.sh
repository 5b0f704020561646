#!/usr/bin/env bash
# No orphans, no impostors: a backstop killed inside "start orchestrator"
# (after the spawn, after the record, after the release) or inside a stop
# (between SIGTERM and the record's removal) leaves, after `--resume` or
# `stop --all`, exactly one process of the service on the right release (or
# none after a stop); a later deploy of a broken release fails; and a health
# gate answered by a process Backstop did not start fails, naming it.
source "$(dirname "$0")/lib.sh"
write_services_spec 0 2s
STATE_DIR=$WORK/.backstop

# The pids of every live process started for SERVICE of this environment,
# recorded or not (found by the environment Backstop gives its services).
service_pids() {
  local service=$1 f pid entries
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    entries=$(tr '\0' '\n' 2>/dev/null <"$f") || continue
    grep -qxF "BACKSTOP_COMPONENT=$service" <<<"$entries" || continue
    grep -qF "BACKSTOP_RELEASE_DIR=$WORK/$service/" <<<"$entries" || continue
    echo "$pid"
  done
}
count_of() { service_pids "$1" | wc -l | tr -d ' '; }
recorded_pid() {
  sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$STATE_DIR/components/$1/process.json" 2>/dev/null | head -n1
}
at_exit 'for p in $(service_pids orchestrator) $(service_pids webui); do kill -9 $p; done'

bs check
expect_rc 0 check

# One process, on v1, the one recorded; a broken release cannot pass for it.
check_one_v1() {
  local where=$1
  expect_eq "$(count_of orchestrator)" 1 "orchestrator processes ($where)"
  expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator version ($where)"
  local served
  served=$(http_get "http://127.0.0.1:$ORCH_PORT/version" | tr -d '\n' | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
  expect_eq "$served" "$(recorded_pid orchestrator)" "the recorded pid serves the port ($where)"
  bs deploy orchestrator v2
  expect_rc 1 "deploy of the broken v2 ($where)"
  bs stop --all
  expect_rc 0 "stop --all ($where)"
  expect_eq "$(count_of orchestrator)" 0 "orchestrator processes after stop --all ($where)"
}

for point in process.after-spawn process.after-record process.after-release; do
  crash_in "$point" deploy orchestrator v1 || continue
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at $point"
  check_one_v1 "kill at $point"
done

# Killed between SIGTERM and the record's removal: in a deploy's stop step...
bs deploy orchestrator v1
expect_rc 0 "deploy orchestrator v1"
crash_in process.after-sigterm deploy orchestrator v1 && {
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at process.after-sigterm"
  check_one_v1 "kill at process.after-sigterm in a deploy"
}
# ...and in `stop --all`.
bs deploy orchestrator v1
expect_rc 0 "deploy orchestrator v1"
crash_in process.after-sigterm stop --all && {
  bs stop --all
  expect_rc 0 "stop --all after a killed stop"
  expect_eq "$(count_of orchestrator)" 0 "orchestrator processes after a killed stop"
  expect_eq "$(recorded_pid orchestrator)" "" "orchestrator record after stop --all"
}

# An impostor: v1 started by hand on orchestrator's port, while the release
# Backstop starts takes longer to listen than the start period. The gate must
# not take the impostor's answer for the new process's.
make_release "$WORK/orchestrator" orchestrator v3 true 10000
(cd "$WORK/orchestrator/releases/v1" && PORT=$ORCH_PORT exec bin/orchestrator >"$WORK/impostor.log" 2>&1) &
impostor=$!
at_exit "kill -9 $impostor"
wait_for 10 http_get "http://127.0.0.1:$ORCH_PORT/health" || fail "the impostor did not start"
bs deploy orchestrator v3
expect_rc 1 "deploy of v3 while another process serves its port"
expect_contains "$OUT$ERR" "served by pid $impostor" "the gate's verdict"
kill -9 "$impostor" 2>/dev/null || true
bs stop --all
expect_rc 0 "stop --all after the impostor"
expect_eq "$(count_of orchestrator)" 0 "orchestrator processes after the impostor"
