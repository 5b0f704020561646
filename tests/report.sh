#!/usr/bin/env bash
# The incident report and the recovery checklist after a real rollback on the
# example environment (PostgreSQL, nats-server, the demo services):
# - the rollback writes report.json and report.md (0600) into its run's folder,
#   and so does a failed deploy that changed something;
# - report.json's fields agree with the journal (`backstop runs -o json`) and
#   the ledger (`backstop ledger -o json`); the recovery time is measured
#   against the decision matrix's row for the scope (--all: Partial migration failure);
# - `backstop report` prints the files, and rebuilds the same report when one is missing;
# - `backstop checklist` checks the machine items with their evidence, says the
#   performance baselines are not measured, finds the post-rollback restore point
#   (also in `backstop snapshots`); `checklist ack` records who and when, shown
#   in the checklist and the report; a machine item cannot be acknowledged.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging
# Performance is compared for real after the rollback: only changes no busy machine makes count.
export PERF_MIN_CHANGE=100ms PERF_THROUGHPUT_TOLERANCE=95%
start_mistersmith


bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
bs deploy orchestrator v2; expect_rc 1 "deploy orchestrator v2 (unhealthy, writes data)"
deploy_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT$ERR" | head -n1)
bs rollback --all --to good
expect_rc 0 "rollback to good"
run_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
[[ -n "$run_id" ]] || die "the rollback names no run"
run_dir="$BACKSTOP_STATE_DIR/runs/$run_id"

# 1. The files, private.
for f in report.json report.md; do
  [[ -f "$run_dir/$f" ]] || fail "no $f in $run_dir"
  expect_eq "$(stat -c %a "$run_dir/$f")" 600 "mode of $f"
done
[[ -n "$deploy_id" && -f "$BACKSTOP_STATE_DIR/runs/$deploy_id/report.json" ]] ||
  fail "the failed deploy ($deploy_id) that changed something has no report"

# 2. The report's fields against the journal and the ledger.
bs -o json runs; expect_rc 0 "runs -o json"; printf '%s' "$OUT" >"$WORK/runs.json"
bs -o json ledger "$run_id"; expect_rc 0 "ledger -o json"; printf '%s' "$OUT" >"$WORK/ledger.json"
py 'import json,sys
r = json.load(open(sys.argv[1])); runs = json.load(open(sys.argv[2]))["runs"]
ledger = json.load(open(sys.argv[3])); run_id = sys.argv[4]
run = next(x for x in runs if x["id"] == run_id); s = run["summary"]
def eq(a, b, what):
    assert a == b, "%s: report %r, journal %r" % (what, a, b)
eq(r["run_id"], run_id, "run id"); eq(r["kind"], run["kind"], "kind"); eq(r["status"], run["status"], "status")
eq(r["date"], run["started"], "date"); eq(r["triggered_by"]["command"], run["command"], "command")
eq(r["triggered_by"]["type"], "manual", "trigger type")
eq(r["components_affected"], s["affected"], "components"); eq(r["duration_ms"], s["duration_ms"], "total duration")
eq(r["post_restore_point"], s["post_restore_point"], "post-rollback restore point")
eq(r["data_loss"]["summary"], s["data_loss_summary"], "data loss summary")
eq(r["data_loss"]["any"], True, "data loss")
assert r["steps"] and all(x["status"] == "done" and x["duration_ms"] is not None for x in r["steps"]), r["steps"]
assert sum(x["duration_ms"] for x in r["steps"]) <= r["duration_ms"], "steps longer than the run"
# Per object: the report counts what the ledger lists, line for line.
lines = [l for l in ledger["lines"] if l.get("change", l.get("event")) != "rewound"]
for o in r["data_loss"]["objects"]:
    n = sum(1 for l in lines if l.get("table", l.get("stream")) == o["object"])
    eq(o["total"], n, "ledger lines of " + o["object"])
eq(sum(f["lines"] for f in r["data_loss"]["ledger_files"]), len(ledger["lines"]), "ledger file lines")
rec = r["recovery"]
eq(rec["scenario"], "Partial migration failure", "decision-matrix row of --all")
eq(rec["target_max_ms"], 20 * 60000, "target"); eq(rec["met"], True, "recovery met")
assert 0 <= rec["measured_ms"] <= r["duration_ms"], rec
whats = [m["what"] for m in r["timeline"]]
assert whats[0] == "rollback started" and whats.index("verified") < whats.index("run succeeded"), whats
assert whats[-1] == "restore_point.taken", whats  # taken once the run is verified' \
  "$run_dir/report.json" "$WORK/runs.json" "$WORK/ledger.json" "$run_id" || fail "report.json against the journal"
md=$(cat "$run_dir/report.md")
for heading in "# Rollback Incident Report" "**Date/Time:**" "**Triggered By:** manual" \
  "## Root Cause Analysis" "## Lessons Learned" "## Follow-up Actions" "## Timeline"; do
  expect_contains "$md" "$heading" "report.md"
done

# 3. backstop report prints the files.
bs report "$run_id"; expect_rc 0 "report"
expect_eq "$OUT" "$md" "backstop report prints report.md"
bs report latest -o json; expect_rc 0 "report -o json"
py 'import json,sys; assert json.loads(sys.argv[1]) == json.load(open(sys.argv[2]))' "$OUT" "$run_dir/report.json" ||
  fail "report -o json is not report.json"

# 4. The checklist.
post_rp=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["post_restore_point"])' "$run_dir/report.json")
bs -o json checklist "$run_id"
expect_rc 1 "checklist (the rollback discarded data: item 4 fails)"
printf '%s' "$OUT" >"$WORK/checklist.json"
py 'import json,sys
items = {i["id"]: i for i in json.load(open(sys.argv[1]))["items"]}
assert len(items) == 10, items.keys()
def st(i, want):
    assert items[i]["status"] == want, "%s: %s" % (i, items[i])
st("services-healthy", "ok"); st("database-integrity", "ok"); st("queues-operational", "ok")
st("no-data-loss", "failed"); st("alerts-cleared", "ok"); st("backups-updated", "ok")
st("performance-baselines", "ok")
assert items["performance-baselines"]["evidence"][0].startswith("performance within the baselines"), items["performance-baselines"]
assert "measured at the end of the rollback" in items["performance-baselines"]["evidence"][0], items["performance-baselines"]
assert any("ledger" in e for e in items["no-data-loss"]["evidence"]), items["no-data-loss"]
assert sys.argv[2] in items["backups-updated"]["evidence"][0], items["backups-updated"]
for i in ("user-access", "documentation-updated", "team-notified"): st(i, "awaiting acknowledgement")' \
  "$WORK/checklist.json" "$post_rp" || fail "checklist items"
bs -o json snapshots; expect_rc 0 "snapshots"
py 'import json,sys
rps = json.loads(sys.argv[1])["restore_points"]
assert any(r["id"] == sys.argv[2] and r["label"] == "post-rollback" for r in rps), rps' "$OUT" "$post_rp" ||
  fail "the post-rollback restore point $post_rp is not in backstop snapshots"

bs checklist ack "$run_id" services-healthy --by alice
expect_rc 2 "ack of an item Backstop checks"
bs checklist ack "$run_id" team-notified --by alice --note "posted in #ops"
expect_rc 0 "checklist ack"
bs checklist "$run_id"
expect_contains "$OUT" "acknowledged" "checklist after the ack"
expect_contains "$OUT" "by alice" "checklist names who acknowledged"
py 'import json,sys
a = json.load(open(sys.argv[1]))["checklist_acks"]
assert [(x["item"], x["by"], x["note"]) for x in a] == [("team-notified", "alice", "posted in #ops")], a' \
  "$run_dir/report.json" || fail "the report does not show the acknowledgement"

# 5. A missing report is rebuilt from the journal, the same.
cp "$run_dir/report.md" "$WORK/report.md"
rm "$run_dir/report.md"
bs report "$run_id"; expect_rc 0 "report without report.md"
expect_eq "$OUT" "$(cat "$WORK/report.md")" "the rebuilt report"
