#!/usr/bin/env bash
# Stops the nodes that scripts/testnet-up.sh started, by pid, with SIGTERM.
# The data stays in ./testnet (or $LEASEHOLD_NET); delete that directory for
# a fresh network. A --netns network's namespaces and bridge are removed
# (the next testnet-up.sh makes them again).
set -euo pipefail
cd "$(dirname "$0")/.."
NET=${LEASEHOLD_NET:-testnet}
stopped=0
for pidfile in "$NET"/*/pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid"
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    stopped=$((stopped + 1))
  fi
  rm -f "$pidfile"
done
echo "stopped $stopped node(s)"
if [ -f "$NET/netns" ]; then
  # shellcheck source=lib/common.sh
  source scripts/lib/common.sh
  # shellcheck source=lib/netns.sh
  source scripts/lib/netns.sh
  if [ "$(id -u)" -eq 0 ]; then
    netns_down "$NET"
    echo "removed the network namespaces"
  else
    log "the network namespaces of $NET need root to remove: run this again as root"
  fi
fi
