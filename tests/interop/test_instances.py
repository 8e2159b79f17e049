"""Two sidecar instances in front of REGION2's Glance behind a round-robin proxy, as operators run
one sidecar per Glance API node behind their load balancer; and /metrics scraped and parsed.

The import is slowed by a pause at the source (the REGION1F fault proxy holds the stream for a few
seconds, well under the read timeout), so it is still running while the other instance is asked.
"""
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import FAULT_REGION, LOG, assert_imported_like
from netproxy import Fault, RoundRobinProxy, wait_until

MIB = 1 << 20


def metrics(text):
    """{sample name (+labels): value} from a Prometheus text exposition, parsed by the reference
    parser (it raises on anything malformed)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + ("{%s}" % ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
                            if s.labels else "")
            out[key] = s.value
    return out


@pytest.fixture
def pair(cloud, start_sidecar):
    a = start_sidecar("node-a")
    b = start_sidecar("node-b")
    lb = RoundRobinProxy([a.port, b.port])
    yield a, b, lb
    lb.close()


def test_import_through_one_instance_is_seen_and_locked_on_the_other(cloud, pair, fault_proxy, target,
                                                                   source_raw):
    a, b, lb = pair
    token = cloud.token()
    tgt = target()
    fault_proxy.set(source_raw.id, Fault("stall", at=2 * MIB, times=1, seconds=6))
    try:
        r = cloud.glance_download(lb.url, tgt["id"], source_raw.id, region=FAULT_REGION, token=token)
        assert r.status_code == 202, r.text
        request_id = r.headers["x-openstack-request-id"]
        first = lb.routed_to("POST", tgt["id"])[0]

        # the next connection goes to the other instance: it lists the running task once the
        # import has claimed the image, its first step after the 202
        r = cloud.http("GET", "%s/v2/images/%s/tasks" % (lb.url, tgt["id"]), token=token)
        assert r.status_code == 200, r.text
        assert lb.routed_to("GET", tgt["id"] + "/tasks")[-1] != first
        other = b if first == 0 else a

        def listed():
            r = requests.get("%s/v2/images/%s/tasks" % (other.url, tgt["id"]),
                             headers={"X-Auth-Token": token}, timeout=30)
            assert r.status_code == 200, r.text
            return [t for t in r.json()["tasks"] if t.get("request_id") == request_id]

        mine = wait_until(listed, 10, "the other instance to list the task")
        assert mine[0]["status"] in ("pending", "processing"), mine[0]

        # and a second import, sent so that it reaches the other instance, collides: 409
        cloud.http("GET", lb.url + "/healthcheck", token=False)  # keeps the alternation in step
        r = cloud.glance_download(lb.url, tgt["id"], source_raw.id, region=FAULT_REGION, token=token)
        second = lb.routed_to("POST", tgt["id"])[-1]
        assert second != first, lb.routed
        assert r.status_code == 409, (r.status_code, r.text)
    finally:
        task, _ = cloud.wait_task_done(tgt["id"], url=lb.url, timeout=180)
        fault_proxy.clear(source_raw.id)
    assert task["status"] == "success", task
    img = cloud.wait_image(tgt["id"])
    assert_imported_like(img, source_raw)

    # both instances report the same finished task
    for node in (a, b):
        t = requests.get("%s/v2/images/%s/tasks" % (node.url, tgt["id"]),
                         headers={"X-Auth-Token": token}, timeout=30).json()["tasks"]
        done = [x for x in t if x.get("request_id") == request_id]
        assert done and done[0]["status"] == "success", (node.name, t)

    # metrics: the import ran on the first instance only; the other refused the collision
    ran, other = (a, b) if first == 0 else (b, a)
    m_ran, m_other = metrics(ran.metrics_text()), metrics(other.metrics_text())
    LOG.info("metrics of %s: %s", ran.name, {k: v for k, v in m_ran.items() if k.startswith("gds_imports")})
    assert m_ran["gds_imports_started_total"] == 1
    assert m_ran["gds_imports_succeeded_total"] == 1
    assert m_ran["gds_imported_bytes_total"] == source_raw.size
    assert m_ran["gds_import_throughput_mbps_count"] == 1
    assert m_other["gds_imports_started_total"] == 0
    assert m_other["gds_imports_in_flight"] == 0


def test_metrics_of_the_cloud_sidecar_count_an_import(cloud, sidecar_present, target, source_raw):
    if not sidecar_present:
        pytest.skip("no sidecar in front of REGION2 (cloud.sh up --no-sidecar)")
    before = metrics(requests.get(cloud.sidecar_url + "/metrics", timeout=10).text)
    tgt = target()
    r = cloud.glance_download(cloud.region2_image_url, tgt["id"], source_raw.id)
    assert r.status_code == 202, r.text
    cloud.wait_task_done(tgt["id"])
    cloud.wait_image(tgt["id"])
    deadline = time.monotonic() + 30
    while True:
        after = metrics(requests.get(cloud.sidecar_url + "/metrics", timeout=10).text)
        if after["gds_imports_succeeded_total"] >= before["gds_imports_succeeded_total"] + 1:
            break
        assert time.monotonic() < deadline, "the success was never counted: %s" % after
        time.sleep(0.2)
    assert after["gds_imports_started_total"] >= before["gds_imports_started_total"] + 1
    assert after["gds_imported_bytes_total"] >= before["gds_imported_bytes_total"] + source_raw.size
    assert after["gds_proxied_requests_total"] > before["gds_proxied_requests_total"]
    # upstream latency histogram: cumulative buckets ending in +Inf == count
    assert after["gds_upstream_call_seconds_bucket{le=+Inf}"] == after["gds_upstream_call_seconds_count"]
