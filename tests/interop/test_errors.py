"""Bad input through the real clients and raw HTTP, against REGION2's catalog endpoint (the sidecar).

Upstream's codes and messages are the reference (research/upstream-glance.md and the captures in
scripts/interop/NOTES.md). Note: `openstack image import` (openstacksdk 4.22 Image.import_image) never
checks the HTTP status of the import POST, so OSC exits 0 on a 400/409: for OSC the status is read from
its --debug log, and the image must be left untouched.
"""
import html
import uuid

import pytest

from conftest import LOG, SIDECAR_NS, SIDECAR_STATUS, extra_properties

UUID_MSG = "Remote image id does not look like a UUID: not-a-uuid"
REGION_MSG = "'glance_region' needs to be set for glance-download import method"
IMAGE_ID_MSG = "'glance_image_id' needs to be set for glance-download import method"
ACTIVE_MSG = "Image with status active cannot be target for import"
NOT_QUEUED_MSG = "Image needs to be in 'queued' state to use 'glance-download' method"
CONTAINER_MSG = "'container_format' needs to be set before import"
DISK_MSG = "'disk_format' needs to be set before import"
BAD_JSON_MSG = "Malformed JSON in request body."


def gd_body(remote_id, region="REGION1", interface="public", **extra):
    method = {"name": "glance-download", "glance_image_id": remote_id, "glance_region": region}
    if interface is not None:
        method["glance_service_interface"] = interface
    return {"method": method, **extra}


def import_url(cloud, image_id):
    return "%s/v2/images/%s/import" % (cloud.region2_image_url, image_id)


def error_text(r):
    """The human message of a Glance error body (HTML by default, JSON when asked for)."""
    if r.headers.get("Content-Type", "").startswith("application/json"):
        return r.json().get("message", "")
    return html.unescape(r.text)


def assert_error(r, status, message):
    assert r.status_code == status, "want %s, got %s: %s" % (status, r.status_code, r.text[:500])
    assert message in error_text(r), "want %r in %r" % (message, r.text[:500])


def import_posts(calls):
    return [c for c in calls if c[0] == "POST" and c[1].endswith("/import")]


@pytest.fixture
def queued(target):
    return target(properties={"hw_keep": "mine", "plain_keep": "also-mine"})


# --------------------------------------------------------------------------- malformed remote id
def test_malformed_remote_id_raw_http(cloud, queued):
    r = cloud.http("POST", import_url(cloud, queued["id"]), json=gd_body("not-a-uuid"))
    assert_error(r, 400, UUID_MSG)
    assert r.headers["Content-Type"].startswith("text/html"), r.headers


def test_malformed_remote_id_raw_http_json_errors(cloud, queued):
    r = cloud.http("POST", import_url(cloud, queued["id"]), json=gd_body("not-a-uuid"),
                   headers={"Accept": "application/json"})
    assert_error(r, 400, UUID_MSG)
    body = r.json()
    assert body["code"] == "400 Bad Request" and body["title"] == "Bad Request", body


def test_malformed_remote_id_glanceclient(cloud, queued):
    res = cloud.glance("image-import", queued["id"], "--import-method", "glance-download",
                       "--remote-region", "REGION1", "--remote-image-id", "not-a-uuid", check=False)
    assert res.returncode != 0
    assert "HTTP 400 Bad Request" in res.stderr + res.stdout
    assert UUID_MSG in res.stderr + res.stdout
    assert cloud.image_direct(queued["id"])["status"] == "queued"


def test_malformed_remote_id_osc(cloud, queued):
    res, calls = cloud.osc_debug("image", "import", queued["id"], "--method", "glance-download",
                                 "--remote-region", "REGION1", "--remote-image", "not-a-uuid",
                                 "--remote-service-interface", "public", check=False)
    posts = import_posts(calls)
    assert posts and posts[-1][2] == 400, calls
    img = cloud.image_direct(queued["id"])
    assert img["status"] == "queued" and "os_glance_import_task" not in img


def test_malformed_remote_id_sdk(cloud, queued):
    conn = cloud.sdk()
    image = conn.image.get_image(queued["id"])
    LOG.info("conn.image.import_image(%s, method='glance-download', remote_image_id='not-a-uuid', ...)", image.id)
    resp = conn.image.import_image(image, method="glance-download", remote_region="REGION1",
                                   remote_image_id="not-a-uuid", remote_service_interface="public")
    # openstacksdk returns the raw response without raising
    assert resp.status_code == 400, (resp.status_code, resp.text[:300])
    assert UUID_MSG in html.unescape(resp.text)


# --------------------------------------------------------------------------- missing keys
def test_missing_glance_region_raw_http(cloud, queued, source_raw):
    body = {"method": {"name": "glance-download", "glance_image_id": source_raw.id}}
    assert_error(cloud.http("POST", import_url(cloud, queued["id"]), json=body), 400, REGION_MSG)


def test_missing_glance_region_json_errors(cloud, queued, source_raw):
    body = {"method": {"name": "glance-download", "glance_image_id": source_raw.id}}
    r = cloud.http("POST", import_url(cloud, queued["id"]), json=body, headers={"Accept": "application/json"})
    assert_error(r, 400, REGION_MSG)
    assert r.headers["Content-Type"].startswith("application/json")


def test_missing_glance_image_id_raw_http(cloud, queued):
    body = {"method": {"name": "glance-download", "glance_region": "REGION1"}}
    assert_error(cloud.http("POST", import_url(cloud, queued["id"]), json=body), 400, IMAGE_ID_MSG)


def test_osc_without_remote_service_interface_sends_no_region(cloud, queued, source_raw):
    """openstacksdk bug: glance_region/glance_image_id are only sent with an interface, so OSC
    without --remote-service-interface gets upstream's 400 for the missing glance_region."""
    res, calls = cloud.osc_debug("image", "import", queued["id"], "--method", "glance-download",
                                 "--remote-region", "REGION1", "--remote-image", source_raw.id, check=False)
    posts = import_posts(calls)
    assert posts and posts[-1][2] == 400, calls
    assert cloud.image_direct(queued["id"])["status"] == "queued"


def test_bad_json_raw_http(cloud, queued):
    r = cloud.http("POST", import_url(cloud, queued["id"]), data=b'{"method": {',
                   headers={"Content-Type": "application/json"})
    assert_error(r, 400, BAD_JSON_MSG)


def test_bad_json_raw_http_json_errors(cloud, queued):
    r = cloud.http("POST", import_url(cloud, queued["id"]), data=b'{"method": {',
                   headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert_error(r, 400, BAD_JSON_MSG)


@pytest.mark.parametrize("body,message", [
    (b"", "Body expected in request."),
    (b"{}", "Import request requires a 'method' field."),
    (b'{"method": {}}', "Import request requires a 'name' field."),
    (b'{"method": {"name": "nope"}}', "Unknown import method name 'nope'."),
    (b'{"method": {"name": "glance-download", "glance_region": "REGION1", '
     b'"glance_image_id": "0f9a50f6-f4d1-4583-96b6-3c0ee68dc8fe"}, "all_stores": 1}',
     "'all_stores' must be boolean value only"),
    (b'{"method": {"name": "glance-download", "glance_region": "REGION1", '
     b'"glance_image_id": "0f9a50f6-f4d1-4583-96b6-3c0ee68dc8fe"}, "all_stores_must_succeed": "no"}',
     "'all_stores_must_succeed' must be boolean value only"),
], ids=["empty", "no-method", "no-name", "unknown-method", "all_stores-int", "must_succeed-str"])
def test_body_shape_errors_raw_http(cloud, queued, body, message):
    r = cloud.http("POST", import_url(cloud, queued["id"]), data=body,
                   headers={"Content-Type": "application/json"})
    assert_error(r, 400, message)


# --------------------------------------------------------------------------- target state
def _active_image(cloud, workdir, target):
    img = target()
    path = workdir / ("active-%s.raw" % img["id"])
    path.write_bytes(b"\0" * 65536)
    r = cloud.http("PUT", "%s/v2/images/%s/file" % (cloud.region2_glance, img["id"]), data=path.read_bytes(),
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert cloud.image_direct(img["id"])["status"] == "active"
    return img


def test_active_target_raw_http(cloud, target, workdir, source_raw):
    img = _active_image(cloud, workdir, target)
    assert_error(cloud.http("POST", import_url(cloud, img["id"]), json=gd_body(source_raw.id)), 409, ACTIVE_MSG)


def test_active_target_glanceclient(cloud, target, workdir, source_raw):
    img = _active_image(cloud, workdir, target)
    res = cloud.glance("image-import", img["id"], "--import-method", "glance-download",
                       "--remote-region", "REGION1", "--remote-image-id", source_raw.id, check=False)
    assert res.returncode != 0
    assert "409" in res.stderr + res.stdout and ACTIVE_MSG in res.stderr + res.stdout, res.stderr


def test_active_target_osc(cloud, target, workdir, source_raw):
    img = _active_image(cloud, workdir, target)
    res, calls = cloud.osc_debug("image", "import", img["id"], "--method", "glance-download",
                                 "--remote-region", "REGION1", "--remote-image", source_raw.id,
                                 "--remote-service-interface", "public", check=False)
    posts = import_posts(calls)
    assert posts and posts[-1][2] == 409, calls
    after = cloud.image_direct(img["id"])
    assert after["status"] == "active" and after["checksum"] != source_raw.image["checksum"]


def test_staged_target_not_queued_409(cloud, target, source_raw):
    img = target()
    r = cloud.http("PUT", "%s/v2/images/%s/stage" % (cloud.region2_image_url, img["id"]), data=b"\0" * 4096,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert cloud.image_direct(img["id"])["status"] == "uploading"
    assert_error(cloud.http("POST", import_url(cloud, img["id"]), json=gd_body(source_raw.id)), 409, NOT_QUEUED_MSG)


def test_formats_unset_409(cloud, source_raw):
    r = cloud.http("POST", cloud.region2_image_url + "/v2/images", json={"name": "gds-noformats"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    try:
        assert_error(cloud.http("POST", import_url(cloud, image_id), json=gd_body(source_raw.id)), 409, CONTAINER_MSG)
        # formats are checked before the glance-download keys
        assert_error(cloud.http("POST", import_url(cloud, image_id), json={"method": {"name": "glance-download"}}),
                     409, CONTAINER_MSG)
        p = cloud.http("PATCH", "%s/v2/images/%s" % (cloud.region2_image_url, image_id),
                       json=[{"op": "add", "path": "/container_format", "value": "bare"}],
                       headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        assert p.status_code == 200, p.text
        assert_error(cloud.http("POST", import_url(cloud, image_id), json=gd_body(source_raw.id)), 409, DISK_MSG)
    finally:
        cloud.delete_quietly(image_id)


def test_missing_target_404(cloud, source_raw):
    r = cloud.http("POST", import_url(cloud, "00000000-0000-4000-8000-000000000000"), json=gd_body(source_raw.id))
    assert_error(r, 404, "No image found with ID 00000000-0000-4000-8000-000000000000")


# --------------------------------------------------------------------------- tokens
def test_no_token_401(cloud, queued, source_raw):
    r = cloud.http("POST", import_url(cloud, queued["id"]), token=False, json=gd_body(source_raw.id))
    assert r.status_code == 401, r.text
    assert "Keystone uri=" in r.headers.get("WWW-Authenticate", "")


def test_invalid_token_401_raw_http(cloud, queued, source_raw):
    r = cloud.http("POST", import_url(cloud, queued["id"]), token="gAAAAABinvalid-token", json=gd_body(source_raw.id))
    assert r.status_code == 401, r.text
    assert cloud.image_direct(queued["id"])["status"] == "queued"


def test_invalid_token_401_glanceclient(cloud, queued, source_raw):
    res = cloud.glance("image-import", queued["id"], "--import-method", "glance-download",
                       "--remote-region", "REGION1", "--remote-image-id", source_raw.id,
                       image_url=cloud.region2_image_url, extra=("--os-auth-token", "gAAAAABinvalid-token"),
                       check=False)
    assert res.returncode != 0
    assert "Invalid OpenStack Identity credentials" in res.stderr + res.stdout or "401" in res.stderr + res.stdout
    assert cloud.image_direct(queued["id"])["status"] == "queued"


# --------------------------------------------------------------------------- failures after the 202
def _snapshot(img):
    props = extra_properties(img)
    return {
        "status": img["status"],
        "disk_format": img["disk_format"],
        "container_format": img["container_format"],
        "size": img["size"],
        "checksum": img["checksum"],
        "props": {k: v for k, v in props.items() if not k.startswith(("os_glance", SIDECAR_NS))},
    }


@pytest.mark.parametrize("case", ["unknown-region", "bad-interface", "missing-remote-image",
                                  "remote-image-not-active"])
def test_async_failure_reverts_target(cloud, queued, source_qcow2, case):
    if case == "unknown-region":
        region, interface, remote = "REGION9", "public", source_qcow2.id
    elif case == "bad-interface":
        region, interface, remote = "REGION1", "bogus", source_qcow2.id
    elif case == "missing-remote-image":
        region, interface, remote = "REGION1", "public", str(uuid.uuid4())
    else:
        src = cloud.osc_json("image", "create", "gds-src-queued-%s" % uuid.uuid4().hex[:6], "--disk-format", "raw",
                             "--container-format", "bare", region="REGION1")
        region, interface, remote = "REGION1", "public", src["id"]
    before = _snapshot(cloud.image_direct(queued["id"]))
    try:
        res, calls = cloud.osc_debug("image", "import", queued["id"], "--method", "glance-download",
                                     "--remote-region", region, "--remote-image", remote,
                                     "--remote-service-interface", interface)
        posts = import_posts(calls)
        assert posts and posts[-1][2] == 202, calls
        task, _ = cloud.wait_task_done(queued["id"])
        assert task["status"] == "failure", task
        assert task["message"], "a failed task must say why"
        LOG.info("failure message (%s): %s", case, task["message"])
        after_img = cloud.wait_image(queued["id"], statuses=("queued",), timeout=30)
        assert "os_glance_import_task" not in after_img, "import lock left behind"
        assert _snapshot(after_img) == before
        # the sidecar's own summary on the image (if any) agrees with the task
        assert after_img.get(SIDECAR_STATUS, "failure") == "failure", after_img
    finally:
        if case == "remote-image-not-active":
            cloud.delete_quietly(remote, region="REGION1")


def test_failed_target_can_be_imported_again(cloud, queued, source_raw):
    cloud.osc("image", "import", queued["id"], "--method", "glance-download", "--remote-region", "REGION9",
              "--remote-image", source_raw.id, "--remote-service-interface", "public")
    task, _ = cloud.wait_task_done(queued["id"])
    assert task["status"] == "failure"
    cloud.wait_image(queued["id"], statuses=("queued",), timeout=30)
    cloud.osc("image", "import", queued["id"], "--method", "glance-download", "--remote-region", "REGION1",
              "--remote-image", source_raw.id, "--remote-service-interface", "public")
    task, tasks = cloud.wait_task_done(queued["id"], min_tasks=2)
    assert task["status"] == "success", tasks
    img = cloud.wait_image(queued["id"])
    assert img["checksum"] == source_raw.image["checksum"]
