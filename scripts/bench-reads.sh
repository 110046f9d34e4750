#!/usr/bin/env bash
# Audited metadata reads of two leasehold binaries side by side: on fresh
# testnets, alternated (see scripts/lib/pairs.sh), org2's and org3's users
# read leased metadata that org1's node discloses (scripts/bench-metadata.sh).
#
#   scripts/bench-reads.sh OLD_BIN NEW_BIN [PAIRS] [SECONDS] [CONNECTIONS] [LEASES]
#
# PAIRS defaults to 3; the rest to bench-metadata.sh's defaults. Takes the
# default ports: stop any running testnet first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/pairs.sh
source scripts/lib/pairs.sh
[ $# -ge 2 ] || {
  echo "usage: scripts/bench-reads.sh OLD_BIN NEW_BIN [PAIRS] [SECONDS] [CONNECTIONS] [LEASES]" >&2
  exit 2
}
pairs=${3:-3} seconds=${4:-20} conns=${5:-32} leases=${6:-2}

measure() {
  LEASEHOLD_NET=$1 scripts/bench-metadata.sh "$seconds" "$conns" "$leases" 2>/dev/null
}

alternate "$1" "$2" "$pairs" measure
