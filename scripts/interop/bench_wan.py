#!/usr/bin/env python3
"""Cross-region copies over an emulated long fat link, on the real test cloud, side by side.

Run by scripts/bench-wan.sh with the cloud's environment (scripts/cloud.sh env) and a
`glance-download-sidecar wan-link` listening on GDS_WAN_PORT in front of REGION1's Glance. The link is
put in Keystone's catalog as region REGION1W; then, on the same source image, interleaved, each
contender copies it into a fresh REGION2 image and the time from the import request to a verified
`active` image is taken:

  upstream      REGION2's own Glance, glance-download from REGION1W (one connection, staged on disk)
  sidecar-1     a sidecar in front of REGION2's Glance, one source stream
  sidecar-N     the same with N parallel Range streams (source_streams = N)
  sidecar-lan   one stream from REGION1 itself (no link): what the link costs

Prints a table and writes JSON (--json FILE). Every image it makes is deleted.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))
sys.dont_write_bytecode = True

from conftest import Cloud  # noqa: E402
from sidecars import Sidecar  # noqa: E402

LINK_REGION = "REGION1W"


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


def copy_once(cloud, url, source, region):
    r = cloud.http("POST", cloud.region2_glance + "/v2/images", json={
        "name": "gds-wan-copy", "disk_format": "raw", "container_format": "bare"})
    r.raise_for_status()
    target = r.json()["id"]
    try:
        t0 = time.monotonic()
        r = cloud.glance_download(url, target, source["id"], region=region)
        if r.status_code != 202:
            raise RuntimeError("import answered %s: %s" % (r.status_code, r.text[:300]))
        img = cloud.wait_image(target, timeout=1800)
        seconds = time.monotonic() - t0
        for key in ("size", "checksum", "os_hash_value"):
            if img.get(key) != source.get(key):
                raise RuntimeError("copy differs from the source in %s" % key)
        return seconds
    finally:
        cloud.delete_quietly(target)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--workdir", default="/tmp")
    a = p.parse_args()

    cloud = Cloud()
    wan_port = int(os.environ["GDS_WAN_PORT"])
    remove = cloud.add_image_region(LINK_REGION, "http://127.0.0.1:%d" % wan_port)
    cloud.token(fresh=True)
    one = Sidecar(cloud.sidecar_bin, "wan-1", cloud.state_dir, cloud.region2_glance, cloud.keystone_url)
    many = Sidecar(cloud.sidecar_bin, "wan-%d" % a.streams, cloud.state_dir, cloud.region2_glance,
                   cloud.keystone_url, {"source_streams": a.streams})
    contenders = [
        ("upstream", cloud.region2_glance, LINK_REGION),
        ("sidecar-1", one.url, LINK_REGION),
        ("sidecar-%d" % a.streams, many.url, LINK_REGION),
        ("sidecar-lan", one.url, "REGION1"),
    ]
    source = None
    times = {name: [] for name, _, _ in contenders}
    pids = {url: sc.proc.pid for sc in (one, many) for url in [sc.url]}
    written = {name: [] for name, _, _ in contenders}
    try:
        source = make_source(cloud, a.size_mib << 20, a.workdir)
        for run in range(a.runs):
            for name, url, region in contenders:
                before = disk_writes(pids.get(url))
                s = copy_once(cloud, url, source, region)
                written[name].append(disk_writes(pids.get(url)) - before)
                times[name].append(s)
                print("run %d %-12s %7.2f s  %7.1f MB/s" % (run + 1, name, s, source["size"] / s / 1e6),
                      flush=True)
        rss = {"sidecar-1": peak_rss_kib(one.proc.pid), "sidecar-%d" % a.streams: peak_rss_kib(many.proc.pid)}
    finally:
        one.stop()
        many.stop()
        remove()
        if source:
            cloud.delete_quietly(source["id"], region="REGION1")

    size = source["size"]
    med = {name: statistics.median(v) for name, v in times.items()}
    rate = {name: size / s / 1e6 for name, s in med.items()}
    base = med["upstream"]
    result = {
        "size_bytes": size, "runs": a.runs, "streams": a.streams,
        "link": {"rtt_ms": int(os.environ.get("GDS_WAN_RTT_MS", "80")),
                 "mbit_per_sec": int(os.environ.get("GDS_WAN_MBIT", "1000")),
                 "window": os.environ.get("GDS_WAN_WINDOW", "4MiB")},
        "median_seconds": med, "mb_per_s": rate,
        "speedup_vs_upstream": {name: base / s for name, s in med.items()},
        "all_seconds": times,
        # sidecar processes only (upstream is Glance itself): what they wrote to disk per copy
        # (the task journal's few lines) and their peak resident memory
        "sidecar_disk_write_bytes": {k: v for k, v in written.items() if k != "upstream"},
        "sidecar_peak_rss_kib": rss,
    }
    print()
    print("%-12s %10s %10s %12s" % ("contender", "median s", "MB/s", "vs upstream"))
    for name, _, _ in contenders:
        print("%-12s %10.2f %10.1f %11.2fx" % (name, med[name], rate[name], base / med[name]))
    print("sidecar bytes written to disk per copy: %s" % {k: v for k, v in written.items() if k != "upstream"})
    print("sidecar peak RSS (KiB): %s" % rss)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
