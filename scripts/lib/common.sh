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

# Sets PORTS to $1 ports for a network this script starts: below the
# ephemeral range, so no outgoing connection takes one, free now, and each
# locked (the same lock files as tests/common/ports.rs) until this shell
# exits, so no test or other script picks it meanwhile.
reserve_ports() {
  local low locks p fd
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
  locks=${TMPDIR:-/tmp}/leasehold-test-ports
  mkdir -p "$locks"
  PORTS=()
  for _ in $(seq 1000); do
    [ ${#PORTS[@]} -lt "$1" ] || return 0
    p=$((20000 + RANDOM % (low - 20000)))
    exec {fd}>>"$locks/$p"
    if flock -n "$fd" && python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null; then
      PORTS+=("$p")
    else
      exec {fd}>&-
    fi
  done
  log "found only ${#PORTS[@]} free ports below $low"
  return 1
}

# Writes $1/network.json: every org of the testnet in $1 (the rest of the
# arguments) with its API and explorer URLs, files and pid.
write_network_json() {
  python3 - "$@" <<'PY'
import json, os, re, sys
net, orgs = sys.argv[1], sys.argv[2:]
out = []
for o in orgs:
    cfg = open(f"{net}/{o}/node.toml").read()
    api = re.search(r'^api_listen = "(.*)"', cfg, re.M).group(1)
    tok = f"{net}/{o}/admin.token"
    pid = f"{net}/{o}/pid"
    out.append({
        "org": o,
        "api_url": f"http://{api}",
        "explorer_url": f"http://{api}/",
        "data_dir": os.path.abspath(f"{net}/{o}/data"),
        "config": os.path.abspath(f"{net}/{o}/node.toml"),
        "log": os.path.abspath(f"{net}/{o}/node.log"),
        "pid": int(open(pid).read()) if os.path.exists(pid) else None,
        "admin_token_file": os.path.abspath(tok) if os.path.exists(tok) else None,
    })
tmp = f"{net}/network.json.tmp"
with open(tmp, "w") as f:
    json.dump({"orgs": out}, f, indent=2)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, f"{net}/network.json")
PY
}

# Prints how to open org $2's explorer in testnet $1, and how to sign its
# admin in: the token itself on a terminal, else (a log, CI) only the file
# that holds it, which no one else may read.
print_explorer() {
  local url token
  url=$(sed -n 's/^api_listen = "\(.*\)"/http:\/\/\1\//p' "$1/$2/node.toml")
  if [ -t 1 ]; then
    token=$(cat "$1/$2/admin.token" 2>/dev/null || echo "(no $1/$2/admin.token)")
  else
    token="the token in $1/$2/admin.token"
  fi
  echo "  $2  explorer $url   sign in with $token"
}
