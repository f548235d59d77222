"""devcloud's volume service: status rules and crash recovery, with fake loop devices."""

import os

import pytest

from storage_core.devcloud.backend import GIB, Invalid, NotFound, VolumeService
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.store import Store

PROJECT = "p1"


class FakeLoops:
    """Loop bindings kept in a dict instead of the kernel."""

    def __init__(self):
        self.bound = {}  # path -> [devices]
        self.next = 0

    def devices_for(self, path):
        return list(self.bound.get(path, []))

    def bind(self, path, read_only=False):
        if self.bound.get(path):
            return self.bound[path][0]
        device = f"/dev/loop{self.next}"
        self.next += 1
        self.bound[path] = [device]
        return device

    def release(self, path):
        return self.bound.pop(path, [])


class ManualScheduler:
    """Runs background jobs only when the test says so."""

    def __init__(self):
        self.jobs = []

    def call_later(self, delay, fn, *args):
        self.jobs.append((delay, fn, args))

    def run_all(self):
        jobs, self.jobs = self.jobs, []
        for _delay, fn, args in jobs:
            fn(*args)


@pytest.fixture
def parts(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    loops = FakeLoops()
    scheduler = ManualScheduler()
    service = VolumeService(store, tmp_path / "volumes", loops, scheduler,
                            lambda: LatencyProfile.named("none"))
    yield service, store, loops, scheduler
    store.close()


def _create(service, name="v", size=1):
    return service.create_volume(PROJECT, "u1", name=name, description=None, size=size,
                                 metadata={"a": "b"}, volume_type="__DEFAULT__",
                                 availability_zone="nova")


def test_create_is_asynchronous_and_makes_a_sparse_file(parts):
    service, _store, _loops, scheduler = parts
    volume = _create(service, size=2)
    assert volume["status"] == "creating"
    assert not os.path.exists(service.path(volume["id"]))
    scheduler.run_all()
    assert service.get_volume(PROJECT, volume["id"])["status"] == "available"
    st = os.stat(service.path(volume["id"]))
    assert st.st_size == 2 * GIB
    assert st.st_blocks * 512 < 1024 * 1024  # sparse


def test_attach_flow_and_status_rules(parts):
    service, _store, loops, scheduler = parts
    volume = _create(service)
    with pytest.raises(Invalid):
        service.create_attachment(PROJECT, volume["id"], instance_uuid=None,
                                  connector={"host": "h"}, mode="rw")
    scheduler.run_all()
    att = service.create_attachment(PROJECT, volume["id"], instance_uuid=None,
                                    connector={"host": "h"}, mode="rw")
    assert att["status"] == "reserved"
    assert att["connection_info"]["device_path"] == "/dev/loop0"
    assert service.get_volume(PROJECT, volume["id"])["status"] == "attaching"
    assert service.get_attachment(PROJECT, att["id"])["status"] == "attaching"
    with pytest.raises(Invalid, match="but the current status is attaching"):
        service.create_attachment(PROJECT, volume["id"], instance_uuid=None, connector={"host": "h"}, mode="rw")
    with pytest.raises(Invalid):
        service.delete_volume(PROJECT, volume["id"])
    service.complete_attachment(PROJECT, att["id"])
    assert service.get_volume(PROJECT, volume["id"])["status"] == "in-use"
    assert service.delete_attachment(PROJECT, att["id"]) == []
    assert loops.bound == {}
    assert service.get_volume(PROJECT, volume["id"])["status"] == "available"
    service.delete_volume(PROJECT, volume["id"])
    assert service.get_volume(PROJECT, volume["id"])["status"] == "deleting"
    scheduler.run_all()
    with pytest.raises(NotFound):
        service.get_volume(PROJECT, volume["id"])
    assert not os.path.exists(service.path(volume["id"]))


def test_other_projects_see_nothing(parts):
    service, _store, _loops, scheduler = parts
    volume = _create(service)
    scheduler.run_all()
    with pytest.raises(NotFound):
        service.get_volume("other", volume["id"])
    assert service.list_volumes("other") == []


def test_failed_export_undoes_the_reservation(parts):
    from storage_core.errors import CommandError

    service, _store, loops, scheduler = parts
    volume = _create(service)
    scheduler.run_all()

    def broken(path, read_only=False):
        raise CommandError(["losetup"], 1, "", "no free loop device")

    loops.bind = broken
    with pytest.raises(Exception) as err:
        service.create_attachment(PROJECT, volume["id"], instance_uuid=None,
                                  connector={"host": "h"}, mode="rw")
    assert getattr(err.value, "status", None) == 500
    assert service.get_volume(PROJECT, volume["id"])["status"] == "available"
    assert service.list_attachments(PROJECT) == []


def test_recover_finishes_transitions_and_reconciles_loops(parts, tmp_path):
    service, store, loops, scheduler = parts
    creating = _create(service, name="creating")
    attached = _create(service, name="attached")
    stray = _create(service, name="stray")
    doomed = _create(service, name="doomed")
    scheduler.jobs = [j for j in scheduler.jobs if j[2][0] != creating["id"]]
    scheduler.run_all()
    att = service.create_attachment(PROJECT, attached["id"], instance_uuid=None,
                                    connector={"host": "h"}, mode="rw")
    service.delete_volume(PROJECT, doomed["id"])
    scheduler.jobs.clear()  # "crash": nothing pending survives
    loops.bound.clear()  # the kernel lost every binding (reboot)
    loops.bind(service.path(stray["id"]))  # and something left one behind

    fresh = VolumeService(store, tmp_path / "volumes", loops, ManualScheduler(),
                          lambda: LatencyProfile.named("none"))
    fresh.recover()
    assert fresh.get_volume(PROJECT, creating["id"])["status"] == "available"
    with pytest.raises(NotFound):
        fresh.get_volume(PROJECT, doomed["id"])
    assert loops.devices_for(fresh.path(stray["id"])) == []
    (device,) = loops.devices_for(fresh.path(attached["id"]))
    recovered = fresh.get_attachment(PROJECT, att["id"])
    assert recovered["connection_info"]["device_path"] == device
    assert recovered["status"] == "attaching"  # exported, not yet completed
    assert fresh.get_volume(PROJECT, attached["id"])["device"] == device


def test_metadata_updates(parts):
    service, _store, _loops, scheduler = parts
    volume = _create(service)
    assert service.update_metadata(PROJECT, volume["id"], {"c": "d"}, replace=False) == \
        {"a": "b", "c": "d"}
    assert service.update_metadata(PROJECT, volume["id"], {"x": "y"}, replace=True) == \
        {"x": "y"}
    service.delete_metadata_item(PROJECT, volume["id"], "x")
    with pytest.raises(NotFound):
        service.delete_metadata_item(PROJECT, volume["id"], "x")
