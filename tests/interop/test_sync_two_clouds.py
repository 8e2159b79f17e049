"""`sync --from-cloud gds-demo --to-cloud gds-cloud2`: images of the first cloud's REGION1 copied
into the second cloud (its own Keystone, users and Glance, scripts/cloud.sh), each cloud signed in
to with its own credentials from clouds.yaml. The bytes stream through `sync` (no glance-download
across clouds); the copies are checked with the second cloud's own credentials and openstacksdk.
"""
import hashlib
import json
import os
import uuid

import pytest

from conftest import LOG, NOT_SYNCED_PROPS, run, SYNC_SOURCE_ID, SYNCED_PROPS

SOURCE_CLOUD = "glance_download_source_cloud"


@pytest.fixture(scope="module")
def cloud2(cloud):
    """The second cloud's demo user through openstacksdk, and its region's name."""
    if not cloud.sidecar_bin:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    import openstack
    region = os.environ["GDS_CLOUD2_REGION"]
    conn = openstack.connect(cloud=os.environ["GDS_CLOUD2"], region_name=region)
    return conn, region


@pytest.fixture
def sources(cloud, workdir, cloud2):
    """Two small raw images of the first cloud's REGION1 with synced and other properties; they
    and their copies in the second cloud go afterwards."""
    images = []
    for i in range(2):
        name = "gds-2c-%s-%d" % (uuid.uuid4().hex[:8], i)
        path = workdir / (name + ".raw")
        with open(path, "wb") as f:
            f.write(os.urandom((320 + 64 * i) << 10))
        args = ["image", "create", name, "--disk-format", "raw", "--container-format", "bare",
                "--file", str(path)]
        for k, v in {**SYNCED_PROPS, **NOT_SYNCED_PROPS}.items():
            args += ["--property", "%s=%s" % (k, v)]
        img = cloud.osc_json(*args, region="REGION1")
        images.append((cloud.wait_image(img["id"], region="REGION1"), path))
    yield images
    conn, _ = cloud2
    for img, path in images:
        for copy in _copies(conn, img["id"]):
            conn.image.delete_image(copy["id"], ignore_missing=True)
        cloud.delete_quietly(img["id"], region="REGION1")
        path.unlink()


def _copies(conn, source_id):
    """The second cloud's images that are copies of `source_id`, seen by its demo user."""
    return [dict(i) for i in conn.image.images(**{SYNC_SOURCE_ID: source_id})]


def _sync(cloud, *args, env=None, check=True):
    result = run([cloud.sidecar_bin, "sync", *args], env=env or cloud.env, check=check, timeout=600)
    LOG.info("sync stderr:\n%s", result.stderr[-3000:])
    return result


def _two_clouds(region2):
    return ["--from-cloud", "gds-demo", "--to-cloud", os.environ["GDS_CLOUD2"],
            "--from", "REGION1", "--to", region2]


def test_sync_copies_into_a_second_cloud_with_its_own_keystone(cloud, cloud2, sources):
    conn, region2 = cloud2
    (first, first_path), (second, _) = sources
    report = json.loads(_sync(cloud, *_two_clouds(region2), first["id"], "--json").stdout)
    t = report["totals"]
    assert (t["copied"], t["failed"]) == (1, 0), report
    assert report["results"][0]["method"] == "stream", report

    copies = _copies(conn, first["id"])
    assert len(copies) == 1, copies
    copy = conn.image.get_image(copies[0]["id"])
    assert copy.status == "active"
    for key in ("size", "checksum", "os_hash_algo", "os_hash_value", "disk_format",
                "container_format", "name"):
        assert copy[key] == first[key], key
    assert copy.owner == conn.current_project_id, "owned by the second cloud's demo project"
    # The image as Glance sends it (openstacksdk moves known properties to attributes).
    props = conn.image.get("/images/%s" % copy.id).json()
    for k, v in SYNCED_PROPS.items():
        assert props.get(k) == v, (k, props)
    for k in NOT_SYNCED_PROPS:
        assert k not in props, (k, props)
    assert props.get(SOURCE_CLOUD) == "gds-demo", props
    assert props.get("glance_download_source_region") == "REGION1", props
    data = conn.image.download_image(copy).content
    assert hashlib.sha512(data).hexdigest() == hashlib.sha512(first_path.read_bytes()).hexdigest()

    # Again: the copy is found in the second cloud and skipped. With --keep-id, the second image
    # keeps its id there.
    again = json.loads(_sync(cloud, *_two_clouds(region2), first["id"], "--json").stdout)
    assert again["totals"]["skipped"] == 1, again
    kept = json.loads(_sync(cloud, *_two_clouds(region2), "--keep-id", second["id"], "--json").stdout)
    assert kept["totals"]["copied"] == 1, kept
    copy = conn.image.get("/images/%s" % second["id"]).json()
    assert (copy["status"], copy["checksum"], copy["os_hash_value"]) == (
        "active", second["checksum"], second["os_hash_value"])


def test_the_first_clouds_credentials_mean_nothing_in_the_second(cloud, cloud2, sources, tmp_path):
    _, region2 = cloud2
    (first, _), _ = sources
    # The first cloud's token: refused by the second cloud's Glance.
    r = cloud.http("GET", "%s/v2/images" % os.environ["GDS_CLOUD2_GLANCE_URL"])
    assert r.status_code == 401, r.status_code

    # The first cloud's demo password against the second cloud's Keystone (same user name).
    clouds = tmp_path / "clouds.yaml"
    entry = ("  %s:\n    auth:\n      auth_url: %s\n      username: demo\n      password: %s\n"
             "      project_name: demo\n      user_domain_name: Default\n"
             "      project_domain_name: Default\n")
    clouds.write_text("clouds:\n" + entry % ("one", cloud.keystone_url, cloud.demo_password)
                      + entry % ("two-wrong", os.environ["GDS_CLOUD2_AUTH_URL"], cloud.demo_password))
    env = {k: v for k, v in cloud.env.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    args = ["--from", "REGION1", "--to", region2, first["id"]]
    bad = _sync(cloud, "--from-cloud", "one", "--to-cloud", "two-wrong", *args, env=env, check=False)
    assert bad.returncode == 1, bad.stderr
    assert "refused the credentials of" in bad.stderr, bad.stderr
    assert os.environ["GDS_CLOUD2_AUTH_URL"] in bad.stderr, bad.stderr
    assert cloud.demo_password not in bad.stderr + bad.stdout

    # A cloud that clouds.yaml does not define: exit 64 naming it, nothing copied.
    missing = _sync(cloud, "--from-cloud", "one", "--to-cloud", "nowhere", *args, env=env,
                    check=False)
    assert missing.returncode == 64, missing.stderr
    assert '"nowhere" is not defined' in missing.stderr, missing.stderr
