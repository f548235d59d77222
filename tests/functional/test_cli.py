"""The `fuxi` CLI against a real fuxi-server on devcloud: `fuxi volumes` and
`fuxi inspect` after Create and Mount (table and JSON, checked against the
cloud), a volume's pool origin after a claim, and `fuxi doctor` all OK on a
good set-up and failing, with a fix, on broken ones."""

import json
import os
import socket
import stat
import subprocess
import sys

import yaml

from fuxi.devcloud_process import DevcloudProcess
from tests.clouds import BAREMETAL
from tests.functional.harness import PluginProcess, ok, wait_until

# The CLI and the doctor's checks do not depend on the cloud's make; the real
# cloud's Keystone and Cinder versions are left to the conformance of the calls they use.
CLOUD_KINDS = ("devcloud", "devcloud-nova")
# Docker's mount ids are 64 hex digits.
MOUNT_A, MOUNT_B = "a1" * 32, "b2" * 32
CLAIMED_FROM_KEY = "fuxi_claimed_from"


def fuxi(*args, env=None, timeout=120):
    result = subprocess.run([sys.executable, "-m", "fuxi.cli", *map(str, args)], capture_output=True, text=True,
                            env=dict(os.environ, **(env or {})), timeout=timeout, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


def fuxi_json(*args, env=None):
    rc, out, err = fuxi(*args, "--json", env=env)
    assert rc == 0, err
    return json.loads(out)


def rows(table_text):
    return [line.split() for line in table_text.splitlines()]


def test_volumes_and_inspect_after_create_and_mount(cloud, plugin):
    ok(plugin.call("VolumeDriver.Create", {"Name": "data", "Opts": {"size": "1"}}))
    ok(plugin.call("VolumeDriver.Create", {"Name": "logs", "Opts": {"size": "2", "fstype": "xfs"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "data", "ID": MOUNT_A}))["Mountpoint"]
    ok(plugin.call("VolumeDriver.Mount", {"Name": "data", "ID": MOUNT_B}))
    [data], [logs] = cloud.volumes_named("data"), cloud.volumes_named("logs")

    rc, out, err = fuxi("--socket", plugin.socket, "volumes")
    assert rc == 0, err
    assert rows(out) == [["NAME", "BACKEND", "SIZE", "ATTACHED", "MOUNTS", "POOL"],
                         ["data", "cinder", "1", "GiB", "here", "2", "-"],
                         ["logs", "cinder", "2", "GiB", "no", "0", "-"]]
    listed = {r["name"]: r for r in fuxi_json("--socket", plugin.socket, "volumes")}
    assert listed["data"] == {**listed["data"], "id": data.id, "size_gb": 1, "attached": "here", "mounts": 2,
                              "pool": None, "mountpoint": path, "backend": "cinder"}
    assert (listed["logs"]["id"], listed["logs"]["attached"], listed["logs"]["mountpoint"]) == (logs.id, "no", None)

    # inspect reads the cloud afresh: Cinder's own status, attachments and metadata.
    detail = fuxi_json("--socket", plugin.socket, "inspect", "data")
    assert detail["VolumeId"] == data.id and detail["Status"]["cloud_status"] == "in-use"
    assert detail["MountCallers"] == {MOUNT_A: 1, MOUNT_B: 1}
    assert detail["Host"]["phase"] == "mounted" and stat.S_ISBLK(os.stat(detail["Host"]["device_path"]).st_mode)
    assert detail["Metadata"] == {"volume_from": "fuxi", "fstype": "ext4"}
    attachments = cloud.sdk.block_storage.get_volume(data.id).attachments
    assert [a["attachment_id"] for a in detail["CloudAttachments"]] == [a["attachment_id"] for a in attachments]
    nova = cloud.kind == "devcloud-nova"
    holder = cloud.devcloud["server_id"] if nova else socket.gethostname()
    rc, out, err = fuxi("--socket", plugin.socket, "inspect", "data")
    assert rc == 0, err
    shown = {key.strip(): value.strip() for key, value in (line.split("  ", 1) for line in out.splitlines())}
    expected = {"id": data.id, "size": "1 GiB", "fstype": "ext4", "cloud status": "in-use", "attached": "here",
                "attach mode": "nova" if nova else "baremetal", "held by": holder, "mountpoint": path,
                "pool": "none (created cold)", "mounts": f"2 ({MOUNT_A[:12]}, {MOUNT_B[:12]})"}
    assert {key: shown.get(key) for key in expected} == expected

    rc, out, err = fuxi("--socket", plugin.socket, "inspect", "nope")
    assert (rc, out) == (1, "") and err == "fuxi: volume 'nope' does not exist; create it first\n"
    for caller in (MOUNT_A, MOUNT_B):
        ok(plugin.call("VolumeDriver.Unmount", {"Name": "data", "ID": caller}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "data"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "logs"}))


POOL = "[pool:warm]\nsize_gb = 1\nfstype = ext4\ntier = 1\nmin_ready = 1\nmax = 1\nbatch = 1\nrefill_interval = 0.5\n"


def test_a_claimed_volume_shows_the_pool_it_came_from(cloud, plugin_factory, tmp_path):
    plugin = plugin_factory(tmp_path / "host")
    with open(os.path.join(plugin.workdir, "fuxi.conf"), "a") as f:
        f.write(POOL)
    plugin.start()
    wait_until(lambda: fuxi_json("--socket", plugin.socket, "pool", "status")[0]["ready"] == 1, timeout=60,
               what="a ready pool volume")
    ok(plugin.call("VolumeDriver.Create", {"Name": "warm-one", "Opts": {"size": "1"}}))
    ok(plugin.call("VolumeDriver.Create", {"Name": "cold-one", "Opts": {"size": "2"}}))

    # Recorded in the cloud, in the claim's one request: every host sees it.
    [claimed] = cloud.volumes_named("warm-one")
    assert claimed.metadata[CLAIMED_FROM_KEY] == "warm" and "fuxi_pool" not in claimed.metadata
    assert CLAIMED_FROM_KEY not in cloud.volumes_named("cold-one")[0].metadata
    listed = {r["name"]: r for r in fuxi_json("--socket", plugin.socket, "volumes")}
    assert (listed["warm-one"]["pool"], listed["cold-one"]["pool"]) == ("warm", None)
    rc, out, err = fuxi("--socket", plugin.socket, "volumes")
    assert rc == 0 and rows(out)[1:] == [["cold-one", "cinder", "2", "GiB", "no", "0", "-"],
                                         ["warm-one", "cinder", "1", "GiB", "no", "0", "warm"]], err
    rc, out, err = fuxi("--socket", plugin.socket, "inspect", "warm-one")
    assert rc == 0 and "\npool          warm\n" in out, err
    # Docker's Get shows it too (`docker volume inspect`).
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "warm-one"}))["Volume"]["Status"]["pool"] == "warm"
    ok(plugin.call("VolumeDriver.Remove", {"Name": "warm-one"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "cold-one"}))


# -- fuxi doctor ---------------------------------------------------------------------

# A protocol this machine's kernel mounts (it has no NFS client): the default
# share protocol a host cannot mount is rightly a WARN.
GOOD = {"default_share_proto": "glusterfs"}


def doctor_of(plugin, *extra, env=None):
    """fuxi doctor as fuxi-server was started: its config file, socket and state dir."""
    return fuxi("doctor", "--config-file", os.path.join(plugin.workdir, "fuxi.conf"), "--socket", plugin.socket,
                "--state-dir", plugin.state_dir, "--no-docker", *extra, env=env)


def by_check(record):
    return {c["check"]: c for c in record["checks"]}


def test_doctor_all_ok_then_a_socket_anyone_may_use_then_a_dead_server(cloud, plugin_factory):
    plugin = plugin_factory(options=GOOD).start()
    rc, out, err = doctor_of(plugin, "--json", env=cloud.env())
    record = json.loads(out)
    problems = [c for c in record["checks"] if c["status"] in ("WARN", "FAIL")]
    assert rc == 0 and record["ok"] and not problems, (problems, err)
    checks = by_check(record)
    expected_ok = ["config file", "cloud configured", "Keystone auth", "Cinder in the catalog",
                   "Cinder API microversions", "Manila API microversions", "ext4 file systems",
                   "GlusterFS shares (default_share_proto)", "state dir", "plugin socket", "socket permissions",
                   "answers /Plugin.Activate", "fuxi-server's set-up"]
    if cloud.kind == "devcloud-nova":
        expected_ok += ["Nova API microversions", "this host's Nova server", "guest disk links"]
        assert checks["attach mode"]["found"].startswith(f"nova (as configured); instance {cloud.devcloud['server_id']}")
    else:
        expected_ok += ["os-brick connector", "local (loop devices)", "bare-metal attach paths"]
    assert {name: checks[name]["status"] for name in expected_ok} == dict.fromkeys(expected_ok, "OK")
    assert checks["fuxi-server's set-up"]["found"].split(", ")[1] == f"mounts under {plugin.state_dir}/mounts"

    os.chmod(plugin.socket, 0o666)
    rc, out, err = doctor_of(plugin, env=cloud.env())
    assert rc == 1, out + err
    lines = out.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAIL  socket  socket permissions: mode 0666"))
    assert "any local user can create, mount and delete volumes" in lines[failed]
    assert lines[failed + 1].strip().startswith(f"fix: chmod 0660 {plugin.socket}; chown root:docker")
    assert lines[-1].endswith("1 FAIL: problems found: fix the FAIL lines")
    os.chmod(plugin.socket, 0o660)

    plugin.kill()  # the socket file stays, nobody answers
    rc, out, err = doctor_of(plugin, "--json", env=cloud.env())
    checks = by_check(json.loads(out))
    assert rc == 1 and checks["answers /Plugin.Activate"]["status"] == "FAIL", err
    assert "nothing answers" in checks["answers /Plugin.Activate"]["found"]
    assert checks["answers /Plugin.Activate"]["fix"] == "start fuxi-server; it replaces a stale socket"


def test_doctor_names_a_wrong_password_and_a_missing_cloud(cloud, tmp_path):
    with open(cloud.clouds_yaml) as f:
        clouds = yaml.safe_load(f)
    entry = clouds["clouds"][cloud.cloud_name]
    clouds["clouds"]["wrong-password"] = {**entry, "auth": {**entry["auth"], "password": "not-the-password"}}
    clouds_yaml = tmp_path / "clouds.yaml"
    clouds_yaml.write_text(yaml.safe_dump(clouds))
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}

    def doctor(cloud_name):
        conf = tmp_path / f"{cloud_name}.conf"
        conf.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in {"cloud": cloud_name, **BAREMETAL}.items()))
        rc, out, err = fuxi("doctor", "--config-file", conf, "--state-dir", tmp_path / "state", "--socket",
                            tmp_path / "none.sock", "--no-docker", "--json", env=env)
        assert rc == 1, err
        return by_check(json.loads(out))

    auth = doctor("wrong-password")["Keystone auth"]
    assert auth["status"] == "FAIL"
    assert auth["found"] == "Keystone refused the credentials of cloud 'wrong-password' (HTTP 401)"
    assert auth["fix"].startswith("correct the username and password")
    missing = doctor("nosuch")["cloud configured"]
    assert missing["status"] == "FAIL" and "nosuch" in missing["found"]
    assert missing["fix"].startswith("add an entry 'nosuch' under `clouds:` in clouds.yaml")


def test_doctor_devcloud_checks_the_cloud_a_devcloud_server_runs(tmp_path):
    """The README's first command runs `fuxi-server --devcloud`; `fuxi doctor
    --devcloud` then checks that server's embedded cloud, not one of its own."""
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in GOOD.items()))
    plugin = PluginProcess(tmp_path, ["--devcloud", "--config-file", str(conf)])
    try:
        plugin.start()
        rc, out, err = doctor_of(plugin, "--devcloud", "--json")
        record = json.loads(out)
        assert rc == 0 and not [c for c in record["checks"] if c["status"] in ("WARN", "FAIL")], err
        checks = by_check(record)
        with open(DevcloudProcess(os.path.join(plugin.state_dir, "devcloud")).ready_file) as f:
            ready = json.load(f)
        assert checks["embedded devcloud"]["found"].startswith(f"pid {ready['pid']} at {ready['url']}")
        assert checks["Keystone auth"]["found"].startswith(f"token from {ready['cloud']['auth']['auth_url']}")
        # Without --devcloud and with no cloud named, the running devcloud server is what there is to check.
        rc, out, err = doctor_of(plugin, "--json")
        checks = by_check(json.loads(out))
        assert rc == 0 and checks["cloud"]["status"] == "INFO", err
        assert "a `fuxi-server --devcloud` runs with state dir" in checks["cloud"]["found"]
        assert checks["embedded devcloud"]["status"] == checks["Keystone auth"]["status"] == "OK"

        rc, out, _err = fuxi("doctor", "--devcloud", "--state-dir", tmp_path / "elsewhere", "--no-docker")
        assert rc == 1 and f"FAIL  config  embedded devcloud: none runs for state dir {tmp_path}/elsewhere" in out
        assert f"fix: start fuxi-server --devcloud --state-dir {tmp_path}/elsewhere" in out
    finally:
        plugin.stop()
