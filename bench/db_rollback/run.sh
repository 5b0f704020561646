#!/usr/bin/env bash
# bench/db_rollback: the seed's database rollback against Backstop's, in one run.
#
#   bench/db_rollback/run.sh [BUILD_DIR] [SCALE...]      (root; default scale 10)
#
# For each pgbench scale and each procedure in turn: a restore point (untimed:
# a plain pg_dump for the seed; a Backstop restore point with staging off,
# "cold", or on, "staged"), the same writes (pgbench transactions, as a bad
# deploy would make), then the rollback, timed, while a client polls
# `count(*)` every 10 ms. Reported per procedure: the total time and the
# longest time the client got no correct answer.
#
# The seed's procedure (section 3.3): terminate sessions, dropdb, createdb,
# psql < dump. `dropdb --force` is used so a reconnecting client cannot make
# the drop fail; it terminates sessions the same way.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
scales=("$@")
((${#scales[@]})) || scales=(10)
BACKSTOP="$build/backstop"
POLLER="$build/bench/db-poller"
[[ -x "$BACKSTOP" && -x "$POLLER" ]] || { echo "build first: $BACKSTOP, $POLLER" >&2; exit 2; }
source "$root/scripts/lib/servers.sh"

WORK=$(mktemp -d /tmp/backstop-bench-db-XXXXXX)
chmod 755 "$WORK"
PORT=$(pick_port)
trap 'stop_postgres "$WORK/pg"; rm -rf "$WORK"' EXIT
start_postgres "$WORK/pg" "$PORT"
PSQL=(runuser -u postgres -- psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres)
CONN="host=127.0.0.1 port=$PORT dbname=bench user=postgres"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

write_spec() {  # NAME STAGED
  cat >"$WORK/$1.yaml" <<YAML
environment: bench-$1
state_dir: $WORK/state-$1
data_loss: { max_rows: 1000000000 }
components:
  db:
    kind: database
    driver: postgres
    connection: "$CONN"
    staged: $2
    jobs: 2
YAML
}

# The same writes before every rollback: what a bad deploy does.
disturb() {
  runuser -u postgres -- pgbench -h 127.0.0.1 -p "$PORT" -U postgres -n -c 2 -t 250 bench >/dev/null 2>&1
}

# measure NAME COMMAND...: polls while COMMAND runs; prints "total_ms gap_ms".
measure() {
  local name=$1
  shift
  coproc POLL { "$POLLER" "$CONN" "$EXPECTED" 10; }
  local poll_out=${POLL[0]} poll_in=${POLL[1]} poll_pid=$POLL_PID
  sleep 0.3
  local t0 t1
  t0=$(now_ms)
  "$@" >"$WORK/$name.log" 2>&1 || { echo "$name failed:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
  t1=$(now_ms)
  sleep 0.3
  exec {poll_in}>&-
  local result
  result=$(cat <&"$poll_out")
  wait "$poll_pid" 2>/dev/null || true
  local gap
  gap=$(sed -n 's/.*"max_gap_ms": \([0-9]*\).*/\1/p' <<<"$result")
  echo "$((t1 - t0)) $gap"
}

seed_rollback() {
  runuser -u postgres -- psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c \
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'bench' AND pid <> pg_backend_pid()" >/dev/null
  runuser -u postgres -- dropdb --force -h 127.0.0.1 -p "$PORT" -U postgres bench
  runuser -u postgres -- createdb -h 127.0.0.1 -p "$PORT" -U postgres bench
  runuser -u postgres -- psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d bench -v ON_ERROR_STOP=1 <"$WORK/dump.sql" >/dev/null
}

backstop_rollback() {  # NAME
  "$BACKSTOP" --spec "$WORK/$1.yaml" rollback --component db --to latest --accept-data-loss
}

printf '%-8s %-28s %12s %14s %10s\n' scale procedure total_ms no_answer_ms vs_seed
for scale in "${scales[@]}"; do
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" 2>/dev/null
  runuser -u postgres -- pgbench -h 127.0.0.1 -p "$PORT" -U postgres -i -q -s "$scale" bench >/dev/null 2>&1
  EXPECTED=$("${PSQL[@]}" -d bench -At -c "SELECT count(*) FROM pgbench_accounts")
  size=$("${PSQL[@]}" -d bench -At -c "SELECT pg_size_pretty(pg_database_size('bench'))")
  write_spec cold never
  write_spec staged always
  rm -rf "$WORK/state-cold" "$WORK/state-staged"

  # Each procedure: its restore point (untimed), the same writes, the rollback (timed).
  runuser -u postgres -- pg_dump -h 127.0.0.1 -p "$PORT" -U postgres -Fp bench >"$WORK/dump.sql"
  disturb
  read -r seed_total seed_gap < <(measure seed seed_rollback)
  printf '%-8s %-28s %12s %14s %10s\n' "$scale" "seed (drop + reload)" "$seed_total" "$seed_gap" "1.00"

  "$BACKSTOP" --spec "$WORK/cold.yaml" snapshot --label bench >/dev/null
  disturb
  read -r cold_total cold_gap < <(measure cold backstop_rollback cold)
  printf '%-8s %-28s %12s %14s %10s\n' "$scale" "backstop, cold restore point" "$cold_total" "$cold_gap" \
    "$(awk "BEGIN{printf \"%.2f\", $cold_total/$seed_total}")"

  "$BACKSTOP" --spec "$WORK/staged.yaml" snapshot --label bench >/dev/null
  disturb
  read -r staged_total staged_gap < <(measure staged backstop_rollback staged)
  printf '%-8s %-28s %12s %14s %10s\n' "$scale" "backstop, staged restore point" "$staged_total" "$staged_gap" \
    "$(awk "BEGIN{printf \"%.2f\", $staged_total/$seed_total}")"
  echo "# scale $scale: $EXPECTED rows in pgbench_accounts, database $size"
  for v in cold staged; do grep -E "^ *[0-9.]+s \[|✓" "$WORK/$v.log" | sed "s/^/#   $v: /"; done

  # Release what the rollbacks kept aside before the next scale.
  "$BACKSTOP" --spec "$WORK/cold.yaml" prune --keep-runs 0 >/dev/null || true
  "$BACKSTOP" --spec "$WORK/staged.yaml" prune --keep-runs 0 >/dev/null || true
done
