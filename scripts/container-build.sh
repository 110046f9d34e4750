#!/usr/bin/env bash
# Builds the leasehold binary on this (Debian) host, then the container image
# `leasehold:latest` from deploy/Containerfile with podman (or docker).
#
# Environment, all optional: LEASEHOLD_BIN (use this binary, do not build),
# LEASEHOLD_IMAGE (tag, default leasehold:latest), LEASEHOLD_BASE (the base
# image, default Debian 12 slim; a local one where no registry is reachable).
set -euo pipefail
[ -z "${LEASEHOLD_BIN:-}" ] || LEASEHOLD_BIN=$(realpath "$LEASEHOLD_BIN")
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

engine=$(command -v podman || command -v docker || true)
if [ -z "$engine" ]; then
  command -v apt-get >/dev/null 2>&1 || { log "neither podman nor docker, and no apt-get: install one"; exit 1; }
  apt_install podman
  engine=$(command -v podman)
fi
if [ -n "${LEASEHOLD_BIN:-}" ]; then
  BIN=$LEASEHOLD_BIN
else
  ensure_deps
  cargo build --release --bin leasehold
  BIN="$CARGO_TARGET_DIR/release/leasehold"
fi

# The build context is the binary alone: nothing else of the checkout (no
# key, no testnet directory) can end up in the image.
context=$(mktemp -d /tmp/leasehold-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp "$BIN" "$context/leasehold"
"$engine" build -f deploy/Containerfile -t "${LEASEHOLD_IMAGE:-leasehold:latest}" \
  ${LEASEHOLD_BASE:+--build-arg "BASE=$LEASEHOLD_BASE"} "$context"
log "built ${LEASEHOLD_IMAGE:-leasehold:latest} with $engine"
