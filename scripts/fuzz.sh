#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets; what each checks is in
# node/src/fuzzing.rs) for a time budget, starting from fuzz/seeds and the
# corpus of earlier runs. A crash is copied into fuzz/regressions/<target>/,
# which node/tests/fuzz_regressions.rs replays on stable Rust in every test
# run, and fails the script. Installs cargo-fuzz if missing.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 300, all)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
ensure_deps
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# libFuzzer's instrumentation takes nightly flags: the nightly toolchain
# when there is one, else stable told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi
# Instrumented builds of their own, apart from the tests' target directory.
export CARGO_TARGET_DIR=$HOME/.cache/leasehold-fuzz-target
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signed_txs block rpc workflow)
# No sanitizer: the code under test is safe Rust (unsafe_code is
# forbidden), so AddressSanitizer would only halve the executions.
fuzz build -s none
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  rm -f fuzz/artifacts/"$t"/*
  log "fuzzing $t for ${secs}s"
  if ! fuzz run -s none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"fuzz/artifacts/$t.log" 2>&1; then
    failed=1
    for a in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/timeout-* fuzz/artifacts/"$t"/oom-*; do
      [ -f "$a" ] && cp "$a" "fuzz/regressions/$t/" && log "kept $a as a regression"
    done
    grep -iE "panicked|error|SUMMARY" "fuzz/artifacts/$t.log" | head -5 >&2 || true
  fi
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "fuzz/artifacts/$t.log" | grep -oE "[0-9]+$" || echo 0)
  echo "FIGURE fuzz target=$t seconds=$secs runs=$runs crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)"
done
exit "$failed"
