#!/usr/bin/env bash
# The command line of issue 7 against real child processes: `ledger`,
# `salvage` argument errors, `prune` bounds, refusals (exit 3) for resuming a
# finished run and for a target recorded unhealthy, and `rollback --all` to a
# config-only restore point restarting the services that read the config.
source "$(dirname "$0")/lib.sh"
write_services_spec 0 1500ms
STATE="$WORK/.backstop"

bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label good; expect_rc 0 "snapshot good"
bs snapshot --label config-only --component config; expect_rc 0 "snapshot of config only"

# prune: a negative count is bad input, not "keep everything".
bs prune --keep-runs -1
expect_rc 2 "prune --keep-runs -1"
expect_contains "$ERR" "keep-runs" "prune --keep-runs -1"
bs prune --keep-restore-points -3
expect_rc 2 "prune --keep-restore-points -3"

# A config-only restore point restores the config and restarts its dependents.
echo '{"mode": "changed"}' >"$WORK/etc/app.json"
bs rollback --all --to config-only
expect_rc 0 "rollback --all to a config-only restore point"
expect_contains "$OUT" "stop orchestrator" "rollback --all to config-only"
expect_contains "$OUT" "start webui" "rollback --all to config-only"
expect_eq "$(cat "$WORK/etc/app.json")" '{"mode": "v1"}' "config after rollback --all to config-only"
config_run=$(grep -o 'run-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)

# Resuming a finished run is a refusal.
bs rollback --resume "$config_run"
expect_rc 3 "resume of a finished run"
expect_contains "$ERR" "already succeeded" "resume of a finished run"
bs rollback --abandon "$config_run"
expect_rc 3 "abandon of a finished run"

# ledger: a run that discarded nothing, then one whose ledger lists rows and messages.
bs ledger "$config_run"
expect_rc 0 "ledger of a run without loss"
expect_contains "$OUT" "nothing discarded" "ledger of a run without loss"
bs ledger run-nope
expect_rc 2 "ledger of an unknown run"
bs ledger
expect_rc 2 "ledger without a run"
mkdir -p "$STATE/runs/$config_run"
cat >"$STATE/runs/$config_run/ledger-db.jsonl" <<'JSONL'
{"table": "public.orders", "change": "inserted", "key": {"id": 41}}
{"table": "public.orders", "change": "changed", "key": {"id": 7}}
{"table": "public.users", "change": "deleted", "key": {"id": 3}}
JSONL
echo '{"stream": "EVENTS", "event": "published", "sequence": 21, "subject": "e.x"}' \
  >"$STATE/runs/$config_run/ledger-bus.jsonl"
bs ledger "$config_run"
expect_rc 0 "ledger"
expect_contains "$OUT" "public.orders" "ledger"
expect_contains "$OUT" "EVENTS" "ledger"
bs ledger "$config_run" --table orders -o json
expect_rc 0 "ledger --table orders -o json"
expect_eq "$(grep -c '"change"' <<<"$OUT")" 2 "ledger lines of orders"
[[ "$OUT" != *EVENTS* ]] || fail "ledger --table orders lists a stream"
bs ledger "$config_run" --stream EVENTS
expect_contains "$OUT" "21" "ledger --stream EVENTS"
[[ "$OUT" != *public.users* ]] || fail "ledger --stream lists a table"
# Positions the run moved back are listed beside what it discarded.
sqlite3 "$STATE/state.db" "UPDATE runs SET summary = json_set(summary, '\$.data_loss',
  json('{\"items\": [], \"ledger_files\": [], \"rewinds\": [{\"component\": \"bus\",
  \"object\": \"EVENTS/billing\", \"unit\": \"messages redelivered\", \"from\": 35,
  \"to\": 20}]}')) WHERE id = '$config_run'"
bs ledger "$config_run" --stream EVENTS
expect_rc 0 "ledger with a rewind"
expect_contains "$OUT" "EVENTS/billing" "ledger with a rewind"
expect_contains "$OUT" "35 -> 20 (15 messages redelivered)" "ledger with a rewind"
bs ledger "$config_run" --table orders
[[ "$OUT" != *rewound* ]] || fail "ledger --table lists a consumer's rewind"
bs ledger "$config_run" --table orders --stream EVENTS
expect_rc 2 "ledger --table with --stream"

# salvage: every argument error is exit 2 with what to do.
bs salvage "$config_run"
expect_rc 2 "salvage without --component"
bs salvage "$config_run" --component config
expect_rc 2 "salvage without --table or --stream"
expect_contains "$ERR" "--table TABLE or --stream STREAM" "salvage without an object"
bs salvage "$config_run" --component config --table a --stream b
expect_rc 2 "salvage with --table and --stream"
bs salvage "$config_run" --component config --stream b --where "id > 1"
expect_rc 2 "salvage --where without --table"
bs salvage "$config_run" --component nope --table orders
expect_rc 2 "salvage of an unknown component"
expect_contains "$ERR" "no component named 'nope'" "salvage of an unknown component"
bs salvage "$config_run" --component config --table orders
expect_rc 2 "salvage --table of a config component"
expect_contains "$ERR" "config is a config component" "salvage --table of a config component"
bs salvage "$config_run" --component config --table orders --where x --keys "$WORK/keys"
expect_rc 2 "salvage --where with --keys"

# salvage --apply in a protected environment needs --confirm, like rollback:
# refused (exit 3) before the driver is asked anything.
PROTECTED_SPEC="$WORK/protected.yaml"
{
  echo "protected: true"
  echo "state_dir: $WORK/.backstop-protected"
  cat "$SPEC"
  cat <<YAML
  bus:
    kind: stream
    driver: nats
    url: nats://127.0.0.1:1
    streams: [EVENTS]
YAML
} >"$PROTECTED_SPEC"
run "$BACKSTOP_BIN" --spec "$PROTECTED_SPEC" check
expect_rc 0 "check of the protected spec"
run "$BACKSTOP_BIN" --spec "$PROTECTED_SPEC" salvage latest --component bus --stream EVENTS --apply
expect_rc 3 "salvage --apply without --confirm in a protected environment"
expect_contains "$ERR" "--confirm" "salvage --apply without --confirm"
run "$BACKSTOP_BIN" --spec "$PROTECTED_SPEC" salvage "$config_run" --component bus --stream EVENTS
expect_rc 2 "salvage of a run of another state dir"
expect_contains "$ERR" "no run matches" "salvage of a run of another state dir"

# A target recorded unhealthy is refused up front, naming it; --force goes on,
# and a failed start leaves the services that were not switched running.
bs deploy orchestrator v2; expect_rc 1 "deploy orchestrator v2 (unhealthy)"
bs snapshot --label broken; expect_rc 0 "snapshot of a broken state"
bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1 again"
bs rollback --all --to broken
expect_rc 3 "rollback to a target recorded unhealthy"
expect_contains "$ERR" "orchestrator" "refusal names the unhealthy component"
expect_contains "$ERR" "--force" "refusal says how to override"
expect_eq "$(service_version "$WEBUI_PORT")" v1 "webui untouched by the refusal"
bs rollback --all --to broken --force
expect_rc 1 "forced rollback to the broken target"
expect_contains "$OUT$ERR" "starting webui again" "webui restarted after the failed start"
expect_contains "$OUT" "Now:       webui" "per-component account after the failed start"
expect_contains "$OUT" "release v1, running, healthy" "webui's account after the failed start"
bs history orchestrator
expect_contains "$OUT" "Rollback to restore point" "history keeps the release of the failed run"
expect_eq "$(service_version "$WEBUI_PORT")" v1 "webui runs its previous release after the failure"

bs stop --all
