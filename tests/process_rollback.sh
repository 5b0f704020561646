#!/usr/bin/env bash
# The foundation loop against real child processes: v1 healthy -> restore
# point -> deploy v2 (unhealthy) -> verify fails -> rollback -> v1, healthy.
source "$(dirname "$0")/lib.sh"
write_services_spec

bs check
expect_rc 0 check

bs deploy orchestrator v1
expect_rc 0 deploy orchestrator v1
bs deploy webui v1
expect_rc 0 deploy webui v1
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator version"

bs snapshot --label before-v2
expect_rc 0 snapshot
expect_contains "$OUT" "before-v2"

echo '{"mode": "v2"}' >"$WORK/etc/app.json"
bs deploy orchestrator v2 --no-snapshot  # the config edit above is not the deploy's: roll back to before-v2
expect_rc 1 "deploy orchestrator v2 (unhealthy)"
expect_contains "$OUT$ERR" "health check did not pass"

bs verify
expect_rc 1 "verify with v2"
expect_contains "$OUT" "unhealthy"

bs history orchestrator
expect_contains "$OUT" "failed"

bs plan rollback --all
expect_rc 0 plan
expect_contains "$OUT" "stop webui"

bs rollback --all
expect_rc 0 "rollback --all"
expect_contains "$OUT" "succeeded"
expect_contains "$OUT" "Data loss: none"

bs verify
expect_rc 0 "verify after rollback"
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator version after rollback"
expect_eq "$(cat "$WORK/etc/app.json")" '{"mode": "v1"}' "config restored"
expect_eq "$(readlink "$WORK/orchestrator/current")" "$WORK/orchestrator/releases/v1" "current symlink"

# The rollback can itself be undone: its safety restore point holds v2.
bs snapshots
expect_contains "$OUT" "safety"
expect_contains "$OUT" "SIZE (ADDED)"
# Sizes: what each names as stored, and what it added; the blobs are shared,
# so the newest (the post-rollback one, the state of the first) added less than it names.
bs --output json snapshots
py 'import json, os, sys
d = json.loads(sys.argv[1]); rps = d["restore_points"]
assert len(rps) >= 3, rps
for rp in rps:  # a pre-deploy one of a service with nothing to store names no blob
    assert 0 <= rp["added_bytes"] <= rp["stored_bytes"], rp
    assert rp["missing_blobs"] == 0, rp
assert rps[0]["stored_bytes"] > 0 and rps[0]["added_bytes"] == rps[0]["stored_bytes"], rps[0]
assert rps[-1]["kind"] == "post-rollback" and rps[-1]["added_bytes"] < rps[-1]["stored_bytes"], rps[-1]
' "$OUT" || fail "restore point sizes: $OUT"

# A component rollback to the previous release, by history.
bs deploy webui v2
expect_rc 1 "deploy webui v2"
bs rollback --component webui
expect_rc 0 "rollback --component webui (previous release)"
bs history webui
expect_contains "$OUT" "Rollback to release v1"

bs verify --output json
expect_rc 0 "verify json"
expect_contains "$OUT" '"ok": true'

# A rollback that fails part-way (to a release that never becomes healthy)
# is shown by status, can be retried with --resume, and abandoned.
bs rollback --component orchestrator --to v2
expect_rc 1 "rollback to an unhealthy release"
failed_run=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
bs status
expect_contains "$OUT" "FAILED PART-WAY" "status after a failed rollback"
expect_contains "$OUT" "--resume $failed_run" "status after a failed rollback"
bs rollback --resume "$failed_run"
expect_rc 1 "resume of a rollback that still cannot succeed"
bs rollback --abandon "$failed_run"
expect_rc 0 "abandon"
bs rollback --component orchestrator --to v1
expect_rc 0 "rollback to v1 after abandoning"

# A release directory deleted by hand is rebuilt from the restore point that
# holds its files ("before-v2"), not a reason to leave the service stopped.
bs deploy orchestrator v2
expect_rc 1 "deploy orchestrator v2 again"
rm -rf "$WORK/orchestrator/releases/v1"
bs rollback --component orchestrator
expect_rc 0 "rollback --component orchestrator with releases/v1 deleted"
expect_eq "$(service_version "$ORCH_PORT")" v1 "orchestrator version after rebuilding v1"
[[ -x "$WORK/orchestrator/releases/v1/bin/orchestrator" ]] || fail "releases/v1 was not rebuilt"

bs stop --all
expect_rc 0 "stop --all"
