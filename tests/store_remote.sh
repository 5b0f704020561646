#!/usr/bin/env bash
# Issue 13: restore points that survive the host, against a real S3 stand-in
# (s3rver) and the real mistersmith environment (PostgreSQL, nats-server, the
# demo services):
# - `store key new`, a restore point taken locally and reported not yet
#   replicated, `store sync` uploading it (blobs, then manifest), a second sync
#   sending nothing, `snapshots` saying where each one is,
#   `snapshots verify --remote` re-reading every blob from the bucket;
# - the bucket holds no plaintext: no label, no config content, no digest;
# - a wrong key is refused before anything is read or written;
# - kills inside an upload (before a blob, before the manifest, before the
#   marker) never list a restore point early; `backstop watch` replicates;
# - disaster recovery: the whole state dir and local store deleted, the staged
#   database dropped, data and config changed; `rollback --all --to LABEL`
#   fetches the restore point from the bucket alone and restores it (cold path,
#   said so), ending with the restore point's data, config and releases;
# - a damaged object in the bucket is found by `snapshots verify --remote`.
source "$(dirname "$0")/lib.sh"
export BACKSTOP_ENVIRONMENT=staging
start_mistersmith

S3_PORT=$(free_port)
start_s3rver "$WORK/s3" "$S3_PORT" backstop-dr || die "s3rver did not start"
at_exit stop_s3rver "$WORK/s3"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_PROFILE AWS_SESSION_TOKEN BACKSTOP_STORE_KEY

# The example spec with a remote store: a copy beside the example's own
# directory would resolve relative paths elsewhere, and the example has none.
EXAMPLE_SPEC=$SPEC
SPEC="$WORK/backstop-dr.yaml"
cp "$EXAMPLE_SPEC" "$SPEC"
cat >>"$SPEC" <<YAML

store:
  replicate_to:
    url: s3://backstop-dr/mistersmith/staging
    endpoint: http://127.0.0.1:$S3_PORT
    key_file: $WORK/keys/store.key
YAML
mkdir -p "$WORK/keys"

table_digest() {
  psql_as "$PGPORT" mistersmith -At -c \
    "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (
       SELECT 'a'||a::text FROM agents a UNION ALL SELECT 't'||t::text FROM tasks t) t(t)"
}
bucket_files() { find "$WORK/s3/data" -type f | sort; }

# --- the key -----------------------------------------------------------------
bs store key new "$WORK/keys/store.key"
expect_rc 0 "store key new"
expect_eq "$(stat -c %a "$WORK/keys/store.key")" "600" "the key file's mode"
expect_contains "$OUT" "keep a copy of it OFF this host" "the key's warning"
bs store key new "$WORK/keys/store.key"
expect_rc 1 "a second store key new to the same file"
expect_contains "$ERR" "never overwritten" "an existing key is kept"
KEY_HEX=$(tr -d '\n' <"$WORK/keys/store.key")

# --- a restore point, replicated ----------------------------------------------
bs deploy orchestrator v1; expect_rc 0 "deploy orchestrator v1"
bs deploy webui v1; expect_rc 0 "deploy webui v1"
bs snapshot --label dr-point; expect_rc 0 "snapshot"
RP=$(grep -o 'rp-[0-9TZ]*-[0-9a-f]*' <<<"$OUT" | head -n1)
good_digest=$(table_digest)
good_config=$(cat "$MISTERSMITH_ROOT/config/config.json")

bs status
expect_contains "$OUT" "not yet replicated" "status before the first sync"
bs store sync
expect_rc 0 "store sync"
expect_contains "$OUT" "restore point(s) uploaded" "sync summary"
bs store sync --output json
expect_rc 0 "second store sync"
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(d["blobs_sent"], d["bytes_sent"], len(d["uploaded"]))' <<<"$OUT")" \
  "0 0 0" "a second sync with nothing new sends nothing"
bs status
expect_contains "$OUT" "every restore point replicated" "status after the sync"
bs snapshots --output json
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(sorted({r["where"] for r in d["restore_points"]}))' <<<"$OUT")" \
  "['both']" "snapshots: every restore point is local and remote"
bs snapshots verify dr-point --remote
expect_rc 0 "snapshots verify --remote"
expect_contains "$OUT" "blobs intact in the remote store" "remote verification"

# --- killed inside an upload: never listed before its last blob ------------------
bs snapshot --label crashy; expect_rc 0 "snapshot crashy"
for point in store.remote_blob_uploaded store.remote_before_manifest; do
  crash_in "$point" store sync || continue
  bs store status --output json
  expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print([r["where"] for r in d["restore_points"] if r.get("label") == "crashy"])' <<<"$OUT")" \
    "['local']" "crashy after a kill at $point: not listed in the bucket"
done
crash_in store.remote_manifest_uploaded store sync
bs status
expect_contains "$OUT" "not yet replicated" "status after a kill between the manifest and its marker"
bs store sync --output json
expect_rc 0 "store sync after the kills"
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(d["blobs_sent"], len(d["failed"]))' <<<"$OUT")" \
  "0 0" "the sync after the kills sends no blob again"
bs status
expect_contains "$OUT" "every restore point replicated" "status after the kills and a sync"

# --- nothing readable in the bucket -------------------------------------------
if grep -rqa -e "dr-point" -e '"mode"' "$WORK/s3/data"; then
  fail "the bucket holds a label or config content in clear"
fi
for blob in "$BACKSTOP_STATE_DIR"/store/blobs/*/*; do
  d=$(basename "$blob")
  if bucket_files | grep -q "$d"; then fail "the bucket names blob $d by its digest"; break; fi
done
if grep -rqa "$KEY_HEX" "$BACKSTOP_STATE_DIR" "$WORK/s3/data"; then
  fail "the key appears in the state dir or the bucket"
fi

# --- a wrong key ----------------------------------------------------------------
before=$(bucket_files | xargs md5sum | md5sum)
cp "$WORK/keys/store.key" "$WORK/keys/store.key.good"
"$BACKSTOP_BIN" store key new "$WORK/keys/other.key" >/dev/null
cp "$WORK/keys/other.key" "$WORK/keys/store.key"
bs snapshot --label after-wrong-key; expect_rc 0 "a snapshot needs no key"
bs store sync
expect_rc 1 "store sync with a wrong key"
expect_contains "$ERR" "does not open the remote store" "the wrong key is named as such"
expect_eq "$(bucket_files | xargs md5sum | md5sum)" "$before" "the bucket after a wrong key"
cp "$WORK/keys/store.key.good" "$WORK/keys/store.key"
bs store sync; expect_rc 0 "store sync with the right key again"

# --- backstop watch replicates in the background ----------------------------------
bs snapshot --label by-watch; expect_rc 0 "snapshot by-watch"
bs status
expect_contains "$OUT" "1 restore point(s) not yet replicated" "status before the watch"
API_PORT=$(free_port)
"$BACKSTOP_BIN" --spec "$SPEC" watch --duration 10s --listen "127.0.0.1:$API_PORT" --dry-run \
  >"$WORK/watch.log" 2>&1 &
watch_pid=$!
at_exit kill "$watch_pid"
api_points() { curl -fsS --max-time 2 --noproxy '*' "http://127.0.0.1:$API_PORT/api/v1/restore-points" 2>/dev/null; }
all_replicated() {
  api_points | py 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["restore_points"] and all(p["replicated"] for p in d["restore_points"]) else 1)'
}
wait_for 8 all_replicated || fail "the watch's API did not list every restore point replicated within 8 s"
expect_eq "$(api_points | py 'import json,sys; d=json.load(sys.stdin); print(d["remote"], sorted({p["replicated"] for p in d["restore_points"]}))')" \
  "s3://backstop-dr/mistersmith/staging [True]" "the API's restore points: all replicated"
wait "$watch_pid" || fail "watch --duration 10s exited $?"
expect_contains "$(cat "$WORK/watch.log")" "restore point replicated" "the watch logs the replication"
bs status
expect_contains "$OUT" "every restore point replicated" "status after the watch"

# --- disaster: the host's state and store are lost --------------------------------
bs deploy orchestrator v2; expect_rc 1 "deploy orchestrator v2 (unhealthy, writes data)"
echo '{"mode": "after the disaster"}' >"$MISTERSMITH_ROOT/config/config.json"
[[ "$(table_digest)" != "$good_digest" ]] || fail "v2 changed no data"
bs stop --all; expect_rc 0 "stop every service before the host is lost"
staged=$(psql_as "$PGPORT" postgres -At -c "SELECT datname FROM pg_database WHERE datname LIKE '%\_bs\_staged\_%' OR datname LIKE '%\_pre\_rollback\_%'" | tr '\n' ' ')
for db in $staged; do psql_as "$PGPORT" postgres -qAt -c "DROP DATABASE \"$db\"" || fail "drop $db"; done
rm -rf "$BACKSTOP_STATE_DIR" "$MISTERSMITH_ROOT/orchestrator/releases/v1"
log "state dir, local store, staged databases ($staged) and release v1 removed"

bs snapshots --output json
expect_eq "$(py 'import json,sys; d=json.load(sys.stdin); print(sorted({r["where"] for r in d["restore_points"]}))' <<<"$OUT")" \
  "['remote']" "snapshots on the new host: remote only"
crash_in store.remote_blob_fetched#2 rollback --all --to dr-point --accept-data-loss
[[ ! -e "$BACKSTOP_STATE_DIR/store/restore-points/$RP.json" ]] ||
  fail "a fetch killed half-way left a manifest in the local store"
bs rollback --all --to dr-point --accept-data-loss
expect_rc 0 "rollback --all --to dr-point from the bucket alone"
expect_contains "$OUT" "fetching it from s3://backstop-dr/mistersmith/staging" "the fetch is said"
expect_contains "$OUT$ERR" "is gone" "the cold path is said"
expect_eq "$(table_digest)" "$good_digest" "the database after disaster recovery"
expect_eq "$(cat "$MISTERSMITH_ROOT/config/config.json")" "$good_config" "the config after disaster recovery"
expect_eq "$(service_version "$ORCHESTRATOR_PORT")" "v1" "the orchestrator after disaster recovery"
[[ -d "$MISTERSMITH_ROOT/orchestrator/releases/v1" ]] || fail "release v1 was not restored"
bs snapshots verify "$RP"
expect_rc 0 "the fetched restore point verifies locally"

# --- a damaged object in the bucket ---------------------------------------------
# s3rver keeps each object's body in <key>._S3rver_object: one byte of every
# blob's is flipped, behind the server's back.
damaged=0
while IFS= read -r victim; do
  byte=$(dd if="$victim" bs=1 skip=40 count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
  printf "\\$(printf '%03o' $(((byte + 1) % 256)))" | dd of="$victim" bs=1 seek=40 conv=notrunc 2>/dev/null
  damaged=$((damaged + 1))
done < <(bucket_files | grep '/blobs/.*\._S3rver_object$')
((damaged > 0)) || die "no blob object found in $WORK/s3/data"
bs snapshots verify dr-point --remote
expect_rc 1 "snapshots verify --remote with a damaged object"
expect_contains "$OUT" "corrupted blob" "the damaged blob is named"
