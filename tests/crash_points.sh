#!/usr/bin/env bash
# kill -9 inside the steps of a full-system rollback (PostgreSQL, NATS,
# config, services), at every crash point an uninterrupted rollback passes
# (src/base/crash_point.h: whichever driver or layer put them there), then
# `--resume`: the resumed run must end exactly as the uninterrupted one did —
# the same ledger lines (run ids and times aside), the same data-loss line in
# the summary, the same data, the same release links, and one process per
# service, of the restored release.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging HEALTH_START_PERIOD=1500ms MAX_DATA_LOSS_ROWS=100000
start_mistersmith

RUN_ID_RE='run-[0-9TZ]*-[0-9a-f]*'

# The ledgers of run $1, one file after the other, with run ids and times
# (which differ from one rollback to the next) replaced.
ledgers_of() {
  local dir="$BACKSTOP_STATE_DIR/runs/$1" f
  for f in "$dir"/ledger-*.jsonl; do
    [[ -e "$f" ]] || continue
    echo "== $(basename "$f")"
    sed -E -e "s/$RUN_ID_RE/RUN/g" \
      -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)/TIME/g' "$f"
  done
}

# The data: row and message counts, each table's rows, each stream's state
# and its consumers' positions.
data_state() {
  "$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL"
  local t
  for t in agents tasks discoveries hive_sessions; do
    echo "$t $(psql_as "$PGPORT" mistersmith -At -c \
      "SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM $t x")"
  done
  http_get "http://127.0.0.1:$NATS_MONITOR_PORT/jsz?streams=true&consumers=true" | python3 -c '
import json, sys
for acc in json.load(sys.stdin).get("account_details", []):
    for s in sorted(acc.get("stream_detail", []), key=lambda s: s["name"]):
        st = s["state"]
        print(s["name"], st["messages"], st["bytes"], st["first_seq"], st["last_seq"])
        for c in sorted(s.get("consumer_detail", []), key=lambda c: c["name"]):
            print("  ", c["name"], c["delivered"]["stream_seq"], c["ack_floor"]["stream_seq"])
'
}

# Where each service's `current` points, and which releases run: one line
# per process started by Backstop (it has BACKSTOP_RELEASE_DIR in its
# environment) for a release under this test's directory.
releases_state() {
  local role environ
  for role in orchestrator webui; do
    echo "$role current -> $(readlink "$WORK/$role/current")"
  done
  for environ in /proc/[0-9]*/environ; do
    tr '\0' '\n' 2>/dev/null <"$environ" | sed -n "s|^BACKSTOP_RELEASE_DIR=$WORK/||p" || true
  done | sort
}

data_loss_line() { grep -m1 '^  Data loss:' <<<"$1" | sed 's/^ *//' || true; }

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot

# The uninterrupted rollback: what every interrupted one must end as.
bs deploy orchestrator v2; expect_rc 1 "deploy v2 (uninterrupted)"
crash_points_reached "$WORK/points.log" rollback --all --to good
expect_rc 0 "uninterrupted rollback"
base_run=$(grep -o "$RUN_ID_RE" <<<"$OUT$ERR" | head -n1)
base_loss=$(data_loss_line "$OUT")
base_ledgers=$(ledgers_of "$base_run")
base_data=$(data_state)
base_releases=$(releases_state)
[[ -n "$base_run" ]] || die "no run id in the uninterrupted rollback's output"
[[ -n "$base_loss" && -n "$base_ledgers" ]] || die "the uninterrupted rollback reported no loss"
(($(grep -vc ' current -> ' <<<"$base_releases") == 2)) || die "expected one process per service: $base_releases"
log "uninterrupted: $base_loss"

# Each point at its first pass, in the order first reached, and a point
# reached several times (once per stream, per restore chunk...) also at its
# last pass ("NAME#N"), to bound the runtime while killing in every stream.
mapfile -t points < <(awk '
  !($0 in n) { order[++k] = $0 }
  { n[$0]++ }
  END { for (i = 1; i <= k; i++) { print order[i]; if (n[order[i]] > 1) print order[i] "#" n[order[i]] } }
' "$WORK/points.log")
((${#points[@]} >= 5)) || die "only ${#points[@]} crash points reached: $(tr '\n' ' ' <"$WORK/points.log")"
log "${#points[@]} crash points: ${points[*]}"

for point in "${points[@]}"; do
  where="killed at $point"
  bs deploy orchestrator v2; expect_rc 1 "deploy v2 ($where)"
  crash_in "$point" rollback --all --to good || continue
  run_id=$CRASH_RUN_ID
  [[ -n "$run_id" ]] || { fail "no run id before the kill ($where)"; continue; }
  bs rollback --resume "$run_id"
  expect_rc 0 "resume ($where)"
  expect_eq "$(data_loss_line "$OUT")" "$base_loss" "summary's data-loss line ($where)"
  got=$(ledgers_of "$run_id")
  if [[ "$got" != "$base_ledgers" ]]; then
    fail "ledgers differ from the uninterrupted run's ($where)"
    diff <(echo "$base_ledgers") <(echo "$got") | head -n 20 | sed 's/^/    | /' >&2
  fi
  expect_eq "$(data_state)" "$base_data" "data ($where)"
  expect_eq "$(releases_state)" "$base_releases" "releases and processes ($where)"
done
