#!/usr/bin/env bash
# The files driver and the state dir, against the real binary: everything
# under the state dir is private even with umask 000, a loose state dir is
# tightened once, links are restored as links and never written through,
# `verify` reports drift naming the file, and a kill inside the files restore
# (after the first file, before the reload) then --resume ends with every
# file equal to the target.
source "$(dirname "$0")/lib.sh"
umask 000

etc="$WORK/etc"
mkdir -p "$etc"
echo 'app v1' >"$etc/app.conf"
echo 'site v1' >"$etc/site.conf"
ln -s app.conf "$etc/current.conf"
secret="$WORK/secret"
echo 'root only' >"$secret"
chmod 600 "$secret"
SPEC="$WORK/backstop.yaml"
cat >"$SPEC" <<YAML
environment: test
components:
  config:
    kind: config
    driver: files
    files: [etc/app.conf, etc/site.conf, etc/current.conf]
    reload: [sh, -c, "echo reloaded >> $WORK/reloads.log"]
YAML
state="$WORK/.backstop"

loose_files() { find "$state" \( -type f -o -type d \) -perm /077 -printf '%m %p\n'; }
reloads() { [[ -f "$WORK/reloads.log" ]] && wc -l <"$WORK/reloads.log" || echo 0; }

bs snapshot --label good
expect_rc 0 "snapshot"
expect_eq "$(loose_files)" "" "files under the state dir that others may read (umask 000)"

bs verify
expect_rc 0 "verify right after the snapshot"

# Drift is reported with the file named, whatever changed.
echo 'site v2' >"$etc/site.conf"
bs verify
expect_rc 1 "verify with a changed file"
expect_contains "$OUT" "config drift: $etc/site.conf changed" "verify"
expect_contains "$OUT" "since restore point" "verify"
rm "$etc/app.conf"
chmod 640 "$etc/site.conf"
ln -sfn "$secret" "$etc/current.conf"
bs verify
expect_rc 1 "verify with a deleted file and a retargeted link"
expect_contains "$OUT" "$etc/app.conf deleted" "verify"
expect_contains "$OUT" "$etc/current.conf retargeted: a symbolic link to $secret" "verify"

check_files() {
  local where=$1
  expect_eq "$(cat "$etc/app.conf")" "app v1" "app.conf ($where)"
  expect_eq "$(cat "$etc/site.conf")" "site v1" "site.conf ($where)"
  expect_eq "$(readlink "$etc/current.conf")" "app.conf" "current.conf link ($where)"
  expect_eq "$(cat "$secret")" "root only" "the file the link pointed to ($where)"
  bs verify
  expect_rc 0 "verify ($where)"
}

# A kill after the first file is replaced, then after every file, then
# before the reload: --resume finishes the job and the reload runs.
for point in 'files.after-file#1' 'files.after-file#2' files.before-reload; do
  echo 'app v2' >"$etc/app.conf"
  echo 'site v2' >"$etc/site.conf"
  ln -sfn "$secret" "$etc/current.conf"
  before=$(reloads)
  crash_in "$point" rollback --component config --to good || continue
  bs rollback --resume "$CRASH_RUN_ID"
  expect_rc 0 "resume after a kill at $point"
  check_files "kill at $point"
  expect_eq "$(reloads)" "$((before + 1))" "reloads after a kill at $point"
  expect_eq "$(ls -A "$etc" | grep -c backstop || true)" "0" "temp files left in $etc ($point)"
done
expect_eq "$(loose_files)" "" "files under the state dir that others may read after the runs"

# An existing loose state dir (an older version, a careless copy) is
# tightened on open, and said so once.
chmod -R go+rwX "$state"
bs status
expect_contains "$ERR" "tightened permissions of" "status on a loose state dir"
expect_eq "$(loose_files)" "" "files under the state dir that others may read after tightening"
bs status
[[ "$ERR" != *tightened* ]] || fail "tightening reported twice: $ERR"
