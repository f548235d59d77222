"""fuxi's own calls for snapshots, backups and restores, for the `fuxi` CLI (same
socket and rules as fuxi.admin):

    POST /fuxi/snapshots          {"Name"?}                      -> {"Snapshots": [COPY, ...]}
    POST /fuxi/snapshots/create   {"Name", "SnapshotName"?, "CrashConsistent"?} -> {"Snapshot": COPY}
    POST /fuxi/snapshots/delete   {"Snapshot": name or id}       -> {"Deleted": COPY}
    POST /fuxi/backups            {"Name"?}                      -> {"Backups": [COPY, ...]}
    POST /fuxi/backups/create     {"Name", "BackupName"?, "Incremental"?, "CrashConsistent"?} -> {"Backup": COPY}
    POST /fuxi/backups/delete     {"Backup": name or id}         -> {"Deleted": COPY}
    POST /fuxi/backups/restore    {"Backup": name or id, "Name", "Overwrite"?}
                                  -> {"Restored": {Name, VolumeId, BackupId, Created}}

A COPY is {Id, Name, Volume (the volume's fuxi name), VolumeId, SizeGb, Status,
CreatedAt, Frozen (the file system was frozen around it), Incremental (backups)}.
"""

from flask import Blueprint, current_app

from fuxi.api import _body, _name, _rfc3339, reply
from fuxi.errors import BadRequest
from storage_core.models import FROZEN_KEY
from storage_core.waits import deadline

blueprint = Blueprint("fuxi_copies", __name__)

# A snapshot is made while writes wait (at most freeze_timeout), then read back.
SNAPSHOT_SECONDS = 110
# Deleting a snapshot or a backup waits for Cinder to finish.
DELETE_SECONDS = 110


def _copies():
    copies = current_app.extensions["fuxi.volume_service"].copies
    if copies is None:
        raise BadRequest("snapshots and backups are of Cinder volumes, and this fuxi has no Cinder backend")
    return copies


def _service():
    return current_app.extensions["fuxi.volume_service"]


def copy_answer(record) -> dict:
    answer = {
        "Id": record.id,
        "Name": record.name,
        "Volume": record.volume_name,
        "VolumeId": record.volume_id,
        "SizeGb": record.size_gb,
        "Status": record.status,
        "CreatedAt": _rfc3339(record.created_at),
        "Frozen": record.metadata.get(FROZEN_KEY) == "true",
    }
    if hasattr(record, "incremental"):
        answer["Incremental"] = record.incremental
    return answer


def _text(body, key, required=True):
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f'"{key}" must be a non-empty string')
    return value


def _flag(body, key) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f'"{key}" must be true or false')
    return value


def _volume_filter(body):
    name = body.get("Name")
    if name is not None and not isinstance(name, str):
        raise BadRequest('"Name" must be a volume name')
    return name or None


@blueprint.post("/fuxi/snapshots")
def snapshots():
    name = _volume_filter(_body())
    return reply({"Snapshots": [copy_answer(s) for s in _copies().snapshots(name)], "Err": ""})


@blueprint.post("/fuxi/snapshots/create")
def snapshot_create():
    body = _body()
    name = _name(body)
    with deadline(SNAPSHOT_SECONDS, f"fuxi snapshot of volume {name!r}"):
        snap = _copies().snapshot(name, _text(body, "SnapshotName", required=False),
                                  allow_unfrozen=_flag(body, "CrashConsistent"))
    return reply({"Snapshot": copy_answer(snap), "Err": ""})


@blueprint.post("/fuxi/snapshots/delete")
def snapshot_delete():
    ref = _text(_body(), "Snapshot")
    with deadline(DELETE_SECONDS, f"fuxi snapshot delete of {ref!r}"):
        gone = _copies().delete_snapshot(ref)
    return reply({"Deleted": copy_answer(gone), "Err": ""})


@blueprint.post("/fuxi/backups")
def backups():
    name = _volume_filter(_body())
    return reply({"Backups": [copy_answer(b) for b in _copies().backups(name)], "Err": ""})


@blueprint.post("/fuxi/backups/create")
def backup_create():
    body = _body()
    name = _name(body)
    copies = _copies()
    # The snapshot it is made from, then the copy to the backup service.
    with deadline(SNAPSHOT_SECONDS + copies.backup_timeout, f"fuxi backup of volume {name!r}"):
        made = copies.backup(name, _text(body, "BackupName", required=False),
                             incremental=_flag(body, "Incremental"), allow_unfrozen=_flag(body, "CrashConsistent"))
    return reply({"Backup": copy_answer(made), "Err": ""})


@blueprint.post("/fuxi/backups/delete")
def backup_delete():
    ref = _text(_body(), "Backup")
    with deadline(_copies().backup_timeout, f"fuxi backup delete of {ref!r}"):
        gone = _copies().delete_backup(ref)
    return reply({"Deleted": copy_answer(gone), "Err": ""})


@blueprint.post("/fuxi/backups/restore")
def backup_restore():
    body = _body()
    ref, name = _text(body, "Backup"), _name(body)
    copies = _copies()
    with deadline(copies.backup_timeout, f"fuxi restore of backup {ref!r} into {name!r}"):
        done = copies.restore(ref, name, overwrite=_flag(body, "Overwrite"), create=_service().create)
    return reply({"Restored": {"Name": done.name, "VolumeId": done.volume_id, "BackupId": done.backup_id,
                               "Created": done.created}, "Err": ""})
