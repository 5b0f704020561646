#!/usr/bin/env bash
# Notifications delivered from the queue on disk to three real local HTTP
# receivers: one refused (nothing listens), one that hangs, one that answers
# 500 then 200.
# - a rollback finishes (its run recorded succeeded) while the hanging
#   receiver still holds its request: delivery never holds up a run;
# - across a restart of backstop watch, the flaky receiver gets each event id
#   exactly once with a 200 (retried after its 500, never sent again after);
# - the refused receiver's notifications stay queued with their last error;
# - no URL token appears in any output.
source "$(dirname "$0")/lib.sh"
write_services_spec

RECV="$WORK/recv"; mkdir -p "$RECV"
REFUSED_PORT=$(free_port); HANG_PORT=$(free_port); FLAKY_PORT=$(free_port)
for m in hang flaky; do
  port=$HANG_PORT; [[ $m == flaky ]] && port=$FLAKY_PORT
  python3 "$(dirname "$0")/data/notify_receiver.py" "$port" "$m" "$RECV" &
  at_exit "kill $! 2>/dev/null"
  wait_for 10 test -e "$RECV/$m.ready" || die "receiver $m did not start"
done
at_exit "touch '$RECV/release'"  # lets a hung handler end
cat >>"$SPEC" <<YAML
notify:
  - name: refused
    type: webhook
    url: "http://127.0.0.1:$REFUSED_PORT/hook?token=sekret-refused"
    on: [rollback_started, rollback_finished, rollback_failed]
  - name: hang
    type: webhook
    url: "http://127.0.0.1:$HANG_PORT/hook?token=sekret-hang"
    on: [rollback_started, rollback_finished, rollback_failed]
  - name: flaky
    type: webhook
    url: "http://127.0.0.1:$FLAKY_PORT/hook?token=sekret-flaky"
    on: [rollback_started, rollback_finished, rollback_failed]
YAML
bs check; expect_rc 0 check

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot

# The rollback ends while the hanging receiver still holds the first request.
bs rollback --all --to good; expect_rc 0 "rollback --all"
run_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
[[ -e "$RECV/hang-started" ]] || fail "the hanging receiver was never called"
[[ ! -e "$RECV/hang-ended" ]] || fail "the hanging receiver answered: the test proves nothing"
bs -o json runs; expect_rc 0 runs
python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin)["runs"] if x["id"]==sys.argv[1]][0]; assert r["status"]=="succeeded", r' \
  "$run_id" <<<"$OUT" || fail "the rollback is not recorded succeeded while the receiver hangs"

# backstop watch delivers the rest, is stopped, restarted, and sends nothing twice.
for round in 1 2; do
  "$BACKSTOP_BIN" --spec "$SPEC" watch --listen off >"$WORK/watch$round.log" 2>&1 &
  watch_pid=$!
  at_exit "kill $watch_pid 2>/dev/null"
  # Every event of the rollback reaches the flaky receiver with a 200 (after its 500).
  wait_for 300 bash -c "[[ \$(sort -u '$RECV/flaky.log' 2>/dev/null | wc -l) -ge 6 ]]" ||
    die "the flaky receiver did not get every event (round $round)"
  kill "$watch_pid"; wait "$watch_pid" 2>/dev/null || true
done
expect_eq "$(sort "$RECV/flaky.log" | uniq -d)" "" "event ids delivered twice to the flaky receiver"

sqlite3 "${BACKSTOP_STATE_DIR:-$WORK/.backstop}/state.db" \
  "select count(*) from deliveries where target='refused' and delivered_us=0 and last_error<>''" \
  >"$WORK/refused"
[[ $(cat "$WORK/refused") -gt 0 ]] || fail "the refused receiver's notifications are not queued with an error"
for f in "$WORK"/watch*.log; do
  ! grep -q sekret "$f" || fail "a URL token appears in $f"
done
! grep -q sekret <<<"$OUT$ERR" || fail "a URL token appears in the command's output"
