"""The Debian package (scripts/package-deb.sh) on this machine: `dpkg -i`, its files, user and
journal directory; the packaged binary started as the packaged systemd unit says, with the packaged
config, answering /healthcheck and running a glance-download import (REGION1 -> REGION2's real
Glance); then `dpkg --purge`, after which nothing of it is left.

The test cloud has no systemd as PID 1, so the unit is run by hand, as systemd would: its ExecStart
command line, as its User= and Group= (setpriv, with NoNewPrivileges), with its Environment= and the
variables systemd sets, from /. Only the addresses are added, as the flags `--bind`, `--glance-url`
and `--auth-url` (which override the config file): the installed config itself is read as shipped
(its task journal included), so the config, the unit and the directory modes are what is tested.

The package is $GDS_DEB when set (scripts/test.sh builds it before the interop step); otherwise it
is built here from the cloud's sidecar binary. Needs root (dpkg).
"""
import grp
import os
import pwd
import shlex
import signal
import stat
import subprocess
import time

import requests

from conftest import LOG, assert_imported_like, run
from sidecars import free_port

NAME = "glance-download-sidecar"
UNIT = "/lib/systemd/system/%s.service" % NAME
CONF = "/etc/%s/sidecar.conf" % NAME
STATE = "/var/lib/%s" % NAME
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Installed files besides the unit and the config (each checked present, then gone after purge).
SHIPPED = ["/usr/bin/" + NAME,
           "/usr/share/bash-completion/completions/" + NAME,
           "/usr/share/zsh/vendor-completions/_" + NAME,
           "/usr/share/fish/vendor_completions.d/%s.fish" % NAME,
           "/usr/share/man/man1/%s.1.gz" % NAME,
           "/usr/share/man/man1/%s-serve.1.gz" % NAME,
           "/usr/share/doc/%s/copyright" % NAME,
           "/usr/share/doc/%s/README.md.gz" % NAME]


def deb_path(cloud):
    deb = os.environ.get("GDS_DEB")
    if not deb:
        assert cloud.sidecar_bin, "no GDS_DEB and no sidecar binary to build the package from"
        out = os.path.join(cloud.state_dir, "deb")
        deb = run([os.path.join(REPO, "scripts", "package-deb.sh"), "--binary", cloud.sidecar_bin,
                   "--out", out], timeout=300).stdout.strip().splitlines()[-1]
    assert os.path.isfile(deb), deb
    return deb


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", NAME], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() != "" and "not-installed" not in r.stdout


def exists(name, db):
    try:
        db(name)
        return True
    except KeyError:
        return False


def unit_service(path):
    """The [Service] section of a systemd unit: {key: [values]} (Environment= may repeat)."""
    section, out = None, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
            elif section == "[Service]":
                key, _, value = line.partition("=")
                out.setdefault(key, []).append(value)
    return out


def mode_owner(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def check_installed(deb):
    assert installed(), "dpkg does not list %s as installed" % NAME
    listed = set(run(["dpkg", "-L", NAME]).stdout.split())
    for path in SHIPPED + [UNIT, CONF]:
        assert path in listed and os.path.isfile(path), path
    user = pwd.getpwnam(NAME)
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin", user  # a system user
    assert grp.getgrgid(user.pw_gid).gr_name == NAME
    assert mode_owner("/usr/bin/" + NAME) == (0o755, "root", "root")
    assert mode_owner(CONF) == (0o640, "root", NAME)  # readable by the service, not by others
    assert mode_owner(STATE) == (0o750, NAME, NAME)
    assert CONF in run(["dpkg-query", "-W", "-f", "${Conffiles}", NAME]).stdout
    version = run(["dpkg-deb", "-f", deb, "Version"]).stdout.strip()
    assert run(["/usr/bin/" + NAME, "--version"]).stdout.split() == [NAME, version]


def start_as_unit(service, port, cloud, log_path):
    """The unit's ExecStart as its User/Group with its Environment, plus the three address flags."""
    exec_start = service["ExecStart"]
    assert len(exec_start) == 1, exec_start
    argv = shlex.split(exec_start[0])
    assert argv[:4] == ["/usr/bin/" + NAME, "serve", "--config", CONF], argv
    user, group = service["User"][0], service["Group"][0]
    assert user == NAME and group == NAME, (user, group)
    home = pwd.getpwnam(user).pw_dir
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/usr/sbin/nologin"}
    for assignment in service.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    privs = ["setpriv", "--reuid", user, "--regid", group, "--init-groups"]
    if service.get("NoNewPrivileges") == ["true"]:
        privs.append("--no-new-privs")
    argv = privs + ["--"] + argv + ["--bind", "127.0.0.1:%d" % port,
                                    "--glance-url", cloud.region2_glance,
                                    "--auth-url", cloud.keystone_url]
    LOG.info("starting the packaged unit's command: %s", shlex.join(argv))
    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    return proc


def wait_healthy(proc, url, log_path):
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "the packaged sidecar exited with %s; see %s" % (
            proc.returncode, log_path)
        try:
            r = requests.get(url + "/healthcheck", timeout=2)
            if r.status_code == 200:
                return r
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the packaged sidecar did not answer within 30 s"
        time.sleep(0.1)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def check_purged():
    assert not installed(), "%s still installed" % NAME
    for path in SHIPPED + [UNIT, CONF, os.path.dirname(CONF), STATE]:
        assert not os.path.exists(path), "left behind: %s" % path
    assert not exists(NAME, pwd.getpwnam), "user %s left behind" % NAME
    assert not exists(NAME, grp.getgrnam), "group %s left behind" % NAME


def test_debian_package_installs_serves_an_import_and_purges(cloud, target, source_raw):
    assert os.geteuid() == 0, "dpkg -i needs root"
    deb = deb_path(cloud)
    LOG.info("%s", run(["dpkg-deb", "--info", deb]).stdout)
    if installed():  # left by an interrupted run
        run(["dpkg", "--purge", NAME])
    assert not exists(NAME, pwd.getpwnam), "a user %s exists before the install" % NAME
    # A journal left by a sidecar run as root with the built-in default path: the package must
    # hand it to its user (as systemd's StateDirectory= would), or the service cannot start.
    os.makedirs(STATE, mode=0o755, exist_ok=True)
    with open(os.open(os.path.join(STATE, "tasks.jsonl"), os.O_WRONLY | os.O_CREAT, 0o600), "w"):
        pass
    proc = None
    try:
        LOG.info("%s", run(["dpkg", "-i", deb]).stdout)
        check_installed(deb)
        service = unit_service(UNIT)
        # the unit's state directory is where the packaged config puts the task journal
        assert service["StateDirectory"] == [NAME] and service["StateDirectoryMode"] == ["0750"]
        with open(CONF) as f:
            assert "task_journal = %s/tasks.jsonl\n" % STATE in f.read()

        port = free_port()
        url = "http://127.0.0.1:%d" % port
        log_path = os.path.join(cloud.state_dir, "logs", "sidecar-packaged.log")
        proc = start_as_unit(service, port, cloud, log_path)
        wait_healthy(proc, url, log_path)
        journal = os.path.join(STATE, "tasks.jsonl")
        assert mode_owner(journal) == (0o600, NAME, NAME)

        tgt = target()
        cloud.glance("image-import", tgt["id"], "--import-method", "glance-download",
                     "--remote-region", "REGION1", "--remote-image-id", source_raw.id, image_url=url)
        task, _ = cloud.wait_task_done(tgt["id"], url=url)
        assert task["status"] == "success", task
        img = cloud.wait_image(tgt["id"])
        assert_imported_like(img, source_raw)
        assert img["checksum"] == source_raw.md5
        with open(journal) as f:
            assert tgt["id"] in f.read(), "the import is not in the packaged journal"
        assert stop(proc) == 0, "the packaged sidecar did not stop cleanly; see %s" % log_path
    finally:
        if proc is not None:
            stop(proc)
        if installed():
            LOG.info("%s", run(["dpkg", "--purge", NAME]).stdout)
    check_purged()
