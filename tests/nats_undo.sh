#!/usr/bin/env bash
# Undoing a rollback of the streams: the safety restore point holds MORE
# messages than live (live is an exact prefix of it), so the undo discards
# nothing — no loss reported, no ledger line, and a message limit of 2 does
# not refuse it. Then the messages a rollback discarded are in its run
# directory, whole, for salvage.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging HEALTH_START_PERIOD=1500ms MAX_DATA_LOSS_ROWS=100000
start_mistersmith
counts() { "$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL" | grep -o 'MisterSmith-[A-Za-z]*=[0-9]*' | tr '\n' ' '; }

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
# What v2's migration does, with v1 still running: 20 messages to each stream.
"$DEMO_SEED" migrate-v2 --database "$DB" --nats "$NATS_URL" --rows 25 --messages 40 >/dev/null
with_v2=$(counts)

bs rollback --component nats --to good
expect_rc 0 "rollback of the streams"
expect_contains "$OUT" "20 messages in MisterSmith-Results" "rollback summary"
run_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
safety=$(grep -o 'rollback [^ ]* --to [^ ]*-safety' <<<"$OUT" | head -n1 | awk '{print $NF}')
[[ -n "$safety" ]] || die "no safety restore point in the rollback's output"
# The discarded messages themselves, beside the ledger.
discarded="$BACKSTOP_STATE_DIR/runs/$run_id/nats-nats-discarded.jsonl"
expect_eq "$(grep -c '"stream":"MisterSmith-Results"' "$discarded")" 20 "discarded messages kept"

MAX_DATA_LOSS_MESSAGES=2 bs rollback --component nats --to "$safety"
expect_rc 0 "undo to $safety under a limit of 2 messages"
expect_contains "$OUT" "Data loss: none" "undo summary"
[[ "$OUT" != *recreated* ]] || fail "the undo reported a re-created stream"
undo_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
if [[ -s "$BACKSTOP_STATE_DIR/runs/$undo_id/ledger-nats.jsonl" ]]; then
  fail "the undo's ledger lists messages"
  sed 's/^/    | /' "$BACKSTOP_STATE_DIR/runs/$undo_id/ledger-nats.jsonl" | head >&2
fi
expect_eq "$(counts)" "$with_v2" "messages after the undo"
