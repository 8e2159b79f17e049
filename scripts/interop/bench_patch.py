"""What one image PATCH costs on the test cloud's Glance, by the number of properties it adds.

An import's claim is one PATCH of its summary's properties on the target image (src/claim.rs), on
the path from the `202` to the copy's start; this measures how that cost grows with the properties
written at once. Each run adds 1, 3 and 7 properties (`add` operations, one request each) to a
fresh queued image, in that order, and reads one image back; the images are deleted at the end.

    eval "$(scripts/cloud.sh env STATE_DIR)"
    "$GDS_VENV/bin/python3" scripts/interop/bench_patch.py [--runs 8] [--glance URL]

Prints the median and every run's milliseconds per kind (BENCHMARKS.md §11).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import requests

PATCH = "application/openstack-images-v2.1-json-patch"


def token():
    return subprocess.run(["openstack", "--os-cloud", "gds-demo", "token", "issue", "-f", "value",
                           "-c", "id"], capture_output=True, text=True, check=True).stdout.strip()


def timed(call):
    t0 = time.monotonic()
    call().raise_for_status()
    return (time.monotonic() - t0) * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--glance", default=os.environ.get("GDS_REGION2_GLANCE_URL"),
                   help="the Glance to measure (default: REGION2's, from cloud.sh env)")
    a = p.parse_args()
    headers = {"X-Auth-Token": token()}
    images, ms = [], {"PATCH, 1 property": [], "PATCH, 3 properties": [],
                      "PATCH, 7 properties": [], "GET image": []}
    try:
        for _ in range(a.runs):
            for n, kind in ((1, "PATCH, 1 property"), (3, "PATCH, 3 properties"),
                            (7, "PATCH, 7 properties")):
                r = requests.post(a.glance + "/v2/images", headers=headers, json={
                    "name": "gds-bench-patch", "disk_format": "raw", "container_format": "bare"})
                r.raise_for_status()
                images.append(r.json()["id"])
                ops = [{"op": "add", "path": "/glance_download_bench_%d" % k, "value": "v%d" % k}
                       for k in range(n)]
                ms[kind].append(timed(lambda: requests.patch(
                    "%s/v2/images/%s" % (a.glance, images[-1]), data=json.dumps(ops),
                    headers=dict(headers, **{"Content-Type": PATCH}))))
            ms["GET image"].append(timed(lambda: requests.get(
                "%s/v2/images/%s" % (a.glance, images[-1]), headers=headers)))
    finally:
        for image in images:
            requests.delete("%s/v2/images/%s" % (a.glance, image), headers=headers)
    for kind, values in ms.items():
        print("%-20s median %6.1f ms   runs %s" % (kind, statistics.median(values),
                                                 " ".join("%.0f" % v for v in values)))


if __name__ == "__main__":
    main()
