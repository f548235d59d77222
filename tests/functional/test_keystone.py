"""Keystone the way operators run it, against the real Keystone: password,
application credential and trust auth; tokens that expire under a running
server; no secret in the logs; one project never sees another's volumes."""

import os
import re
import time

import pytest
import yaml

from tests.clouds import BAREMETAL
from storage_core.devcloud.testing import loop_devices_under
from tests.functional.harness import PluginProcess, mounted_under, ok

ATTACH = "".join(f"{k} = {v}\n" for k, v in BAREMETAL.items())

AUTH_KINDS = {
    "realcloud": "password",
    "realcloud-appcred": "application credential",
    "realcloud-trust": "trust",
}
# Fernet tokens are url-safe base64 of a version byte 0x80: they start "gAAAAA".
FERNET_TOKEN = re.compile(r"gAAAAA[A-Za-z0-9_=-]{40,}")
SECRET_KEYS = ("password", "application_credential_secret", "token")



@pytest.fixture
def realcloud(realcloud_stack):
    cloud = realcloud_stack.cloud()
    cloud.empty_project()
    yield realcloud_stack
    cloud.empty_project()
    leaked = loop_devices_under(cloud.root)
    assert not leaked, f"loop devices left bound: {leaked}"


@pytest.fixture
def start_plugin(realcloud, tmp_path):
    started = []

    def start(cloud_name, log_level="INFO"):
        """Start fuxi-server on `cloud_name`: named in the config file, or by OS_CLOUD for the
        application credential, so both ways of choosing the cloud are used."""
        workdir = tmp_path / cloud_name
        workdir.mkdir()
        env = realcloud.cloud().env()
        config = workdir / "fuxi.conf"
        if cloud_name == "realcloud-appcred":
            env["OS_CLOUD"] = cloud_name
            config.write_text(f"[fuxi]\nlog_level = {log_level}\n{ATTACH}")
        else:
            config.write_text(f"[fuxi]\ncloud = {cloud_name}\nlog_level = {log_level}\n{ATTACH}")
        plugin = PluginProcess(workdir, ["--config-file", str(config)], env=env)
        started.append(plugin)
        return plugin.start()

    yield start
    for plugin in started:
        plugin.stop()
        for mountpoint in mounted_under(plugin.workdir):
            os.system(f"umount -l '{mountpoint}'")  # noqa: S605 - test cleanup


def full_flow(plugin, name):
    ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "a"}))["Mountpoint"]
    with open(os.path.join(path, "f"), "w") as f:
        f.write(name)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "a"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "b"}))["Mountpoint"]
    with open(os.path.join(path, "f")) as f:
        assert f.read() == name
    ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "b"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def secrets_of(clouds_yaml, cloud_name):
    with open(clouds_yaml, encoding="utf-8") as f:
        auth = yaml.safe_load(f)["clouds"][cloud_name]["auth"]
    return {k: v for k, v in auth.items() if k in SECRET_KEYS and v}


@pytest.mark.parametrize("cloud_name", sorted(AUTH_KINDS))
def test_each_auth_kind_runs_the_whole_flow_and_logs_no_secret(realcloud, start_plugin, cloud_name):
    plugin = start_plugin(cloud_name, log_level="DEBUG")
    full_flow(plugin, f"auth-{cloud_name}")
    assert list(realcloud.cloud().sdk.block_storage.volumes()) == []  # removed from project fuxi

    log = plugin.log(tail=None)
    assert "Making authentication request" in log  # DEBUG output of keystoneauth is there
    secrets = secrets_of(realcloud.ready["clouds_yaml"], cloud_name)
    assert secrets, f"no secret found for {cloud_name} to look for"
    for key, value in secrets.items():
        assert value not in log, f"the {key} of {cloud_name} appears in the fuxi-server log"
    tokens = FERNET_TOKEN.findall(log)
    assert not tokens, f"{len(tokens)} token(s) appear in the fuxi-server log"


def test_a_long_running_server_outlives_its_tokens(realcloud, start_plugin):
    from tests.conftest import REALCLOUD_TOKEN_EXPIRATION

    plugin = start_plugin("realcloud", log_level="DEBUG")
    ok(plugin.call("VolumeDriver.Create", {"Name": "longrun"}))
    # keystoneauth renews a token 120 s before it expires: past this point the
    # first token must have been replaced.
    renew_after = REALCLOUD_TOKEN_EXPIRATION - 120 + 5
    deadline = time.monotonic() + renew_after
    calls = 0
    while time.monotonic() < deadline:
        ok(plugin.call("VolumeDriver.Get", {"Name": "longrun"}))
        calls += 1
        time.sleep(1)
    full_flow(plugin, "longrun-2")
    ok(plugin.call("VolumeDriver.Remove", {"Name": "longrun"}))
    authentications = plugin.log(tail=None).count("Making authentication request")
    assert authentications >= 2, f"{authentications} authentication(s) over {calls} calls"


def test_other_projects_volumes_are_invisible_and_untouched(realcloud, start_plugin):
    other = realcloud.cloud("realcloud-other").sdk.block_storage
    theirs = other.create_volume(name="same-name", size=1, metadata={"volume_from": "fuxi", "fstype": "ext4"})
    try:
        other.wait_for_status(theirs, "available", wait=60)
        plugin = start_plugin("realcloud")
        status, body = plugin.call("VolumeDriver.Get", {"Name": "same-name"})
        assert status == 404, body
        assert ok(plugin.call("VolumeDriver.List", {}))["Volumes"] == []
        full_flow(plugin, "same-name")  # fuxi's own volume of that name, in its own project
        assert other.get_volume(theirs.id).status == "available"
    finally:
        other.delete_volume(theirs.id, ignore_missing=True)
        other.wait_for_delete(theirs, wait=60)
