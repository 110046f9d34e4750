#!/usr/bin/env bash
# Adds a fourth organisation, org4, to the running testnet that
# scripts/testnet-up.sh started on loopback, as Fabric's addOrg3 does:
# org4 makes its keys in a directory of its own (`org new`) and signs a join
# request; org1 proposes it and org2 approves (two of three are a
# majority); org4's node then starts from the genesis, catches up and
# becomes a raft voter. Run it again to restart org4's node.
#
# Environment, all optional: LEASEHOLD_BIN, LEASEHOLD_NET (default
# testnet), LEASEHOLD_ORG4_P2P_PORT (7054), LEASEHOLD_ORG4_API_PORT (8084).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

NET=${LEASEHOLD_NET:-testnet}
BIN=${LEASEHOLD_BIN:-$CARGO_TARGET_DIR/release/leasehold}
P2P=${LEASEHOLD_ORG4_P2P_PORT:-7054}
API=${LEASEHOLD_ORG4_API_PORT:-8084}
O=$NET/org4
if [ -f "$NET/netns" ]; then
  log "$NET runs in network namespaces; adding an org there is not scripted yet (docs/OPERATIONS.md shows the steps)"
  exit 1
fi
[ -f "$NET/org1/pid" ] && kill -0 "$(cat "$NET/org1/pid")" 2>/dev/null ||
  { log "no testnet is running in $NET: run scripts/testnet-up.sh first"; exit 1; }
[ -x "$BIN" ] || { log "no binary at $BIN: run scripts/testnet-up.sh (it builds), or set LEASEHOLD_BIN"; exit 1; }

api_url() { sed -n 's/^api_listen = "\(.*\)"/http:\/\/\1/p' "$NET/$1/node.toml"; }
orgs_json() { curl -fsS -H "authorization: Bearer $(cat "$NET/$1/admin.token")" "$(api_url "$1")/v1/orgs"; }
wait_until() { # seconds, description, command...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { log "$what did not happen in time; see $NET/*/node.log"; exit 1; }
    sleep 0.5
  done
}
pending_on() { orgs_json "$1" | grep -q '"change_id":"add-org4"'; }
member_on() { orgs_json "$1" | python3 -c 'import json,sys; sys.exit(0 if any(m["org"]=="org4" for m in json.load(sys.stdin)["members"]) else 1)'; }
voter() {
  curl -fsS -H "authorization: Bearer $(cat "$NET/org1/admin.token")" "$(api_url org1)/v1/membership" |
    python3 -c 'import json,sys; sys.exit(0 if "org4" in json.load(sys.stdin)["raft_voters"] else 1)'
}

if [ ! -d "$O/keys" ]; then
  log "org4 makes its keys on its own machine (here: $O)"
  "$BIN" org new --org org4 --name "Organisation 4" --dir "$O" --p2p-addr "127.0.0.1:$P2P" \
    --p2p-listen "/ip4/127.0.0.1/tcp/$P2P" --api-addr "127.0.0.1:$API" >/dev/null
  cp "$NET/genesis.json" "$O/genesis.json"
  [ ! -f "$NET/genesis.sigs.json" ] || cp "$NET/genesis.sigs.json" "$O/genesis.sigs.json"
  "$BIN" org join-request --config "$O/node.toml" --card "$O/card.json" >"$O/join.json"
fi
if ! member_on org1; then
  log "org1 proposes org4; org2 approves"
  pending_on org1 || "$BIN" org propose --url "$(api_url org1)" --token-file "$NET/org1/admin.token" \
    --change-id add-org4 --join "$O/join.json" >/dev/null
  wait_until 30 "org2 seeing the proposal" pending_on org2
  "$BIN" org approve --url "$(api_url org2)" --token-file "$NET/org2/admin.token" --change-id add-org4 >/dev/null
  wait_until 30 "org1 applying the join" member_on org1
fi
if ! grep -q '^node_id' "$O/node.toml"; then
  id=$(orgs_json org1 | python3 -c 'import json,sys; print(next(m["node_id"] for m in json.load(sys.stdin)["members"] if m["org"]=="org4"))')
  sed -i "1i node_id = $id" "$O/node.toml"
fi
if ! { [ -f "$O/pid" ] && kill -0 "$(cat "$O/pid")" 2>/dev/null; }; then
  nohup "$BIN" start --config "$O/node.toml" >>"$O/node.log" 2>&1 &
  echo $! >"$O/pid"
fi
log "org4's node catches up and becomes a voter..."
wait_until 120 "org4 becoming a raft voter" voter
orgs=()
for d in "$NET"/org*/; do [ -f "$d/node.toml" ] && orgs+=("$(basename "$d")"); done
write_network_json "$NET" "${orgs[@]}"
echo "org4 is a member and a raft voter: $(api_url org4)   stop: scripts/testnet-down.sh"
print_explorer "$NET" org4
echo "details: $NET/network.json"
