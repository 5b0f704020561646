# A podman API service (the Docker Engine API on a unix socket) for the
# container driver's tests and demos, set up as these machines need it (see
# src/testing/podman_service.h, which does the same for the unit tests):
# runtime runc, explicit nofile/nproc ulimits, fixed storage options from
# first use on, images built from the static busybox (no registry).

# start_podman_service DIR: storage, containers.conf and the socket under DIR;
# runs `podman system service` in the background and waits for /version.
# Sets PODMAN_SOCK and PODMAN_SERVICE_PID; `podman_cli ARGS...` then runs the
# podman command on the same storage.
start_podman_service() {
  local dir=$1
  mkdir -p "$dir"
  PODMAN_DIR=$dir
  PODMAN_SOCK="$dir/podman.sock"
  cat >"$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
CONF
  CONTAINERS_CONF="$dir/containers.conf" podman_cli system service --time=0 \
    "unix://$PODMAN_SOCK" >"$dir/service.log" 2>&1 &
  PODMAN_SERVICE_PID=$!
  local i
  for i in $(seq 1 600); do
    if curl -fsS --max-time 2 --unix-socket "$PODMAN_SOCK" http://localhost/version \
      >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$PODMAN_SERVICE_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "podman system service did not start; its log:" >&2
  tail -n 20 "$dir/service.log" >&2
  return 1
}

podman_cli() {
  CONTAINERS_CONF="$PODMAN_DIR/containers.conf" podman --root "$PODMAN_DIR/root" \
    --runroot "$PODMAN_DIR/runroot" --tmpdir "$PODMAN_DIR/tmp" --runtime runc "$@"
}

# stop_podman_service: every container removed, the service stopped.
stop_podman_service() {
  podman_cli rm --all --force --time 0 >/dev/null 2>&1 || true
  kill "$PODMAN_SERVICE_PID" 2>/dev/null || true
  wait "$PODMAN_SERVICE_PID" 2>/dev/null || true
}

# busybox_image REF MARKER CHANGE...: imports a rootfs holding the static
# busybox (sh, sleep, httpd, ...) and a file /release with MARKER as image
# REF, with `podman import --change` instructions (e.g. 'CMD ["httpd", "-f"]').
busybox_image() {
  local ref=$1 marker=$2 rootfs
  shift 2
  rootfs=$(mktemp -d "$PODMAN_DIR/rootfs-XXXXXX")
  mkdir -p "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in sh sleep httpd true false cat echo wget; do ln -s busybox "$rootfs/bin/$applet"; done
  echo "$marker" >"$rootfs/release"
  local args=() change
  for change in "$@"; do args+=(--change "$change"); done
  tar -C "$rootfs" -cf "$rootfs.tar" .
  podman_cli import --quiet "${args[@]}" "$rootfs.tar" "$ref" >/dev/null
  rm -rf "$rootfs" "$rootfs.tar"
}
