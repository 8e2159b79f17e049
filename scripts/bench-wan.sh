#!/usr/bin/env bash
# Cross-region copies over emulated links on the real test cloud: upstream Glance's glance-download
# against the sidecar, side by side through the same link, in one run (scripts/interop/bench_copies.py
# says how). One `wan-link` at a time listens on the cloud's GDS_WAN_PORT (region REGION1W in the
# catalog, a port Glance's import filter allows); each phase restarts it with its own profile:
#
#   window-glance   80 ms RTT, 1 Gbit/s, 4 MiB window, in front of REGION1's Glance (which closes
#                   every connection after its answer); random raw image of SIZE_MIB;
#                   upstream, sidecar 1 stream, sidecar N streams, sidecar without the link
#   window-sidecar  the same link in front of REGION1C's sidecar (in front of the same Glance,
#                   connections kept alive); upstream and sidecar N streams
#   capped          40 ms RTT, 100 Mbit/s, 4 MiB window, in front of REGION1C's sidecar (upstream
#                   gets plain bytes, a sidecar the compact coding); a sparse raw image (10 % data),
#                   a qcow2 of random data and a log-like text image; upstream, sidecar N streams,
#                   sidecar N streams with compact_transfer = false
#
#   scripts/bench-wan.sh [SIZE_MIB] [RUNS] [STREAMS] [SEGMENT_MIB] [REORDER_MIB]   (256 2 8 4 16)
#
# STREAMS, SEGMENT_MIB and REORDER_MIB are the N-stream sidecars' source_streams, segment_size and
# reorder_buffer (REORDER_MIB 0: the sidecar's default).
#
# Environment: GDS_WAN_PHASES ("window-glance window-sidecar capped"); the window link
# GDS_WAN_RTT_MS (80), GDS_WAN_MBIT (1000), GDS_WAN_WINDOW (4MiB); the capped link GDS_WAN_CAPPED_RTT_MS
# (40), GDS_WAN_CAPPED_MBIT (100), its images GDS_WAN_CAPPED_IMAGES ("sparse:512 qcow2:128 text:128");
# GDS_BENCH_STATE_DIR (/tmp/gds-cloud-bench-wan); GDS_WAN_GLANCE_CONTENDERS, the window-glance
# phase's contenders (upstream,sidecar-1,sidecar-N,sidecar-lan); GDS_WAN_REUSE_CLOUD=1 to use the
# cloud already up in the state directory and leave it up (for several invocations in a row).
# Needs qemu-img for the qcow2 image. Builds the release binary, brings the cloud up, stops it at
# the end. Writes $STATE_DIR/bench-wan-PHASE.json
# per phase and $STATE_DIR/bench-wan.json (every phase, the load, the link's connection counts and
# the goals' ratios).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-256}
RUNS=${2:-2}
STREAMS=${3:-8}
SEGMENT_MIB=${4:-4}
REORDER_MIB=${5:-16}
STATE_DIR=${GDS_BENCH_STATE_DIR:-/tmp/gds-cloud-bench-wan}
PHASES=${GDS_WAN_PHASES:-window-glance window-sidecar capped}
WINDOW_RTT=${GDS_WAN_RTT_MS:-80} WINDOW_MBIT=${GDS_WAN_MBIT:-1000}
export GDS_WAN_WINDOW=${GDS_WAN_WINDOW:-4MiB}
CAPPED_RTT=${GDS_WAN_CAPPED_RTT_MS:-40} CAPPED_MBIT=${GDS_WAN_CAPPED_MBIT:-100}
CAPPED_IMAGES=${GDS_WAN_CAPPED_IMAGES:-sparse:512 qcow2:128 text:128}
BIN=$REPO_ROOT/target/release/glance-download-sidecar

cd "$REPO_ROOT"
cargo build --release --quiet
LINK_PID=""
stop_link() { # stops the link (it then logs "wan-link: N connections carried")
    [ -n "$LINK_PID" ] || return 0
    kill "$LINK_PID" 2>/dev/null || true
    wait "$LINK_PID" 2>/dev/null || true
    LINK_PID=""
}
REUSE=${GDS_WAN_REUSE_CLOUD:-0}
cleanup() {
    stop_link
    [ "$REUSE" = 1 ] || scripts/cloud.sh stop "$STATE_DIR" || true
}
trap cleanup EXIT
[ "$REUSE" = 1 ] || scripts/cloud.sh up "$STATE_DIR" >/dev/null
eval "$(scripts/cloud.sh env "$STATE_DIR")"
[ -n "${GDS_REGION1C_IMAGE_URL:-}" ] || { echo "bench-wan: the cloud has no REGION1C sidecar" >&2; exit 1; }
SIDECAR1C_PORT=${GDS_REGION1C_IMAGE_URL##*:}

start_link() { # upstream-port rtt-ms mbit
    "$BIN" wan-link --listen "127.0.0.1:$GDS_WAN_PORT" --upstream "127.0.0.1:$1" \
        --rtt-ms "$2" --mbit-per-sec "$3" --window "$GDS_WAN_WINDOW" \
        >"$STATE_DIR/logs/wan-link.log" 2>&1 &
    LINK_PID=$!
    for _ in $(seq 50); do
        grep -q "wan-link:" "$STATE_DIR/logs/wan-link.log" 2>/dev/null && break
        sleep 0.1
    done
    cat "$STATE_DIR/logs/wan-link.log"
}

for phase in $PHASES; do
    case $phase in
        window-glance) port=$GDS_REGION1_GLANCE_PORT target=glance rtt=$WINDOW_RTT mbit=$WINDOW_MBIT
            args=(--image "random:$SIZE_MIB"
                --contenders "${GDS_WAN_GLANCE_CONTENDERS:-upstream,sidecar-1,sidecar-N,sidecar-lan}") ;;
        window-sidecar) port=$SIDECAR1C_PORT target=sidecar rtt=$WINDOW_RTT mbit=$WINDOW_MBIT
            args=(--image "random:$SIZE_MIB" --contenders upstream,sidecar-N) ;;
        capped) port=$SIDECAR1C_PORT target=sidecar rtt=$CAPPED_RTT mbit=$CAPPED_MBIT args=()
            for image in $CAPPED_IMAGES; do args+=(--image "$image"); done
            args+=(--contenders upstream,sidecar-N,sidecar-N-plain) ;;
        *) echo "bench-wan: unknown phase $phase" >&2; exit 64 ;;
    esac
    echo "== $phase: $(uptime)"
    uptime >"$STATE_DIR/bench-wan-$phase.load"
    start_link "$port" "$rtt" "$mbit"
    GDS_WAN_RTT_MS=$rtt GDS_WAN_MBIT=$mbit GDS_WAN_TARGET=$target PYTHONDONTWRITEBYTECODE=1 \
        "$GDS_VENV/bin/python3" scripts/interop/bench_copies.py --mode wan "${args[@]}" \
        --runs "$RUNS" --streams "$STREAMS" --segment-mib "$SEGMENT_MIB" --reorder-mib "$REORDER_MIB" \
        --json "$STATE_DIR/bench-wan-$phase.json" --workdir "$STATE_DIR"
    uptime >>"$STATE_DIR/bench-wan-$phase.load"
    stop_link
    sed -n 's/^wan-link: \([0-9]*\) connections carried$/\1/p' "$STATE_DIR/logs/wan-link.log" \
        | tee "$STATE_DIR/bench-wan-$phase.connections"
done

# one report: every phase, its load and link connections, and the goals' ratios
"$GDS_VENV/bin/python3" - "$STATE_DIR" $PHASES <<'EOF'
import json, re, sys
state, phases = sys.argv[1], sys.argv[2:]
report, goals = {"phases": {}}, {}
for phase in phases:
    with open("%s/bench-wan-%s.json" % (state, phase)) as f:
        r = json.load(f)
    with open("%s/bench-wan-%s.load" % (state, phase)) as f:
        r["load"] = [re.sub(r".*load average: ", "", line.strip()) for line in f]
    with open("%s/bench-wan-%s.connections" % (state, phase)) as f:
        r["link_connections"] = int(f.read().strip() or "0")
    report["phases"][phase] = r
    n = "sidecar-%d" % r["streams"]
    for image in r["images"]:
        med, key = image["median_seconds"], "%s/%s" % (phase, image["kind"])
        if n in med:
            goals[key + ": sidecar-N vs upstream"] = med["upstream"] / med[n]
        if n + "-plain" in med:
            goals[key + ": sidecar-N vs sidecar-N-plain"] = med[n + "-plain"] / med[n]
        if n + "-plain" in med:
            goals[key + ": sidecar-N-plain vs upstream"] = med["upstream"] / med[n + "-plain"]
    if n in r["sidecar_peak_rss_kib"]:
        goals[phase + ": sidecar-N peak RSS MiB"] = r["sidecar_peak_rss_kib"][n] / 1024
report["goals"] = goals
with open("%s/bench-wan.json" % state, "w") as f:
    json.dump(report, f, indent=2)
print()
for key, value in goals.items():
    print("%-50s %7.2f" % (key, value))
EOF
