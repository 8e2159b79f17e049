#!/usr/bin/env python3
"""Cross-region copies of one image on the real test cloud, contenders side by side, interleaved.

Run with the cloud's environment (scripts/cloud.sh env) by scripts/bench-wan.sh (--mode wan) or
scripts/bench-s3.sh (--mode s3). On the same source image, each contender copies it into a fresh
target image and the time from the import request to a verified `active` image is taken.

--mode wan: a `glance-download-sidecar wan-link` listens on GDS_WAN_PORT in front of REGION1's Glance
(or of REGION1C's sidecar, which is in front of that Glance) and is put in Keystone's catalog as
region REGION1W; targets in REGION2. --contenders picks from:
  upstream        REGION2's own Glance, glance-download from REGION1W (one connection, staged on disk)
  sidecar-1       a sidecar in front of REGION2's Glance, one source stream
  sidecar-N       the same with N parallel Range streams (source_streams = N)
  sidecar-N-plain sidecar-N with compact_transfer = false (plain bytes even from a source sidecar)
  sidecar-lan     one stream from REGION1 itself (no link): what the link costs
--image KIND:MiB (repeatable) picks the source images, each copied by every contender:
  random   raw, random bytes (incompressible)
  sparse   raw, 10 % random data in 1 MiB runs, the rest zeros (a mostly empty VM disk)
  qcow2    qcow2 (qemu-img convert) of random data, every cluster allocated
  text     raw, log-like text lines (compressible, no zeros)

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
import subprocess
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


MIB = 1 << 20
WORDS = ["image", "volume", "glance", "nova", "region", "token", "request", "compute", "host",
         "store", "upload", "status", "active", "queued", "error", "warning", "info", "debug",
         "network", "port", "subnet", "router", "instance", "flavor", "keypair", "project"]


def text_chunk(rng, size):
    """`size` bytes of log-like lines: timestamps, words, numbers (compressible, never zero)."""
    lines, n = [], 0
    while n < size:
        line = "2026-%02d-%02d %02d:%02d:%02d.%06d %s[%d]: %s %s %s id=%08x took=%d ms\n" % (
            rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
            rng.randint(0, 59), rng.randint(0, 999999), rng.choice(WORDS), rng.randint(100, 99999),
            rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS), rng.getrandbits(32),
            rng.randint(0, 5000))
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()[:size]


def write_source(kind, size, path):
    """Writes a source image of `kind` at `path`; returns its disk_format."""
    import random
    rng = random.Random(size)
    raw = path + ".raw" if kind == "qcow2" else path
    with open(raw, "wb") as f:
        for off in range(0, size, MIB):
            n = min(MIB, size - off)
            if kind == "sparse" and (off // MIB) % 10 != 0:
                f.write(bytes(n))
            elif kind == "text":
                f.write(text_chunk(rng, n))
            else:
                f.write(os.urandom(n))
    if kind != "qcow2":
        return "raw"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, path], check=True)
    os.unlink(raw)
    return "qcow2"


def make_source(cloud, kind, size, workdir):
    path = os.path.join(workdir, "gds-wan-source-%s" % kind)
    disk_format = write_source(kind, size, path)
    with open(path, "rb") as f:
        r = cloud.http("POST", cloud.region1_glance + "/v2/images", json={
            "name": "gds-wan-source-%s" % kind, "disk_format": disk_format,
            "container_format": "bare"})
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
        "name": "gds-wan-copy", "disk_format": source["disk_format"], "container_format": "bare"})
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


def wan_contenders(cloud, a):
    """The wan mode's contenders asked for by --contenders, and the extra sidecars they need."""
    tg = cloud.region2_glance
    sidecars, contenders = {}, []

    def sidecar(name, options=None):
        if name not in sidecars:
            sidecars[name] = Sidecar(cloud.sidecar_bin, name, cloud.state_dir, tg,
                                     cloud.keystone_url, options)
        return sidecars[name]

    many = {"source_streams": a.streams, "segment_size": a.segment_mib << 20}
    if a.reorder_mib:
        many["reorder_buffer"] = a.reorder_mib << 20
    for name in a.contenders.split(","):
        if name == "upstream":
            contenders.append(("upstream", tg, LINK_REGION, tg, None, None))
            continue
        if name == "sidecar-1":
            sc, region = sidecar("wan-1"), LINK_REGION
        elif name == "sidecar-N":
            sc, region = sidecar("wan-%d" % a.streams, many), LINK_REGION
        elif name == "sidecar-N-plain":
            sc = sidecar("wan-%d-plain" % a.streams, dict(many, compact_transfer="false"))
            region = LINK_REGION
        elif name == "sidecar-lan":
            sc, region = sidecar("wan-1"), "REGION1"
        else:
            raise SystemExit("unknown contender %s" % name)
        label = name.replace("-N", "-%d" % a.streams)
        contenders.append((label, sc.url, region, tg, None, sc.proc.pid))
    return contenders, list(sidecars.values())


def run_image(cloud, a, kind, size, contenders):
    """Copies one source image of `kind` with every contender, `a.runs` times interleaved."""
    times = {c[0]: [] for c in contenders}
    written = {c[0]: [] for c in contenders}
    checksums = {}
    source = make_source(cloud, kind, size, a.workdir)
    try:
        for run in range(a.runs):
            for name, url, region, target_glance, headers, pid in contenders:
                before = disk_writes(pid)
                s, img = copy_once(cloud, url, source, region, target_glance, headers)
                written[name].append(disk_writes(pid) - before)
                times[name].append(s)
                checksums[name] = img.get("checksum")
                print("%-7s run %d %-16s %7.2f s  %7.1f MB/s" % (
                    kind, run + 1, name, s, source["size"] / s / 1e6), flush=True)
    finally:
        cloud.delete_quietly(source["id"], region="REGION1")
    med = {name: statistics.median(v) for name, v in times.items()}
    base = med.get("upstream")
    return {
        "kind": kind, "disk_format": source["disk_format"], "size_bytes": source["size"],
        "copy_checksum": checksums, "median_seconds": med,
        "mb_per_s": {name: source["size"] / s / 1e6 for name, s in med.items()},
        "speedup_vs_upstream": {name: base / s for name, s in med.items()} if base else None,
        "all_seconds": times,
        # sidecar processes only (upstream is Glance itself): what they wrote to disk per copy
        # (the task journal's few lines)
        "sidecar_disk_write_bytes": {k: v for k, v in written.items() if k != "upstream"},
    }


def print_image(r):
    print()
    print("%s %s, %d MiB" % (r["kind"], r["disk_format"], r["size_bytes"] >> 20))
    print("%-16s %10s %10s %12s" % ("contender", "median s", "MB/s", "vs upstream"))
    for name, s in r["median_seconds"].items():
        vs = r["speedup_vs_upstream"]
        print("%-16s %10.2f %10.1f %11s" % (name, s, r["mb_per_s"][name],
                                          "%.2fx" % vs[name] if vs else "-"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("wan", "s3"), default="wan")
    p.add_argument("--size-mib", type=int, default=256, help="(s3; wan without --image) image size")
    p.add_argument("--image", action="append", metavar="KIND:MiB",
                   help="wan: a source image (random, sparse, qcow2, text); default random:SIZE")
    p.add_argument("--contenders", default="upstream,sidecar-1,sidecar-N,sidecar-lan")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--segment-mib", type=int, default=8, help="segment_size of the N-stream sidecar")
    p.add_argument("--reorder-mib", type=int, default=0,
                   help="reorder_buffer of the N-stream sidecar (0: its default)")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--workdir", default="/tmp")
    a = p.parse_args()

    cloud = Cloud()
    extra, cleanups = [], []
    if a.mode == "wan":
        wan_port = int(os.environ["GDS_WAN_PORT"])
        cleanups.append(cloud.add_image_region(LINK_REGION, "http://127.0.0.1:%d" % wan_port))
        cloud.token(fresh=True)
    try:
        if a.mode == "wan":
            contenders, extra = wan_contenders(cloud, a)
        else:
            tg = os.environ["GDS_S3_GLANCE_URL"]
            url = os.environ["GDS_S3_IMAGE_URL"]
            pid = cloud_pid(cloud, "sidecar-REGION5")
            contenders = [
                ("upstream", tg, "REGION1", tg, None, None),
                ("sidecar-s3", url, "REGION1", tg, None, pid),
                ("sidecar-upload", url, "REGION1", tg, {SINK_HEADER: "glance-upload"}, pid),
            ]
        images = []
        for spec in a.image or ["random:%d" % a.size_mib]:
            kind, mib = spec.split(":")
            images.append(run_image(cloud, a, kind, int(mib) << 20, contenders))
        rss = {c[0]: peak_rss_kib(c[5]) for c in contenders if c[5]}
    finally:
        for sc in extra:
            sc.stop()
        for undo in cleanups:
            undo()

    first = images[0]
    result = {
        "mode": a.mode, "runs": a.runs, "streams": a.streams,
        "segment_bytes": a.segment_mib << 20, "reorder_bytes": a.reorder_mib << 20 or None,
        "s3_do_secure_hash": os.environ.get("GDS_S3_SECURE_HASH") if a.mode == "s3" else None,
        "link": {"rtt_ms": int(os.environ.get("GDS_WAN_RTT_MS", "80")),
                 "mbit_per_sec": int(os.environ.get("GDS_WAN_MBIT", "1000")),
                 "window": os.environ.get("GDS_WAN_WINDOW", "4MiB"),
                 "in_front_of": os.environ.get("GDS_WAN_TARGET", "glance")}
        if a.mode == "wan" else None,
        # the first image's figures at the top level, as before --image
        "size_bytes": first["size_bytes"], "median_seconds": first["median_seconds"],
        "mb_per_s": first["mb_per_s"], "speedup_vs_upstream": first["speedup_vs_upstream"],
        "images": images,
        # the sidecar processes' peak resident memory over all the images
        "sidecar_peak_rss_kib": rss,
    }
    for r in images:
        print_image(r)
        print("sidecar bytes written to disk per copy: %s" % r["sidecar_disk_write_bytes"])
    print("sidecar peak RSS (KiB): %s" % rss)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
