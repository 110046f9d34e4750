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
[ $# -ge 2 ] || { echo "usage: scripts/bench-tx.sh OLD_BIN NEW_BIN [PAIRS] [RATES] [SECONDS]" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
pairs=${3:-3} rates=${4:-1000,0} seconds=${5:-10}
# One client measures both: only the nodes differ between the runs.
bench_bin=${LEASEHOLD_BENCH_BIN:-$new}

one_run() {
  local label=$1 bin=$2 net
  net=$(mktemp -d /tmp/leasehold-bench.XXXXXX)
  echo "== $label ($bin) on $net"
  LEASEHOLD_NET=$net LEASEHOLD_BIN=$bin scripts/testnet-up.sh --no-demo >"$net.up.log" 2>&1 ||
    { cat "$net.up.log"; exit 1; }
  "$bench_bin" bench --net "$net" --rates "$rates" --seconds "$seconds"
  for o in org1 org2 org3; do
    echo "rss $o $(ps -o rss= -p "$(cat "$net/$o/pid")") KiB"
  done
  sleep 2
  du -sm "$net"/org*/data 2>/dev/null | sed 's/^/disk MiB /'
  LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null
  rm -rf "$net" "$net.up.log"
}

for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) -eq 1 ]; then
    one_run "pair $i old" "$old"
    one_run "pair $i new" "$new"
  else
    one_run "pair $i new" "$new"
    one_run "pair $i old" "$old"
  fi
done
