#!/usr/bin/env bash
# Every test the project has, in the order a failure is cheapest to find:
#   1. format and lint, with and without the tools (the server must build alone);
#   2. the fast Rust suites (unit, integration on a simulated cloud over real sockets, CLI);
#   3. benchmarks compile, and the demo, the simulated benchmark and the load benchmark run once
#      (release build);
#   4. a short, bounded fuzz run of every fuzz target (installs cargo-fuzz if missing);
#   5. the interop suite against real Keystone + six Glance regions installed from PyPI (five Glance 33
#      under uwsgi, one Glance 28 under eventlet; scripts/cloud.sh installs what it needs); the Debian
#      package is built before it, and installed, run and purged by tests/interop/test_package.py.
# Nothing is skipped: a missing prerequisite is installed or the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

# Building links the system libcrypto (src/hash.rs): its headers, found through pkg-config.
if ! pkg-config --exists openssl 2>/dev/null; then
    step "installing libssl-dev and pkg-config (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "RUSTDOCFLAGS=\"-D warnings\" cargo doc --no-deps"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

step "the server alone: clippy and unit tests without the tools feature"
cargo clippy --no-default-features --all-targets -- -D warnings
cargo test --no-default-features --lib

step "cargo test (unit, integration, CLI)"
cargo test --all-targets

step "benchmarks compile"
cargo bench --no-run

step "release build; demo and simulated benchmark smoke runs"
cargo build --release
target/release/glance-download-sidecar demo --size 64MiB
target/release/glance-download-sidecar bench --simulated --size 64MiB --runs 1
target/release/glance-download-sidecar bench --load --clients 16 --seconds 3 --failing-imports 200 --size 64MiB

step "fuzz (bounded run of every target)"
scripts/fuzz.sh "${FUZZ_SECONDS:-15}"

step "Debian package (scripts/package-deb.sh; the interop suite installs, runs and purges it)"
GDS_DEB=$(scripts/package-deb.sh)
export GDS_DEB

step "interop: real Keystone + six Glance regions (and REGION1C, a sidecar as a source region), driven by the real clients"
scripts/interop/run.sh "${GDS_STATE_DIR:-/tmp/gds-cloud-ci}"

step "all tests passed"
