#!/usr/bin/env bash
# bench/store: how fast a restore point goes into the local store and up to a
# remote one, against what this machine's two cores can hash, compress and
# encrypt, measured in the same run.
#
#   bench/store/run.sh [BUILD_DIR] [SCALE]        (root; default pgbench scale 60, ~1 GB)
#   TREE_MB=100 bench/store/run.sh ...            (size of the release tree, default 100)
#
# The restore point holds a pgbench database (pg_dump of SCALE) and a release
# tree of TREE_MB of incompressible files. The remote store is s3rver on
# loopback (tests/servers, `scripts/install-deps --test`), encrypted.
#
# Printed:
# - the machine's limits, taken here: sha256 and AES-256-GCM (openssl speed,
#   one core) and zstd level 3 (zstd -b3, one core) on this CPU;
# - snapshot 1 (ingest, MB/s of the database's size plus the tree's), sync 1
#   (upload, MB/s of what was sent: compressed and encrypted);
# - snapshot 2 and sync 2 with nothing changed; sync 2 must send nothing and
#   be at least 50x faster than sync 1 (ratio printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
SCALE=${2:-60}
TREE_MB=${TREE_MB:-100}
BACKSTOP="$build/backstop"
[[ -x "$BACKSTOP" ]] || { echo "build first: $BACKSTOP" >&2; exit 2; }
source "$root/scripts/lib/servers.sh"

WORK=$(mktemp -d /tmp/backstop-bench-store-XXXXXX)
chmod 755 "$WORK"
PORT=$(pick_port)
S3_PORT=$(pick_port)
trap 'stop_postgres "$WORK/pg"; stop_s3rver "$WORK/s3"; rm -rf "$WORK"' EXIT
start_postgres "$WORK/pg" "$PORT"
start_s3rver "$WORK/s3" "$S3_PORT" bench
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER

now_ms() { echo $(($(date +%s%N) / 1000000)); }
mbps() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? b / 1048576 / (ms / 1000) : 0) }'; }

echo "# machine limits (one core each, measured now)"
sha=$(openssl speed -seconds 2 -bytes 1048576 -evp sha256 2>/dev/null | awk '/^sha256/ {print $2}')
gcm=$(openssl speed -seconds 2 -bytes 1048576 -evp aes-256-gcm 2>/dev/null | awk '/^(AES-256-GCM|aes-256-gcm)/ {print $2}')
head -c $((64 << 20)) /dev/urandom | base64 >"$WORK/sample.txt"  # compressible-ish text
zstd_mbps=$(zstd -b3 -i2 "$WORK/sample.txt" 2>&1 | tr '\r' '\n' | sed -n 's/.*-> *[0-9.]* *(.*), *\([0-9.]*\) MB\/s.*/\1/p' | tail -n1)
printf '%-28s %s\n' "sha256" "${sha:-?} (1000s of bytes/s)" "aes-256-gcm" "${gcm:-?} (1000s of bytes/s)" \
  "zstd -3 compress" "${zstd_mbps:-?} MB/s"

runuser -u postgres -- createdb -h 127.0.0.1 -p "$PORT" bench
runuser -u postgres -- pgbench -h 127.0.0.1 -p "$PORT" -i -q -s "$SCALE" bench >/dev/null 2>&1
mkdir -p "$WORK/app/releases/v1"
for i in $(seq 1 "$TREE_MB"); do head -c $((1 << 20)) /dev/urandom >"$WORK/app/releases/v1/f$i.bin"; done
printf '#!/bin/sh\nexec sleep 100000\n' >"$WORK/app/releases/v1/run.sh"
chmod +x "$WORK/app/releases/v1/run.sh"
"$BACKSTOP" store key new "$WORK/store.key" >/dev/null
db_bytes=$(runuser -u postgres -- psql -X -At -h 127.0.0.1 -p "$PORT" -c "SELECT pg_database_size('bench')" postgres)
raw=$((db_bytes + TREE_MB * 1048576))

cat >"$WORK/backstop.yaml" <<YAML
environment: bench-store
state_dir: $WORK/state
store:
  replicate_to:
    url: s3://bench/store
    endpoint: http://127.0.0.1:$S3_PORT
    key_file: $WORK/store.key
components:
  db:
    kind: database
    driver: postgres
    connection: "host=127.0.0.1 port=$PORT dbname=bench user=postgres"
    staged: never
  app:
    kind: service
    driver: process
    releases: $WORK/app/releases
    command: [run.sh]
YAML
bs() { "$BACKSTOP" --spec "$WORK/backstop.yaml" "$@"; }
bs deploy app v1 >/dev/null

t0=$(now_ms); bs snapshot --label one >/dev/null; t1=$(now_ms)
snap1=$((t1 - t0))
stored=$(du -sb "$WORK/state/store/blobs" | cut -f1)
t0=$(now_ms); bs store sync --output json >"$WORK/sync1.json" 2>"$WORK/sync1.log"; t1=$(now_ms)
sync1=$((t1 - t0))
sent1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_sent"])' "$WORK/sync1.json")
own1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"])' "$WORK/sync1.json")

t0=$(now_ms); bs snapshot --label two >/dev/null; t1=$(now_ms)
snap2=$((t1 - t0))
t0=$(now_ms); bs store sync --output json >"$WORK/sync2.json" 2>"$WORK/sync2.log"; t1=$(now_ms)
sync2=$((t1 - t0))
sent2=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["bytes_sent"], d["blobs_sent"], d["blobs_present"])' "$WORK/sync2.json")
own2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"])' "$WORK/sync2.json")
t0=$(now_ms); "$BACKSTOP" --help >/dev/null; t1=$(now_ms)
startup=$((t1 - t0))

echo
echo "# restore point: pgbench scale $SCALE ($((db_bytes / 1048576)) MB database) + ${TREE_MB} MB release tree = $((raw / 1048576)) MB read; $((stored / 1048576)) MB in the store"
printf '%-28s %8s %10s\n' "step" "ms" "MB/s"
printf '%-28s %8d %10s   (MB/s of what was read)\n' "snapshot 1 (ingest)" "$snap1" "$(mbps "$raw" "$snap1")"
printf '%-28s %8d %10s   (%s MB sent; %d ms of it the sync itself)\n' "sync 1 (upload)" "$sync1" "$(mbps "$sent1" "$sync1")" "$((sent1 / 1048576))" "$own1"
printf '%-28s %8d\n' "snapshot 2 (unchanged)" "$snap2"
printf '%-28s %8d   (%d ms of it the sync itself; bytes, blobs sent, blobs already there: %s)\n' "sync 2 (unchanged)" "$sync2" "$own2" "$sent2"
printf '%-28s %8d\n' "backstop --help (start-up)" "$startup"
awk -v a="$sync1" -v b="$sync2" 'BEGIN { printf "sync 1 / sync 2 = %.0fx, whole commands (target >= 50x)\n", (b > 0 ? a / b : 0) }'
awk -v a="$own1" -v b="$own2" 'BEGIN { printf "sync 1 / sync 2 = %.0fx, the syncs themselves\n", (b > 0 ? a / b : 0) }'
