#!/usr/bin/env bash
# The data plane of two leasehold binaries side by side: on fresh testnets,
# alternated (see scripts/lib/pairs.sh), org2's node fetches a file leased
# from org1's and verifies it against the ledger (scripts/bench-workflow.sh).
#
#   scripts/bench-data.sh OLD_BIN NEW_BIN [PAIRS] [SIZE_MIB]
#
# PAIRS defaults to 3, SIZE_MIB to 1024. Takes the default ports: stop any
# running testnet first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/pairs.sh
source scripts/lib/pairs.sh
[ $# -ge 2 ] || { echo "usage: scripts/bench-data.sh OLD_BIN NEW_BIN [PAIRS] [SIZE_MIB]" >&2; exit 2; }
pairs=${3:-3} size_mib=${4:-1024}

measure() {
  LEASEHOLD_NET=$1 LEASEHOLD_BIN=$2 scripts/bench-workflow.sh "$size_mib" 2 | grep -v '^sandboxed'
}

alternate "$1" "$2" "$pairs" measure
