#!/usr/bin/env bash
# Kills a real `backstop rollback --all` with SIGKILL after each step in turn
# (both right after the step is journaled done, and after it acted but before
# the journal says so) and shows that `--resume` reaches the same verified end
# state every time.
source "$(dirname "$0")/lib.sh"
write_services_spec 0 1500ms   # a short start period: v2 is declared unhealthy quickly

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
good_config=$(cat "$WORK/etc/app.json")

break_things() {
  echo '{"mode": "broken"}' >"$WORK/etc/app.json"
  bs deploy orchestrator v2; expect_rc 1 "deploy orchestrator v2"
  bs deploy webui v2; expect_rc 1 "deploy webui v2"
}

check_end_state() {
  local where=$1
  bs verify
  expect_rc 0 "verify after resume ($where)"
  expect_eq "$(readlink "$WORK/orchestrator/current")" "$WORK/orchestrator/releases/v1" "orchestrator release ($where)"
  expect_eq "$(readlink "$WORK/webui/current")" "$WORK/webui/releases/v1" "webui release ($where)"
  expect_eq "$(cat "$WORK/etc/app.json")" "$good_config" "config ($where)"
  expect_contains "$(http_get "http://127.0.0.1:$WEBUI_PORT/version")" '"v1"' "webui /version ($where)"
  bs status
  [[ "$OUT" != *UNFINISHED* ]] || fail "status still reports an unfinished run ($where)"
}

break_things
bs plan rollback --all --to good --output json
steps=$(grep -c '"action"' <<<"$OUT")
log "the plan has $steps steps"
((steps >= 10)) || fail "unexpectedly short plan ($steps steps)"

for mode in done before-done; do
  for ((n = 1; n <= steps; n++)); do
    where="kill at step $n ($mode)"
    spec_value=$n
    [[ $mode == before-done ]] && spec_value="$n:before-done"
    crash_at "$spec_value" rollback --all --to good || continue
    run_id=$CRASH_RUN_ID
    bs status
    expect_contains "$OUT" "UNFINISHED run $run_id" "status after $where"
    bs rollback --all --to good
    expect_rc 3 "a new rollback while $run_id is unfinished"
    expect_contains "$ERR" "$run_id" "refusal after $where"
    bs rollback --resume "$run_id"
    expect_rc 0 "resume after $where"
    check_end_state "$where"
    break_things
  done
done

# Kills inside the engine's own steps (src/base/crash_point.h: after a safety
# restore point's components and before its manifest, between a restore and
# its history record, between a start and its health gate...), at every point
# an uninterrupted run passes.
points_file="$WORK/crash-points"
crash_points_reached "$points_file" rollback --all --to good
expect_rc 0 "rollback --all (logging its crash points)"
engine_points=$(grep -E '^(run|restore-point)\.' "$points_file" | sort -u)
[[ -n "$engine_points" ]] || fail "the rollback passed no crash point of the engine"
break_things
for point in $engine_points; do
  where="kill in $point"
  crash_in "$point" rollback --all --to good || continue
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after $where"
  check_end_state "$where"
  bs history orchestrator
  expect_eq "$(grep -c "$CRASH_RUN_ID" <<<"$OUT")" 1 "history lines of the resumed run ($where)"
  break_things
done
bs stop --all
