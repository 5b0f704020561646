#!/usr/bin/env bash
# Runs probe-bench and appends its results, with the exact command, to
# docs/benchmarks.md (created with a short header when absent).
#   bench/probes/run.sh [BUILD_DIR] [probe-bench options...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
BIN="$BUILD/bench/probe-bench"
[[ -x "$BIN" ]] || { echo "no $BIN: build the target probe-bench first" >&2; exit 2; }
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"$BIN" "$@" | tee "$OUT"
DOC="$ROOT/docs/benchmarks.md"
if [[ ! -e "$DOC" ]]; then
  cat >"$DOC" <<'HEADER'
# Benchmarks

Results of the programs in `bench/`, appended by their `run.sh` scripts: each
section names the exact command, the machine and the date. Numbers from one
run on a shared machine; compare within a section, not across machines.
HEADER
fi
{
  echo
  echo '## HTTP probes: the Backstop prober vs prometheus-blackbox-exporter (bench/probes)'
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Command: \`bench/probes/run.sh $BUILD $*\` (runs \`$BIN $*\`)."
  echo
  cat "$OUT"
} >>"$DOC"
echo "appended to $DOC" >&2
