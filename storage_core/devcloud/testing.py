"""Helpers for tests that run against devcloud (in-process or as a subprocess).

Loop devices are a machine-wide resource: a test that leaks one leaks it for
every later test and for the host, so these helpers make finding and
releasing the ones backed by a directory a one-liner.
"""

import json
import os
import subprocess
import sys
import time

import openstack.connection

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def connect(cloud, **kwargs) -> openstack.connection.Connection:
    """An openstacksdk Connection to ``cloud`` (a DevCloud or a cloud_config dict)."""
    config = cloud.cloud_config() if hasattr(cloud, "cloud_config") else cloud
    return openstack.connection.Connection(
        auth=dict(config["auth"]),
        region_name=config["region_name"],
        identity_api_version=config.get("identity_api_version", 3),
        block_storage_api_version=config.get("block_storage_api_version", 3),
        **kwargs,
    )


def loop_devices_under(directory) -> dict:
    """{device: backing file} for every loop device backed by a file in ``directory``."""
    directory = os.path.realpath(directory) + os.sep
    out = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        capture_output=True, text=True, check=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            backing = parts[1].strip()
            # The kernel marks backing files deleted after unlink.
            backing = backing.removesuffix(" (deleted)")
            if backing.startswith(directory):
                found[parts[0]] = backing
    return found


def release_loop_devices_under(directory) -> list:
    """Detach every loop device backed by a file in ``directory`` (test clean-up)."""
    released = []
    for device in loop_devices_under(directory):
        subprocess.run(["losetup", "-d", device], capture_output=True)
        released.append(device)
    return released


def wait_for_file(path, timeout=20.0, process=None):
    """Wait until ``path`` exists; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {path} appeared")
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear within {timeout} s")


def start_subprocess(state_dir, ready_file, *extra_args, env=None):
    """``python -m storage_core.devcloud`` in its own session; returns (process, ready).

    Its output is appended to ``<ready_file>.log``.
    """
    if os.path.exists(ready_file):
        os.unlink(ready_file)
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, environment.get("PYTHONPATH")) if p
    )
    # Output goes to a file, not a pipe: nobody drains a pipe during a test
    # and a full one would freeze the cloud.
    log_path = f"{ready_file}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "storage_core.devcloud", "--state-dir", str(state_dir),
             "--ready-file", str(ready_file), *map(str, extra_args)],
            cwd=REPO_ROOT, env=environment, start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_file(ready_file, process=process)
    except Exception:
        process.kill()
        process.wait(timeout=10)
        with open(log_path, encoding="utf-8", errors="replace") as f:
            raise RuntimeError(f"devcloud did not start:\n{f.read()}") from None
    with open(ready_file, encoding="utf-8") as f:
        return process, json.load(f)


class Control:
    """devcloud's test knobs over HTTP (``/devcloud/...``), for a devcloud in
    another process: arm and clear faults, expire tokens, read which
    operations were reached."""

    def __init__(self, url, timeout=10.0):
        import requests  # only tests need it; openstacksdk depends on it anyway

        self.url = url.rstrip("/") + "/devcloud"
        self._session = requests.Session()
        self._timeout = timeout

    def _call(self, method, path, **kwargs):
        resp = self._session.request(method, self.url + path, timeout=self._timeout, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {self.url}{path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json() if resp.content else None

    def add_fault(self, operation, **fields) -> list:
        """Arm one fault (fields as storage_core.devcloud.faults.Fault)."""
        return self._call("POST", "/faults", json={"operation": operation, **fields})["faults"]

    def faults(self) -> list:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (clients must authenticate again)."""
        self._call("POST", "/tokens/expire")

    def operations(self) -> dict:
        """{operation: requests served} since the last clear_operations()."""
        return self._call("GET", "/operations")["operations"]

    def clear_operations(self) -> None:
        self._call("DELETE", "/operations")

    def close(self) -> None:
        self._session.close()
