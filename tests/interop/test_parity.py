"""Parity: the same source imported into REGION2 by upstream Glance's own glance-download (REGION2's
real Glance, reached with --os-endpoint-override / --os-image-url) and through the sidecar (REGION2's
catalog endpoint) gives the same image."""
import pytest

from conftest import LOG, SIDECAR_NS, assert_imported_like, extra_properties, synced_subset

pytestmark = pytest.mark.upstream

# properties set by the clients or by the import machinery, allowed to differ between the two
# paths: owner_specified.* carry the image name; os_glance_* are upstream's import bookkeeping;
# glance_download_* are the sidecar's (by design, DESIGN.md section 3)
IGNORED_PREFIXES = ("owner_specified.", "os_glance_", SIDECAR_NS)


def _comparable(img):
    props = {k: v for k, v in extra_properties(img).items() if not k.startswith(IGNORED_PREFIXES)}
    return {
        "status": img["status"],
        "disk_format": img["disk_format"],
        "container_format": img["container_format"],
        "size": img["size"],
        "virtual_size": img["virtual_size"],
        "checksum": img["checksum"],
        "os_hash_algo": img["os_hash_algo"],
        "os_hash_value": img["os_hash_value"],
        "synced": synced_subset(props),
        "props": props,
    }


def _upstream_flags(cloud):
    # OSC always sends all_stores_must_succeed (false by default); upstream Glance without
    # enabled_backends answers 400 "All_stores_must_succeed can only be set with enabled_backends
    # None" (and OSC exits 0 anyway), so the upstream leg needs --disallow-failure there.
    return ["--disallow-failure"] if cloud.store_mode == "single" else []


def _upstream_import_osc(cloud, target_id, src_id):
    cloud.osc("image", "import", target_id, "--method", "glance-download", "--remote-region", "REGION1",
              "--remote-image", src_id, "--remote-service-interface", "public", *_upstream_flags(cloud),
              direct=True)


def _sidecar_import_osc(cloud, target_id, src_id):
    cloud.osc("image", "import", target_id, "--method", "glance-download", "--remote-region", "REGION1",
              "--remote-image", src_id, "--remote-service-interface", "public")


def test_direct_cloud_bypasses_the_catalog_endpoint(cloud):
    """Guard for this file: the upstream leg really talks to REGION2's real Glance."""
    glance_port = int(cloud.region2_glance.rsplit(":", 1)[1])
    catalog_port = int(cloud.region2_image_url.rsplit(":", 1)[1])
    _, calls = cloud.osc_debug("image", "list", direct=True)
    image_calls = [c for c in calls if c[1].startswith("/v2/")]
    assert image_calls and all(c[3] == glance_port for c in image_calls), calls
    _, calls = cloud.osc_debug("image", "list")
    image_calls = [c for c in calls if c[1].startswith("/v2/")]
    assert image_calls and all(c[3] == catalog_port for c in image_calls), calls
    assert cloud.sdk(direct=True).image.get_endpoint().startswith(cloud.region2_glance)


@pytest.mark.parametrize("kind", ["qcow2", "raw"])
def test_parity_osc(cloud, request, kind):
    src = request.getfixturevalue("source_" + kind)
    up = cloud.create_target("gds-parity-upstream-%s" % kind, direct=True)
    sc = cloud.create_target("gds-parity-sidecar-%s" % kind)
    try:
        _upstream_import_osc(cloud, up["id"], src.id)
        _sidecar_import_osc(cloud, sc["id"], src.id)
        a = cloud.wait_image(up["id"])
        b = cloud.wait_image(sc["id"])
        assert_imported_like(a, src)  # upstream itself meets the bar (validates the suite)
        assert_imported_like(b, src)
        ca, cb = _comparable(a), _comparable(b)
        if ca != cb:
            LOG.info("upstream: %s", ca)
            LOG.info("sidecar:  %s", cb)
        assert ca == cb
        extra_a = {k: v for k, v in extra_properties(a).items() if k.startswith(IGNORED_PREFIXES[1:])}
        extra_b = {k: v for k, v in extra_properties(b).items() if k.startswith(IGNORED_PREFIXES[1:])}
        LOG.info("bookkeeping properties after import: upstream %s, sidecar %s", extra_a, extra_b)
    finally:
        cloud.delete_quietly(up["id"])
        cloud.delete_quietly(sc["id"])


def test_parity_glanceclient(cloud, source_qcow2):
    up = cloud.create_target("gds-parity-upstream-glance", direct=True)
    sc = cloud.create_target("gds-parity-sidecar-glance")
    try:
        cloud.glance("image-import", up["id"], "--import-method", "glance-download", "--remote-region", "REGION1",
                     "--remote-image-id", source_qcow2.id, image_url=cloud.region2_glance)
        cloud.glance("image-import", sc["id"], "--import-method", "glance-download", "--remote-region", "REGION1",
                     "--remote-image-id", source_qcow2.id)
        a, b = cloud.wait_image(up["id"]), cloud.wait_image(sc["id"])
        assert _comparable(a) == _comparable(b)
    finally:
        cloud.delete_quietly(up["id"])
        cloud.delete_quietly(sc["id"])


def test_parity_failure_unknown_region(cloud, source_raw):
    """Both paths: 202, task failure, image back to queued with its properties."""
    props = {"hw_keep": "mine"}
    up = cloud.create_target("gds-parity-fail-upstream", properties=props, direct=True)
    sc = cloud.create_target("gds-parity-fail-sidecar", properties=props)
    try:
        for img, direct in ((up, True), (sc, False)):
            cloud.osc("image", "import", img["id"], "--method", "glance-download", "--remote-region", "REGION9",
                      "--remote-image", source_raw.id, "--remote-service-interface", "public",
                      *(_upstream_flags(cloud) if direct else []), direct=direct)
        tu, _ = cloud.wait_task_done(up["id"], url=cloud.region2_glance)
        ts, _ = cloud.wait_task_done(sc["id"])
        assert tu["status"] == ts["status"] == "failure"
        LOG.info("failure messages: upstream %r, sidecar %r", tu["message"], ts["message"])
        a = cloud.wait_image(up["id"], statuses=("queued",), timeout=30)
        b = cloud.wait_image(sc["id"], statuses=("queued",), timeout=30)
        ca, cb = _comparable(a), _comparable(b)
        assert ca == cb
        assert ca["props"]["hw_keep"] == "mine"
    finally:
        cloud.delete_quietly(up["id"])
        cloud.delete_quietly(sc["id"])
