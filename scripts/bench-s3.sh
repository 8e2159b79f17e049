#!/usr/bin/env bash
# Copies into the S3-backed region (REGION5) on the real test cloud, side by side on the same image:
# upstream Glance's own glance-download, the sidecar's s3 sink, and the sidecar's glance-upload sink
# (scripts/interop/bench_copies.py --mode s3 says how); once with Glance's do_secure_hash = true and
# once with false (a cloud brought up for each).
#
#   scripts/bench-s3.sh [SIZE_MIB] [RUNS]       (defaults 512 2)
#
# Environment: GDS_BENCH_STATE_DIR (/tmp/gds-cloud-bench-s3). Builds the release binary; writes
# $STATE_DIR-<true|false>/bench-s3.json.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-512}
RUNS=${2:-2}
BASE=${GDS_BENCH_STATE_DIR:-/tmp/gds-cloud-bench-s3}

cd "$REPO_ROOT"
cargo build --release --quiet
CURRENT=""
trap '[ -n "$CURRENT" ] && scripts/cloud.sh stop "$CURRENT"' EXIT
for secure in true false; do
    CURRENT=$BASE-$secure
    GDS_S3_SECURE_HASH=$secure scripts/cloud.sh up "$CURRENT" >/dev/null
    (
        eval "$(scripts/cloud.sh env "$CURRENT")"
        echo "== do_secure_hash = $secure"
        PYTHONDONTWRITEBYTECODE=1 "$GDS_VENV/bin/python3" scripts/interop/bench_copies.py --mode s3 \
            --size-mib "$SIZE_MIB" --runs "$RUNS" --json "$CURRENT/bench-s3.json" --workdir "$CURRENT"
    )
    scripts/cloud.sh stop "$CURRENT" >/dev/null 2>&1
    CURRENT=""
done
