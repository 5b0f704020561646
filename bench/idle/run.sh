#!/usr/bin/env bash
# Runs idle-bench and appends its results, with the exact command, to docs/benchmarks.md.
#   bench/idle/run.sh [BUILD_DIR] [idle-bench options...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
build=${1:-$here/../../build}
shift || true
BENCH_COMMAND=bench/idle/run.sh run_and_record idle-bench 'Idle footprint of `backstop watch`, 50 components at 1 s (bench/idle)' "$build" "$@"
