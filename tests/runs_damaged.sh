#!/usr/bin/env bash
# `backstop runs` with one damaged row in the journal (a kind Backstop does not
# write): the other runs are still listed, the damaged one is shown as such
# with the Corruption message, and the command exits 3 (Corruption) at the end.
source "$(dirname "$0")/lib.sh"
write_services_spec 0 1500ms
STATE="$WORK/.backstop"

bs deploy orchestrator v1 --no-snapshot; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1 --no-snapshot; expect_rc 0 "deploy webui v1"
bs runs; expect_rc 0 "runs with an intact journal"
good=$(sqlite3 "$STATE/state.db" "SELECT id FROM runs ORDER BY started_us LIMIT 1")
bad=$(sqlite3 "$STATE/state.db" "SELECT id FROM runs ORDER BY started_us DESC LIMIT 1")
[[ -n "$good" && -n "$bad" && "$good" != "$bad" ]] || die "expected two runs, got '$good' and '$bad'"
sqlite3 "$STATE/state.db" "UPDATE runs SET kind = 'reboot' WHERE id = '$bad'"

bs runs
expect_rc 3 "runs with a damaged row"
expect_contains "$OUT" "$good" "runs lists the intact run"
expect_contains "$(grep -F "$good" <<<"$OUT")" "succeeded" "the intact run's row"
expect_contains "$(grep -F "$bad" <<<"$OUT")" "DAMAGED" "the damaged run's row"
expect_contains "$ERR" "run $bad in the state database (table runs): kind 'reboot' is not one Backstop writes" \
  "the Corruption message"

bs runs --output json
expect_rc 3 "runs --output json with a damaged row"
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(d["ok"], len(d["runs"]))' <<<"$OUT")" \
  "False 2" "the JSON lists both rows and is not ok"
expect_eq "$(py 'import json,sys; r=json.load(sys.stdin)["runs"]; print([x["id"] for x in r if "damaged" in x])' <<<"$OUT")" \
  "['$bad']" "the JSON marks the damaged row"
