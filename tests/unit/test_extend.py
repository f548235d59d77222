"""Growing volumes: VolumeService.extend on the fakes, CinderBackend.extend on a
stub of openstacksdk's proxy, and the host's part (rescan, file system grow)
at the command boundary."""

import os
import uuid
from types import SimpleNamespace

import pytest
from openstack import exceptions as sdk_exceptions

from storage_core.attach.brick import Brick
from storage_core.attach.resize import DeviceResizer, is_loop_device
from storage_core.backends import cinder as cinder_module
from storage_core.backends.cinder import CinderBackend
from storage_core.config import VolumeLimits
from storage_core.errors import AttachError, CloudError, Conflict, FilesystemError, InvalidInput, NotFound, NotOwned
from storage_core.executor import CommandResult
from storage_core.fakes import FakeClock, RecordingExecutor, fake_volume_service
from storage_core.fs import GROW_SLACK, Filesystems, filesystem_size

GIB = 1024**3


@pytest.fixture
def parts(tmp_path):
    return fake_volume_service(str(tmp_path), limits=VolumeLimits(max_size_gb=10))


# -- the service ----------------------------------------------------------------------

def test_extend_a_volume_on_no_host_grows_it_in_the_cloud_only(parts):
    parts.service.create("v", {"size": "1"})
    done = parts.service.extend("v", 3)
    assert (done.old_size_gb, done.new_size_gb, done.mounted_here, done.backend) == (1, 3, False, "cinder")
    [vol] = parts.cinder.named("v")
    assert vol.size_gb == 3
    assert parts.attacher.rescans == [] and parts.filesystems.grown == []
    # The catalog (Get, List) shows the new size at once.
    assert parts.service.get("v").status["size_gb"] == 3


def test_extend_a_mounted_volume_rescans_and_grows_its_file_system(parts):
    parts.service.create("v", {"size": "1"})
    mountpoint = parts.service.mount("v", "c1")
    done = parts.service.extend("v", 2)
    assert done.mounted_here and done.new_size_gb == 2
    device = parts.filesystems.mounted[mountpoint]
    assert parts.attacher.rescans == [(device, 2 * GIB)]
    assert parts.filesystems.grown == [(device, mountpoint)]
    assert parts.service.get("v").status["size_gb"] == 2
    # Still mounted and counted: containers keep using it.
    assert parts.service.path("v") == mountpoint and parts.service.mount_counts() == {"v": 1}


def test_a_volume_extended_on_no_host_grows_its_file_system_at_its_next_mount(parts):
    parts.service.create("v", {"size": "1"})
    mountpoint = parts.service.mount("v", "c1")
    device = parts.filesystems.mounted[mountpoint]
    parts.service.unmount("v", "c1")
    parts.service.extend("v", 2)
    assert parts.filesystems.grown == []
    parts.filesystems.behind.add(device)  # what the device and superblock sizes would say
    parts.service.mount("v", "c2")
    assert parts.filesystems.grown == [(device, mountpoint)]
    # A mount whose file system fills its device grows nothing.
    parts.service.unmount("v", "c2")
    parts.service.mount("v", "c3")
    assert parts.filesystems.grown == [(device, mountpoint)]


@pytest.mark.parametrize("size, message", [
    (1, r"'v' is 2 GiB; the new size \(1 GiB\) must be larger"),
    (2, r"'v' is 2 GiB; the new size \(2 GiB\) must be larger"),
    (11, r"11 GiB is more than max_size_gb \(10 GiB\)"),
    ("3", "whole number of GiB"),
    (True, "whole number of GiB"),
])
def test_shrinking_same_size_and_over_the_maximum_are_refused_before_the_cloud_is_asked(parts, size, message):
    parts.service.create("v", {"size": "2"})
    with pytest.raises(InvalidInput, match=message):
        parts.service.extend("v", size)
    assert not any(c[0] == "extend" for c in parts.cinder.calls)
    assert parts.cinder.named("v")[0].size_gb == 2


def test_unknown_and_foreign_volumes_are_refused(parts):
    with pytest.raises(NotFound, match="'nope' does not exist"):
        parts.service.extend("nope", 2)
    parts.cinder.add_volume("theirs", owned=False)
    with pytest.raises(NotOwned, match="will not extend it"):
        parts.service.extend("theirs", 2)
    assert parts.cinder.named("theirs")[0].size_gb == 1


def test_a_volume_attached_to_another_host_is_refused(parts):
    parts.service.create("v", {"size": "1"})
    [vol] = parts.cinder.named("v")
    parts.cinder.create_attachment(vol.id, {"host": "host-b", "mountpoint": "fuxi:host-b"})
    with pytest.raises(Conflict, match="attached to host-b; extend it on the host that mounts it"):
        parts.service.extend("v", 2)
    assert parts.cinder.get(vol.id).size_gb == 1


def test_a_half_mounted_volume_is_refused(parts):
    parts.service.create("v", {"size": "1"})
    mountpoint = parts.service.mount("v", "c1")
    parts.filesystems.mounted.pop(mountpoint)  # the mount went away behind fuxi's back
    with pytest.raises(Conflict, match="half on this host"):
        parts.service.extend("v", 2)


def test_a_share_grows_in_manila_without_a_host_step(parts):
    parts.service.create("s", {"backend": "manila", "size": "1", "proto": "glusterfs"})
    parts.service.mount("s", "c1")
    done = parts.service.extend("s", 4)
    assert (done.backend, done.new_size_gb) == ("manila", 4)
    assert parts.manila.find("s").size_gb == 4
    assert parts.attacher.rescans == [] and parts.filesystems.grown == []
    with pytest.raises(InvalidInput, match="share 's' is 4 GiB"):
        parts.service.extend("s", 3)


# -- CinderBackend.extend ---------------------------------------------------------------

class StubBlockStorage:
    """os-extend as Cinder 29 answers it: the volume goes to ``extending``, and
    after `polls_to_finish` reads back to its status at the new size."""

    def __init__(self, status="available", size=1, polls_to_finish=2, fail=None, max_microversion="3.71"):
        self.vol = SimpleNamespace(id=str(uuid.uuid4()), name="v", size=size, status=status,
                                   created_at=None, metadata={}, volume_type=None, availability_zone="nova",
                                   attachments=[], is_multiattach=False)
        self.posts = []
        self.polls_to_finish = polls_to_finish
        self.fail = fail
        self.max_microversion = max_microversion
        self._pending = None

    def post(self, path, json=None, microversion=None):
        self.posts.append((path, json, microversion))
        if self.fail is not None:
            return SimpleNamespace(status_code=400, fail=self.fail)
        self._pending = (self.vol.status, json["os-extend"]["new_size"], self.polls_to_finish)
        self.vol.status = "extending"
        return SimpleNamespace(status_code=202)

    def get_volume(self, volume_id):
        if self._pending is not None:
            status, size, left = self._pending
            if left <= 1:
                self.vol.status, self.vol.size, self._pending = status, size, None
            else:
                self._pending = (status, size, left - 1)
        return self.vol


@pytest.fixture
def stub_sdk(monkeypatch):
    def raise_from_response(resp, *args, **kwargs):
        if resp.status_code >= 400:
            exc = sdk_exceptions.BadRequestException(message="BadRequestException: 400", details=resp.fail)
            exc.status_code = 400
            raise exc

    monkeypatch.setattr(cinder_module.sdk_exceptions, "raise_from_response", raise_from_response)
    monkeypatch.setattr(cinder_module.sdk_utils, "supports_microversion",
                        lambda proxy, version: tuple(map(int, version.split("."))) <= tuple(
                            map(int, proxy.max_microversion.split("."))))


def backend_on(stub):
    return CinderBackend(SimpleNamespace(block_storage=stub), clock=FakeClock())


def test_extend_an_available_volume_uses_no_microversion_and_waits_for_the_new_size(stub_sdk):
    stub = StubBlockStorage()
    backend = backend_on(stub)
    grown = backend.extend(backend.get(stub.vol.id), 3)
    assert stub.posts == [(f"/volumes/{stub.vol.id}/action", {"os-extend": {"new_size": 3}}, None)]
    assert (grown.size_gb, grown.status) == (3, "available")


def test_extend_an_in_use_volume_asks_for_3_42(stub_sdk):
    stub = StubBlockStorage(status="in-use")
    backend = backend_on(stub)
    grown = backend.extend(backend.get(stub.vol.id), 2)
    assert stub.posts[0][2] == "3.42"
    assert (grown.size_gb, grown.status) == (2, "in-use")


def test_extend_in_use_on_a_cloud_without_3_42_is_refused_before_asking(stub_sdk):
    stub = StubBlockStorage(status="in-use", max_microversion="3.41")
    backend = backend_on(stub)
    with pytest.raises(Conflict, match=r"cannot extend a volume in use \(microversion 3.42 needed\)"):
        backend.extend(backend.get(stub.vol.id), 2)
    assert stub.posts == []


def test_cinder_refusing_the_extend_is_a_conflict_naming_both_sizes(stub_sdk):
    stub = StubBlockStorage(fail="Invalid volume: Volume x status must be 'available' to extend, currently reserved.")
    backend = backend_on(stub)
    with pytest.raises(Conflict, match=r"from 1 to 2 GiB: Invalid volume: .*currently reserved"):
        backend.extend(backend.get(stub.vol.id), 2)


def test_an_extend_that_ends_in_error_extending_is_a_cloud_error(stub_sdk):
    stub = StubBlockStorage()
    backend = backend_on(stub)
    vol = backend.get(stub.vol.id)
    stub.post(f"/volumes/{vol.id}/action", {"os-extend": {"new_size": 2}})
    stub._pending = ("error_extending", 1, 1)
    stub.post = lambda *a, **k: SimpleNamespace(status_code=202)
    with pytest.raises(CloudError, match="error_extending"):
        backend.extend(vol, 2)


# -- the host's part ----------------------------------------------------------------------

def test_a_loop_device_is_refreshed_and_others_are_left_to_the_kernel(tmp_path):
    executor = RecordingExecutor()
    resizer = DeviceResizer(executor, clock=FakeClock())
    assert resizer.refresh_if_loop("/dev/loop7") is True
    assert resizer.refresh_if_loop("/dev/vdb") is False
    assert executor.calls == [["losetup", "-c", "/dev/loop7"]]
    assert is_loop_device("/dev/loop12") and not is_loop_device("/dev/sda")


def test_wait_for_size_sees_the_device_grow_and_gives_up_with_both_sizes(tmp_path):
    device = tmp_path / "disk"
    device.write_bytes(b"")
    os.truncate(device, 1000)
    clock = FakeClock()
    clock.at(0.5, lambda: os.truncate(device, 2000))
    assert DeviceResizer(RecordingExecutor(), clock=clock).wait_for_size(str(device), 2000) == 2000
    with pytest.raises(AttachError, match="still shows 2000 bytes \\(wanted 3000\\)"):
        DeviceResizer(RecordingExecutor(), clock=FakeClock(), timeout=2).wait_for_size(str(device), 3000)


class FakeConnector:
    def __init__(self):
        self.extended = []

    def extend_volume(self, properties):
        self.extended.append(properties)
        return 0


def test_brick_refreshes_a_local_loop_device_then_lets_os_brick_rescan(tmp_path, monkeypatch):
    monkeypatch.setattr("storage_core.attach.brick.configure", lambda lock_dir: None)  # no os-brick set-up
    device = tmp_path / "loop5"  # a file named like a loop device stands in for one
    device.write_bytes(b"")
    os.truncate(device, 2 * GIB)
    executor = RecordingExecutor()
    brick = Brick(str(tmp_path / "locks"), resizer=DeviceResizer(executor, clock=FakeClock()))
    local, iscsi = FakeConnector(), FakeConnector()
    # The connectors os-brick's factory would make (os-brick itself stays unloaded here).
    brick._connector = lambda protocol: {"LOCAL": local, "ISCSI": iscsi}[protocol.upper()]
    info = {"driver_volume_type": "local", "device_path": str(device)}
    assert brick.extend(info, str(device), 2 * GIB) == 2 * GIB
    assert executor.calls == [["losetup", "-c", str(device)]] and local.extended == [{"device_path": str(device)}]
    executor.calls.clear()
    brick.extend({"driver_volume_type": "iscsi", "data": {"target_lun": 1}}, str(device), 2 * GIB)
    assert executor.calls == [] and iscsi.extended == [{"target_lun": 1}]


MOUNTINFO = (
    "22 1 0:21 / / rw - overlay overlay rw\n"
    "88 22 7:3 / /mnt/ext rw,relatime shared:1 - ext4 /dev/loop3 rw\n"
    "89 22 7:4 / /mnt/xfs rw,relatime shared:1 - xfs /dev/loop4 rw\n"
)


def test_grow_runs_resize2fs_on_the_device_for_ext4_and_xfs_growfs_on_the_mountpoint(tmp_path):
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    executor = RecordingExecutor()
    fs = Filesystems(executor, mountinfo_path=str(tmp_path / "mountinfo"))
    fs.grow("/dev/loop3", "/mnt/ext")
    fs.grow("/dev/loop4", "/mnt/xfs")
    assert executor.calls == [["resize2fs", "/dev/loop3"], ["xfs_growfs", "/mnt/xfs"]]
    with pytest.raises(FilesystemError, match="not mounted"):
        fs.grow("/dev/loop5", "/mnt/none")
    failing = Filesystems(RecordingExecutor({("resize2fs",): CommandResult("", "bad", 1)}),
                          mountinfo_path=str(tmp_path / "mountinfo"))
    with pytest.raises(FilesystemError, match="growing the mounted ext4 file system of /dev/loop3 failed"):
        failing.grow("/dev/loop3", "/mnt/ext")


def _ext4_image(path, blocks_lo, log_block_size=2, blocks_hi=0, size=None):
    sb = bytearray(1024)
    sb[4:8] = blocks_lo.to_bytes(4, "little")
    sb[24:28] = log_block_size.to_bytes(4, "little")
    sb[56:58] = (0xEF53).to_bytes(2, "little")
    if blocks_hi:
        sb[96:100] = (0x80).to_bytes(4, "little")
        sb[336:340] = blocks_hi.to_bytes(4, "little")
    with open(path, "wb") as f:
        f.write(bytes(1024) + bytes(sb))
        f.truncate(size or 4096)


def test_file_system_size_from_the_ext4_and_xfs_superblocks(tmp_path):
    ext4 = tmp_path / "ext4"
    _ext4_image(ext4, 262144)  # 1 GiB in 4 KiB blocks
    assert filesystem_size(str(ext4), "ext4") == GIB
    _ext4_image(ext4, 0, blocks_hi=1)  # 2^32 blocks: the 64bit feature's high word counts
    assert filesystem_size(str(ext4), "ext4") == 2**32 * 4096
    xfs = tmp_path / "xfs"
    xfs.write_bytes(b"XFSB" + (4096).to_bytes(4, "big") + (524288).to_bytes(8, "big") + bytes(2032))
    assert filesystem_size(str(xfs), "xfs") == 2 * GIB
    assert filesystem_size(str(xfs), "ext4") is None and filesystem_size(str(ext4), "xfs") is None


def test_smaller_than_device_only_when_the_device_grew_past_the_slack(tmp_path):
    fs = Filesystems(RecordingExecutor())
    image = tmp_path / "disk"
    _ext4_image(image, 262144, size=GIB + GROW_SLACK)
    assert not fs.smaller_than_device(str(image), "ext4")
    os.truncate(image, 2 * GIB)
    assert fs.smaller_than_device(str(image), "ext4")
    assert not fs.smaller_than_device(str(image), "xfs")  # not the type it holds: nothing to say
    assert not fs.smaller_than_device(str(tmp_path / "gone"), "ext4")


# -- devcloud's volume service ------------------------------------------------------------

def test_devcloud_extend_grows_the_file_and_follows_cinders_status_rules(tmp_path):
    from storage_core.devcloud.backend import Invalid, VolumeService
    from storage_core.devcloud.latency import LatencyProfile
    from storage_core.devcloud.store import Store
    from tests.unit.test_devcloud_backend import PROJECT, FakeLoops, ManualScheduler, _create

    store, scheduler = Store(tmp_path / "db.sqlite"), ManualScheduler()
    service = VolumeService(store, tmp_path / "volumes", FakeLoops(), scheduler, lambda: LatencyProfile.named("none"))
    try:
        volume = _create(service)
        scheduler.run_all()
        with pytest.raises(Invalid, match=r"New size for extend must be greater than current size. "
                                          r"\(current: 1, extended: 1\)"):
            service.extend_volume(PROJECT, volume["id"], 1, in_use_allowed=False)
        service.extend_volume(PROJECT, volume["id"], 2, in_use_allowed=False)
        assert service.get_volume(PROJECT, volume["id"])["status"] == "extending"
        scheduler.run_all()
        assert (service.get_volume(PROJECT, volume["id"])["status"],
                service.get_volume(PROJECT, volume["id"])["size"]) == ("available", 2)
        assert os.path.getsize(service.path(volume["id"])) == 2 * GIB

        att = service.create_attachment(PROJECT, volume["id"], instance_uuid=None, connector={"host": "h"},
                                        mode="rw")
        service.complete_attachment(PROJECT, att["id"])
        # Below 3.42 an in-use volume is refused in Cinder's words.
        with pytest.raises(Invalid, match=r"status must be '\{'status': 'available'\}' to extend, currently in-use"):
            service.extend_volume(PROJECT, volume["id"], 3, in_use_allowed=False)
        service.extend_volume(PROJECT, volume["id"], 3, in_use_allowed=True)
        scheduler.run_all()
        current = service.get_volume(PROJECT, volume["id"])
        assert (current["status"], current["size"]) == ("in-use", 3)
        assert os.path.getsize(service.path(volume["id"])) == 3 * GIB
    finally:
        store.close()


def test_an_extend_interrupted_after_the_cloud_is_finished_by_asking_again(parts):
    parts.service.create("v", {"size": "1"})
    mountpoint = parts.service.mount("v", "c1")
    device = parts.filesystems.mounted[mountpoint]
    [vol] = parts.cinder.named("v")
    parts.cinder.extend(vol, 2)  # the cloud's part done, then a crash
    parts.filesystems.behind.add(device)
    done = parts.service.extend("v", 2)
    assert (done.old_size_gb, done.new_size_gb, done.mounted_here) == (2, 2, True)
    assert parts.attacher.rescans == [(device, 2 * GIB)] and parts.filesystems.grown == [(device, mountpoint)]
    assert [c for c in parts.cinder.calls if c[0] == "extend"] == [("extend", vol.id, 2)]
    # Done now: the same size again is refused as any other.
    with pytest.raises(InvalidInput, match=r"is 2 GiB; the new size \(2 GiB\) must be larger"):
        parts.service.extend("v", 2)


def test_short_of_reads_the_device_and_its_file_system(tmp_path):
    fs = Filesystems(RecordingExecutor())
    image = tmp_path / "disk"
    _ext4_image(image, 262144, size=2 * GIB)  # a 1 GiB ext4 on a 2 GiB device
    assert fs.short_of(str(image), "ext4", 2 * GIB)
    assert not fs.short_of(str(image), "ext4", GIB)
    _ext4_image(image, 524288, size=GIB)  # the superblock says 2 GiB, the device is 1 GiB
    assert fs.short_of(str(image), "ext4", 2 * GIB)


def test_an_unmounted_ext4_grows_after_a_check_and_xfs_is_left_for_after_the_mount(tmp_path):
    executor = RecordingExecutor({("e2fsck",): CommandResult("", "", 1)})
    fs = Filesystems(executor)
    assert fs.grow_unmounted("/dev/loop3", "ext4") is True
    assert fs.grow_unmounted("/dev/loop4", "xfs") is False
    assert executor.calls == [["e2fsck", "-f", "-p", "/dev/loop3"], ["resize2fs", "/dev/loop3"]]


def test_an_online_ext4_resize_refused_by_the_kernel_says_why(tmp_path):
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    denied = CommandResult("", "resize2fs: Permission denied to resize filesystem", 1)
    fs = Filesystems(RecordingExecutor({("resize2fs",): denied}), mountinfo_path=str(tmp_path / "mountinfo"))
    with pytest.raises(FilesystemError, match="needs CAP_SYS_RESOURCE.*grows offline at the volume's next mount"):
        fs.grow("/dev/loop3", "/mnt/ext")
