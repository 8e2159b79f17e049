"""`glance-download-sidecar sync` against the real cloud: five images from REGION1 to REGION2 (a
sidecar in front: copied by glance-download) and REGION3 (a plain Glance without glance-download:
sync streams the bytes itself), signed in through clouds.yaml like the openstack client.
"""
import json
import os
import uuid

import pytest

from conftest import extra_properties, LOG, run, sync_copies, SYNCED_PROPS

SYNC_SOURCE_REGION = "glance_download_source_region"


@pytest.fixture(scope="module")
def sync_images(cloud, workdir):
    """Five small raw images with synced properties in REGION1, named gds-sync-<run>-<i>."""
    run_id = uuid.uuid4().hex[:8]
    images = []
    for i in range(5):
        path = workdir / ("sync-%s-%d.raw" % (run_id, i))
        with open(path, "wb") as f:
            f.write(os.urandom((256 << 10) * (i + 1)))
        args = ["image", "create", "gds-sync-%s-%d" % (run_id, i), "--disk-format", "raw",
                "--container-format", "bare", "--file", str(path)]
        for k, v in SYNCED_PROPS.items():
            args += ["--property", "%s=%s" % (k, v)]
        images.append(cloud.osc_json(*args, region="REGION1"))
    images = [cloud.wait_image(img["id"], region="REGION1") for img in images]
    yield run_id, images
    for img in images:
        cloud.delete_quietly(img["id"], region="REGION1")


def _sync(cloud, *args, check=True):
    if not cloud.sidecar_bin:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    env = dict(cloud.env, OS_CLOUD="gds-demo")
    result = run([cloud.sidecar_bin, "sync", *args], env=env, check=check, timeout=600)
    LOG.info("sync stderr:\n%s", result.stderr[-3000:])
    return result



def test_sync_five_images_to_two_regions_then_skips_them(cloud, sync_images):
    run_id, images = sync_images
    pattern = "gds-sync-%s-*" % run_id

    dry = json.loads(_sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", "--name", pattern,
                           "--dry-run", "--json").stdout)
    assert dry["totals"]["would_copy"] == 10, dry["totals"]
    for img in images:
        assert sync_copies(cloud, "REGION2", img["id"]) == [], "dry run changed REGION2"

    first = json.loads(_sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", "--name", pattern,
                             "--concurrency", "3", "--json").stdout)
    t = first["totals"]
    assert (t["copied"], t["skipped"], t["failed"]) == (10, 0, 0), first
    assert t["bytes"] == 2 * sum(img["size"] for img in images)
    methods = {(r["region"], r["method"]) for r in first["results"]}
    assert methods == {("REGION2", "glance-download"), ("REGION3", "stream")}, methods

    for img in images:
        for region in ("REGION2", "REGION3"):
            copies = sync_copies(cloud, region, img["id"])
            assert len(copies) == 1, (region, copies)
            c = copies[0]
            assert c["status"] == "active", c
            assert c["name"] == img["name"]
            assert c["visibility"] == img["visibility"]
            assert (c["size"], c["checksum"], c["os_hash_value"]) == \
                (img["size"], img["checksum"], img["os_hash_value"]), (region, c)
            assert c[SYNC_SOURCE_REGION] == "REGION1"
            props = extra_properties(c)
            for k, v in SYNCED_PROPS.items():
                assert props.get(k) == v, (region, k, props)

    second = json.loads(_sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", "--name", pattern,
                              "--json").stdout)
    assert (second["totals"]["copied"], second["totals"]["skipped"], second["totals"]["failed"]) == \
        (0, 10, 0), second["totals"]

    for img in images:
        for region in ("REGION2", "REGION3"):
            for c in sync_copies(cloud, region, img["id"]):
                cloud.delete_quietly(c["id"], region=region)


def test_sync_exits_non_zero_when_an_image_fails(cloud, sync_images):
    """REGION9 is not in the catalog: the run reports the failure and exits non-zero."""
    run_id, images = sync_images
    result = _sync(cloud, "--from", "REGION1", "--to", "REGION9", "--json", images[0]["id"], check=False)
    assert result.returncode != 0
    assert "REGION9" in result.stdout + result.stderr
