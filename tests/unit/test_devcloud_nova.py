"""devcloud's Nova pieces without HTTP or loop devices: flow, rules, guest view."""

import json
import os
import threading

import pytest

from storage_core.devcloud.backend import VolumeService
from storage_core.devcloud.compute import ComputeError, ComputeService
from storage_core.devcloud.hypervisor import GuestDisk, Hypervisor, HypervisorOptions
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.metadata import meta_data
from storage_core.devcloud.microversion import VersionError
from storage_core.devcloud.nova import COMPUTE
from storage_core.devcloud.store import Store
from storage_core.errors import CommandError
from tests.unit.test_devcloud_backend import FakeLoops, ManualScheduler

PROJECT = "p1"


class ManualWorkers:
    """Compute host jobs, run only when the test says so."""

    def __init__(self):
        self.jobs = []
        self.stopping = threading.Event()

    def spawn(self, fn, *args):
        self.jobs.append((fn, args))

    def run_all(self):
        while self.jobs:
            fn, args = self.jobs.pop(0)
            fn(*args)

    def stop(self):
        self.stopping.set()


class Parts:
    def __init__(self, tmp_path, **options):
        os.makedirs(tmp_path, exist_ok=True)
        self.store = Store(tmp_path / "db.sqlite")
        self.loops = FakeLoops()
        self.scheduler = ManualScheduler()
        self.workers = ManualWorkers()
        self.volumes = VolumeService(self.store, tmp_path / "volumes", self.loops,
                                     self.scheduler, lambda: LatencyProfile.named("none"))
        self.options = HypervisorOptions(**options).resolved(str(tmp_path))
        self.compute = ComputeService(self.store, self.volumes, Hypervisor(lambda: self.options),
                                      self.scheduler, lambda: self.options, PROJECT, "u1",
                                      workers=self.workers)
        self.server = self.compute.ensure_local_server(self.options.server_name)

    def volume(self, multiattach=False):
        volume = self.volumes.create_volume(
            PROJECT, "u1", name="v", description=None, size=1, metadata={},
            volume_type="__DEFAULT__", availability_zone="nova", multiattach=multiattach)
        self.scheduler.run_all()
        return volume["id"]

    def status(self, volume_id):
        return self.volumes.get_volume(PROJECT, volume_id)["status"]

    def by_id(self, volume_id):
        return os.path.join(self.options.disk_root, "by-id", f"virtio-{volume_id[:20]}")


@pytest.fixture
def parts(tmp_path):
    p = Parts(tmp_path)
    yield p
    p.store.close()


# -- microversions -------------------------------------------------------------

@pytest.mark.parametrize("headers, expected", [
    ({}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.60"}, "2.60"),
    ({"OpenStack-API-Version": "volume 3.27, compute 2.89"}, "2.89"),
    ({"OpenStack-API-Version": "volume 3.27"}, "2.1"),
    ({"X-OpenStack-Nova-API-Version": "2.53"}, "2.53"),
    ({"OpenStack-API-Version": "compute latest"}, "2.96"),
])
def test_compute_negotiation(headers, expected):
    assert str(COMPUTE.negotiate(headers)) == expected


@pytest.mark.parametrize("value, status", [("compute 2.97", 406), ("compute 2.0", 406),
                                           ("compute 3.1", 406), ("compute 2", 400)])
def test_compute_refusals(value, status):
    with pytest.raises(VersionError) as err:
        COMPUTE.negotiate({"OpenStack-API-Version": value})
    assert err.value.status == status


def test_compute_echoes_both_headers():
    assert COMPUTE.response_headers(COMPUTE.negotiate({"X-OpenStack-Nova-API-Version": "2.60"})) \
        == {"OpenStack-API-Version": "compute 2.60", "X-OpenStack-Nova-API-Version": "2.60",
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}


# -- options and the guest view ------------------------------------------------

def test_options_validate_update_and_resolve(tmp_path):
    options = HypervisorOptions()
    assert options.updated({"link_delay": 2}).link_delay == 2
    for bad in ({"link_delay": -1}, {"link_delay": "1"}, {"create_by_id_links": "no"},
                {"server_name": ""}, {"colour": "red"}):
        with pytest.raises((ValueError, TypeError)):
            options.updated(bad)
    resolved = options.resolved(str(tmp_path))
    assert resolved.disk_root == str(tmp_path / "dev-disk")
    assert resolved.config_drive_dir == str(tmp_path / "config-drive")
    assert HypervisorOptions(config_drive_dir="").resolved(str(tmp_path)).config_drive_dir == ""


def test_sync_makes_links_match_and_leaves_foreign_files(tmp_path):
    options = HypervisorOptions().resolved(str(tmp_path))
    hypervisor = Hypervisor(lambda: options)
    disk = GuestDisk("0123456789abcdef0123456789", "0000:00:07.0", "/dev/loop7")
    hypervisor.sync([disk], {"uuid": "x"})
    root = tmp_path / "dev-disk"
    assert os.readlink(root / "by-id" / "virtio-0123456789abcdef0123") == "/dev/loop7"
    assert os.readlink(root / "by-path" / "virtio-pci-0000:00:07.0") == "/dev/loop7"
    assert os.readlink(root / "by-path" / "pci-0000:00:07.0") == "/dev/loop7"
    drive = tmp_path / "config-drive" / "openstack" / "latest" / "meta_data.json"
    assert json.loads(drive.read_text()) == {"uuid": "x"}

    (root / "by-id" / "not-ours").symlink_to("/dev/null")
    moved = GuestDisk(disk.volume_id, disk.pci_address, "/dev/loop9")
    options = HypervisorOptions(create_by_id_links=False).resolved(str(tmp_path))
    hypervisor.sync([moved])
    assert sorted(os.listdir(root / "by-id")) == ["not-ours"]
    assert os.readlink(root / "by-path" / "pci-0000:00:07.0") == "/dev/loop9"
    hypervisor.sync([])
    assert os.listdir(root / "by-path") == []

    hypervisor.sync([disk])
    assert len(os.listdir(root / "by-path")) == 2
    old_root = options.disk_root
    options = HypervisorOptions(disk_root=str(tmp_path / "elsewhere")).resolved(str(tmp_path))
    hypervisor.sync([disk], old_disk_root=old_root)
    assert sorted(os.listdir(tmp_path / "elsewhere" / "by-path")) == [
        "pci-0000:00:07.0", "virtio-pci-0000:00:07.0"]
    assert os.listdir(root / "by-path") == []  # the old root was emptied


def test_meta_data_lists_plugged_tagged_disks_only():
    server = {"id": "s", "name": "My Host", "hostname": "my-host", "project_id": "p"}
    bdms = [
        {"volume_id": "a", "pci_address": "0000:00:06.0", "tag": "db", "plugged": True},
        {"volume_id": "b", "pci_address": "0000:00:07.0", "tag": None, "plugged": True},
        {"volume_id": "c", "pci_address": "0000:00:08.0", "tag": "x", "plugged": False},
    ]
    doc = meta_data(server, bdms)
    assert doc["devices"] == [{"type": "disk", "bus": "pci", "serial": "a",
                               "address": "0000:00:06.0", "tags": ["db"]}]
    assert (doc["uuid"], doc["name"], doc["hostname"], doc["availability_zone"]) == (
        "s", "My Host", "my-host", "nova")


# -- the attach/detach flow ------------------------------------------------------

def test_attach_then_detach_state_by_state(parts):
    volume_id = parts.volume()
    server_id = parts.server["id"]
    bdm = parts.compute.attach(server_id, volume_id, tag="t")
    assert (bdm["status"], bdm["device"]) == ("attaching", "/dev/vdb")
    assert parts.status(volume_id) == "reserved"  # answered before the host works
    assert parts.loops.bound == {}
    parts.workers.run_all()
    assert parts.status(volume_id) == "in-use"
    [device] = parts.loops.bound[parts.volumes.path(volume_id)]
    assert os.readlink(parts.by_id(volume_id)) == device
    [attachment] = parts.volumes.attachments_of(volume_id)
    assert attachment["instance_uuid"] == server_id and attachment["mountpoint"] == "/dev/vdb"
    assert attachment["connector"]["host"] == parts.server["host"]
    assert parts.compute.get_bdm(server_id, volume_id)["status"] == "attached"

    parts.compute.detach(server_id, volume_id)
    assert parts.status(volume_id) == "detaching"
    assert os.path.islink(parts.by_id(volume_id))
    parts.workers.run_all()
    assert parts.status(volume_id) == "available"
    assert parts.loops.bound == {}
    assert not os.path.lexists(parts.by_id(volume_id))
    assert parts.compute.bdms_of_server(server_id) == []


def test_device_names_and_pci_addresses(parts, tmp_path):
    server_id = parts.server["id"]
    volumes = [parts.volume() for _ in range(3)]
    bdms = [parts.compute.attach(server_id, v) for v in volumes]
    assert [b["device"] for b in bdms] == ["/dev/vdb", "/dev/vdc", "/dev/vdd"]
    addresses = [b["pci_address"] for b in bdms]
    assert len(set(addresses)) == 3
    assert all(0x06 <= int(a.split(":")[2].split(".")[0], 16) <= 0x1F for a in addresses)
    parts.workers.run_all()
    # Detached and attached again: the same pair gets the same address back.
    parts.compute.detach(server_id, volumes[1])
    parts.workers.run_all()
    again = parts.compute.attach(server_id, volumes[1])
    assert again["pci_address"] == addresses[1] and again["device"] == "/dev/vdc"
    parts.workers.run_all()

    liar = Parts(tmp_path / "liar", lie_about_device=True)
    try:
        devices = [liar.compute.attach(liar.server["id"], liar.volume())["device"]
                   for _ in range(2)]
        assert devices == ["/dev/vdb", "/dev/vdb"]
        liar.workers.run_all()
    finally:
        liar.store.close()


def test_refusals(parts):
    server_id = parts.server["id"]
    other = parts.compute.create_server("other")["id"]
    volume_id = parts.volume()
    with pytest.raises(ComputeError) as err:
        parts.compute.attach("nope", volume_id)
    assert (err.value.status, err.value.message) == (404, "Instance nope could not be found.")
    with pytest.raises(ComputeError) as err:
        parts.compute.attach(server_id, "nope")
    assert err.value.status == 404
    parts.compute.attach(other, volume_id)
    with pytest.raises(ComputeError) as err:
        parts.compute.detach(other, volume_id)  # not attached yet
    assert err.value.status == 400
    parts.workers.run_all()
    for server in (server_id, other):
        with pytest.raises(ComputeError) as err:
            parts.compute.attach(server, volume_id)
        assert err.value.status == 400
        assert "is already attached to instances: " + other in err.value.message

    shared = parts.volume(multiattach=True)
    with pytest.raises(ComputeError) as err:
        parts.compute.attach(server_id, shared)
    assert "2.60" in err.value.message and parts.status(shared) == "available"
    parts.compute.attach(server_id, shared, supports_multiattach=True)
    parts.workers.run_all()
    with pytest.raises(ComputeError) as err:
        parts.compute.attach(server_id, shared, supports_multiattach=True)
    assert err.value.message == f"Invalid volume: volume {shared} already attached"
    parts.compute.attach(other, shared, supports_multiattach=True)
    assert parts.status(shared) == "reserved"
    parts.workers.run_all()
    assert parts.status(shared) == "in-use"
    assert len(parts.volumes.attachments_of(shared)) == 2
    assert len(parts.loops.bound[parts.volumes.path(shared)]) == 1


def test_a_failed_export_rolls_the_attach_back(parts):
    volume_id = parts.volume()

    def broken_bind(path, read_only=False):
        raise CommandError(["losetup"], 1, "", "no free loop device")

    parts.loops.bind = broken_bind
    parts.compute.attach(parts.server["id"], volume_id)
    parts.workers.run_all()
    assert parts.status(volume_id) == "available"
    assert parts.volumes.attachments_of(volume_id) == []
    assert parts.compute.bdms_of_server(parts.server["id"]) == []


def test_link_delay_waits_for_the_scheduler(tmp_path):
    parts = Parts(tmp_path, link_delay=5)
    try:
        volume_id = parts.volume()
        parts.compute.attach(parts.server["id"], volume_id)
        parts.workers.run_all()
        assert parts.status(volume_id) == "in-use"
        assert not os.path.lexists(parts.by_id(volume_id))
        [(delay, _fn, _args)] = parts.scheduler.jobs
        assert delay == 5
        parts.scheduler.run_all()
        assert os.path.islink(parts.by_id(volume_id))
    finally:
        parts.store.close()


def test_recovery_finishes_what_a_stop_cut_short(parts):
    server_id = parts.server["id"]
    attaching, detaching, reserving = parts.volume(), parts.volume(), parts.volume()
    parts.compute.attach(server_id, detaching)
    parts.workers.run_all()
    parts.compute.detach(server_id, detaching)
    parts.compute.attach(server_id, attaching)
    # A record whose Cinder attachment was made, but not noted before the stop.
    bdm = parts.compute.attach(server_id, reserving)
    bdm.update(status="reserving", attachment_id=None)
    parts.store.put("bdm", bdm)
    parts.workers.jobs.clear()  # the stop dropped every job

    parts.compute.recover(parts.options.server_name)
    parts.workers.run_all()
    assert [parts.status(v) for v in (attaching, detaching, reserving)] == [
        "in-use", "available", "in-use"]
    assert {b["volume_id"] for b in parts.compute.bdms_of_server(server_id)} == {
        attaching, reserving}
    assert os.path.islink(parts.by_id(reserving))


def test_local_server_is_made_once_and_renamed(parts):
    again = parts.compute.ensure_local_server("devcloud-host")
    assert again["id"] == parts.server["id"]
    renamed = parts.compute.ensure_local_server("new-name")
    assert (renamed["id"], renamed["name"]) == (parts.server["id"], "new-name")
    assert parts.compute.local_server()["name"] == "new-name"
