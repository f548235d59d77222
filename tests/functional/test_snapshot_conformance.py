"""Cinder's snapshots, backups and volumes made of them, as fuxi relies on
them, pinned on both clouds.

Each assertion is written the way real Cinder 29 answers, read from its
code (cinder/api/v3/snapshots.py, api/contrib/backups.py, volume/api.py,
backup/api.py, backup/manager.py, volume/flows/api/create_volume.py); where
that reading left a doubt, a comment says so. The same test runs on
devcloud, so the emulator cannot drift from it.

    FUXI_CLOUDS=devcloud .venv/bin/python -m pytest tests/functional/test_snapshot_conformance.py -q
"""

import time

import pytest
import requests

from tests.functional.test_cloud_conformance import CONNECTOR, DELETE_REFUSED, raw

CLOUD_KINDS = ("devcloud", "realcloud")

WAIT = 180  # a real backup reads the whole volume (and compresses it)
SNAPSHOT_KEYS = {"id", "created_at", "updated_at", "name", "description", "volume_id", "status",
                 "size", "metadata"}
ATTRIBUTES = "os-extended-snapshot-attributes"
BACKUP_SUMMARY_KEYS = {"id", "name", "links"}
BACKUP_DETAIL_KEYS = {"id", "status", "size", "object_count", "availability_zone", "container",
                      "created_at", "updated_at", "name", "description", "fail_reason", "volume_id",
                      "links", "is_incremental", "has_dependent_backups", "snapshot_id",
                      "data_timestamp"}
SNAPSHOT_IN_USE_FLAG_MSG = (
    "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward "
    "compatability, however, when the 'force' flag is passed with a value evaluating to True, "
    "it is silently ignored."
)
SNAPSHOT_DELETE_REFUSED = ("Invalid snapshot: Snapshot status must be available or error and must "
                           "not be part of a group.")


def bad_request(message):
    return 400, {"badRequest": {"code": 400, "message": message}}


@pytest.fixture
def copies(cloud):
    """The cloud, with its transitions slow enough to be seen (devcloud's
    latency, as a real cloud's own pace), and every snapshot and backup
    deleted afterwards (their volumes cannot be deleted before)."""
    if cloud.kind.startswith("devcloud"):
        resp = requests.put(cloud.devcloud["url"] + "/devcloud/latency",
                            json={"create": 0.5, "delete": 0.3}, timeout=10)
        resp.raise_for_status()
    yield cloud
    for collection, busy in (("backups", {"creating", "restoring"}),
                             ("snapshots", {"creating", "backing-up"})):
        settle(cloud, collection, busy)
        for item in raw(cloud, "GET", f"/{collection}/detail")[1][collection]:
            if item["status"] != "deleting":
                raw(cloud, "DELETE", f"/{collection}/{item['id']}")
        wait_until(lambda c=collection: not raw(cloud, "GET", f"/{c}")[1][c], f"no {collection}")


def settle(cloud, collection, busy):
    wait_until(lambda: not any(i["status"] in busy
                               for i in raw(cloud, "GET", f"/{collection}/detail")[1][collection]),
               f"{collection} to settle")


def wait_until(check, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def status_of(cloud, collection, id_):
    """The item's status, None once it is gone (404)."""
    status, body = raw(cloud, "GET", f"/{collection}/{id_}")
    if status == 404:
        return None
    assert status == 200, body
    return body[collection[:-1]]["status"]


def watch(cloud, collection, id_, until):
    """Poll the item's status until it is one of ``until``; every status seen, in order."""
    seen = []

    def step():
        status = status_of(cloud, collection, id_)
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in until

    wait_until(step, f"{collection[:-1]} {id_} to be one of {until} (seen {seen})")
    return seen


def went(cloud, seen, expected):
    """The statuses polled went through ``expected``. devcloud's latency
    (see ``copies``) makes every one observable; a real cloud may finish a
    step between two polls, so there only the order and the end are sure."""
    if cloud.kind.startswith("devcloud"):
        return seen == expected
    rest = iter(expected)
    return seen[-1] == expected[-1] and all(status in rest for status in seen)


def new_volume(cloud, name, size=1, **attrs):
    bs = cloud.sdk.block_storage
    vol = bs.create_volume(name=name, size=size, **attrs)
    return bs.wait_for_status(vol, "available", interval=0.1, wait=WAIT)


def attach(cloud, volume_id):
    bs = cloud.sdk.block_storage
    att = bs.create_attachment(volume_id, connector=CONNECTOR, mode="rw")
    bs.complete_attachment(att.id)
    assert bs.get_volume(volume_id).status == "in-use"
    return att


def snapshot(cloud, volume_id, microversion="3.0", **fields):
    status, body = raw(cloud, "POST", "/snapshots", microversion,
                       json={"snapshot": {"volume_id": volume_id, **fields}})
    assert status == 202, body
    return body["snapshot"]


def available_snapshot(cloud, volume_id, **fields):
    made = snapshot(cloud, volume_id, **fields)
    assert watch(cloud, "snapshots", made["id"], {"available", "error"})[-1] == "available"
    return made


def volume_status(cloud, volume_id):
    return status_of(cloud, "volumes", volume_id)


# -- snapshots -----------------------------------------------------------------


def test_snapshot_create_show_list_delete(copies):
    cloud = copies
    vol = new_volume(cloud, "snap-src")
    made = snapshot(cloud, vol.id, name=" s1 ", description="d", metadata={"k": "v"})
    # The create answers the detail view (without the extension's attributes) at once.
    assert set(made) == SNAPSHOT_KEYS
    assert made["status"] == "creating" and made["name"] == "s1" and made["size"] == 1
    assert made["volume_id"] == vol.id and made["metadata"] == {"k": "v"}
    assert made["description"] == "d"
    assert made["updated_at"] is None  # not saved again before the answer
    assert went(cloud, watch(cloud, "snapshots", made["id"], {"available", "error"}),
                ["creating", "available"])
    assert volume_status(cloud, vol.id) == "available"  # a snapshot leaves its volume alone

    status, body = raw(cloud, "GET", f"/snapshots/{made['id']}")
    shown = body["snapshot"]
    assert status == 200 and set(shown) == SNAPSHOT_KEYS | {f"{ATTRIBUTES}:project_id",
                                                           f"{ATTRIBUTES}:progress"}
    assert shown[f"{ATTRIBUTES}:progress"] == "100%"
    assert shown[f"{ATTRIBUTES}:project_id"] == cloud.sdk.current_project_id
    shown = raw(cloud, "GET", f"/snapshots/{made['id']}", "3.65")[1]["snapshot"]
    assert shown["group_snapshot_id"] is None and shown["consumes_quota"] is True
    assert shown["user_id"] == cloud.sdk.current_user_id

    # The plain list: the base fields only; the detail list: the extension's too.
    listed = raw(cloud, "GET", "/snapshots")[1]["snapshots"]
    assert [set(s) for s in listed] == [SNAPSHOT_KEYS]
    status, body = raw(cloud, "GET", f"/snapshots/detail?volume_id={vol.id}")
    assert [s["id"] for s in body["snapshots"]] == [made["id"]]
    assert body["snapshots"][0][f"{ATTRIBUTES}:progress"] == "100%"
    assert raw(cloud, "GET", "/snapshots/detail?name=s2")[1]["snapshots"] == []

    status, body = raw(cloud, "PUT", f"/snapshots/{made['id']}", json={"snapshot": {"name": "s2"}})
    assert status == 200 and body["snapshot"]["name"] == "s2"
    assert raw(cloud, "GET", f"/snapshots/{made['id']}/metadata") == (200, {"metadata": {"k": "v"}})

    assert raw(cloud, "DELETE", f"/snapshots/{made['id']}") == (202, "")
    assert watch(cloud, "snapshots", made["id"], {None})[-1] is None  # through deleting
    assert raw(cloud, "GET", f"/snapshots/{made['id']}") == (404, {"itemNotFound": {
        "code": 404, "message": f"Snapshot {made['id']} could not be found."}})


def test_snapshot_of_an_in_use_volume_needs_force_below_3_66(copies):
    cloud = copies
    vol = new_volume(cloud, "snap-inuse")
    att = attach(cloud, vol.id)
    body = {"snapshot": {"volume_id": vol.id}}
    assert raw(cloud, "POST", "/snapshots", "3.0", json=body) == bad_request(
        f"Invalid volume: Volume {vol.id} status must be available, but current status is: in-use.")
    assert raw(cloud, "POST", "/snapshots", "3.65", json=body)[0] == 400
    unforced = {"snapshot": {"volume_id": vol.id, "force": False}}
    assert raw(cloud, "POST", "/snapshots", "3.66", json=unforced) == bad_request(SNAPSHOT_IN_USE_FLAG_MSG)

    forced = available_snapshot(cloud, vol.id, force=True)
    assert volume_status(cloud, vol.id) == "in-use"
    status, answer = raw(cloud, "POST", "/snapshots", "3.66", json=body)  # allowed from 3.66
    assert status == 202 and answer["snapshot"]["status"] == "creating"
    assert watch(cloud, "snapshots", answer["snapshot"]["id"], {"available", "error"})[-1] == "available"
    # A snapshot being made is not deleted.
    taking = snapshot(cloud, vol.id, force="true")
    status, answer = raw(cloud, "DELETE", f"/snapshots/{taking['id']}")
    if status != 202:  # unless it was quick enough to be available already
        assert (status, answer) == bad_request(SNAPSHOT_DELETE_REFUSED)
    assert forced["status"] == "creating"  # the create's own answer
    cloud.sdk.block_storage.delete_attachment(att.id)


def test_a_volume_with_snapshots_is_not_deleted(copies):
    cloud = copies
    vol = new_volume(cloud, "snap-keep")
    made = available_snapshot(cloud, vol.id)
    assert raw(cloud, "DELETE", f"/volumes/{vol.id}") == bad_request(DELETE_REFUSED)
    assert volume_status(cloud, vol.id) == "available"
    assert raw(cloud, "DELETE", f"/snapshots/{made['id']}")[0] == 202
    watch(cloud, "snapshots", made["id"], {None})
    assert raw(cloud, "DELETE", f"/volumes/{vol.id}")[0] == 202
    watch(cloud, "volumes", vol.id, {None})


def test_volumes_from_a_snapshot_and_from_a_volume(copies):
    cloud = copies
    vol = new_volume(cloud, "clone-src", size=2)
    made = available_snapshot(cloud, vol.id)

    status, body = raw(cloud, "POST", "/volumes", json={"volume": {"name": "from-snap",
                                                                   "snapshot_id": made["id"]}})
    assert status == 202
    from_snap = body["volume"]
    assert from_snap["status"] == "creating" and from_snap["size"] == 2  # the snapshot's size
    assert from_snap["snapshot_id"] == made["id"] and from_snap["source_volid"] is None
    assert raw(cloud, "POST", "/volumes", json={"volume": {"snapshot_id": made["id"], "size": 1}}) == \
        bad_request("Invalid input received: Volume size '1'GB cannot be smaller than the snapshot "
                    "size 2GB. They must be >= original snapshot size.")

    status, body = raw(cloud, "POST", "/volumes", json={"volume": {"name": "clone",
                                                                   "source_volid": vol.id}})
    assert status == 202
    clone = body["volume"]
    assert clone["size"] == 2 and clone["source_volid"] == vol.id and clone["snapshot_id"] is None
    assert clone["volume_type"] == vol.volume_type
    # Cinder's words, the double space included.
    assert raw(cloud, "POST", "/volumes", json={"volume": {"source_volid": vol.id, "size": 1}}) == \
        bad_request("Invalid input received: Volume size '1'GB cannot be smaller than original "
                    "volume size  2GB. They must be >= original volume size.")
    status, body = raw(cloud, "POST", "/volumes", json={"volume": {"source_volid": vol.id, "size": 3}})
    assert status == 202 and body["volume"]["size"] == 3
    bigger = body["volume"]
    for made_volume in (from_snap, clone, bigger):
        assert watch(cloud, "volumes", made_volume["id"], {"available", "error"})[-1] == "available"
    assert cloud.sdk.block_storage.get_volume(bigger["id"]).size == 3

    # Only one source at a time.
    assert raw(cloud, "POST", "/volumes", json={"volume": {"snapshot_id": made["id"],
                                                           "source_volid": vol.id}}) == \
        bad_request("Invalid input received: May specify only one of backup, imageRef, snapshot, "
                    "source volume")


# -- backups -------------------------------------------------------------------


def test_backup_create_restore_delete_and_their_statuses(copies):
    cloud = copies
    # The volume's metadata, name and description go into the backup with its
    # data (cinder/backup/driver.py, BackupMetadataAPI), and come back with it.
    vol = new_volume(cloud, "backup-src", size=2, metadata={"src-key": "backed up", "clash": "src"})
    status, body = raw(cloud, "POST", "/backups", "3.43", json={"backup": {
        "volume_id": vol.id, "name": "b1", "description": "d", "metadata": {"k": "v"}}})
    assert status == 202 and set(body["backup"]) == BACKUP_SUMMARY_KEYS
    backup_id = body["backup"]["id"]
    assert body["backup"]["name"] == "b1"
    # The volume is backing-up at once (set before the answer), then itself again.
    assert went(cloud, watch(cloud, "volumes", vol.id, {"available", "error"}),
                ["backing-up", "available"])
    assert watch(cloud, "backups", backup_id, {"available", "error"})[-1] == "available"
    shown = raw(cloud, "GET", f"/backups/{backup_id}", "3.43")[1]["backup"]
    assert BACKUP_DETAIL_KEYS | {"metadata"} <= set(shown)
    assert shown["size"] == 2 and shown["volume_id"] == vol.id and shown["snapshot_id"] is None
    assert shown["metadata"] == {"k": "v"} and shown["fail_reason"] is None
    assert shown["is_incremental"] is False and shown["has_dependent_backups"] is False
    assert shown["availability_zone"] == "nova" and shown["object_count"] >= 1
    assert shown["data_timestamp"] == shown["created_at"]
    listed = raw(cloud, "GET", f"/backups?volume_id={vol.id}")[1]["backups"]
    assert [(b["id"], set(b)) for b in listed] == [(backup_id, BACKUP_SUMMARY_KEYS)]

    # Restore: into an available volume at least as large, in Cinder's words otherwise.
    small = new_volume(cloud, "too-small", size=1)
    assert raw(cloud, "POST", f"/backups/{backup_id}/restore", json={"restore": {"volume_id": small.id}}) == \
        bad_request("Invalid volume: volume size 1 is too small to restore backup of size 2.")
    # After the backup: not what it brings back.
    cloud.sdk.block_storage.set_volume_metadata(vol, later="not backed up")
    target = new_volume(cloud, "target", size=3, description="target's own",
                        metadata={"own": "kept", "clash": "target"})
    status, body = raw(cloud, "POST", f"/backups/{backup_id}/restore",
                       json={"restore": {"volume_id": target.id}})
    assert (status, body) == (202, {"restore": {"backup_id": backup_id, "volume_id": target.id,
                                                "volume_name": "target"}})
    assert went(cloud, watch(cloud, "volumes", target.id, {"available", "error_restoring"}),
                ["restoring-backup", "available"])
    restored = cloud.sdk.block_storage.get_volume(target.id)
    assert restored.size == 3  # its own size kept
    # Its metadata replaced by the backed-up volume's (its own "own" key gone:
    # BackupMetadataAPI._restore_vol_meta updates with delete=True), then
    # tagged; its own name and description kept.
    backed_up = {"src-key": "backed up", "clash": "src", "src_backup_id": backup_id}
    assert restored.metadata == backed_up
    assert (restored.name, restored.description) == ("target", "target's own")
    # (Cinder saves the volume, then the backup: it may be restoring a moment longer.)
    assert watch(cloud, "backups", backup_id, {"available"})[-1] == "available"

    # Without a volume: Cinder makes one of the backup's size first (the call waits for it).
    status, body = raw(cloud, "POST", f"/backups/{backup_id}/restore", json={"restore": {}})
    assert status == 202 and body["restore"]["volume_name"] == f"restore_backup_{backup_id}"
    new_id = body["restore"]["volume_id"]
    assert watch(cloud, "volumes", new_id, {"available", "error_restoring"})[-1] == "available"
    new = cloud.sdk.block_storage.get_volume(new_id)
    # Once restored it takes the backed-up volume's name and description (it
    # had none): restore_backup_<id> and Cinder's description were stand-ins.
    assert new.size == 2 and (new.name, new.description) == ("backup-src", None)
    assert new.metadata == backed_up
    watch(cloud, "backups", backup_id, {"available"})
    # Named: it keeps its name, and the description Cinder gave it.
    status, body = raw(cloud, "POST", f"/backups/{backup_id}/restore",
                       json={"restore": {"name": "named-restore"}})
    assert status == 202 and body["restore"]["volume_name"] == "named-restore"
    named_id = body["restore"]["volume_id"]
    assert watch(cloud, "volumes", named_id, {"available", "error_restoring"})[-1] == "available"
    named = cloud.sdk.block_storage.get_volume(named_id)
    assert (named.name, named.description) == ("named-restore",
                                               "auto-created_from_restore_from_backup")
    assert named.metadata == backed_up
    watch(cloud, "backups", backup_id, {"available"})

    # A volume created from the backup (3.47): creating while the backup is restoring into it.
    assert raw(cloud, "POST", "/volumes", "3.47", json={"volume": {"backup_id": backup_id, "size": 1}}) == \
        bad_request("Invalid input received: Volume size 1GB cannot be smaller than the backup "
                    "size 2GB. It must be >= backup size.")
    status, body = raw(cloud, "POST", "/volumes", "3.47", json={"volume": {
        "backup_id": backup_id, "metadata": {"own": "kept", "clash": "new"}}})
    assert status == 202 and body["volume"]["size"] == 2 and body["volume"]["status"] == "creating"
    assert body["volume"]["name"] is None
    from_backup = body["volume"]["id"]
    seen = watch(cloud, "volumes", from_backup, {"available", "error"})
    assert seen[-1] == "available" and "restoring-backup" not in seen
    made_from_backup = cloud.sdk.block_storage.get_volume(from_backup)
    assert made_from_backup.metadata == backed_up  # its own metadata replaced too
    # Unnamed, it takes the backed-up volume's name (and description) too.
    assert (made_from_backup.name, made_from_backup.description) == ("backup-src", None)
    watch(cloud, "backups", backup_id, {"available"})

    # Delete: deleting, then gone.
    assert raw(cloud, "DELETE", f"/backups/{backup_id}") == (202, "")
    assert watch(cloud, "backups", backup_id, {None})[-1] is None
    assert raw(cloud, "GET", f"/backups/{backup_id}") == (404, {"itemNotFound": {
        "code": 404, "message": f"Backup {backup_id} could not be found."}})
    assert volume_status(cloud, vol.id) == "available"


def test_backing_up_an_in_use_volume_needs_force_and_a_snapshot_does_not(copies):
    cloud = copies
    vol = new_volume(cloud, "backup-inuse")
    att = attach(cloud, vol.id)
    assert raw(cloud, "POST", "/backups", json={"backup": {"volume_id": vol.id}}) == bad_request(
        "Invalid volume: Backing up an in-use volume must use the force flag.")

    status, body = raw(cloud, "POST", "/backups", json={"backup": {"volume_id": vol.id, "force": True}})
    assert status == 202
    forced = body["backup"]["id"]
    # backing-up meanwhile, then in-use again (Cinder keeps its previous status).
    assert went(cloud, watch(cloud, "volumes", vol.id, {"in-use", "error"}),
                ["backing-up", "in-use"])
    assert watch(cloud, "backups", forced, {"available", "error"})[-1] == "available"

    # Of a snapshot: the snapshot is backing-up, the volume untouched, no force needed.
    snap = available_snapshot(cloud, vol.id, force=True)
    status, body = raw(cloud, "POST", "/backups", json={"backup": {"volume_id": vol.id,
                                                                   "snapshot_id": snap["id"]}})
    assert status == 202
    of_snapshot = body["backup"]["id"]
    assert went(cloud, watch(cloud, "snapshots", snap["id"], {"available"}),
                ["backing-up", "available"])
    assert volume_status(cloud, vol.id) == "in-use"
    assert watch(cloud, "backups", of_snapshot, {"available", "error"})[-1] == "available"
    shown = raw(cloud, "GET", f"/backups/{of_snapshot}")[1]["backup"]
    # Its data is as old as the snapshot.
    snap_created = raw(cloud, "GET", f"/snapshots/{snap['id']}")[1]["snapshot"]["created_at"]
    assert shown["snapshot_id"] == snap["id"] and shown["data_timestamp"] == snap_created

    # A backed-up volume without metadata leaves the restored volume's own.
    keeps = new_volume(cloud, "keeps-own", metadata={"own": "kept"})
    assert raw(cloud, "POST", f"/backups/{forced}/restore",
               json={"restore": {"volume_id": keeps.id}})[0] == 202
    assert watch(cloud, "volumes", keeps.id, {"available", "error_restoring"})[-1] == "available"
    keeps = cloud.sdk.block_storage.get_volume(keeps.id)
    assert keeps.metadata == {"own": "kept", "src_backup_id": forced} and keeps.name == "keeps-own"
    watch(cloud, "backups", forced, {"available"})

    # Restoring into an in-use volume is refused.
    assert raw(cloud, "POST", f"/backups/{forced}/restore", json={"restore": {"volume_id": vol.id}}) == \
        bad_request("Invalid volume: Volume to be restored to must be available")
    cloud.sdk.block_storage.delete_attachment(att.id)
