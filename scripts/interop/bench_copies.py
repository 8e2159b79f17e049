#!/usr/bin/env python3
"""Cross-region copies of one image on the real test cloud, contenders side by side, interleaved.

Run with the cloud's environment (scripts/cloud.sh env) by scripts/bench-wan.sh (--mode wan) or
scripts/bench-s3.sh (--mode s3). On the same source image, each contender copies it into a fresh
target image and the time from the import request to a verified `active` image is taken.

--mode wan: a `glance-download-sidecar wan-link` listens on GDS_WAN_PORT in front of REGION1's Glance
and is put in Keystone's catalog as region REGION1W; targets in REGION2.
  upstream      REGION2's own Glance, glance-download from REGION1W (one connection, staged on disk)
  sidecar-1     a sidecar in front of REGION2's Glance, one source stream
  sidecar-N     the same with N parallel Range streams (source_streams = N)
  sidecar-lan   one stream from REGION1 itself (no link): what the link costs

--mode s3: targets in REGION5, a Glance on an S3 store (do_secure_hash as the cloud was started).
  upstream       REGION5's own Glance, glance-download from REGION1 (staged, then written to S3)
  sidecar-s3     REGION5's sidecar, store_sink = s3 (multipart upload + location API)
  sidecar-upload the same sidecar with the glance-upload sink asked for per request (PUT /file)

Prints a table and writes JSON (--json FILE). Every image it makes is deleted.
"""
import argparse
import json
import os
import statistics
import sys
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))
sys.dont_write_bytecode = True

from conftest import Cloud  # noqa: E402
from sidecars import Sidecar  # noqa: E402

LINK_REGION = "REGION1W"
SINK_HEADER = "X-Glance-Download-Sink"


def make_source(cloud, size, workdir):
    path = os.path.join(workdir, "gds-wan-source.raw")
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    with open(path, "rb") as f:
        r = cloud.http("POST", cloud.region1_glance + "/v2/images", json={
            "name": "gds-wan-source", "disk_format": "raw", "container_format": "bare"})
        r.raise_for_status()
        image = r.json()
        r = cloud.http("PUT", "%s/v2/images/%s/file" % (cloud.region1_glance, image["id"]),
                       headers={"Content-Type": "application/octet-stream"}, data=f, timeout=600)
        r.raise_for_status()
    os.unlink(path)
    return cloud.wait_image(image["id"], region="REGION1", timeout=600)


def disk_writes(pid):
    """Bytes the process caused to be written to storage (/proc/PID/io write_bytes)."""
    if pid is None:
        return 0
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cloud_pid(cloud, name):
    """The pid of a service scripts/cloud.sh started (its pids file: name pid start marker)."""
    with open(os.path.join(cloud.state_dir, "pids")) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == name:
                return int(parts[1])
    return None


def copy_once(cloud, url, source, region, target_glance, headers=None):
    """One copy; returns (seconds, the copy as Glance shows it)."""
    r = cloud.http("POST", target_glance + "/v2/images", json={
        "name": "gds-wan-copy", "disk_format": "raw", "container_format": "bare"})
    r.raise_for_status()
    target = r.json()["id"]
    try:
        t0 = time.monotonic()
        r = cloud.glance_download(url, target, source["id"], region=region, headers=headers)
        if r.status_code != 202:
            raise RuntimeError("import answered %s: %s" % (r.status_code, r.text[:300]))
        img = wait_active(cloud, target_glance, target)
        seconds = time.monotonic() - t0
        # checksum (MD5) is left unset by a location registered with do_secure_hash = False
        for key in ("size", "os_hash_value") + (("checksum",) if img.get("checksum") else ()):
            if img.get(key) != source.get(key):
                raise RuntimeError("copy differs from the source in %s" % key)
        return seconds, img
    finally:
        requests.delete("%s/v2/images/%s" % (target_glance, target),
                        headers={"X-Auth-Token": cloud.token()}, timeout=60)


def wait_active(cloud, glance, image_id, timeout=1800):
    deadline = time.monotonic() + timeout
    while True:
        img = requests.get("%s/v2/images/%s" % (glance, image_id),
                           headers={"X-Auth-Token": cloud.token()}, timeout=60).json()
        busy = "os_glance_import_task" in img or img.get("glance_download_task_status") in (
            "pending", "processing")
        if img["status"] == "active" and not busy:
            return img
        if img["status"] in ("killed", "deleted") or time.monotonic() > deadline or (
                img["status"] == "queued" and img.get("glance_download_task_status") == "failure"):
            raise RuntimeError("copy %s ended %s: %s" % (image_id, img["status"],
                                                         img.get("glance_download_message")))
        time.sleep(0.2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("wan", "s3"), default="wan")
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--segment-mib", type=int, default=8, help="segment_size of the N-stream sidecar")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--workdir", default="/tmp")
    a = p.parse_args()

    cloud = Cloud()
    extra, cleanups = [], []
    if a.mode == "wan":
        wan_port = int(os.environ["GDS_WAN_PORT"])
        cleanups.append(cloud.add_image_region(LINK_REGION, "http://127.0.0.1:%d" % wan_port))
        cloud.token(fresh=True)
        one = Sidecar(cloud.sidecar_bin, "wan-1", cloud.state_dir, cloud.region2_glance,
                      cloud.keystone_url)
        many = Sidecar(cloud.sidecar_bin, "wan-%d" % a.streams, cloud.state_dir, cloud.region2_glance,
                       cloud.keystone_url, {"source_streams": a.streams,
                                            "segment_size": a.segment_mib << 20})
        extra = [one, many]
        tg = cloud.region2_glance
        # (name, url, source region, target Glance, headers, pid of the sidecar or None)
        contenders = [
            ("upstream", cloud.region2_glance, LINK_REGION, tg, None, None),
            ("sidecar-1", one.url, LINK_REGION, tg, None, one.proc.pid),
            ("sidecar-%d" % a.streams, many.url, LINK_REGION, tg, None, many.proc.pid),
            ("sidecar-lan", one.url, "REGION1", tg, None, one.proc.pid),
        ]
    else:
        tg = os.environ["GDS_S3_GLANCE_URL"]
        url = os.environ["GDS_S3_IMAGE_URL"]
        pid = cloud_pid(cloud, "sidecar-REGION5")
        contenders = [
            ("upstream", tg, "REGION1", tg, None, None),
            ("sidecar-s3", url, "REGION1", tg, None, pid),
            ("sidecar-upload", url, "REGION1", tg, {SINK_HEADER: "glance-upload"}, pid),
        ]
    source = None
    times = {c[0]: [] for c in contenders}
    written = {c[0]: [] for c in contenders}
    checksums = {}
    try:
        source = make_source(cloud, a.size_mib << 20, a.workdir)
        for run in range(a.runs):
            for name, url, region, target_glance, headers, pid in contenders:
                before = disk_writes(pid)
                s, img = copy_once(cloud, url, source, region, target_glance, headers)
                written[name].append(disk_writes(pid) - before)
                times[name].append(s)
                checksums[name] = img.get("checksum")
                print("run %d %-14s %7.2f s  %7.1f MB/s" % (run + 1, name, s, source["size"] / s / 1e6),
                      flush=True)
        rss = {c[0]: peak_rss_kib(c[5]) for c in contenders if c[5]}
    finally:
        for sc in extra:
            sc.stop()
        for undo in cleanups:
            undo()
        if source:
            cloud.delete_quietly(source["id"], region="REGION1")

    size = source["size"]
    med = {name: statistics.median(v) for name, v in times.items()}
    rate = {name: size / s / 1e6 for name, s in med.items()}
    base = med["upstream"]
    result = {
        "mode": a.mode, "size_bytes": size, "runs": a.runs, "streams": a.streams,
        "segment_bytes": a.segment_mib << 20,
        "s3_do_secure_hash": os.environ.get("GDS_S3_SECURE_HASH") if a.mode == "s3" else None,
        "copy_checksum": checksums,
        "link": {"rtt_ms": int(os.environ.get("GDS_WAN_RTT_MS", "80")),
                 "mbit_per_sec": int(os.environ.get("GDS_WAN_MBIT", "1000")),
                 "window": os.environ.get("GDS_WAN_WINDOW", "4MiB")} if a.mode == "wan" else None,
        "median_seconds": med, "mb_per_s": rate,
        "speedup_vs_upstream": {name: base / s for name, s in med.items()},
        "all_seconds": times,
        # sidecar processes only (upstream is Glance itself): what they wrote to disk per copy
        # (the task journal's few lines) and their peak resident memory
        "sidecar_disk_write_bytes": {k: v for k, v in written.items() if k != "upstream"},
        "sidecar_peak_rss_kib": rss,
    }
    print()
    print("%-14s %10s %10s %12s" % ("contender", "median s", "MB/s", "vs upstream"))
    for name in times:
        print("%-14s %10.2f %10.1f %11.2fx" % (name, med[name], rate[name], base / med[name]))
    print("sidecar bytes written to disk per copy: %s" % {k: v for k, v in written.items() if k != "upstream"})
    print("sidecar peak RSS (KiB): %s" % rss)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
