#!/usr/bin/env bash
# Runs every test: unit, property and multi-process integration tests.
# Installs what is missing first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
ensure_deps

# Release mode: the same build as scripts/testnet-up.sh, so RocksDB's C++ is
# compiled once, and the multi-node tests run at realistic speed.
cargo test --release --workspace --all-targets "$@"
