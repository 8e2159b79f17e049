#!/usr/bin/env bash
# Cross-region copies over an emulated 80 ms / 1 Gbit/s / 4 MiB-window link on the real test cloud:
# upstream Glance's glance-download against the sidecar with one and with N source streams, side by
# side on the same image (scripts/interop/bench_copies.py says how).
#
#   scripts/bench-wan.sh [SIZE_MIB] [RUNS] [STREAMS] [SEGMENT_MIB]     (defaults 256 2 4 8)
#
# Environment: GDS_WAN_RTT_MS (80), GDS_WAN_MBIT (1000), GDS_WAN_WINDOW (4MiB), GDS_BENCH_STATE_DIR
# (/tmp/gds-cloud-bench-wan). Builds the release binary, brings the cloud up, stops it at the end.
# Writes $STATE_DIR/bench-wan.json.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-256}
RUNS=${2:-2}
STREAMS=${3:-4}
SEGMENT_MIB=${4:-8}
STATE_DIR=${GDS_BENCH_STATE_DIR:-/tmp/gds-cloud-bench-wan}
export GDS_WAN_RTT_MS=${GDS_WAN_RTT_MS:-80} GDS_WAN_MBIT=${GDS_WAN_MBIT:-1000} GDS_WAN_WINDOW=${GDS_WAN_WINDOW:-4MiB}
BIN=$REPO_ROOT/target/release/glance-download-sidecar

cd "$REPO_ROOT"
cargo build --release --quiet
LINK_PID=""
cleanup() {
    [ -n "$LINK_PID" ] && kill "$LINK_PID" 2>/dev/null || true
    scripts/cloud.sh stop "$STATE_DIR" || true
}
trap cleanup EXIT
scripts/cloud.sh up "$STATE_DIR" >/dev/null
eval "$(scripts/cloud.sh env "$STATE_DIR")"

"$BIN" wan-link --listen "127.0.0.1:$GDS_WAN_PORT" --upstream "127.0.0.1:$GDS_REGION1_GLANCE_PORT" \
    --rtt-ms "$GDS_WAN_RTT_MS" --mbit-per-sec "$GDS_WAN_MBIT" --window "$GDS_WAN_WINDOW" \
    >"$STATE_DIR/logs/wan-link.log" 2>&1 &
LINK_PID=$!
for _ in $(seq 50); do
    grep -q "wan-link:" "$STATE_DIR/logs/wan-link.log" 2>/dev/null && break
    sleep 0.1
done
cat "$STATE_DIR/logs/wan-link.log"

PYTHONDONTWRITEBYTECODE=1 "$GDS_VENV/bin/python3" scripts/interop/bench_copies.py --mode wan \
    --size-mib "$SIZE_MIB" --runs "$RUNS" --streams "$STREAMS" --segment-mib "$SEGMENT_MIB" --json "$STATE_DIR/bench-wan.json" \
    --workdir "$STATE_DIR"
