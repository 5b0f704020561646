# Shared by the bench/*/run.sh scripts: run a benchmark program and append its
# results, with the exact command, the date and the machine, to docs/benchmarks.md.
#
# run_and_record NAME TITLE BUILD_DIR [program options...]
#   runs BUILD_DIR/bench/NAME with the options, shows its output, and appends
#   a section headed TITLE.
run_and_record() {
  local name=$1 title=$2 build=$3
  shift 3
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local bin="$build/bench/$name"
  [[ -x "$bin" ]] || { echo "no $bin: build the target $name first" >&2; return 2; }
  local out
  out=$(mktemp)
  "$bin" "$@" | tee "$out"
  local doc="$root/docs/benchmarks.md"
  if [[ ! -e "$doc" ]]; then
    cat >"$doc" <<'HEADER'
# Benchmarks

Results of the programs in `bench/`, appended by their `run.sh` scripts: each
section names the exact command, the machine and the date. Numbers from one
run on a shared machine; compare within a section, not across machines.
HEADER
  fi
  {
    echo
    echo "## $title"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Command: \`${BENCH_COMMAND:-$0} $build $*\` (runs \`$bin $*\`)."
    echo
    cat "$out"
  } >>"$doc"
  rm -f "$out"
  echo "appended to $doc" >&2
}
