#!/usr/bin/env bash
# Runs every test: unit, property and multi-process integration tests.
# Installs what is missing first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
ensure_deps

# Release mode: the same build as scripts/testnet-up.sh, so RocksDB's C++ is
# compiled once, and the multi-node tests run at realistic speed.
cargo test --release --workspace --all-targets "$@"

# The demo, end to end, on a fresh three-org network of real processes, with
# the binary the tests just built (no second build) and ports the OS hands out.
[ $# -eq 0 ] || exit 0
net=$(mktemp -d /tmp/leasehold-demo.XXXXXX)
trap 'LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null; rm -rf "$net"' EXIT
ports=$(python3 -c 'import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
read -r p1 p2 p3 a1 a2 a3 <<<"$ports"
log "demo on a fresh network in $net"
LEASEHOLD_NET=$net LEASEHOLD_BIN="$CARGO_TARGET_DIR/release/leasehold" DEMO_LEASE_S=${DEMO_LEASE_S:-20} \
  LEASEHOLD_P2P_PORTS=$p1,$p2,$p3 LEASEHOLD_API_PORTS=$a1,$a2,$a3 scripts/testnet-up.sh || {
  for o in org1 org2 org3; do log "--- $o node log (tail)"; tail -20 "$net/$o/node.log" >&2 || true; done
  exit 1
}
