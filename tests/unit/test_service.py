from datetime import timedelta

import pytest

from storage_core.errors import AttachError, Conflict, FilesystemError, InvalidInput, NotFound, NotOwned
from storage_core.fakes import FakeCinder, fake_volume_service
from storage_core.models import HOLDER_PREFIX, CloudAttachment, CloudVolume


@pytest.fixture
def parts(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    return fakes.service, fakes.cinder, fakes.filesystems, fakes.attacher


def test_create_is_idempotent_and_checks_options(parts):
    service, cloud, _, _ = parts
    first = service.create("v1", {"size": "2"})
    again = service.create("v1", {"size": "2"})
    assert first.id == again.id and len(cloud.volumes) == 1
    with pytest.raises(Conflict, match="size 2 GiB"):
        service.create("v1", {"size": "3"})


def test_bad_options_create_nothing(parts):
    service, cloud, _, _ = parts
    for opts in ({"size": "abc"}, {"size": "11"}, {"sise": "1"}, {"fstype": "ntfs"}):
        with pytest.raises(InvalidInput):
            service.create("v1", opts)
    assert cloud.volumes == {} and not any(c[0] == "create" for c in cloud.calls)


def test_volumes_not_owned_are_never_touched(parts):
    service, cloud, fs, _ = parts
    foreign = cloud.add_volume("theirs", owned=False)
    with pytest.raises(NotOwned):
        service.create("theirs", {})
    with pytest.raises(NotOwned):
        service.mount("theirs", "a")
    with pytest.raises(NotOwned):
        service.remove("theirs")
    with pytest.raises(NotOwned):
        service.get("theirs")
    assert foreign.id in cloud.volumes and cloud.attachments == {} and fs.mkfs_calls == []


def test_attach_at_first_mount_detach_at_last_unmount(parts):
    service, cloud, fs, _ = parts
    vol = service.create("v1", {})
    path = service.mount("v1", "a")
    assert service.mount("v1", "b") == path
    assert cloud.volumes[vol.id].status == "in-use"
    assert [c[0] for c in cloud.calls].count("create_attachment") == 1
    service.unmount("v1", "a")
    assert cloud.volumes[vol.id].status == "in-use" and fs.is_mounted(path)
    service.unmount("v1", "b")
    assert cloud.volumes[vol.id].status == "available" and not fs.is_mounted(path)
    assert service.get("v1").status["mounts"] == 0


def test_a_device_still_mounted_elsewhere_is_never_detached(tmp_path):
    """A bind mount made from the volume's mount (a CSI staging path) outlived
    it: the last unmount refuses to detach, and detaches once that goes."""
    fakes = fake_volume_service(str(tmp_path), binds_mounts=True)
    service, cloud, fs = fakes.service, fakes.cinder, fakes.filesystems
    vol = service.create("v1", {})
    path = service.mount("v1", "a")
    device = fs.mounted[path]
    fs.mounted["/var/lib/kubelet/staging"] = device
    fs.unmount(path)  # its own mount went with the mount namespace that held it
    with pytest.raises(Conflict, match="still mounted at /var/lib/kubelet/staging"):
        service.unmount("v1", "a")
    assert cloud.volumes[vol.id].status == "in-use" and cloud.attachments
    fs.unmount("/var/lib/kubelet/staging")
    service.mount("v1", "b")
    service.unmount("v1", "b")
    assert cloud.volumes[vol.id].status == "available" and cloud.attachments == {}


@pytest.mark.parametrize("binds_mounts", [True, False])
def test_a_device_another_mount_shares_is_detached_after_its_own_unmount(tmp_path, binds_mounts):
    """Another fuxi on this machine mounting the same device (a shared
    multiattach volume in a two-host test) does not hold a normal unmount, nor,
    where no binds are made (fuxi), one whose own mount went."""
    fakes = fake_volume_service(str(tmp_path), binds_mounts=binds_mounts)
    service, cloud, fs = fakes.service, fakes.cinder, fakes.filesystems
    vol = service.create("v1", {})
    path = service.mount("v1", "a")
    fs.mounted["/other/fuxi/mounts/v1"] = fs.mounted[path]
    if not binds_mounts:
        fs.unmount(path)  # e.g. an operator's umount -l
    service.unmount("v1", "a")
    assert cloud.volumes[vol.id].status == "available" and not fs.is_mounted(path)


def test_formatting_happens_once(parts):
    service, _, fs, _ = parts
    service.create("v1", {"fstype": "xfs"})
    service.mount("v1", "a")
    service.unmount("v1", "a")
    service.mount("v1", "b")
    assert len(fs.mkfs_calls) == 1 and fs.mkfs_calls[0][1] == "xfs"


def test_unmount_of_unknown_caller_changes_nothing(parts):
    service, cloud, fs, _ = parts
    vol = service.create("v1", {})
    path = service.mount("v1", "a")
    service.unmount("v1", "stranger")
    assert fs.is_mounted(path) and cloud.volumes[vol.id].status == "in-use"


def test_remove_refuses_while_mounted_and_succeeds_when_gone(parts):
    service, cloud, _, _ = parts
    service.create("v1", {})
    service.mount("v1", "a")
    with pytest.raises(Conflict, match="mounted 1 time"):
        service.remove("v1")
    service.unmount("v1", "a")
    service.remove("v1")
    assert cloud.volumes == {}
    service.remove("v1")  # already gone: still fine


def test_failed_mount_undoes_the_attach_and_never_formats_again(parts):
    service, cloud, fs, _ = parts
    vol = service.create("v1", {})
    fs.fail_mount = True
    with pytest.raises(FilesystemError):
        service.mount("v1", "a")
    assert cloud.volumes[vol.id].status == "available" and cloud.attachments == {}
    assert service.get("v1").status["mounts"] == 0
    fs.fail_mount = False
    service.mount("v1", "a")
    assert len(fs.mkfs_calls) == 1


def test_failed_connect_leaves_no_attachment(parts):
    service, cloud, _, attacher = parts
    vol = service.create("v1", {})
    attacher.fail_connect = True
    with pytest.raises(AttachError):
        service.mount("v1", "a")
    assert cloud.attachments == {} and cloud.volumes[vol.id].status == "available"


def test_get_path_list(parts):
    service, cloud, _, _ = parts
    with pytest.raises(NotFound):
        service.get("v1")
    service.create("v1", {"size": "3"})
    cloud.add_volume("theirs", owned=False)
    info = service.get("v1")
    assert info.mountpoint is None and info.status["size_gb"] == 3 and info.status["attached"] is False
    assert service.path("v1") is None
    path = service.mount("v1", "a")
    assert service.path("v1") == path
    info = service.get("v1")
    assert info.mountpoint == path and info.status["mounts"] == 1 and info.status["attached"] is True
    assert [i.name for i in service.list()] == ["v1"]


def test_mount_after_create_attaches_by_remembered_id_without_a_lookup(parts):
    service, cloud, _, _ = parts
    service.create("v1", {})
    cloud.calls.clear()
    service.mount("v1", "a")
    assert [c[0] for c in cloud.calls] == ["create_attachment", "complete_attachment"]


def test_a_stale_remembered_volume_is_looked_up_again(parts):
    service, cloud, _, _ = parts
    old = service.create("v1", {})
    cloud.volumes.pop(old.id)  # deleted behind fuxi's back ...
    new = cloud.add_volume("v1")  # ... and made again under the same name
    service.mount("v1", "a")
    assert cloud.volumes[new.id].status == "in-use"


def test_a_remembered_volume_in_use_elsewhere_gets_the_clear_refusal(parts):
    service, cloud, _, _ = parts
    vol = service.create("v1", {})
    cloud.create_attachment(vol.id, {"host": "other-host"})
    with pytest.raises(Conflict, match="attached to other-host"):
        service.mount("v1", "a")


def test_get_writes_no_local_state(parts, monkeypatch):
    service, _, _, _ = parts
    service.create("v1", {})
    state = service._state
    for write in ("remember_volume", "forget_volume", "save_host_volume", "add_mount"):
        monkeypatch.setattr(state, write, lambda *a, **k: pytest.fail(f"Get called {write}"))
    service.get("v1")
    with pytest.raises(NotFound):
        service.get("missing")


# -- two hosts on one cloud ----------------------------------------------------


class RacingCinder(FakeCinder):
    """Another host creates the same name while ours is created, `offset` earlier or later."""

    def __init__(self, offset):
        super().__init__()
        self.offset = offset
        self.theirs = None

    def create(self, spec):
        ours = super().create(spec)
        theirs = self.add_volume(spec.name, spec.size_gb, fstype=spec.fstype)
        self.volumes[theirs.id] = self.theirs = CloudVolume(
            **{**theirs.__dict__, "created_at": ours.created_at + self.offset})
        return ours


def test_a_create_racing_another_hosts_gives_way_to_the_older_volume(tmp_path):
    cloud = RacingCinder(offset=-timedelta(seconds=1))
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    vol = service.create("v1", {})
    assert vol.id == cloud.theirs.id and list(cloud.volumes) == [cloud.theirs.id]
    assert service.get("v1").status["volume_id"] == cloud.theirs.id


def test_an_older_namesake_that_differs_is_refused_and_ours_still_goes(tmp_path):
    cloud = RacingCinder(offset=-timedelta(seconds=1))
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    racing_create = cloud.create

    def create(spec):
        ours = racing_create(spec)
        cloud.volumes[cloud.theirs.id] = CloudVolume(**{**cloud.theirs.__dict__, "size_gb": 3})
        return ours

    cloud.create = create
    with pytest.raises(Conflict, match=r"size 3 GiB \(asked 2\)"):
        service.create("v1", {"size": "2"})
    assert list(cloud.volumes) == [cloud.theirs.id]


def test_a_create_racing_a_younger_namesake_keeps_its_own(tmp_path):
    cloud = RacingCinder(offset=timedelta(seconds=1))
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    vol = service.create("v1", {})
    # Ours stays; the other host, seeing ours older, removes its own.
    assert vol.id != cloud.theirs.id and vol.id in cloud.volumes


def test_a_create_seeing_no_namesake_makes_one_extra_lookup(parts):
    service, cloud, _, _ = parts
    service.create("v1", {})
    assert [c[0] for c in cloud.calls] == ["find", "create", "named"]


def test_the_refusal_names_the_host_holding_the_volume(parts):
    service, cloud, _, _ = parts
    vol = service.create("v1", {})
    # As Cinder shows a bare-metal attachment of another fuxi host to a non-admin:
    # no host_name, the attachment owner's UUID, the holder in the device.
    held = CloudAttachment("att-b", None, "5e1c6f5a-0000-5000-8000-000000000000", HOLDER_PREFIX + "host-b")
    cloud.volumes[vol.id] = CloudVolume(**{**vol.__dict__, "status": "in-use", "attachments": (held,)})
    with pytest.raises(Conflict, match=r"is in-use \(attached to host-b\)"):
        service.mount("v1", "a")
    with pytest.raises(Conflict, match="attached to host-b; unmount it there"):
        service.remove("v1")
    assert vol.id in cloud.volumes
    # A Nova attachment names the server; one with nothing to go by, itself.
    for attachment, shown in ((CloudAttachment("att-n", None, "server-1", "/dev/vdb"), "server-1"),
                              (CloudAttachment("att-x"), "attachment att-x")):
        cloud.volumes[vol.id] = CloudVolume(**{**vol.__dict__, "status": "in-use", "attachments": (attachment,)})
        with pytest.raises(Conflict, match=f"attached to {shown}"):
            service.remove("v1")


class DeletingElsewhereCinder(FakeCinder):
    """Another host's Remove of the same volume is under way: Cinder refuses ours."""

    def delete(self, volume):
        self.calls.append(("delete", volume.id))
        self.volumes[volume.id] = CloudVolume(**{**self.volumes[volume.id].__dict__, "status": "deleting"})
        raise Conflict(f"Cinder refused to delete volume {volume.id}: status must be available")

    def wait_gone(self, volume_id, timeout):
        self.calls.append(("wait_gone", volume_id))
        self.volumes.pop(volume_id)


def test_remove_of_a_volume_another_host_is_deleting_succeeds_once_it_is_gone(tmp_path):
    cloud = DeletingElsewhereCinder()
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    vol = service.create("v1", {})
    service.remove("v1")
    assert cloud.volumes == {} and ("wait_gone", vol.id) in cloud.calls
    with pytest.raises(NotFound):
        service.get("v1")


def test_remove_refused_for_another_reason_is_still_refused(tmp_path):
    cloud = FakeCinder()
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    vol = service.create("v1", {})

    def refuse(volume):
        raise Conflict("Cinder refused to delete volume: it has snapshots")

    cloud.delete = refuse
    with pytest.raises(Conflict, match="has snapshots"):
        service.remove("v1")
    assert vol.id in cloud.volumes


def test_a_tie_to_the_second_gives_way_to_the_other_host(tmp_path):
    cloud = RacingCinder(offset=timedelta(0))
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    vol = service.create("v1", {})
    assert vol.id == cloud.theirs.id and list(cloud.volumes) == [cloud.theirs.id]


class BothGiveWay(RacingCinder):
    """The other host saw ours too and gave way at the same moment, once."""

    def __init__(self):
        super().__init__(offset=timedelta(0))
        self.races = 1

    def create(self, spec):
        if not self.races:
            return FakeCinder.create(self, spec)
        self.races -= 1
        return super().create(spec)

    def delete(self, volume):
        super().delete(volume)
        if self.theirs is not None and self.theirs.id in self.volumes:
            self.volumes.pop(self.theirs.id)  # theirs goes as well


def test_when_both_hosts_give_way_the_create_is_tried_again(tmp_path, monkeypatch):
    monkeypatch.setattr("storage_core.service.time.sleep", lambda s: None)
    cloud = BothGiveWay()
    service = fake_volume_service(str(tmp_path), cinder=cloud).service
    vol = service.create("v1", {})
    assert list(cloud.volumes) == [vol.id] and vol.id != cloud.theirs.id
