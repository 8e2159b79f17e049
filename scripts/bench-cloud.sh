#!/usr/bin/env bash
# The real-cloud bench on the interop cloud: Glance's own PUT /file, the sidecar's glance-upload and
# glance-stage sinks, and upstream's glance-download, side by side, REGION1 -> REGION2.
#
#   scripts/bench-cloud.sh [SIZE] [RUNS]      # SIZE default 1GiB, RUNS default 3
#
# Brings the cloud up with scripts/cloud.sh (state in $GDS_BENCH_STATE, default
# /tmp/gds-bench-cloud), builds the release binary, runs
#   glance-download-sidecar bench --from REGION1 --to REGION2 --target-glance-url $GDS_REGION2_GLANCE_URL
# as the demo user with --json into $GDS_BENCH_OUT (default target/bench-cloud-SIZE.json), stops the
# cloud (also on failure or Ctrl-C). With --json the bench prints its table on stderr after the
# progress lines; both are kept in the .txt beside the JSON. The sidecar measured runs inside the
# bench process, in front of REGION2's Glance itself.
set -euo pipefail

SIZE=${1:-1GiB}
RUNS=${2:-3}
source "$(dirname "${BASH_SOURCE[0]}")/bench-cloud-lib.sh" bench-cloud
STATE=${GDS_BENCH_STATE:-/tmp/gds-bench-cloud}
OUT=${GDS_BENCH_OUT:-$REPO_ROOT/target/bench-cloud-$SIZE.json}

bench_cloud_up "$STATE"

mkdir -p "$(dirname "$OUT")"
log "bench: $SIZE x $RUNS runs, REGION1 -> REGION2 ($GDS_REGION2_GLANCE_URL); JSON into $OUT"
"$BIN" bench --os-cloud "$OS_CLOUD" --from REGION1 --to REGION2 \
    --target-glance-url "$GDS_REGION2_GLANCE_URL" --size "$SIZE" --runs "$RUNS" --json \
    >"$OUT" 2> >(tee "${OUT%.json}.txt" >&2)

log "JSON report: $OUT"
