"""Tasks of a glance-download import, read with raw HTTP and a token from `openstack token issue`."""
import time

import pytest

from conftest import LOG, SIDECAR_NS, SIDECAR_STATUS, assert_imported_like

TASK_FIELDS = ("id", "type", "status", "owner", "expires_at", "created_at", "updated_at", "deleted_at",
               "deleted", "image_id", "request_id", "user_id", "input", "result", "message")


def _create_raw(cloud, name):
    r = cloud.http("POST", cloud.region2_image_url + "/v2/images",
                   json={"name": name, "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    return r.json()


def test_task_request_id_matches_the_202(cloud, source_qcow2):
    token = cloud.token()
    img = _create_raw(cloud, "gds-task-check")
    try:
        body = {"method": {"name": "glance-download", "glance_image_id": source_qcow2.id,
                           "glance_region": "REGION1", "glance_service_interface": "public"}}
        r = cloud.http("POST", "%s/v2/images/%s/import" % (cloud.region2_image_url, img["id"]),
                       token=token, json=body)
        assert r.status_code == 202, r.text
        assert r.content == b"", "202 must have an empty body, got %r" % r.content[:200]
        request_id = r.headers.get("x-openstack-request-id")
        assert request_id and request_id.startswith("req-"), r.headers

        # while it runs and after: the task is listed through the catalog endpoint
        seen_statuses = []
        deadline = time.monotonic() + 120
        task = None
        while time.monotonic() < deadline:
            t = cloud.http("GET", "%s/v2/images/%s/tasks" % (cloud.region2_image_url, img["id"]), token=token)
            assert t.status_code == 200, t.text
            assert t.headers["Content-Type"].startswith("application/json")
            mine = [x for x in t.json()["tasks"] if x.get("request_id") == request_id]
            if mine:
                task = mine[0]
                if not seen_statuses or seen_statuses[-1] != task["status"]:
                    seen_statuses.append(task["status"])
                if task["status"] in ("success", "failure"):
                    break
            time.sleep(0.3)
        LOG.info("task statuses seen: %s", seen_statuses)
        assert task is not None, "no task with request_id %s in GET /v2/images/%s/tasks" % (request_id, img["id"])
        for f in TASK_FIELDS:
            assert f in task, "task lacks %r: %s" % (f, task)
        assert task["type"] == "api_image_import"
        assert task["status"] == "success", task
        assert task["image_id"] == img["id"]
        assert task["input"]["image_id"] == img["id"]
        method = task["input"]["import_req"]["method"]
        assert method["name"] == "glance-download"
        assert method["glance_image_id"] == source_qcow2.id
        assert method["glance_region"] == "REGION1"
        assert method["glance_service_interface"] == "public"
        assert task["result"] and task["result"].get("image_id") == img["id"], task["result"]
        assert all(s in ("pending", "processing", "success") for s in seen_statuses), seen_statuses
        assert_imported_like(cloud.image_direct(img["id"]), source_qcow2)
        assert "X-Auth-Token" not in str(task) and token not in str(task), "token leaked into the task"
    finally:
        cloud.delete_quietly(img["id"])


def test_interface_defaults_to_public_in_task_input(cloud, source_raw):
    img = _create_raw(cloud, "gds-task-default-iface")
    try:
        body = {"method": {"name": "glance-download", "glance_image_id": source_raw.id,
                           "glance_region": "region1"}}  # lower case: region match is case-insensitive
        r = cloud.http("POST", "%s/v2/images/%s/import" % (cloud.region2_image_url, img["id"]), json=body)
        assert r.status_code == 202, r.text
        task, _ = cloud.wait_task_done(img["id"])
        assert task["status"] == "success", task
        assert task["input"]["import_req"]["method"]["glance_service_interface"] == "public"
        assert_imported_like(cloud.image_direct(img["id"]), source_raw)
    finally:
        cloud.delete_quietly(img["id"])


def test_second_import_while_locked_is_409(cloud, source_qcow2):
    img = _create_raw(cloud, "gds-task-lock")
    try:
        body = {"method": {"name": "glance-download", "glance_image_id": source_qcow2.id,
                           "glance_region": "REGION1", "glance_service_interface": "public"}}
        url = "%s/v2/images/%s/import" % (cloud.region2_image_url, img["id"])
        first = cloud.http("POST", url, json=body)
        assert first.status_code == 202, first.text
        second = cloud.http("POST", url, json=body)
        # upstream: 409 "Image has active task" while the lock is held; once the first import
        # finished the image is active: 409 "Image with status active cannot be target for import"
        assert second.status_code == 409, second.text
        assert ("Image has active task" in second.text
                or "cannot be target for import" in second.text
                or "needs to be in" in second.text), second.text
        task, tasks = cloud.wait_task_done(img["id"])
        assert task["status"] == "success"
        assert len([t for t in tasks if t["type"] == "api_image_import"]) == 1, tasks
    finally:
        cloud.delete_quietly(img["id"])


def test_sidecar_task_extras_and_image_summary(cloud, sidecar_present, source_qcow2):
    """Beyond upstream (DESIGN.md section 3): progress and verification in the task, and the
    cross-instance summary on the image (glance_download_* properties) ending in the task's state."""
    if not sidecar_present:
        pytest.skip("no sidecar in front of REGION2 (cloud.sh up --no-sidecar)")
    img = _create_raw(cloud, "gds-task-extras")
    try:
        body = {"method": {"name": "glance-download", "glance_image_id": source_qcow2.id,
                           "glance_region": "REGION1", "glance_service_interface": "public"}}
        r = cloud.http("POST", "%s/v2/images/%s/import" % (cloud.region2_image_url, img["id"]), json=body)
        assert r.status_code == 202, r.text
        task, _ = cloud.wait_task_done(img["id"])
        assert task["status"] == "success", task
        s = source_qcow2.image
        progress = task.get("progress") or {}
        assert progress.get("bytes_done") == progress.get("bytes_total") == s["size"], task
        verification = task.get("verification") or {}
        assert verification.get("verified") is True, task
        assert verification.get("checksum") == s["checksum"]
        assert verification.get("os_hash_value") == s["os_hash_value"]
        final = cloud.wait_image(img["id"])
        summary = {k: v for k, v in final.items() if k.startswith(SIDECAR_NS)}
        LOG.info("sidecar summary on the image: %s", summary)
        if summary:
            assert summary.get(SIDECAR_STATUS) == "success", summary
            assert summary.get(SIDECAR_NS + "task_id") == task["id"], summary
            assert summary.get(SIDECAR_NS + "request_id") == r.headers["x-openstack-request-id"], summary
    finally:
        cloud.delete_quietly(img["id"])
