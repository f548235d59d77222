"""Multiattach volumes between two fuxi hosts on one cloud (devcloud and real
Cinder): a volume of a multiattach type must say how hosts share it, since
ext4 and xfs are no cluster file systems; "exclusive" is mounted on one host
at a time (also when two hosts race for it), "shared" on both at once."""

import os
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.functional.harness import ok
from tests.functional.test_two_hosts import err, two_hosts

CLOUD_KINDS = ("devcloud", "realcloud")
MULTIATTACH_TYPE = {"devcloud": "multiattach", "realcloud": "local-multiattach"}


def test_a_multiattach_type_must_say_how_hosts_share_it(cloud, plugin):
    kind = MULTIATTACH_TYPE[cloud.kind]
    refusal = err(plugin.call("VolumeDriver.Create", {"Name": "m", "Opts": {"type": kind}}), 400)
    assert f"volume type {kind!r} is multiattach" in refusal and "ext4 is no cluster file system" in refusal
    assert "-o multiattach=exclusive" in refusal and "-o multiattach=shared" in refusal
    refusal = err(plugin.call("VolumeDriver.Create", {"Name": "m", "Opts": {"multiattach": "shared"}}), 400)
    assert "option multiattach is for volumes of a multiattach volume type" in refusal
    refusal = err(plugin.call("VolumeDriver.Create", {"Name": "m", "Opts": {"type": kind, "multiattach": "yes"}}),
                  400)
    assert "allowed: exclusive (one host at a time) or shared" in refusal
    # The refused volumes, made blank by Cinder before it said what they are, are gone.
    assert cloud.volumes_named("m") == []

    ok(plugin.call("VolumeDriver.Create", {"Name": "m", "Opts": {"type": kind, "multiattach": "exclusive"}}))
    [vol] = cloud.volumes_named("m")
    assert vol.is_multiattach and vol.metadata["fuxi_multiattach"] == "exclusive"
    status = ok(plugin.call("VolumeDriver.Get", {"Name": "m"}))["Volume"]["Status"]
    assert status["multiattach"] == "exclusive"
    assert "multiattach exclusive (asked shared)" in err(plugin.call(
        "VolumeDriver.Create", {"Name": "m", "Opts": {"type": kind, "multiattach": "shared"}}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "m"}))


def test_exclusive_is_one_host_at_a_time_and_shared_is_both(cloud, plugin_factory, tmp_path):
    a, b = two_hosts(plugin_factory, tmp_path)
    kind = MULTIATTACH_TYPE[cloud.kind]
    for host in (a, b):  # B remembers it as available: its Mount tries that record first
        ok(host.call("VolumeDriver.Create", {"Name": "ex", "Opts": {"type": kind, "multiattach": "exclusive"}}))
    ok(a.call("VolumeDriver.Mount", {"Name": "ex", "ID": "ca"}))
    refusal = err(b.call("VolumeDriver.Mount", {"Name": "ex", "ID": "cb"}))
    assert "attached to host-a; it is multiattach, but fuxi mounts it on one host at a time" in refusal
    [vol] = cloud.volumes_named("ex")
    assert len(cloud.attachments_of(vol.id)) == 1
    ok(a.call("VolumeDriver.Unmount", {"Name": "ex", "ID": "ca"}))
    ok(b.call("VolumeDriver.Mount", {"Name": "ex", "ID": "cb"}))
    ok(b.call("VolumeDriver.Unmount", {"Name": "ex", "ID": "cb"}))

    # Two hosts mounting it at the same moment: never both.
    for round_ in range(3):
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda host: host.call("VolumeDriver.Mount", {"Name": "ex", "ID": "r"}), (a, b)))
        mounted = [host for host, (code, _body) in zip((a, b), answers) if code == 200]
        assert len(mounted) <= 1, answers
        assert len(cloud.attachments_of(vol.id)) == len(mounted), (round_, answers)
        for host in mounted:
            ok(host.call("VolumeDriver.Unmount", {"Name": "ex", "ID": "r"}))
    ok(a.call("VolumeDriver.Remove", {"Name": "ex"}))

    ok(a.call("VolumeDriver.Create", {"Name": "sh", "Opts": {"type": kind, "multiattach": "shared"}}))
    path_a = ok(a.call("VolumeDriver.Mount", {"Name": "sh", "ID": "ca"}))["Mountpoint"]
    with open(os.path.join(path_a, "f"), "w") as f:
        f.write("from a")
    path_b = ok(b.call("VolumeDriver.Mount", {"Name": "sh", "ID": "cb"}))["Mountpoint"]
    # Both hosts are this machine: one loop device, one file system, seen from both.
    assert open(os.path.join(path_b, "f")).read() == "from a"
    [vol] = cloud.volumes_named("sh")
    assert len(cloud.attachments_of(vol.id)) == 2
    ok(a.call("VolumeDriver.Unmount", {"Name": "sh", "ID": "ca"}))
    assert os.path.ismount(path_b) and len(cloud.attachments_of(vol.id)) == 1
    ok(b.call("VolumeDriver.Unmount", {"Name": "sh", "ID": "cb"}))
    ok(b.call("VolumeDriver.Remove", {"Name": "sh"}))


def test_hosts_racing_to_mount_one_volume_never_undo_each_others_attachment(cloud, plugin_factory, tmp_path):
    """The loser of a race for a plain volume is refused by Cinder before it has
    an attachment; it must not take the winner's attachment, still being made,
    for a leftover of its own (it did, before AttachRefused)."""
    a, b = two_hosts(plugin_factory, tmp_path)
    ok(a.call("VolumeDriver.Create", {"Name": "plain", "Opts": {"size": "1"}}))
    [vol] = cloud.volumes_named("plain")
    if getattr(cloud, "devcloud", None):
        # As slow as a real backend's export: the winner's attachment is being
        # made while the loser is refused.
        requests.put(cloud.devcloud["url"] + "/devcloud/latency", json={"initialize_connection": 0.4},
                     timeout=10).raise_for_status()
    for round_ in range(4):
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda host: host.call("VolumeDriver.Mount", {"Name": "plain", "ID": "r"}),
                                    (a, b)))
        mounted = [host for host, (code, _body) in zip((a, b), answers) if code == 200]
        assert len(mounted) == 1, (round_, answers)
        # The winner's attachment is there, completed, and its mount works.
        assert [x.status for x in cloud.attachments_of(vol.id)] == ["attached"], (round_, answers)
        path = mounted[0].call("VolumeDriver.Path", {"Name": "plain"})[1]["Mountpoint"]
        with open(os.path.join(path, "probe"), "w") as f:
            f.write(str(round_))
        ok(mounted[0].call("VolumeDriver.Unmount", {"Name": "plain", "ID": "r"}))
    ok(a.call("VolumeDriver.Remove", {"Name": "plain"}))
