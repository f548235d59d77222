"""Run the embedded devcloud as a child process for `fuxi-server --devcloud`.

The cloud runs in its own process and is reached over HTTP like any cloud.
It is tied to fuxi-server's life (it gets SIGTERM when its parent dies, even
by kill -9) and keeps its state on disk, so a restarted fuxi-server finds every
volume and attachment again.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1
_READY_TIMEOUT = 30.0


class DevcloudError(Exception):
    pass


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class DevcloudProcess:
    def __init__(self, state_dir, latency_profile="none", log_path=None, clouds_yaml=None,
                 extra_args=()):
        """``extra_args``: more fuxi-devcloud flags, appended to its argv (e.g.
        the Manila backends: ``--glusterfs-server HOST --glusterfs-mount DIR``)."""
        self.state_dir = state_dir
        self.extra_args = [str(a) for a in extra_args]
        self.clouds_yaml = clouds_yaml
        self.latency_profile = latency_profile
        self.log_path = log_path or os.path.join(state_dir, "devcloud.log")
        self.ready_file = os.path.join(state_dir, "ready.json")
        self.process = None
        self.cloud = None
        self.ready = None

    def start(self) -> dict:
        """Start devcloud; return its clouds.yaml entry once it answers."""
        os.makedirs(self.state_dir, exist_ok=True)
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        argv = [
            sys.executable, "-m", "storage_core.devcloud",
            "--state-dir", self.state_dir,
            "--ready-file", self.ready_file,
            "--latency-profile", self.latency_profile,
        ]
        if self.clouds_yaml:
            argv += ["--clouds-yaml", self.clouds_yaml, "--cloud-name", "devcloud"]
        argv += self.extra_args
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        log.close()
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevcloudError(
                    f"devcloud exited with code {self.process.returncode}; see {self.log_path}"
                )
            if os.path.exists(self.ready_file):
                with open(self.ready_file, encoding="utf-8") as f:
                    self.ready = json.load(f)
                self.cloud = self.ready["cloud"]
                return self.cloud
            time.sleep(0.05)
        self.stop()
        raise DevcloudError(f"devcloud did not come up within {_READY_TIMEOUT:g} s; see {self.log_path}")

    def host_defaults(self) -> dict:
        """Where devcloud's emulated Nova host keeps its guest view: the config
        drive, the metadata service and the by-id/by-path disk links.

        All three or an error: a missing metadata URL must never fall back to
        the real link-local metadata address.
        """
        keys = ("config_drive_dir", "metadata_url", "disk_root")
        missing = [k for k in keys if not (self.ready or {}).get(k)]
        if missing:
            raise DevcloudError(f"devcloud's ready file lacks {', '.join(missing)}; see {self.log_path}")
        return {k: self.ready[k] for k in keys}

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
