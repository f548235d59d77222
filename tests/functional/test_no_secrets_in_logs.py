"""No password, token or key in fuxi-server's log, at any level (DEBUG here).

fuxi-server runs on devcloud at log_level = DEBUG (keystoneauth and
openstacksdk log every request and response then) through a whole Cinder
lifecycle and a CephFS share's (a cephx access rule, whose key Manila hands
back), with the tokens made to expire half-way so that fuxi authenticates
again. Then its log is searched for:

* the cloud's password: devcloud runs here with a password of its own, one that
  appears nowhere else (devcloud's usual one is the word "devcloud", which every
  path in the log contains);
* any token devcloud issued: all share one shape (base64url of a JSON claim set
  starting {"u": ..., then a signature), pinned on a token we obtain ourselves;
  and any X-Auth-Token / X-Subject-Token value that is not keystoneauth's hash;
* the cephx key of the share's access rule, as Manila (devcloud) returned it.

(tests/functional/test_keystone.py does the same for the real Keystone's password,
application credential and trust auth.)
"""

import os
import re
import secrets
import subprocess
import sys
import time

import pytest
import yaml

from storage_core.devcloud.testing import Control, release_loop_devices_under
from tests.clouds import BAREMETAL, Cloud
from tests.functional.harness import PluginProcess, mounted_under, ok
from tests.share_servers import devcloud_share_args

# devcloud's password is a constant of its Keystone; this launcher gives it another.
DEVCLOUD_WITH_PASSWORD = """
import sys
import storage_core.devcloud.keystone as keystone
import storage_core.devcloud.server as server
password = sys.argv.pop(1)
keystone.DEFAULT_PASSWORD = server.DEFAULT_PASSWORD = password
keystone.Identity.__init__.__defaults__ = (password,)
from storage_core.devcloud.cli import main
sys.exit(main(sys.argv[1:]))
"""
# base64url('{"u":"') followed by the rest of the claims, a dot and an HMAC-SHA256.
DEVCLOUD_TOKEN = re.compile(r"eyJ1Ijoi[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{43}")
# A token header with a value that is not keystoneauth's "{SHA256}<hash>".
TOKEN_HEADER = re.compile(r"X-(?:Auth|Subject)-Token['\"]?\s*[:=]\s*['\"]?(?!\{SHA256\})([^\s'\",}]{8,})",
                          re.IGNORECASE)


@pytest.fixture
def secret_cloud(tmp_path, cephfs_server):
    """devcloud with a password of its own, its Manila on the session's CephFS."""
    password = "pw-" + secrets.token_urlsafe(24)
    state = tmp_path / "devcloud"
    state.mkdir()
    ready_file, clouds_yaml = state / "ready.json", tmp_path / "clouds.yaml"
    argv = [sys.executable, "-c", DEVCLOUD_WITH_PASSWORD, password, "--state-dir", str(state),
            "--ready-file", str(ready_file), "--clouds-yaml", str(clouds_yaml), "--cloud-name", "devcloud",
            *devcloud_share_args(None, cephfs_server)]
    with open(tmp_path / "devcloud.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ready_file.exists():
            assert process.poll() is None, (tmp_path / "devcloud.log").read_text()
            assert time.monotonic() < deadline, "devcloud did not start"
            time.sleep(0.05)
        auth = yaml.safe_load(clouds_yaml.read_text())["clouds"]["devcloud"]["auth"]
        assert auth["password"] == password  # the launcher took
        cloud = Cloud("devcloud", clouds_yaml, "devcloud", state, dict(BAREMETAL, ceph_conf=cephfs_server.conf))
        cloud.password = password
        cloud.control = Control(yaml.safe_load(ready_file.read_text())["url"])
        yield cloud
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    leaked = release_loop_devices_under(state)
    assert not leaked, f"loop devices left bound: {leaked}"


@pytest.fixture
def debug_plugin(secret_cloud, tmp_path):
    workdir = tmp_path / "host"
    workdir.mkdir()
    settings = {"cloud": "devcloud", "log_level": "DEBUG", "host_name": "node1", **secret_cloud.plugin_options}
    config = workdir / "fuxi.conf"
    config.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    plugin = PluginProcess(workdir, ["--config-file", str(config)], env=secret_cloud.env())
    yield plugin.start()
    plugin.stop()
    for mountpoint in mounted_under(workdir):
        subprocess.run(["umount", "-l", mountpoint], check=False)


def cephx_key(cloud, share_name) -> str:
    [share] = cloud.shares_named(share_name)
    [rule] = cloud.sdk.shared_file_system.access_rules(share.id)
    assert rule.access_type == "cephx" and rule.access_key, rule
    return rule.access_key


def test_a_debug_log_of_volumes_and_shares_holds_no_secret(secret_cloud, debug_plugin):
    cloud, plugin = secret_cloud, debug_plugin
    # Our own token, to pin the shape every devcloud token has.
    own_token = cloud.sdk.auth_token
    assert DEVCLOUD_TOKEN.fullmatch(own_token), own_token

    # A Cinder volume: create, mount, write, unmount, mount again, remove.
    ok(plugin.call("VolumeDriver.Create", {"Name": "vol", "Opts": {"size": "1"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "vol", "ID": "a"}))["Mountpoint"]
    with open(os.path.join(path, "f"), "w") as f:
        f.write("data")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "vol", "ID": "a"}))
    # Every token so far stops working: fuxi must authenticate again (a second token).
    cloud.control.expire_tokens()
    ok(plugin.call("VolumeDriver.Mount", {"Name": "vol", "ID": "b"}))
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "vol", "ID": "b"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "vol"}))

    # A CephFS share: its cephx access rule carries a key.
    ok(plugin.call("VolumeDriver.Create", {"Name": "cfs", "Opts": {"backend": "manila", "proto": "cephfs"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "cfs", "ID": "c1"}))["Mountpoint"]
    key = cephx_key(cloud, "cfs")
    [keyring] = os.listdir(os.path.join(plugin.state_dir, "keys"))
    with open(os.path.join(plugin.state_dir, "keys", keyring), encoding="utf-8") as f:
        assert key in f.read()  # the key fuxi got is the one we look for
    ok(plugin.call("VolumeDriver.Get", {"Name": "cfs"}))
    ok(plugin.call("VolumeDriver.List", {}))
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "cfs", "ID": "c1"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "cfs"}))
    assert cloud.volumes_named("vol") == [] and cloud.shares_named("cfs") == []
    assert mounted_under(plugin.workdir) == [] and not os.path.exists(path)

    log = plugin.log(tail=None)
    # The log is DEBUG, with keystoneauth's request logs and a second authentication in it.
    assert "DEBUG keystoneauth" in log and "DEBUG storage_core" in log, log[-3000:]
    assert log.count("Making authentication request") >= 2, log[-3000:]
    assert "REQ: curl" in log

    assert cloud.password not in log, "the cloud's password appears in the fuxi-server log"
    tokens = set(DEVCLOUD_TOKEN.findall(log))
    assert not tokens, f"{len(tokens)} token(s) appear in the fuxi-server log"
    headers = TOKEN_HEADER.findall(log)
    assert not headers, f"token headers with clear values in the fuxi-server log: {headers[:3]}"
    assert key not in log, "the cephx key appears in the fuxi-server log"
    assert own_token not in log
