#!/usr/bin/env bash
# Every test the project has: format and lint, the fast Rust suites (real sockets on loopback),
# a short fuzz run, then the interop suite against real Keystone + Glance installed from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test (unit, integration, CLI)"
cargo test --all-targets

step "benchmarks compile"
cargo bench --no-run

if [ -x scripts/fuzz.sh ]; then
  step "fuzz (short bounded run)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fi

if [ -x scripts/interop/run.sh ]; then
  step "release build for the interop suite"
  cargo build --release
  step "interop: real Keystone + two Glance regions"
  scripts/interop/run.sh
fi
