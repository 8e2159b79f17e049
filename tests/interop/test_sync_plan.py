"""`sync --plan FILE` against the real cloud: the plan's dry run is the `--json` summary of the
same flags, then the plan copies from REGION1 to REGION2 (glance-download) and REGION3 (streamed),
signed in through the plan's `source.cloud` (clouds.yaml).
"""
import json
import os
import uuid

import pytest

from conftest import LOG, run, sync_copies


def _sync(cloud, *args, os_cloud=True):
    if not cloud.sidecar_bin:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    env = dict(cloud.env)
    env.pop("OS_CLOUD", None)
    if os_cloud:
        env["OS_CLOUD"] = "gds-demo"
    result = run([cloud.sidecar_bin, "sync", *args], env=env, check=False, timeout=600)
    LOG.info("sync stderr:\n%s", result.stderr[-3000:])
    return result


def _summary(result):
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    doc["seconds"] = doc["totals"]["seconds"] = 0
    for r in doc["results"]:
        r["seconds"] = 0
    return doc


def test_a_plan_dry_runs_as_its_flags_then_copies(cloud, workdir):
    tag = "gds-plan-%s" % uuid.uuid4().hex[:8]
    path = workdir / (tag + ".raw")
    with open(path, "wb") as f:
        f.write(os.urandom(128 << 10))
    img = cloud.osc_json("image", "create", tag, "--disk-format", "raw", "--container-format",
                         "bare", "--tag", tag, "--file", str(path), region="REGION1")
    sid = cloud.wait_image(img["id"], region="REGION1")["id"]
    plan = workdir / (tag + ".yaml")
    plan.write_text("source:\n  cloud: gds-demo\n  region: REGION1\n  filters:\n    tags: [%s]\n"
                    "targets:\n  regions: [REGION2, REGION3]\noptions:\n  keep_id: true\n" % tag)
    try:
        dry = _summary(_sync(cloud, "--plan", str(plan), "--dry-run", os_cloud=False))
        flags = _summary(_sync(cloud, "--from", "REGION1", "--to", "REGION2,REGION3", "--tag", tag,
                               "--keep-id", "--dry-run", "--json"))
        assert dry == flags
        assert [(r["region"], r["action"]) for r in dry["results"]] == \
            [("REGION2", "would_copy"), ("REGION3", "would_copy")], dry
        done = _summary(_sync(cloud, "--plan", str(plan), "--json", os_cloud=False))
        assert done["totals"]["copied"] == 2, done
        for region in ("REGION2", "REGION3"):
            copies = sync_copies(cloud, region, sid)
            assert [c["id"] for c in copies] == [sid], copies
    finally:
        for region in ("REGION2", "REGION3"):
            for c in sync_copies(cloud, region, sid):
                cloud.delete_quietly(c["id"], region=region)
        cloud.delete_quietly(sid, region="REGION1")
