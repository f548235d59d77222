"""Preemption between two fuxi hosts on one cloud (devcloud and real Cinder): a
volume attached to a host that died is taken over by another host's Mount only
where that was allowed (-o preempt=true, or `preempt = true` on every host),
and only once the dead host's lease on it ran out; a live holder keeps its
volume, and so does a holder that kept no lease. The dead host, back, lets go
of what it lost without touching the new holder's attachment."""

import os
import subprocess
import time

from tests.functional.harness import mounted_under, ok
from tests.functional.test_two_hosts import err, host_options

CLOUD_KINDS = ("devcloud", "realcloud")
LEASE = 2  # seconds: a lease runs out 1.5 leases after its last renewal


def host(plugin_factory, tmp_path, name, number, **options):
    return plugin_factory(tmp_path / name, {**host_options(name, number), "lease_seconds": LEASE, **options})


def test_a_dead_hosts_volume_is_taken_over_only_where_allowed_and_once_its_lease_ran_out(
        cloud, plugin_factory, tmp_path):
    a = host(plugin_factory, tmp_path, "host-a", 1).start()
    b = host(plugin_factory, tmp_path, "host-b", 2).start()
    ok(a.call("VolumeDriver.Create", {"Name": "take", "Opts": {"preempt": "true"}}))
    ok(a.call("VolumeDriver.Create", {"Name": "keep", "Opts": {}}))
    path = ok(a.call("VolumeDriver.Mount", {"Name": "take", "ID": "ca"}))["Mountpoint"]
    ok(a.call("VolumeDriver.Mount", {"Name": "keep", "ID": "ca"}))
    with open(os.path.join(path, "f"), "w") as f:
        f.write("written on A")
        f.flush()
        os.fsync(f.fileno())
    [take], [keep] = cloud.volumes_named("take"), cloud.volumes_named("keep")
    assert take.metadata["fuxi_preempt"] == "true" and take.metadata["fuxi_lease"].startswith("host-a ")
    assert "fuxi_lease" not in keep.metadata  # nobody may take it over: no lease to pay for

    # A is alive and renews its lease: B may not take the volume.
    time.sleep(LEASE * 1.2)
    assert "whose lease on it runs" in err(b.call("VolumeDriver.Mount", {"Name": "take", "ID": "cb"}))

    # A dies (the process and its mounts): its attachments stay in Cinder.
    a.kill()
    for mountpoint in mounted_under(a.workdir):
        subprocess.run(["umount", "-l", mountpoint], check=True)
    assert "attached to host-a" in err(b.call("VolumeDriver.Mount", {"Name": "keep", "ID": "cb"}))
    time.sleep(LEASE * 1.5 + 0.5)
    path_b = ok(b.call("VolumeDriver.Mount", {"Name": "take", "ID": "cb"}))["Mountpoint"]
    assert open(os.path.join(path_b, "f")).read() == "written on A"
    assert "PREEMPTING volume take" in b.log(tail=None) and "host-a held it and its lease ran out" in b.log()
    [attachment] = cloud.attachments_of(take.id)
    # Not tagged, and B's config does not allow it: "keep" stays A's.
    assert "it can be mounted only when available" in err(b.call("VolumeDriver.Mount", {"Name": "keep", "ID": "cb"}))

    # With `preempt = true`, every volume may be taken over, but only from a holder
    # that kept a lease: A kept none on "keep", so B cannot know A is gone.
    b.stop()
    b_all = host(plugin_factory, tmp_path, "host-b", 2, preempt="true").start()
    assert "keeps no fuxi lease on it" in err(b_all.call("VolumeDriver.Mount", {"Name": "keep", "ID": "cb2"}))

    # A comes back: it lets go of "keep" (its mount is gone), and of "take" only its
    # own attachment, deleted already: B's stays, and B's mount with it.
    a.start()
    assert cloud.attachments_of(keep.id) == []
    assert [x.id for x in cloud.attachments_of(take.id)] == [attachment.id]
    assert os.path.ismount(path_b)
    ok(b_all.call("VolumeDriver.Unmount", {"Name": "take", "ID": "cb"}))
    for name in ("take", "keep"):
        ok(a.call("VolumeDriver.Remove", {"Name": name}))
