"""Faults between the sidecar and a real source Glance, injected by a TCP proxy in front of REGION1.

The proxy (netproxy.FaultProxy) is registered in Keystone's catalog as region REGION1F, so the
sidecar finds it exactly as it finds any source: through the caller's catalog. Each test puts one
fault on the session's raw source image and imports it through a sidecar instance of its own (short
read timeout and retry delay, so stalls and retries take seconds, not minutes) into a fresh REGION2
image. Transient faults must end `active` with the source's size and hashes; permanent ones must end
with a failed task and the image `queued` with its formats and properties as they were before.
"""
import os
import uuid

import pytest

from conftest import FAULT_REGION, LOG, assert_imported_like, assert_restored
from netproxy import Fault

MIB = 1 << 20
TARGET_PROPS = {"hw_disk_bus": "ide", "gds_fault_marker": "kept"}


@pytest.fixture(scope="module")
def fault_sidecar(request, cloud, sidecar_present):
    from sidecars import Sidecar
    if not sidecar_present:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    sc = Sidecar(cloud.sidecar_bin, "faults", cloud.state_dir, cloud.region2_glance, cloud.keystone_url,
                 {"read_timeout": 3, "retry_delay_ms": 100, "source_retries": 4})
    yield sc
    sc.stop()


def _import_with_fault(cloud, proxy, sidecar, target, src, fault):
    """A queued qcow2-formatted REGION2 target with its own properties, imported from REGION1F with
    `fault` on the source image. Returns (finished task, target image as Glance sees it, the
    source data requests of this import as (method, path, Range start))."""
    tgt = target(disk_format="qcow2", properties=TARGET_PROPS)
    before = len(proxy.requests)
    proxy.set(src.id, fault)
    try:
        r = cloud.glance_download(sidecar.url, tgt["id"], src.id, region=FAULT_REGION)
        assert r.status_code == 202, r.text
        task, _ = cloud.wait_task_done(tgt["id"], url=sidecar.url, timeout=180)
    finally:
        proxy.clear(src.id)
    img = cloud.wait_image(tgt["id"], statuses=("active", "queued"))
    LOG.info("fault %s -> task %s (%s), image %s", fault, task["status"], task.get("message"),
             img["status"])
    files = [r for r in proxy.requests[before:] if r[1] == "/v2/images/%s/file" % src.id]
    return task, img, files


TRANSIENT = {
    # connection closed after 1 MiB, twice: resumed twice with Range
    "drop-twice": lambda: Fault("drop", at=1 * MIB, times=2),
    # nothing for 5 s (read timeout 3 s) after 2 MiB: abandoned and resumed
    "stall": lambda: Fault("stall", at=2 * MIB, times=1, seconds=5),
    # body stops at 3 MiB and the connection stays open: read timeout, resumed
    "short-body-held-open": lambda: Fault("short", at=3 * MIB, times=1, seconds=6),
    # two 503 answers before the data flows
    "503-twice": lambda: Fault("status", status=503, times=2),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_transient_fault_recovers_with_identical_hashes(cloud, fault_proxy, fault_sidecar, target,
                                                        source_raw, name):
    fault = TRANSIENT[name]()
    task, img, files = _import_with_fault(cloud, fault_proxy, fault_sidecar, target, source_raw, fault)
    assert fault.applied >= 1, "the fault never fired: %s" % fault
    assert task["status"] == "success", task
    assert_imported_like(img, source_raw)
    assert len(files) >= fault.applied + 1, files
    if fault.kind in ("drop", "stall", "short"):
        resumed = [start for (_, _, start) in files if start]
        assert resumed, "no Range request after the fault: %s" % files


PERMANENT = {
    # one byte inverted at 4 MiB on every attempt: verification must refuse it
    "flipped-byte": (lambda: Fault("flip", at=4 * MIB), ("checksum", "hash", "mismatch", "differ")),
    # every connection dropped at 1 MiB: retries run out
    "drop-always": (lambda: Fault("drop", at=1 * MIB), ("retr", "attempt", "closed", "connection")),
    # the source answers 503 every time
    "503-always": (lambda: Fault("status", status=503), ("503",)),
    # a 4xx is final: no retry
    "404": (lambda: Fault("status", status=404), ("not found",)),
    # the source image's JSON is garbage: nothing is synced
    "bad-json": (lambda: Fault("badjson"), ("unexpected answer", "parsing")),
}


@pytest.mark.parametrize("name", sorted(PERMANENT))
def test_permanent_fault_fails_cleanly_and_restores_the_image(cloud, fault_proxy, fault_sidecar,
                                                              target, source_raw, name):
    make, words = PERMANENT[name]
    fault = make()
    task, img, files = _import_with_fault(cloud, fault_proxy, fault_sidecar, target, source_raw, fault)
    assert fault.applied >= 1, "the fault never fired: %s" % fault
    assert task["status"] == "failure", task
    message = (task.get("message") or "").lower()
    assert any(w in message for w in words), "task message %r names none of %s" % (message, words)
    assert_restored(img, TARGET_PROPS)
    if name == "404":
        assert len(files) == 1, "a 4xx must not be retried: %s" % files


def test_faulty_region_is_reached_only_through_the_catalog(cloud, fault_proxy, fault_sidecar, target,
                                                           source_raw):
    """Without the REGION1F catalog entry the same request fails: the proxy is never asked."""
    tgt = target()
    before = len(fault_proxy.requests)
    r = cloud.glance_download(fault_sidecar.url, tgt["id"], source_raw.id,
                              region="REGION1F-" + uuid.uuid4().hex[:6])
    assert r.status_code == 202, r.text
    task, _ = cloud.wait_task_done(tgt["id"], url=fault_sidecar.url)
    assert task["status"] == "failure"
    assert "REGION1F-" in (task.get("message") or ""), task
    assert len(fault_proxy.requests) == before
    assert os.path.exists(fault_sidecar.journal)
