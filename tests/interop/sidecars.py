"""Extra glance-download-sidecar instances started by tests, beside the ones scripts/cloud.sh runs.

Each instance gets its own config file, task journal and log under the cloud's state folder, a free
port on 127.0.0.1, and is stopped with SIGTERM (then SIGKILL after a grace) by `stop()`.
"""
import logging
import os
import signal
import socket
import subprocess
import time

import requests

LOG = logging.getLogger("interop.sidecars")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sidecar:
    def __init__(self, binary, name, state_dir, glance_url, auth_url, options=None):
        self.name = name
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        folder = os.path.join(state_dir, "extra-sidecars")
        os.makedirs(folder, exist_ok=True)
        self.config = os.path.join(folder, name + ".conf")
        self.journal = os.path.join(folder, name + ".jsonl")
        self.log_path = os.path.join(state_dir, "logs", "sidecar-%s.log" % name)
        lines = ["[DEFAULT]", "task_journal = %s" % self.journal]
        for key, value in (options or {}).items():
            lines.append("%s = %s" % (key, value))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        argv = [binary, "serve", "--config", self.config, "--bind", "127.0.0.1:%d" % self.port,
                "--glance-url", glance_url, "--auth-url", auth_url]
        LOG.info("starting sidecar %s: %s", name, " ".join(argv))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("sidecar %s exited with %s; see %s"
                                     % (name, self.proc.returncode, self.log_path))
            try:
                if requests.get(self.url + "/healthcheck", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("sidecar %s did not answer within 30 s" % name)
            time.sleep(0.1)

    def metrics_text(self):
        r = requests.get(self.url + "/metrics", timeout=10)
        r.raise_for_status()
        return r.text

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
