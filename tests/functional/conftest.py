import os

import openstack
import pytest

from fuxi.devcloud_process import DevcloudProcess
from tests.functional.harness import PluginProcess, loop_devices_backed_by, mounted_under


class Cloud:
    """A cloud the plugin is pointed at through clouds.yaml, plus an SDK view for checks."""

    def __init__(self, clouds_yaml, cloud_name, entry, root):
        self.clouds_yaml = clouds_yaml
        self.cloud_name = cloud_name
        self.entry = entry
        self.root = root
        self.sdk = openstack.connection.Connection(
            auth=entry["auth"], region_name=entry.get("region_name"),
            identity_api_version="3", block_storage_api_version="3",
        )

    def volumes_named(self, name):
        return [v for v in self.sdk.block_storage.volumes(details=True, name=name) if v.name == name]

    def attachments_of(self, volume_id):
        return list(self.sdk.block_storage.attachments(volume_id=volume_id))


@pytest.fixture
def cloud(tmp_path):
    devcloud = DevcloudProcess(str(tmp_path / "devcloud"), clouds_yaml=str(tmp_path / "clouds.yaml"))
    entry = devcloud.start()
    yield Cloud(str(tmp_path / "clouds.yaml"), "devcloud", entry, str(tmp_path / "devcloud"))
    devcloud.stop()
    leaked = loop_devices_backed_by(tmp_path)
    for dev in leaked:  # release them for the next test, but still fail this one
        os.system(f"losetup -d {dev}")  # noqa: S605 - test cleanup of our own loop devices
    assert not leaked, f"loop devices left bound: {leaked}"


@pytest.fixture
def plugin_factory(tmp_path, cloud):
    started = []

    def make(workdir=None, extra_config=""):
        workdir = workdir or tmp_path / "host"
        os.makedirs(workdir, exist_ok=True)
        config = workdir / "fuxi.conf"
        config.write_text(f"[fuxi]\ncloud = {cloud.cloud_name}\nmax_size_gb = 10\n{extra_config}")
        plugin = PluginProcess(
            workdir, ["--config-file", str(config)], env={"OS_CLIENT_CONFIG_FILE": cloud.clouds_yaml}
        )
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        plugin.stop()
    for plugin in started:
        for mountpoint in mounted_under(plugin.workdir):
            os.system(f"umount -l '{mountpoint}'")  # noqa: S605 - test cleanup


@pytest.fixture
def plugin(plugin_factory):
    return plugin_factory().start()
