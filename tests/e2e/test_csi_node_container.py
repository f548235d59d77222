"""fuxi-csi's node plugin in a container, run as the DaemonSet in
contrib/kubernetes/node.yaml runs it: on the host network, with the host's
/dev, /sys and /run/udev, kubelet's directory and the state directory both
with shared (Bidirectional) mount propagation (and SYS_ADMIN with every
device rather than privileged: see NodeContainer.start). The image is the
managed plugin's tree imported into dockerd (`contrib/docker-plugin/build.py
--csi-image`): no base image or registry is reachable here. The controller runs on the host; the cloud is devcloud.

What a cluster does to a node plugin: it stages and publishes a volume, then
the pod goes (an upgrade, a crash) while the volume stays in use, and a new
pod takes over. The pod's mounts must be the host's, so the volume stays
mounted and writable in between, and the new pod must find them, neither
taking the volume off the host nor refusing to unstage it.
"""

import os
import subprocess
import sys
import uuid

import grpc
import pytest

from fuxi_csi.stubs import csi, csi_grpc
from storage_core.devcloud.testing import release_loop_devices_under
from tests.clouds import start_devcloud
from tests.e2e.conftest import DOCKER, REPO
from tests.functional.csi_harness import CsiProcess, mount_capability, ok
from tests.functional.harness import mounted_under, wait_until

BUILD_SCRIPT = REPO / "contrib" / "docker-plugin" / "build.py"
IMAGE = "fuxi-csi-e2e:test"
STATE_DIR = "/var/lib/fuxi-csi"  # the node DaemonSet's
GIB = 1024**3
CAP = mount_capability("ext4")


@pytest.fixture(scope="module")
def csi_image(docker):
    build = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--csi-image", IMAGE, "--docker", DOCKER],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-4000:]
    yield IMAGE
    docker("rmi", "-f", IMAGE, check=False)


def shared_directory(path):
    """A directory that is a mount of its own with shared propagation, as
    kubelet's is: what Docker's rshared (Kubernetes' Bidirectional) needs."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "--make-rshared", str(path)], check=True)
    return path


class NodeContainer:
    def __init__(self, docker, image, host, clouds_yaml):
        self.docker, self.image, self.host, self.clouds_yaml = docker, image, host, clouds_yaml
        self.name = None
        self.last_log = ""
        self.socket = host / "plugin" / "csi.sock"

    def start(self):
        self.name = f"fuxi-csi-node-{uuid.uuid4().hex[:8]}"
        kubelet = self.host / "kubelet"
        self.docker(
            # node.yaml asks for privileged; this sandbox's kernel refuses some of
            # the capabilities that brings, so the container gets what the
            # managed plugin runs with (mount: SYS_ADMIN) and every device.
            "run", "-d", "--name", self.name, "--network", "host", "--cap-add", "SYS_ADMIN",
            "--cap-add", "SYS_PTRACE", "--device-cgroup-rule", "b *:* rwm", "--device-cgroup-rule", "c *:* rwm",
            "--security-opt", "apparmor=unconfined",
            "-v", f"{kubelet}:{kubelet}:rshared", "-v", f"{self.host / 'state'}:{STATE_DIR}:rshared",
            "-v", f"{self.host / 'plugin'}:/csi", "-v", "/dev:/dev", "-v", "/sys:/sys",
            "-v", "/run/udev:/run/udev:ro", "-v", f"{self.host / 'config'}:/etc/fuxi-csi:ro",
            "-v", f"{self.clouds_yaml}:/etc/openstack/clouds.yaml:ro",
            "-e", "OS_CLIENT_CONFIG_FILE=/etc/openstack/clouds.yaml",
            self.image, "--endpoint", "unix:///csi/csi.sock", "--config-file", "/etc/fuxi-csi/fuxi-csi.conf",
            "--services", "node")
        channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.node = csi_grpc.NodeStub(channel)

        def answers():
            try:
                return csi_grpc.IdentityStub(channel).Probe(csi.ProbeRequest(), timeout=2).ready.value
            except grpc.RpcError:
                return False

        wait_until(answers, timeout=60, what=f"the node plugin in {self.name} answering\n{self.log()}")
        return self

    def call(self, method, **fields):
        return getattr(self.node, method)(getattr(csi, method + "Request")(**fields), timeout=150)

    def log(self):
        if self.name is None:
            return ""
        result = self.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self):
        """The pod goes at once, as when its node plugin crashes or is replaced."""
        self.last_log = self.log()
        self.docker("rm", "-f", self.name, check=False)


@pytest.fixture
def host(tmp_path):
    """A shared directory standing for the host: kubelet's dir, the state dir, the plugin dir."""
    root = shared_directory(tmp_path / "host")
    for sub in ("kubelet", "state", "plugin", "config"):
        (root / sub).mkdir()
    yield root
    for mountpoint in reversed(mounted_under(root)):
        subprocess.run(["umount", "-l", mountpoint], check=False)


def test_the_node_plugin_survives_its_pod_and_a_new_one_takes_over(docker, csi_image, host, tmp_path):
    devcloud, cloud = start_devcloud(tmp_path / "cloud")
    controller = containers = None
    try:
        (host / "config" / "fuxi-csi.conf").write_text(
            f"[csi]\ncloud = {cloud.cloud_name}\nstate_dir = {STATE_DIR}\nbackends = cinder\nmax_size_gb = 10\n"
            + "".join(f"{k} = {v}\n" for k, v in cloud.plugin_options.items()))
        controller = CsiProcess(tmp_path / "controller", {"cloud": cloud.cloud_name, "backends": "cinder",
                                                          **cloud.plugin_options},
                                env=cloud.env(), services="controller").start()
        containers = [NodeContainer(docker, csi_image, host, cloud.clouds_yaml).start()]
        volume = ok(controller.call("controller", "CreateVolume", name="pvc-e2e", volume_capabilities=[CAP],
                                    capacity_range=csi.CapacityRange(required_bytes=GIB))).volume
        staging = host / "kubelet" / "plugins" / "fuxi.csi.openstack.org" / "pv" / "pvc-e2e" / "globalmount"
        target = host / "kubelet" / "pods" / "pod-1" / "volumes" / "pvc-e2e" / "mount"
        staging.mkdir(parents=True)
        target.parent.mkdir(parents=True)
        node = containers[0]
        node.call("NodeStageVolume", volume_id="pvc-e2e", staging_target_path=str(staging), volume_capability=CAP,
                  volume_context=volume.volume_context)
        node.call("NodePublishVolume", volume_id="pvc-e2e", staging_target_path=str(staging),
                  target_path=str(target), volume_capability=CAP)
        # The container's mounts reached the host (the pod's view of the volume).
        assert os.path.ismount(target) and os.path.ismount(staging)
        (target / "written").write_text("by pod-1 while the first node plugin ran\n")

        node.remove()  # the node plugin's pod goes; the volume stays in use
        assert os.path.ismount(target) and os.path.ismount(host / "state" / "mounts" / "pvc-e2e")
        (target / "written").write_text("by pod-1 with no node plugin running\n")
        [record] = cloud.volumes_named("pvc-e2e")
        assert record.status == "in-use"

        node = NodeContainer(docker, csi_image, host, cloud.clouds_yaml).start()
        containers.append(node)
        # kubelet calls again: the same answers, nothing taken off the host.
        node.call("NodeStageVolume", volume_id="pvc-e2e", staging_target_path=str(staging), volume_capability=CAP,
                  volume_context=volume.volume_context)
        node.call("NodePublishVolume", volume_id="pvc-e2e", staging_target_path=str(staging),
                  target_path=str(target), volume_capability=CAP)
        assert "taken off this host" not in node.log(), node.log()
        assert (target / "written").read_text() == "by pod-1 with no node plugin running\n"

        node.call("NodeUnpublishVolume", volume_id="pvc-e2e", target_path=str(target))
        node.call("NodeUnstageVolume", volume_id="pvc-e2e", staging_target_path=str(staging))
        assert not os.path.ismount(staging) and not target.exists()
        assert mounted_under(host / "state") == [] and cloud.attachments_of(record.id) == []
        ok(controller.call("controller", "DeleteVolume", volume_id="pvc-e2e"))
        assert cloud.volumes_named("pvc-e2e") == []
    finally:
        for container in containers or ():
            container.remove()
            print(container.last_log[-4000:])
        if controller is not None:
            controller.stop()
        for mountpoint in reversed(mounted_under(host)):
            subprocess.run(["umount", "-l", mountpoint], check=False)
        cloud.sdk.close()
        devcloud.stop()
        leaked = release_loop_devices_under(cloud.root)
    assert not leaked, f"loop devices left bound: {leaked}"
