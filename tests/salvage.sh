#!/usr/bin/env bash
# `backstop ledger` and `backstop salvage` as a user runs them after a
# rollback, against real PostgreSQL and nats-server (the mistersmith system):
# - the ledger lists the discarded rows and messages and the positions moved
#   back; --table/--stream filter it; -o json carries the same lines;
# - salvage exports exactly the discarded rows of a table (every column),
#   narrowed by --where or --keys; --apply writes them back in one
#   transaction, a second --apply of the same rows conflicts and changes
#   nothing; a protected environment refuses --apply without --confirm;
# - salvage exports the discarded messages of a stream and --apply
#   republishes them;
# - an unknown run, component, table or stream is bad input that changes nothing.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging
start_mistersmith

sql() { psql_as "$PGPORT" mistersmith -qAt -c "$1"; }
table_digest() {  # a digest of every table's content, ordered
  sql "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (
       SELECT 'a'||a::text FROM agents a UNION ALL SELECT 't'||t::text FROM tasks t
       UNION ALL SELECT 'd'||d::text FROM discoveries d UNION ALL SELECT 'h'||h::text FROM hive_sessions h) t(t)"
}
counts() { "$DEMO_SEED" counts --database "$DB" --nats "$NATS_URL"; }
lines_of() { grep -c . "$1" || true; }  # lines of a file (0 when empty)
# The ledger's text lines whose OBJECT and CHANGE columns are these.
ledger_lines() { awk -v o="$1" -v c="$2" '$2 == o && $3 == c' <<<"$OUT" | wc -l | tr -d ' '; }

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 snapshot
good_digest=$(table_digest)
good_counts=$(counts)
bs deploy orchestrator v2; expect_rc 1 "deploy orchestrator v2 (unhealthy, writes data)"
bs rollback --all --to good
expect_rc 0 "rollback to good"
run_id=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
[[ -n "$run_id" ]] || die "the rollback names no run"
expect_eq "$(table_digest)" "$good_digest" "database after the rollback"
expect_eq "$(counts)" "$good_counts" "counts after the rollback"

# 1. The ledger: v2 inserted 25 tasks and 1 agent, changed 3 tasks, deleted 2
#    discoveries, published 20 + 20 messages; the tasks' sequence moved back.
bs ledger "$run_id"
expect_rc 0 "ledger"
expect_contains "$OUT" "Run $run_id" "ledger header"
expect_eq "$(ledger_lines tasks inserted)" 25 "inserted tasks in the ledger"
expect_eq "$(ledger_lines tasks changed)" 3 "changed tasks in the ledger"
expect_eq "$(ledger_lines agents inserted)" 1 "inserted agents in the ledger"
expect_eq "$(ledger_lines discoveries deleted)" 2 "deleted discoveries in the ledger"
expect_eq "$(ledger_lines MisterSmith-Tasks published)" 20 "task messages in the ledger"
expect_eq "$(ledger_lines MisterSmith-Results published)" 20 "result messages in the ledger"
expect_contains "$OUT" "tasks_id_seq" "the ledger shows the tasks' sequence"
[[ $(awk '$3 == "rewound"' <<<"$OUT" | wc -l) -ge 2 ]] || fail "the ledger lists no positions moved back"
all_lines=$(awk '$3 ~ /^(inserted|changed|deleted|published)$/' <<<"$OUT" | wc -l | tr -d ' ')
expect_eq "$all_lines" 71 "discarded lines in the ledger (31 rows, 40 messages)"
expect_eq "$(ledger_lines public.tasks_id_seq rewound)" 1 "the tasks' sequence is listed once"
expect_eq "$(awk '$1 == "postgres" && $2 == "rewound"' <<<"$OUT" | wc -l | tr -d ' ')" 0 \
  "ledger lines without an object (a sequence listed twice)"

bs ledger "$run_id" --table tasks
expect_rc 0 "ledger --table tasks"
expect_eq "$(awk '$3 ~ /^(inserted|changed|deleted|published)$/' <<<"$OUT" | wc -l | tr -d ' ')" 28 \
  "lines of ledger --table tasks"
expect_eq "$(ledger_lines tasks inserted)" 25 "ledger --table tasks: inserted"
expect_eq "$(ledger_lines public.tasks_id_seq rewound)" 1 "ledger --table tasks shows the tasks' sequence moved back"
expect_eq "$(ledger_lines public.agents_id_seq rewound)" 0 "ledger --table tasks shows another table's sequence"
rows_only=$(grep -v '^Data loss:' <<<"$OUT")  # the run's summary names everything
[[ "$rows_only" != *MisterSmith* && "$rows_only" != *discoveries* ]] || { fail "ledger --table tasks shows other objects"; printf "%s\n" "$OUT" >&2; }

bs ledger "$run_id" --stream MisterSmith-Tasks
expect_rc 0 "ledger --stream"
expect_eq "$(awk '$3 ~ /^(inserted|changed|deleted|published)$/' <<<"$OUT" | wc -l | tr -d ' ')" 20 \
  "lines of ledger --stream MisterSmith-Tasks"
rows_only=$(grep -v '^Data loss:' <<<"$OUT")
[[ "$rows_only" != *MisterSmith-Results* && "$rows_only" != *" tasks "* && "$rows_only" != *_seq* ]] || { fail "ledger --stream shows other objects"; printf "%s\n" "$OUT" >&2; }

bs -o json ledger "$run_id"
expect_rc 0 "ledger -o json"
printf '%s' "$OUT" >"$WORK/ledger.json"
py 'import json,sys
d = json.load(open(sys.argv[1]))
n = lambda obj, ch: sum(1 for l in d["lines"] if l.get("table", l.get("stream")) == obj and l.get("change", l.get("event")) == ch)
got = [n("tasks","inserted"), n("tasks","changed"), n("agents","inserted"), n("discoveries","deleted"),
       n("MisterSmith-Tasks","published"), n("MisterSmith-Results","published"),
       sum(1 for l in d["lines"] if l.get("change") != "rewound"),
       sorted(l["sequence"] for l in d["lines"] if l.get("change") == "rewound")]
want = [25, 3, 1, 2, 20, 20, 71, ["public.agents_id_seq", "public.tasks_id_seq"]]
assert d["ok"] and d["run"] == sys.argv[2], d
assert got == want, "json ledger counts %s, expected %s" % (got, want)
assert d["data_loss"]["rewinds"], "json ledger: no rewinds"' "$WORK/ledger.json" "$run_id" ||
  fail "ledger -o json"

# 2. Export: exactly the discarded task rows (inserted or changed), every column.
bs salvage "$run_id" --component postgres --table tasks --output "$WORK/tasks.jsonl"
expect_rc 0 "salvage tasks"
expect_contains "$OUT" "exported 28 rows of tasks" "salvage summary"
expect_eq "$(lines_of "$WORK/tasks.jsonl")" 28 "exported task rows"
py 'import json,sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cols = {"id", "assigned_agent_id", "description", "status", "created_at"}
for r in rows:
    assert r["table"] == "tasks", r
    assert set(r["row"]) == cols, "columns %s" % sorted(r["row"])
    assert r["key"] == {"id": r["row"]["id"]}, r
v2 = sorted(r["row"]["description"] for r in rows if r["row"]["description"].startswith("v2 task "))
assert v2 == sorted("v2 task %d" % g for g in range(1, 26)), v2
assert sum(r["row"]["status"] == "v2-migrated" for r in rows) == 3, "changed rows carry their v2 values"' \
  "$WORK/tasks.jsonl" || fail "the exported rows are not the discarded ones"
[[ "$(stat -c %a "$WORK/tasks.jsonl")" == 600 ]] || fail "the export is not private (0600)"

bs -o json salvage "$run_id" --component postgres --table tasks --output "$WORK/tasks-json.jsonl"
expect_rc 0 "salvage -o json"
py 'import json,sys
d = json.loads(sys.argv[1])
assert d["ok"] and d["exported"] == 28 and d["applied"] == 0 and d["conflicts"] == [], d' "$OUT" ||
  fail "salvage -o json"
cmp -s "$WORK/tasks.jsonl" "$WORK/tasks-json.jsonl" || fail "two exports of the same rows differ"

bs salvage "$run_id" --component postgres --table tasks --where "status = 'v2-migrated'" \
  --output "$WORK/changed.jsonl"
expect_rc 0 "salvage --where"
expect_eq "$(lines_of "$WORK/changed.jsonl")" 3 "rows of salvage --where"

# --keys: ledger keys, or whole ledger lines.
first_two=$(py 'import json,sys
rows = sorted((json.loads(l) for l in open(sys.argv[1])), key=lambda r: r["row"]["id"])
new = [r for r in rows if r["row"]["description"].startswith("v2 task ")]
print(json.dumps(new[0]["key"])); print(json.dumps({"table": "tasks", "key": new[1]["key"]}))' "$WORK/tasks.jsonl")
printf '%s\n' "$first_two" >"$WORK/keys.jsonl"
bs salvage "$run_id" --component postgres --table tasks --keys "$WORK/keys.jsonl" --output "$WORK/two.jsonl"
expect_rc 0 "salvage --keys"
expect_eq "$(lines_of "$WORK/two.jsonl")" 2 "rows of salvage --keys"
expect_eq "$(table_digest)" "$good_digest" "exports change nothing"

# 3. Apply. A choice with a conflict (a changed row, whose key the restored
#    database still holds) applies nothing, not even the rows that would fit.
py 'import json,sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps([r for r in rows if r["row"]["status"] == "v2-migrated"][0]["key"]))' \
  "$WORK/tasks.jsonl" >>"$WORK/keys.jsonl"
bs salvage "$run_id" --component postgres --table tasks --keys "$WORK/keys.jsonl" \
  --output "$WORK/mixed.jsonl" --apply
expect_rc 1 "salvage --apply with a conflict"
expect_contains "$ERR" "conflict" "salvage --apply with a conflict"
expect_contains "$OUT" "applied nothing" "salvage --apply with a conflict"
expect_eq "$(table_digest)" "$good_digest" "database after an apply with a conflict"

# Protected environment: refused before anything is read or written.
BACKSTOP_ENVIRONMENT=production bs salvage "$run_id" --component postgres --table tasks \
  --where "description LIKE 'v2 task %'" --output "$WORK/prod.jsonl" --apply
expect_rc 3 "salvage --apply without --confirm in production"
expect_contains "$OUT$ERR" "--confirm" "the refusal says what to do"
expect_eq "$(table_digest)" "$good_digest" "database after the refused apply"
[[ ! -e "$WORK/prod.jsonl" ]] || fail "the refused apply wrote an export"

bs salvage "$run_id" --component postgres --table tasks --where "description LIKE 'v2 task %'" \
  --output "$WORK/new.jsonl" --apply
expect_rc 0 "salvage --apply"
expect_contains "$OUT" "applied 25 back into postgres" "salvage --apply"
expect_eq "$(lines_of "$WORK/new.jsonl")" 25 "rows of the applied export"
sql "SELECT to_jsonb(t)::text FROM tasks t WHERE description LIKE 'v2 task %' ORDER BY id" >"$WORK/live.jsonl"
py 'import json,sys
exported = sorted((json.loads(l)["row"] for l in open(sys.argv[1])), key=lambda r: r["id"])
live = [json.loads(l) for l in open(sys.argv[2])]
assert exported == live, "live rows differ from the exported ones:\n%s\n%s" % (exported[:2], live[:2])' \
  "$WORK/new.jsonl" "$WORK/live.jsonl" || fail "the applied rows are not in the database with their values"
# The tasks' sequence moved past the salvaged keys: the next insert does not collide.
sql "INSERT INTO tasks (description) VALUES ('after salvage')" || fail "insert after the salvage"
applied_digest=$(table_digest)

bs salvage "$run_id" --component postgres --table tasks --where "description LIKE 'v2 task %'" \
  --output "$WORK/again.jsonl" --apply
expect_rc 1 "a second salvage --apply of the same rows"
expect_eq "$(grep -c '^conflict:' <<<"$ERR" | tr -d ' ')" 25 "conflicts of the second apply"
expect_contains "$OUT" "applied nothing" "the second apply"
expect_eq "$(table_digest)" "$applied_digest" "database after the second apply"

# 4. Messages: export the stream's discarded messages, then republish them.
bs salvage "$run_id" --component nats --stream MisterSmith-Tasks --output "$WORK/msgs.jsonl"
expect_rc 0 "salvage --stream"
expect_contains "$OUT" "exported 20 messages of MisterSmith-Tasks" "salvage --stream summary"
expect_eq "$(lines_of "$WORK/msgs.jsonl")" 20 "exported messages"
py 'import base64,json,sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
assert all(m["stream"] == "MisterSmith-Tasks" and m["subject"] == "mistersmith.tasks.v2" for m in msgs), msgs[0]
data = sorted(json.loads(base64.b64decode(m["data"]))["v2"] for m in msgs)
assert data == list(range(1, 41, 2)), data' "$WORK/msgs.jsonl" || fail "the exported messages are not the discarded ones"

# --keys: message sequences, bare or as ledger lines.
printf '%s\n' 101 '{"sequence": 103, "stream": "MisterSmith-Tasks"}' >"$WORK/seqs.jsonl"
bs salvage "$run_id" --component nats --stream MisterSmith-Tasks --keys "$WORK/seqs.jsonl" \
  --output "$WORK/two-msgs.jsonl"
expect_rc 0 "salvage --stream --keys"
expect_eq "$(py 'import json,sys; print(sorted(json.loads(l)["sequence"] for l in open(sys.argv[1])))' \
  "$WORK/two-msgs.jsonl")" "[101, 103]" "messages of salvage --stream --keys"

tasks_before=$(counts | grep -o 'MisterSmith-Tasks=[0-9]*')
bs salvage "$run_id" --component nats --stream MisterSmith-Tasks --output "$WORK/msgs2.jsonl" --apply
expect_rc 0 "salvage --stream --apply"
expect_contains "$OUT" "applied 20 back into nats" "salvage --stream --apply"
expect_eq "$(counts | grep -o 'MisterSmith-Tasks=[0-9]*')" "MisterSmith-Tasks=$((${tasks_before#*=} + 20))" \
  "stream messages after the republish"
expect_contains "$(counts)" "MisterSmith-Results=60" "the other stream is left alone"
# A second apply of the same messages: conflicts, nothing delivered twice.
republished_counts=$(counts)
bs salvage "$run_id" --component nats --stream MisterSmith-Tasks --output "$WORK/msgs3.jsonl" --apply
expect_rc 1 "a second salvage --stream --apply of the same messages"
expect_eq "$(grep -c '^conflict:.*republished it' <<<"$ERR" | tr -d ' ')" 20 "conflicts of the second republish"
expect_contains "$OUT" "applied nothing" "the second republish"
expect_eq "$(counts)" "$republished_counts" "streams after the second republish"

# 5. Bad input: a clear error, exit 2, nothing changed, no export written.
final_digest=$(table_digest)
final_counts=$(counts)
bad() {  # bad WHAT NEEDLE ARGS...: the salvage or ledger is refused as bad input
  local what=$1 needle=$2
  shift 2
  rm -f "$WORK/bad.jsonl"
  bs "$@"
  expect_rc 2 "$what"
  expect_contains "$OUT$ERR" "$needle" "the error for $what"
  log "$what: $ERR"
  [[ ! -e "$WORK/bad.jsonl" ]] || fail "$what wrote an export"
}
bad "unknown run" "run-nope" salvage run-nope --component postgres --table tasks --output "$WORK/bad.jsonl" --apply
bad "ledger of an unknown run" "run-nope" ledger run-nope
bad "unknown component" "no component named 'nope'" \
  salvage "$run_id" --component nope --table tasks --output "$WORK/bad.jsonl" --apply
bad "unknown table" "no table nope" \
  salvage "$run_id" --component postgres --table nope --output "$WORK/bad.jsonl" --apply
bad "unknown stream" "no stream Nope" \
  salvage "$run_id" --component nats --stream Nope --output "$WORK/bad.jsonl" --apply
bad "--table on a stream component" "--table is for a database component" \
  salvage "$run_id" --component nats --table tasks --output "$WORK/bad.jsonl" --apply
bad "--keys file missing" "no such file" salvage "$run_id" --component postgres --table tasks \
  --keys "$WORK/missing.jsonl" --output "$WORK/bad.jsonl" --apply
echo '{"id": 99999}' >"$WORK/stray-key.jsonl"
bad "a key the run did not discard" "99999" salvage "$run_id" --component postgres --table tasks \
  --keys "$WORK/stray-key.jsonl" --output "$WORK/bad.jsonl" --apply
echo 99999 >"$WORK/stray-seq.jsonl"
bad "a sequence the run did not discard" "99999" salvage "$run_id" --component nats \
  --stream MisterSmith-Tasks --keys "$WORK/stray-seq.jsonl" --output "$WORK/bad.jsonl" --apply
bad "a --where that is not SQL" "--where" salvage "$run_id" --component postgres --table tasks \
  --where "no such column = 1" --output "$WORK/bad.jsonl" --apply
expect_eq "$(table_digest)" "$final_digest" "database after the bad input"
expect_eq "$(counts)" "$final_counts" "counts after the bad input"

