#!/usr/bin/env bash
# `backstop deploy` around the incident (issue 9): it takes a pre-deploy
# restore point of what it may change before any step acts (recorded in its
# run, the default target of the rollback that follows), --no-snapshot skips
# it, a failed restore point stops the deploy before it changes anything, and
# --atomic rolls back a release that fails its health gate, or one whose
# trigger fires within --watch-for, and exits 1 naming why.
source "$(dirname "$0")/lib.sh"
write_services_spec 0 1500ms
make_release "$WORK/webui" webui v3 true

count_pre_deploy() {
  bs snapshots -o json
  grep -o '"kind": *"pre-deploy"' <<<"$OUT" | wc -l | tr -d ' '
}

log "deploy takes a pre-deploy restore point of the service and the config it reads"
bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
expect_contains "$OUT" "Taking a pre-deploy restore point of config, orchestrator" "deploy output"
rp=$(grep -o 'restore point rp-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1 | cut -d' ' -f3)
[[ -n "$rp" ]] || die "no restore point id in: $OUT"
run=$(grep -o 'Run run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1 | cut -d' ' -f2)
bs snapshots -o json
expect_contains "$OUT" "\"id\": \"$rp\"" "snapshots"
expect_eq "$(count_pre_deploy)" 1 "pre-deploy restore points after the first deploy"
bs report "$run" -o json; expect_rc 0 "report of the deploy"
expect_contains "$OUT" "\"restore_point\": \"$rp\"" "the deploy run records its restore point"

log "--no-snapshot deploys without one"
bs deploy webui v1 --no-snapshot; expect_rc 0 "deploy webui v1 --no-snapshot"
[[ "$OUT" != *"pre-deploy"* ]] || fail "--no-snapshot took a restore point: $OUT"
expect_eq "$(count_pre_deploy)" 1 "pre-deploy restore points after --no-snapshot"

log "a rollback right after a deploy targets its pre-deploy restore point"
bs deploy webui v3; expect_rc 0 "deploy webui v3"
rp_v3=$(grep -o 'restore point rp-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1 | cut -d' ' -f3)
bs snapshot --label later; expect_rc 0 "a newer restore point"
bs plan rollback --all; expect_rc 0 "plan rollback --all"
expect_contains "$OUT" "$rp_v3" "default target of a rollback after a deploy"
bs deploy webui v1 --no-snapshot; expect_rc 0 "back to webui v1"

log "a failed pre-deploy restore point stops the deploy before it changes anything"
mv "$WORK/etc/app.json" "$WORK/app.json.saved"
mkdir "$WORK/etc/app.json"
bs deploy orchestrator v2; expect_rc 1 "deploy with a failing restore point"
expect_contains "$ERR" "deploy stopped before changing anything" "failed snapshot message"
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator after the refused deploy"
rmdir "$WORK/etc/app.json"
mv "$WORK/app.json.saved" "$WORK/etc/app.json"

log "--atomic rolls back a release that fails its health gate"
bs deploy orchestrator v2 --atomic; expect_rc 1 "deploy orchestrator v2 --atomic"
expect_contains "$ERR" "failed its health gate" "--atomic reason"
expect_contains "$ERR" "deploy rolled back" "--atomic outcome"
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator after --atomic"

log "--atomic --watch-for rolls back when a trigger fires within the window"
"$BACKSTOP_BIN" --spec "$SPEC" deploy webui v3 --atomic --watch-for 2m \
  >"$WORK/atomic.out" 2>"$WORK/atomic.err" &
atomic_pid=$!
at_exit "kill $atomic_pid"
wait_for 60 grep -q "Watching webui" "$WORK/atomic.out" ||
  die "the deploy did not start watching: $(cat "$WORK/atomic.out" "$WORK/atomic.err")"
expect_eq "$(service_version "$WEBUI_PORT")" v3 "webui while watched"
curl -fsS --max-time 5 --noproxy '*' -X POST -d '{"healthy": false}' \
  "http://127.0.0.1:$WEBUI_PORT/admin/health" >/dev/null || fail "could not turn webui's health off"
RC=0
wait "$atomic_pid" || RC=$?
OUT=$(cat "$WORK/atomic.out")
ERR=$(cat "$WORK/atomic.err")
expect_rc 1 "deploy webui v3 --atomic --watch-for 2m"
expect_contains "$ERR" "within --watch-for 2m, trigger health_check_failures fired for webui" \
  "--watch-for reason"
expect_contains "$ERR" "samples:" "--watch-for samples"
expect_contains "$ERR" "deploy rolled back" "--watch-for outcome"
expect_eq "$(service_version "$WEBUI_PORT")" v1 "webui after --atomic --watch-for"

log "--atomic --watch-for exits 0 when nothing fires"
bs deploy webui v3 --atomic --watch-for 3s; expect_rc 0 "deploy webui v3 --atomic --watch-for 3s"
expect_contains "$OUT" "no trigger fired within" "quiet window"
expect_eq "$(service_version "$WEBUI_PORT")" v3 "webui after a quiet window"
