# Sourced by the benchmarks that run on a test cloud of their own (scripts/bench-cloud.sh,
# scripts/bench-passthrough.sh):
#   source "$(dirname "${BASH_SOURCE[0]}")/bench-cloud-lib.sh" NAME
# sets REPO_ROOT and BIN (the release binary), defines log, and bench_cloud_up STATE, which builds
# the release binary, brings the cloud up in STATE with this build as its sidecars, sources its env,
# and stops it again when the script exits (also on failure or Ctrl-C).

BENCH_NAME=$1
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO_ROOT/target/release/glance-download-sidecar

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

bench_cloud_up() {
    local state=$1
    cd "$REPO_ROOT"
    log "building the release binary"
    cargo build --release --quiet
    BENCH_STATE=$state
    trap 'log "stopping the cloud"; scripts/cloud.sh stop "$BENCH_STATE" >/dev/null 2>&1 || log "WARNING: scripts/cloud.sh stop $BENCH_STATE failed"' EXIT
    trap 'exit 130' INT TERM
    log "bringing the cloud up in $state"
    SIDECAR_BIN=$BIN scripts/cloud.sh up "$state" >/dev/null
    # shellcheck disable=SC1091
    source "$state/env"
}
