#!/usr/bin/env bash
# Audited metadata reads on a running testnet (scripts/testnet-up.sh
# --no-demo): the owner's capacity. org1 registers LEASES datasets, and
# org2 and org3 each lease all of them; then each lessee's users read the
# private metadata through their own node, which asks org1's, from wrk at
# CONNECTIONS connections per lessee node, the leases taken in turn. org1
# checks each lease, commits the audit record that counts the read (reads
# of one lease by one user waiting together share one) and answers.
# Usage: scripts/bench-metadata.sh [SECONDS] [CONNECTIONS] [LEASES]   (default 20 32 2)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
command -v wrk >/dev/null 2>&1 || apt_install wrk
SECONDS_RUN=${1:-20}
CONNS=${2:-32}
LEASES=${3:-2}
NET=${LEASEHOLD_NET:-testnet}
url() { echo "http://$(sed -n 's/^api_listen = "\(.*\)"/\1/p' "$NET/$1/node.toml")"; }
U1=$(url org1)
T1=$(cat "$NET/org1/admin.token")
j() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

stamp=$(date +%s)
for d in $(seq 1 "$LEASES"); do
  curl -fsS -H "Authorization: Bearer $T1" -H 'content-type: application/json' "$U1/v1/datasets" \
    -d "{\"id\":\"meta-$stamp-$d\",\"title\":\"bench\",\"policy\":{\"allowed_orgs\":[\"org2\",\"org3\"],\"max_lease_ms\":3600000},\"private_metadata\":{\"location\":\"s3://x/y\",\"password\":\"p\"}}" >/dev/null
done
for org in org2 org3; do
  U=$(url $org) T=$(cat "$NET/$org/admin.token")
  for d in $(seq 1 "$LEASES"); do
    ID="meta-$stamp-$d"
    until curl -fsS -H "Authorization: Bearer $T" "$U/v1/datasets/$ID" >/dev/null 2>&1; do sleep 0.2; done
    LEASE=$(curl -fsS -H "Authorization: Bearer $T" -H 'content-type: application/json' "$U/v1/datasets/$ID/leases" \
      -d '{"duration_ms":3600000}' | j resource.id)
    until curl -fsS -X POST -H "Authorization: Bearer $T1" "$U1/v1/leases/$LEASE/grant" >/dev/null 2>&1; do sleep 0.2; done
    until [ "$(curl -fsS -H "Authorization: Bearer $T" "$U/v1/leases/$LEASE" | j status)" = active ]; do sleep 0.2; done
    curl -fsS -H "Authorization: Bearer $T" "$U/v1/leases/$LEASE/metadata" >/dev/null
    echo "$LEASE" >>"$WORK/$org.leases"
    echo "$LEASE" >>"$WORK/all.leases"
  done
  # The lessee node's users take its leases in turn.
  { echo 'local paths = {'
    sed 's|.*|"/v1/leases/&/metadata",|' "$WORK/$org.leases"
    echo '}'
    echo 'local i = 0'
    echo 'request = function() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end'
  } >"$WORK/$org.lua"
done

for org in org2 org3; do
  wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -s "$WORK/$org.lua" \
    -H "Authorization: Bearer $(cat "$NET/$org/admin.token")" "$(url $org)" >"$WORK/$org.wrk" 2>&1 &
done
wait
cat "$WORK"/org2.wrk "$WORK"/org3.wrk >&2
python3 - "$U1" "$T1" "$WORK" "$SECONDS_RUN" <<'PY'
import json, re, sys, urllib.request
u1, t1, work, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
records = counted = 0
for lease in open(f"{work}/all.leases").read().split():
    n = 0
    while True:
        req = urllib.request.Request(f"{u1}/v1/leases/{lease}/access-log?from={n}&limit=1000",
                                     headers={"Authorization": f"Bearer {t1}"})
        page = json.load(urllib.request.urlopen(req))
        if not page:
            break
        n += len(page)
        counted += sum(r.get("reads", 1) for r in page)
    records += n
def pct(out, p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
ok = total = 0
lat = []
for org in ("org2", "org3"):
    out = open(f"{work}/{org}.wrk").read()
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total += n
    ok += n - (int(bad.group(1)) if bad else 0)
    lat.append(f"{org} p50 {pct(out, 50):.1f} ms p99 {pct(out, 99):.1f} ms")
print(f"{ok / seconds:.0f} audited reads/s answered ({ok} of {total}, {total - ok} refused); "
      f"{'; '.join(lat)}; org1's ledger: {records} audit records counting {counted} reads")
PY
