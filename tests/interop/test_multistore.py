"""Multi-store targets: REGION2's Glance with `enabled_backends = local:file, fast:file` and
`default_backend = local`. The sidecar writes the first store itself (glance-upload sends
X-Image-Meta-Store on PUT /file) and delegates the others to upstream's copy-image with the caller's
token; glance-stage lets Glance's own glance-direct write them all. Compared with upstream's own
glance-download on REGION2's real Glance (gds-demo-direct).

Skipped when REGION2 is single-store or lacks the `local` and `fast` stores.
"""

import os

import pytest

from conftest import DEFAULT_TIMEOUT, LOG, assert_imported_like

STORES = ("local", "fast")


# --- fixtures and helpers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def region2_stores(cloud):
    """REGION2's store ids from its real Glance (GET /v2/info/stores), or skip."""
    r = cloud.http("GET", cloud.region2_glance + "/v2/info/stores")
    if r.status_code == 404:
        pytest.skip("REGION2's Glance is single-store (GET /v2/info/stores: 404)")
    assert r.status_code == 200, r.text
    stores = r.json()["stores"]
    ids = [s["id"] for s in stores]
    if not set(STORES) <= set(ids):
        pytest.skip("REGION2's Glance lacks stores %s (has %s)" % (STORES, ids))
    default = [s["id"] for s in stores if s.get("default") == "true"]
    assert default == ["local"], stores
    writable = [s["id"] for s in stores if s.get("read-only") != "true"]
    LOG.info("REGION2 stores %s, writable %s", ids, writable)
    return writable


@pytest.fixture(scope="module")
def admin_token(cloud):
    """An admin token: Glance's copy_image policy is admin-only by default."""
    return cloud.osc("token", "issue", "-f", "value", "-c", "id", cloud="gds-admin").stdout.strip()


@pytest.fixture
def need_sidecar(cloud):
    if not cloud.sidecar_url:
        pytest.skip("no sidecar in front of REGION2 (cloud.sh up --no-sidecar)")


def _body(src, **extra):
    body = {"method": {"name": "glance-download", "glance_image_id": src.id, "glance_region": "REGION1",
                       "glance_service_interface": "public"}}
    body.update(extra)
    return body


def _import(cloud, base, image_id, body, token=True, headers=None):
    return cloud.http("POST", "%s/v2/images/%s/import" % (base, image_id), token=token, json=body,
                      headers=headers)


def _wait_glance_download_task(cloud, base, image_id, token=None, timeout=DEFAULT_TIMEOUT):
    """The newest glance-download task of the image listed at `base` once ended, and every task
    (after a multi-store import through the sidecar the newest task of any method is upstream's
    copy-image task)."""
    return cloud.wait_task_done(image_id, url=base, timeout=timeout, token=token,
                                method="glance-download")


def _stores_of(img):
    return set(filter(None, (img.get("stores") or "").split(",")))


def _failed_of(img):
    return set(filter(None, (img.get("os_glance_failed_import") or "").split(",")))


def _tasks_direct(cloud, image_id, token):
    """REGION2's own task list for the image, as `token`'s project sees it."""
    r = cloud.http("GET", "%s/v2/images/%s/tasks" % (cloud.region2_glance, image_id), token=token)
    assert r.status_code == 200, r.text
    return r.json()["tasks"]


def _copy_tasks(tasks):
    return [t for t in tasks
            if ((t.get("input") or {}).get("import_req") or {}).get("method", {}).get("name") == "copy-image"]


# --- through the sidecar ----------------------------------------------------------------------------

def test_sidecar_explicit_stores(cloud, need_sidecar, region2_stores, admin_token, target, source_raw):
    """stores [fast, local]: fast by PUT /file, local by upstream's copy-image (admin)."""
    img = target()
    body = _body(source_raw, stores=["fast", "local"], all_stores_must_succeed=True)
    r = _import(cloud, cloud.region2_image_url, img["id"], body, token=admin_token)
    assert r.status_code == 202, r.text
    task, _ = _wait_glance_download_task(cloud, cloud.region2_image_url, img["id"], token=admin_token)
    assert task["status"] == "success", task
    assert task["input"]["backend"] == ["fast", "local"], task["input"]
    stores = task["verification"]["stores"]
    assert stores["succeeded"] == ["fast", "local"] and stores["failed"] == [], stores
    final = cloud.wait_image(img["id"])
    assert_imported_like(final, source_raw)
    assert _stores_of(final) == {"fast", "local"}, final.get("stores")
    assert not _failed_of(final), final.get("os_glance_failed_import")
    assert not final.get("os_glance_importing_to_stores"), final
    # the rest went through upstream's copy-image, recorded in REGION2's own task list
    copies = _copy_tasks(_tasks_direct(cloud, img["id"], admin_token))
    assert [t["input"]["backend"] for t in copies] == [["local"]], copies
    assert copies[0]["status"] == "success", copies[0]


def test_sidecar_all_stores(cloud, need_sidecar, region2_stores, admin_token, target, source_raw):
    """all_stores: every writable store listed by GET /v2/info/stores, the default one first."""
    img = target()
    r = _import(cloud, cloud.region2_image_url, img["id"], _body(source_raw, all_stores=True),
                token=admin_token)
    assert r.status_code == 202, r.text
    task, _ = _wait_glance_download_task(cloud, cloud.region2_image_url, img["id"], token=admin_token)
    assert task["status"] == "success", task
    assert sorted(task["input"]["backend"]) == sorted(region2_stores), task["input"]
    final = cloud.wait_image(img["id"])
    assert_imported_like(final, source_raw)
    assert _stores_of(final) == set(region2_stores), final.get("stores")


def _import_to_the_default_store(cloud, img, source):
    """`source` imported into `img` through the sidecar naming no store: succeeded, into `local`."""
    r = _import(cloud, cloud.region2_image_url, img["id"], _body(source))
    assert r.status_code == 202, r.text
    task, _ = _wait_glance_download_task(cloud, cloud.region2_image_url, img["id"])
    assert task["status"] == "success", task
    assert task["input"]["backend"] == ["local"], task["input"]


def test_sidecar_default_store(cloud, need_sidecar, region2_stores, target, source_raw):
    """No store named: the default store (local), written by PUT /file alone; a member suffices."""
    img = target()
    _import_to_the_default_store(cloud, img, source_raw)
    final = cloud.wait_image(img["id"])
    assert_imported_like(final, source_raw)
    assert _stores_of(final) == {"local"}, final.get("stores")
    assert not _copy_tasks(cloud.tasks_direct(img["id"]))


def _store_list_reads(cloud):
    """How many `GET /v2/info/stores` REGION2's Glance has answered (its uwsgi request log)."""
    with open(os.path.join(cloud.state_dir, "logs", "glance-REGION2.log"), errors="replace") as f:
        return sum("GET /v2/info/stores " in line for line in f)


def test_sidecar_reads_the_store_list_once_for_several_imports(cloud, need_sidecar, region2_stores,
                                                               target, source_raw):
    """The list is the same for every caller, and each read with a new token costs Glance a
    validation of it: the sidecar reads it at most once per 30 s. Two imports in a row cause one
    read, or none while a list read by an earlier test is still in use (one read per import
    before)."""
    before = _store_list_reads(cloud)
    for _ in range(2):
        _import_to_the_default_store(cloud, target(), source_raw)
    reads = _store_list_reads(cloud) - before
    assert reads <= 1, "%d reads of /v2/info/stores for 2 imports" % reads


def test_sidecar_member_extra_store_needs_copy_image_rights(cloud, need_sidecar, region2_stores, target,
                                                           source_raw):
    """A member (demo) asking for two stores with glance-upload: the first is written; copy-image
    is admin-only under Glance's default policy, so the second is reported failed with that reason
    (all_stores_must_succeed false: the task still succeeds)."""
    img = target()
    body = _body(source_raw, stores=["local", "fast"], all_stores_must_succeed=False)
    r = _import(cloud, cloud.region2_image_url, img["id"], body)
    assert r.status_code == 202, r.text
    task, _ = _wait_glance_download_task(cloud, cloud.region2_image_url, img["id"])
    assert task["status"] == "success", task
    stores = task["verification"]["stores"]
    final = cloud.wait_image(img["id"])
    assert_imported_like(final, source_raw)
    if stores["failed"]:
        assert stores["failed"] == ["fast"], stores
        assert "copy_image" in stores["reason"], stores
        assert _stores_of(final) == {"local"}, final.get("stores")
    else:  # a cloud whose policy lets members copy
        assert _stores_of(final) == {"local", "fast"}, final.get("stores")


def test_sidecar_glance_stage_writes_every_store(cloud, need_sidecar, region2_stores, target, source_raw):
    """glance-stage: Glance's own glance-direct import writes both stores, with the member's rights."""
    r = cloud.http("GET", cloud.region2_glance + "/v2/info/import")
    if "glance-direct" not in r.json()["import-methods"]["value"]:
        pytest.skip("glance-direct is not enabled on REGION2")
    img = target()
    body = _body(source_raw, stores=["fast", "local"], all_stores_must_succeed=True)
    r = _import(cloud, cloud.region2_image_url, img["id"], body,
                headers={"X-Glance-Download-Sink": "glance-stage"})
    assert r.status_code == 202, r.text
    task, _ = _wait_glance_download_task(cloud, cloud.region2_image_url, img["id"])
    assert task["status"] == "success", task
    final = cloud.wait_image(img["id"])
    assert final["status"] == "active"
    assert final["size"] == source_raw.size and final["checksum"] == source_raw.md5
    assert _stores_of(final) == {"fast", "local"}, final.get("stores")
    assert sorted(task["verification"]["stores"]["succeeded"]) == ["fast", "local"], task


def test_sidecar_unknown_store_like_upstream(cloud, need_sidecar, region2_stores, target, source_raw):
    """An unknown store: 409 with upstream's UnknownScheme text, from both; the image untouched."""
    img = target()
    body = _body(source_raw, stores=["fast", "no-such-store"])
    accept = {"Accept": "application/json"}
    side = _import(cloud, cloud.region2_image_url, img["id"], body, headers=accept)
    up = _import(cloud, cloud.region2_glance, img["id"], body, headers=accept)
    assert (side.status_code, up.status_code) == (409, 409), (side.text, up.text)
    for r in (side, up):
        assert "Store for identifier no-such-store not found" in r.text, r.text
    after = cloud.image_direct(img["id"])
    assert after["status"] == "queued" and "os_glance_import_task" not in after, after


# --- compared with upstream's own glance-download ---------------------------------------------------

@pytest.mark.upstream
def test_parity_with_upstream_stores(cloud, need_sidecar, region2_stores, admin_token, target, source_raw):
    """The same request to upstream's glance-download (REGION2's real Glance) and to the sidecar: the
    image ends in the same stores, with the same data; both tasks record the same backend list."""
    body = _body(source_raw, stores=["fast", "local"], all_stores_must_succeed=True)
    up, sc = target(direct=True), target()
    r = _import(cloud, cloud.region2_glance, up["id"], body, token=admin_token)
    assert r.status_code == 202, r.text
    r = _import(cloud, cloud.region2_image_url, sc["id"], body, token=admin_token)
    assert r.status_code == 202, r.text
    up_task, _ = _wait_glance_download_task(cloud, cloud.region2_glance, up["id"], token=admin_token)
    sc_task, _ = _wait_glance_download_task(cloud, cloud.region2_image_url, sc["id"], token=admin_token)
    assert (up_task["status"], sc_task["status"]) == ("success", "success"), (up_task, sc_task)
    assert up_task["input"]["backend"] == sc_task["input"]["backend"] == ["fast", "local"]
    a, b = cloud.wait_image(up["id"]), cloud.wait_image(sc["id"])
    assert_imported_like(a, source_raw)
    assert_imported_like(b, source_raw)
    assert _stores_of(a) == _stores_of(b) == {"fast", "local"}, (a.get("stores"), b.get("stores"))
    assert _failed_of(a) == _failed_of(b) == set()
