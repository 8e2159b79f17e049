"""Everything that is not a glance-download import behaves through the sidecar (REGION2's catalog
endpoint) exactly as against REGION2's real Glance."""
import os
import uuid

import pytest

from conftest import md5_file, sha512_file

VOLATILE = {"updated_at"}


@pytest.fixture(scope="module")
def uploaded(cloud, tmp_path_factory):
    """An image uploaded through the sidecar with `openstack image create --file`."""
    d = tmp_path_factory.mktemp("passthrough")
    path = d / "upload.raw"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    img = cloud.osc_json("image", "create", "gds-pass-%s" % uuid.uuid4().hex[:6], "--disk-format", "raw",
                         "--container-format", "bare", "--file", str(path), "--property", "gds_pass=1")
    yield img, path
    cloud.delete_quietly(img["id"])


def test_upload_through_sidecar(cloud, uploaded):
    img, path = uploaded
    direct = cloud.wait_image(img["id"])
    assert direct["size"] == os.path.getsize(path)
    assert direct["checksum"] == md5_file(path)
    assert direct["os_hash_value"] == sha512_file(path)


def test_show_same_as_direct(cloud, uploaded):
    img, _ = uploaded
    via = cloud.osc_json("image", "show", img["id"])
    direct = cloud.osc_json("image", "show", img["id"], direct=True)
    assert {k: v for k, v in via.items() if k not in VOLATILE} == \
        {k: v for k, v in direct.items() if k not in VOLATILE}


def test_show_raw_http_same_as_direct(cloud, uploaded):
    img, _ = uploaded
    via = cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_image_url, img["id"]))
    direct = cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_glance, img["id"]))
    assert via.status_code == direct.status_code == 200
    assert via.headers["Content-Type"] == direct.headers["Content-Type"]
    assert via.json() == direct.json()
    assert via.headers.get("x-openstack-request-id", "").startswith("req-")


def test_list_same_as_direct(cloud, uploaded):
    img, _ = uploaded
    via = {i["ID"] for i in cloud.osc_json("image", "list")}
    direct = {i["ID"] for i in cloud.osc_json("image", "list", direct=True)}
    assert img["id"] in via
    assert via == direct


def test_glanceclient_list_and_show(cloud, uploaded):
    img, _ = uploaded
    assert img["id"] in cloud.glance("image-list").stdout
    out = cloud.glance("image-show", img["id"]).stdout
    assert img["id"] in out and "gds_pass" in out


def test_sdk_images_same_as_direct(cloud, uploaded):
    img, _ = uploaded
    via = cloud.sdk().image.get_image(img["id"])
    direct = cloud.sdk(direct=True).image.get_image(img["id"])
    assert via.checksum == direct.checksum and via.hash_value == direct.hash_value
    assert via.properties == direct.properties


def test_download_through_sidecar(cloud, uploaded, tmp_path):
    img, path = uploaded
    out = tmp_path / "saved.raw"
    cloud.osc("image", "save", "--file", str(out), img["id"])
    assert md5_file(out) == md5_file(path)
    out2 = tmp_path / "saved-glance.raw"
    cloud.glance("image-download", "--file", str(out2), img["id"])
    assert md5_file(out2) == md5_file(path)


def test_range_download_same_as_direct(cloud, uploaded):
    img, path = uploaded
    data = path.read_bytes()
    for rng, status in (("bytes=0-9", 206), ("bytes=-10", 206), ("bytes=100-", 206),
                        ("bytes=999999999-", 416), ("bytes=abc", 416), ("bytes=0-1,5-6", 400)):
        via = cloud.http("GET", "%s/v2/images/%s/file" % (cloud.region2_image_url, img["id"]),
                         headers={"Range": rng})
        direct = cloud.http("GET", "%s/v2/images/%s/file" % (cloud.region2_glance, img["id"]),
                            headers={"Range": rng})
        assert via.status_code == direct.status_code == status, (rng, via.status_code, direct.status_code)
        assert via.headers.get("Content-Range") == direct.headers.get("Content-Range"), rng
        assert via.content == direct.content, rng
        if status == 206:
            start, end = via.headers["Content-Range"].split()[1].split("/")[0].split("-")
            assert via.content == data[int(start):int(end) + 1]


def test_update_property_through_sidecar(cloud, uploaded):
    img, _ = uploaded
    cloud.osc("image", "set", "--property", "gds_updated=yes", "--min-ram", "64", img["id"])
    direct = cloud.image_direct(img["id"])
    assert direct["gds_updated"] == "yes" and direct["min_ram"] == 64
    cloud.glance("image-update", "--property", "gds_glanceclient=set", img["id"])
    assert cloud.image_direct(img["id"])["gds_glanceclient"] == "set"
    cloud.osc("image", "unset", "--property", "gds_updated", img["id"])
    assert "gds_updated" not in cloud.image_direct(img["id"])


def test_tags_through_sidecar(cloud, uploaded):
    img, _ = uploaded
    cloud.osc("image", "set", "--tag", "gds-tag-osc", img["id"])
    cloud.glance("image-tag-update", img["id"], "gds-tag-glance")
    tags = set(cloud.image_direct(img["id"])["tags"])
    assert {"gds-tag-osc", "gds-tag-glance"} <= tags
    assert set(cloud.osc_json("image", "show", img["id"])["tags"]) == tags
    cloud.osc("image", "unset", "--tag", "gds-tag-osc", img["id"])
    cloud.glance("image-tag-delete", img["id"], "gds-tag-glance")
    assert not {"gds-tag-osc", "gds-tag-glance"} & set(cloud.image_direct(img["id"])["tags"])


def test_members_through_sidecar(cloud, uploaded):
    img, _ = uploaded
    admin_project = cloud.osc("project", "show", "admin", "-f", "value", "-c", "id", cloud="gds-admin").stdout.strip()
    cloud.osc("image", "set", "--shared", img["id"])
    cloud.osc("image", "add", "project", img["id"], admin_project)
    via = cloud.osc_json("image", "member", "list", img["id"])
    direct = cloud.osc_json("image", "member", "list", img["id"], direct=True)
    assert [m["Member ID"] for m in via] == [m["Member ID"] for m in direct] == [admin_project]
    assert admin_project in cloud.glance("member-list", "--image-id", img["id"]).stdout
    # the member accepts (as admin, through the sidecar)
    cloud.osc("image", "set", "--accept", "--project", "admin", img["id"], cloud="gds-admin")
    status = cloud.osc_json("image", "member", "get", img["id"], admin_project, cloud="gds-admin")
    assert status["status"] == "accepted", status
    cloud.osc("image", "remove", "project", img["id"], admin_project)
    assert cloud.osc_json("image", "member", "list", img["id"]) == []


def test_error_bodies_same_as_direct(cloud):
    missing = "00000000-0000-4000-8000-000000000000"
    for accept in (None, "application/json"):
        h = {"Accept": accept} if accept else {}
        via = cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_image_url, missing), headers=h)
        direct = cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_glance, missing), headers=h)
        assert via.status_code == direct.status_code == 404
        assert via.headers["Content-Type"] == direct.headers["Content-Type"]
        assert via.content == direct.content


def test_web_download_method_forwarded(cloud, target):
    """Other import methods go to upstream untouched: web-download of a URL outside
    [import_filtering_opts] gets upstream's own 400, through the sidecar as directly."""
    body = {"method": {"name": "web-download", "uri": "http://127.0.0.1:9/nothing-here"}}
    answers = []
    for base in (cloud.region2_image_url, cloud.region2_glance):
        img = target()
        r = cloud.http("POST", "%s/v2/images/%s/import" % (base, img["id"]), json=body)
        answers.append((r.status_code, r.headers.get("Content-Type"), r.content))
    assert answers[0] == answers[1]
    assert answers[0][0] == 400 and b"URI for web-download does not pass filtering" in answers[0][2]


def test_copy_image_method_forwarded(cloud, uploaded):
    """copy-image (admin only by default policy) is forwarded: the demo user gets upstream's 403."""
    img, _ = uploaded
    body = {"method": {"name": "copy-image"}, "stores": ["local"]}
    answers = []
    for base in (cloud.region2_image_url, cloud.region2_glance):
        r = cloud.http("POST", "%s/v2/images/%s/import" % (base, img["id"]), json=body)
        answers.append((r.status_code, r.content))
    assert answers[0] == answers[1], answers
    assert answers[0][0] in (403, 409), answers


def test_delete_through_sidecar(cloud, tmp_path):
    path = tmp_path / "del.raw"
    path.write_bytes(os.urandom(65536))
    img = cloud.osc_json("image", "create", "gds-del", "--disk-format", "raw", "--container-format", "bare",
                         "--file", str(path))
    cloud.osc("image", "delete", img["id"])
    r = cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_glance, img["id"]))
    assert r.status_code == 404
    via = cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_image_url, img["id"]))
    assert via.status_code == 404


def test_glanceclient_create_upload_delete(cloud, tmp_path):
    path = tmp_path / "g.raw"
    path.write_bytes(os.urandom(200000))
    out = cloud.glance("image-create", "--name", "gds-glance-upload", "--disk-format", "raw",
                       "--container-format", "bare", "--file", str(path)).stdout
    image_id = next(line.split("|")[2].strip() for line in out.splitlines() if line.startswith("| id "))
    try:
        img = cloud.wait_image(image_id)
        assert img["checksum"] == md5_file(path)
    finally:
        cloud.glance("image-delete", image_id)
    assert cloud.http("GET", "%s/v2/images/%s" % (cloud.region2_glance, image_id)).status_code == 404

