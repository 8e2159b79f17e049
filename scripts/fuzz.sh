#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time, on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 seconds, every target)
#   FUZZ_SANITIZER=address scripts/fuzz.sh ...           (with AddressSanitizer, slower)
#
# cargo-fuzz wants nightly only for its sanitizers: with `--sanitizer none` it builds on stable (the
# library has no unsafe code of its own, so the fuzzers look for panics, failed invariants, hangs
# and runaway memory). cargo-fuzz is installed from crates.io when missing.
#
# Each target fuzzes a scratch corpus, fuzz/target/corpus/<target>, seeded from the committed
# fuzz/corpus/<target> (which is never written to); the scratch corpus is kept between runs, so
# delete it to start over. Crash inputs go to fuzz/artifacts/<target>/, logs to
# fuzz/target/logs/<target>.log. Exits non-zero if any target crashes, hangs or fails to run.
set -euo pipefail

seconds=${1:-20}
shift || true
case $seconds in
    '' | *[!0-9]*)
        echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
        exit 2
        ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "Installing cargo-fuzz from crates.io..." >&2
    cargo install cargo-fuzz --locked
fi

# Stable toolchain: no sanitizer by default. RUSTC_BOOTSTRAP is then not needed and not set (it
# would also switch on nightly-only code in dependencies whose build scripts probe for it).
# FUZZ_SANITIZER=address builds with ASan instead (`-Zsanitizer`, so RUSTC_BOOTSTRAP=1; about ten
# times slower), in its own target directory so the two builds do not invalidate each other.
sanitizer=${FUZZ_SANITIZER:-none}
# The fuzz crate is its own workspace and builds in fuzz/target, never in the main target dir.
unset CARGO_TARGET_DIR
flags=(--fuzz-dir "$fuzz" --sanitizer "$sanitizer")
target_dir="$fuzz/target"
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
    target_dir="$fuzz/target/$sanitizer"
    flags+=(--target-dir "$target_dir")
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz")
fi

echo "Building ${#targets[@]} fuzz targets..." >&2
cargo fuzz build "${flags[@]}"
# The binaries are run directly, not through `cargo fuzz run`, so a source edit during the run
# cannot trigger a rebuild between targets.
host=$(rustc -vV | sed -n 's/^host: //p')
bin="$target_dir/$host/release"

mkdir -p "$fuzz/target/logs"
failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="$fuzz/target/corpus/$target"
    log="$fuzz/target/logs/$target.log"
    mkdir -p "$corpus"
    if [ -d "$fuzz/corpus/$target" ]; then
        cp -n "$fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "Fuzzing $target for ${seconds}s..." >&2
    status=0
    mkdir -p "$fuzz/artifacts/$target"
    "$bin/$target" -artifact_prefix="$fuzz/artifacts/$target/" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus" >"$log" 2>&1 || status=$?
    execs=$(awk '/stat::number_of_executed_units:/ { n = $2 } END { print n }' "$log")
    if [ -z "$execs" ]; then
        # No final stats (a crash): take the last `#N` status line.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    fi
    entries=$(find "$corpus" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        failed=1
        artifact=$(grep -oE '(Test unit written to|Saving crash input to|written to) [^ ]+' "$log" |
            tail -n 1 | awk '{ print $NF }' || true)
        result="FAILED (exit $status)"
        echo "== $target failed (full log: $log):" >&2
        # The panic message (or libFuzzer's own error: timeout, out of memory), without backtraces.
        grep -E -A3 'panicked at|ERROR: libFuzzer' "$log" | grep -vE '^ +[0-9]+: |^ +at ' |
            head -n 20 >&2 || tail -n 20 "$log" >&2
        if [ -n "$artifact" ]; then
            echo "== $target: crash input $artifact" >&2
            echo "   reproduce: cargo fuzz run --fuzz-dir fuzz --sanitizer none $target $artifact" >&2
            echo "   (or run the binary on it: $bin/$target $artifact)" >&2
        fi
    fi
    summary+=("$(printf '%-22s %14s %10s  %s' "$target" "${execs:-?}" "$entries" "$result")")
done

echo
printf '%-22s %14s %10s  %s\n' target executions corpus result
for line in "${summary[@]}"; do
    echo "$line"
done
exit "$failed"
