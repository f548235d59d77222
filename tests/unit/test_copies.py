"""Snapshots, backups and clones without a cloud: which options make a copy,
how a source is resolved and sized, when a file system is frozen, that it is
always thawed, and what a crash left frozen is thawed at start."""

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from storage_core.config import VolumeLimits
from storage_core.copies import VolumeCopies
from storage_core.errors import CloudError, Conflict, FilesystemError, InvalidInput, NotFound
from storage_core.models import (
    CloudAttachment,
    CloudSnapshot,
    CloudVolume,
    SourceRef,
    VolumeSpec,
)
from storage_core.options import parse_volume_options
from storage_core.sources import SourceResolver
from storage_core.state import HostVolume, Phase

LIMITS = VolumeLimits(max_size_gb=10)
SNAP_ID = "11111111-1111-1111-1111-111111111111"
VOL_ID = "22222222-2222-2222-2222-222222222222"
OWNED = {"volume_from": "fuxi"}


def volume(name="v", status="available", attachments=0, metadata=None, size=1):
    return CloudVolume(id=VOL_ID, name=name, size_gb=size, status=status, created_at=None,
                       metadata={**OWNED, "fstype": "ext4", **(metadata or {})},
                       attachments=tuple(CloudAttachment(f"att-{n}") for n in range(attachments)))


def snapshot(name="s", status="available", size=2, owned=True, when=1):
    return CloudSnapshot(id=SNAP_ID, name=name, volume_id=VOL_ID, size_gb=size, status=status,
                         created_at=datetime(2026, 1, when, tzinfo=timezone.utc),
                         metadata={**(OWNED if owned else {}), "fuxi_volume": "v", "fstype": "xfs"})


# -- options --------------------------------------------------------------------


@pytest.mark.parametrize("key,kind", [("snapshot", "snapshot"), ("backup", "backup"), ("source", "volume")])
def test_a_source_option_makes_a_copy_sized_by_its_source(key, kind):
    spec = parse_volume_options("n", {key: " s1 "}, LIMITS)
    assert (spec.source, spec.size_gb, spec.fstype) == (SourceRef(kind, "s1"), 0, "")
    assert parse_volume_options("n", {key: "s1", "size": "3", "type": "fast"}, LIMITS).size_gb == 3


@pytest.mark.parametrize("options,words", [
    ({"snapshot": "a", "backup": "b"}, "options snapshot and backup both name"),
    ({"source": "a", "fstype": "xfs"}, "option fstype cannot come with option source"),
    ({"snapshot": "a", "volume_id": VOL_ID}, "option volume_id adopts an existing volume as it is; drop snapshot"),
    ({"backup": ""}, "option backup='' is not allowed"),
    ({"backup": "   "}, "option backup='' is not allowed"),
    ({"snapshot": "a", "size": "11"}, "option size='11' is out of range"),
])
def test_bad_source_options_are_refused_naming_what_is_allowed(options, words):
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_volume_options("n", options, LIMITS)


# -- sources ----------------------------------------------------------------------


class Records:
    def __init__(self, *records):
        self.records = list(records)

    def get(self, record_id):
        for r in self.records:
            if r.id == record_id:
                return r
        raise NotFound(record_id)

    def list(self):
        return list(self.records)


class Volumes(Records):
    def find(self, name):
        return next((v for v in self.records if v.name == name), None)


def resolver(*snaps, volumes=()):
    return SourceResolver(Volumes(*volumes), Records(*snaps), Records(), LIMITS)


def test_a_snapshot_source_is_found_by_name_or_id_and_sizes_the_volume():
    spec = VolumeSpec(name="n", size_gb=0, fstype="", source=SourceRef("snapshot", "s"))
    resolved = resolver(snapshot()).resolve(spec)
    assert (resolved.source, resolved.size_gb, resolved.fstype) == (SourceRef("snapshot", SNAP_ID), 2, "xfs")
    by_id = VolumeSpec(name="n", size_gb=5, fstype="", source=SourceRef("snapshot", SNAP_ID))
    assert resolver(snapshot(owned=False)).resolve(by_id).size_gb == 5


@pytest.mark.parametrize("snap,size,error,words", [
    (snapshot(), 1, InvalidInput, r"option size=1 is smaller than snapshot 's' \(2 GiB\); allowed: 2 to 10 GiB"),
    (snapshot(status="creating"), 0, Conflict, "snapshot 's' is creating; a volume can be made from a snapshot "
                                               "that is available"),
    (snapshot(owned=False), 0, NotFound, "fuxi has no snapshot called 's'"),
    (snapshot(size=11), 0, InvalidInput, r"snapshot 's' is 11 GiB, more than max_size_gb \(10 GiB\)"),
])
def test_unusable_sources_are_refused(snap, size, error, words):
    spec = VolumeSpec(name="n", size_gb=size, fstype="", source=SourceRef("snapshot", "s"))
    with pytest.raises(error, match=words):
        resolver(snap).resolve(spec)


def test_two_fuxi_snapshots_of_one_name_must_be_named_by_id():
    other = CloudSnapshot(id="33333333-3333-3333-3333-333333333333", name="s", volume_id=VOL_ID, size_gb=1,
                          status="available", created_at=None, metadata=OWNED)
    with pytest.raises(Conflict, match="fuxi has 2 snapshots called 's'.*name one by its id"):
        resolver(snapshot(), other).find("snapshot", "s")


def test_a_volume_made_from_a_source_is_the_same_only_if_the_source_is():
    made = volume(metadata={"fuxi_source": f"snapshot:{SNAP_ID}"})
    res = resolver(snapshot())
    assert res.same_source(made, SourceRef("snapshot", "s"))
    assert res.same_source(made, SourceRef("snapshot", SNAP_ID))
    assert not res.same_source(made, SourceRef("volume", SNAP_ID))
    assert not res.same_source(volume(), SourceRef("snapshot", "s"))
    assert not res.same_source(made, SourceRef("snapshot", "gone"))


# -- freezing -----------------------------------------------------------------------


@dataclass
class Filesystems:
    mounted: set = field(default_factory=set)
    calls: list = field(default_factory=list)
    thaw_fails: int = 0
    frozen_at_start: set = field(default_factory=set)

    def is_mounted(self, path):
        return path in self.mounted

    def freeze(self, path):
        self.calls.append(("freeze", path))

    def thaw(self, path):
        self.calls.append(("thaw", path))
        if self.thaw_fails:
            self.thaw_fails -= 1
            raise FilesystemError("thaw failed")
        return path in self.frozen_at_start


class State:
    def __init__(self, *host_volumes):
        self.volumes = {hv.name: hv for hv in host_volumes}

    def host_volume(self, name):
        return self.volumes.get(name)

    def host_volumes(self):
        return list(self.volumes.values())


class Snapshots(Records):
    noun = "snapshot"

    def __init__(self, fail=None):
        super().__init__()
        self.fail = fail
        self.deleted = []

    def create(self, volume_id, name, metadata):
        snap = CloudSnapshot(id=SNAP_ID, name=name, volume_id=volume_id, size_gb=1, status="creating",
                             created_at=None, metadata=metadata)
        self.records.append(snap)
        return snap

    def wait_available(self, snap_id, timeout=None):
        if self.fail:
            self.records = [CloudSnapshot(**{**r.__dict__, "status": "error"}) for r in self.records]
            raise self.fail
        return self.records[-1]

    def delete(self, record, timeout=None):
        self.deleted.append(record.id)


MOUNTED = HostVolume(name="v", volume_id=VOL_ID, phase=Phase.MOUNTED, attachment_id="att-0", mountpoint="/m/v")


def copies(vol, fs, state, snaps=None):
    return VolumeCopies(Volumes(vol), snaps or Snapshots(), Records(), resolver(), fs, state,
                        lambda name: contextlib.nullcontext())


def test_a_volume_mounted_here_is_frozen_around_its_snapshot_and_thawed():
    fs = Filesystems(mounted={"/m/v"})
    snap = copies(volume(status="in-use", attachments=1), fs, State(MOUNTED)).snapshot("v", "s1")
    assert fs.calls == [("freeze", "/m/v"), ("thaw", "/m/v")]
    assert snap.metadata == {**OWNED, "fuxi_volume": "v", "fstype": "ext4", "fuxi_frozen": "true"}


def test_a_volume_on_no_host_is_snapshotted_without_freezing():
    fs = Filesystems()
    snap = copies(volume(), fs, State()).snapshot("v", "s1")
    assert fs.calls == [] and snap.metadata["fuxi_frozen"] == "false"


def test_a_volume_another_host_uses_is_copied_only_crash_consistent_when_asked():
    fs = Filesystems(mounted={"/m/v"})
    vol = volume(status="in-use", attachments=2)  # here and on another host (multiattach)
    with pytest.raises(Conflict, match="in use on another host.*--crash-consistent"):
        copies(vol, fs, State(MOUNTED)).snapshot("v", "s1")
    snap = copies(vol, fs, State(MOUNTED)).snapshot("v", "s1", allow_unfrozen=True)
    assert fs.calls == [] and snap.metadata["fuxi_frozen"] == "false"


def test_a_failed_snapshot_is_thawed_and_deleted():
    fs = Filesystems(mounted={"/m/v"}, thaw_fails=1)  # the first thaw fails too: tried again
    snaps = Snapshots(fail=CloudError("cinder-volume failed"))
    with pytest.raises(CloudError, match="cinder-volume failed"):
        copies(volume(status="in-use", attachments=1), fs, State(MOUNTED), snaps).snapshot("v", "s1")
    assert fs.calls == [("freeze", "/m/v"), ("thaw", "/m/v"), ("thaw", "/m/v")]
    assert snaps.deleted == [SNAP_ID]


def test_a_thaw_that_keeps_failing_says_how_to_thaw_by_hand():
    fs = Filesystems(mounted={"/m/v"}, thaw_fails=5)
    with pytest.raises(FilesystemError, match=r"stays frozen.*fsfreeze --unfreeze /m/v"):
        copies(volume(status="in-use", attachments=1), fs, State(MOUNTED)).snapshot("v", "s1")


def test_a_half_mounted_volume_or_a_taken_name_is_refused_before_anything():
    fs = Filesystems()
    half = HostVolume(name="v", volume_id=VOL_ID, phase=Phase.ATTACHED, mountpoint="/m/v")
    with pytest.raises(Conflict, match="half on this host"):
        copies(volume(status="in-use", attachments=1), fs, State(half)).snapshot("v", "s1")
    snaps = Snapshots()
    snaps.records.append(snapshot(name="s1"))
    with pytest.raises(Conflict, match="already has a snapshot called 's1'"):
        copies(volume(), fs, State(), snaps).snapshot("v", "s1")
    assert fs.calls == []


def test_a_retried_snapshot_is_the_one_taken_and_a_name_of_another_volume_stays_refused():
    fs = Filesystems()
    snaps = Snapshots()
    snaps.records.append(snapshot(name="s1"))  # of volume "v"
    assert copies(volume(), fs, State(), snaps).snapshot("v", "s1", again_ok=True) is snaps.records[0]
    with pytest.raises(Conflict, match="already has a snapshot called 's1' .*of volume 'v'"):
        copies(volume(name="w"), fs, State(), snaps).snapshot("w", "s1", again_ok=True)
    assert fs.calls == [] and len(snaps.records) == 1


def test_start_thaws_what_a_crash_left_frozen():
    other = HostVolume(name="w", volume_id="x", phase=Phase.MOUNTED, mountpoint="/m/w")
    fs = Filesystems(mounted={"/m/v", "/m/w"}, frozen_at_start={"/m/w"})
    assert copies(volume(), fs, State(MOUNTED, other)).thaw_all() == ["w"]
