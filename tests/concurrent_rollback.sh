#!/usr/bin/env bash
# Two real `backstop rollback` processes started together: one runs, the
# other is refused and told which run holds the lock.
source "$(dirname "$0")/lib.sh"
write_services_spec 1500   # slow starts keep the first run busy for seconds

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
bs deploy orchestrator v2; expect_rc 1 "deploy v2"

set +e
"$BACKSTOP_BIN" --spec "$SPEC" rollback --all >"$WORK/a.out" 2>"$WORK/a.err" &
a=$!
"$BACKSTOP_BIN" --spec "$SPEC" rollback --all >"$WORK/b.out" 2>"$WORK/b.err" &
b=$!
wait $a; rc_a=$?
wait $b; rc_b=$?
set -e
log "exit codes: $rc_a $rc_b"

if [[ $rc_a == 0 && $rc_b == 3 ]]; then
  winner=a loser=b
elif [[ $rc_a == 3 && $rc_b == 0 ]]; then
  winner=b loser=a
else
  fail "expected one run to succeed (0) and one to be refused (3), got $rc_a and $rc_b"
  cat "$WORK"/a.* "$WORK"/b.* >&2
  exit 1
fi
run_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' "$WORK/$winner.out" | head -n1)
[[ -n "$run_id" ]] || fail "the winner printed no run id"
expect_contains "$(cat "$WORK/$loser.err")" "run $run_id" "refusal message"
expect_contains "$(cat "$WORK/$loser.err")" "holds the lock" "refusal message"

bs runs --output json
expect_eq "$(grep -c '"id": "run-' <<<"$OUT")" 4 "runs recorded (2 deploys, 1 deploy v2, 1 rollback)"
bs verify; expect_rc 0 "verify after the winning rollback"
