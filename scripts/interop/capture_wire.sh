#!/usr/bin/env bash
# Capture real Keystone 30 / Glance 33 wire behaviour with curl, for the authors of the fakes.
# Needs a running cloud:  eval "$(scripts/cloud.sh env)"; scripts/interop/capture_wire.sh > /tmp/wire.txt
# Talks to REGION2's *real* Glance ($GDS_REGION2_GLANCE_URL) and REGION1's, never to the sidecar.
# Tokens are redacted in the output. Every request is bounded (curl -m).
set -uo pipefail
: "${GDS_KEYSTONE_URL:?source the env of scripts/cloud.sh first}"
G1=$GDS_REGION1_GLANCE_URL
G2=$GDS_REGION2_GLANCE_URL
K=$GDS_KEYSTONE_URL
WORK=$(mktemp -d /tmp/gds-wire.XXXX)
trap 'rm -rf "$WORK"' EXIT

token() { # user password project
    curl -s -m 20 -D - -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$1\",\"domain\":{\"id\":\"default\"},\"password\":\"$2\"}}},\"scope\":{\"project\":{\"name\":\"$3\",\"domain\":{\"id\":\"default\"}}}}}" \
        "$K/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}
TOKEN=$(token demo "$GDS_DEMO_PASSWORD" demo)
ADMIN_TOKEN=$(token admin "$GDS_ADMIN_PASSWORD" admin)
[ -n "$TOKEN" ] || { echo "no token" >&2; exit 1; }

redact() { sed -e "s/$GDS_DEMO_PASSWORD/<demo-password>/g" -e "s/$TOKEN/<demo-token>/g" -e "s/$ADMIN_TOKEN/<admin-token>/g" -e "s/gAAAAA[A-Za-z0-9_=-]\{40,\}/<token>/g" -e "s/\r$//"; }

show() { # title, then curl args (as for curl -i)
    local title=$1
    shift
    echo
    echo "=== $title"
    echo "\$ curl $*" | redact | cut -c1-400
    curl -s -i -m 60 "$@" 2>&1 | redact | cut -c1-3000
    echo
}

mkimage() { # name disk container -> id (queued, no data)
    local body='{"name":"'$1'"'
    [ -n "$2" ] && body="$body,\"disk_format\":\"$2\""
    [ -n "$3" ] && body="$body,\"container_format\":\"$3\""
    body="$body}"
    curl -s -m 30 -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' -d "$body" "$G2/v2/images" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

put_file() { # url file
    curl -s -m 120 -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $TOKEN" \
        -H 'Content-Type: application/octet-stream' --data-binary @"$2" "$1"
}

wait_status() { # glance-url id wanted (bounded 60 s)
    local i s
    for ((i = 0; i < 120; i++)); do
        s=$(curl -s -m 10 -H "X-Auth-Token: $TOKEN" "$1/v2/images/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
        [ "$s" = "$3" ] && return 0
        sleep 0.5
    done
    echo "(timed out waiting for $3, last $s)"
}

head -c 1048576 /dev/urandom >"$WORK/r.raw"
qemu-img convert -f raw -O qcow2 "$WORK/r.raw" "$WORK/r.qcow2"

echo "# Wire capture $(date -u +%FT%TZ): Keystone $K, Glance REGION1 $G1, Glance REGION2 $G2 (store mode $GDS_STORE_MODE)"

# ---------------------------------------------------------------- Keystone
show "Keystone: POST /v3/auth/tokens (password, project scope) -- headers only" \
    -o /dev/null -D - -H 'Content-Type: application/json' \
    -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"demo\",\"domain\":{\"id\":\"default\"},\"password\":\"$GDS_DEMO_PASSWORD\"}}},\"scope\":{\"project\":{\"name\":\"demo\",\"domain\":{\"id\":\"default\"}}}}}" "$K/auth/tokens"
show "Keystone: GET /v3/auth/tokens, token validating itself (X-Auth-Token = X-Subject-Token)" \
    -H "X-Auth-Token: $TOKEN" -H "X-Subject-Token: $TOKEN" "$K/auth/tokens"
echo "--- same, body pretty-printed:"
curl -s -m 20 -H "X-Auth-Token: $TOKEN" -H "X-Subject-Token: $TOKEN" "$K/auth/tokens" | python3 -m json.tool | redact | cut -c1-200
show "Keystone: GET /v3/auth/tokens?nocatalog (admin validating demo's token)" \
    -H "X-Auth-Token: $ADMIN_TOKEN" -H "X-Subject-Token: $TOKEN" "$K/auth/tokens?nocatalog"
show "Keystone: GET /v3/auth/tokens with an invalid subject token" \
    -H "X-Auth-Token: $TOKEN" -H "X-Subject-Token: gAAAAABinvalidinvalidinvalid" "$K/auth/tokens"
show "Keystone: GET /v3/auth/tokens with an invalid X-Auth-Token" \
    -H "X-Auth-Token: gAAAAABinvalidinvalidinvalid" -H "X-Subject-Token: $TOKEN" "$K/auth/tokens"
show "Keystone: GET /v3/auth/tokens without X-Subject-Token" -H "X-Auth-Token: $TOKEN" "$K/auth/tokens"
show "Keystone: HEAD /v3/auth/tokens (valid)" -I -H "X-Auth-Token: $TOKEN" -H "X-Subject-Token: $TOKEN" "$K/auth/tokens"
show "Keystone: GET /v3/auth/catalog" -H "X-Auth-Token: $TOKEN" "$K/auth/catalog"

# ---------------------------------------------------------------- Glance auth
show "Glance: GET /v2/images without a token" "$G2/v2/images"
show "Glance: GET /v2/images with an invalid token" -H "X-Auth-Token: gAAAAABinvalid" "$G2/v2/images"
show "Glance: GET /v2/images with an invalid token, Accept: application/json" -H "Accept: application/json" -H "X-Auth-Token: gAAAAABinvalid" "$G2/v2/images"
show "Glance: GET /v2/info/import" -H "X-Auth-Token: $TOKEN" "$G2/v2/info/import"
show "Glance: GET /v2/info/import without token" "$G2/v2/info/import"
show "Glance: GET /v2/info/stores" -H "X-Auth-Token: $TOKEN" "$G2/v2/info/stores"
show "Glance: POST /v2/images (OpenStack-image-import-methods header)" \
    -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' -d '{"name":"wire-create","disk_format":"raw","container_format":"bare"}' "$G2/v2/images"
show "Glance: GET /healthcheck" "$G2/healthcheck"
show "Glance: GET / (versions)" "$G2/"

# ---------------------------------------------------------------- source image in REGION1
SRC=$(curl -s -m 30 -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"wire-src","disk_format":"qcow2","container_format":"bare","hw_disk_bus":"scsi","os_distro":"cirros","foo_bar":"x"}' "$G1/v2/images" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo; echo "=== PUT /v2/images/$SRC/file (REGION1, 1 MiB qcow2): HTTP $(put_file "$G1/v2/images/$SRC/file" "$WORK/r.qcow2")"
show "Glance: GET source image (REGION1)" -H "X-Auth-Token: $TOKEN" "$G1/v2/images/$SRC"

# ---------------------------------------------------------------- import errors
Q=$(mkimage wire-queued raw bare)
IMP="$G2/v2/images/$Q/import"
H=(-H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json')
show "import: missing glance_region" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_image_id\":\"$SRC\"}}" "$IMP"
show "import: missing glance_region, Accept: application/json" "${H[@]}" -H 'Accept: application/json' -d "{\"method\":{\"name\":\"glance-download\",\"glance_image_id\":\"$SRC\"}}" "$IMP"
show "import: what OSC/SDK send without --remote-service-interface" "${H[@]}" -d '{"method":{"name":"glance-download"},"all_stores":false,"all_stores_must_succeed":false}' "$IMP"
show "import: missing glance_image_id" "${H[@]}" -d '{"method":{"name":"glance-download","glance_region":"REGION1"}}' "$IMP"
show "import: malformed remote id" "${H[@]}" -d '{"method":{"name":"glance-download","glance_region":"REGION1","glance_image_id":"not-a-uuid"}}' "$IMP"
show "import: malformed remote id, Accept: application/json" "${H[@]}" -H 'Accept: application/json' -d '{"method":{"name":"glance-download","glance_region":"REGION1","glance_image_id":"not-a-uuid"}}' "$IMP"
show "import: bad JSON" "${H[@]}" -d '{"method": {' "$IMP"
show "import: bad JSON, Accept: application/json" "${H[@]}" -H 'Accept: application/json' -d '{"method": {' "$IMP"
show "import: empty body" "${H[@]}" -X POST "$IMP"
show "import: JSON string body" "${H[@]}" -d '"x"' "$IMP"
show "import: no method" "${H[@]}" -d '{}' "$IMP"
show "import: method without name" "${H[@]}" -d '{"method":{}}' "$IMP"
show "import: method is a string" "${H[@]}" -d '{"method":"glance-download"}' "$IMP"
show "import: unknown method" "${H[@]}" -d '{"method":{"name":"nope"}}' "$IMP"
show "import: all_stores_must_succeed not bool" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"},\"all_stores_must_succeed\":\"no\"}" "$IMP"
show "import: all_stores not bool" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"},\"all_stores\":1}" "$IMP"
show "import: glance_image_id is an int" "${H[@]}" -d '{"method":{"name":"glance-download","glance_region":"REGION1","glance_image_id":123}}' "$IMP"
show "import: glance_image_id null" "${H[@]}" -d '{"method":{"name":"glance-download","glance_region":"REGION1","glance_image_id":null}}' "$IMP"
# each of these may start an import (single-store Glance ignores stores): a fresh target each
show "import: unknown store (fresh target)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"},\"stores\":[\"nope\"]}" "$G2/v2/images/$(mkimage wire-store-nope raw bare)/import"
show "import: all_stores with stores (fresh target)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"},\"stores\":[\"local\"],\"all_stores\":true}" "$G2/v2/images/$(mkimage wire-allstores raw bare)/import"
show "import: the body OSC/SDK send with --remote-service-interface (all_stores_must_succeed false; fresh target)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_service_interface\":\"public\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"},\"all_stores\":false,\"all_stores_must_succeed\":false}" "$G2/v2/images/$(mkimage wire-osc-body raw bare)/import"
show "import: all_stores true, no stores (glanceclient --all-stores; fresh target)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"},\"all_stores\":true,\"all_stores_must_succeed\":false}" "$G2/v2/images/$(mkimage wire-allstores-true raw bare)/import"
show "import: X-Image-Meta-Store header unknown (fresh target)" "${H[@]}" -H 'X-Image-Meta-Store: nope' -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$(mkimage wire-hdr-store raw bare)/import"
show "import: no token" -H 'Content-Type: application/json' -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$IMP"
show "import: invalid token" -H 'X-Auth-Token: gAAAAABinvalid' -H 'Content-Type: application/json' -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$IMP"
show "import: image does not exist" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/00000000-0000-4000-8000-000000000000/import"
show "import: GET on the import URL (405)" -H "X-Auth-Token: $TOKEN" "$IMP"

NF=$(mkimage wire-noformats "" "")
show "import: formats unset (container_format first)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$NF/import"
NF2=$(mkimage wire-nodisk "" bare)
show "import: disk_format unset" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$NF2/import"
show "import: formats unset AND glance_region missing (which wins)" "${H[@]}" -d '{"method":{"name":"glance-download"}}' "$G2/v2/images/$NF/import"

ACT=$(mkimage wire-active raw bare)
echo; echo "=== PUT file into $ACT: HTTP $(put_file "$G2/v2/images/$ACT/file" "$WORK/r.raw")"
show "import: image active" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$ACT/import"
show "import: image active, Accept: application/json" "${H[@]}" -H 'Accept: application/json' -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$ACT/import"
UP=$(mkimage wire-uploading raw bare)
echo; echo "=== PUT /stage into $UP: HTTP $(curl -s -m 60 -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/r.raw" "$G2/v2/images/$UP/stage")"
show "import: image 'uploading' (staged)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$UP/import"

# ---------------------------------------------------------------- a successful upstream import + tasks
OK=$(mkimage wire-target raw bare)
show "import: upstream glance-download, no glance_service_interface (defaults to public)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$OK/import"
show "import: second import while the first runs (or after)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"REGION1\",\"glance_image_id\":\"$SRC\"}}" "$G2/v2/images/$OK/import"
wait_status "$G2" "$OK" active
show "GET /v2/images/{id}/tasks after success" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$OK/tasks"
show "GET target image after success" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$OK"
show "GET /v2/images/{id}/tasks of an image with no tasks" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$NF/tasks"
show "GET /v2/images/{id}/tasks of a missing image" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/00000000-0000-4000-8000-000000000000/tasks"

# ---------------------------------------------------------------- async failures (202, then task failure)
for case in "unknown-region|REGION9|public|$SRC" "bad-interface|REGION1|bogus|$SRC" "missing-remote|REGION1|public|00000000-0000-4000-8000-000000000000"; do
    IFS='|' read -r name region iface rid <<<"$case"
    F=$(mkimage "wire-fail-$name" raw bare)
    curl -s -m 30 -o /dev/null -X PATCH -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/openstack-images-v2.1-json-patch' \
        -d '[{"op":"add","path":"/hw_keep","value":"mine"}]' "$G2/v2/images/$F"
    show "import: $name (region=$region interface=$iface id=$rid)" "${H[@]}" -d "{\"method\":{\"name\":\"glance-download\",\"glance_region\":\"$region\",\"glance_image_id\":\"$rid\",\"glance_service_interface\":\"$iface\"}}" "$G2/v2/images/$F/import"
    sleep 3
    for ((i = 0; i < 40; i++)); do
        st=$(curl -s -m 10 -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$F/tasks" | python3 -c 'import json,sys; t=json.load(sys.stdin)["tasks"]; print(t[0]["status"] if t else "none")')
        case "$st" in success|failure) break ;; esac
        sleep 0.5
    done
    show "tasks after $name" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$F/tasks"
    show "image after $name" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$F"
done

# ---------------------------------------------------------------- PUT /file edge cases
NOF=$(mkimage wire-put-noformat "" "")
show "PUT /file with formats unset" -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/r.raw" "$G2/v2/images/$NOF/file"
show "PUT /file wrong content type" -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' --data-binary @"$WORK/r.raw" "$G2/v2/images/$Q/file"
show "PUT /file on an active image" -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/r.raw" "$G2/v2/images/$ACT/file"
show "PUT /file random data declared qcow2 (format inspection)" -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/r.raw" "$G2/v2/images/$(mkimage wire-badqcow qcow2 bare)/file"
SB=$(mkimage wire-short raw bare)
echo
echo "=== PUT /file short body: Content-Length 1048576, 524288 bytes sent, then write side shut (raw socket)"
python3 - "$G2" "$SB" "$TOKEN" <<'EOF' | sed -e "s/$TOKEN/<demo-token>/g"
import socket, sys, time, urllib.parse
base, image, token = sys.argv[1:4]
u = urllib.parse.urlparse(base)
s = socket.create_connection((u.hostname, u.port), timeout=60)
s.sendall(("PUT /v2/images/%s/file HTTP/1.1\r\nHost: %s\r\nX-Auth-Token: %s\r\n"
           "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n" % (image, u.netloc, token)).encode())
s.sendall(b"\0" * 524288)
s.shutdown(socket.SHUT_WR)
t0 = time.time()
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    data += b"<timeout>"
print(data.decode(errors="replace").replace("\r", ""))
print("(answered after %.1f s)" % (time.time() - t0))
EOF
show "image after the short PUT" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$SB"
SB2=$(mkimage wire-short2 raw bare)
echo
echo "=== PUT /file short body, connection reset (SO_LINGER 0) after 524288 of 1048576 bytes"
python3 - "$G2" "$SB2" "$TOKEN" <<'EOF'
import socket, struct, sys, time, urllib.parse
base, image, token = sys.argv[1:4]
u = urllib.parse.urlparse(base)
s = socket.create_connection((u.hostname, u.port), timeout=60)
s.sendall(("PUT /v2/images/%s/file HTTP/1.1\r\nHost: %s\r\nX-Auth-Token: %s\r\n"
           "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n" % (image, u.netloc, token)).encode())
s.sendall(b"\0" * 524288)
time.sleep(0.5)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("(reset sent)")
EOF
sleep 2
show "image after the reset PUT" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$SB2"
SB3=$(mkimage wire-long raw bare)
show "PUT /file body longer than Content-Length? (x-openstack-image-size 1000 header, 1 MiB body)" -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' -H 'x-openstack-image-size: 1000' --data-binary @"$WORK/r.raw" "$G2/v2/images/$SB3/file"
show "image after the x-openstack-image-size mismatch" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$SB3"
CH=$(mkimage wire-chunked raw bare)
show "PUT /file chunked (Transfer-Encoding: chunked)" -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/r.raw" "$G2/v2/images/$CH/file"
show "image after chunked PUT" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$CH"

# ---------------------------------------------------------------- Range
show "GET /file full (headers)" -o /dev/null -D - -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$ACT/file"
show "GET /file Range bytes=0-9 (headers)" -o /dev/null -D - -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=0-9' "$G2/v2/images/$ACT/file"
show "GET /file Range bytes=-10 (headers)" -o /dev/null -D - -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=-10' "$G2/v2/images/$ACT/file"
show "GET /file Range bytes=1048570-2000000 (end clipped; headers)" -o /dev/null -D - -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=1048570-2000000' "$G2/v2/images/$ACT/file"
show "GET /file Range start beyond size" -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=2000000-' "$G2/v2/images/$ACT/file"
show "GET /file Range start beyond size, Accept: application/json" -H 'Accept: application/json' -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=2000000-' "$G2/v2/images/$ACT/file"
show "GET /file Range unparseable" -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=abc' "$G2/v2/images/$ACT/file"
show "GET /file multiple ranges" -H "X-Auth-Token: $TOKEN" -H 'Range: bytes=0-1,5-6' "$G2/v2/images/$ACT/file"
show "GET /file of a queued image (no data)" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$Q/file"
show "HEAD /file" -I -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$ACT/file"
show "GET /file missing image" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/00000000-0000-4000-8000-000000000000/file"

# ---------------------------------------------------------------- misc
show "PATCH image (json-patch)" -X PATCH -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/openstack-images-v2.1-json-patch' -d '[{"op":"add","path":"/hw_x","value":"1"}]' "$G2/v2/images/$Q"
show "PATCH image wrong content type" -X PATCH -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' -d '[{"op":"add","path":"/hw_x","value":"1"}]' "$G2/v2/images/$Q"
show "PATCH reserved os_glance_ property" -X PATCH -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/openstack-images-v2.1-json-patch' -d '[{"op":"add","path":"/os_glance_x","value":"1"}]' "$G2/v2/images/$Q"
show "GET /v2/images/{missing}" -H "X-Auth-Token: $TOKEN" "$G2/v2/images/00000000-0000-4000-8000-000000000000"
show "GET /v2/images/{missing}, Accept: application/json" -H 'Accept: application/json' -H "X-Auth-Token: $TOKEN" "$G2/v2/images/00000000-0000-4000-8000-000000000000"
show "DELETE image" -X DELETE -H "X-Auth-Token: $TOKEN" "$G2/v2/images/$NF2"
