#!/usr/bin/env bash
# The container driver through the real binary against a real podman API
# service: `check` rejects bad settings at their line, a snapshot keeps the
# image in the store, a deploy by release (a tag of the image's repository),
# a release whose health fails leaves the old container running and prints
# what the new one said, a rollback after `podman rmi` of the old image loads
# it from the store, and a kill inside the restore is resumed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../scripts/lib/podman.sh"

command -v podman >/dev/null && command -v runc >/dev/null && [[ -x /bin/busybox ]] || {
  log "SKIP: podman, runc or busybox-static missing (scripts/install-deps --test)"
  exit 0
}
start_podman_service "$WORK/podman" || die "no podman service"
at_exit stop_podman_service

REPO=localhost/backstop-web
serve='CMD ["httpd", "-f", "-p", "8080", "-h", "/"]'
busybox_image "$REPO:1" release-1 "$serve"
busybox_image "$REPO:2" release-2 "$serve"
busybox_image "$REPO:bad" release-bad 'CMD ["sh", "-c", "echo boom: config missing; sleep 600"]'
PORT=$(free_port)
podman_cli run -d --name web -p "127.0.0.1:$PORT:8080" -e GREETING=hello "$REPO:1" >/dev/null

served() { curl -fsS --max-time 2 --noproxy '*' "http://127.0.0.1:$PORT/release" 2>/dev/null || echo down; }
containers() { podman_cli ps -a --format '{{.Names}}' | sort | tr '\n' ' '; }
wait_for 10 test "$(served)" = release-1 || die "web does not serve release-1"

# Bad settings are refused with their position.
SPEC="$WORK/bad.yaml"
cat >"$SPEC" <<YAML
environment: test
components:
  web:
    kind: service
    driver: container
    socket: $PODMAN_SOCK
    image: $REPO:1
    health_check: sometimes
YAML
bs check
expect_rc 2 "check of bad settings"
expect_contains "$ERR$OUT" "bad.yaml:3:3: components.web.container: missing required setting 'container'" "check"
expect_contains "$ERR$OUT" "bad.yaml:8:19: components.web.health_check: 'sometimes' is not allowed" "check"

SPEC="$WORK/backstop.yaml"
cat >"$SPEC" <<YAML
environment: test
components:
  web:
    kind: service
    driver: container
    socket: $PODMAN_SOCK
    container: web
    image: $REPO:1
    stop_timeout: 1s
    health: { http: "http://127.0.0.1:$PORT/release", interval: 1s, timeout: 1s, start_period: 3s }
YAML
bs check
expect_rc 0 "check"

bs snapshot --label good
expect_rc 0 "snapshot"
entry=$(cat "$WORK"/.backstop/store/restore-points/*.json)
expect_contains "$entry" '"release": "1"' "the restore point"
expect_contains "$entry" '"archive"' "the restore point"

bs deploy web 2
expect_rc 0 "deploy web 2"
expect_eq "$(served)" release-2 "served after deploy 2"
expect_eq "$(containers)" "web " "containers after deploy 2"

bs status
expect_rc 0 "status"
expect_contains "$OUT" "release 2" "status"

bs deploy web bad
expect_rc 1 "deploy of a release whose health fails"
expect_contains "$OUT$ERR" "release bad of web failed its health gate" "deploy bad"
expect_contains "$OUT$ERR" "boom: config missing" "deploy bad"
printf "%s\n" "$OUT$ERR" | sed "s/^/    | /" >"$WORK/deploy-bad.txt"
expect_eq "$(served)" release-2 "served after the failed deploy (the old one runs again)"
expect_eq "$(containers)" "web " "containers after the failed deploy"

bs deploy web 7
expect_rc 2 "deploy of a release the engine does not have"
expect_contains "$OUT$ERR" "web has no release '7'; releases: 1 2 bad" "deploy 7"

# The old image is gone from the engine: only the store has it.
podman_cli rmi "$REPO:1" >/dev/null
bs rollback --component web --to good
expect_rc 0 "rollback after podman rmi of the old image"
expect_eq "$(served)" release-1 "served after the rollback"
expect_eq "$(containers)" "web " "containers after the rollback"
[[ -z $(find "$WORK/.backstop/components" -name container-restore.json) ]] || fail "a restore journal is left"
bs snapshots verify good
expect_rc 0 "snapshots verify (every piece of every image archive re-hashed)"

# Killed inside the restore (the new container created, not yet started): the
# resume adopts it and ends on release 2 with one container.
if crash_in container.after-create deploy web 2; then
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at container.after-create"
  expect_eq "$(served)" release-2 "served after the resume"
  expect_eq "$(containers)" "web " "containers after the resume"
fi
