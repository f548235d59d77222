"""The warm pool in a running fuxi-server: background refill, claims by Create,
the `fuxi pool` CLI, and a restart after kill -9."""

import json
import os
import signal
import subprocess
import sys
import threading

from tests.functional.harness import mounted_under, ok, wait_until

CLOUD_KINDS = ("devcloud", "realcloud")
POOL_KEY = "fuxi_pool"


def pool_config(tier, min_ready=1, maximum=2, name="warm"):
    return (f"[pool:{name}]\nsize_gb = 1\nfstype = ext4\ntier = {tier}\nmin_ready = {min_ready}\n"
            f"max = {maximum}\nbatch = 1\nrefill_interval = 0.5\n")


def start(plugin_factory, tmp_path, pools_text, name="host"):
    plugin = plugin_factory(tmp_path / name)
    with open(os.path.join(plugin.workdir, "fuxi.conf"), "a") as f:
        f.write(pools_text)
    return plugin.start()


def cli(plugin, *args):
    result = subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", plugin.socket, *args],
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


def status(plugin):
    rc, out, err = cli(plugin, "--json", "pool", "status")
    assert rc == 0, err
    return {p["pool"]: p for p in json.loads(out)}


def drain_for_good(plugin):
    """Restart without refilling (min_ready 0), then drain: no refill can race the drain."""
    plugin.stop()
    conf = os.path.join(plugin.workdir, "fuxi.conf")
    text = open(conf).read()
    open(conf, "w").write("\n".join("min_ready = 0" if line.startswith("min_ready") else line
                                    for line in text.splitlines()) + "\n")
    plugin.start()
    rc, out, err = cli(plugin, "pool", "drain")
    assert rc == 0, err
    plugin.stop()
    return out


def claim_mount_and_remove(plugin, name):
    """A Create that a ready pool volume serves, mounted, unmounted and removed."""
    ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c"}))["Mountpoint"]
    assert os.path.ismount(path)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def pool_volumes(cloud):
    return [v for v in cloud.sdk.block_storage.volumes(details=True) if POOL_KEY in (v.metadata or {})]


def test_tier4_pool_refills_and_a_create_claims_a_mounted_volume(cloud, plugin_factory, tmp_path):
    plugin = start(plugin_factory, tmp_path, pool_config(4))
    wait_until(lambda: status(plugin)["warm"]["ready"] >= 1, timeout=60, what="the background refill")
    [pooled] = [v.id for v in pool_volumes(cloud)]
    assert ok(plugin.call("VolumeDriver.List", {}))["Volumes"] == []  # never shown to Docker

    ok(plugin.call("VolumeDriver.Create", {"Name": "fast", "Opts": {"size": "1"}}))
    [vol] = cloud.volumes_named("fast")
    assert vol.id == pooled and POOL_KEY not in vol.metadata and vol.metadata["volume_from"] == "fuxi"
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "fast", "ID": "c1"}))["Mountpoint"]
    assert os.path.ismount(path)
    with open(os.path.join(path, "f"), "w") as f:
        f.write("warm\n")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "fast", "ID": "c1"}))
    assert not os.path.ismount(path) and cloud.attachments_of(vol.id) == []
    # The data is on the volume, which is an ordinary one now: mounted again, it is there.
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "fast", "ID": "c2"}))["Mountpoint"]
    assert open(os.path.join(path, "f")).read() == "warm\n"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "fast", "ID": "c2"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "fast"}))

    # The refill makes another; fill tops it up to max; drain empties it.
    wait_until(lambda: status(plugin)["warm"]["ready"] >= 1, timeout=60, what="the refill after a claim")
    rc, out, err = cli(plugin, "pool", "fill")
    assert rc == 0 and "made" in out, err
    assert status(plugin)["warm"]["ready"] == 2
    assert "deleted 2 volume(s)" in drain_for_good(plugin)
    assert pool_volumes(cloud) == []


def test_pool_volumes_survive_kill_9_and_unfinished_ones_are_undone(cloud, plugin_factory, tmp_path):
    plugin = start(plugin_factory, tmp_path, pool_config(4, min_ready=2, maximum=2))
    wait_until(lambda: status(plugin)["warm"]["ready"] == 2, timeout=90, what="two ready volumes")
    os.killpg(plugin.process.pid, signal.SIGKILL)
    plugin.process.wait()
    plugin.start()
    assert status(plugin)["warm"]["ready"] == 2  # found again, staging mounts intact
    claim_mount_and_remove(plugin, "after")
    drain_for_good(plugin)
    assert pool_volumes(cloud) == []


def test_shared_tier2_pool_serves_two_hosts(cloud, plugin_factory, tmp_path):
    a = start(plugin_factory, tmp_path, pool_config(2, min_ready=0, maximum=2), "a")
    b = start(plugin_factory, tmp_path, pool_config(2, min_ready=0, maximum=2), "b")
    rc, out, err = cli(a, "pool", "fill", "--count", "2")
    assert rc == 0, err
    assert status(b)["warm"]["ready"] == 2  # tier 2 volumes are every host's
    ok(a.call("VolumeDriver.Create", {"Name": "va", "Opts": {}}))
    ok(b.call("VolumeDriver.Create", {"Name": "vb", "Opts": {}}))
    assert pool_volumes(cloud) == []  # both claimed, one each
    for plugin, name in ((a, "va"), (b, "vb")):
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c"}))["Mountpoint"]
        assert os.path.ismount(path)  # formatted already: mounted without mkfs
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
    # Empty pool: the cold path, no error.
    ok(a.call("VolumeDriver.Create", {"Name": "cold", "Opts": {}}))
    ok(a.call("VolumeDriver.Remove", {"Name": "cold"}))


def test_cli_errors_are_clear(plugin_factory, tmp_path, cloud):
    plugin = plugin_factory(tmp_path / "nopool").start()
    rc, _out, err = cli(plugin, "pool", "status")
    assert rc == 1 and "no warm pool is configured" in err
    result = subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", str(tmp_path / "none.sock"),
                             "pool", "status"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot reach fuxi-server on" in result.stderr, result.stderr


def staged_devices(plugin):
    """Device numbers of this plugin's tier 4 staging mounts."""
    return {os.stat(p).st_dev for p in mounted_under(os.path.join(plugin.state_dir, "pool"))}


def test_a_fill_round_makes_its_batch_side_by_side(cloud, plugin_factory, tmp_path):
    plugin = start(plugin_factory, tmp_path, pool_config(4, min_ready=0, maximum=3).replace("batch = 1", "batch = 3"))
    made = ok(plugin.call("fuxi/pool/fill", {"Pool": "warm", "Count": 3}))["Made"]
    level = status(plugin)["warm"]
    assert len(set(made)) == 3 and (level["ready"], level["filling"]) == (3, 0)
    assert sorted(v.id for v in pool_volumes(cloud)) == sorted(made)
    assert len(staged_devices(plugin)) == 3  # three volumes, three file systems, each staged once
    assert ok(plugin.call("fuxi/pool/fill", {"Pool": "warm"}))["Made"] == []  # at max: no more

    # Each claim gets its own volume, data kept apart.
    paths = []
    for name in ("p1", "p2", "p3"):
        ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {}}))
        paths.append(ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c"}))["Mountpoint"])
        with open(os.path.join(paths[-1], "who"), "w") as f:
            f.write(name)
    assert sorted(v.id for v in cloud.sdk.block_storage.volumes(details=True) if v.name in ("p1", "p2", "p3")
                  ) == sorted(made) and pool_volumes(cloud) == []
    assert [open(os.path.join(p, "who")).read() for p in paths] == ["p1", "p2", "p3"]
    for name in ("p1", "p2", "p3"):
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def test_kill_9_in_the_middle_of_a_fill_round_is_mended_at_start(cloud, plugin_factory, tmp_path):
    plugin = start(plugin_factory, tmp_path, pool_config(4, min_ready=0, maximum=3).replace("batch = 1", "batch = 3"))
    # The round runs in the server; its caller sees the connection drop.
    caller = threading.Thread(target=lambda: _quietly(plugin.call, "fuxi/pool/fill", {"Pool": "warm", "Count": 3}))
    caller.start()
    # As soon as the cloud holds one: on a slow cloud that is while Cinder still
    # creates them, before the ledger knows their ids; on a fast one, later.
    wait_until(lambda: pool_volumes(cloud), timeout=60, what="a pool volume in the cloud")
    os.killpg(plugin.process.pid, signal.SIGKILL)
    plugin.process.wait()
    caller.join(30)

    plugin.start()

    # Recovery (in the background) undoes what was half-made: every pool volume
    # left in the cloud is a ready one on record, staged here.
    def mended():
        level = status(plugin)["warm"]
        return level["filling"] == 0 and len(pool_volumes(cloud)) == level["ready"]

    wait_until(mended, timeout=90, what="recovery of the interrupted round")
    ready = status(plugin)["warm"]["ready"]
    assert len(staged_devices(plugin)) == ready
    if ready:
        claim_mount_and_remove(plugin, "after")
    drain_for_good(plugin)
    assert pool_volumes(cloud) == [] and mounted_under(plugin.workdir) == []


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 (the server was killed under it)
        pass
