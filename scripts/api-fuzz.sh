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
base="http://127.0.0.1:$a1"
height_before=$(curl -fsS "$base/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])')
log "fuzzing $base/v1/openapi.json from height $height_before"
st run "$base/v1/openapi.json" -H "Authorization: Bearer $(cat "$net/org1/admin.token")" \
  --max-examples "${1:-400}" \
  -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --report har --report-har-path "$net/requests.har"
# No 5xx; and every tx committed while fuzzing came from a request the API
# accepted (its tx id is in a 2xx answer): a rejected write changed nothing.
python3 - "$net/requests.har" "$base" "$height_before" "$(cat "$net/org1/admin.token")" <<'PY'
import base64, collections, json, sys, urllib.request
har, base, height_before, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
entries = json.load(open(har))["log"]["entries"]
by_class = collections.Counter(f'{e["response"]["status"] // 100}xx' for e in entries)
print(f"{len(entries)} requests: {dict(sorted(by_class.items()))}")
accepted, rejected_writes = set(), 0
def tx_ids(v):
    if isinstance(v, dict):
        # POST /v1/txs answers 200 with each tx's outcome; a rejected one
        # names its tx_id too, and must not count as accepted.
        if v.get("status") in ("committed", "pending") or "status" not in v:
            if isinstance(v.get("tx_id"), str):
                accepted.add(v["tx_id"])
        for x in v.values():
            tx_ids(x)
    elif isinstance(v, list):
        for x in v:
            tx_ids(x)
for e in entries:
    if e["request"]["method"] in ("GET", "HEAD", "OPTIONS"):
        continue
    if e["response"]["status"] >= 400:
        rejected_writes += 1
        continue
    content = e["response"].get("content", {})
    text = content.get("text") or "null"
    if content.get("encoding") == "base64":
        text = base64.b64decode(text)
    try:
        tx_ids(json.loads(text))
    except ValueError:
        pass
def get(path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req, timeout=10))
height_after, committed, nxt = get("/v1/status")["height"], [], height_before + 1
while nxt <= height_after:
    page = get(f"/v1/blocks?from={nxt}&limit=100")
    if not page:
        sys.exit(f"no block at height {nxt}, below the head {height_after}")
    for b in page:
        committed += [(t["tx_id"], t["kind"]) for t in b["txs"]]
        nxt = b["height"] + 1
# The node writes these itself, in no request's answer: a run's start and
# end, and the access record of a metadata read (a GET).
own = {"start_run", "finish_run", "record_access", "record_reads"}
stray = [t for t in committed if t[0] not in accepted and t[1] not in own]
print(f"height {height_before} -> {height_after}: {len(committed)} txs committed, "
      f"{len(stray)} not from an accepted request; {rejected_writes} writes rejected")
for t in stray[:10]:
    print("  stray:", t)
sys.exit(1 if by_class.get("5xx") or stray else 0)
PY
