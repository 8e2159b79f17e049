#!/usr/bin/env bash
# A local S3-compatible server on 127.0.0.1 for an S3-backed Glance region (the `s3` store sink).
#
#   scripts/interop/s3server.sh install                       # install if missing (cached)
#   scripts/interop/s3server.sh start PORT STATE_DIR [BUCKET]  # start, create BUCKET (default glance-images)
#   scripts/interop/s3server.sh stop STATE_DIR                 # stop the server started for STATE_DIR
#   scripts/interop/s3server.sh env STATE_DIR                  # GDS_S3_* lines for an env file
#   scripts/interop/s3server.sh bench PORT STATE_DIR [MiB]     # 1 GiB multipart PUT + GET through boto3
#
# Server (GDS_S3_SERVER): s3s-fs (default; Rust, `cargo install s3s-fs`, file-backed), s3rver (npm,
# file-backed) or moto (PyPI `moto[server]`, in memory). Installed into
# ${GDS_CACHE:-$HOME/.cache/glance-download-sidecar}. Data lives in STATE_DIR/s3/data, the log in
# STATE_DIR/logs/s3server.log, the pid in STATE_DIR/s3/pid; `stop` kills only that pid, after checking
# /proc/PID/cmdline still names STATE_DIR. Credentials: GDS_S3_ACCESS_KEY / GDS_S3_SECRET_KEY
# (defaults below; s3rver accepts only S3RVER/S3RVER). Region: us-east-1.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GDS_CACHE=${GDS_CACHE:-$HOME/.cache/glance-download-sidecar}
SERVER=${GDS_S3_SERVER:-s3s-fs}
S3S_VERSION=0.14.1       # the newest s3s-fs that builds with rustc 1.92+
S3RVER_VERSION=3.7.1
MOTO_VERSION=5.2.5
case "$SERVER" in
    s3rver) ACCESS_KEY=S3RVER SECRET_KEY=S3RVER ;;
    *) ACCESS_KEY=${GDS_S3_ACCESS_KEY:-gds-s3-access} SECRET_KEY=${GDS_S3_SECRET_KEY:-gds-s3-secret} ;;
esac

log() { printf '[s3server.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

bin_path() {
    case "$SERVER" in
        s3s-fs) echo "$GDS_CACHE/s3s-fs-$S3S_VERSION/bin/s3s-fs" ;;
        s3rver) echo "$GDS_CACHE/s3rver-$S3RVER_VERSION/node_modules/.bin/s3rver" ;;
        moto) echo "$GDS_CACHE/moto-$MOTO_VERSION/bin/moto_server" ;;
        *) die "unknown GDS_S3_SERVER=$SERVER (s3s-fs, s3rver, moto)" ;;
    esac
}

install() {
    local bin; bin=$(bin_path)
    [ -x "$bin" ] && { echo "$bin"; return; }
    mkdir -p "$GDS_CACHE"
    log "installing $SERVER (once, into $GDS_CACHE)"
    case "$SERVER" in
        s3s-fs) cargo install --quiet --locked "s3s-fs@$S3S_VERSION" --features binary \
                    --root "$GDS_CACHE/s3s-fs-$S3S_VERSION" >&2 ;;
        s3rver) npm install --silent --no-fund --no-audit --prefix "$GDS_CACHE/s3rver-$S3RVER_VERSION" \
                    "s3rver@$S3RVER_VERSION" >&2 ;;
        moto) "${GDS_PYTHON:-python3}" -m venv "$GDS_CACHE/moto-$MOTO_VERSION" &&
              "$GDS_CACHE/moto-$MOTO_VERSION/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2 ;;
    esac
    [ -x "$bin" ] || die "$SERVER did not install"
    echo "$bin"
}

wait_up() { # port pid
    local i
    for i in $(seq 1 150); do
        kill -0 "$2" 2>/dev/null || die "$SERVER exited; see its log"
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    die "$SERVER did not listen on 127.0.0.1:$1 within 30 s"
}

# A bucket through the S3 API itself (boto3 from the interop venv or the moto venv).
make_bucket() { # port bucket
    local py
    py=${GDS_S3_PYTHON:-$(ls -d "$GDS_CACHE"/venv-*/bin/python 2>/dev/null | head -1)}
    [ -n "$py" ] || py="$GDS_CACHE/moto-$MOTO_VERSION/bin/python"
    "$py" - "$1" "$2" "$ACCESS_KEY" "$SECRET_KEY" <<'EOF'
import sys, boto3, botocore.config, botocore.exceptions
port, bucket, ak, sk = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%s" % port, region_name="us-east-1",
                  aws_access_key_id=ak, aws_secret_access_key=sk,
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
try:
    s3.create_bucket(Bucket=bucket)
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise
EOF
}

start() { # port state_dir bucket
    local port=$1 state=$2 bucket=${3:-glance-images} bin pid
    bin=$(install)
    state=$(mkdir -p "$state" && cd "$state" && pwd)
    mkdir -p "$state/s3/data" "$state/logs"
    if [ -f "$state/s3/pid" ] && kill -0 "$(cat "$state/s3/pid")" 2>/dev/null; then
        die "an S3 server for $state is already running (pid $(cat "$state/s3/pid"))"
    fi
    case "$SERVER" in
        s3s-fs) setsid "$bin" --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" \
                    --secret-key "$SECRET_KEY" "$state/s3/data" >"$state/logs/s3server.log" 2>&1 & ;;
        s3rver) setsid node "$bin" --address 127.0.0.1 --port "$port" --directory "$state/s3/data" \
                    --silent >"$state/logs/s3server.log" 2>&1 & ;;
        moto) setsid "$bin" -H 127.0.0.1 -p "$port" >"$state/logs/s3server.log" 2>&1 & ;;
    esac
    pid=$!
    echo "$pid" >"$state/s3/pid"
    echo "$port" >"$state/s3/port"
    echo "$bucket" >"$state/s3/bucket"
    wait_up "$port" "$pid"
    make_bucket "$port" "$bucket"
    log "$SERVER pid $pid on 127.0.0.1:$port, bucket $bucket, data $state/s3/data"
}

stop() { # state_dir
    local state=$1 pid cmd
    [ -f "$state/s3/pid" ] || { log "no S3 server recorded in $state"; return 0; }
    pid=$(cat "$state/s3/pid")
    state=$(cd "$state" && pwd)
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    case "$cmd" in
        *"$state"*|*moto_server*"$(cat "$state/s3/port" 2>/dev/null)"*)
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
            log "stopped $SERVER pid $pid" ;;
        *) log "pid $pid is not the S3 server of $state any more; not touched" ;;
    esac
    rm -f "$state/s3/pid"
}

env_lines() { # state_dir
    local state=$1
    cat <<EOF
export GDS_S3_ENDPOINT=http://127.0.0.1:$(cat "$state/s3/port")
export GDS_S3_BUCKET=$(cat "$state/s3/bucket")
export GDS_S3_ACCESS_KEY=$ACCESS_KEY
export GDS_S3_SECRET_KEY=$SECRET_KEY
export GDS_S3_DATA_DIR=$(cd "$state/s3/data" && pwd)
EOF
}

bench() { # port state_dir mib
    local port=$1 state=$2 mib=${3:-1024} py
    start "$port" "$state" gds-bench
    py=${GDS_S3_PYTHON:-$(ls -d "$GDS_CACHE"/venv-*/bin/python 2>/dev/null | head -1)}
    "$py" - "$port" "$mib" "$ACCESS_KEY" "$SECRET_KEY" <<'EOF' || { stop "$state"; exit 1; }
import os, sys, time, boto3, botocore.config
from boto3.s3.transfer import TransferConfig
port, mib, ak, sk = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%s" % port, region_name="us-east-1",
                  aws_access_key_id=ak, aws_secret_access_key=sk,
                  config=botocore.config.Config(s3={"addressing_style": "path"},
                                                request_checksum_calculation="when_required",
                                                response_checksum_validation="when_required"))
block = os.urandom(16 << 20)
class Gen:
    def __init__(self): self.left = mib << 20
    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        out = (block * (n // len(block) + 1))[:n] if n else b""
        self.left -= n
        return out
cfg = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=2)
t = time.monotonic(); s3.upload_fileobj(Gen(), "gds-bench", "obj", Config=cfg); put = time.monotonic() - t
t = time.monotonic(); body = s3.get_object(Bucket="gds-bench", Key="obj")["Body"]; got = 0
for chunk in iter(lambda: body.read(1 << 20), b""): got += len(chunk)
get = time.monotonic() - t
assert got == mib << 20, got
mb = (mib << 20) / 1e6
print("%s MiB: multipart PUT %.1f s (%.0f MB/s), GET %.1f s (%.0f MB/s)" % (mib, put, mb / put, get, mb / get))
s3.delete_object(Bucket="gds-bench", Key="obj")
EOF
    stop "$state"
}

CMD=${1:-}
[ -n "$CMD" ] || usage
shift
case "$CMD" in
    install) install >/dev/null ;;
    start) [ $# -ge 2 ] || usage; start "$@" ;;
    stop) [ $# -ge 1 ] || usage; stop "$1" ;;
    env) [ $# -ge 1 ] || usage; env_lines "$1" ;;
    bench) [ $# -ge 2 ] || usage; bench "$@" ;;
    *) usage ;;
esac
