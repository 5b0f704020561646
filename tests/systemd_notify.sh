#!/usr/bin/env bash
# `backstop watch` speaks systemd's notify protocol (src/watch/service_notify.h)
# as it would under the unit in examples/systemd/: this machine has no systemd
# as PID 1, so the test plays the manager, a unix datagram socket in $WORK
# named by NOTIFY_SOCKET, with WATCHDOG_USEC small. It checks READY=1 with a
# STATUS= line once the API answers, repeated WATCHDOG=1 pings from the control
# loop, STOPPING=1 on SIGTERM and no ping after it; and that without
# WATCHDOG_USEC, or with the watchdog meant for another process
# (WATCHDOG_PID), no ping is sent.
source "$(dirname "$0")/lib.sh"
write_services_spec
STATE="$WORK/.backstop"

bs deploy orchestrator v1
expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1
expect_rc 0 "deploy webui v1"

# listen SOCKET FILE: the manager's side; every datagram becomes one record of
# FILE, its lines joined by '|' (sd_notify sends newline-separated assignments).
listen() {
  python3 -u - "$1" "$2" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(out + ".ready", "w").close()
with open(out, "a") as f:
    while True:
        msg = s.recv(4096).decode()
        f.write(msg.strip().replace("\n", "|") + "\n")
        f.flush()
PY
  LISTENER_PID=$!
  at_exit "kill $LISTENER_PID"
  wait_for 10 test -e "$2.ready" || die "the notify listener did not start"
}
count() { grep -c -- "$1" "$2" || true; }

# --- Under a manager with a watchdog of 300 ms: pings every 150 ms or so.
NOTES="$WORK/notify.log"
listen "$WORK/notify.sock" "$NOTES"
NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=300000 \
  "$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 30 grep -q 'READY=1' "$NOTES" || die "no READY=1; log: $(cat "$WORK/watch.log")"
# Ready means the API listens: watch.json names it and it answers.
API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$STATE/watch.json")
http_get "$API/api/v1/status" >/dev/null || fail "READY=1 sent but the API does not answer"
READY_LINE=$(grep 'READY=1' "$NOTES" | head -n1)
expect_contains "$READY_LINE" "STATUS=watching 3 components" "READY=1 carries a status"
expect_eq "$(count READY=1 "$NOTES")" 1 "READY=1 sent once"
# Several pings, each from a later turn of the control loop.
pings_at_least() { (($(count WATCHDOG=1 "$NOTES") >= $1)); }
wait_for 30 pings_at_least 5 ||
  fail "fewer than 5 WATCHDOG=1 pings: $(cat "$NOTES")"
kill -TERM "$WATCH_PID"
rc=0
wait "$WATCH_PID" || rc=$?
expect_eq "$rc" 0 "watch exit status after SIGTERM"
wait_for 10 grep -q 'STOPPING=1' "$NOTES" || fail "no STOPPING=1: $(cat "$NOTES")"
LAST=$(tail -n1 "$NOTES")
expect_contains "$LAST" "STOPPING=1" "STOPPING=1 is the last message"
expect_contains "$LAST" "STATUS=stopping" "STOPPING=1 carries a status"

# --- A paused daemon says so in its status.
bs watch pause --reason "change freeze"
expect_rc 0 "watch pause"
: >"$NOTES"
NOTIFY_SOCKET="$WORK/notify.sock" "$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 \
  >"$WORK/watch-2.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 30 grep -q 'READY=1' "$NOTES" || die "no READY=1 (paused); log: $(cat "$WORK/watch-2.log")"
expect_contains "$(grep 'READY=1' "$NOTES")" "paused (change freeze)" "status of a paused daemon"
kill -TERM "$WATCH_PID"
wait "$WATCH_PID" || fail "watch (paused) did not exit 0"
wait_for 10 grep -q 'STOPPING=1' "$NOTES" || fail "no STOPPING=1 (paused)"
# No WATCHDOG_USEC: no pings.
expect_eq "$(count WATCHDOG=1 "$NOTES")" 0 "pings without WATCHDOG_USEC"

# --- The watchdog of another process (WATCHDOG_PID): no pings either.
: >"$NOTES"
NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=300000 WATCHDOG_PID=1 \
  "$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 >"$WORK/watch-3.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 30 grep -q 'READY=1' "$NOTES" || die "no READY=1 (WATCHDOG_PID); log: $(cat "$WORK/watch-3.log")"
kill -TERM "$WATCH_PID"
wait "$WATCH_PID" || fail "watch (WATCHDOG_PID) did not exit 0"
wait_for 10 grep -q 'STOPPING=1' "$NOTES" || fail "no STOPPING=1 (WATCHDOG_PID)"
expect_eq "$(count WATCHDOG=1 "$NOTES")" 0 "pings for another process's watchdog"

