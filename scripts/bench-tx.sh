#!/usr/bin/env bash
# Measures two leasehold binaries side by side, as docs/BENCHMARKS.md wants:
# each run on a fresh three-org testnet, the two alternated (old first in
# odd pairs, new first in even ones), the same bench client for both.
#
#   scripts/bench-tx.sh OLD_BIN NEW_BIN [PAIRS] [RATES] [SECONDS]
#
# PAIRS defaults to 3, RATES to 1000,0 (0: saturation), SECONDS to 10. Per
# run it prints the bench's table, then each node's RSS right after the
# bench and its data directory's size. Takes the default ports (see
# scripts/testnet-up.sh): stop any running testnet first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/pairs.sh
source scripts/lib/pairs.sh
[ $# -ge 2 ] || { echo "usage: scripts/bench-tx.sh OLD_BIN NEW_BIN [PAIRS] [RATES] [SECONDS]" >&2; exit 2; }
pairs=${3:-3} rates=${4:-1000,0} seconds=${5:-10}
# One client measures both: only the nodes differ between the runs.
bench_bin=$(realpath "${LEASEHOLD_BENCH_BIN:-$2}")

measure() {
  "$bench_bin" bench --net "$1" --rates "$rates" --seconds "$seconds"
}

alternate "$1" "$2" "$pairs" measure
