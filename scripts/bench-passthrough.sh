#!/usr/bin/env bash
# The pass-through bench on the interop cloud: Image API calls straight to REGION2's Glance and through
# the sidecar in front of it (scripts/cloud.sh's REGION2 sidecar), alternating, in one run.
#
#   scripts/bench-passthrough.sh [SIZE] [RUNS] [CALLS]   # defaults 1GiB, 3, 500
#
# Builds the release binary, brings the cloud up with scripts/cloud.sh (state in $GDS_BENCH_STATE,
# default /tmp/gds-bench-passthrough; the sidecar measured is this build), runs
#   glance-download-sidecar bench --passthrough --target-glance-url $GDS_REGION2_GLANCE_URL \
#       --sidecar-url $GDS_SIDECAR_URL --size SIZE --runs RUNS --calls CALLS --json
# as the demo user into $GDS_BENCH_OUT (default target/bench-passthrough-SIZE.json; the progress lines,
# the table and `uptime` before and after go to the .txt beside it), and stops the cloud (also on
# failure or Ctrl-C).
set -euo pipefail

SIZE=${1:-1GiB}
RUNS=${2:-3}
CALLS=${3:-500}
source "$(dirname "${BASH_SOURCE[0]}")/bench-cloud-lib.sh" bench-passthrough
STATE=${GDS_BENCH_STATE:-/tmp/gds-bench-passthrough}
OUT=${GDS_BENCH_OUT:-$REPO_ROOT/target/bench-passthrough-$SIZE.json}

bench_cloud_up "$STATE"

mkdir -p "$(dirname "$OUT")"
TXT=${OUT%.json}.txt
log "bench: $CALLS rounds of small calls, $SIZE x $RUNS each way; Glance $GDS_REGION2_GLANCE_URL," \
    "sidecar $GDS_SIDECAR_URL; JSON into $OUT"
echo "uptime before: $(uptime)" >"$TXT"
"$BIN" bench --passthrough --os-cloud "$OS_CLOUD" --target-glance-url "$GDS_REGION2_GLANCE_URL" \
    --sidecar-url "$GDS_SIDECAR_URL" --size "$SIZE" --runs "$RUNS" --calls "$CALLS" --json \
    >"$OUT" 2> >(tee -a "$TXT" >&2)
echo "uptime after: $(uptime)" | tee -a "$TXT" >&2

log "JSON report: $OUT"
