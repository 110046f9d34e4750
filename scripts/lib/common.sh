# Shared by the scripts: installs what is missing and picks the build dir.
# shellcheck shell=bash

log() { printf '%s\n' "$*" >&2; }

# One target dir outside the clone, so the slow RocksDB build is reused by
# every checkout and by CI on the same machine; a fresh machine simply
# builds into it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leasehold-target}"
mkdir -p "$CARGO_TARGET_DIR"

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# clang + libclang-dev: bindgen for rust-rocksdb. bubblewrap: the workflow
# sandbox. python3: the demo's jobs. curl: the scripts talk to the API.
ensure_deps() {
  local missing=()
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  # setpriv drops a job to its own uid, flock holds the demo's ports; cc builds
  # the hostile-job tests' library.
  { command -v setpriv && command -v flock; } >/dev/null 2>&1 || missing+=(util-linux)
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]} and no apt-get: install them by hand"; exit 1; }
    apt_install "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || { log "cargo not found: install Rust (https://rustup.rs) and re-run"; exit 1; }
}
