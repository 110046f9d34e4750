#!/usr/bin/env bash
# Audited metadata reads on a running testnet (scripts/testnet-up.sh
# --no-demo): org2's users read a leased dataset's private metadata through
# org2's node, which asks org1's node; org1 checks the lease, commits the
# audit record and answers. Load from wrk at 64 connections.
# Usage: scripts/bench-metadata.sh [SECONDS] [CONNECTIONS]   (default 20 64)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
command -v wrk >/dev/null 2>&1 || apt_install wrk
SECONDS_RUN=${1:-20}
CONNS=${2:-64}
NET=${LEASEHOLD_NET:-testnet}
U1=http://$(sed -n 's/^api_listen = "\(.*\)"/\1/p' "$NET/org1/node.toml")
U2=http://$(sed -n 's/^api_listen = "\(.*\)"/\1/p' "$NET/org2/node.toml")
T1=$(cat "$NET/org1/admin.token")
T2=$(cat "$NET/org2/admin.token")
j() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

ID="meta-$(date +%s)"
curl -fsS -H "Authorization: Bearer $T1" -H 'content-type: application/json' "$U1/v1/datasets" \
  -d "{\"id\":\"$ID\",\"title\":\"bench\",\"policy\":{\"allowed_orgs\":[\"org2\"],\"max_lease_ms\":3600000},\"private_metadata\":{\"location\":\"s3://x/y\",\"password\":\"p\"}}" >/dev/null
until curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/datasets/$ID" >/dev/null 2>&1; do sleep 0.2; done
LEASE=$(curl -fsS -H "Authorization: Bearer $T2" -H 'content-type: application/json' "$U2/v1/datasets/$ID/leases" \
  -d '{"duration_ms":3600000}' | j resource.id)
until curl -fsS -X POST -H "Authorization: Bearer $T1" "$U1/v1/leases/$LEASE/grant" >/dev/null 2>&1; do sleep 0.2; done
until [ "$(curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/leases/$LEASE" | j status)" = active ]; do sleep 0.2; done
curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/leases/$LEASE/metadata" >/dev/null

out=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -H "Authorization: Bearer $T2" "$U2/v1/leases/$LEASE/metadata")
echo "$out" >&2
audited=$(python3 - "$U1/v1/leases/$LEASE/access-log" "$T1" <<'PY'
import json, sys, urllib.request
n = 0
while True:
    req = urllib.request.Request(f"{sys.argv[1]}?from={n}&limit=1000", headers={"Authorization": f"Bearer {sys.argv[2]}"})
    page = json.load(urllib.request.urlopen(req))
    if not page:
        break
    n += len(page)
print(n)
PY
)
python3 - "$audited" <<PY
import re, sys
out = """$out"""
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
def pct(p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
total = int(re.search(r"(\d+) requests in", out).group(1))
print(f"{rps:.0f} audited reads/s, p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, "
      f"{bad.group(1) if bad else 0} non-2xx of {total}; {sys.argv[1]} audit records on org1's ledger")
PY
