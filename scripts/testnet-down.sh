#!/usr/bin/env bash
# Stops the nodes that scripts/testnet-up.sh started, by pid, with SIGTERM.
# The data stays in ./testnet (or $LEASEHOLD_NET); delete that directory for
# a fresh network. A --netns network's namespaces and bridge are removed
# (the next testnet-up.sh makes them again).
set -euo pipefail
cd "$(dirname "$0")/.."
NET=${LEASEHOLD_NET:-testnet}
# A --netns network's nodes run as root: another user could neither stop
# them nor remove their namespaces, and would only lose their pid files.
if [ -f "$NET/netns" ] && [ "$(id -u)" -ne 0 ]; then
  echo "$NET runs in network namespaces, as root: run this as root" >&2
  exit 1
fi
stopped=0
for pidfile in "$NET"/*/pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
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
  netns_down "$NET"
  echo "removed the network namespaces"
fi
