"""The refcount survives kill -9; start-up refuses what cannot work."""

import os
import socket
import stat
import subprocess
import sys

from storage_core.devcloud.testing import loop_devices_under, release_loop_devices_under
from tests.functional.harness import PluginProcess, mounted_under, ok



def test_refcount_survives_kill_9(plugin_factory, cloud):
    plugin = plugin_factory().start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "c1"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "c1", "ID": "first"}))["Mountpoint"]
    ok(plugin.call("VolumeDriver.Mount", {"Name": "c1", "ID": "second"}))
    with open(os.path.join(path, "f"), "w") as f:
        f.write("before the crash")

    plugin.kill()
    plugin.start()

    ok(plugin.call("VolumeDriver.Unmount", {"Name": "c1", "ID": "first"}))
    assert os.path.ismount(path)
    with open(os.path.join(path, "f")) as f:
        assert f.read() == "before the crash"
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "c1"}))["Volume"]["Status"]["mounts"] == 1
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "c1", "ID": "second"}))
    assert not os.path.ismount(path)
    [vol] = cloud.volumes_named("c1")
    assert vol.status == "available" and cloud.attachments_of(vol.id) == []
    assert loop_devices_under(cloud.root) == {}
    ok(plugin.call("VolumeDriver.Remove", {"Name": "c1"}))


def test_without_a_cloud_the_server_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    result = subprocess.run(
        [sys.executable, "-m", "fuxi.server", "--socket", str(tmp_path / "s.sock"),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 2
    assert "OS_CLOUD" in result.stderr and "--devcloud" in result.stderr
    assert not (tmp_path / "s.sock").exists()


def test_socket_is_0660_stale_socket_replaced_live_one_refused(plugin_factory):
    plugin = plugin_factory()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(plugin.socket)
    stale.close()  # the file stays behind with nobody listening: stale
    plugin.start()
    assert stat.S_IMODE(os.stat(plugin.socket).st_mode) == 0o660

    result = subprocess.run(
        [sys.executable, "-m", "fuxi.server", "--socket", plugin.socket,
         "--state-dir", str(plugin.workdir) + "/other", *plugin.cloud_args],
        capture_output=True, text=True, env=plugin.env, timeout=60,
    )
    assert result.returncode == 2 and "already serving" in result.stderr
    assert plugin.call("Plugin.Activate", b"")[0] == 200  # the first one is untouched


def test_devcloud_mode_keeps_volumes_across_kill_9(tmp_path):
    plugin = PluginProcess(tmp_path, ["--devcloud"])
    try:
        plugin.start()
        ok(plugin.call("VolumeDriver.Create", {"Name": "d1", "Opts": {"size": "1"}}))
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": "d1", "ID": "a"}))["Mountpoint"]
        with open(os.path.join(path, "f"), "w") as f:
            f.write("durable")
        plugin.kill()
        plugin.start()
        volume = ok(plugin.call("VolumeDriver.Get", {"Name": "d1"}))["Volume"]
        assert volume["Status"]["mounts"] == 1 and volume["Mountpoint"] == path
        ok(plugin.call("VolumeDriver.Unmount", {"Name": "d1", "ID": "a"}))
        assert not os.path.ismount(path)
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": "d1", "ID": "b"}))["Mountpoint"]
        with open(os.path.join(path, "f")) as f:
            assert f.read() == "durable"
        ok(plugin.call("VolumeDriver.Unmount", {"Name": "d1", "ID": "b"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": "d1"}))
        assert ok(plugin.call("VolumeDriver.List", {}))["Volumes"] == []
    finally:
        plugin.stop()
        for mountpoint in mounted_under(tmp_path):
            subprocess.run(["umount", "-l", mountpoint], check=False)
    leaked = release_loop_devices_under(tmp_path)
    assert leaked == []


def test_nova_mode_without_an_instance_identity_refuses_to_start(tmp_path):
    config = tmp_path / "fuxi.conf"
    config.write_text(
        "[fuxi]\ncloud = nowhere\nattach_mode = nova\nmetadata_url = http://127.0.0.1:9\n"
        f"cloud_init_dir = {tmp_path}/no-cloud-init\n"
    )
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  nowhere:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n"
                      "      username: u\n      password: p\n      project_name: p\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    result = subprocess.run(
        [sys.executable, "-m", "fuxi.server", "--config-file", str(config),
         "--socket", str(tmp_path / "s.sock"), "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "instance_id" in result.stderr and "Traceback" not in result.stderr
