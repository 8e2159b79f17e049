#!/usr/bin/env bash
# A real multi-region OpenStack on 127.0.0.1: one Keystone and six Glance regions from PyPI, under uwsgi
# (REGION6: eventlet).
#   REGION1  the source region
#   REGION1C REGION1's Glance again, through a fifth sidecar registered as a region of its own: a source
#            whose image endpoint is a sidecar, so imports from it use the compact coding
#            (gds-compact-1) between sidecars
#   REGION2  the target: glance-download-sidecar in front of its Glance; two filesystem stores
#            (enabled_backends = local:file, fast:file) in the default multi-store mode
#   REGION3  a plain Glance that offers no glance-download (sync streams the bytes itself there)
#   REGION4  a Glance with the image_conversion (to raw) and inject_image_metadata import plugins,
#            with a second sidecar in front of it (store_sink = glance-stage, injection mirrored)
#   REGION5  a Glance on an S3 store (a local S3 server, scripts/interop/s3server.sh), with a third
#            sidecar in front of it (store_sink = s3: multipart upload, then the location API)
#   REGION6  Glance 28 (2024.1) served by its standalone eventlet `glance-api`, from a virtualenv of
#            its own (scripts/interop/requirements-glance28.txt), with a fourth sidecar in front of it
#            (store_sink = glance-upload): fail-closed checked on a server other than uwsgi
# and a second, independent cloud beside it (`sync --from-cloud gds-demo --to-cloud gds-cloud2`):
#   CLOUD2-REGION1  a plain Glance registered in a Keystone of its own (own port, SQLite DB, fernet
#            keys, admin/glance/demo users with other passwords): cloud 1's tokens mean nothing there
#
#   scripts/cloud.sh up   [STATE_DIR] [--no-sidecar] [--single-store]
#   scripts/cloud.sh stop [STATE_DIR]
#   scripts/cloud.sh env  [STATE_DIR]      # eval "$(scripts/cloud.sh env)"
#   scripts/cloud.sh status [STATE_DIR]
#
# STATE_DIR (default /tmp/gds-cloud, must be outside the checkout) holds configs, SQLite DBs, image
# stores, logs, pids, clouds.yaml, openrc and env. The virtualenv is built once per pin file under
# ${GDS_CACHE:-$HOME/.cache/glance-download-sidecar}/venv-<sha256 of scripts/interop/requirements.txt>;
# REGION6's beside it, venv-glance28-<sha256 of scripts/interop/requirements-glance28.txt>, built at the
# same time.
#
# Environment knobs:
#   SIDECAR_BIN        sidecar binary (default target/release/glance-download-sidecar, relative to repo)
#   SIDECAR_ARGS       extra arguments appended to `serve ...` (word-split)
#   GDS_CACHE          cache folder for the venvs (default ~/.cache/glance-download-sidecar)
#   GDS_GLANCE28_PYTHON  the Python of REGION6's venv (default: GDS_PYTHON or python3; Glance 28
#                      supports Python 3.8 to 3.11)
#   GDS_STORE_MODE     multi (default: enabled_backends = local:file) or single (node_staging_uri)
#   GDS_WAIT_TIMEOUT   seconds to wait for each service to answer (default 90)
#   GDS_DEBUG          true: debug logging in Keystone and Glance (default false)
#
# Only 127.0.0.1 is ever listened on or contacted (plus PyPI through pip, and apt for missing
# system packages).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
INTEROP_DIR=$SCRIPT_DIR/interop
PIN_FILE=$INTEROP_DIR/requirements.txt
PIN_FILE28=$INTEROP_DIR/requirements-glance28.txt
GDS_CACHE=${GDS_CACHE:-$HOME/.cache/glance-download-sidecar}
PYTHON=${GDS_PYTHON:-python3}
PYTHON28=${GDS_GLANCE28_PYTHON:-$PYTHON}
WAIT_TIMEOUT=${GDS_WAIT_TIMEOUT:-90}
STORE_MODE=${GDS_STORE_MODE:-multi}
DEBUG=${GDS_DEBUG:-false}

ADMIN_PASSWORD=gds-admin-secret
GLANCE_PASSWORD=gds-glance-secret
DEMO_PASSWORD=gds-demo-secret
# the second cloud: the same user names, other passwords
CLOUD2_REGION=CLOUD2-REGION1
CLOUD2_ADMIN_PASSWORD=gds-cloud2-admin-secret
CLOUD2_GLANCE_PASSWORD=gds-cloud2-glance-secret
CLOUD2_DEMO_PASSWORD=gds-cloud2-demo-secret

log() { printf '[cloud.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    sed -n '/^#   scripts\/cloud.sh /p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------------
# arguments
CMD=${1:-}
[ -n "$CMD" ] || usage
shift
STATE_DIR=/tmp/gds-cloud
NO_SIDECAR=0
for arg in "$@"; do
    case "$arg" in
        --no-sidecar) NO_SIDECAR=1 ;;
        --single-store) STORE_MODE=single ;;
        --multi-store) STORE_MODE=multi ;;
        -h|--help) usage ;;
        -*) die "unknown option $arg" ;;
        *) STATE_DIR=$arg ;;
    esac
done
case "$STORE_MODE" in multi|single) ;; *) die "GDS_STORE_MODE must be multi or single" ;; esac

abspath() { # an absolute, normalized path (the path need not exist)
    "$PYTHON" -c 'import os,sys; print(os.path.realpath(os.path.abspath(sys.argv[1])))' "$1"
}
STATE_DIR=$(abspath "$STATE_DIR")
case "$STATE_DIR/" in
    "$REPO_ROOT"/*) die "STATE_DIR $STATE_DIR is inside the checkout $REPO_ROOT; choose a folder outside it" ;;
    /) die "refusing STATE_DIR /" ;;
esac
PIDS_FILE=$STATE_DIR/pids
MARKER=$STATE_DIR/.gds-cloud-state

# ---------------------------------------------------------------------------------------------------
# process bookkeeping: "name pid starttime marker" per line; a pid is ours only if it is alive, has the
# recorded start time and its /proc/PID/cmdline contains the marker.

proc_starttime() { # field 22 of /proc/PID/stat (after the parenthesised comm)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

proc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    echo "${stat%% *}"
}

proc_alive() { # alive and not a zombie
    local st
    st=$(proc_state "$1") || return 1
    [ "$st" != Z ] && [ "$st" != X ]
}

proc_is_ours() { # pid starttime marker
    local pid=$1 start=$2 marker=$3 cmd
    proc_alive "$pid" || return 1
    [ "$(proc_starttime "$pid")" = "$start" ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    case "$cmd" in *"$marker"*) return 0 ;; *) return 1 ;; esac
}

proc_children() { # direct children of a pid, from /proc
    local parent=$1 d stat ppid
    for d in /proc/[0-9]*; do
        stat=$(cat "$d/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        ppid=$(echo "$stat" | cut -d' ' -f2)
        [ "$ppid" = "$parent" ] && echo "${d#/proc/}"
    done
    return 0
}

record_pid() { # name pid marker
    local start
    start=$(proc_starttime "$2") || die "$1 (pid $2) died right after start; see $STATE_DIR/logs/$1.log"
    echo "$1 $2 $start $3" >>"$PIDS_FILE"
}

stop_one() { # name pid start marker
    local name=$1 pid=$2 start=$3 marker=$4 kids k i
    if ! proc_is_ours "$pid" "$start" "$marker"; then
        log "$name (pid $pid): not running"
        return 0
    fi
    kids=$(proc_children "$pid")
    # uwsgi: SIGINT = shut down now (SIGTERM without --die-on-term would reload). Sidecar: SIGTERM.
    case "$name" in sidecar*) kill -TERM "$pid" 2>/dev/null || true ;; *) kill -INT "$pid" 2>/dev/null || true ;; esac
    for ((i = 0; i < 100; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    if proc_is_ours "$pid" "$start" "$marker"; then
        log "$name (pid $pid) ignored the signal for 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do # workers forked by the master we started
        for ((i = 0; i < 50; i++)); do
            proc_alive "$k" || break
            sleep 0.1
        done
        if proc_alive "$k"; then
            case "$(tr '\0' ' ' <"/proc/$k/cmdline" 2>/dev/null)" in
                *"$marker"*) log "$name worker $k still alive: SIGKILL"; kill -KILL "$k" 2>/dev/null || true ;;
            esac
        fi
    done
    log "$name (pid $pid) stopped"
}

stop_all() {
    [ -f "$PIDS_FILE" ] || { log "nothing recorded in $PIDS_FILE"; return 0; }
    local name pid start marker
    # reverse order: sidecar, glances, keystone
    tac "$PIDS_FILE" | while read -r name pid start marker; do
        [ -n "$pid" ] && stop_one "$name" "$pid" "$start" "$marker"
    done
    mv -f "$PIDS_FILE" "$PIDS_FILE.stopped"
}

any_running() {
    [ -f "$PIDS_FILE" ] || return 1
    local name pid start marker
    while read -r name pid start marker; do
        proc_is_ours "$pid" "$start" "$marker" && return 0
    done <"$PIDS_FILE"
    return 1
}

start_bg() { # name logfile marker -- command...   (own session, stdin closed, pid recorded)
    local name=$1 logf=$2 marker=$3
    shift 4
    # exec in place (no fork) after setsid, so $! is the service's own pid
    "$PYTHON" -c '
import os, sys
try:
    os.setsid()
except OSError:
    pass
os.execvp(sys.argv[1], sys.argv[1:])' "$@" >>"$logf" 2>&1 </dev/null &
    local pid=$!
    sleep 0.2
    record_pid "$name" "$pid" "$marker"
    log "started $name (pid $pid), log $logf"
    eval "PID_${name//-/_}=$pid"
}

wait_http() { # name url logfile pid [accepted codes regex]
    local name=$1 url=$2 logf=$3 pid=$4 ok=${5:-'^(2..|3..|401)$'} code deadline
    deadline=$((SECONDS + WAIT_TIMEOUT))
    while :; do
        code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url" 2>/dev/null || true)
        if [[ "$code" =~ $ok ]]; then
            log "$name answers at $url (HTTP $code)"
            return 0
        fi
        if ! proc_alive "$pid"; then
            log "$name (pid $pid) exited before answering at $url; last lines of $logf:"
            tail -n 40 "$logf" >&2 || true
            die "$name failed to start"
        fi
        if ((SECONDS >= deadline)); then
            log "$name did not answer at $url within ${WAIT_TIMEOUT}s (last HTTP code '$code'); last lines of $logf:"
            tail -n 40 "$logf" >&2 || true
            die "$name did not start in time"
        fi
        sleep 0.3
    done
}

# ---------------------------------------------------------------------------------------------------
# system packages and the virtualenv

ensure_system_packages() {
    local missing=()
    command -v gcc >/dev/null 2>&1 || missing+=(gcc)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils)
    command -v tac >/dev/null 2>&1 || missing+=(coreutils)
    command -v flock >/dev/null 2>&1 || missing+=(util-linux)
    if command -v gcc >/dev/null 2>&1 && ! echo '#include <stdio.h>' | gcc -E - >/dev/null 2>&1; then
        missing+=(libc6-dev)
    fi
    if ! "$PYTHON" -c 'import os,sys,sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
        missing+=(python3-dev)
    fi
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "missing system packages: ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "run as root (apt-get install ${missing[*]}) or install them yourself"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get; install ${missing[*]} yourself"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

venv_path() { # pin file, name prefix
    local hash
    hash=$(sha256sum "$1" | cut -c1-16)
    echo "$GDS_CACHE/venv-$2$hash"
}

ensure_venv_at() { # venv pin_file python
    local venv=$1 pin=$2 python=$3
    case "$(abspath "$GDS_CACHE")/" in "$REPO_ROOT"/*) die "GDS_CACHE must be outside the checkout" ;; esac
    mkdir -p "$GDS_CACHE"
    exec 9>"$venv.lock"
    flock -w 1200 9 || die "another cloud.sh has been building $venv for 20 minutes"
    if [ -f "$venv/.gds-complete" ]; then
        log "reusing virtualenv $venv"
    else
        log "building virtualenv $venv from $pin (a few minutes)"
        rm -rf "$venv"
        "$python" -m venv "$venv"
        if ! timeout 1800 "$venv/bin/pip" install --no-input -q -r "$pin" >"$venv.pip.log" 2>&1; then
            tail -n 30 "$venv.pip.log" >&2
            die "pip install failed (full log $venv.pip.log)"
        fi
        cp "$pin" "$venv/requirements.txt"
        touch "$venv/.gds-complete"
    fi
    flock -u 9
    exec 9>&-
}

ensure_venv() {
    VENV=$(venv_path "$PIN_FILE" "")
    ensure_venv_at "$VENV" "$PIN_FILE" "$PYTHON"
}

# SQLite write transactions that queue instead of failing with "database is locked"
# (scripts/interop/gds_sqlite_immediate.py says why); imported by a .pth file only in processes
# started with GDS_SQLITE_IMMEDIATE=1, i.e. the uwsgi services, not the clients.
install_sqlite_shim() { # [venv]
    local site venv=${1:-$VENV}
    site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cp "$INTEROP_DIR/gds_sqlite_immediate.py" "$site/gds_sqlite_immediate.py.tmp.$$"
    mv -f "$site/gds_sqlite_immediate.py.tmp.$$" "$site/gds_sqlite_immediate.py"
    echo 'import os; os.environ.get("GDS_SQLITE_IMMEDIATE") == "1" and __import__("gds_sqlite_immediate")' \
        >"$site/gds_sqlite_immediate.pth"
}

# ---------------------------------------------------------------------------------------------------
# configuration

free_ports() { # N distinct free TCP ports on 127.0.0.1, held together while chosen
    "$PYTHON" -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

write_keystone_conf() { # [dir]
    local d=${1:-$STATE_DIR/keystone}
    mkdir -p "$d/fernet-keys" "$d/credential-keys" "$d/receipt-keys"
    cat >"$d/keystone.conf" <<EOF
[DEFAULT]
debug = $DEBUG
use_stderr = true
[database]
connection = sqlite:///$d/keystone.sqlite?timeout=30
[token]
provider = fernet
expiration = 14400
[fernet_tokens]
key_repository = $d/fernet-keys
[fernet_receipts]
key_repository = $d/receipt-keys
[credential]
key_repository = $d/credential-keys
[identity]
password_hash_rounds = 4
[cache]
enabled = false
[oslo_policy]
enforce_new_defaults = true
enforce_scope = false
EOF
}

# The properties REGION4's Glance injects (and its sidecar mirrors for the glance-upload sink).
INJECT_PROPERTIES=gds_injected:yes,gds_site:region4

# REGION5's S3 store (scripts/interop/s3server.sh holds the server's credentials)
S3SERVER=$INTEROP_DIR/s3server.sh
S3_BUCKET=glance-images
S3_ACCESS_KEY=${GDS_S3_ACCESS_KEY:-gds-s3-access}
S3_SECRET_KEY=${GDS_S3_SECRET_KEY:-gds-s3-secret}
S3_SECURE_HASH=${GDS_S3_SECURE_HASH:-true}

write_glance_conf() { # region port profile (source|target|plain|plugins|s3|eventlet)
    local region=$1 port=$2 profile=$3 d=$STATE_DIR/glance-$1 methods backends venv=$VENV
    [ "$profile" = eventlet ] && venv=$VENV28
    mkdir -p "$d/images" "$d/images-fast" "$d/staging" "$d/tasks" "$d/locks"
    methods=glance-direct,web-download,glance-download,copy-image
    [ "$profile" = plain ] && methods=glance-direct,web-download,copy-image
    backends=local:file
    [ "$profile" = target ] && backends="local:file, fast:file"
    cp "$venv/etc/glance/glance-api-paste.ini" "$d/glance-api-paste.ini"
    {
        cat <<EOF
[DEFAULT]
debug = $DEBUG
use_stderr = true
enabled_import_methods = [$methods]
worker_self_reference_url = http://127.0.0.1:$port
hashing_algorithm = sha512
EOF
        if [ "$profile" = eventlet ]; then
            # the standalone eventlet server: a parent and one forked worker, on loopback
            cat <<EOF
bind_host = 127.0.0.1
bind_port = $port
workers = 1
EOF
        fi
        if [ "$profile" = s3 ]; then
            # glance_store's s3 driver on the local S3 server; do_secure_hash (default true)
            # makes Glance read a registered location back and hash it before `active`
            cat <<EOF
do_secure_hash = $S3_SECURE_HASH
enabled_backends = s3:s3
[glance_store]
default_backend = s3
[s3]
s3_store_host = http://127.0.0.1:$S3_PORT
s3_store_region_name = us-east-1
s3_store_access_key = $S3_ACCESS_KEY
s3_store_secret_key = $S3_SECRET_KEY
s3_store_bucket = $S3_BUCKET
s3_store_bucket_url_format = path
[os_glance_staging_store]
filesystem_store_datadir = $d/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $d/tasks/
EOF
        elif [ "$STORE_MODE" = multi ]; then
            cat <<EOF
enabled_backends = $backends
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = $d/images/
[fast]
filesystem_store_datadir = $d/images-fast/
[os_glance_staging_store]
filesystem_store_datadir = $d/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $d/tasks/
EOF
        else
            cat <<EOF
node_staging_uri = file://$d/staging
[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = $d/images/
[task]
work_dir = $d/tasks
EOF
        fi
        cat <<EOF
[database]
connection = sqlite:///$d/glance.sqlite?timeout=30
[paste_deploy]
flavor = keystone
config_file = $d/glance-api-paste.ini
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KEYSTONE_PORT/v3
auth_url = http://127.0.0.1:$KEYSTONE_PORT/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = $GLANCE_PASSWORD
region_name = $region
include_service_catalog = true
[oslo_concurrency]
lock_path = $d/locks
[oslo_policy]
enforce_new_defaults = true
enforce_scope = false
[wsgi]
python_interpreter = $venv/bin/python3
EOF
    } >"$d/glance-api.conf"
    local plugins=""
    [ "$profile" = plugins ] && plugins=image_conversion,inject_image_metadata
    cat >"$d/glance-image-import.conf" <<EOF
[image_import_opts]
image_import_plugins = [$plugins]
[image_conversion]
output_format = raw
[inject_metadata_properties]
ignore_user_roles = admin
inject = $INJECT_PROPERTIES
[import_filtering_opts]
allowed_schemes = [http,https]
allowed_hosts = [127.0.0.1]
allowed_ports = [80,443,$GLANCE1_PORT,$GLANCE2_PORT,$GLANCE3_PORT,$GLANCE4_PORT,$GLANCE5_PORT,$GLANCE6_PORT,$SIDECAR_PORT,$SIDECAR4_PORT,$SIDECAR5_PORT,$SIDECAR6_PORT,$SIDECAR1C_PORT,$WAN_PORT]
[glance_download_properties]
extra_properties = [hw_,trait:,os_distro,os_secure_boot,os_type]
EOF
    # Glance's default [healthcheck] disable_by_file_path is /etc/glance/healthcheck_disable: keep ours local
    sed -i "s#^disable_by_file_path = .*#disable_by_file_path = $d/healthcheck_disable#" "$d/glance-api-paste.ini"
}

schema_db() { # kind (keystone|glance|glance28) target: copy a migrated empty DB, migrating once per venv
    local kind=$1 target=$2 venv=$VENV conf logf=$STATE_DIR/logs/$1-db-sync.log
    [ "$kind" = glance28 ] && venv=$VENV28
    local cache=$venv/schema/$1.sqlite
    if [ ! -f "$cache" ]; then
        mkdir -p "$venv/schema"
        local tmpdb
        tmpdb=$(mktemp -d "$STATE_DIR/dbsync-$kind.XXXX")
        case "$kind" in
            keystone)
                sed "s#^connection = .*#connection = sqlite:///$tmpdb/db.sqlite#" "$STATE_DIR/keystone/keystone.conf" >"$tmpdb/conf"
                timeout 600 "$VENV/bin/keystone-manage" --config-file "$tmpdb/conf" db_sync >>"$logf" 2>&1 ||
                    { tail -n 30 "$logf" >&2; die "keystone-manage db_sync failed"; } ;;
            glance)
                sed "s#^connection = .*#connection = sqlite:///$tmpdb/db.sqlite#" "$STATE_DIR/glance-REGION1/glance-api.conf" >"$tmpdb/conf"
                timeout 600 "$VENV/bin/glance-manage" --config-file "$tmpdb/conf" db_sync >>"$logf" 2>&1 ||
                    { tail -n 30 "$logf" >&2; die "glance-manage db_sync failed"; } ;;
            glance28)
                sed "s#^connection = .*#connection = sqlite:///$tmpdb/db.sqlite#" "$STATE_DIR/glance-REGION6/glance-api.conf" >"$tmpdb/conf"
                timeout 600 "$VENV28/bin/glance-manage" --config-file "$tmpdb/conf" db_sync >>"$logf" 2>&1 ||
                    { tail -n 30 "$logf" >&2; die "glance-manage (Glance 28) db_sync failed"; } ;;
        esac
        cp "$tmpdb/db.sqlite" "$cache.tmp.$$" && mv -f "$cache.tmp.$$" "$cache"
        rm -rf "$tmpdb"
    fi
    cp "$cache" "$target"
    # WAL (persistent in the file): readers no longer block writers. Several uwsgi processes and
    # threads write one SQLite file; with the default rollback journal Glance answered 500
    # "database is locked" now and then. ?timeout=30 in the URL lets writers wait for each other.
    "$PYTHON" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA journal_mode=WAL"); c.close()' "$target"
}

start_region_sidecar() { # region port glance_port: the sidecar of a region, with $STATE_DIR/sidecar-REGION.conf
    local region=$1 port=$2 gport=$3 pidvar=PID_sidecar_$1
    start_bg "sidecar-$region" "$STATE_DIR/logs/sidecar-$region.log" "127.0.0.1:$port" -- \
        env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "$SIDECAR_BIN" serve --config "$STATE_DIR/sidecar-$region.conf" \
        --bind "127.0.0.1:$port" --glance-url "http://127.0.0.1:$gport" --auth-url "http://127.0.0.1:$KEYSTONE_PORT/v3"
    wait_http "sidecar-$region" "http://127.0.0.1:$port/healthcheck" "$STATE_DIR/logs/sidecar-$region.log" \
        "${!pidvar}" '^200$'
}

glance_port() { # region -> its Glance's port
    case "$1" in
        REGION1) echo "$GLANCE1_PORT" ;; REGION2) echo "$GLANCE2_PORT" ;;
        REGION3) echo "$GLANCE3_PORT" ;; REGION4) echo "$GLANCE4_PORT" ;;
        REGION5) echo "$GLANCE5_PORT" ;; REGION6) echo "$GLANCE6_PORT" ;;
        *) die "unknown region $1" ;;
    esac
}

uwsgi_cmd() { # name port module envvar=value -> prints nothing; sets UWSGI_ARGS
    local name=$1 port=$2 module=$3 envkv=$4 procs=$5 threads=$6
    # GDS_SQLITE_IMMEDIATE: see install_sqlite_shim
    UWSGI_ARGS=(env GDS_SQLITE_IMMEDIATE=1 "$VENV/bin/uwsgi"
        --http-socket "127.0.0.1:$port"
        --module "$module"
        --virtualenv "$VENV"
        --env "$envkv"
        --master --processes "$procs" --threads "$threads" --enable-threads
        --lazy-apps --need-app --die-on-term
        --buffer-size 65535 --socket-timeout 300 --chunked-input-timeout 300
        --add-header "Connection: close"
        --pidfile "$STATE_DIR/run/$name.pid")
}

write_client_files() {
    local kurl=http://127.0.0.1:$KEYSTONE_PORT/v3
    cat >"$STATE_DIR/clouds.yaml" <<EOF
# written by scripts/cloud.sh up
clouds:
  gds-admin:
    auth:
      auth_url: $kurl
      username: admin
      password: $ADMIN_PASSWORD
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    identity_api_version: 3
    interface: public
    regions: [REGION1, REGION2, REGION3, REGION4, REGION5, REGION6${REGION1C_IMAGE_URL:+, REGION1C}]
  gds-demo:
    auth:
      auth_url: $kurl
      username: demo
      password: $DEMO_PASSWORD
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    identity_api_version: 3
    interface: public
    regions: [REGION1, REGION2, REGION3, REGION4, REGION5, REGION6${REGION1C_IMAGE_URL:+, REGION1C}]
  # REGION2's real Glance, bypassing the sidecar (upstream's own glance-download, parity checks).
  # Note: OSC's --os-endpoint-override does NOT do this (only version discovery goes there).
  gds-demo-direct:
    auth:
      auth_url: $kurl
      username: demo
      password: $DEMO_PASSWORD
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    identity_api_version: 3
    interface: public
    region_name: REGION2
    image_endpoint_override: http://127.0.0.1:$GLANCE2_PORT
  # the second cloud: its own Keystone, its demo user (same name, another password)
  gds-cloud2:
    auth:
      auth_url: http://127.0.0.1:$KEYSTONE2_PORT/v3
      username: demo
      password: $CLOUD2_DEMO_PASSWORD
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    identity_api_version: 3
    interface: public
    region_name: $CLOUD2_REGION
  gds-cloud2-admin:
    auth:
      auth_url: http://127.0.0.1:$KEYSTONE2_PORT/v3
      username: admin
      password: $CLOUD2_ADMIN_PASSWORD
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    identity_api_version: 3
    interface: public
    region_name: $CLOUD2_REGION
EOF
    cat >"$STATE_DIR/openrc" <<EOF
# written by scripts/cloud.sh up. Demo user; clouds.yaml based, because with plain OS_* variables
# --os-region-name REGION1/REGION2 cannot be switched per command.
export OS_CLIENT_CONFIG_FILE=$STATE_DIR/clouds.yaml
export OS_CLOUD=gds-demo
# equivalent plain variables (for tools that do not read clouds.yaml):
# OS_AUTH_URL=$kurl OS_USERNAME=demo OS_PASSWORD=$DEMO_PASSWORD OS_PROJECT_NAME=demo
# OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 OS_INTERFACE=public
EOF
}

write_env_file() {
    local sidecar_url=""
    [ "$NO_SIDECAR" = 1 ] || sidecar_url=http://127.0.0.1:$SIDECAR_PORT
    cat >"$STATE_DIR/env" <<EOF
# written by scripts/cloud.sh up; source it (or: eval "\$(scripts/cloud.sh env $STATE_DIR)")
export GDS_STATE_DIR=$STATE_DIR
export GDS_VENV=$VENV
export GDS_STORE_MODE=$STORE_MODE
export GDS_KEYSTONE_PORT=$KEYSTONE_PORT
export GDS_KEYSTONE_URL=http://127.0.0.1:$KEYSTONE_PORT/v3
export GDS_REGION1_GLANCE_PORT=$GLANCE1_PORT
export GDS_REGION1_GLANCE_URL=http://127.0.0.1:$GLANCE1_PORT
export GDS_REGION2_GLANCE_PORT=$GLANCE2_PORT
export GDS_REGION2_GLANCE_URL=http://127.0.0.1:$GLANCE2_PORT
export GDS_SIDECAR_PORT=$([ "$NO_SIDECAR" = 1 ] || echo "$SIDECAR_PORT")
export GDS_SIDECAR_URL=$sidecar_url
export GDS_SIDECAR_BIN=$([ "$NO_SIDECAR" = 1 ] || echo "$SIDECAR_BIN")
export GDS_REGION2_IMAGE_URL=$REGION2_IMAGE_URL
export GDS_REGION3_GLANCE_URL=http://127.0.0.1:$GLANCE3_PORT
export GDS_REGION4_GLANCE_URL=http://127.0.0.1:$GLANCE4_PORT
export GDS_REGION4_IMAGE_URL=$REGION4_IMAGE_URL
export GDS_SIDECAR4_URL=$([ "$NO_SIDECAR" = 1 ] || echo "http://127.0.0.1:$SIDECAR4_PORT")
export GDS_INJECT_PROPERTIES=$INJECT_PROPERTIES
export GDS_WAN_PORT=$WAN_PORT
export GDS_S3_REGION=REGION5
export GDS_S3_GLANCE_URL=http://127.0.0.1:$GLANCE5_PORT
export GDS_S3_IMAGE_URL=$REGION5_IMAGE_URL
export GDS_S3_SECURE_HASH=$S3_SECURE_HASH
export GDS_REGION6_VENV=$VENV28
export GDS_REGION6_GLANCE_URL=http://127.0.0.1:$GLANCE6_PORT
export GDS_REGION6_IMAGE_URL=$REGION6_IMAGE_URL
export GDS_SIDECAR6_URL=$([ "$NO_SIDECAR" = 1 ] || echo "http://127.0.0.1:$SIDECAR6_PORT")
export GDS_REGION1C_IMAGE_URL=$REGION1C_IMAGE_URL
export GDS_CLOUD2=gds-cloud2
export GDS_CLOUD2_ADMIN=gds-cloud2-admin
export GDS_CLOUD2_REGION=$CLOUD2_REGION
export GDS_CLOUD2_AUTH_URL=http://127.0.0.1:$KEYSTONE2_PORT/v3
export GDS_CLOUD2_GLANCE_URL=http://127.0.0.1:$GLANCE_C2_PORT
export GDS_CLOUD2_DEMO_PASSWORD=$CLOUD2_DEMO_PASSWORD
$("$S3SERVER" env "$STATE_DIR")
export GDS_KEYSTONE_PID=${PID_keystone:-}
export GDS_REGION1_GLANCE_PID=${PID_glance_REGION1:-}
export GDS_REGION2_GLANCE_PID=${PID_glance_REGION2:-}
export GDS_REGION6_GLANCE_PID=${PID_glance_REGION6:-}
export GDS_SIDECAR_PID=${PID_sidecar:-}
export GDS_LOG_DIR=$STATE_DIR/logs
export GDS_ADMIN_PASSWORD=$ADMIN_PASSWORD
export GDS_DEMO_PASSWORD=$DEMO_PASSWORD
export OS_CLIENT_CONFIG_FILE=$STATE_DIR/clouds.yaml
export OS_CLOUD=gds-demo
export PATH=$VENV/bin:\$PATH
EOF
}

token_for() { # user password project [keystone port] -> prints a token (curl, no client startup cost)
    curl -s -m 20 -D - -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$1\",\"domain\":{\"id\":\"default\"},\"password\":\"$2\"}}},\"scope\":{\"project\":{\"name\":\"$3\",\"domain\":{\"id\":\"default\"}}}}}" \
        "http://127.0.0.1:${4:-$KEYSTONE_PORT}/v3/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

# ---------------------------------------------------------------------------------------------------
# the second cloud: a Keystone of its own and one plain Glance registered in it

cloud2_ports() { # KEYSTONE2_PORT GLANCE_C2_PORT: two free ports none of the first cloud's uses
    local taken=" $KEYSTONE_PORT $GLANCE1_PORT $GLANCE2_PORT $GLANCE3_PORT $GLANCE4_PORT $GLANCE5_PORT $GLANCE6_PORT $SIDECAR_PORT $SIDECAR4_PORT $SIDECAR5_PORT $SIDECAR6_PORT $WAN_PORT $S3_PORT $SIDECAR1C_PORT "
    local a b
    while :; do
        read -r a b <<<"$(free_ports 2)"
        case "$taken" in *" $a "*|*" $b "*) continue ;; esac
        echo "$a $b"
        return 0
    done
}

write_cloud2_glance_conf() { # a plain Glance whose keystonemiddleware asks the second Keystone
    local f=$STATE_DIR/glance-$CLOUD2_REGION/glance-api.conf
    write_glance_conf "$CLOUD2_REGION" "$GLANCE_C2_PORT" plain
    sed -i -e "s#127.0.0.1:$KEYSTONE_PORT/#127.0.0.1:$KEYSTONE2_PORT/#" \
        -e "s#^password = $GLANCE_PASSWORD\$#password = $CLOUD2_GLANCE_PASSWORD#" "$f"
    if grep -q -e "127.0.0.1:$KEYSTONE_PORT/" -e "^password = $GLANCE_PASSWORD\$" "$f"; then
        die "$f still names the first cloud's Keystone"
    fi
}

setup_keystone2() { # keys and bootstrap of the second Keystone (admin, its region, its endpoints)
    local conf=$STATE_DIR/keystone2/keystone.conf logf=$STATE_DIR/logs/keystone2-manage.log
    local k2url=http://127.0.0.1:$KEYSTONE2_PORT/v3 u g
    u=$(id -un) g=$(id -gn)
    "$VENV/bin/keystone-manage" --config-file "$conf" fernet_setup --keystone-user "$u" --keystone-group "$g" >>"$logf" 2>&1 &&
        "$VENV/bin/keystone-manage" --config-file "$conf" credential_setup --keystone-user "$u" --keystone-group "$g" >>"$logf" 2>&1 &&
        "$VENV/bin/keystone-manage" --config-file "$conf" bootstrap --bootstrap-password "$CLOUD2_ADMIN_PASSWORD" \
            --bootstrap-admin-url "$k2url" --bootstrap-internal-url "$k2url" --bootstrap-public-url "$k2url" \
            --bootstrap-region-id "$CLOUD2_REGION" >>"$logf" 2>&1 ||
        { tail -n 30 "$logf" >&2; return 1; }
}

bootstrap_cloud2() { # its service, glance and demo users (other passwords), its image endpoint
    "$VENV/bin/python3" "$INTEROP_DIR/bootstrap_keystone.py" --auth-url "http://127.0.0.1:$KEYSTONE2_PORT/v3" \
        --admin-password "$CLOUD2_ADMIN_PASSWORD" --glance-password "$CLOUD2_GLANCE_PASSWORD" \
        --demo-password "$CLOUD2_DEMO_PASSWORD" --image-url "$CLOUD2_REGION=http://127.0.0.1:$GLANCE_C2_PORT" \
        --bootstrap-region "$CLOUD2_REGION" \
        >>"$STATE_DIR/logs/bootstrap-cloud2.log" 2>&1 ||
        { tail -n 30 "$STATE_DIR/logs/bootstrap-cloud2.log" >&2; return 1; }
}

# ---------------------------------------------------------------------------------------------------
# commands

cmd_up() {
    local t0=$SECONDS
    log "up: state $STATE_DIR, store mode $STORE_MODE, sidecar $([ "$NO_SIDECAR" = 1 ] && echo no || echo yes)"
    if [ "$NO_SIDECAR" = 0 ]; then
        SIDECAR_BIN=${SIDECAR_BIN:-target/release/glance-download-sidecar}
        case "$SIDECAR_BIN" in /*) ;; *) SIDECAR_BIN=$REPO_ROOT/$SIDECAR_BIN ;; esac
        [ -x "$SIDECAR_BIN" ] || die "sidecar binary $SIDECAR_BIN not found: build it (cargo build --release) or pass --no-sidecar"
    else
        SIDECAR_BIN=""
    fi

    if [ -e "$STATE_DIR" ]; then
        if any_running; then
            log "a cloud is already running from $STATE_DIR: stopping it first"
            stop_all
        fi
        if [ -n "$(ls -A "$STATE_DIR" 2>/dev/null)" ] && [ ! -f "$MARKER" ]; then
            die "$STATE_DIR exists, is not empty and was not made by cloud.sh: refusing to wipe it"
        fi
        rm -rf "$STATE_DIR"
    fi
    mkdir -p "$STATE_DIR/logs" "$STATE_DIR/run"
    touch "$MARKER"
    : >"$PIDS_FILE"

    UP_OK=0
    trap 'rc=$?; if [ "$UP_OK" != 1 ]; then log "up failed (rc=$rc): stopping what was started"; stop_all; fi' EXIT
    trap 'exit 130' INT TERM

    ensure_system_packages
    log "system packages present"
    # the S3 server is a cargo install the first time (minutes): build it beside the venv
    "$S3SERVER" install >"$STATE_DIR/logs/s3server-install.log" 2>&1 &
    S3_INSTALL_PID=$!
    local tv=$SECONDS
    # REGION6's venv (Glance 28) is built beside the main one
    VENV28=$(venv_path "$PIN_FILE28" glance28-)
    (ensure_venv_at "$VENV28" "$PIN_FILE28" "$PYTHON28" && install_sqlite_shim "$VENV28") \
        >>"$STATE_DIR/logs/venv-glance28.log" 2>&1 &
    local venv28_pid=$!
    ensure_venv
    install_sqlite_shim
    log "virtualenv ready in $((SECONDS - tv)) s"
    wait "$venv28_pid" || { tail -n 30 "$STATE_DIR/logs/venv-glance28.log" >&2; die "REGION6's virtualenv (Glance 28) failed"; }
    log "both virtualenvs ready in $((SECONDS - tv)) s"

    # WAN_PORT: kept free for an emulated cross-region link in front of REGION1
    # (scripts/bench-wan.sh); Glance's import filter allows it so upstream can cross it too.
    read -r KEYSTONE_PORT GLANCE1_PORT GLANCE2_PORT GLANCE3_PORT GLANCE4_PORT GLANCE5_PORT GLANCE6_PORT \
        SIDECAR_PORT SIDECAR4_PORT SIDECAR5_PORT SIDECAR6_PORT WAN_PORT S3_PORT SIDECAR1C_PORT <<<"$(free_ports 14)"
    log "ports: keystone $KEYSTONE_PORT, glance REGION1..6 $GLANCE1_PORT $GLANCE2_PORT $GLANCE3_PORT $GLANCE4_PORT $GLANCE5_PORT $GLANCE6_PORT, sidecars $SIDECAR_PORT (REGION2) $SIDECAR4_PORT (REGION4) $SIDECAR5_PORT (REGION5) $SIDECAR6_PORT (REGION6) $SIDECAR1C_PORT (REGION1C)"
    read -r KEYSTONE2_PORT GLANCE_C2_PORT <<<"$(cloud2_ports)"
    log "ports: second cloud keystone $KEYSTONE2_PORT, glance $CLOUD2_REGION $GLANCE_C2_PORT"
    local kurl=http://127.0.0.1:$KEYSTONE_PORT
    if [ "$NO_SIDECAR" = 1 ]; then
        REGION2_IMAGE_URL=http://127.0.0.1:$GLANCE2_PORT
        REGION4_IMAGE_URL=http://127.0.0.1:$GLANCE4_PORT
        REGION5_IMAGE_URL=http://127.0.0.1:$GLANCE5_PORT
        REGION6_IMAGE_URL=http://127.0.0.1:$GLANCE6_PORT
        REGION1C_IMAGE_URL=""
    else
        REGION2_IMAGE_URL=http://127.0.0.1:$SIDECAR_PORT
        REGION4_IMAGE_URL=http://127.0.0.1:$SIDECAR4_PORT
        REGION5_IMAGE_URL=http://127.0.0.1:$SIDECAR5_PORT
        REGION6_IMAGE_URL=http://127.0.0.1:$SIDECAR6_PORT
        REGION1C_IMAGE_URL=http://127.0.0.1:$SIDECAR1C_PORT
    fi

    write_keystone_conf
    write_glance_conf REGION1 "$GLANCE1_PORT" source
    write_glance_conf REGION2 "$GLANCE2_PORT" target
    write_glance_conf REGION3 "$GLANCE3_PORT" plain
    write_glance_conf REGION4 "$GLANCE4_PORT" plugins
    write_glance_conf REGION5 "$GLANCE5_PORT" s3
    write_glance_conf REGION6 "$GLANCE6_PORT" eventlet
    write_keystone_conf "$STATE_DIR/keystone2"
    write_cloud2_glance_conf
    write_client_files

    # databases (migrated once per venv, copied afterwards); keystone and glance migrate in parallel
    local tdb=$SECONDS
    schema_db keystone "$STATE_DIR/keystone/keystone.sqlite" &
    local kdb=$!
    schema_db glance "$STATE_DIR/glance-REGION1/glance.sqlite" &
    local gdb=$!
    schema_db glance28 "$STATE_DIR/glance-REGION6/glance.sqlite" &
    local g28db=$!
    wait "$kdb" || die "keystone database set-up failed"
    wait "$gdb" || die "glance database set-up failed"
    wait "$g28db" || die "Glance 28 database set-up failed"
    local r
    for r in REGION2 REGION3 REGION4 REGION5 "$CLOUD2_REGION"; do
        cp "$STATE_DIR/glance-REGION1/glance.sqlite" "$STATE_DIR/glance-$r/glance.sqlite"
    done
    cp "$STATE_DIR/keystone/keystone.sqlite" "$STATE_DIR/keystone2/keystone.sqlite"
    log "databases ready in $((SECONDS - tdb)) s"

    local kconf=$STATE_DIR/keystone/keystone.conf klog=$STATE_DIR/logs/keystone-manage.log
    local u g
    u=$(id -un) g=$(id -gn)
    # the key set-ups touch different folders: side by side. bootstrap reads the fernet (and
    # receipt) keys, so it runs after them.
    # the second Keystone's keys and bootstrap run beside the first's
    setup_keystone2 &
    local k2setup=$!
    local kpids=() kp
    "$VENV/bin/keystone-manage" --config-file "$kconf" fernet_setup --keystone-user "$u" --keystone-group "$g" >>"$klog.fernet" 2>&1 &
    kpids+=($!)
    "$VENV/bin/keystone-manage" --config-file "$kconf" credential_setup --keystone-user "$u" --keystone-group "$g" >>"$klog.credential" 2>&1 &
    kpids+=($!)
    for kp in "${kpids[@]}"; do
        wait "$kp" || { tail -n 30 "$klog"* >&2; die "keystone-manage key set-up failed"; }
    done
    kpids=()
    "$VENV/bin/keystone-manage" --config-file "$kconf" bootstrap \
        --bootstrap-password "$ADMIN_PASSWORD" \
        --bootstrap-admin-url "$kurl/v3" --bootstrap-internal-url "$kurl/v3" --bootstrap-public-url "$kurl/v3" \
        --bootstrap-region-id REGION1 >>"$klog" 2>&1 &
    kpids+=($!)
    for kp in "${kpids[@]}"; do
        wait "$kp" || { tail -n 30 "$klog"* >&2; die "keystone-manage failed"; }
    done
    log "keystone-manage fernet_setup/credential_setup/bootstrap done"

    uwsgi_cmd keystone "$KEYSTONE_PORT" keystone.wsgi.api:application "OS_KEYSTONE_CONFIG_DIR=$STATE_DIR/keystone" 2 2
    start_bg keystone "$STATE_DIR/logs/keystone.log" "$STATE_DIR/run/keystone.pid" -- "${UWSGI_ARGS[@]}"
    wait "$k2setup" || die "the second Keystone's keystone-manage failed"
    uwsgi_cmd keystone2 "$KEYSTONE2_PORT" keystone.wsgi.api:application "OS_KEYSTONE_CONFIG_DIR=$STATE_DIR/keystone2" 1 2
    start_bg keystone2 "$STATE_DIR/logs/keystone2.log" "$STATE_DIR/run/keystone2.pid" -- "${UWSGI_ARGS[@]}"
    wait_http keystone "$kurl/v3" "$STATE_DIR/logs/keystone.log" "$PID_keystone" '^200$'

    "$VENV/bin/python3" "$INTEROP_DIR/bootstrap_keystone.py" --auth-url "$kurl/v3" \
        --admin-password "$ADMIN_PASSWORD" --glance-password "$GLANCE_PASSWORD" --demo-password "$DEMO_PASSWORD" \
        --image-url "REGION1=http://127.0.0.1:$GLANCE1_PORT" --image-url "REGION2=$REGION2_IMAGE_URL" \
        --image-url "REGION3=http://127.0.0.1:$GLANCE3_PORT" --image-url "REGION4=$REGION4_IMAGE_URL" \
        --image-url "REGION5=$REGION5_IMAGE_URL" --image-url "REGION6=$REGION6_IMAGE_URL" \
        ${REGION1C_IMAGE_URL:+--image-url "REGION1C=$REGION1C_IMAGE_URL"} \
        >>"$STATE_DIR/logs/bootstrap.log" 2>&1 || { tail -n 30 "$STATE_DIR/logs/bootstrap.log" >&2; die "keystone bootstrap failed"; }
    wait_http keystone2 "http://127.0.0.1:$KEYSTONE2_PORT/v3" "$STATE_DIR/logs/keystone2.log" "$PID_keystone2" '^200$'
    bootstrap_cloud2 &
    local b2=$!
    log "keystone bootstrapped (image endpoints: REGION2 $REGION2_IMAGE_URL, REGION4 $REGION4_IMAGE_URL, REGION5 $REGION5_IMAGE_URL, REGION6 $REGION6_IMAGE_URL${REGION1C_IMAGE_URL:+, REGION1C $REGION1C_IMAGE_URL})"

    # the S3 server behind REGION5's store (installed in the background since the start)
    wait "$S3_INSTALL_PID" || { tail -n 30 "$STATE_DIR/logs/s3server-install.log" >&2; die "S3 server install failed"; }
    GDS_S3_PYTHON=$VENV/bin/python3 "$S3SERVER" start "$S3_PORT" "$STATE_DIR" "$S3_BUCKET" 2>>"$STATE_DIR/logs/s3server.log" ||
        { tail -n 20 "$STATE_DIR/logs/s3server.log" >&2; die "S3 server did not start"; }
    record_pid s3server "$(cat "$STATE_DIR/s3/pid")" "$STATE_DIR/s3/data"

    local region port procs pidvar
    for region in REGION1 REGION2 REGION3 REGION4 REGION5; do
        port=$(glance_port "$region")
        # the source and the sidecar's target take the load; the others get one worker process
        case "$region" in REGION1|REGION2) procs=2 ;; *) procs=1 ;; esac
        uwsgi_cmd "glance-$region" "$port" glance.wsgi.api:application "OS_GLANCE_CONFIG_DIR=$STATE_DIR/glance-$region" "$procs" 4
        start_bg "glance-$region" "$STATE_DIR/logs/glance-$region.log" "$STATE_DIR/run/glance-$region.pid" -- "${UWSGI_ARGS[@]}"
    done
    # REGION6: Glance 28's own eventlet server (parent + one worker; SIGINT stops both)
    start_bg glance-REGION6 "$STATE_DIR/logs/glance-REGION6.log" "--config-dir $STATE_DIR/glance-REGION6" -- \
        env GDS_SQLITE_IMMEDIATE=1 "$VENV28/bin/glance-api" --config-dir "$STATE_DIR/glance-REGION6"
    uwsgi_cmd "glance-$CLOUD2_REGION" "$GLANCE_C2_PORT" glance.wsgi.api:application "OS_GLANCE_CONFIG_DIR=$STATE_DIR/glance-$CLOUD2_REGION" 1 4
    start_bg "glance-$CLOUD2_REGION" "$STATE_DIR/logs/glance-$CLOUD2_REGION.log" "$STATE_DIR/run/glance-$CLOUD2_REGION.pid" -- "${UWSGI_ARGS[@]}"
    for region in REGION1 REGION2 REGION3 REGION4 REGION5 REGION6; do
        pidvar=PID_glance_$region
        wait_http "glance-$region" "http://127.0.0.1:$(glance_port "$region")/healthcheck" \
            "$STATE_DIR/logs/glance-$region.log" "${!pidvar}" '^200$'
    done
    pidvar=PID_glance_${CLOUD2_REGION//-/_}
    wait_http "glance-$CLOUD2_REGION" "http://127.0.0.1:$GLANCE_C2_PORT/healthcheck" \
        "$STATE_DIR/logs/glance-$CLOUD2_REGION.log" "${!pidvar}" '^200$'
    wait "$b2" || die "the second Keystone's bootstrap failed"

    # authenticated smoke test of both Glances (keystonemiddleware + catalog)
    local token code
    token=$(token_for demo "$DEMO_PASSWORD" demo)
    [ -n "$token" ] || die "could not get a token for demo from Keystone"
    for port in "$GLANCE1_PORT" "$GLANCE2_PORT" "$GLANCE3_PORT" "$GLANCE4_PORT" "$GLANCE5_PORT" "$GLANCE6_PORT"; do
        code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" "http://127.0.0.1:$port/v2/images")
        [ "$code" = 200 ] || { tail -n 40 "$STATE_DIR"/logs/glance-*.log >&2; die "GET /v2/images on 127.0.0.1:$port answered $code"; }
    done
    log "every Glance answers GET /v2/images with a demo token"
    # the second cloud: its own demo token is accepted, the first cloud's refused
    local token2
    token2=$(token_for demo "$CLOUD2_DEMO_PASSWORD" demo "$KEYSTONE2_PORT")
    [ -n "$token2" ] || die "could not get a token for demo from the second Keystone"
    code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token2" "http://127.0.0.1:$GLANCE_C2_PORT/v2/images")
    [ "$code" = 200 ] || { tail -n 40 "$STATE_DIR/logs/glance-$CLOUD2_REGION.log" >&2; die "GET /v2/images in $CLOUD2_REGION answered $code"; }
    code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" "http://127.0.0.1:$GLANCE_C2_PORT/v2/images")
    [ "$code" = 401 ] || die "$CLOUD2_REGION answered $code to the first cloud's token (401 expected)"
    log "$CLOUD2_REGION answers its own cloud's demo token and refuses the first cloud's"

    if [ "$NO_SIDECAR" = 0 ]; then
        local extra=()
        # shellcheck disable=SC2206
        [ -n "${SIDECAR_ARGS:-}" ] && extra=($SIDECAR_ARGS)
        # each instance keeps its own task journal (recovery marks the journal's open tasks failed)
        printf '[DEFAULT]\ntask_journal = %s\n' "$STATE_DIR/sidecar-REGION2.jsonl" >"$STATE_DIR/sidecar-REGION2.conf"
        start_bg sidecar "$STATE_DIR/logs/sidecar.log" "127.0.0.1:$SIDECAR_PORT" -- \
            env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "$SIDECAR_BIN" serve --config "$STATE_DIR/sidecar-REGION2.conf" \
            --bind "127.0.0.1:$SIDECAR_PORT" \
            --glance-url "http://127.0.0.1:$GLANCE2_PORT" --auth-url "$kurl/v3" "${extra[@]}"
        ln -sf logs/sidecar.log "$STATE_DIR/sidecar.log"
        wait_http sidecar "http://127.0.0.1:$SIDECAR_PORT/healthcheck" "$STATE_DIR/logs/sidecar.log" "$PID_sidecar" '^200$'
        code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" "http://127.0.0.1:$SIDECAR_PORT/v2/images")
        [ "$code" = 200 ] || log "WARNING: GET /v2/images through the sidecar answered $code (continuing)"

        # REGION4's sidecar: the glance-stage sink (the target's plugins run), injection mirrored
        # for callers that pick glance-upload per request.
        cat >"$STATE_DIR/sidecar-REGION4.conf" <<EOF
[DEFAULT]
store_sink = glance-stage
task_journal = $STATE_DIR/sidecar-REGION4.jsonl
[inject_metadata_properties]
ignore_user_roles = admin
inject = $INJECT_PROPERTIES
EOF
        start_region_sidecar REGION4 "$SIDECAR4_PORT" "$GLANCE4_PORT"

        # REGION5's sidecar: the s3 sink writes Glance's bucket and registers the location with
        # the glance service user's token (role service) as X-Service-Token
        cat >"$STATE_DIR/sidecar-REGION5.conf" <<EOF
[DEFAULT]
store_sink = s3
task_journal = $STATE_DIR/sidecar-REGION5.jsonl
[s3]
endpoint = http://127.0.0.1:$S3_PORT
region = us-east-1
bucket = $S3_BUCKET
access_key = $S3_ACCESS_KEY
secret_key = $S3_SECRET_KEY
[service_credentials]
username = glance
password = $GLANCE_PASSWORD
project_name = service
EOF
        chmod 600 "$STATE_DIR/sidecar-REGION5.conf"
        start_region_sidecar REGION5 "$SIDECAR5_PORT" "$GLANCE5_PORT"

        # REGION6's sidecar: the glance-upload sink in front of Glance 28 under eventlet
        printf '[DEFAULT]\ntask_journal = %s\n' "$STATE_DIR/sidecar-REGION6.jsonl" >"$STATE_DIR/sidecar-REGION6.conf"
        start_region_sidecar REGION6 "$SIDECAR6_PORT" "$GLANCE6_PORT"

        # REGION1C's sidecar: in front of REGION1's Glance (compact_transfer on, the default), so a
        # glance-download from REGION1C travels coded between two sidecars
        printf '[DEFAULT]\ntask_journal = %s\n' "$STATE_DIR/sidecar-REGION1C.jsonl" >"$STATE_DIR/sidecar-REGION1C.conf"
        start_region_sidecar REGION1C "$SIDECAR1C_PORT" "$GLANCE1_PORT"
    fi

    write_env_file
    UP_OK=1
    trap - EXIT INT TERM
    log "cloud up in $((SECONDS - t0)) s (state: $STATE_DIR)"
    cmd_env
}

cmd_stop() {
    [ -d "$STATE_DIR" ] || { log "no state dir $STATE_DIR"; return 0; }
    stop_all
}

cmd_env() {
    [ -f "$STATE_DIR/env" ] || die "no $STATE_DIR/env: run scripts/cloud.sh up first"
    echo "# clouds.yaml: $STATE_DIR/clouds.yaml"
    echo "# openrc:      $STATE_DIR/openrc"
    echo "# env:         $STATE_DIR/env"
    grep -v '^#' "$STATE_DIR/env"
}

cmd_status() {
    [ -f "$PIDS_FILE" ] || { echo "not running ($STATE_DIR)"; return 1; }
    local name pid start marker rc=0
    while read -r name pid start marker; do
        if proc_is_ours "$pid" "$start" "$marker"; then echo "$name pid $pid running"; else echo "$name pid $pid DEAD"; rc=1; fi
    done <"$PIDS_FILE"
    return $rc
}

case "$CMD" in
    up) cmd_up ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) usage ;;
esac
