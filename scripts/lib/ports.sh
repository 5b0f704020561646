# Loopback ports for the servers the demo, the tests and the benchmarks start.
# Same scheme as src/testing/ports.cc: ports from 20000..32767 (below Linux's
# ephemeral range, so no client socket can take one before its server binds it),
# each reserved by an atomic mkdir under $TMPDIR/backstop-test-ports/ so tests
# running at once never pick the same port. Reservations older than an hour are
# reclaimed.

# pick_port: prints a free, reserved port on 127.0.0.1.
pick_port() {
  local dir="${TMPDIR:-/tmp}/backstop-test-ports" p
  mkdir -p "$dir" 2>/dev/null && chmod 1777 "$dir" 2>/dev/null
  for _ in $(seq 1 500); do
    p=$((20000 + RANDOM % 12768))
    if ! mkdir "$dir/$p" 2>/dev/null; then
      [[ -n $(find "$dir/$p" -maxdepth 0 -mmin +60 2>/dev/null) ]] || continue
      rmdir "$dir/$p" 2>/dev/null && mkdir "$dir/$p" 2>/dev/null || continue
    fi
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free loopback port in 20000..32767 (reservations in $dir)" >&2
  return 1
}

# pick_ports N: N distinct free ports, one per line.
pick_ports() {
  local p n=0
  while ((n < $1)); do
    p=$(pick_port) || return 1
    echo "$p"
    n=$((n + 1))
  done
}
