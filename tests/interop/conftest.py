"""Interop suite: real Keystone + two real Glance regions + glance-download-sidecar, driven by the real
clients (openstack / glance / openstacksdk) and raw HTTP.

Run with the environment written by scripts/cloud.sh:

    eval "$(scripts/cloud.sh env)"
    "$GDS_VENV/bin/pytest" tests/interop

REGION2's catalog image endpoint is the sidecar (GDS_REGION2_IMAGE_URL); REGION2's real Glance is
GDS_REGION2_GLANCE_URL. With `cloud.sh up --no-sidecar` the catalog points at the real Glance and the
suite checks upstream Glance itself (useful to validate the suite).

Every command and HTTP request is logged as it runs (live log, see pytest.ini).
"""
import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import uuid

import re

import pytest
import requests

sys.dont_write_bytecode = True  # keep the checkout clean (the test modules are imported after this)

LOG = logging.getLogger("interop")
HTTP_LOG_LINE = re.compile(r'http://127\.0\.0\.1:(\d+) "([A-Z]+) (\S+) HTTP/1\.[01]" (\d{3})')

REQUIRED_ENV = ("GDS_STATE_DIR", "GDS_VENV", "GDS_KEYSTONE_URL", "GDS_REGION1_GLANCE_URL",
                "GDS_REGION2_GLANCE_URL", "GDS_REGION2_IMAGE_URL", "GDS_DEMO_PASSWORD",
                "OS_CLIENT_CONFIG_FILE")

# Properties put on every source image. SYNCED match the default prefixes
# (hw_, trait:, os_distro, os_secure_boot, os_type); NOT_SYNCED must never be copied.
SYNCED_PROPS = {
    "hw_disk_bus": "scsi",
    "hw_scsi_model": "virtio-scsi",
    "hw_qemu_guest_agent": "yes",
    "trait:CUSTOM_GDS_INTEROP": "required",
    "os_distro": "ubuntu",
    "os_secure_boot": "required",
    "os_type": "linux",
}
NOT_SYNCED_PROPS = {
    "foo_bar": "baz",
    "os_admin_user": "root",
    "gds_marker": "source-only",
}
SYNC_PREFIXES = ("hw_", "trait:", "os_distro", "os_secure_boot", "os_type")
# The sidecar keeps its cross-instance import state as image properties in its own namespace
# (src/claim.rs PREFIX); by design they appear on the target image.
# The property `sync` marks its copies with: the source image's id.
SYNC_SOURCE_ID = "glance_download_source_image_id"
SIDECAR_NS = "glance_download_"
SIDECAR_STATUS = SIDECAR_NS + "task_status"
DEFAULT_TIMEOUT = float(os.environ.get("GDS_IMPORT_TIMEOUT", "120"))


def pytest_configure(config):
    missing = [k for k in REQUIRED_ENV if not os.environ.get(k)]
    if missing:
        raise pytest.UsageError(
            "interop suite needs the cloud's environment (missing %s): run\n"
            "  scripts/cloud.sh up && eval \"$(scripts/cloud.sh env)\"\n"
            "or scripts/interop/run.sh" % ", ".join(missing))
    for key in ("GDS_KEYSTONE_URL", "GDS_REGION1_GLANCE_URL", "GDS_REGION2_GLANCE_URL",
                "GDS_REGION2_IMAGE_URL"):
        if not os.environ[key].startswith("http://127.0.0.1:"):
            raise pytest.UsageError("%s=%s is not on 127.0.0.1" % (key, os.environ[key]))


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha512_file(path):
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _terminal_stdin():
    """A pseudo-terminal to use as the client's stdin.

    OSC (`image create`) and glanceclient upload stdin as image data whenever it is not a terminal,
    which would turn an "empty" import target into an active image. The usual `<&-` (closed fd 0) is
    not reliable: OSC checks `os.fstat(0)` only after it has opened connections, and a socket kept
    alive (e.g. to a keep-alive endpoint such as the sidecar) can take fd 0, after which OSC fails
    with "'NoneType' object has no attribute 'isatty'". A tty on fd 0 is the robust "no data" case.
    """
    master, slave = os.openpty()
    return master, slave


class CommandError(AssertionError):
    def __init__(self, result):
        self.result = result
        super().__init__("command failed (rc=%s): %s\nstdout: %s\nstderr: %s" % (
            result.returncode, shlex.join(result.args), result.stdout[-2000:], result.stderr[-2000:]))


def run(argv, env=None, check=True, timeout=180):
    """Run a client command with a terminal as stdin (no data), logging it first."""
    LOG.info("$ %s", shlex.join(argv))
    t0 = time.monotonic()
    master, slave = _terminal_stdin()
    try:
        result = subprocess.run(argv, env=env, stdin=slave, capture_output=True, text=True,
                                timeout=timeout)
    finally:
        os.close(slave)
        os.close(master)
    LOG.info("  -> rc=%s in %.1fs%s", result.returncode, time.monotonic() - t0,
             ("; stderr: " + result.stderr.strip().splitlines()[-1][:300])
             if result.returncode and result.stderr.strip() else "")
    if check and result.returncode != 0:
        raise CommandError(result)
    return result


class Cloud:
    """Handles to the running cloud: URLs, CLI wrappers, SDK connections, raw HTTP."""

    def __init__(self):
        e = os.environ
        self.state_dir = e["GDS_STATE_DIR"]
        self.venv = e["GDS_VENV"]
        self.bin = os.path.join(self.venv, "bin")
        self.keystone_url = e["GDS_KEYSTONE_URL"]
        self.region1_glance = e["GDS_REGION1_GLANCE_URL"]
        self.region2_glance = e["GDS_REGION2_GLANCE_URL"]
        self.region2_image_url = e["GDS_REGION2_IMAGE_URL"]  # catalog endpoint: the sidecar
        self.sidecar_url = e.get("GDS_SIDECAR_URL") or None
        self.sidecar_bin = e.get("GDS_SIDECAR_BIN") or None
        self.admin_password = e.get("GDS_ADMIN_PASSWORD", "")
        # each region's real Glance (REGION3: no glance-download; REGION4: import plugins;
        # REGION6: Glance 28 under eventlet)
        self.glance_urls = {"REGION1": self.region1_glance, "REGION2": self.region2_glance,
                            "REGION3": e.get("GDS_REGION3_GLANCE_URL"),
                            "REGION4": e.get("GDS_REGION4_GLANCE_URL"),
                            "REGION6": e.get("GDS_REGION6_GLANCE_URL")}
        self.region4_image_url = e.get("GDS_REGION4_IMAGE_URL")  # catalog: REGION4's sidecar
        self.inject_properties = dict(kv.split(":", 1) for kv in
                                      e.get("GDS_INJECT_PROPERTIES", "").split(",") if kv)
        self.demo_password = e["GDS_DEMO_PASSWORD"]
        self.store_mode = e.get("GDS_STORE_MODE", "multi")  # single: node_staging_uri, no enabled_backends
        self.clouds_yaml = e["OS_CLIENT_CONFIG_FILE"]
        self.env = dict(e)
        self.env["OS_CLIENT_CONFIG_FILE"] = self.clouds_yaml
        self.env.pop("OS_CLOUD", None)
        self.env["PYTHONWARNINGS"] = "ignore"
        self._token = None
        self._token_time = 0.0
        self._conns = {}

    # --- CLIs -----------------------------------------------------------------------------------
    def osc(self, *args, region="REGION2", cloud="gds-demo", direct=False, check=True, timeout=180):
        """`openstack --os-cloud CLOUD --os-region-name REGION ...`. direct=True bypasses the sidecar:
        cloud gds-demo-direct of clouds.yaml sets image_endpoint_override to REGION2's real Glance
        (OSC's --os-endpoint-override would only redirect version discovery, not the image calls)."""
        if direct:
            assert region == "REGION2" and cloud == "gds-demo", "direct: REGION2 demo only"
            cloud = "gds-demo-direct"
        argv = [os.path.join(self.bin, "openstack"), "--os-cloud", cloud, "--os-region-name", region]
        argv += [str(a) for a in args]
        return run(argv, env=self.env, check=check, timeout=timeout)

    def osc_debug(self, *args, **kw):
        """Run OSC with --debug; return (result, [(method, path, status, port), ...]) parsed from the
        urllib3 log lines ('http://127.0.0.1:PORT "POST /v2/... HTTP/1.1" 400 179'). Needed because
        OSC/openstacksdk do not check the status of POST /v2/images/{id}/import: `openstack image
        import` exits 0 even when Glance answers 400/409."""
        result = self.osc("--debug", *args, **kw)
        calls = []
        for line in result.stderr.splitlines():
            m = HTTP_LOG_LINE.search(line)
            if m:
                calls.append((m.group(2), m.group(3), int(m.group(4)), int(m.group(1))))
        return result, calls

    def osc_json(self, *args, **kw):
        out = self.osc(*args, "-f", "json", **kw).stdout
        return json.loads(out) if out.strip() else None

    def glance_env(self):
        env = dict(self.env)
        env.update({
            "OS_AUTH_URL": self.keystone_url, "OS_USERNAME": "demo", "OS_PASSWORD": self.demo_password,
            "OS_PROJECT_NAME": "demo", "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default", "OS_IDENTITY_API_VERSION": "3",
            "OS_INTERFACE": "public", "OS_ENDPOINT_TYPE": "publicURL",
        })
        env.pop("OS_CLIENT_CONFIG_FILE", None)
        return env

    def glance(self, *args, region="REGION2", image_url=None, check=True, timeout=180, extra=()):
        """python-glanceclient's `glance` (it has no --os-cloud: OS_* variables for the demo user)."""
        argv = [os.path.join(self.bin, "glance"), "--os-region-name", region, *extra]
        if image_url:
            argv += ["--os-image-url", image_url]
        argv += [str(a) for a in args]
        return run(argv, env=self.glance_env(), check=check, timeout=timeout)

    # --- SDK ------------------------------------------------------------------------------------
    def sdk(self, region="REGION2", cloud="gds-demo", direct=False):
        import openstack
        key = (region, cloud, direct)
        if key not in self._conns:
            kwargs = {}
            if direct:
                kwargs["image_endpoint_override"] = (self.region2_glance if region == "REGION2"
                                                     else self.region1_glance)
            LOG.info("openstack.connect(cloud=%r, region_name=%r%s)", cloud, region,
                     ", image_endpoint_override=%r" % kwargs["image_endpoint_override"] if direct else "")
            self._conns[key] = openstack.connect(cloud=cloud, region_name=region, **kwargs)
        return self._conns[key]

    # --- raw HTTP -------------------------------------------------------------------------------
    def token(self, fresh=False):
        """A demo token from `openstack token issue` (cached for 10 minutes)."""
        if fresh or not self._token or time.monotonic() - self._token_time > 600:
            self._token = self.osc("token", "issue", "-f", "value", "-c", "id",
                                   region="REGION2").stdout.strip()
            self._token_time = time.monotonic()
        return self._token

    def http(self, method, url, token=True, headers=None, timeout=60, **kw):
        h = {}
        if token:
            h["X-Auth-Token"] = self.token() if token is True else token
        h.update(headers or {})
        shown = {k: ("<token>" if k.lower() == "x-auth-token" else v) for k, v in h.items()}
        body = kw.get("data") if kw.get("data") is not None else kw.get("json")
        LOG.info("HTTP %s %s headers=%s%s", method, url, shown,
                 (" body=%s" % (body if isinstance(body, (dict, list)) else repr(body)[:200])) if body is not None else "")
        r = requests.request(method, url, headers=h, timeout=timeout, **kw)
        LOG.info("  -> %s %s", r.status_code, r.headers.get("x-openstack-request-id", ""))
        return r

    def image_direct(self, image_id, region="REGION2"):
        """The image as the real Glance sees it (bypassing the sidecar)."""
        base = self.glance_urls[region]
        r = requests.get("%s/v2/images/%s" % (base, image_id), headers={"X-Auth-Token": self.token()},
                         timeout=30)
        r.raise_for_status()
        return r.json()

    def tasks_direct(self, image_id):
        r = requests.get("%s/v2/images/%s/tasks" % (self.region2_glance, image_id),
                         headers={"X-Auth-Token": self.token()}, timeout=30)
        r.raise_for_status()
        return r.json()["tasks"]

    def wait_image(self, image_id, statuses=("active",), timeout=DEFAULT_TIMEOUT, region="REGION2",
                   fail_statuses=("killed", "deleted"), settled=True):
        """Poll the real Glance until the image reaches one of `statuses` (bounded). settled: also
        wait until no import holds the image -- upstream sets the image active a moment before its
        task drops the lock (os_glance_import_task), and the sidecar records its task's end in its
        own properties (glance_download_task_status) a moment after the image went active."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            img = self.image_direct(image_id, region=region)
            if not seen or seen[-1] != img["status"]:
                seen.append(img["status"])
                LOG.info("  image %s status %s", image_id, img["status"])
            busy = "os_glance_import_task" in img or img.get(SIDECAR_STATUS) in ("pending", "processing")
            if img["status"] in statuses and not (settled and busy):
                return img
            if img["status"] in fail_statuses:
                raise AssertionError("image %s went %s (history %s)" % (image_id, img["status"], seen))
            if time.monotonic() > deadline:
                raise AssertionError("image %s not %s%s within %ss (history %s, last %s)"
                                     % (image_id, "/".join(statuses), " and unlocked" if settled else "",
                                        timeout, seen, img))
            time.sleep(0.5)

    def wait_task_done(self, image_id, url=None, timeout=DEFAULT_TIMEOUT, min_tasks=1, token=None,
                       method=None):
        """Poll GET /v2/images/{id}/tasks (through `url`, default the catalog endpoint; with `token`,
        default the demo token) until the newest api_image_import task -- of import `method` if
        given -- is success or failure. Returns (task, all tasks)."""
        url = url or self.region2_image_url
        deadline = time.monotonic() + timeout
        while True:
            r = requests.get("%s/v2/images/%s/tasks" % (url, image_id),
                             headers={"X-Auth-Token": token or self.token()}, timeout=30)
            if r.status_code == 200:
                every = r.json().get("tasks", [])
                tasks = [t for t in every if t.get("type") == "api_image_import"
                         and (method is None or import_method(t) == method)]
                if len(tasks) >= min_tasks:
                    newest = max(tasks, key=lambda t: t.get("created_at") or "")
                    if newest.get("status") in ("success", "failure"):
                        LOG.info("  task %s %s: %s", newest.get("id"), newest.get("status"),
                                 newest.get("message"))
                        return newest, (every if method else tasks)
            if time.monotonic() > deadline:
                raise AssertionError("no finished import task for %s within %ss (last answer %s %s)"
                                     % (image_id, timeout, r.status_code, r.text[:500]))
            time.sleep(0.5)

    # --- image helpers --------------------------------------------------------------------------
    def create_target(self, name, disk_format="raw", container_format="bare", properties=None,
                      direct=False, region="REGION2"):
        """An empty queued image in `region`, by default REGION2 (OSC, a terminal as stdin, no
        --file)."""
        args = ["image", "create", name, "--disk-format", disk_format,
                "--container-format", container_format]
        for k, v in (properties or {}).items():
            args += ["--property", "%s=%s" % (k, v)]
        img = self.osc_json(*args, direct=direct, region=region)
        assert img["status"] == "queued", img
        return img

    def delete_quietly(self, image_id, region="REGION2"):
        base = self.glance_urls[region]
        try:
            requests.delete("%s/v2/images/%s" % (base, image_id),
                            headers={"X-Auth-Token": self.token()}, timeout=30)
        except requests.RequestException:
            pass


    # --- Keystone administration ----------------------------------------------------------------
    def admin_session(self):
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3
        auth = v3.Password(auth_url=self.keystone_url, username="admin", password=self.admin_password,
                           project_name="admin", user_domain_id="default", project_domain_id="default")
        return ks_session.Session(auth=auth, timeout=30)

    def add_image_region(self, region, url):
        """A region whose catalog image endpoints (public/internal/admin) point at `url`; returns a
        function that removes them again. New tokens see it at once (the catalog is read per token)."""
        sess = self.admin_session()
        base = self.keystone_url.rstrip("/")
        r = sess.post(base + "/regions", json={"region": {"id": region}}, raise_exc=False)
        assert r.status_code in (201, 409), r.text
        service = [s for s in sess.get(base + "/services").json()["services"] if s["type"] == "image"][0]
        made = []
        for iface in ("public", "internal", "admin"):
            ep = sess.post(base + "/endpoints", json={"endpoint": {
                "service_id": service["id"], "interface": iface, "region_id": region, "url": url,
                "enabled": True}}).json()["endpoint"]
            made.append(ep["id"])
        LOG.info("catalog: image endpoints of %s -> %s", region, url)

        def remove():
            for ep_id in made:
                sess.delete(base + "/endpoints/" + ep_id, raise_exc=False)
            sess.delete(base + "/regions/" + region, raise_exc=False)
        return remove

    def glance_download(self, url, image_id, source_id, region="REGION1", token=None, headers=None,
                        extra=None):
        """POST a glance-download import to `url` (a sidecar or a Glance); returns the response."""
        body = {"method": {"name": "glance-download", "glance_image_id": source_id,
                           "glance_region": region, "glance_service_interface": "public"}}
        body.update(extra or {})
        return self.http("POST", "%s/v2/images/%s/import" % (url, image_id), token=token or True,
                         headers=headers, json=body)


@pytest.fixture(scope="session")
def cloud():
    c = Cloud()
    LOG.info("cloud: keystone %s, REGION1 glance %s, REGION2 glance %s, REGION2 catalog image "
             "endpoint %s (sidecar: %s)", c.keystone_url, c.region1_glance, c.region2_glance,
             c.region2_image_url, c.sidecar_url or "none")
    return c


@pytest.fixture(scope="session")
def sidecar_present(cloud):
    return cloud.sidecar_url is not None


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("gds-interop")


def _make_qcow2(workdir, name, mib):
    raw = workdir / (name + ".raw")
    qcow = workdir / (name + ".qcow2")
    with open(raw, "wb") as f:
        f.write(os.urandom(mib << 20))
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)])
    raw.unlink()
    return qcow


def _make_raw(workdir, name, mib):
    raw = workdir / (name + ".raw")
    with open(raw, "wb") as f:
        f.write(os.urandom(mib << 20))
    return raw


class SourceImage:
    def __init__(self, kind, path, image):
        self.kind = kind
        self.path = path
        self.image = image
        self.id = image["id"]
        self.md5 = md5_file(path)
        self.sha512 = sha512_file(path)
        self.size = os.path.getsize(path)

    def __repr__(self):
        return "SourceImage(%s %s)" % (self.kind, self.id)


def _create_source(cloud, workdir, kind):
    run_id = uuid.uuid4().hex[:8]
    if kind == "qcow2":
        path = _make_qcow2(workdir, "src-" + run_id, 12)
        disk = "qcow2"
    else:
        path = _make_raw(workdir, "src-" + run_id, 6)
        disk = "raw"
    args = ["image", "create", "gds-src-%s-%s" % (kind, run_id), "--disk-format", disk,
            "--container-format", "bare", "--file", str(path)]
    for k, v in {**SYNCED_PROPS, **NOT_SYNCED_PROPS}.items():
        args += ["--property", "%s=%s" % (k, v)]
    img = cloud.osc_json(*args, region="REGION1")
    img = cloud.wait_image(img["id"], region="REGION1")
    src = SourceImage(kind, path, img)
    assert img["checksum"] == src.md5, "REGION1 checksum differs from the local file's MD5"
    assert img["os_hash_value"] == src.sha512
    assert img["size"] == src.size
    return src


@pytest.fixture(scope="session")
def source_qcow2(cloud, workdir):
    """A real qcow2 (qemu-img convert of random data) in REGION1 with hw_/trait:/os_* properties."""
    src = _create_source(cloud, workdir, "qcow2")
    yield src
    cloud.delete_quietly(src.id, region="REGION1")


@pytest.fixture(scope="session")
def source_raw(cloud, workdir):
    src = _create_source(cloud, workdir, "raw")
    yield src
    cloud.delete_quietly(src.id, region="REGION1")


@pytest.fixture
def target(cloud, request):
    """Factory for empty queued REGION2 targets, deleted after the test."""
    made = []

    def make(name=None, **kw):
        img = cloud.create_target(name or "gds-tgt-%s-%s" % (request.node.name[:40], uuid.uuid4().hex[:6]),
                                  **kw)
        made.append(img["id"])
        return img

    yield make
    for image_id in made:
        cloud.delete_quietly(image_id)


def import_method(task):
    """The import method name in a task's input (None when absent)."""
    return (((task.get("input") or {}).get("import_req") or {}).get("method") or {}).get("name")


def extra_properties(img):
    """The image's extra (non-core) properties, from a Glance v2 image JSON."""
    core = {"id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
            "os_hash_value", "size", "virtual_size", "container_format", "disk_format", "owner",
            "min_ram", "min_disk", "created_at", "updated_at", "tags", "self", "file", "schema",
            "locations", "direct_url", "os_hidden", "stores"}
    return {k: v for k, v in img.items() if k not in core}


def assert_restored(img, target_props):
    """Failed cleanly: queued, no data, qcow2 and the target's own properties `target_props` as
    before the import, no synced property left behind."""
    assert img["status"] == "queued", img
    assert not img.get("checksum") and not img.get("size"), img
    assert img["disk_format"] == "qcow2", img
    props = extra_properties(img)
    for k, v in target_props.items():
        assert props.get(k) == v, props
    for k in SYNCED_PROPS:
        if k not in target_props:
            assert k not in props, "synced property %s left behind: %s" % (k, props)
    assert "os_glance_import_task" not in props


def synced_subset(props):
    return {k: v for k, v in props.items() if k.startswith(SYNC_PREFIXES)}


def assert_imported_like(img, src):
    """The checks every successful glance-download must pass."""
    s = src.image
    assert img["status"] == "active", img
    assert img["size"] == s["size"], (img["size"], s["size"])
    assert img["checksum"] == s["checksum"]
    assert img["os_hash_algo"] == s["os_hash_algo"]
    assert img["os_hash_value"] == s["os_hash_value"]
    assert img["disk_format"] == s["disk_format"]
    assert img["container_format"] == s["container_format"]
    props = extra_properties(img)
    for k, v in SYNCED_PROPS.items():
        assert props.get(k) == v, "synced property %s: %r (want %r)" % (k, props.get(k), v)
    for k in NOT_SYNCED_PROPS:
        assert k not in props, "property %s must not be synced (got %r)" % (k, props[k])
    assert "os_glance_import_task" not in props, "import lock left behind"


@pytest.fixture
def start_sidecar(cloud, sidecar_present):
    """Factory for extra sidecar instances (tests/interop/sidecars.py), stopped after the test.
    Defaults: in front of REGION2's real Glance, with the cloud's Keystone."""
    from sidecars import Sidecar
    if not sidecar_present:
        pytest.skip("no sidecar binary (cloud.sh up --no-sidecar)")
    made = []

    def start(name, glance_url=None, **options):
        sc = Sidecar(cloud.sidecar_bin, name, cloud.state_dir, glance_url or cloud.region2_glance,
                     cloud.keystone_url, options)
        made.append(sc)
        return sc

    yield start
    for sc in made:
        sc.stop()


FAULT_REGION = "REGION1F"


@pytest.fixture(scope="session")
def fault_proxy(cloud):
    """A fault-injecting TCP proxy (netproxy.FaultProxy) in front of REGION1's Glance, in the catalog
    as region REGION1F. Faults are set per source image id; without one it passes bytes untouched."""
    from netproxy import FaultProxy
    port = int(cloud.region1_glance.rsplit(":", 1)[1])
    proxy = FaultProxy(port)
    remove = cloud.add_image_region(FAULT_REGION, proxy.url)
    cloud.token(fresh=True)  # a token issued after the catalog change
    yield proxy
    remove()
    proxy.close()


def sync_copies(cloud, region, source_id):
    """The images `sync` made in `region` from `source_id`, hidden ones (`--prune=hide`) included."""
    found = []
    for hidden in ("false", "true"):
        r = cloud.http("GET", "%s/v2/images" % cloud.glance_urls[region],
                       params={SYNC_SOURCE_ID: source_id, "os_hidden": hidden})
        r.raise_for_status()
        found += r.json()["images"]
    return found
