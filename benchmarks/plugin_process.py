"""fuxi-server as the benchmarks drive it: a process on a scratch unix socket,
called the way dockerd calls it. Shared by the scripts in this directory."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import requests_unixsocket

REPO = Path(__file__).resolve().parents[1]


class PluginServer:
    def __init__(self, workdir, config_text, env=None):
        self.socket = os.path.join(workdir, "fuxi.sock")
        config = os.path.join(workdir, "fuxi.conf")
        with open(config, "w") as f:
            f.write("[fuxi]\n" + config_text)
        self.log = open(os.path.join(workdir, "fuxi-server.log"), "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fuxi.server", "--config-file", config,
             "--socket", self.socket, "--state-dir", os.path.join(workdir, "state")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
            env=dict(os.environ, **(env or {})),
        )
        self.session = requests_unixsocket.Session()
        self.base = "http+unix://" + urllib.parse.quote(self.socket, safe="")
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("Plugin.Activate", {})
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit(f"fuxi-server did not start; see {self.log.name}")
                time.sleep(0.05)

    def call(self, method, body):
        resp = self.session.post(f"{self.base}/{method}", data=json.dumps(body) + "\n", timeout=130)
        answer = resp.json()
        if resp.status_code != 200 or answer.get("Err"):
            raise RuntimeError(f"{method}: {answer}")
        return answer

    def stop(self):
        self.session.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)
        self.log.close()
