# Old and new binaries alternated on fresh testnets, as docs/BENCHMARKS.md
# wants: old first in odd pairs, new first in even ones.
# shellcheck shell=bash
#
#   alternate OLD_BIN NEW_BIN PAIRS MEASURE
#
# For each run: a three-org testnet in a fresh directory under /tmp, started
# with that binary; `MEASURE NET BIN` (a shell function of the caller's);
# each node's RSS right after it and its data directory's size; the testnet
# stopped and deleted. Takes the default ports (see scripts/testnet-up.sh):
# stop any running testnet first.

one_run() {
  local label=$1 bin=$2 measure=$3 net
  net=$(mktemp -d /tmp/leasehold-bench.XXXXXX)
  # A failed measure stops the script: its testnet goes with it.
  # shellcheck disable=SC2064 # the directory of this run, expanded now
  trap "LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null 2>&1; rm -rf $net" EXIT
  echo "== $label ($bin) on $net"
  LEASEHOLD_NET=$net LEASEHOLD_BIN=$bin scripts/testnet-up.sh --no-demo >"$net.up.log" 2>&1 ||
    { cat "$net.up.log"; exit 1; }
  "$measure" "$net" "$bin"
  for o in org1 org2 org3; do
    echo "rss $o $(ps -o rss= -p "$(cat "$net/$o/pid")") KiB"
  done
  sleep 2
  du -sm "$net"/org*/data 2>/dev/null | sed 's/^/disk MiB /'
  LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null
  rm -rf "$net" "$net.up.log"
  trap - EXIT
}

alternate() {
  local old new pairs=$3 measure=$4 i
  old=$(realpath "$1") new=$(realpath "$2")
  for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then
      one_run "pair $i old" "$old" "$measure"
      one_run "pair $i new" "$new" "$measure"
    else
      one_run "pair $i new" "$new" "$measure"
      one_run "pair $i old" "$old" "$measure"
    fi
  done
}
