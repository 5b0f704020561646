#!/usr/bin/env bash
# The web dashboard in a real browser (Debian's chromium, driven by
# playwright-core from web/node_modules/, no browser download) against a real
# `backstop watch` over two demo services and a config file, in a protected
# environment: tests/dashboard.mjs loads each page, checks the DOM against the
# real state, pauses through the page, deploys an unhealthy release and sees
# the trigger go pending then firing (held: paused), resumes through the page
# and sees the automatic rollback's run and its timeline, then rolls back
# everything through the page (plan first, the environment's name typed), and
# checks the 401 paths without a token or with a wrong one. Screenshots of
# every page go to <build>/test-artifacts/dashboard/.
source "$(dirname "$0")/lib.sh"
command -v chromium >/dev/null || die "chromium is missing: scripts/install-deps --test"
[[ -d "$BACKSTOP_SOURCE_DIR/web/node_modules/playwright-core" ]] ||
  die "web/node_modules/playwright-core is missing: scripts/install-deps"

write_services_spec
sed -i 's/^environment: test$/environment: staging-dash\nprotected: true/' "$SPEC"
STATE="$WORK/.backstop"
ARTIFACTS="${BACKSTOP_BUILD_DIR:-$WORK}/test-artifacts/dashboard"
rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"

bs deploy orchestrator v1
expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1
expect_rc 0 "deploy webui v1"
bs snapshot --label before-v2
expect_rc 0 snapshot

"$BACKSTOP_BIN" --spec "$SPEC" watch --listen 127.0.0.1:0 --cooldown 1m \
  >>"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
at_exit "kill -9 $WATCH_PID"
wait_for 20 test -s "$STATE/watch.json" || die "watch did not start: $(cat "$WORK/watch.log")"
API=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$STATE/watch.json")
TOKEN=$(head -n1 "$STATE/api-token")

# The browser test itself; it runs `backstop deploy` through BACKSTOP_BIN and SPEC.
if ! BACKSTOP_BIN="$BACKSTOP_BIN" SPEC="$SPEC" API="$API" TOKEN="$TOKEN" ARTIFACTS="$ARTIFACTS" \
  ORCH_PORT="$ORCH_PORT" node "$(dirname "$0")/dashboard.mjs" 2>&1 | tee "$WORK/browser.log"; then
  fail "the browser test failed; watch log: $(tail -n 30 "$WORK/watch.log")"
fi
grep -q '^dashboard: all checks passed$' "$WORK/browser.log" || fail "the browser test did not finish"

# What the page did is logged with who did it (the run records carry it too: dashboard.mjs).
grep -q '"automatic actions paused"\|automatic actions paused' "$WORK/watch.log" || fail "pause not logged"
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator back on v1 after the page's rollback"
kill -TERM "$WATCH_PID"
wait "$WATCH_PID" || fail "watch exit status after SIGTERM"
