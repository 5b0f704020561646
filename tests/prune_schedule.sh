#!/usr/bin/env bash
# Restore points without thinking about them (issue 9): `backstop watch`
# takes a scheduled restore point of the whole environment every
# restore_points.every of the spec, journals it (restore_point.taken) and
# applies restore_points.keep after each one, keeping a user-labelled one;
# `prune --dry-run --keep-last N` says why each kept restore point is kept.
source "$(dirname "$0")/lib.sh"
write_services_spec 0 1500ms
STATE="$WORK/.backstop"
cat >>"$SPEC" <<'YAML'
restore_points:
  every: 1s
  keep: {last: 2}
YAML

bs check; expect_rc 0 "check a spec with restore_points"
bs deploy orchestrator v1 --no-snapshot; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1 --no-snapshot; expect_rc 0 "deploy webui v1"
bs snapshot --label keepme; expect_rc 0 "a labelled restore point"

count_kind() {
  "$BACKSTOP_BIN" --spec "$SPEC" snapshots -o json | grep -o "\"kind\": *\"$1\"" | wc -l |
    tr -d ' '
}
taken() { sqlite3 "$STATE/state.db" "select count(*) from events where kind = 'restore_point.taken'"; }
three_taken() { (($(taken) >= 3)); }

log "watch takes scheduled restore points and applies the retention"
"$BACKSTOP_BIN" --spec "$SPEC" watch --listen off --log-format json >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 120 three_taken || die "no three scheduled restore points: $(tail -n 20 "$WORK/watch.log")"
kill -TERM "$WATCH_PID"
rc=0
wait "$WATCH_PID" || rc=$?
expect_eq "$rc" 0 "watch exit status after SIGTERM"
grep -q '"scheduled restore point taken"' "$WORK/watch.log" || fail "no log line for a scheduled restore point"
grep -q 'retention: delete restore point' "$WORK/watch.log" ||
  fail "no retention applied: $(grep retention "$WORK/watch.log")"
expect_eq "$(count_kind scheduled)" 2 "scheduled restore points kept (keep last 2)"
bs snapshots; expect_rc 0 "snapshots"
expect_contains "$OUT" "keepme" "the labelled restore point survives the retention"
message=$(sqlite3 "$STATE/state.db" "select message from events where kind = 'restore_point.taken' limit 1")
expect_contains "$message" "scheduled restore point rp-" "journal message"

log "prune --dry-run says what would go and why each kept one is kept"
bs prune --dry-run --keep-last 1; expect_rc 0 "prune --dry-run --keep-last 1"
expect_contains "$OUT" "retention: last 1" "prune policy line"
expect_contains "$OUT" ": last 1" "the newest is kept as last 1"
expect_contains "$OUT" "(keepme)" "the labelled one is listed as kept"
expect_contains "$OUT" "labelled keepme" "the labelled one's reason"
expect_contains "$OUT" "would delete restore point" "what would go"
expect_eq "$(count_kind scheduled)" 2 "a dry run deletes nothing"
bs prune --keep-last 1; expect_rc 0 "prune --keep-last 1"
expect_eq "$(count_kind scheduled)" 1 "scheduled restore points after prune --keep-last 1"
bs snapshots; expect_contains "$OUT" "keepme" "the labelled restore point survives prune"

log "a bad restore_points section is refused with its position"
sed -i 's/  every: 1s/  every: often/' "$SPEC"
bs check; expect_rc 2 "check a spec with a bad every"
expect_contains "$ERR" "backstop.yaml:" "error position"
expect_contains "$ERR" "restore_points.every: bad duration 'often'" "error message"
