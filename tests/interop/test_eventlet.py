"""REGION6: Glance 28 (2024.1) served by its standalone eventlet `glance-api`, behind a sidecar with
the glance-upload sink (scripts/cloud.sh).

eventlet's WSGI server hands the application a body cut short of its Content-Length as a clean end
of data. Glance reads upload bodies through WebOb's `Request.body_file`,
whose LimitedLengthFile turns that early end into DisconnectionError, so Glance itself refuses the
cut body: the first tests pin this on the real server, for a cut Content-Length body and for a
chunked body cut before its last chunk. The others check that the sidecar fails closed in front of
this server (a source whose bytes are wrong, or that goes away mid-body, never leaves the target
`active`) and that the real clients import and discover glance-download there.

Every variable below comes from the environment scripts/cloud.sh writes; without them these tests
fail, they do not skip:

  GDS_REGION6_GLANCE_URL   REGION6's real Glance (eventlet)
  GDS_REGION6_IMAGE_URL    REGION6's catalog image endpoint (its sidecar)
"""
import os
import re
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import FAULT_REGION, LOG, assert_imported_like, assert_restored, md5_file
from netproxy import Fault

REGION = "REGION6"
MIB = 1 << 20
KIB = 1 << 10
TARGET_PROPS = {"hw_disk_bus": "ide", "gds_eventlet_marker": "kept"}
MISMATCH_WORDS = ("checksum", "hash", "mismatch", "differ")
DROP_WORDS = ("retr", "attempt", "closed", "connection")


@pytest.fixture(scope="module")
def region6(cloud):
    missing = [k for k in ("GDS_REGION6_GLANCE_URL", "GDS_REGION6_IMAGE_URL") if not os.environ.get(k)]
    assert not missing, "REGION6 is not configured: %s unset (see scripts/cloud.sh)" % missing
    return {"glance": os.environ["GDS_REGION6_GLANCE_URL"],
            "image_url": os.environ["GDS_REGION6_IMAGE_URL"]}


@pytest.fixture
def region6_image(cloud, region6):
    """Factory for empty queued REGION6 images (POST /v2/images to `url`, by default REGION6's
    real Glance), deleted after the test."""
    made = []

    def make(name, url=None, disk_format="raw", properties=None):
        body = {"name": name, "disk_format": disk_format, "container_format": "bare"}
        body.update(properties or {})
        r = cloud.http("POST", (url or region6["glance"]) + "/v2/images", json=body)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        assert r.json()["status"] == "queued", r.json()
        return r.json()

    yield make
    for image_id in made:
        cloud.delete_quietly(image_id, region=REGION)


# --- the server itself --------------------------------------------------------------------------

def _open_upload(glance_url, token, image_id, headers):
    """A socket with the head of `PUT /v2/images/{id}/file` sent (Connection: close)."""
    u = urllib.parse.urlsplit(glance_url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    head = ["PUT /v2/images/%s/file HTTP/1.1" % image_id, "Host: %s" % u.netloc,
            "X-Auth-Token: %s" % token, "Content-Type: application/octet-stream",
            "Connection: close"] + ["%s: %s" % kv for kv in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    return sock


def _wait_status(cloud, image_id, pred, what, timeout=60):
    """Poll REGION6's Glance until pred(image) holds (bounded); returns the image."""
    deadline = time.monotonic() + timeout
    while True:
        img = cloud.image_direct(image_id, region=REGION)
        if pred(img):
            return img
        if time.monotonic() > deadline:
            raise AssertionError("image %s not %s within %ss (last %s)" % (image_id, what, timeout, img))
        time.sleep(0.2)


def _cut_upload(cloud, region6, image_id, headers, parts):
    """Send the head and `parts`, wait until Glance holds the upload (status `saving`: the
    application is reading the body), then end the connection's sending side (FIN) without the
    rest of the body. Returns (the status code Glance answered, the image once Glance is done)."""
    sock = _open_upload(region6["glance"], cloud.token(), image_id, headers)
    answer = b""
    try:
        for part in parts:
            sock.sendall(part)
        _wait_status(cloud, image_id, lambda i: i["status"] == "saving", "saving")
        sock.shutdown(socket.SHUT_WR)
        while len(answer) < 64 * KIB:
            data = sock.recv(16 * KIB)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    LOG.info("cut upload %s -> answer %r", headers, answer[:300])
    code = int(status_line.split(" ")[1]) if status_line.startswith("HTTP/1.") else None
    img = _wait_status(cloud, image_id, lambda i: i["status"] != "saving", "done with the upload")
    LOG.info("  image %s size %s checksum %s", img["status"], img.get("size"), img.get("checksum"))
    return code, img


def test_glance_on_eventlet_refuses_a_body_cut_short_of_its_content_length(cloud, region6,
                                                                           region6_image):
    """1 MiB announced, 256 KiB sent, then FIN. eventlet reads the FIN as the end of the body;
    WebOb's LimitedLengthFile counts the missing bytes and raises DisconnectionError, Glance
    answers 500 and puts the image back to `queued` with no data."""
    img = region6_image("gds-eventlet-cut-length")
    code, img = _cut_upload(cloud, region6, img["id"], {"Content-Length": str(MIB)},
                            [os.urandom(256 * KIB)])
    assert code == 500, code
    assert img["status"] == "queued", img
    assert not img.get("size") and not img.get("checksum"), img


def test_glance_on_eventlet_refuses_a_chunked_body_cut_before_its_last_chunk(cloud, region6,
                                                                             region6_image):
    """The same upload in chunked transfer coding, ended after four 64 KiB chunks, before the
    terminating zero-length chunk: eventlet fails to parse the next chunk size, Glance answers 400
    and the image stays `queued` with no data."""
    img = region6_image("gds-eventlet-cut-chunked")
    chunks = [b"%x\r\n%s\r\n" % (64 * KIB, os.urandom(64 * KIB)) for _ in range(4)]
    code, img = _cut_upload(cloud, region6, img["id"], {"Transfer-Encoding": "chunked"}, chunks)
    assert code == 400, code
    assert img["status"] == "queued", img
    assert not img.get("size") and not img.get("checksum"), img


def test_region6_is_glance_28_on_eventlet(cloud, region6):
    """What tells this region apart from the uwsgi ones: eventlet keeps connections alive (the
    uwsgi regions add `Connection: close`) and Glance 28's current API is v2.15 (Glance 33's is
    v2.17)."""
    r = cloud.http("GET", region6["glance"] + "/versions", token=False)
    assert r.status_code == 200, r.text
    ids = [v["id"] for v in r.json()["versions"]]
    current = [v["id"] for v in r.json()["versions"] if v["status"] == "CURRENT"]
    LOG.info("REGION6 versions %s (current %s), headers %s", ids, current, dict(r.headers))
    assert current == ["v2.15"], r.json()
    assert r.headers.get("Connection", "").lower() != "close", r.headers


# --- the sidecar in front of it -----------------------------------------------------------------

def test_import_info_lists_glance_download(cloud, region6):
    via = cloud.http("GET", region6["image_url"] + "/v2/info/import")
    direct = cloud.http("GET", region6["glance"] + "/v2/info/import")
    assert via.status_code == 200 and direct.status_code == 200
    v, d = via.json()["import-methods"], direct.json()["import-methods"]
    assert "glance-download" in v["value"], v
    assert set(d["value"]) <= set(v["value"]), (d, v)
    assert len(v["value"]) == len(set(v["value"])), v
    info = cloud.osc_json("image", "import", "info", region=REGION)
    methods = info["import-methods"]
    value = methods["value"] if isinstance(methods, dict) else methods
    if isinstance(value, str):
        value = [m.strip() for m in value.split(",")]
    assert "glance-download" in value, info


def test_clean_import_is_active_with_the_source_hashes(cloud, region6, region6_image, source_raw):
    tgt = region6_image("gds-eventlet-clean", url=region6["image_url"])
    r = cloud.glance_download(region6["image_url"], tgt["id"], source_raw.id)
    assert r.status_code == 202, r.text
    task, _ = cloud.wait_task_done(tgt["id"], url=region6["image_url"], timeout=180)
    assert task["status"] == "success", task
    assert_imported_like(cloud.wait_image(tgt["id"], region=REGION), source_raw)


class StatusWatcher:
    """Polls an image's status on the real Glance in a thread, recording every status seen."""

    def __init__(self, cloud, image_id):
        self.cloud, self.image_id = cloud, image_id
        self.seen = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import requests
        url = "%s/v2/images/%s" % (self.cloud.glance_urls[REGION], self.image_id)
        headers = {"X-Auth-Token": self.cloud.token()}
        while not self._stop.is_set():
            try:
                r = requests.get(url, headers=headers, timeout=30)
                if r.status_code == 200:
                    img = r.json()
                    if not self.seen or self.seen[-1][0] != img["status"]:
                        self.seen.append((img["status"], img.get("size")))
                else:
                    self.errors.append(r.status_code)
            except requests.RequestException as e:
                self.errors.append(repr(e))
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        return self.seen


def _faulty_import(cloud, region6, region6_image, proxy, src, fault):
    """A queued REGION6 target with properties of its own, imported through REGION6's sidecar from
    REGION1F with `fault` on the source, its status watched on the real Glance all along.
    Returns (finished task, final image, statuses seen)."""
    tgt = region6_image("gds-eventlet-fault", url=region6["image_url"], disk_format="qcow2",
                        properties=TARGET_PROPS)
    watcher = StatusWatcher(cloud, tgt["id"])
    proxy.set(src.id, fault)
    try:
        r = cloud.glance_download(region6["image_url"], tgt["id"], src.id, region=FAULT_REGION)
        assert r.status_code == 202, r.text
        task, _ = cloud.wait_task_done(tgt["id"], url=region6["image_url"], timeout=240)
        img = cloud.wait_image(tgt["id"], region=REGION, statuses=("active", "queued", "deactivated"))
    finally:
        proxy.clear(src.id)
        seen = watcher.stop()
    LOG.info("fault %s on REGION6 -> task %s (%s); image %s size %s; statuses seen %s",
             fault, task["status"], task.get("message"), img["status"], img.get("size"), seen)
    return task, img, seen


def _upload_failure(image_id, timeout=30):
    """Why REGION6's Glance refused `PUT /v2/images/{image_id}/file`: the `Failed to upload image
    data due to ...` line its log has under that request's id ("" if none); waits, bounded, for the
    request to be logged."""
    path = os.path.join(os.environ["GDS_LOG_DIR"], "glance-%s.log" % REGION)
    put = re.compile(r'\[[^]]*?(req-[0-9a-f-]+)[^]]*\].*"PUT /v2/images/%s/file HTTP/1\.[01]" \d{3} '
                     % re.escape(image_id))
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        m = put.search(text)
        if m or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not m:
        return ""
    for line in text.splitlines():
        if m.group(1) in line and "Failed to upload image data" in line:
            return line
    return ""


def _assert_cut_as_chunked(image_id):
    """The sidecar's upload reached Glance chunked and was cut before its last chunk: eventlet
    raised on the chunked framing (cut between chunks: `invalid literal for int() with base 16`,
    400; mid-chunk: `unexpected end of file while parsing chunked data`, 500). A cut
    Content-Length body fails instead in WebOb (`The client disconnected while sending the
    body`)."""
    failure = _upload_failure(image_id)
    LOG.info("REGION6 Glance on the cut upload: %s", failure)
    assert "chunked data" in failure or "with base 16" in failure, failure


def _assert_never_active_and_restored(task, img, seen, words):
    assert task["status"] == "failure", task
    message = (task.get("message") or "").lower()
    assert any(w in message for w in words), "task message %r names none of %s" % (message, words)
    assert "active" not in [s for s, _ in seen], "target went active: statuses seen %s, final %s" % (
        seen, img)
    assert_restored(img, TARGET_PROPS)


def test_flipped_source_byte_never_makes_the_target_active(cloud, region6, region6_image, fault_proxy,
                                                           source_raw):
    fault = Fault("flip", at=4 * MIB)
    task, img, seen = _faulty_import(cloud, region6, region6_image, fault_proxy, source_raw, fault)
    assert fault.applied >= 1, "the fault never fired: %s" % fault
    _assert_never_active_and_restored(task, img, seen, MISMATCH_WORDS)
    _assert_cut_as_chunked(img["id"])


def test_dropped_source_never_makes_the_target_active(cloud, region6, region6_image, fault_proxy,
                                                      source_raw):
    fault = Fault("drop", at=1 * MIB)
    task, img, seen = _faulty_import(cloud, region6, region6_image, fault_proxy, source_raw, fault)
    assert fault.applied >= 2, "the source was not retried: %s" % fault
    _assert_never_active_and_restored(task, img, seen, DROP_WORDS)
    _assert_cut_as_chunked(img["id"])


# --- the real clients ---------------------------------------------------------------------------

def test_osc_image_import_glance_download(cloud, region6, source_qcow2):
    tgt = cloud.create_target("gds-eventlet-osc", region=REGION)
    try:
        cloud.osc("image", "import", tgt["id"], "--method", "glance-download",
                  "--remote-region", "REGION1", "--remote-image", source_qcow2.id,
                  "--remote-service-interface", "public", region=REGION)
        assert_imported_like(cloud.wait_image(tgt["id"], region=REGION), source_qcow2)
        via = cloud.osc_json("image", "show", tgt["id"], region=REGION)
        assert via["status"] == "active" and via["checksum"] == source_qcow2.image["checksum"]
    finally:
        cloud.delete_quietly(tgt["id"], region=REGION)


def test_glanceclient_image_import_glance_download_then_download(cloud, region6, source_qcow2, workdir):
    tgt = cloud.create_target("gds-eventlet-glanceclient", region=REGION)
    try:
        cloud.glance("image-import", tgt["id"], "--import-method", "glance-download",
                     "--remote-region", "REGION1", "--remote-image-id", source_qcow2.id, region=REGION)
        assert_imported_like(cloud.wait_image(tgt["id"], region=REGION), source_qcow2)
        out = workdir / ("eventlet-%s.qcow2" % tgt["id"])
        cloud.glance("image-download", "--file", str(out), tgt["id"], region=REGION)
        assert md5_file(out) == source_qcow2.md5
    finally:
        cloud.delete_quietly(tgt["id"], region=REGION)
