"""`sync` and `tasks` signed in the ways operators do besides a password, against the real Keystone:
an application credential created with `openstack application credential create` (from OS_*
variables, and by name from a clouds.yaml), and a bare token from `openstack token issue`. Missing
credentials exit 64 naming the key, and no secret is printed.
"""
import json
import os
import uuid

import pytest

from conftest import LOG, run, sync_copies



@pytest.fixture
def source_image(cloud, workdir):
    """A small raw image of its own per test in REGION1; it and its copies go afterwards."""
    if not cloud.sidecar_bin:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    name = "gds-creds-%s" % uuid.uuid4().hex[:8]
    path = workdir / (name + ".raw")
    with open(path, "wb") as f:
        f.write(os.urandom(384 << 10))
    img = cloud.osc_json("image", "create", name, "--disk-format", "raw", "--container-format", "bare",
                         "--file", str(path), region="REGION1")
    img = cloud.wait_image(img["id"], region="REGION1")
    yield img
    for region in ("REGION2", "REGION3"):
        for copy in sync_copies(cloud, region, img["id"]):
            cloud.delete_quietly(copy["id"], region=region)
    cloud.delete_quietly(img["id"], region="REGION1")


@pytest.fixture
def app_credential(cloud):
    """An application credential of the demo user (demo project, all its roles)."""
    name = "gds-sync-%s" % uuid.uuid4().hex[:8]
    # Keystone makes up the secret (not on a logged command line); OSC's keys vary in case.
    cred = {k.lower(): v for k, v in
            cloud.osc_json("application", "credential", "create", name).items()}
    yield name, cred["id"], cred["secret"]
    cloud.osc("application", "credential", "delete", cred["id"], check=False)


def _env(cloud, **os_vars):
    """The suite's environment without any OS_* variable or clouds.yaml, plus `os_vars`."""
    env = {k: v for k, v in cloud.env.items() if not k.startswith("OS_")}
    env["OS_AUTH_URL"] = cloud.keystone_url
    env.update(os_vars)
    return env


def _tool(cloud, args, env, check=True):
    result = run([cloud.sidecar_bin, *args], env=env, check=check, timeout=600)
    LOG.info("stderr:\n%s", result.stderr[-3000:])
    return result



def _sync(cloud, image, env, to="REGION2,REGION3"):
    out = _tool(cloud, ["sync", "--from", "REGION1", "--to", to, image["id"], "--json"], env)
    return json.loads(out.stdout)


def test_sync_with_an_application_credential(cloud, source_image, app_credential, tmp_path):
    name, cred_id, secret = app_credential
    env = _env(cloud, OS_AUTH_TYPE="v3applicationcredential",
               OS_APPLICATION_CREDENTIAL_ID=cred_id, OS_APPLICATION_CREDENTIAL_SECRET=secret)
    report = _sync(cloud, source_image, env)
    t = report["totals"]
    assert (t["copied"], t["failed"]) == (2, 0), report
    for region in ("REGION2", "REGION3"):
        copies = sync_copies(cloud, region, source_image["id"])
        assert len(copies) == 1, (region, copies)
        assert copies[0]["status"] == "active"
        assert copies[0]["checksum"] == source_image["checksum"]
        assert copies[0]["owner"] == source_image["owner"], "the credential's project"

    # By name and user, from a clouds.yaml: the copies are found and skipped.
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  gds-ac:\n    auth_type: v3applicationcredential\n    auth:\n"
        "      auth_url: %s\n      application_credential_name: %s\n      username: demo\n"
        "      user_domain_name: Default\n      application_credential_secret: %s\n"
        % (cloud.keystone_url, name, secret))
    env = _env(cloud, OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="gds-ac")
    env.pop("OS_AUTH_URL")
    report = _sync(cloud, source_image, env)
    assert report["totals"]["skipped"] == 2, report

    # A wrong secret: refused by Keystone, no secret printed.
    env = _env(cloud, OS_APPLICATION_CREDENTIAL_ID=cred_id,
               OS_APPLICATION_CREDENTIAL_SECRET="wrong-" + secret)
    bad = _tool(cloud, ["sync", "--from", "REGION1", "--to", "REGION3", source_image["id"]], env,
                check=False)
    assert bad.returncode == 1, bad.stderr
    assert "refused the credentials of application credential id %s" % cred_id in bad.stderr
    assert secret not in bad.stderr + bad.stdout


def test_sync_and_tasks_with_a_bare_token(cloud, source_image):
    token = cloud.token(fresh=True)
    env = _env(cloud, OS_AUTH_TYPE="token", OS_TOKEN=token, OS_PROJECT_NAME="demo",
               OS_PROJECT_DOMAIN_NAME="Default")
    report = _sync(cloud, source_image, env, to="REGION3")
    t = report["totals"]
    assert (t["copied"], t["failed"]) == (1, 0), report
    copies = sync_copies(cloud, "REGION3", source_image["id"])
    assert [c["status"] for c in copies] == ["active"], copies

    # `tasks` with the same token: REGION3's (empty) task list of the copy.
    tasks = _tool(cloud, ["tasks", "--region", "REGION3", copies[0]["id"], "--json"], env)
    assert isinstance(json.loads(tasks.stdout), list)
    assert token not in tasks.stdout + tasks.stderr + json.dumps(report)


def test_missing_credentials_exit_64_naming_the_key(cloud):
    if not cloud.sidecar_bin:
        pytest.skip("no sidecar binary")
    env = _env(cloud, OS_AUTH_TYPE="v3applicationcredential", OS_APPLICATION_CREDENTIAL_ID="x")
    for args in (["sync", "--from", "REGION1", "--to", "REGION3"],
                 ["tasks", "--region", "REGION3", str(uuid.uuid4())]):
        result = _tool(cloud, args, env, check=False)
        assert result.returncode == 64, result.stderr
        assert "application_credential_secret is missing" in result.stderr
