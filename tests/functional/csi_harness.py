"""Start fuxi-csi as kubelet and the sidecars meet it: a process serving gRPC on
a unix socket, called through the generated CSI stubs."""

import os
import signal
import subprocess
import sys
import time

import grpc
import pytest

from fuxi_csi.stubs import csi, csi_grpc
from tests.functional.harness import mounted_under

# Every call the suite makes waits at most this long (a sidecar's default is 60 s+).
CALL_TIMEOUT = 150


class CsiProcess:
    def __init__(self, workdir, options, env=None, services="controller,node", extra_config=""):
        self.workdir = str(workdir)
        self.socket = os.path.join(self.workdir, "csi.sock")
        self.log_path = os.path.join(self.workdir, "fuxi-csi.log")
        self.config = os.path.join(self.workdir, "fuxi-csi.conf")
        self.state_dir = os.path.join(self.workdir, "state")
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("[csi]\n" + "".join(f"{k} = {v}\n" for k, v in {"state_dir": self.state_dir, **options}.items()))
            f.write(extra_config)  # e.g. [pool:NAME] sections
        self.env = dict(os.environ, **(env or {}))
        self.services = services
        self.process = None
        self.channel = None

    def start(self, timeout=60.0):
        argv = [sys.executable, "-m", "fuxi_csi.server", "--endpoint", "unix://" + self.socket,
                "--config-file", self.config, "--services", self.services]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        self.channel = grpc.insecure_channel("unix://" + self.socket)
        self.identity = csi_grpc.IdentityStub(self.channel)
        self.controller = csi_grpc.ControllerStub(self.channel)
        self.node = csi_grpc.NodeStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fuxi-csi exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.identity.Probe(csi.ProbeRequest(), timeout=2).ready.value:
                    return self
            except grpc.RpcError:
                time.sleep(0.1)
        raise RuntimeError(f"fuxi-csi did not answer within {timeout} s:\n{self.log()}")

    def call(self, service, method, **fields):
        """service.method(fields...); the answer, or the RpcError (its .code())."""
        stub = getattr(self, service)
        request = getattr(csi, method + "Request")(**fields)
        try:
            return getattr(stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            return exc

    def stop(self):
        if self.channel is not None:
            self.channel.close()
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self, tail=20000):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""


def ok(answer):
    """A call that must have succeeded: its answer."""
    assert not isinstance(answer, grpc.RpcError), f"{answer.code()}: {answer.details()}"
    return answer


def code(answer):
    """The status code of a call that must have failed."""
    assert isinstance(answer, grpc.RpcError), f"expected an error, got {answer}"
    return answer.code()


def mount_capability(fs_type="", mode="SINGLE_NODE_WRITER"):
    return csi.VolumeCapability(
        mount=csi.VolumeCapability.MountVolume(fs_type=fs_type),
        access_mode=csi.VolumeCapability.AccessMode(mode=csi.VolumeCapability.AccessMode.Mode.Value(mode)))


@pytest.fixture
def csi_driver(cloud, tmp_path):
    """fuxi-csi processes on this cloud: driver(services, extra config text, **[csi] options)."""
    started = []

    def make(services, extra_config="", **options):
        settings = {"cloud": cloud.cloud_name, "max_size_gb": 10, "backends": "cinder, manila",
                    **cloud.plugin_options, **options}
        driver = CsiProcess(tmp_path / services.replace(",", "-"), settings, env=cloud.env(), services=services,
                            extra_config=extra_config)
        started.append(driver)
        return driver.start()

    yield make
    for driver in started:
        driver.stop()
    for mountpoint in reversed(mounted_under(tmp_path)):
        subprocess.run(["umount", "-l", mountpoint], check=False)


@pytest.fixture
def cluster(csi_driver):
    """(controller, node), each its own fuxi-csi."""
    return csi_driver("controller"), csi_driver("node")
