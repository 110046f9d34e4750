#!/usr/bin/env bash
# Builds leasehold, starts a three-organisation network on loopback under
# ./testnet/, waits until the nodes agree, writes testnet/network.json and
# runs the demo (skip it with --no-demo). Installs what is missing first.
#
# With --netns (root only), each org runs in a network namespace of its
# own, with its own address on a bridge, as on separate machines: the orgs
# are made by the genesis ceremony (`org new` in each org's directory, a
# genesis from their cards, signed by each), and nothing is on loopback.
#
# Environment, all optional: LEASEHOLD_BIN (use this binary, do not build),
# LEASEHOLD_NET (directory, default testnet), LEASEHOLD_P2P_PORTS and
# LEASEHOLD_API_PORTS (comma-separated, default 7051-7053 and 8081-8083;
# not used with --netns, where every org has 7051 and 8081 on its own host).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
# shellcheck source=lib/netns.sh
source scripts/lib/netns.sh

demo=1 netns=0
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --netns) netns=1 ;;
    *) log "usage: scripts/testnet-up.sh [--no-demo] [--netns]"; exit 2 ;;
  esac
done

NET=${LEASEHOLD_NET:-testnet}
export LEASEHOLD_NET=$NET
ORGS=(org1 org2 org3)
# A network made in namespaces restarts in them; one made on loopback cannot.
if [ -f "$NET/netns" ]; then
  netns=1
elif [ "$netns" -eq 1 ] && [ -f "$NET/genesis.json" ]; then
  log "$NET holds a network made on loopback; remove it (scripts/testnet-down.sh; rm -rf $NET) for --netns"
  exit 1
fi
[ "$netns" -eq 0 ] || netns_require_root

running() { [ -f "$NET/$1/pid" ] && kill -0 "$(cat "$NET/$1/pid")" 2>/dev/null; }

up=0
for o in "${ORGS[@]}"; do running "$o" && up=$((up + 1)); done
if [ "$up" -eq ${#ORGS[@]} ]; then
  log "a network is already running (pids in $NET/*/pid); scripts/testnet-down.sh stops it"
  cat "$NET/network.json"
  [ "$demo" -eq 0 ] || exec scripts/demo.sh
  exit 0
elif [ "$up" -gt 0 ]; then
  log "part of a network is running ($up of ${#ORGS[@]} nodes); run scripts/testnet-down.sh first"
  exit 1
fi

ensure_deps
if [ -n "${LEASEHOLD_BIN:-}" ]; then
  BIN=$LEASEHOLD_BIN
else
  log "building (the first build compiles RocksDB: about 20 minutes on 2 cores)..."
  cargo build --release --bin leasehold
  BIN="$CARGO_TARGET_DIR/release/leasehold"
fi
export LEASEHOLD_BIN=$BIN

# The ceremony, as each org would run it on its own machine: only the
# cards, the genesis and its signatures travel between the directories.
ceremony() {
  local i o cards=()
  for i in "${!ORGS[@]}"; do
    o=${ORGS[$i]}
    "$BIN" org new --org "$o" --name "Organisation $((i + 1))" --dir "$NET/$o" \
      --p2p-addr "${NETNS_IPS[$i]}:7051" --api-addr "${NETNS_IPS[$i]}:8081" >/dev/null
    cards+=("$NET/$o/card.json")
  done
  "$BIN" genesis new --network-id leasehold-netns --out "$NET/genesis.json" --cards "${cards[@]}" >/dev/null
  for o in "${ORGS[@]}"; do
    "$BIN" genesis sign --genesis "$NET/genesis.json" --config "$NET/$o/node.toml" >/dev/null
  done
  for o in "${ORGS[@]}"; do cp "$NET/genesis.json" "$NET/genesis.sigs.json" "$NET/$o/"; done
  echo "$NETNS_TAG" >"$NET/netns"
}

if [ "$netns" -eq 1 ]; then
  mkdir -p "$NET"
  for i in "${!ORGS[@]}"; do netns_host "$NET" "$i"; done
  [ -f "$NET/genesis.json" ] || ceremony
elif [ ! -f "$NET/genesis.json" ]; then
  "$BIN" init --orgs ${#ORGS[@]} --out "$NET" \
    ${LEASEHOLD_P2P_PORTS:+--p2p-ports "$LEASEHOLD_P2P_PORTS"} \
    ${LEASEHOLD_API_PORTS:+--api-ports "$LEASEHOLD_API_PORTS"}
fi

for i in "${!ORGS[@]}"; do
  o=${ORGS[$i]}
  in_host=()
  # nsenter enters the network namespace only: `ip netns exec` would also
  # remount /sys, hiding the cgroups the sandbox needs. It execs the node,
  # so $! is the node's pid.
  [ "$netns" -eq 0 ] || in_host=(nsenter "--net=/run/netns/$(netns_name "$i")" --)
  nohup "${in_host[@]}" "$BIN" start --config "$NET/$o/node.toml" >>"$NET/$o/node.log" 2>&1 &
  echo $! >"$NET/$o/pid"
done

api_url() { sed -n 's/^api_listen = "\(.*\)"/http:\/\/\1/p' "$NET/$1/node.toml"; }

# Agreement: every node answers, names the same leader and the same head.
log "waiting for the nodes to agree..."
deadline=$((SECONDS + 60))
while :; do
  heads=""
  for o in "${ORGS[@]}"; do
    running "$o" || { log "node $o exited; last lines of $NET/$o/node.log:"; tail -20 "$NET/$o/node.log" >&2; exit 1; }
    s=$(curl -fsS "$(api_url "$o")/v1/status" 2>/dev/null || true)
    heads+=$(printf '%s' "$s" | python3 -c 'import json,sys
try:
    s=json.load(sys.stdin); print("%s/%s/%s" % (s["leader"], s["height"], s["head_hash"]) if s["leader"] else "none")
except Exception: print("none")')$'\n'
  done
  if [ "$(printf '%s' "$heads" | sort -u | wc -l)" -eq 1 ] && ! grep -qE 'none|None' <<<"$heads"; then break; fi
  [ $SECONDS -lt $deadline ] || { log "the nodes did not agree within 60 s; see $NET/*/node.log"; exit 1; }
  sleep 0.5
done

write_network_json "$NET" "${ORGS[@]}"

where="on loopback"
[ "$netns" -eq 0 ] || where="each in its own network namespace ($(netns_name 0)…), bridged to this host"
echo "three organisations are up, $where, and agree on the head:"
for o in "${ORGS[@]}"; do
  echo "  $o  $(api_url "$o")   status: $BIN status --url $(api_url "$o")"
done
echo "the web explorer of each org (one browser profile per org: they share the host, so they would share cookies):"
for o in "${ORGS[@]}"; do print_explorer "$NET" "$o"; done
echo "details: $NET/network.json   stop: scripts/testnet-down.sh"

if [ "$demo" -eq 1 ]; then
  echo "demo (scripts/demo.sh; about 40 s, most of it waiting for the lease to expire):"
  scripts/demo.sh
fi
