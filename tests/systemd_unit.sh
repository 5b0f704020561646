#!/usr/bin/env bash
# examples/systemd/backstop-watch.service passes `systemd-analyze verify` (with
# ExecStart pointing at the binary under test) with no warning, and keeps the
# settings the daemon relies on. systemd is not PID 1 on the test machines,
# so the unit is not started here: tests/systemd_notify.sh plays the service
# manager against the real daemon instead.
source "$(dirname "$0")/lib.sh"
UNIT_SRC="$BACKSTOP_SOURCE_DIR/examples/systemd/backstop-watch.service"
command -v systemd-analyze >/dev/null || die "systemd-analyze is not installed (package systemd)"

mkdir -p "$WORK/units"
UNIT="$WORK/units/backstop-watch.service"
sed "s#^ExecStart=/usr/local/bin/backstop #ExecStart=$BACKSTOP_BIN #" "$UNIT_SRC" >"$UNIT"
grep -q "^ExecStart=$BACKSTOP_BIN watch" "$UNIT" || die "ExecStart is not /usr/local/bin/backstop watch ..."
run systemd-analyze verify "$UNIT"
expect_rc 0 "systemd-analyze verify"
# Unknown or misspelt keys are only warnings: none may appear.
expect_eq "$ERR$OUT" "" "systemd-analyze verify output"

# What the daemon and its drivers rely on (see the comments in the unit).
for setting in Type=notify NotifyAccess=main WatchdogSec=30s Restart=on-failure KillMode=process \
  ProtectSystem=strict StateDirectory=backstop PrivateTmp=yes NoNewPrivileges=yes; do
  grep -qx -- "$setting" "$UNIT" || fail "the unit lacks $setting"
done
grep -q '^ReadWritePaths=' "$UNIT" || fail "the unit lacks ReadWritePaths (release trees, config files)"

# The command line the unit runs is one backstop accepts.
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
read -r -a ARGS <<<"$EXEC"
run "${ARGS[@]}" --help
expect_rc 0 "the unit's ExecStart with --help"

# A broken unit is caught (the check can fail).
sed 's/^WatchdogSec=/WatchdogSecs=/' "$UNIT" >"$WORK/units/broken.service"
run systemd-analyze verify "$WORK/units/broken.service"
[[ -n "$ERR$OUT" ]] || fail "systemd-analyze verify did not complain about an unknown key"

if [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; then
  log "systemd is PID 1 here, but starting the unit for real is not part of this test yet"
else
  log "systemd is not PID 1: the unit is verified, not started"
fi
