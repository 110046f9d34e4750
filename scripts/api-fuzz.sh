#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with schemathesis (from
# PyPI): a fresh three-org network, authenticated as org1's admin. Fails on
# any 5xx, undocumented status code or content type, or a response that
# breaks its documented schema. Prints how many requests it made.
#   scripts/api-fuzz.sh [MAX_EXAMPLES]   (default 400: over 10,000 requests)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
ensure_deps
command -v st >/dev/null 2>&1 || python3 -m pip install --quiet schemathesis
cargo build --release
net=$(mktemp -d /tmp/leasehold-fuzz.XXXXXX)
trap 'LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null; rm -rf "$net"' EXIT
cp "$CARGO_TARGET_DIR/release/leasehold" "$net/leasehold"
reserve_ports 6
read -r p1 p2 p3 a1 a2 a3 <<<"${PORTS[*]}"
LEASEHOLD_NET=$net LEASEHOLD_BIN="$net/leasehold" DEMO_LEASE_S=5 LEASEHOLD_P2P_PORTS=$p1,$p2,$p3 \
  LEASEHOLD_API_PORTS=$a1,$a2,$a3 scripts/testnet-up.sh >"$net/up.log" 2>&1 || { tail -20 "$net/up.log"; exit 1; }
log "fuzzing http://127.0.0.1:$a1/v1/openapi.json"
st run "http://127.0.0.1:$a1/v1/openapi.json" -H "Authorization: Bearer $(cat "$net/org1/admin.token")" \
  --max-examples "${1:-400}" \
  -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --report har --report-har-path "$net/requests.har"
python3 - "$net/requests.har" <<'PY'
import collections, json, sys
entries = json.load(open(sys.argv[1]))["log"]["entries"]
by_class = collections.Counter(f'{e["response"]["status"] // 100}xx' for e in entries)
print(f"{len(entries)} requests: {dict(sorted(by_class.items()))}")
sys.exit(1 if by_class.get("5xx") else 0)
PY
