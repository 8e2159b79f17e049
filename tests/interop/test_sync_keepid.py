"""`sync --keep-id`, `--prune` / `--prune=hide` and the image signature properties against the
real cloud: copies from REGION1 to REGION2 (a sidecar in front: glance-download) and REGION3 (a
plain Glance: sync streams), signed in through clouds.yaml.
"""
import json
import os
import uuid

import pytest

from conftest import LOG, run, sync_copies, SYNC_SOURCE_ID

SIGNATURE = {
    "img_signature": "c2lnbmF0dXJlIG9mIHRoZSBieXRlcw==",
    "img_signature_hash_method": "SHA-256",
    "img_signature_key_type": "RSA-PSS",
    "img_signature_certificate_uuid": "8c3e6c45-3b4f-4b0f-9f38-7a3c2a7e1d11",
}


def _sync(cloud, *args):
    if not cloud.sidecar_bin:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    env = dict(cloud.env, OS_CLOUD="gds-demo")
    result = run([cloud.sidecar_bin, "sync", "--json", *args], env=env, check=False, timeout=600)
    LOG.info("sync stderr:\n%s", result.stderr[-3000:])
    return json.loads(result.stdout)


def _source(cloud, workdir, name, properties=None):
    path = workdir / (name + ".raw")
    with open(path, "wb") as f:
        f.write(os.urandom(128 << 10))
    args = ["image", "create", name, "--disk-format", "raw", "--container-format", "bare",
            "--file", str(path)]
    for k, v in (properties or {}).items():
        args += ["--property", "%s=%s" % (k, v)]
    img = cloud.osc_json(*args, region="REGION1")
    return cloud.wait_image(img["id"], region="REGION1")


def _get(cloud, region, image_id):
    r = cloud.http("GET", "%s/v2/images/%s" % (cloud.glance_urls[region], image_id))
    return r.json() if r.status_code == 200 else None



def _by_region(report):
    return {(r["source_id"], r["region"]): r for r in report["results"]}


@pytest.fixture
def cleanup(cloud):
    made = []
    yield made
    for region, image_id in made:
        cloud.delete_quietly(image_id, region=region)


def test_keep_id_copies_under_the_source_id_and_refuses_taken_and_deleted_ids(cloud, workdir,
                                                                              cleanup):
    name = "gds-keepid-%s" % uuid.uuid4().hex[:8]
    src = _source(cloud, workdir, name)
    sid = src["id"]
    cleanup.append(("REGION1", sid))
    # REGION3: an image of the same project under that id that is not a copy.
    r = cloud.http("POST", "%s/v2/images" % cloud.glance_urls["REGION3"],
                   json={"id": sid, "name": name + "-not-a-copy", "disk_format": "raw",
                         "container_format": "bare"})
    assert r.status_code == 201, r.text
    cleanup.append(("REGION3", sid))

    dry = _sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", "--keep-id", "--dry-run", sid)
    results = _by_region(dry)
    assert results[(sid, "REGION2")]["action"] == "would_copy", dry
    assert results[(sid, "REGION3")]["action"] == "failed", dry
    assert "id taken" in results[(sid, "REGION3")]["error"], dry

    report = _sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", "--keep-id", sid)
    results = _by_region(report)
    r2, r3 = results[(sid, "REGION2")], results[(sid, "REGION3")]
    assert (r2["action"], r2["target_id"]) == ("copied", sid), report
    cleanup.append(("REGION2", sid))
    copy = _get(cloud, "REGION2", sid)
    assert copy["status"] == "active" and copy[SYNC_SOURCE_ID] == sid, copy
    assert (copy["checksum"], copy["os_hash_value"]) == (src["checksum"], src["os_hash_value"])
    assert r3["action"] == "failed" and "not a copy of this source" in r3["error"], report
    untouched = _get(cloud, "REGION3", sid)
    assert untouched["status"] == "queued" and SYNC_SOURCE_ID not in untouched, untouched
    assert report["totals"]["failed"] == 1

    again = _sync(cloud, "--from", "REGION1", "--to", "REGION2", "--keep-id", sid)
    assert again["results"][0]["action"] == "skipped", again

    # A deleted image's id: real Glance keeps the row and answers 409 to a create with it.
    cloud.delete_quietly(sid, region="REGION2")
    assert _get(cloud, "REGION2", sid) is None
    r = cloud.http("POST", "%s/v2/images" % cloud.glance_urls["REGION2"],
                   json={"id": sid, "name": "reuse", "disk_format": "raw",
                         "container_format": "bare"})
    LOG.info("create with a deleted id: %s %s", r.status_code, r.text[:300])
    assert r.status_code == 409, r.text
    deleted = _sync(cloud, "--from", "REGION1", "--to", "REGION2", "--keep-id", sid)
    result = deleted["results"][0]
    assert result["action"] == "failed", deleted
    assert "409" in result["error"] and "deleted image" in result["error"], result


def test_prune_hide_then_prune_with_dry_runs_first_never_touching_other_images(cloud, workdir,
                                                                              cleanup):
    run_id = uuid.uuid4().hex[:8]
    pattern = "gds-prune-%s-*" % run_id
    srcs = [_source(cloud, workdir, "gds-prune-%s-%d" % (run_id, i)) for i in range(3)]
    cleanup.extend(("REGION1", s["id"]) for s in srcs)
    first = _sync(cloud, "--from", "REGION1", "--to", "REGION3", "--name", pattern)
    assert first["totals"]["copied"] == 3, first
    copy_of = {s["id"]: sync_copies(cloud, "REGION3", s["id"])[0]["id"] for s in srcs}
    cleanup.extend(("REGION3", c) for c in copy_of.values())
    # An image matching the name, ours by project, made by hand: never touched.
    hand = cloud.create_target("gds-prune-%s-hand" % run_id, region="REGION3")
    cleanup.append(("REGION3", hand["id"]))

    gone = srcs[1]["id"]
    cloud.delete_quietly(gone, region="REGION1")
    base = ("--from", "REGION1", "--to", "REGION3", "--name", pattern)

    dry = _sync(cloud, *base, "--prune=hide", "--dry-run")
    acts = {r["target_id"]: r["action"] for r in dry["results"]}
    assert acts == {copy_of[srcs[0]["id"]]: "skipped", copy_of[gone]: "hide",
                    copy_of[srcs[2]["id"]]: "skipped"}, dry
    assert _get(cloud, "REGION3", copy_of[gone])["os_hidden"] is False

    hidden = _sync(cloud, *base, "--prune=hide")
    assert hidden["totals"]["hidden"] == 1, hidden
    assert _get(cloud, "REGION3", copy_of[gone])["os_hidden"] is True

    gone2 = srcs[2]["id"]
    cloud.delete_quietly(gone2, region="REGION1")
    dry = _sync(cloud, *base, "--prune", "--dry-run")
    acts = {r["target_id"]: r["action"] for r in dry["results"]}
    assert acts == {copy_of[srcs[0]["id"]]: "skipped", copy_of[gone]: "prune",
                    copy_of[gone2]: "prune"}, dry
    assert _get(cloud, "REGION3", copy_of[gone2]) is not None

    pruned = _sync(cloud, *base, "--prune")
    assert pruned["totals"]["pruned"] == 2 and pruned["totals"]["failed"] == 0, pruned
    assert _get(cloud, "REGION3", copy_of[gone]) is None
    assert _get(cloud, "REGION3", copy_of[gone2]) is None
    assert _get(cloud, "REGION3", copy_of[srcs[0]["id"]])["status"] == "active"
    assert _get(cloud, "REGION3", hand["id"])["status"] == "queued"


def test_signature_properties_are_carried_onto_thesync_copies(cloud, workdir, cleanup):
    """Three of the four properties: with all four, Glance verifies the signature on upload
    against the certificate in its key manager (Barbican), which the test cloud does not run."""
    props = {k: v for k, v in SIGNATURE.items() if k != "img_signature_certificate_uuid"}
    src = _source(cloud, workdir, "gds-signed-%s" % uuid.uuid4().hex[:8], props)
    cleanup.append(("REGION1", src["id"]))
    report = _sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", src["id"])
    assert report["totals"]["copied"] == 2, report
    for r in report["results"]:
        cleanup.append((r["region"], r["target_id"]))
        copy = _get(cloud, r["region"], r["target_id"])
        assert copy["status"] == "active", copy
        for k, v in props.items():
            assert copy.get(k) == v, (r["region"], k, copy)


def test_all_four_signature_properties_make_the_target_glance_verify(cloud, workdir, cleanup):
    """With the certificate id too, the copy carries all four and the target Glance checks the
    signature when the data arrives: without a key manager holding the certificate it refuses,
    and the copy is reported failed, never active."""
    src = _source(cloud, workdir, "gds-signed4-%s" % uuid.uuid4().hex[:8])
    cleanup.append(("REGION1", src["id"]))
    r = cloud.http("PATCH", "%s/v2/images/%s" % (cloud.glance_urls["REGION1"], src["id"]),
                   headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                   json=[{"op": "add", "path": "/" + k, "value": v} for k, v in SIGNATURE.items()])
    assert r.status_code == 200, r.text
    report = _sync(cloud, "--from", "REGION1", "--to", "REGION3", src["id"])
    LOG.info("sync of a signed image: %s", report)
    result = report["results"][0]
    if result["target_id"]:
        cleanup.append(("REGION3", result["target_id"]))
        copy = _get(cloud, "REGION3", result["target_id"])
        for k, v in SIGNATURE.items():
            assert copy.get(k) == v, (k, copy)
    assert result["action"] == "failed", report
    assert "Signature verification failed" in result["error"], result
    assert "Unable to retrieve certificate" in result["error"], result
