#!/usr/bin/env bash
# bench/db_rollback: the seed's database rollback against Backstop's, in one run.
#
#   bench/db_rollback/run.sh [BUILD_DIR] [SCALE...]      (root; default scale 10)
#   ROUNDS=3 bench/db_rollback/run.sh ...                 (each scale ROUNDS times)
#   TXNS=125 bench/db_rollback/run.sh ...                 (the bad deploy's size, below)
#
# For each pgbench scale and each procedure in turn: a restore point (untimed:
# a plain pg_dump for the seed; a Backstop restore point with staging off,
# "cold", or on, "staged", or with flashback, "flashback": a logical slot, the
# rollback an undo of the changes since, docs/flashback.md), the same writes
# (2 pgbench clients of TXNS transactions each, default 250; a transaction
# changes 4 rows: 3 updates and an insert), then the rollback, timed. The
# server runs with wal_level=logical for every procedure (flashback needs it). Each procedure runs twice:
# "quiet" (nothing else on the server) and "polled" (a client polls
# `count(*)` of the 1M-row table every 10 ms). The polling client is heavy: each
# count is a parallel scan of the whole table, so it takes a core or more for
# as long as the database answers, which slows a rollback that keeps it
# answering (Backstop's) and not one that takes it away (the seed's). Both
# totals are reported, with their ratio to the seed's under the same
# condition, and the longest time the polling client got no correct answer.
# A total is the whole command; *run_ms* is the time Backstop's quiet run
# reports for itself (database restored and verified): the command then still
# takes the post-rollback restore point (a pg_dump, growing with the size).
# After each round, the steps of both polled Backstop runs with their times
# and the drivers' detail lines (lines starting with '#'), and the machine's
# load average; at the end, the median of each column over the rounds.
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
ROUNDS=${ROUNDS:-1}
BACKSTOP="$build/backstop"
POLLER="$build/bench/db-poller"
[[ -x "$BACKSTOP" && -x "$POLLER" ]] || { echo "build first: $BACKSTOP, $POLLER" >&2; exit 2; }
source "$root/scripts/lib/servers.sh"

WORK=$(mktemp -d /tmp/backstop-bench-db-XXXXXX)
chmod 755 "$WORK"
PORT=$(pick_port)
trap 'stop_postgres "$WORK/pg"; rm -rf "$WORK"' EXIT
start_postgres "$WORK/pg" "$PORT" "-c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=8"
PSQL=(runuser -u postgres -- psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres)
CONN="host=127.0.0.1 port=$PORT dbname=bench user=postgres"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

write_spec() {  # NAME STAGED [FLASHBACK]
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
    flashback: ${3:-false}
    flashback_replica_identity: full
YAML
}

# The same writes before every rollback: what a bad deploy does.
disturb() {
  runuser -u postgres -- pgbench -h 127.0.0.1 -p "$PORT" -U postgres -n -c 2 -t "${TXNS:-250}" bench >/dev/null 2>&1
}

# measure NAME MODE COMMAND...: runs COMMAND, with a client polling every
# 10 ms when MODE is "polled"; prints "total_ms gap_ms" (gap "-" when quiet).
measure() {
  local name=$1 mode=$2
  shift 2
  # Every procedure starts from the same state: no checkpoint left over from
  # the writes of the one before (untimed).
  "${PSQL[@]}" -d postgres -c CHECKPOINT
  local t0 t1
  if [[ $mode == quiet ]]; then
    t0=$(now_ms)
    "$@" >"$WORK/$name-quiet.log" 2>&1 || { echo "$name failed:" >&2; cat "$WORK/$name-quiet.log" >&2; exit 1; }
    t1=$(now_ms)
    echo "$((t1 - t0)) -"
    return
  fi
  coproc POLL { "$POLLER" "$CONN" "$EXPECTED" 10; }
  local poll_out=${POLL[0]} poll_in=${POLL[1]} poll_pid=$POLL_PID
  sleep 0.3
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

load() { cut -d' ' -f1-3 /proc/loadavg; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2)}'; }
row() {  # SCALE NAME QUIET POLLED GAP SEED_QUIET SEED_POLLED RUN
  printf '%-6s %-30s %9s %9s %8s %10s %10s %8s\n' "$1" "$2" "$3" "$4" "$5" \
    "$(awk "BEGIN{printf \"%.2f\", $3/$6}")" "$(awk "BEGIN{printf \"%.2f\", $4/$7}")" "$8"
}
# The time a quiet Backstop run reports for itself ("succeeded in 955 ms", "1.84 s"), in ms.
run_ms() {
  sed -n 's/.*Run run-[^ ]* succeeded in \([0-9.]*\) \(m\{0,1\}s\).*/\1 \2/p' "$WORK/$1-quiet.log" |
    awk '{printf "%d", ($2 == "s") ? $1 * 1000 : $1}'
}

echo "# $(nproc) cores, $(uname -sr), load $(load) at $(date -u +%FT%TZ); $ROUNDS round(s) per scale;" \
  "bad deploy: 2 x ${TXNS:-250} pgbench transactions ($((8 * ${TXNS:-250})) row changes)"
printf '%-6s %-30s %9s %9s %8s %10s %10s %8s\n' scale procedure quiet_ms polled_ms gap_ms quiet/seed polled/seed run_ms
for scale in "${scales[@]}"; do
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" 2>/dev/null
  runuser -u postgres -- pgbench -h 127.0.0.1 -p "$PORT" -U postgres -i -q -s "$scale" bench >/dev/null 2>&1
  EXPECTED=$("${PSQL[@]}" -d bench -At -c "SELECT count(*) FROM pgbench_accounts")
  size=$("${PSQL[@]}" -d bench -At -c "SELECT pg_size_pretty(pg_database_size('bench'))")
  write_spec cold never
  write_spec staged always
  write_spec flashback never true
  rm -rf "$WORK/state-cold" "$WORK/state-staged" "$WORK/state-flashback"
  echo "# scale $scale: $EXPECTED rows in pgbench_accounts, database $size"
  : >"$WORK/results"
  for ((round = 1; round <= ROUNDS; round++)); do
    echo "# round $round, load $(load)"
    # Each procedure, quiet then polled: its restore point (untimed), the
    # same writes, the rollback (timed).
    runuser -u postgres -- pg_dump -h 127.0.0.1 -p "$PORT" -U postgres -Fp bench >"$WORK/dump.sql"
    declare -A quiet=() polled=() gap=()
    for proc in seed cold staged flashback; do
      for mode in quiet polled; do
        [[ $proc == seed ]] || "$BACKSTOP" --spec "$WORK/$proc.yaml" snapshot >/dev/null
        disturb
        if [[ $proc == seed ]]; then cmd=(seed_rollback); else cmd=(backstop_rollback "$proc"); fi
        read -r total g < <(measure "$proc" "$mode" "${cmd[@]}")
        if [[ $mode == quiet ]]; then quiet[$proc]=$total; else polled[$proc]=$total gap[$proc]=$g; fi
      done
    done
    row "$scale" "seed (drop + reload)" "${quiet[seed]}" "${polled[seed]}" "${gap[seed]}" "${quiet[seed]}" "${polled[seed]}" "${quiet[seed]}"
    row "$scale" "backstop, cold restore point" "${quiet[cold]}" "${polled[cold]}" "${gap[cold]}" "${quiet[seed]}" "${polled[seed]}" "$(run_ms cold)"
    row "$scale" "backstop, staged restore point" "${quiet[staged]}" "${polled[staged]}" "${gap[staged]}" "${quiet[seed]}" "${polled[seed]}" "$(run_ms staged)"
    row "$scale" "backstop, flashback (undo)" "${quiet[flashback]}" "${polled[flashback]}" "${gap[flashback]}" "${quiet[seed]}" "${polled[seed]}" "$(run_ms flashback)"
    for proc in seed cold staged flashback; do printf '%s %s %s ' "${quiet[$proc]}" "${polled[$proc]}" "${gap[$proc]}"; done >>"$WORK/results"
    echo >>"$WORK/results"
    # The steps (with their times) and the drivers' detail lines of both runs.
    for v in cold staged flashback; do
      grep -E "^ *[0-9.]+s \[|✓|^           [^ ]" "$WORK/$v.log" | grep -v "^  *Undo:" | sed "s/^/#   $v: /"
    done
    echo "# load $(load)"

    # Release what the rollbacks kept aside (and old restore points) before the next round.
    "$BACKSTOP" --spec "$WORK/cold.yaml" prune --keep-runs 0 --keep-restore-points 0 >/dev/null || true
    "$BACKSTOP" --spec "$WORK/staged.yaml" prune --keep-runs 0 --keep-restore-points 0 >/dev/null || true
    "$BACKSTOP" --spec "$WORK/flashback.yaml" prune --keep-runs 0 --keep-restore-points 0 >/dev/null || true
  done
  if ((ROUNDS > 1)); then
    col() { awk -v c="$1" '{print $c}' "$WORK/results" | median; }
    echo "# median of $ROUNDS rounds:"
    row "$scale" "seed (drop + reload)" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 1)" "$(col 2)"
    row "$scale" "backstop, cold restore point" "$(col 4)" "$(col 5)" "$(col 6)" "$(col 1)" "$(col 2)"
    row "$scale" "backstop, staged restore point" "$(col 7)" "$(col 8)" "$(col 9)" "$(col 1)" "$(col 2)"
    row "$scale" "backstop, flashback (undo)" "$(col 10)" "$(col 11)" "$(col 12)" "$(col 1)" "$(col 2)"
  fi
done
