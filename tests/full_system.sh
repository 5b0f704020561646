#!/usr/bin/env bash
# The whole mistersmith system against real PostgreSQL and nats-server:
# - a rollback whose data loss exceeds the spec's limit is refused before
#   anything is stopped, and proceeds with --accept-data-loss;
# - a run killed in the middle of the database swap resumes to a verified end;
# - the ledger lists exactly the rows and messages written after the restore point;
# - one data component rolls back alone, and prune releases what rollbacks kept;
# - a restore point with a damaged blob is refused before any component is touched.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging
start_mistersmith

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
table_digest() {  # a digest of every table's content, ordered
  psql_as "$PGPORT" mistersmith -At -c \
    "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (
       SELECT 'a'||a::text FROM agents a UNION ALL SELECT 't'||t::text FROM tasks t
       UNION ALL SELECT 'd'||d::text FROM discoveries d UNION ALL SELECT 'h'||h::text FROM hive_sessions h) t(t)"
}
orchestrator_pid() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$WORK/state/components/orchestrator/process.json"; }

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
good_digest=$(table_digest)

# Ordinary traffic since the restore point: verify --data checks what must
# hold whatever is written; row counts only against a named restore point.
psql_as "$PGPORT" mistersmith -qAt -c "INSERT INTO agents (name, kind) VALUES ('traffic', 'coder')"
bs verify --data
expect_rc 0 "verify --data with ordinary traffic"
expect_contains "$OUT" "row counts only right after a rollback" "verify --data says what it checked"
bs verify --data --against good
expect_rc 1 "verify --data --against a restore point the data has moved on from"
expect_contains "$OUT" "row count" "verify --data --against compares counts"
psql_as "$PGPORT" mistersmith -qAt -c "DELETE FROM agents WHERE name = 'traffic'"
expect_eq "$(table_digest)" "$good_digest" "database back to the restore point's content"

bs deploy orchestrator v2; expect_rc 1 "deploy orchestrator v2 (unhealthy, writes data)"
v2_digest=$(table_digest)
[[ "$v2_digest" != "$good_digest" ]] || fail "the v2 migration changed nothing"
v2_pid=$(orchestrator_pid)

# 1. Over the data-loss limit: refused, nothing stopped or changed.
MAX_DATA_LOSS_ROWS=5 bs rollback --all --to good
expect_rc 3 "rollback over the data-loss limit"
refused_run=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT$ERR" | head -n1)
[[ -n "$refused_run" ]] || fail "the refusal names no run"
expect_contains "$OUT$ERR" "refusing" "refusal"
expect_contains "$OUT$ERR" "--accept-data-loss" "refusal"
expect_eq "$(orchestrator_pid)" "$v2_pid" "orchestrator pid after the refusal"
kill -0 "$v2_pid" || fail "the refusal stopped the orchestrator"
expect_eq "$(table_digest)" "$v2_digest" "database after the refusal"

# 2. Killed right after the database swap acted, before the journal says so.
bs plan rollback --all --to good --output json
restore_pg=$(json "[i+1 for i,s in enumerate(d['plan']['steps']) if s['action']=='restore' and s['component']=='postgres'][0]" <<<"$OUT")
log "restore postgres is step $restore_pg"
MAX_DATA_LOSS_ROWS=5 crash_at "$restore_pg:before-done" rollback --all --to good --accept-data-loss
run_id=$CRASH_RUN_ID
bs status
expect_contains "$OUT" "UNFINISHED run $run_id" "status after the kill"
bs rollback --resume "$run_id"
expect_rc 0 "resume"
expect_contains "$OUT" "succeeded"

bs verify --data
expect_rc 0 "verify --data after the rollback"
expect_contains "$OUT" "the last run, $run_id, rolled back to it" "verify --data right after a rollback"
expect_eq "$(table_digest)" "$good_digest" "database content equals the restore point's"

# The refused run never replaced the database, so its safety restore point
# holds no copy of it; the database has changed since (the rollback above):
# undoing to it is refused before anything is stopped, never "nothing to undo".
refused_safety="rp-${refused_run#run-}-safety"
bs snapshots verify "$refused_safety"
expect_rc 1 "snapshots verify of a safety restore point that cannot restore the database"
expect_contains "$OUT" "never set it aside" "snapshots verify says why"
# --force: the safety point recorded the broken v2 orchestrator as unhealthy,
# a refusal of its own; this checks the database's.
bs rollback --all --to "$refused_safety" --confirm --force
[[ "$RC" != 0 ]] || fail "an undo to $refused_safety succeeded without restoring the database"
expect_contains "$OUT$ERR" "never set it aside" "the undo says why"
expect_eq "$(table_digest)" "$good_digest" "database after the refused undo"
counts=$("$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL")
expect_eq "$counts" "agents=12 tasks=200 discoveries=50 hive_sessions=5 MisterSmith-Tasks=100 MisterSmith-Results=60" "counts"

# 3. The ledger: exactly what v2 wrote (25 + 1 inserted, 3 changed, 2 deleted rows; 40 messages).
ledger_pg="$WORK/state/runs/$run_id/ledger-postgres.jsonl"
ledger_nats="$WORK/state/runs/$run_id/ledger-nats.jsonl"
expect_eq "$(grep '"table":"tasks"' "$ledger_pg" | grep -vc '"change":"rewound"' | tr -d ' ')" 28 "task rows in the ledger"
expect_eq "$(grep -c '"change":"inserted"' "$ledger_pg")" 26 "inserted rows in the ledger"
expect_eq "$(grep -c '"change":"changed"' "$ledger_pg")" 3 "changed rows in the ledger"
expect_eq "$(grep -c '"change":"deleted"' "$ledger_pg")" 2 "deleted rows in the ledger"
expect_eq "$(grep -cE '"change":"(inserted|changed|deleted)"' "$ledger_pg")" 31 "ledger rows"
# The sequences of the tables v2 inserted into move back: their values will be issued again.
expect_eq "$(grep -c '"change":"rewound"' "$ledger_pg")" 2 "sequences moved back in the ledger"
expect_contains "$(cat "$ledger_pg")" '"sequence":"public.tasks_id_seq"' "tasks' sequence in the ledger"
expect_eq "$(grep -c '"event":"published"' "$ledger_nats")" 40 "published messages in the ledger"
expect_eq "$(grep -c '"subject":"mistersmith.tasks.v2"' "$ledger_nats")" 20 "task messages in the ledger"
bs runs --output json
expect_contains "$OUT" "Data loss: yes" "run summary"

# The replaced database is kept (the rollback destroyed nothing).
kept=$(psql_as "$PGPORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'mistersmith_pre_rollback_%'")
expect_eq "$kept" 1 "databases kept aside"

# 4. One data component at a time: the database alone (its dependent services
#    are restarted around the swap, the streams are left alone), then the streams.
"$DEMO_SEED" migrate-v2 --database "$DB" --nats "$NATS_URL" --rows 5 --messages 6 >/dev/null
pid_before=$(orchestrator_pid)
bs rollback --component postgres --to good --accept-data-loss
expect_rc 0 "rollback --component postgres"
[[ "$(orchestrator_pid)" != "$pid_before" ]] || fail "the orchestrator was not restarted around the database swap"
expect_eq "$(table_digest)" "$good_digest" "database after the component rollback"
expect_eq "$("$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL")" \
  "agents=12 tasks=200 discoveries=50 hive_sessions=5 MisterSmith-Tasks=103 MisterSmith-Results=63" \
  "streams untouched by the database rollback"
bs rollback --component nats --to good --accept-data-loss
expect_rc 0 "rollback --component nats"
expect_eq "$("$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL")" \
  "agents=12 tasks=200 discoveries=50 hive_sessions=5 MisterSmith-Tasks=100 MisterSmith-Results=60" \
  "streams after the component rollback"

# 4b. Kills inside the database's steps (after the shadow is built, after it
#     is verified, after the ledger is written, between the renames of the
#     swap, after the swap): after --resume, the same data and the same
#     ledger lines as an uninterrupted run.
"$DEMO_SEED" migrate-v2 --database "$DB" --nats "$NATS_URL" --rows 5 --messages 6 >/dev/null
crash_points_reached "$WORK/points" rollback --component postgres --to good --accept-data-loss
expect_rc 0 "uninterrupted database rollback"
ref_run=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
ref_ledger=$(sort "$WORK/state/runs/$ref_run/ledger-postgres.jsonl")
[[ -n "$ref_ledger" ]] || fail "the uninterrupted rollback wrote no ledger"
pg_points=$(grep '^postgres\.' "$WORK/points" | sort -u)
for point in postgres.shadow-built postgres.shadow-verified postgres.ledger-written \
  postgres.between-renames postgres.swap-done; do
  grep -qx "$point" <<<"$pg_points" || fail "crash point $point was not reached"
done
for point in $pg_points; do
  "$DEMO_SEED" migrate-v2 --database "$DB" --nats "$NATS_URL" --rows 5 --messages 6 >/dev/null
  crash_in "$point" rollback --component postgres --to good --accept-data-loss || continue
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at $point"
  expect_eq "$(table_digest)" "$good_digest" "database after a kill at $point"
  expect_eq "$(sort "$WORK/state/runs/$CRASH_RUN_ID/ledger-postgres.jsonl")" "$ref_ledger" \
    "ledger after a kill at $point"
done

# A retained database goes only with the safety restore points that need it.
bs prune --keep-runs 0 --keep-restore-points 1000
expect_rc 0 "prune of what runs kept aside"
bs snapshots --output json
expect_eq "$(json "sum(1 for r in d['restore_points'] if r['kind'] == 'safety')" <<<"$OUT")" 0 \
  "safety restore points left without their retained databases"
bs prune --keep-runs 0 --keep-restore-points 1
expect_rc 0 prune
leftovers=$(psql_as "$PGPORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'mistersmith_bs_shadow_%'")
expect_eq "$leftovers" 0 "shadow databases after prune"
kept=$(psql_as "$PGPORT" postgres -At -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'mistersmith_pre_rollback_%'")
expect_eq "$kept" 0 "databases kept aside after prune"
bs snapshots verify good
expect_rc 0 "the labelled restore point and its blobs survive prune"

# 5. A damaged blob: refused before any component is touched.
bs snapshots verify good; expect_rc 0 "snapshots verify good"
pg_blob=$(python3 - "$WORK/state/store" <<'PY'
import json, glob, sys
for f in glob.glob(sys.argv[1] + "/restore-points/*.json"):
    rp = json.load(open(f))
    if rp.get("label") == "good":
        print(rp["components"]["postgres"]["blobs"][0])
PY
)
blob_file="$WORK/state/store/blobs/${pg_blob:0:2}/$pg_blob"
[[ -f "$blob_file" ]] || die "blob file $blob_file not found"
printf '\xff' | dd of="$blob_file" bs=1 seek=40 conv=notrunc status=none
bs snapshots verify good
expect_rc 1 "snapshots verify of a damaged restore point"
expect_contains "$OUT" "$pg_blob" "verify names the damaged blob"
bs deploy orchestrator v2; expect_rc 1 "deploy v2 again"
pid_before=$(orchestrator_pid)
digest_before=$(table_digest)
bs rollback --all --to good --accept-data-loss
expect_rc 3 "rollback to a damaged restore point"
expect_contains "$ERR" "damaged" "refusal"
expect_contains "$ERR" "No component was changed" "refusal"
expect_eq "$(orchestrator_pid)" "$pid_before" "orchestrator untouched"
expect_eq "$(table_digest)" "$digest_before" "database untouched"
