#!/usr/bin/env bash
# Runs detection-bench and appends its results, with the exact command, to docs/benchmarks.md.
#   bench/detection/run.sh [BUILD_DIR] [detection-bench options...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
build=${1:-$here/../../build}
shift || true
BENCH_COMMAND=bench/detection/run.sh run_and_record detection-bench 'Detection time of `backstop watch` (bench/detection)' "$build" "$@"
