"""devcloud's backups: status sequences, data copied and restored, Cinder's
refusals and views, restart. Fake loop devices, no sockets."""

import os

import pytest

from storage_core.devcloud.backend import GIB, Invalid, NotFound
from tests.unit.test_devcloud_snapshots import (
    MIB,
    PROJECT,
    Parts,
    allocated,
    bad_request,
    read,
    write,
)


@pytest.fixture
def parts(tmp_path):
    parts = Parts(tmp_path)
    yield parts
    parts.store.close()


def backup(parts, volume_id, run=True, **kwargs):
    made = parts.backups.create_backup(PROJECT, "u1", volume_id, **kwargs)
    if run:
        parts.run()
        return parts.backups.get_backup(PROJECT, made["id"])
    return made


def described(parts, name="src", description=None, metadata=None, size=1):
    """A volume with a description and metadata (parts.volume makes it without)."""
    volume = parts.volume(size=size, name=name)
    changes = {"description": description, "metadata": metadata or {}}
    return parts.volumes.update_volume(PROJECT, volume["id"], changes)[0]


def test_backup_status_sequence_and_data(parts):
    volume = parts.volume(size=2)
    write(parts.volumes.path(volume["id"]), GIB + 3, b"payload")
    made = backup(parts, volume["id"], run=False, name="b", metadata={"k": "v"})
    assert made["status"] == "creating" and made["size"] == 2
    assert made["object_count"] is None and made["container"] is None
    assert made["data_timestamp"] == made["created_at"]
    assert parts.status(volume["id"]) == "backing-up"
    with pytest.raises(Invalid):  # nor deleted while backed up
        parts.volumes.delete_volume(PROJECT, volume["id"])
    parts.run()
    done = parts.backups.get_backup(PROJECT, made["id"])
    assert done["status"] == "available" and done["fail_reason"] is None
    assert done["availability_zone"] == "nova" and done["object_count"] == 2
    assert done["container"] == f"{made['id'][:2]}/{made['id'][2:4]}/{made['id']}"
    assert parts.status(volume["id"]) == "available"
    path = parts.backups.path(made["id"])
    assert read(path, GIB + 3, 7) == b"payload" and allocated(path) < MIB
    # A backup outlives its volume.
    parts.volumes.delete_volume(PROJECT, volume["id"])
    parts.run()
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "available"


def test_an_in_use_volume_needs_force_and_stays_in_use(parts):
    volume = parts.volume()
    parts.attach(volume["id"])
    with pytest.raises(Invalid) as err:
        backup(parts, volume["id"])
    assert err.value.message == "Invalid volume: Backing up an in-use volume must use the force flag."
    made = backup(parts, volume["id"], run=False, force=True)
    assert parts.status(volume["id"]) == "backing-up"
    parts.run()
    assert parts.status(volume["id"]) == "in-use"
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "available"
    parts.volumes.reset_status(PROJECT, volume["id"], "error")
    with pytest.raises(Invalid) as err:
        backup(parts, volume["id"], force=True)
    assert err.value.message == ('Invalid volume: Volume to be backed up must be available or '
                                 'in-use, but the current status is "error".')


def test_an_in_use_volume_is_backed_up_through_a_temporary_volume(parts, monkeypatch):
    from storage_core.devcloud import backups

    volume = parts.volume()
    parts.attach(volume["id"])
    seen = []
    real_copy = backups.copy_sparse

    def copy(src, dst, size):
        seen.extend((v["name"], v["status"], v.get("temporary"))
                    for v in parts.volumes.list_volumes(PROJECT) if v["name"] != "v")
        real_copy(src, dst, size)

    monkeypatch.setattr(backups, "copy_sparse", copy)
    backup(parts, volume["id"], force=True)
    assert seen == [(f"backup-vol-{volume['id']}", "backing-up", True)]
    assert [v["id"] for v in parts.volumes.list_volumes(PROJECT)] == [volume["id"]]
    seen.clear()
    backup(parts, parts.volume()["id"])  # an available volume is read as it is
    assert seen == []


def test_a_backup_of_a_snapshot_copies_the_snapshot(parts):
    volume = parts.volume()
    path = parts.volumes.path(volume["id"])
    write(path, 0, b"then")
    snapshot = parts.snapshot(volume["id"])
    write(path, 0, b"now!")
    made = backup(parts, volume["id"], run=False, snapshot_id=snapshot["id"])
    assert parts.snapshots.get_snapshot(PROJECT, snapshot["id"])["status"] == "backing-up"
    assert parts.status(volume["id"]) == "available"  # the volume is not involved
    assert made["data_timestamp"] == snapshot["created_at"]
    with pytest.raises(Invalid):  # a snapshot being backed up is not deleted
        parts.snapshots.delete_snapshot(PROJECT, snapshot["id"])
    parts.run()
    assert parts.snapshots.get_snapshot(PROJECT, snapshot["id"])["status"] == "available"
    done = parts.backups.get_backup(PROJECT, made["id"])
    assert done["snapshot_id"] == snapshot["id"] and read(parts.backups.path(made["id"]), 0, 4) == b"then"

    other = parts.volume()
    with pytest.raises(Invalid) as err:
        backup(parts, other["id"], snapshot_id=snapshot["id"])
    assert err.value.message == (f"Invalid volume: Volume {other['id']} does not match with "
                                 f"snapshot.volume_id {volume['id']}.")


def test_restore_into_an_existing_volume_replaces_its_data_keeps_its_size(parts):
    source = parts.volume()
    write(parts.volumes.path(source["id"]), 7 * MIB, b"backed up")
    made = backup(parts, source["id"])
    target = parts.volume(size=3)
    write(parts.volumes.path(target["id"]), 2 * GIB, b"overwritten")

    answer = parts.backups.restore(PROJECT, "u1", made["id"], volume_id=target["id"])
    assert answer == {"backup_id": made["id"], "volume_id": target["id"], "volume_name": "v"}
    assert parts.status(target["id"]) == "restoring-backup"
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "restoring"
    with pytest.raises(Invalid):
        parts.backups.delete_backup(PROJECT, made["id"])
    parts.run()
    restored = parts.volumes.get_volume(PROJECT, target["id"])
    assert restored["status"] == "available" and restored["size"] == 3
    assert restored["metadata"] == {"src_backup_id": made["id"]}
    path = parts.volumes.path(target["id"])
    assert os.path.getsize(path) == 3 * GIB and allocated(path) < MIB
    assert read(path, 7 * MIB, 9) == b"backed up" and read(path, 2 * GIB, 11) == bytes(11)
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "available"

    # Into its own volume: no tag (Cinder tags only another volume).
    parts.backups.restore(PROJECT, "u1", made["id"], volume_id=source["id"])
    parts.run()
    assert parts.volumes.get_volume(PROJECT, source["id"])["metadata"] == {}


def test_restore_refusals(parts):
    made = backup(parts, parts.volume(size=2)["id"])
    small = parts.volume(size=1)
    with pytest.raises(Invalid) as err:
        parts.backups.restore(PROJECT, "u1", made["id"], volume_id=small["id"])
    assert err.value.message == "Invalid volume: volume size 1 is too small to restore backup of size 2."
    busy = parts.volume(size=2)
    parts.attach(busy["id"])
    with pytest.raises(Invalid) as err:
        parts.backups.restore(PROJECT, "u1", made["id"], volume_id=busy["id"])
    assert err.value.message == "Invalid volume: Volume to be restored to must be available"
    with pytest.raises(NotFound, match="Volume nope could not be found."):
        parts.backups.restore(PROJECT, "u1", made["id"], volume_id="nope")
    pending = backup(parts, busy["id"], run=False, force=True)
    with pytest.raises(Invalid) as err:
        parts.backups.restore(PROJECT, "u1", pending["id"])
    assert err.value.message == "Invalid backup: Backup status must be available"
    assert {parts.status(small["id"]), parts.status(busy["id"])} == {"available", "backing-up"}


def test_restore_without_a_volume_makes_one_of_the_backups_size(parts):
    source = parts.volume(size=2)
    write(parts.volumes.path(source["id"]), 1, b"x")
    made = backup(parts, source["id"])
    answer = parts.backups.restore(PROJECT, "u1", made["id"])
    new = parts.volumes.get_volume(PROJECT, answer["volume_id"])
    assert answer["volume_name"] == f"restore_backup_{made['id']}" == new["name"]
    assert new["description"] == "auto-created_from_restore_from_backup"
    assert new["status"] == "restoring-backup" and new["size"] == 2
    parts.run()
    new = parts.volumes.get_volume(PROJECT, new["id"])
    assert new["status"] == "available"
    # Once restored, it is named as the backed-up volume was (description too).
    assert (new["name"], new["description"]) == ("v", None)
    assert read(parts.volumes.path(new["id"]), 1, 1) == b"x"
    named = parts.backups.restore(PROJECT, "u1", made["id"], name="mine")
    assert named["volume_name"] == "mine"
    parts.run()
    named = parts.volumes.get_volume(PROJECT, named["volume_id"])
    assert (named["name"], named["description"]) == ("mine", "auto-created_from_restore_from_backup")


def test_a_restore_brings_the_backed_up_metadata_and_names_an_unnamed_volume(parts):
    source = described(parts, "src", "about", {"k": "old"})
    made = backup(parts, source["id"], run=False)
    # What counts is the volume as it was when the backup was made: Cinder's
    # backup driver reads it once the data is copied.
    parts.volumes.update_metadata(PROJECT, source["id"], {"k": "v", "clash": "backed up"}, True)
    parts.run()
    parts.volumes.update_volume(PROJECT, source["id"], {
        "name": "renamed", "description": "later", "metadata": {"later": "x"}})
    backup_id = made["id"]
    expected = {"k": "v", "clash": "backed up", "src_backup_id": backup_id}

    unnamed = parts.backups.restore(PROJECT, "u1", backup_id)
    assert unnamed["volume_name"] == f"restore_backup_{backup_id}"
    restoring = parts.volumes.get_volume(PROJECT, unnamed["volume_id"])
    assert restoring["metadata"] == {}  # only once the restore is done
    parts.run()
    new = parts.volumes.get_volume(PROJECT, unnamed["volume_id"])
    assert (new["name"], new["description"], new["metadata"]) == ("src", "about", expected)

    named = parts.backups.restore(PROJECT, "u1", backup_id, name="mine")
    parts.run()
    new = parts.volumes.get_volume(PROJECT, named["volume_id"])
    assert (new["name"], new["description"], new["metadata"]) == (
        "mine", "auto-created_from_restore_from_backup", expected)

    # An existing volume keeps its name and description, not its metadata:
    # Cinder replaces it with the backed-up one (as real Cinder 29 does).
    target = described(parts, "target", "mine", {"own": "1", "clash": "target's"})
    parts.backups.restore(PROJECT, "u1", backup_id, volume_id=target["id"])
    parts.run()
    target = parts.volumes.get_volume(PROJECT, target["id"])
    assert (target["name"], target["description"]) == ("target", "mine")
    assert target["metadata"] == expected
    # Cinder names an existing volume too when it has no name (or one it made up).
    for own_name in (None, "", "restore_backup_old"):
        nameless = described(parts, own_name, "its own")
        parts.backups.restore(PROJECT, "u1", backup_id, volume_id=nameless["id"])
        parts.run()
        nameless = parts.volumes.get_volume(PROJECT, nameless["id"])
        assert (nameless["name"], nameless["description"]) == ("src", "about"), own_name

    # Into its own volume: its metadata as backed up (the later key goes), no tag.
    parts.backups.restore(PROJECT, "u1", backup_id, volume_id=source["id"])
    parts.run()
    source = parts.volumes.get_volume(PROJECT, source["id"])
    assert (source["name"], source["description"]) == ("renamed", "later")
    assert source["metadata"] == {"k": "v", "clash": "backed up"}

    # A volume created from the backup: the same, once it is available.
    for name, description in ((None, None), ("n", "d")):
        new = parts.volumes.create_volume(
            PROJECT, "u1", name=name, description=description, size=1, metadata={"m": "1"},
            volume_type="__DEFAULT__", availability_zone="nova", source=("backup", backup_id))
        assert new["metadata"] == {"m": "1"}
        parts.run()
        new = parts.volumes.get_volume(PROJECT, new["id"])
        assert new["status"] == "available" and new["metadata"] == expected
        assert (new["name"], new["description"]) == ((name, description) if name else
                                                     ("src", "about"))


def test_a_restore_of_an_unnamed_volumes_backup_keeps_the_names_it_was_given(parts):
    source = described(parts, None, "described", {"k": "v"})
    made = backup(parts, source["id"])
    answer = parts.backups.restore(PROJECT, "u1", made["id"])
    parts.run()
    new = parts.volumes.get_volume(PROJECT, answer["volume_id"])
    # Cinder restores the name and the description together, and only a name.
    assert (new["name"], new["description"]) == (f"restore_backup_{made['id']}",
                                                 "auto-created_from_restore_from_backup")
    assert new["metadata"] == {"k": "v", "src_backup_id": made["id"]}


def test_a_backup_of_a_volume_without_metadata_leaves_the_restored_volumes_own(parts):
    source = described(parts, "src", "d")
    made = backup(parts, source["id"])
    target = described(parts, "target", None, {"own": "1", "src_backup_id": "older"})
    parts.backups.restore(PROJECT, "u1", made["id"], volume_id=target["id"])
    parts.run()
    target = parts.volumes.get_volume(PROJECT, target["id"])
    assert target["metadata"] == {"own": "1", "src_backup_id": made["id"]}
    assert (target["name"], target["description"]) == ("target", None)


def test_a_backup_of_a_snapshot_keeps_the_volumes_metadata_of_its_own_time(parts):
    volume = described(parts, "src", "d", {"when": "snapshot"})
    snapshot = parts.snapshot(volume["id"], metadata={"snapshot's": "own"})
    parts.volumes.update_volume(PROJECT, volume["id"], {"name": "now", "metadata": {"when": "backup"}})
    made = backup(parts, volume["id"], snapshot_id=snapshot["id"])
    assert made["volume_meta"] == {"name": "now", "description": "d", "metadata": {"when": "backup"}}
    answer = parts.backups.restore(PROJECT, "u1", made["id"])
    parts.run()
    new = parts.volumes.get_volume(PROJECT, answer["volume_id"])
    assert (new["name"], new["metadata"]) == ("now", {"when": "backup", "src_backup_id": made["id"]})


def test_a_failed_restore_brings_no_metadata(parts, monkeypatch):
    source = described(parts, "src", "d", {"k": "v"})
    made = backup(parts, source["id"])
    target = described(parts, "target", None, {"own": "1"})

    def broken(volume_id, source_path):
        raise OSError("disk gone")

    monkeypatch.setattr(parts.volumes, "replace_data", broken)
    parts.backups.restore(PROJECT, "u1", made["id"], volume_id=target["id"])
    parts.run()
    target = parts.volumes.get_volume(PROJECT, target["id"])
    assert target["status"] == "error_restoring"
    assert (target["name"], target["metadata"]) == ("target", {"own": "1"})
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "available"


def test_a_backup_recorded_without_the_volumes_metadata_restores_only_the_tag(parts):
    source = described(parts, "src", "d", {"k": "v"})
    made = backup(parts, source["id"])
    with parts.store.transaction():  # a record kept by an older devcloud
        record = parts.store.get("backup", made["id"])
        del record["volume_meta"]
        parts.store.put("backup", record)
    answer = parts.backups.restore(PROJECT, "u1", made["id"])
    parts.run()
    new = parts.volumes.get_volume(PROJECT, answer["volume_id"])
    assert new["name"] == f"restore_backup_{made['id']}"
    assert new["metadata"] == {"src_backup_id": made["id"]}


def test_a_volume_created_from_a_backup(parts):
    source = parts.volume(size=2)
    write(parts.volumes.path(source["id"]), 9, b"x")
    made = backup(parts, source["id"])

    def create(size):
        return parts.volumes.create_volume(
            PROJECT, "u1", name="n", description=None, size=size, metadata={},
            volume_type="__DEFAULT__", availability_zone="nova", source=("backup", made["id"]))

    with pytest.raises(Invalid) as err:
        create(1)
    assert err.value.message == ("Invalid input received: Volume size 1GB cannot be smaller than "
                                 "the backup size 2GB. It must be >= backup size.")
    new = create(4)
    assert new["status"] == "creating" and new["snapshot_id"] is None and new["source_volid"] is None
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "restoring"
    with pytest.raises(Invalid) as err:
        create(4)
    assert err.value.message == "Invalid backup: Originating backup status must be one of 'available' values"
    parts.run()
    new = parts.volumes.get_volume(PROJECT, new["id"])
    assert new["status"] == "available" and new["metadata"] == {"src_backup_id": made["id"]}
    assert read(parts.volumes.path(new["id"]), 9, 1) == b"x"
    assert os.path.getsize(parts.volumes.path(new["id"])) == 4 * GIB
    assert parts.backups.get_backup(PROJECT, made["id"])["status"] == "available"


def test_delete_rules_and_incremental_chains(parts):
    volume = parts.volume()
    with pytest.raises(Invalid) as err:
        backup(parts, volume["id"], incremental=True)
    assert err.value.message == "Invalid backup: No backups available to do an incremental backup."
    full = backup(parts, volume["id"])
    delta = backup(parts, volume["id"], incremental=True)
    assert delta["parent_id"] == full["id"]
    assert parts.backups.get_backup(PROJECT, full["id"])["num_dependent_backups"] == 1
    with pytest.raises(Invalid) as err:
        parts.backups.delete_backup(PROJECT, full["id"])
    assert err.value.message == "Invalid backup: Incremental backups exist for this backup."
    creating = backup(parts, volume["id"], run=False)
    with pytest.raises(Invalid) as err:
        parts.backups.delete_backup(PROJECT, creating["id"])
    assert err.value.message == "Invalid backup: Backup status must be available or error"
    parts.run()

    parts.backups.delete_backup(PROJECT, delta["id"])
    assert parts.backups.get_backup(PROJECT, delta["id"])["status"] == "deleting"
    parts.run()
    with pytest.raises(NotFound, match=f"Backup {delta['id']} could not be found."):
        parts.backups.get_backup(PROJECT, delta["id"])
    assert parts.backups.get_backup(PROJECT, full["id"])["num_dependent_backups"] == 0
    parts.backups.delete_backup(PROJECT, full["id"])
    parts.run()
    assert not os.path.exists(parts.backups.path(full["id"]))


def test_backups_survive_a_restart_and_interrupted_work_ends_as_in_cinder(parts):
    volume = parts.volume(size=2)
    parts.attach(volume["id"])
    kept = backup(parts, volume["id"], force=True)
    doomed = backup(parts, volume["id"], force=True)
    parts.backups.delete_backup(PROJECT, doomed["id"])
    target = parts.volume(size=2)
    parts.backups.restore(PROJECT, "u1", kept["id"], volume_id=target["id"])
    parts.scheduler.jobs.clear()  # the delete and the restore never ran
    second = parts.volume(size=2)
    parts.snapshot(second["id"])
    interrupted = backup(parts, second["id"], run=False)
    parts.scheduler.jobs.clear()  # "crash"

    fresh = parts.restarted()
    after = fresh.backups.get_backup(PROJECT, interrupted["id"])
    assert (after["status"], after["fail_reason"]) == ("error", "incomplete backup reset on manager restart")
    assert fresh.status(second["id"]) == "available"  # its status back
    assert fresh.backups.get_backup(PROJECT, kept["id"])["status"] == "available"
    assert fresh.status(target["id"]) == "error_restoring"
    assert fresh.status(volume["id"]) == "in-use"
    with pytest.raises(NotFound):
        fresh.backups.get_backup(PROJECT, doomed["id"])
    # What survived still works: restore it into a new volume.
    answer = fresh.backups.restore(PROJECT, "u1", kept["id"])
    fresh.run()
    assert fresh.status(answer["volume_id"]) == "available"
    fresh.store.close()


# -- the HTTP face ---------------------------------------------------------------


def test_http_backup_create_restore_delete(parts):
    volume = parts.volume()
    status, answer = parts.call("POST", "backups", {"backup": {"volume_id": volume["id"],
                                                               "name": "b"}})
    assert status == 202 and set(answer["backup"]) == {"id", "name", "links"}
    backup_id = answer["backup"]["id"]
    assert answer["backup"]["links"][0]["href"] == \
        f"http://devcloud/volume/v3/{PROJECT}/backups/{backup_id}"
    assert parts.call("GET", f"backups/{backup_id}")[1]["backup"]["status"] == "creating"
    parts.run()
    shown = parts.call("GET", f"backups/{backup_id}", version="3.43")[1]["backup"]
    assert shown["status"] == "available" and shown["metadata"] == {}
    assert shown["is_incremental"] is False and shown["has_dependent_backups"] is False
    assert shown["volume_id"] == volume["id"] and shown["snapshot_id"] is None
    assert "metadata" not in parts.call("GET", f"backups/{backup_id}")[1]["backup"]
    assert parts.call("POST", "backups", {"backup": {"volume_id": volume["id"],
                                                     "metadata": {"k": "v"}}}) == bad_request(
        f"Invalid input for field/attribute backup. Value: {{'volume_id': '{volume['id']}', "
        "'metadata': {'k': 'v'}}. Additional properties are not allowed ('metadata' was unexpected)")
    assert parts.call("POST", "backups", {"backup": {"volume_id": "x"}}) == bad_request(
        "Invalid input for field/attribute volume_id. Value: x. 'x' is not a 'uuid'")

    target = parts.volume(name="target")
    status, answer = parts.call("POST", f"backups/{backup_id}/restore",
                                {"restore": {"volume_id": target["id"]}})
    assert (status, answer) == (202, {"restore": {"backup_id": backup_id, "volume_id": target["id"],
                                                  "volume_name": "target"}})
    assert parts.call("DELETE", f"backups/{backup_id}") == bad_request(
        "Invalid backup: Backup status must be available or error")
    parts.run()
    assert parts.call("POST", f"backups/{backup_id}/restore", {"restore": None}) == (500, {
        "computeFault": {"code": 500, "message": "The server has either erred or is incapable of "
                                                 "performing the requested operation."}})
    status, answer = parts.call("POST", f"backups/{backup_id}/restore", {"restore": {}})
    assert status == 202 and answer["restore"]["volume_name"] == f"restore_backup_{backup_id}"
    parts.run()

    listed = parts.call("GET", "backups", query={"volume_id": volume["id"]})[1]["backups"]
    assert [b["id"] for b in listed] == [backup_id] and set(listed[0]) == {"id", "name", "links"}
    assert parts.call("GET", "backups/detail", query={"status": "error"})[1]["backups"] == []
    assert parts.call("DELETE", f"backups/{backup_id}") == (202, None)
    parts.run()
    missing = backup_id
    assert parts.call("GET", f"backups/{missing}") == (404, {"itemNotFound": {
        "code": 404, "message": f"Backup {missing} could not be found."}})


def test_http_volume_from_a_backup(parts):
    source = parts.volume(size=2)
    made = backup(parts, source["id"])
    status, answer = parts.call("POST", "volumes", {"volume": {"backup_id": made["id"]}}, "3.47")
    assert status == 202 and answer["volume"]["size"] == 2
    assert answer["volume"]["volume_type"] == "__DEFAULT__"
    assert parts.call("POST", "volumes", {"volume": {"backup_id": "nope"}}, "3.47") == bad_request(
        "Invalid input for field/attribute backup_id. Value: nope. 'nope' is not valid under any "
        "of the given schemas")
    parts.run()
    # Cinder reads backup_id below 3.47 too (unchecked by its schema there).
    status, answer = parts.call("POST", "volumes", {"volume": {"backup_id": made["id"], "size": 3}})
    assert status == 202 and answer["volume"]["size"] == 3
    parts.run()
    assert parts.status(answer["volume"]["id"]) == "available"


def test_http_fault_hooks_for_backups(parts):
    volume = parts.volume()
    made = backup(parts, volume["id"])
    for operation, method, path, body in (
            ("backup.create", "POST", "backups", {"backup": {"volume_id": volume["id"]}}),
            ("backup.get", "GET", f"backups/{made['id']}", None),
            ("backup.list", "GET", "backups/detail", None),
            ("backup.restore", "POST", f"backups/{made['id']}/restore", {"restore": {}}),
            ("backup.delete", "DELETE", f"backups/{made['id']}", None)):
        parts.faults.add(operation, status=500)
        assert parts.call(method, path, body)[0] == 500, operation
    assert [(b["id"], b["status"]) for b in parts.backups.list_backups(PROJECT)] == \
        [(made["id"], "available")]
    assert [v["id"] for v in parts.volumes.list_volumes(PROJECT)] == [volume["id"]]
