"""Adopting an existing Cinder volume (`-o volume_id=`), giving it back on
Remove, and `release` of any fuxi volume or share, on the in-memory fakes."""

import dataclasses

import pytest

from storage_core.errors import Conflict, FilesystemError, InvalidInput, NotFound, NotOwned
from storage_core.fakes import fake_volume_service
from storage_core.models import CloudAttachment

THEIR_METADATA = {"team": "data", "backup": "nightly"}


@pytest.fixture
def fakes(tmp_path):
    return fake_volume_service(str(tmp_path))


def theirs(fakes, name="projects-db", status="available", fstype="xfs", metadata=THEIR_METADATA, **changes):
    """A volume someone made outside fuxi; `fstype` is what its device holds (None: blank)."""
    vol = fakes.cinder.add_volume(name, size_gb=3, owned=False, status=status)
    vol = dataclasses.replace(vol, metadata=dict(metadata), **changes)
    fakes.cinder.volumes[vol.id] = vol
    if fstype:
        fakes.filesystems.formatted[device_of(vol)] = fstype
    return vol


def device_of(vol):
    return f"/dev/fake-{vol.id[:8]}"  # FakeCinder's made-up device path


def test_adopted_volume_is_renamed_tagged_mounted_without_mkfs_and_given_back_on_remove(fakes):
    old = theirs(fakes)
    vol = fakes.service.create("db", {"volume_id": old.id})
    assert (vol.id, vol.name, vol.owned, vol.adopted, vol.size_gb) == (old.id, "db", True, True, 3)
    assert dict(vol.metadata) == {**THEIR_METADATA, "volume_from": "fuxi", "fuxi_adopted_from": "projects-db"}
    # One update renames and tags it; Docker's retried Create is the same volume.
    assert [c[0] for c in fakes.cinder.calls].count("rename_and_replace_metadata") == 1
    assert fakes.service.create("db", {"backend": "cinder", "volume_id": old.id}).id == old.id
    status = fakes.service.get("db").status
    assert (status["adopted"], status["fstype"], status["size_gb"]) == (True, None, 3)

    path = fakes.service.mount("db", "c1")
    assert fakes.filesystems.mkfs_calls == []
    assert fakes.filesystems.mounted[path] == device_of(old)
    assert fakes.cinder.volumes[old.id].metadata["fstype"] == "xfs"  # detected, recorded
    fakes.service.unmount("db", "c1")

    fakes.service.remove("db")
    back = fakes.cinder.volumes[old.id]  # not deleted
    assert (back.name, back.status, dict(back.metadata)) == ("projects-db", "available", THEIR_METADATA)
    assert [i.name for i in fakes.service.list()] == []
    with pytest.raises(NotOwned):
        fakes.service.get("projects-db")


def test_adopted_volume_without_a_file_system_is_never_formatted(fakes):
    old = theirs(fakes, fstype=None)
    fakes.service.create("raw", {"volume_id": old.id})
    with pytest.raises(FilesystemError, match=r"was adopted, and fuxi never formats such a volume.*holds no file system"):
        fakes.service.mount("raw", "c1")
    assert fakes.filesystems.mkfs_calls == [] and fakes.filesystems.mounted == {}
    assert fakes.cinder.volumes[old.id].status == "available"  # the attach was undone
    fakes.service.remove("raw")
    assert fakes.cinder.volumes[old.id].name == "projects-db"


def test_adopted_volume_with_a_file_system_fuxi_does_not_mount_is_refused(fakes):
    old = theirs(fakes, fstype="btrfs")
    fakes.service.create("b", {"volume_id": old.id})
    with pytest.raises(FilesystemError, match="holds a btrfs file system; fuxi mounts ext4, xfs"):
        fakes.service.mount("b", "c1")
    assert fakes.filesystems.mkfs_calls == []


def test_an_adopted_volumes_old_fstype_tag_is_not_trusted(fakes):
    old = theirs(fakes, fstype="ext4", metadata={"fstype": "xfs"})
    vol = fakes.service.create("d", {"volume_id": old.id})
    assert "fstype" not in vol.metadata
    fakes.service.mount("d", "c1")
    assert fakes.cinder.volumes[old.id].metadata["fstype"] == "ext4"


@pytest.mark.parametrize("status, attachments, words", [
    ("in-use", (CloudAttachment("att-1", host_name="host-b"),), "is in-use (attached to host-b); only an available"),
    ("reserved", (), "is reserved; only an available volume can be adopted: detach it first"),
    ("error", (), "is error; only an available"),
])
def test_only_an_available_volume_is_adopted(fakes, status, attachments, words):
    old = theirs(fakes, status=status, attachments=attachments)
    with pytest.raises(Conflict) as refused:
        fakes.service.create("db", {"volume_id": old.id})
    assert f"volume 'projects-db' ({old.id}) {words}" in str(refused.value)
    assert fakes.cinder.volumes[old.id].name == "projects-db" and not fakes.cinder.volumes[old.id].owned


def test_a_missing_or_fuxi_owned_volume_is_not_adopted(fakes):
    missing = "0f6e1c2a-8b4d-4e2f-9a1b-3c4d5e6f7a8b"
    with pytest.raises(NotFound, match=f"volume {missing} does not exist .*cannot be adopted as 'db'"):
        fakes.service.create("db", {"volume_id": missing})
    web = fakes.service.create("web", {})
    with pytest.raises(Conflict, match=f"volume {web.id} is already the fuxi volume 'web'.*fuxi release"):
        fakes.service.create("db", {"volume_id": web.id})
    # Adopted once: not again under another name.
    old = theirs(fakes)
    fakes.service.create("db", {"volume_id": old.id})
    with pytest.raises(Conflict, match="already the fuxi volume 'db'"):
        fakes.service.create("db2", {"volume_id": old.id})
    # A name that holds another volume cannot take this one.
    other = theirs(fakes, name="other")
    with pytest.raises(Conflict, match=f"volume 'web' already exists .*not volume {other.id}"):
        fakes.service.create("web", {"volume_id": other.id})
    with pytest.raises(InvalidInput, match="drop size"):
        fakes.service.create("x", {"volume_id": other.id, "size": "1"})


def test_a_warm_pool_volume_is_not_adopted(tmp_path):
    from storage_core.pool.spec import PoolSpec

    fakes = fake_volume_service(str(tmp_path), pools=[PoolSpec(name="warm", size_gb=1, fstype="ext4", tier=1)])
    [pooled] = fakes.service.pools.fill("warm", 1)
    with pytest.raises(Conflict, match=f"volume {pooled} is already a warm-pool volume"):
        fakes.service.create("db", {"volume_id": pooled})
    # And an adoption never takes a pool volume instead.
    old = theirs(fakes)
    assert fakes.service.create("db", {"volume_id": old.id}).id == old.id


# -- release -----------------------------------------------------------------------

def test_release_forgets_a_volume_fuxi_made_without_deleting_it(fakes):
    vol = fakes.service.create("web", {"size": "2", "fstype": "xfs"})
    fakes.service.mount("web", "c1")
    with pytest.raises(Conflict, match="'web' is still mounted 1 time.*before releasing it"):
        fakes.service.release("web")
    fakes.service.unmount("web", "c1")
    released = fakes.service.release("web")
    assert (released.name, released.backend, released.volume_id, released.adopted, released.cloud_name) == (
        "web", "cinder", vol.id, False, "web")
    kept = fakes.cinder.volumes[vol.id]
    assert (kept.name, kept.status, dict(kept.metadata)) == ("web", "available", {})
    assert fakes.service.list() == []
    with pytest.raises(NotOwned, match=r"volume 'web' \(.*\) is not fuxi's .*nothing to release"):
        fakes.service.release("web")
    with pytest.raises(NotFound, match="'nope' does not exist; nothing to release"):
        fakes.service.release("nope")
    # Released, it can be adopted back: its data is detected, not formatted again.
    fakes.service.create("web2", {"volume_id": vol.id})
    fakes.service.mount("web2", "c1")
    assert len(fakes.filesystems.mkfs_calls) == 1


def test_release_of_an_adopted_volume_gives_its_old_name_back(fakes):
    old = theirs(fakes)
    fakes.service.create("db", {"volume_id": old.id})
    released = fakes.service.release("db")
    assert (released.adopted, released.cloud_name) == (True, "projects-db")
    back = fakes.cinder.volumes[old.id]
    assert (back.name, dict(back.metadata)) == ("projects-db", THEIR_METADATA)


def test_release_is_refused_while_another_host_holds_the_volume(fakes):
    vol = fakes.service.create("web", {})
    fakes.cinder.volumes[vol.id] = dataclasses.replace(
        vol, status="in-use", attachments=(CloudAttachment("att-9", host_name="host-b"),))
    with pytest.raises(Conflict, match="attached to host-b; unmount it there before releasing it"):
        fakes.service.release("web")
    assert fakes.cinder.volumes[vol.id].owned


def test_release_of_shares_made_and_adopted(fakes):
    made = fakes.service.create("files", {"backend": "manila"})
    released = fakes.service.release("files")
    assert (released.backend, released.cloud_name, released.adopted) == ("manila", "files", False)
    kept = fakes.manila.shares[made.id]
    assert (kept.name, kept.owned) == ("files", False)
    old = fakes.manila.add_share("team-share", owned=False)
    fakes.service.create("team", {"backend": "manila", "share_id": old.id})
    assert fakes.service.release("team").cloud_name == "team-share"
    back = fakes.manila.shares[old.id]
    assert (back.name, back.owned, back.adopted) == ("team-share", False, False)
    assert fakes.service.list() == []


def test_adoption_is_made_under_cinders_reservation_so_one_adopter_wins(fakes, tmp_path):
    old = theirs(fakes)
    reserve = fakes.cinder.reserve

    def another_host_adopts_first(volume_id):
        # Another host read, reserved, adopted and released it between our read and our reservation.
        fakes.cinder.reserve = reserve
        other = fake_volume_service(str(tmp_path / "other"), cinder=fakes.cinder).service
        other.create("theirs-now", {"volume_id": volume_id})
        return reserve(volume_id)

    fakes.cinder.reserve = another_host_adopts_first
    with pytest.raises(Conflict, match="already the fuxi volume 'theirs-now'"):
        fakes.service.create("db", {"volume_id": old.id})
    assert (fakes.cinder.volumes[old.id].name, fakes.cinder.volumes[old.id].status) == ("theirs-now", "available")

    def taken(volume_id):
        raise Conflict(f"volume {volume_id} is taken (reserved)")

    other = theirs(fakes, name="other")
    fakes.cinder.reserve = taken
    with pytest.raises(Conflict, match=r"'other' \(.*\) was taken by someone else while fuxi adopted it"):
        fakes.service.create("db", {"volume_id": other.id})
    assert not fakes.cinder.volumes[other.id].owned
