#!/usr/bin/env bash
# The story of the prototype we replace, on a running three-org network
# (scripts/testnet-up.sh starts one and runs this):
#   org1 registers the Iris dataset with encrypted private metadata; org2
#   leases it and reads the metadata; org2 runs k-means on it in a sandbox
#   and publishes the result; org3 walks the result's lineage back to Iris;
#   the lease expires, and org2 can neither read the metadata nor run on it.
#   Then compute-to-data: org3 runs the same k-means at org1's node on a
#   compute-only copy; org1 approves the release; org3 gets the result only.
# One line per step. Exits non-zero at the first step that does not happen.
#
# Environment: LEASEHOLD_NET (default testnet), LEASEHOLD_BIN (default the
# release build), DEMO_LEASE_S (lease length, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

NET=${LEASEHOLD_NET:-testnet}
BIN=${LEASEHOLD_BIN:-$CARGO_TARGET_DIR/release/leasehold}
LEASE_S=${DEMO_LEASE_S:-30}
[ -f "$NET/network.json" ] || { log "no $NET/network.json: start the network with scripts/testnet-up.sh"; exit 1; }
[ -x "$BIN" ] || { log "no leasehold binary at $BIN"; exit 1; }

field() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print("" if v is None else v)' "$1"; }
org() { field "orgs.$(($1 - 1)).$2" <"$NET/network.json"; }
URL=("" "$(org 1 api_url)" "$(org 2 api_url)" "$(org 3 api_url)")
TOKEN_FILE=("" "$(org 1 admin_token_file)" "$(org 2 admin_token_file)" "$(org 3 admin_token_file)")

step=0
say() { step=$((step + 1)); printf '%2d. %s\n' "$step" "$*"; }
fail() { printf 'demo failed at step %d: %s\n' "$((step + 1))" "$*" >&2; exit 1; }

# api ORG METHOD PATH [CURL ARGS...]: sets $BODY and $CODE.
BODY="" CODE=0
api() {
  local o=$1 method=$2 path=$3
  shift 3
  local out
  out=$(curl -sS -X "$method" -H "Authorization: Bearer $(cat "${TOKEN_FILE[$o]}")" \
    -w '\n%{http_code}' "$@" "${URL[$o]}$path") || fail "org$o $method $path: no answer"
  CODE=${out##*$'\n'}
  BODY=${out%$'\n'*}
}
json() { api "$1" "$2" "$3" -H 'content-type: application/json' --data-binary "$4"; }
expect() { [ "$CODE" = "$1" ] || fail "expected HTTP $1, got $CODE: $2"; }

# until_ok SECONDS CMD...: retries CMD (a follower may not have the block yet).
until_ok() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
lease_is() { api "$1" GET "/v1/leases/$2" && [ "$(field status <<<"$BODY")" = "$3" ]; }
found() { api "$1" GET "$2" && [ "$CODE" = 200 ]; }

suffix=$(date +%s)
DS="iris-$suffix"

# 1. org1 stages the file and registers the dataset.
api 1 PUT "/v1/datasets/$DS/files/iris.csv" --data-binary @examples/iris/data/iris.csv
up=$BODY
expect 201 "$up"
private='{"location":"s3://org1-research/iris/iris.csv","credentials":{"access_key":"AKIA-DEMO-ORG1","secret":"s3cr3t-demo"},"schema":{"sepal_length":"cm","sepal_width":"cm","petal_length":"cm","petal_width":"cm","species":"setosa|versicolor|virginica"}}'
json 1 POST /v1/datasets "{\"id\":\"$DS\",\"title\":\"Iris (Fisher, 1936)\",\"description\":\"150 flowers, 4 measurements, 3 species\",\"tags\":[\"iris\",\"demo\"],\"policy\":{\"allowed_orgs\":[\"org2\",\"org3\"],\"max_lease_ms\":3600000},\"public_metadata\":{\"rows\":150},\"private_metadata\":$private}"
reg=$BODY
expect 201 "$reg"
hash=$(field resource.content_hash <<<"$reg")
say "org1 registered dataset $DS ($(field size_bytes <<<"$up") bytes, content hash ${hash:0:12}…) with its location, credentials and schema sealed on the ledger under a key only org1's node can derive"

# 2. org2 requests a lease; 3. org1 grants it.
until_ok 10 found 2 "/v1/datasets/$DS" || fail "org2's node never saw $DS"
json 2 POST "/v1/datasets/$DS/leases" "{\"duration_ms\":$((LEASE_S * 1000)),\"purpose\":\"cluster analysis\"}"
req=$BODY
expect 201 "$req"
LEASE=$(field resource.id <<<"$req")
say "org2 requested lease $LEASE on $DS for ${LEASE_S} s: cluster analysis"
until_ok 10 lease_is 1 "$LEASE" requested || fail "org1's node never saw the request"
json 1 POST "/v1/leases/$LEASE/grant" '{}'
grant=$BODY
expect 200 "$grant"
until_ok 10 lease_is 2 "$LEASE" active || fail "the lease never became active on org2's node"
say "org1 granted lease $LEASE; it expires at $(field resource.expires_at <<<"$grant")"

# 4. org2 asks for the metadata; org1's node checks the lease, records the read on the ledger, and answers.
api 2 GET "/v1/leases/$LEASE/metadata"
meta=$BODY
expect 200 "$meta"
audit=$(field audit_tx_id <<<"$meta")
say "org1's node disclosed the private metadata to org2 after recording the read (tx ${audit:0:12}…): location $(field private_metadata.location <<<"$meta"), $(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["private_metadata"]["schema"]))' <<<"$meta") schema fields"

# 5. org2 runs the workflow on the leased volume in its own node's sandbox.
# Its directory goes with it: the scripts, and the QC test's sample, which
# runs first. Only the volume's id changes, to this demo's dataset.
wfdir="$NET/iris-workflow"
rm -rf "$wfdir" && mkdir -p "$wfdir"
cp -r examples/iris/kmeans.py examples/iris/summary.py examples/iris/tests "$wfdir/"
wf="$wfdir/workflow.yaml"
sed "s/^      - id: iris$/      - id: $DS/" examples/iris/workflow.yaml >"$wf"
runlog="$NET/demo-run.log"
"$BIN" run -f "$wf" --url "${URL[2]}" --token-file "${TOKEN_FILE[2]}" >"$runlog" 2>&1 || { cat "$runlog" >&2; fail "the run did not succeed"; }
RUN=$(sed -n 's/^run \(run-[0-9a-f]*\) succeeded.*/\1/p' "$runlog")
summary=$(grep -m1 '^\[job 2\]' "$runlog" | sed 's/^\[job 2\] //')
grep -q 'test "k-means on a 12-flower sample" passed' "$runlog" || fail "the QC test did not run first: $runlog"
say "org2 ran kmeans.py's QC test on a sample, then k-means and a summary as $RUN, sandboxed, on the verified copy of $DS: $summary (log: $runlog)"

# 6. org2 publishes the outputs as a derived dataset.
OUT="iris-clusters-$suffix"
json 2 POST "/v1/runs/$RUN/publish" "{\"id\":\"$OUT\",\"title\":\"Iris k-means clusters\",\"tags\":[\"iris\",\"derived\"],\"policy\":{\"allowed_orgs\":[\"org1\",\"org3\"],\"max_lease_ms\":3600000},\"private_metadata\":{\"note\":\"cluster assignments per row\"}}"
pub=$BODY
expect 201 "$pub"
say "org2 published the outputs as dataset $OUT (content hash $(field resource.content_hash <<<"$pub" | cut -c1-12)…), derived from $RUN"

# 7. org3 finds it and walks its lineage back to Iris.
until_ok 10 found 3 "/v1/datasets/$OUT" || fail "org3's node never saw $OUT"
api 3 GET "/v1/datasets?tag=derived&limit=500"
python3 -c 'import json,sys; sys.exit(sys.argv[1] not in [d["id"] for d in json.load(sys.stdin)["items"]])' "$OUT" <<<"$BODY" ||
  fail "org3's search for derived datasets did not find $OUT"
api 3 GET "/v1/datasets/$OUT"
lineage=$(python3 -c 'import json,sys
d=json.load(sys.stdin)
run = lambda n: ", run " + n["run_id"] if n["run_id"] else ""
print(" <- ".join("%s@%s (%s%s)" % (n["dataset"], n["version"], n["owner"], run(n)) for n in d["lineage"]))' <<<"$BODY")
grep -q "$DS@1 (org1)" <<<"$lineage" || fail "the lineage does not reach $DS: $lineage"
say "org3 found $OUT and walked its lineage: $lineage"

# 8. The lease expires; no transaction is needed for that.
api 2 GET "/v1/leases/$LEASE"
expires_ms=$(field expires_at_ms <<<"$BODY")
wait_s=$(python3 -c "import time; print(max(0, $expires_ms / 1000 - time.time()) + 0.3)")
sleep "$wait_s"
until_ok 5 lease_is 2 "$LEASE" expired || fail "the lease did not expire"
say "lease $LEASE expired at $(field expires_at <<<"$BODY"), by itself: no transaction was needed"

# 9. org2 can no longer read the metadata...
api 2 GET "/v1/leases/$LEASE/metadata"
denied=$BODY
[ "$CODE" = 403 ] || fail "org2 could still read the metadata (HTTP $CODE)"
say "org2 can no longer read the metadata: HTTP $CODE, $(field detail <<<"$denied")"

# 10. ...nor start a run on it.
api 2 POST /v1/runs -H 'content-type: application/yaml' --data-binary @"$wf"
refused=$BODY
[ "$CODE" = 422 ] || fail "org2 could still start a run (HTTP $CODE)"
say "org2 can no longer start a run on it: HTTP $CODE, $(field detail <<<"$refused")"

# 11. ...and its node has deleted the cached copy.
cache="$(org 2 data_dir)/cache/$LEASE"
until_ok 5 test ! -e "$cache" || fail "org2's cached copy is still at $cache"
say "org2's node deleted its cached copy of $DS"

# Compute-to-data (TeraLab): the algorithm goes to the data.
# 12. org1 registers a dataset whose files never leave its node.
CDS="iris-compute-$suffix"
api 1 PUT "/v1/datasets/$CDS/files/iris.csv" --data-binary @examples/iris/data/iris.csv
expect 201 "$BODY"
json 1 POST /v1/datasets "{\"id\":\"$CDS\",\"title\":\"Iris, compute only\",\"policy\":{\"allowed_orgs\":[\"org3\"],\"max_lease_ms\":3600000,\"approval\":\"automatic\",\"access\":\"compute\",\"release\":{\"max_output_bytes\":1048576,\"approval\":true,\"logs\":\"after_release\"}},\"private_metadata\":{}}"
expect 201 "$BODY"
until_ok 10 found 3 "/v1/datasets/$CDS" || fail "org3's node never saw $CDS"
say "org1 registered $CDS for compute only: its files never leave org1's node"

# 13. org3 leases it (granted at once by its policy) and runs the same
# workflow directory; org3's node hands the run to org1's.
json 3 POST "/v1/datasets/$CDS/leases" '{"duration_ms":600000,"purpose":"k-means at the data"}'
expect 201 "$BODY"
CLEASE=$(field resource.id <<<"$BODY")
until_ok 10 lease_is 3 "$CLEASE" active || fail "org3's lease never became active"
cwf="$NET/iris-compute"
rm -rf "$cwf" && mkdir -p "$cwf"
cp -r examples/iris/kmeans.py examples/iris/summary.py examples/iris/tests "$cwf/"
sed "s/^      - id: iris$/      - id: $CDS/" examples/iris/workflow.yaml >"$cwf/workflow.yaml"
clog="$NET/demo-compute.log"
"$BIN" run -f "$cwf/workflow.yaml" --url "${URL[3]}" --token-file "${TOKEN_FILE[3]}" >"$clog" 2>&1 &
cli=$!
owner_has_run() { api 1 GET /v1/runs && python3 -c 'import json,sys
sys.exit(not [r for r in json.load(sys.stdin) if r["org"] == "org3" and r["status"] == "succeeded" and not r["release"]])' <<<"$BODY"; }
until_ok 60 owner_has_run || { cat "$clog" >&2; fail "org1's node never ran org3's workflow"; }
CRUN=$(python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["org"] == "org3"][-1])' <<<"$BODY")
say "org1's node ran org3's k-means as $CRUN, in its own sandbox on its own copy; the outputs wait for org1"

# 14. org1 approves the release; only the outputs travel to org3.
json 1 POST "/v1/releases/$CRUN/approve" '{"reason":"cluster assignments only"}'
expect 200 "$BODY"
wait "$cli" || { cat "$clog" >&2; fail "org3's run did not succeed"; }
say "org1 released the outputs; org3 received them: $(grep -m1 '^\[job 2\]' "$clog" | sed 's/^\[job 2\] //')"

# 15. org3 publishes them with provenance, and never held a byte of the data.
COUT="iris-compute-clusters-$suffix"
json 3 POST "/v1/runs/$CRUN/publish" "{\"id\":\"$COUT\",\"title\":\"Iris clusters, computed at org1\",\"policy\":{\"allowed_orgs\":[\"org1\"],\"max_lease_ms\":3600000},\"private_metadata\":{}}"
expect 201 "$BODY"
row=$(sed -n 10p examples/iris/data/iris.csv) # not in the QC sample
if grep -rqF "$row" "$(org 3 data_dir)"; then fail "org3's data directory holds a row of the raw data"; fi
say "org3 published $COUT from $CRUN; its data directory holds no row of $CDS"
echo "demo complete"
