#!/usr/bin/env bash
# The long chaos runs behind docs/RELIABILITY.md, on real node processes:
#   - KILLS kill -9s of a random node, the leader every third time, under
#     load (default 100);
#   - ROUNDS rounds of partitions between network-namespace hosts (leader
#     isolated, healed, one-way) and of a disk filled and freed (default 10);
#   - the lessee killed mid-transfer (tests/crash.rs), ROUNDS times.
# Every scenario ends with each acknowledged tx on every node exactly once,
# equal state roots and `leasehold verify` clean on every store. Prints the
# FIGURE lines and their medians. Needs root for the partitions and disks:
# without it they fail here (LEASEHOLD_REQUIRE_ROOT), where the test suite
# skips them.
#   KILLS=100 ROUNDS=10 scripts/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
ensure_deps
KILLS=${KILLS:-100}
ROUNDS=${ROUNDS:-10}
cargo test --release --workspace --test chaos --test crash --no-run
out=$(mktemp /tmp/leasehold-chaos.XXXXXX)
last=$(mktemp /tmp/leasehold-chaos-run.XXXXXX)
trap 'rm -f "$last"' EXIT
# The whole output stays in $out (a failure names it: it has the kill
# schedule's seed); each run's FIGURE line is printed as it comes.
export LEASEHOLD_REQUIRE_ROOT=1
run() {
  if ! cargo test --release --workspace "$@" -- --nocapture --test-threads=1 >"$last" 2>&1; then
    cat "$last" >>"$out"
    grep -E "^error|panicked|seed" -A5 "$last" | tail -20 || true
    log "failed; the whole output is in $out"
    exit 1
  fi
  cat "$last" >>"$out"
  grep -oE "FIGURE.*" "$last" || true
}

log "kill -9 x $KILLS under load"
LEASEHOLD_CHAOS_KILLS=$KILLS run --test chaos kill_nine
for r in $(seq 1 "$ROUNDS"); do
  log "round $r of $ROUNDS: partitions, a full disk, a lessee killed mid-transfer"
  run --test chaos partitions
  run --test chaos full_disk
  run --test crash
done
# Medians of every numeric field, per scenario.
python3 - "$out" <<'PY'
import collections, re, statistics, sys
fields = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    if m := re.search(r"FIGURE (.*)", line):
        name, *pairs = m.group(1).split()
        for k, v in (p.split("=", 1) for p in pairs if "=" in p):
            if re.fullmatch(r"\d+", v):
                fields[name][k].append(int(v))
for name, kv in fields.items():
    runs = max(len(v) for v in kv.values())
    print(f"{name} ({runs} runs): " + ", ".join(f"{k} median {statistics.median(v):g} max {max(v)}" for k, v in kv.items()))
PY
rm -f "$out"
