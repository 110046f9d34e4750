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
if [ $# -gt 0 ]; then
  exec cargo test --release --workspace --all-targets "$@"
fi
cargo test --release --workspace --all-targets --no-run
# Layers are chosen by test target, never by package: selecting packages
# would change cargo's feature unification and rebuild half the tree.
targets() { for f in "$@"; do [ -f "$f" ] && printf -- '--test\n%s\n' "$(basename "$f" .rs)"; done; }
mapfile -t fast < <(targets chaincode/tests/*.rs network/tests/*.rs node/tests/*.rs api/tests/*.rs)
mapfile -t slow < <(targets tests/*.rs)
# Layers 1 and 2, in seconds: unit and property tests; then the middle
# layer: openraft's storage suite on RocksDB, in-process nodes behind the
# API router (the role x route matrix), the data plane's checks, the sandbox.
log "unit, property and in-process tests"
cargo test --release --workspace --lib --bins "${fast[@]}"
# Layer 3, in minutes: real node processes talking over loopback.
log "multi-process tests"
cargo test --release --workspace "${slow[@]}"

# The demo, end to end, on a fresh three-org network of real processes, with
# a copy of the binary the tests just built (another checkout's build cannot
# replace it mid-run), on ports below the ephemeral range, which outgoing
# connections never take.
net=$(mktemp -d /tmp/leasehold-demo.XXXXXX)
trap 'LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null; rm -rf "$net"' EXIT
cp "$CARGO_TARGET_DIR/release/leasehold" "$net/leasehold"
ports=$(python3 -c 'import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < 6:
    p = random.randrange(20000, low)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    if p not in ports:
        ports.append(p)
print(" ".join(map(str, ports)))')
read -r p1 p2 p3 a1 a2 a3 <<<"$ports"
log "demo on a fresh network in $net"
LEASEHOLD_NET=$net LEASEHOLD_BIN="$net/leasehold" DEMO_LEASE_S=${DEMO_LEASE_S:-20} \
  LEASEHOLD_P2P_PORTS=$p1,$p2,$p3 LEASEHOLD_API_PORTS=$a1,$a2,$a3 scripts/testnet-up.sh || {
  for o in org1 org2 org3; do log "--- $o node log (tail)"; tail -20 "$net/$o/node.log" >&2 || true; done
  exit 1
}
