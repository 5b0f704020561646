# Sourced first by scripts/demo and scripts/test: they install Debian packages
# and start PostgreSQL as its own user, so they run as root. Run by another
# user, they ask sudo once and run again as root; a fresh Debian image has no
# sudo, and there you are root already.
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=BUILD_DIR,BUILD_TYPE,JOBS,CMAKE_ARGS,CI "$PWD/scripts/$(basename "$0")" "$@"
  fi
  echo "$(basename "$0"): run this as root (it installs Debian packages and starts PostgreSQL as its own user); sudo is not installed" >&2
  exit 1
fi
