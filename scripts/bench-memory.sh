#!/usr/bin/env bash
# Memory after a million leases, two leasehold binaries side by side: each
# run on a fresh three-org testnet, the two alternated (scripts/lib/pairs.sh).
#
#   scripts/bench-memory.sh OLD_BIN NEW_BIN [PAIRS]
#
# PAIRS defaults to 3. Per run: `bench --rates 0 --seconds 34` (1,020,000
# grants at saturation), each node's RSS 3 s after it and again about 25 s
# after (once the allocator's decay has run), then its data directory's
# size. Takes the default ports: stop any running testnet first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pairs.sh
[ $# -ge 2 ] || { echo "usage: scripts/bench-memory.sh OLD_BIN NEW_BIN [PAIRS]" >&2; exit 2; }

measure() {
  "$2" bench --net "$1" --rates 0 --seconds 34
  sleep 3
  for o in org1 org2 org3; do
    echo "rss 3 s after $o $(ps -o rss= -p "$(cat "$1/$o/pid")") KiB"
  done
  # `alternate` prints each node's RSS again once this returns.
  sleep 20
}

alternate "$1" "$2" "${3:-3}" measure
