#!/usr/bin/env bash
# PostgreSQL flashback against the real binary and a real PostgreSQL 15 with
# wal_level=logical (docs/flashback.md):
# - a restore point of a `flashback: true` database keeps a logical slot,
#   and `status` shows the WAL it retains;
# - `rollback --component db --to good` undoes the changes since in the live
#   database: the same contents, no shadow or replaced database left, the
#   ledger from the change stream;
# - a kill at every crash point that rollback passes (the undo's among them),
#   then `--resume`: the same data, ledger and data-loss line as the
#   uninterrupted rollback;
# - `--to-time` between two batches of changes undoes only the later one;
#   bad input (no offset, before the restore point, --all) changes nothing;
# - pruning the restore points drops their slots.
source "$(dirname "$0")/lib.sh"
source "$BACKSTOP_SOURCE_DIR/scripts/lib/servers.sh"

PGPORT=$(free_port)
start_postgres "$WORK/pg" "$PGPORT" \
  "-c wal_level=logical -c max_replication_slots=64 -c max_wal_senders=16" ||
  die "PostgreSQL did not start"
at_exit stop_postgres "$WORK/pg"

psql_as "$PGPORT" postgres -qc "CREATE DATABASE shop"
sql() { psql_as "$PGPORT" shop -qAt -c "$1"; }
sql "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
     CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                          total numeric(10,2), note jsonb);
     INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 100) g;
     INSERT INTO orders (customer_id, total, note)
       SELECT 1 + g % 100, g * 1.5, jsonb_build_object('g', g) FROM generate_series(1, 1000) g;"

SPEC="$WORK/backstop.yaml"
cat >"$SPEC" <<YAML
environment: test
data_loss:
  max_rows: 100000
components:
  db:
    kind: database
    driver: postgres
    connection: "host=127.0.0.1 port=$PGPORT dbname=shop user=postgres"
    flashback: true
    flashback_replica_identity: full
YAML

RUN_ID_RE='run-[0-9TZ]*-[0-9a-f]*'
# Every row of both tables, and where the sequences stand.
data_state() {
  sql "SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
         SELECT 'c' || c::text FROM customers c UNION ALL SELECT 'o' || o::text FROM orders o) x(t)"
  sql "SELECT last_value FROM customers_id_seq"
  sql "SELECT last_value FROM orders_id_seq"
}
# The databases of the component, but for restore points' staged copies.
databases() {
  psql_as "$PGPORT" postgres -qAt -c "SELECT string_agg(datname, ',' ORDER BY datname)
    FROM pg_database WHERE datname LIKE 'shop%' AND datname NOT LIKE '%\\_bs\\_staged\\_%'"
}
slots() { psql_as "$PGPORT" postgres -qAt -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'backstop%'"; }
ledgers_of() {
  local f
  for f in "$WORK/.backstop/runs/$1"/ledger-*.jsonl; do
    [[ -e "$f" ]] || continue
    echo "== $(basename "$f")"
    sed -E -e "s/$RUN_ID_RE/RUN/g" "$f"
  done
}
data_loss_line() { grep -m1 '^  Data loss:' <<<"$1" | sed 's/^ *//' || true; }
# The same changes each time: the rollback sets the sequences back too.
bad_deploy() {
  sql "INSERT INTO customers (name) VALUES ('late');
       INSERT INTO orders (customer_id, total) VALUES (101, 9.99), (101, NULL);
       UPDATE orders SET total = total * 2, note = note || '{\"x\": 1}' WHERE id % 10 = 0;
       UPDATE customers SET name = 'renamed' WHERE id = 7;
       DELETE FROM orders WHERE id > 990;"
}

bs snapshot --label good
expect_rc 0 "snapshot"
expect_contains "$OUT$ERR" "replication slot backstop_" "snapshot"
good_data=$(data_state)
expect_eq "$(slots)" "1" "slots after the snapshot"
bs status
expect_rc 0 "status"
expect_contains "$OUT" "backstop_" "status (the slot and its WAL)"

# The uninterrupted rollback: what every interrupted one must end as.
bad_deploy
crash_points_reached "$WORK/points.log" rollback --component db --to good
expect_rc 0 "uninterrupted rollback"
expect_contains "$OUT$ERR" "by undo of" "rollback"
base_run=$(grep -o "$RUN_ID_RE" <<<"$OUT$ERR" | head -n1)
base_loss=$(data_loss_line "$OUT")
base_ledgers=$(ledgers_of "$base_run")
[[ -n "$base_run" ]] || die "no run id in the rollback's output"
[[ -n "$base_loss" && -n "$base_ledgers" ]] || die "the rollback reported no loss"
expect_contains "$base_loss" "2 rows in customers, 109 rows in orders" "data-loss line"
expect_eq "$(data_state)" "$good_data" "data after the rollback"
expect_eq "$(databases)" "shop" "databases after the rollback (no shadow, none replaced)"
grep -q '^postgres.flashback_before_undo$' "$WORK/points.log" ||
  die "the rollback did not pass the undo's crash point: $(tr '\n' ' ' <"$WORK/points.log")"

mapfile -t points < <(awk '!($0 in n) { n[$0]; print }' "$WORK/points.log")
log "${#points[@]} crash points: ${points[*]}"
for point in "${points[@]}"; do
  where="killed at $point"
  bad_deploy
  crash_in "$point" rollback --component db --to good || continue
  run_id=$CRASH_RUN_ID
  [[ -n "$run_id" ]] || { fail "no run id before the kill ($where)"; continue; }
  bs rollback --resume "$run_id"
  expect_rc 0 "resume ($where)"
  expect_eq "$(data_loss_line "$OUT")" "$base_loss" "data-loss line ($where)"
  got=$(ledgers_of "$run_id")
  if [[ "$got" != "$base_ledgers" ]]; then
    fail "ledgers differ from the uninterrupted run's ($where)"
    diff <(echo "$base_ledgers") <(echo "$got") | head -n 20 | sed 's/^/    | /' >&2
  fi
  expect_eq "$(data_state)" "$good_data" "data ($where)"
  expect_eq "$(databases)" "shop" "databases ($where)"
done

# --to-time: the first batch stays, the second is undone.
sql "UPDATE customers SET name = 'first batch' WHERE id = 1"
mid_rows=$(data_state | sed -n 1p)
moment=$(sql "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
sleep 0.05
bad_deploy
now_data=$(data_state)
bs rollback --component db --to good --to-time "2026-11-30 14:03:12"
expect_rc 2 "--to-time without an offset"
expect_contains "$ERR" "not a time with its offset" "--to-time without an offset"
bs rollback --component db --to good --to-time "2000-01-01T00:00:00Z"
expect_rc 2 "--to-time before the restore point"
expect_contains "$ERR" "before" "--to-time before the restore point"
bs rollback --all --to-time "$moment"
expect_rc 2 "--to-time with --all"
expect_eq "$(data_state)" "$now_data" "data after refused --to-time rollbacks"
bs rollback --component db --to good --to-time "$moment"
expect_rc 0 "rollback --to-time"
expect_contains "$OUT$ERR" "sequences left where they are" "rollback --to-time"
expect_eq "$(data_state | sed -n 1p)" "$mid_rows" "rows after --to-time (the first batch kept)"
expect_eq "$(sql "SELECT name FROM customers WHERE id = 1")" "first batch" "the first batch"

# Pruning drops the slots of the restore points it deletes, and only those:
# the slots left are exactly those the kept restore points name.
slot_names() {
  psql_as "$PGPORT" postgres -qAt -c "SELECT slot_name FROM pg_replication_slots
    WHERE slot_name LIKE 'backstop%' ORDER BY 1"
}
named_slots() {
  python3 - "$WORK/.backstop/store/restore-points" <<'PY'
import glob, json, os, sys
names = set()
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    with open(path) as f:
        for entry in json.load(f).get("components", {}).values():
            slot = entry.get("flashback", {}).get("slot") if isinstance(entry, dict) else None
            if slot:
                names.add(slot)
print("\n".join(sorted(names)))
PY
}
expect_eq "$(slot_names)" "$(named_slots)" "slots before prune: those the restore points name"
before=$(slots)
bs prune --keep-last 1
expect_rc 0 "prune"
after=$(slots)
((after < before)) || fail "prune --keep-last 1 dropped no slot ($before before, $after after)"
expect_eq "$(slot_names)" "$(named_slots)" "slots after prune: those the kept restore points name"
