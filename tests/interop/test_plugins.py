"""The target Glance's import plugins: REGION4 runs image_conversion (to raw) and
inject_image_metadata; its catalog endpoint is a sidecar with store_sink = glance-stage and the same
injection mirrored in its own config.

- glance-stage (the sidecar's default there): the copy ends exactly as upstream's own
  glance-download leaves it in the same region: raw, converted bytes, injected properties.
- glance-upload (chosen per request): the bytes are the source's (still qcow2: no conversion, which
  the README states), and the mirrored injection gives the same properties.
"""
import pytest
import requests

from conftest import LOG, SYNCED_PROPS, assert_imported_like, extra_properties, import_method

SINK_HEADER = "X-Glance-Download-Sink"
REGION = "REGION4"


@pytest.fixture
def region4_target(cloud):
    made = []

    def make(name, url=None):
        url = url or cloud.region4_image_url
        r = cloud.http("POST", url + "/v2/images", json={
            "name": name, "disk_format": "qcow2", "container_format": "bare"})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        return r.json()

    yield make
    for image_id in made:
        cloud.delete_quietly(image_id, region=REGION)


def _import_and_wait(cloud, url, image_id, src, headers=None):
    r = cloud.glance_download(url, image_id, src.id, headers=headers)
    assert r.status_code == 202, r.text
    task, _ = cloud.wait_task_done(image_id, url=url, timeout=300)
    img = cloud.wait_image(image_id, region=REGION, timeout=300)
    return task, img


def _assert_injected(cloud, img):
    props = extra_properties(img)
    assert cloud.inject_properties, "GDS_INJECT_PROPERTIES missing from the cloud's environment"
    for k, v in cloud.inject_properties.items():
        assert props.get(k) == v, "injected %s: %r (want %r)" % (k, props.get(k), v)
    for k, v in SYNCED_PROPS.items():
        assert props.get(k) == v, "synced %s: %r" % (k, props.get(k))


def test_glance_stage_copy_equals_upstreams_glance_download(cloud, sidecar_present, region4_target,
                                                           source_qcow2):
    if not sidecar_present:
        pytest.skip("no sidecar in front of REGION4 (cloud.sh up --no-sidecar)")
    via_sidecar = region4_target("gds-plugins-sidecar")
    via_upstream = region4_target("gds-plugins-upstream", url=cloud.glance_urls[REGION])

    task, mine = _import_and_wait(cloud, cloud.region4_image_url, via_sidecar["id"], source_qcow2)
    assert task["status"] == "success", task
    utask, theirs = _import_and_wait(cloud, cloud.glance_urls[REGION], via_upstream["id"], source_qcow2)
    assert utask["status"] == "success", utask
    LOG.info("sidecar copy: %s", {k: mine.get(k) for k in ("disk_format", "size", "checksum")})
    LOG.info("upstream copy: %s", {k: theirs.get(k) for k in ("disk_format", "size", "checksum")})

    # converted to raw by the target's own plugin, exactly as upstream's import converts it
    assert mine["disk_format"] == theirs["disk_format"] == "raw"
    for key in ("size", "checksum", "os_hash_algo", "os_hash_value", "container_format",
                "virtual_size"):
        assert mine.get(key) == theirs.get(key), (key, mine.get(key), theirs.get(key))
    assert mine["checksum"] != source_qcow2.image["checksum"], "not converted"
    assert mine["size"] == 12 << 20, "the raw conversion of the 12 MiB qcow2 source"
    _assert_injected(cloud, mine)
    _assert_injected(cloud, theirs)
    sidecar_props = {k: v for k, v in extra_properties(mine).items()
                     if not k.startswith(("glance_download_", "os_glance"))}
    upstream_props = {k: v for k, v in extra_properties(theirs).items() if not k.startswith("os_glance")}
    assert sidecar_props == upstream_props


def test_glance_upload_keeps_the_source_bytes_and_mirrors_injection(cloud, sidecar_present,
                                                                    region4_target, source_qcow2):
    if not sidecar_present:
        pytest.skip("no sidecar in front of REGION4 (cloud.sh up --no-sidecar)")
    tgt = region4_target("gds-plugins-upload")
    task, img = _import_and_wait(cloud, cloud.region4_image_url, tgt["id"], source_qcow2,
                                 headers={SINK_HEADER: "glance-upload"})
    assert task["status"] == "success", task
    # no conversion on this path: the source's qcow2 bytes, verified
    assert_imported_like(img, source_qcow2)
    _assert_injected(cloud, img)


def test_stage_sink_task_reports_the_target_import(cloud, sidecar_present, region4_target, source_qcow2):
    """The sidecar's task follows Glance's glance-direct task to its end and says which sink ran."""
    if not sidecar_present:
        pytest.skip("no sidecar in front of REGION4 (cloud.sh up --no-sidecar)")
    tgt = region4_target("gds-plugins-task")
    task, img = _import_and_wait(cloud, cloud.region4_image_url, tgt["id"], source_qcow2)
    assert task["status"] == "success", task
    upstream = requests.get("%s/v2/images/%s/tasks" % (cloud.glance_urls[REGION], tgt["id"]),
                            headers={"X-Auth-Token": cloud.token()}, timeout=30).json()["tasks"]
    direct = [t for t in upstream if import_method(t) == "glance-direct"]
    assert direct and direct[0]["status"] == "success", upstream
    assert img["disk_format"] == "raw"
