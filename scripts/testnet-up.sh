#!/usr/bin/env bash
# Builds leasehold, starts a three-organisation network on loopback under
# ./testnet/, waits until the nodes agree, writes testnet/network.json and
# runs the demo (skip it with --no-demo). Installs what is missing first.
#
# Environment, all optional: LEASEHOLD_BIN (use this binary, do not build),
# LEASEHOLD_NET (directory, default testnet), LEASEHOLD_P2P_PORTS and
# LEASEHOLD_API_PORTS (comma-separated, default 7051-7053 and 8081-8083).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    *) log "usage: scripts/testnet-up.sh [--no-demo]"; exit 2 ;;
  esac
done

NET=${LEASEHOLD_NET:-testnet}
export LEASEHOLD_NET=$NET
ORGS=(org1 org2 org3)

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

if [ ! -f "$NET/genesis.json" ]; then
  "$BIN" init --orgs ${#ORGS[@]} --out "$NET" \
    ${LEASEHOLD_P2P_PORTS:+--p2p-ports "$LEASEHOLD_P2P_PORTS"} \
    ${LEASEHOLD_API_PORTS:+--api-ports "$LEASEHOLD_API_PORTS"}
fi

i=0
for o in "${ORGS[@]}"; do
  nohup "$BIN" start --config "$NET/$o/node.toml" >>"$NET/$o/node.log" 2>&1 &
  echo $! >"$NET/$o/pid"
  i=$((i + 1))
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

python3 - "$NET" "${ORGS[@]}" <<'PY'
import json, os, re, sys
net, orgs = sys.argv[1], sys.argv[2:]
out = []
for o in orgs:
    cfg = open(f"{net}/{o}/node.toml").read()
    api = re.search(r'^api_listen = "(.*)"', cfg, re.M).group(1)
    tok = f"{net}/{o}/admin.token"
    out.append({
        "org": o,
        "api_url": f"http://{api}",
        "data_dir": os.path.abspath(f"{net}/{o}/data"),
        "config": os.path.abspath(f"{net}/{o}/node.toml"),
        "log": os.path.abspath(f"{net}/{o}/node.log"),
        "pid": int(open(f"{net}/{o}/pid").read()),
        "admin_token_file": os.path.abspath(tok) if os.path.exists(tok) else None,
    })
json.dump({"orgs": out}, open(f"{net}/network.json", "w"), indent=2)
PY

echo "three organisations are up and agree on the head:"
for o in "${ORGS[@]}"; do
  echo "  $o  $(api_url "$o")   status: $BIN status --url $(api_url "$o")"
done
echo "details: $NET/network.json   stop: scripts/testnet-down.sh"

if [ "$demo" -eq 1 ]; then
  echo "demo (scripts/demo.sh; about 40 s, most of it waiting for the lease to expire):"
  scripts/demo.sh
fi
