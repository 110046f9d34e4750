#!/usr/bin/env bash
# Measures the workflow path on a running testnet (scripts/testnet-up.sh
# --no-demo): the data plane (org1's node serving a leased file to org2's
# node, which verifies it against the ledger) and the sandbox's cost per job.
# Usage: scripts/bench-workflow.sh [SIZE_MIB] [TRIVIAL_JOBS]   (default 256 20)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
SIZE_MIB=${1:-256}
JOBS=${2:-20}
NET=${LEASEHOLD_NET:-testnet}
BIN=${LEASEHOLD_BIN:-$CARGO_TARGET_DIR/release/leasehold}
U1=http://$(sed -n 's/^api_listen = "\(.*\)"/\1/p' "$NET/org1/node.toml")
U2=http://$(sed -n 's/^api_listen = "\(.*\)"/\1/p' "$NET/org2/node.toml")
T1=$(cat "$NET/org1/admin.token")
T2=$(cat "$NET/org2/admin.token")
j() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]] if len(sys.argv) < 3 else json.load(sys.stdin)[sys.argv[1]][sys.argv[2]])' "$@"; }

ID="bench-$(date +%s)"
blob=$(mktemp)
trap 'rm -f "$blob"' EXIT
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$blob"
# -T streams the file (--data-binary reads all of it into memory first).
curl -fsS -H "Authorization: Bearer $T1" -T "$blob" "$U1/v1/datasets/$ID/files/blob.bin" >/dev/null
curl -fsS -H "Authorization: Bearer $T1" -H 'content-type: application/json' "$U1/v1/datasets" \
  -d "{\"id\":\"$ID\",\"title\":\"bench\",\"policy\":{\"allowed_orgs\":[\"org2\"],\"max_lease_ms\":3600000},\"private_metadata\":{}}" >/dev/null
until curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/datasets/$ID" >/dev/null 2>&1; do sleep 0.2; done
LEASE=$(curl -fsS -H "Authorization: Bearer $T2" -H 'content-type: application/json' "$U2/v1/datasets/$ID/leases" \
  -d '{"duration_ms":3600000}' | j resource id)
until curl -fsS -X POST -H "Authorization: Bearer $T1" -H 'content-type: application/json' "$U1/v1/leases/$LEASE/grant" -d '{}' >/dev/null 2>&1; do sleep 0.2; done
until [ "$(curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/leases/$LEASE" | j status)" = active ]; do sleep 0.2; done

wf=$(mktemp)
{
  echo "name: bench"
  echo "jobs:"
  echo "  - command: sha256sum /data/d/blob.bin"
  echo "    volumes: [{id: $LEASE, name: d, path: /data/d}]"
  for _ in $(seq "$JOBS"); do echo "  - 'true'"; done
  echo "dags:"
  for i in $(seq 2 $((JOBS + 1))); do echo "  - 1 >> $i"; done
} >"$wf"
"$BIN" run -f "$wf" --url "$U2" --token-file "$NET/org2/admin.token" >/dev/null 2>&1
RUN=$(curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/runs" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
curl -fsS -H "Authorization: Bearer $T2" "$U2/v1/runs/$RUN" >"$wf.run"
curl -fsS --max-time 5 -H "Authorization: Bearer $T2" "$U2/v1/runs/$RUN/logs" >"$wf.log" || true
python3 - "$wf.run" "$wf.log" "$SIZE_MIB" <<'PY'
import json, statistics, sys
run = json.load(open(sys.argv[1]))
lines = [json.loads(l[5:]) for l in open(sys.argv[2]) if l.startswith("data:") and '"seq"' in l]
start = next(l["time_ms"] for l in lines if "(0%)" in l["text"])
done = next(l["time_ms"] for l in lines if "verified against the ledger" in l["text"])
mib = int(sys.argv[3])
print(f"run {run['id']}: {run['status']}")
print(f"data plane: {mib} MiB fetched and verified in {(done - start) / 1000:.2f} s = {mib * 1000 / max(1, done - start):.0f} MiB/s")
# The wall-clock window, to cut a profile to (perf record -k realtime; perf report --time).
print(f"data plane window: {start / 1000:.3f},{done / 1000:.3f}")
print(f"job 1 (sha256sum of the mounted copy): {run['jobs'][0]['duration_ms']} ms")
trivial = [j["duration_ms"] for j in run["jobs"][1:]]
print(f"sandboxed 'true' x{len(trivial)} (2 at a time): median {statistics.median(trivial)} ms, max {max(trivial)} ms per job")
PY
rm -f "$wf" "$wf.run" "$wf.log"
