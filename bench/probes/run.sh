#!/usr/bin/env bash
# Runs probe-bench and appends its results, with the exact command, to docs/benchmarks.md.
#   bench/probes/run.sh [BUILD_DIR] [probe-bench options...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
build=${1:-$here/../../build}
shift || true
BENCH_COMMAND=bench/probes/run.sh run_and_record probe-bench 'HTTP probes: the Backstop prober vs prometheus-blackbox-exporter (bench/probes)' "$build" "$@"
