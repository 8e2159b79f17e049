#!/usr/bin/env bash
# The interop suite end to end: scripts/cloud.sh up -> pytest tests/interop -> scripts/cloud.sh stop
# (always, via trap). Exits non-zero on any failure; pytest's exit code 5 (no tests collected) is a
# failure too.
#
#   scripts/interop/run.sh [--build] [--no-sidecar] [STATE_DIR] [-- PYTEST_ARGS...]
#
#   --build        cargo build --release first (the sidecar binary is target/release/...)
#   --no-sidecar   REGION2's catalog points at its real Glance: the suite then checks upstream itself
#   STATE_DIR      default /tmp/gds-cloud-interop (logs stay there after the run, junit.xml too)
# Environment: everything scripts/cloud.sh reads (SIDECAR_BIN, GDS_CACHE, GDS_STORE_MODE, ...),
# GDS_PYTEST_TIMEOUT (seconds, default 3600).
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CLOUD=$REPO_ROOT/scripts/cloud.sh
STATE_DIR=/tmp/gds-cloud-interop
BUILD=0
UP_ARGS=()
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=1 ;;
        --no-sidecar|--single-store|--multi-store) UP_ARGS+=("$1") ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) STATE_DIR=$1 ;;
    esac
    shift
done

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "$BUILD" = 1 ]; then
    log "cargo build --release"
    (cd "$REPO_ROOT" && timeout 1800 cargo build --release) || { log "cargo build failed"; exit 1; }
fi

cleanup() {
    log "stopping the cloud ($STATE_DIR)"
    "$CLOUD" stop "$STATE_DIR" || log "WARNING: cloud.sh stop failed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
if ! "$CLOUD" up "$STATE_DIR" "${UP_ARGS[@]}"; then
    log "FAILED: cloud.sh up (logs in $STATE_DIR/logs)"
    exit 1
fi
log "cloud up in $((SECONDS - t0)) s"

# shellcheck disable=SC1090
eval "$("$CLOUD" env "$STATE_DIR")"
cd "$REPO_ROOT" || exit 1
export PYTHONDONTWRITEBYTECODE=1
log "pytest tests/interop ${PYTEST_ARGS[*]}"
timeout "${GDS_PYTEST_TIMEOUT:-3600}" "$GDS_VENV/bin/pytest" tests/interop \
    --junitxml="$STATE_DIR/junit.xml" "${PYTEST_ARGS[@]}"
rc=$?
if [ "$rc" -eq 0 ]; then
    # A skipped test is a failed one here: every test's prerequisites are installed by cloud.sh.
    skipped=$("$GDS_VENV/bin/python" -c 'import sys, xml.etree.ElementTree as E
print(sum(int(s.get("skipped", 0)) for s in E.parse(sys.argv[1]).getroot().iter("testsuite")))' \
        "$STATE_DIR/junit.xml") || skipped=unknown
    if [ "$skipped" != 0 ]; then
        log "FAILED: $skipped test(s) skipped (see the -ra summary above)"
        rc=1
    fi
fi
case $rc in
    0) log "PASSED (junit: $STATE_DIR/junit.xml, logs: $STATE_DIR/logs)" ;;
    5) log "FAILED: pytest collected no tests"; rc=5 ;;
    124) log "FAILED: pytest timed out after ${GDS_PYTEST_TIMEOUT:-3600} s" ;;
    *) log "FAILED: pytest exit code $rc (junit: $STATE_DIR/junit.xml, logs: $STATE_DIR/logs)" ;;
esac
exit $rc
