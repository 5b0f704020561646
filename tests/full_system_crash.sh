#!/usr/bin/env bash
# kill -9 at every step of a full-system rollback (PostgreSQL, NATS, config,
# services), after the step acted but before its journal entry says so, then
# `--resume`: every time the run completes, verified, and nothing is lost —
# the database and the streams equal the restore point's, the replaced
# database is kept, and the summary reports what the rollback discarded.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging HEALTH_START_PERIOD=1500ms MAX_DATA_LOSS_ROWS=100000
start_mistersmith

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
good_counts="agents=12 tasks=200 discoveries=50 hive_sessions=5 MisterSmith-Tasks=100 MisterSmith-Results=60"

bs plan rollback --all --to good --output json
steps=$(python3 -c "import json,sys; print(len(json.load(sys.stdin)['plan']['steps']))" <<<"$OUT")
log "the plan has $steps steps"
((steps >= 15)) || fail "unexpectedly short plan ($steps steps)"

for ((n = 1; n <= steps; n++)); do
  where="kill after step $n acted"
  bs deploy orchestrator v2; expect_rc 1 "deploy v2 ($where)"
  crash_at "$n:before-done" rollback --all --to good || continue
  run_id=$CRASH_RUN_ID
  bs rollback --resume "$run_id"
  expect_rc 0 "resume ($where)"
  # What the rollback discarded is reported whichever step the crash hit:
  # the rows the v2 migration wrote and the messages it published.
  expect_contains "$OUT" "rows in tasks" "data loss in the summary ($where)"
  expect_contains "$OUT" "messages in MisterSmith-" "data loss in the summary ($where)"
  bs verify --data
  expect_rc 0 "verify --data ($where)"
  expect_eq "$("$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL")" "$good_counts" "counts ($where)"
  expect_eq "$(readlink "$WORK/orchestrator/current")" "$WORK/orchestrator/releases/v1" "release ($where)"
done
# Every swap kept the database it replaced: nothing was destroyed.
swaps=$(psql_as "$PGPORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'mistersmith_pre_rollback_%'")
expect_eq "$swaps" "$steps" "databases kept aside (one per rollback)"
