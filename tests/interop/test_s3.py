"""The `s3` store sink against a real S3-backed Glance: the sidecar writes the image into Glance's
bucket (multipart, SigV4) and registers it with POST /v2/images/{id}/locations; upstream Glance's
location_import task (reading the object back when do_secure_hash is on) makes it active.

The S3 region comes from the environment written by scripts/cloud.sh (every variable is required:
without them these tests fail, they do not skip):

  GDS_S3_REGION       the region whose catalog image endpoint is the s3 sidecar
  GDS_S3_IMAGE_URL    that catalog endpoint (a sidecar with store_sink = s3)
  GDS_S3_GLANCE_URL   the region's real Glance (glance_store s3 store)
  GDS_S3_SECURE_HASH  that Glance's [DEFAULT] do_secure_hash: true or false
  GDS_S3_ENDPOINT, GDS_S3_BUCKET, GDS_S3_ACCESS_KEY, GDS_S3_SECRET_KEY, GDS_S3_DATA_DIR
                      the S3 server (scripts/interop/s3server.sh env STATE_DIR)
"""
import os
import time

import pytest
import requests

from conftest import DEFAULT_TIMEOUT, LOG, extra_properties, SYNCED_PROPS

S3_ENV = ("GDS_S3_REGION", "GDS_S3_IMAGE_URL", "GDS_S3_GLANCE_URL", "GDS_S3_SECURE_HASH",
          "GDS_S3_ENDPOINT", "GDS_S3_BUCKET", "GDS_S3_ACCESS_KEY", "GDS_S3_SECRET_KEY",
          "GDS_S3_DATA_DIR")


@pytest.fixture(scope="module")
def s3env():
    missing = [k for k in S3_ENV if not os.environ.get(k)]
    assert not missing, "the S3 region is not configured: %s unset (see scripts/cloud.sh)" % missing
    env = {k: os.environ[k] for k in S3_ENV}
    assert env["GDS_S3_SECURE_HASH"] in ("true", "false"), env["GDS_S3_SECURE_HASH"]
    return env


@pytest.fixture(scope="module")
def bucket(s3env):
    import boto3
    import botocore.config
    client = boto3.client("s3", endpoint_url=s3env["GDS_S3_ENDPOINT"], region_name="us-east-1",
                          aws_access_key_id=s3env["GDS_S3_ACCESS_KEY"],
                          aws_secret_access_key=s3env["GDS_S3_SECRET_KEY"],
                          config=botocore.config.Config(s3={"addressing_style": "path"}))
    return client


def _object_size(bucket, s3env, key):
    import botocore.exceptions
    try:
        return bucket.head_object(Bucket=s3env["GDS_S3_BUCKET"], Key=key)["ContentLength"]
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _open_uploads(bucket, s3env, key):
    """Multipart uploads left open: ListMultipartUploads, or (s3s-fs does not implement it) the
    server's own upload files in its data directory."""
    import botocore.exceptions
    try:
        answer = bucket.list_multipart_uploads(Bucket=s3env["GDS_S3_BUCKET"], Prefix=key)
        return answer.get("Uploads", [])
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "NotImplemented":
            raise
    return sorted(n for n in os.listdir(s3env["GDS_S3_DATA_DIR"]) if n.startswith(".upload"))


class S3Region:
    def __init__(self, cloud, env):
        self.cloud, self.env = cloud, env
        self.name = env["GDS_S3_REGION"]
        self.image_url = env["GDS_S3_IMAGE_URL"].rstrip("/")
        self.glance_url = env["GDS_S3_GLANCE_URL"].rstrip("/")

    def create_target(self, name):
        r = self.cloud.http("POST", self.image_url + "/v2/images",
                            json={"name": name, "disk_format": "raw", "container_format": "bare"})
        assert r.status_code == 201, r.text
        return r.json()

    def image(self, image_id):
        r = requests.get("%s/v2/images/%s" % (self.glance_url, image_id),
                         headers={"X-Auth-Token": self.cloud.token()}, timeout=30)
        r.raise_for_status()
        return r.json()

    def tasks(self, image_id):
        r = requests.get("%s/v2/images/%s/tasks" % (self.image_url, image_id),
                         headers={"X-Auth-Token": self.cloud.token()}, timeout=30)
        r.raise_for_status()
        return r.json()["tasks"]

    def wait_sidecar_task(self, image_id, timeout=DEFAULT_TIMEOUT):
        """The sidecar's glance-download task (beside Glance's location_import task), once ended."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [t for t in self.tasks(image_id)
                    if ((t.get("input") or {}).get("import_req") or {}).get("method", {}).get("name")
                    == "glance-download"]
            if mine and mine[-1]["status"] in ("success", "failure"):
                LOG.info("  task %s %s: %s", mine[-1]["id"], mine[-1]["status"], mine[-1].get("message"))
                return mine[-1]
            assert time.monotonic() < deadline, "no finished glance-download task for %s" % image_id
            time.sleep(0.5)

    def delete_quietly(self, image_id):
        try:
            requests.delete("%s/v2/images/%s" % (self.glance_url, image_id),
                            headers={"X-Auth-Token": self.cloud.token()}, timeout=30)
        except requests.RequestException:
            pass


@pytest.fixture
def region(cloud, s3env):
    r = S3Region(cloud, s3env)
    made = []
    r.made = made
    yield r
    for image_id in made:
        r.delete_quietly(image_id)


def test_glanceclient_import_through_the_s3_sink(cloud, region, bucket, s3env, source_qcow2):
    tgt = region.create_target("gds-s3-glanceclient")
    region.made.append(tgt["id"])
    cloud.glance("image-import", tgt["id"], "--import-method", "glance-download",
                 "--remote-region", "REGION1", "--remote-image-id", source_qcow2.id,
                 region=region.name, image_url=region.image_url)
    task = region.wait_sidecar_task(tgt["id"])
    assert task["status"] == "success", task
    img = region.image(tgt["id"])
    src = source_qcow2.image
    assert img["status"] == "active", img
    assert img["size"] == src["size"]
    assert img["os_hash_algo"] == src["os_hash_algo"]
    assert img["os_hash_value"] == src["os_hash_value"]
    assert img["disk_format"] == src["disk_format"]
    if s3env["GDS_S3_SECURE_HASH"] == "true":
        # Glance read the object back and computed both digests itself.
        assert img["checksum"] == src["checksum"], img
    else:
        # Glance took the validation data as given; the location API carries no MD5.
        assert img["checksum"] is None, img
    props = extra_properties(img)
    for k, v in SYNCED_PROPS.items():
        assert props.get(k) == v, (k, props.get(k))
    assert "os_glance_import_task" not in props
    # The bytes are in Glance's bucket under the image id, complete, with no upload left open.
    assert _object_size(bucket, s3env, tgt["id"]) == src["size"]
    assert _open_uploads(bucket, s3env, tgt["id"]) == []
    # Upstream's own location_import task registered them.
    upstream = [t for t in region.tasks(tgt["id"]) if t.get("type") == "location_import"]
    assert upstream and upstream[-1]["status"] == "success", upstream
    # And the data reads back through the image API as the source file.
    r = requests.get("%s/v2/images/%s/file" % (region.image_url, tgt["id"]),
                     headers={"X-Auth-Token": cloud.token()}, timeout=120)
    assert r.status_code == 200 and len(r.content) == source_qcow2.size
    import hashlib
    assert hashlib.md5(r.content).hexdigest() == source_qcow2.md5


def test_a_flipped_byte_leaves_no_object_and_a_queued_image(cloud, region, bucket, s3env,
                                                            fault_proxy, source_raw):
    from conftest import FAULT_REGION
    from netproxy import Fault
    tgt = region.create_target("gds-s3-flip")
    region.made.append(tgt["id"])
    fault_proxy.set(source_raw.id, Fault("flip", at=source_raw.size - 1000))
    try:
        r = cloud.glance_download(region.image_url, tgt["id"], source_raw.id, region=FAULT_REGION,
                                  token=cloud.token(fresh=True))
        assert r.status_code == 202, r.text
        task = region.wait_sidecar_task(tgt["id"])
    finally:
        fault_proxy.clear(source_raw.id)
    assert task["status"] == "failure", task
    assert "mismatch" in (task.get("message") or ""), task
    img = region.image(tgt["id"])
    assert img["status"] == "queued", img
    assert img["checksum"] is None and img["os_hash_value"] is None
    assert _object_size(bucket, s3env, tgt["id"]) is None, "the aborted upload left an object"
    assert _open_uploads(bucket, s3env, tgt["id"]) == [], "the multipart upload was not aborted"
    assert not [t for t in region.tasks(tgt["id"]) if t.get("type") == "location_import"]


def test_an_existing_object_at_the_key_is_not_overwritten(cloud, region, bucket, s3env, source_raw):
    """The sidecar checks the key is free (HEAD) before it uploads: an object already under the
    image id stays as it was, and the import fails naming it."""
    tgt = region.create_target("gds-s3-existing")
    region.made.append(tgt["id"])
    precious = b"an object the sidecar must not replace"
    bucket.put_object(Bucket=s3env["GDS_S3_BUCKET"], Key=tgt["id"], Body=precious)
    try:
        r = cloud.glance_download(region.image_url, tgt["id"], source_raw.id)
        assert r.status_code == 202, r.text
        task = region.wait_sidecar_task(tgt["id"])
        assert task["status"] == "failure", task
        assert "already exists" in (task.get("message") or ""), task
        body = bucket.get_object(Bucket=s3env["GDS_S3_BUCKET"], Key=tgt["id"])["Body"].read()
        assert body == precious, "the existing object was overwritten"
        assert region.image(tgt["id"])["status"] == "queued"
        assert _open_uploads(bucket, s3env, tgt["id"]) == []
        assert not [t for t in region.tasks(tgt["id"]) if t.get("type") == "location_import"]
    finally:
        bucket.delete_object(Bucket=s3env["GDS_S3_BUCKET"], Key=tgt["id"])


def test_the_s3_server_answers_part_md5_etags_and_refuses_a_conditional_completion(bucket, s3env):
    """What the sidecar relies on from the S3 server, shown with boto3: a part sent with its
    Content-MD5 is accepted and its ETag is that MD5 (the sidecar checks it), and
    CompleteMultipartUpload with If-None-Match: * is refused (412) over an existing object.
    (s3s-fs 0.14 does not itself check a part's Content-MD5; the ETag check covers it there.)"""
    import base64
    import hashlib
    import uuid
    import botocore.exceptions
    name, key = s3env["GDS_S3_BUCKET"], "gds-conditional-%s" % uuid.uuid4()
    part = b"part bytes " * 1000
    md5 = hashlib.md5(part)
    upload = bucket.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
    try:
        answer = bucket.upload_part(Bucket=name, Key=key, UploadId=upload, PartNumber=1, Body=part,
                                    ContentMD5=base64.b64encode(md5.digest()).decode())
        assert answer["ETag"].strip('"') == md5.hexdigest(), answer["ETag"]
        bucket.put_object(Bucket=name, Key=key, Body=b"first")
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            bucket.complete_multipart_upload(
                Bucket=name, Key=key, UploadId=upload, IfNoneMatch="*",
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": answer["ETag"]}]})
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412, refused.value.response
        assert bucket.get_object(Bucket=name, Key=key)["Body"].read() == b"first"
    finally:
        try:
            bucket.abort_multipart_upload(Bucket=name, Key=key, UploadId=upload)
        except botocore.exceptions.ClientError:
            pass
        bucket.delete_object(Bucket=name, Key=key)
