"""The snapshot service behind Cinder's snapshots API: records, status rules, files.

A snapshot is a point-in-time copy of a volume's data, kept by the volume
service (it dies with the cloud, not with the volume: a volume with snapshots
is not deleted). Here it is a sparse copy of the volume's file,
``<state_dir>/snapshots/<id>.img``, taken while the snapshot is ``creating``:
it becomes ``available`` only once the copy is complete, so a client that
froze the file system until then has a consistent copy.

Status rules follow Cinder's (cinder/volume/api.py, volume/manager.py):

* create: the volume must be ``available``, or also ``in-use`` with ``force``
  (or, from microversion 3.66, always: the API face decides); never while the
  volume is ``creating`` (no host yet) or in ``error``. The snapshot goes
  ``creating`` (progress ``0%``) -> ``available`` (``100%``), or ``error``.
* delete: ``available`` or ``error`` -> ``deleting`` -> gone (or
  ``error_deleting``).
* while a backup is made of it: ``backing-up`` (backups.py).

A crash while ``creating`` leaves the snapshot in ``error`` (the volume may
have changed since: the point in time is lost), as Cinder's volume service
leaves it when it restarts; an interrupted delete is finished.
"""

import logging
import uuid

from storage_core.devcloud.backend import GIB, Invalid, NotFound, copy_sparse, fsync_dir
from storage_core.devcloud.copies_common import CopyService
from storage_core.devcloud.web import cinder_time

LOG = logging.getLogger(__name__)

DELETABLE_STATUSES = ("available", "error")
#: Cinder's SnapshotStatus.ALL: what an admin's os-reset_status may set.
STATUSES = ("error", "available", "creating", "deleting", "deleted", "updating",
            "error_deleting", "unmanaging", "backing-up", "restoring")


def snapshot_not_found(snapshot_id):
    return NotFound(f"Snapshot {snapshot_id} could not be found.")


def metadata_not_found(snapshot_id, key):
    return NotFound(f"Snapshot {snapshot_id} has no metadata with key {key}.")


class SnapshotService(CopyService):
    kind = "snapshot"
    log = LOG
    not_found = staticmethod(snapshot_not_found)

    def __init__(self, store, snapshots_dir, volumes, scheduler, latency, copier=None):
        """``volumes`` is the VolumeService whose volumes are snapshotted;
        ``copier`` runs the copies (default: ``scheduler``), ``latency`` is a
        callable returning the current LatencyProfile (``create`` is spent in
        ``creating``, ``delete`` in ``deleting``)."""
        super().__init__(store, snapshots_dir, volumes, scheduler, latency, copier)
        volumes.snapshots = self

    # -- records -------------------------------------------------------------

    # Cinder's names for the shared calls (the API face and the volume and
    # backup services use these).
    get_snapshot = CopyService.get_record
    list_snapshots = CopyService.list_records

    def of_volume(self, volume_id) -> list[dict]:
        return [s for s in self._store.list("snapshot") if s["volume_id"] == volume_id]

    def save_snapshot(self, snapshot, **changes) -> dict:
        """Change and stamp a snapshot record (for the backup service)."""
        return self._touch(snapshot, **changes)

    # -- create --------------------------------------------------------------

    def create_snapshot(self, project_id, user_id, volume_id, *, name, description, metadata,
                        in_use_allowed) -> dict:
        """Cinder's snapshot create; ``in_use_allowed``: force, or microversion 3.66."""
        with self._store.transaction():
            volume = self._volumes.get_volume(project_id, volume_id)
            status = volume["status"]
            # Cinder's _create_snapshot_in_db_validate, then the status rule.
            if status == "creating":
                raise Invalid("Invalid volume: The snapshot cannot be created because volume "
                              "has not been scheduled to any host.")
            if status == "maintenance":
                raise Invalid("Invalid volume: The snapshot cannot be created when the volume "
                              "is in maintenance mode.")
            if status == "error":
                raise Invalid("Invalid volume: The snapshot cannot be created when the volume "
                              "is in error status.")
            valid = ("available", "in-use") if in_use_allowed else ("available",)
            if status not in valid:
                raise Invalid(f"Invalid volume: Volume {volume_id} status must be "
                              f"{', '.join(valid)}, but current status is: {status}.")
            snapshot = {
                "id": str(uuid.uuid4()),
                "project_id": project_id,
                "user_id": user_id,
                "volume_id": volume_id,
                "name": name,
                "description": description,
                "size": volume["size"],
                "volume_type": volume["volume_type"],
                "status": "creating",
                "progress": "0%",
                "metadata": dict(metadata or {}),
                "created_at": cinder_time(),
                "updated_at": None,
            }
            self._store.put("snapshot", snapshot)
        self._copier.call_later(self._latency().create, self._finish_create, snapshot["id"])
        return snapshot

    def _finish_create(self, snapshot_id):
        snapshot = self._store.get("snapshot", snapshot_id)
        if snapshot is None or snapshot["status"] != "creating":
            return
        try:
            copy_sparse(self._volumes.path(snapshot["volume_id"]), self.path(snapshot_id),
                        snapshot["size"] * GIB)
            fsync_dir(self._dir)
            changes = {"status": "available", "progress": "100%"}
        except OSError:
            LOG.exception("could not copy volume %s into snapshot %s", snapshot["volume_id"],
                          snapshot_id)
            changes = {"status": "error"}
        with self._store.transaction():
            snapshot = self._store.get("snapshot", snapshot_id)
            if snapshot is not None and snapshot["status"] == "creating":
                self._touch(snapshot, **changes)

    # -- change --------------------------------------------------------------

    def update_snapshot(self, project_id, snapshot_id, changes) -> tuple[dict, str | None]:
        """PUT /snapshots/{id}: name and/or description. Returns the snapshot
        and its ``updated_at`` from before: Cinder's answer shows that one."""
        with self._store.transaction():
            snapshot = self.get_snapshot(project_id, snapshot_id)
            before = snapshot["updated_at"]
            self._touch(snapshot, **changes)
            return snapshot, before

    def update_metadata(self, project_id, snapshot_id, metadata, replace) -> dict:
        with self._store.transaction():
            snapshot = self.get_snapshot(project_id, snapshot_id)
            new = dict(metadata) if replace else {**snapshot["metadata"], **metadata}
            self._touch(snapshot, metadata=new)
            return new

    def delete_metadata_item(self, project_id, snapshot_id, key) -> None:
        with self._store.transaction():
            snapshot = self.get_snapshot(project_id, snapshot_id)
            if key not in snapshot["metadata"]:
                raise metadata_not_found(snapshot_id, key)
            del snapshot["metadata"][key]
            self._touch(snapshot)

    # -- delete --------------------------------------------------------------

    def delete_snapshot(self, project_id, snapshot_id) -> None:
        with self._store.transaction():
            snapshot = self.get_snapshot(project_id, snapshot_id)
            if snapshot["status"] not in DELETABLE_STATUSES:
                raise Invalid("Invalid snapshot: Snapshot status must be "
                              + " or ".join(DELETABLE_STATUSES)
                              + " and must not be part of a group.")
            self._touch(snapshot, status="deleting")
        self._scheduler.call_later(self._latency().delete, self._finish_delete, snapshot_id)

    def mark_deleting(self, snapshot) -> None:
        """A volume delete with ``cascade`` takes its snapshots along (the
        volume service finishes them, inside its transaction here)."""
        self._touch(snapshot, status="deleting")

    def _finish_delete(self, snapshot_id):
        snapshot = self._store.get("snapshot", snapshot_id)
        if snapshot is None or snapshot["status"] != "deleting":
            return
        if self._volumes.clones_pending("snapshot", snapshot_id):
            # Cinder's volume manager: a delete waits for the volumes being
            # made from the snapshot (they hold its lock).
            self._scheduler.call_later(0.1, self._finish_delete, snapshot_id)
            return
        self.finish_delete(snapshot_id)

    def finish_delete(self, snapshot_id) -> bool:
        """Remove a ``deleting`` snapshot's file and record; False if that failed
        (the snapshot is then in ``error_deleting``)."""
        if not self._remove_file(snapshot_id):
            return False
        self._store.delete("snapshot", snapshot_id)
        return True

    # -- start-up ------------------------------------------------------------

    def _recover_interrupted(self, snapshot):
        if snapshot["status"] == "creating":
            LOG.warning("snapshot %s was being taken; now in error", snapshot["id"])
            with self._store.transaction():
                self._touch(self._store.get("snapshot", snapshot["id"]), status="error")
