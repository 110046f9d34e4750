# Hosts on one machine for `testnet-up.sh --netns`: each org gets a network
# namespace with its own address, linked by a veth pair to a bridge in the
# root namespace. Nothing is shared on loopback; the root namespace reaches
# each org's API over the bridge, as a client on the LAN would.
# shellcheck shell=bash

# netns_env NET: sets NETNS_TAG, NETNS_BRIDGE_IP and NETNS_IPS (one per org
# slot, up to 12) for the network in directory NET. Names and the /28 come
# from NET's absolute path, so two networks on one machine do not meet.
# The /28 is in 198.18.0.0/15, set aside for benchmarking networks.
netns_env() {
  local abs h block second third fourth i
  abs=$(cd "$1" && pwd)
  h=$(printf '%s' "$abs" | sha256sum | cut -c1-6)
  # A network made before keeps the tag it recorded, wherever NET is now.
  if [ -s "$1/netns" ]; then h=$(cat "$1/netns"); h=${h#lh}; fi
  NETNS_TAG="lh$h"
  block=$(((16#$h % 8192) * 16))
  second=$((18 + (block >> 16)))
  third=$(((block >> 8) & 255))
  fourth=$((block & 255))
  NETNS_BRIDGE_IP="198.$second.$third.$((fourth + 1))"
  NETNS_IPS=()
  for i in $(seq 0 11); do NETNS_IPS+=("198.$second.$third.$((fourth + 2 + i))"); done
}

netns_name() { printf '%so%s' "$NETNS_TAG" "$1"; }

# netns_exists NAME: without `grep -q`, whose early exit fails the pipe.
netns_exists() { [[ " $(ip netns list | awk '{print $1}' | tr '\n' ' ') " == *" $1 "* ]]; }

# netns_host NET I: creates org slot I's namespace and link (0-based), once.
netns_host() {
  local ns outer inner
  netns_env "$1"
  ns=$(netns_name "$2") outer="${NETNS_TAG}h$2" inner="${NETNS_TAG}n$2"
  if ! ip link show "${NETNS_TAG}br" >/dev/null 2>&1; then
    ip link add "${NETNS_TAG}br" type bridge
    ip addr add "$NETNS_BRIDGE_IP/28" dev "${NETNS_TAG}br"
    ip link set "${NETNS_TAG}br" up
  fi
  if netns_exists "$ns"; then
    if ip -n "$ns" link show "$inner" >/dev/null 2>&1; then
      ip link set "$outer" master "${NETNS_TAG}br" up # the bridge may be new
      return 0
    fi
    ip netns del "$ns" # left half made by an interrupted run
  fi
  ip link del "$outer" 2>/dev/null || true
  ip netns add "$ns"
  ip link add "$outer" type veth peer name "$inner"
  ip link set "$inner" netns "$ns"
  ip link set "$outer" master "${NETNS_TAG}br" up
  ip -n "$ns" addr add "${NETNS_IPS[$2]}/28" dev "$inner"
  ip -n "$ns" link set "$inner" up
  ip -n "$ns" link set lo up
}

# netns_down NET: removes every namespace and link of the network in NET.
netns_down() {
  local ns
  netns_env "$1"
  for ns in $(ip netns list | awk '{print $1}' | grep "^${NETNS_TAG}o" || true); do
    ip netns del "$ns"
  done
  # Each veth goes with its namespace, but not always at once.
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${NETNS_TAG}h" || true); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "${NETNS_TAG}br" 2>/dev/null || true
}

netns_require_root() {
  [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null 2>&1 && return 0
  log "--netns puts each org in a network namespace of its own, which needs root and iproute2 (ip netns);"
  log "this shell is uid $(id -u). Run it as root, or without --netns for a network on loopback."
  exit 1
}
