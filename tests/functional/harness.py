"""Start fuxi-server as dockerd meets it: a process on a unix socket, called with
requests-unixsocket using the headers and body bytes dockerd sends.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

import requests_unixsocket

DOCKER_HEADERS = {"Accept": "application/vnd.docker.plugins.v1.2+json", "Host": ""}


class PluginProcess:
    def __init__(self, workdir, cloud_args, env=None, name="fuxi"):
        self.workdir = str(workdir)
        self.socket = os.path.join(self.workdir, f"{name}.sock")
        self.state_dir = os.path.join(self.workdir, "state")
        self.log_path = os.path.join(self.workdir, "fuxi-server.log")
        self.cloud_args = list(cloud_args)
        self.env = dict(os.environ, **(env or {}))
        self.process = None
        self._session = requests_unixsocket.Session()

    @property
    def base_url(self):
        return "http+unix://" + urllib.parse.quote(self.socket, safe="")

    def start(self, timeout=60.0):
        argv = [
            sys.executable, "-m", "fuxi.server",
            "--socket", self.socket, "--state-dir", self.state_dir, *self.cloud_args,
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fuxi-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.call("Plugin.Activate", b"")[1] == {"Implements": ["VolumeDriver"]}:
                    return self
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"fuxi-server did not answer within {timeout} s:\n{self.log()}")

    def call(self, method, body, timeout=130):
        """POST like dockerd: no Content-Type, a trailing newline. Returns (status, json)."""
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body) + "\n"
        resp = self._session.post(f"{self.base_url}/{method}", data=raw, headers=DOCKER_HEADERS, timeout=timeout)
        return resp.status_code, resp.json()

    def kill(self):
        """kill -9 the whole server (gunicorn master, worker and any devcloud child)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        # Close our keep-alive connection first so gunicorn need not wait it out.
        self._session.close()
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self, tail=20000):
        """The server's output: its last `tail` characters, or all of it with tail=None."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text if tail is None else text[-tail:]


def mounted_under(directory) -> list[str]:
    """Mount points at or below `directory` (mountinfo escapes spaces as \\040)."""
    directory = str(directory)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p == directory or p.startswith(directory.rstrip("/") + "/")]


def ok(answer):
    """A plugin answer that must be a success: its JSON body."""
    status, body = answer
    assert status == 200 and body.get("Err", "") == "", body
    return body


def wait_until(predicate, timeout=10.0, what="condition"):
    """Poll `predicate` every 20 ms until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)
