"""The backup service behind Cinder's backups API: records, status rules, files.

A backup is a copy of a volume's data (or of one of its snapshots) kept
outside the volume service: it outlives the volume. Here it is a sparse copy,
``<state_dir>/backups/<id>.img``, made in the background as cinder-backup
makes one. The rules are Cinder's (cinder/backup/api.py, backup/manager.py):

* create: from the volume (``available``; ``in-use`` only with ``force``),
  which is ``backing-up`` meanwhile and then back in the status it had; or
  from an ``available`` snapshot of it (``snapshot_id``), which is
  ``backing-up`` meanwhile, the volume untouched. Of an in-use volume or of a
  snapshot Cinder backs up a temporary clone, ``backup-vol-<volume id>``,
  which the volume listings show (``backing-up``) while the copy runs; so
  does devcloud. ``incremental`` needs an
  earlier backup of the volume (its parent; a parent with dependents is not
  deleted). The backup goes ``creating`` -> ``available`` (or ``error``,
  with a ``fail_reason``).
* restore: into an ``available`` volume at least as large (its size kept,
  its data replaced): backup ``restoring``, volume ``restoring-backup``, then
  both ``available`` (the volume ``error_restoring`` if it failed); without a
  volume, into a new one of the backup's size, made first (the call waits
  for it, as Cinder's does): ``restore_backup_<id>`` unless named, described
  ``auto-created_from_restore_from_backup``. A volume created from a backup
  (``backup_id``) stays ``creating`` while the backup is ``restoring`` into
  it (backend.py asks ``claim``/``restored_into``).
* what a restore brings besides the data (cinder/backup/driver.py's
  BackupMetadataAPI): a backup keeps the volume's metadata, name and
  description as they were when it was made (``volume_meta``; for a backup
  of a snapshot, the volume's then, not the snapshot's). A successful restore
  replaces the restored volume's metadata with that metadata, if there was
  any (``volume_metadata_update(..., delete=True)``; a backed-up volume
  without metadata leaves the restored volume's alone). It gives it the
  backed-up name and description if it has no name or one Cinder gave it
  (``restore_backup_...``) and the backed-up volume had a name: a volume
  restored unnamed ends with its source's name and description, a named one
  or an existing one keeps its own. Then, unless it is the backup's own
  volume, the volume is tagged ``src_backup_id``.
* delete: ``available`` or ``error`` -> ``deleting`` -> gone.

On restart, as cinder-backup cleans up: a backup ``creating`` ends in
``error`` (its volume or snapshot back to its status), one ``restoring`` is
``available`` again (its volume ``error_restoring``), a delete is finished.
Devcloud stores every backup whole, incremental or not; only the records
say which is which.
"""

import logging
import math
import uuid

from storage_core.devcloud.backend import (
    GIB,
    CinderError,
    Invalid,
    NotFound,
    copy_sparse,
    fsync_dir,
)
from storage_core.devcloud.copies_common import CopyService
from storage_core.devcloud.web import cinder_time

LOG = logging.getLogger(__name__)

DELETABLE_STATUSES = ("available", "error")
#: What an admin's os-reset_status may set on a backup (Cinder's backup_status format).
RESETTABLE_STATUSES = ("available", "error")
#: The availability zone of devcloud's (one) backup service.
AVAILABILITY_ZONE = "nova"
#: Cinder's posix backup driver stores a volume in objects of this many bytes
#: (backup_file_size); a backup's object_count is how many it took.
BACKUP_FILE_SIZE = 61035 * 32768
#: What the backup service calls itself in a backup's record (not shown by the API).
DRIVER_NAME = "cinder.backup.drivers.posix.PosixBackupDriver"
INCOMPLETE_ON_RESTART = "incomplete backup reset on manager restart"
#: The volume a restore without a volume makes: Cinder's default type.
DEFAULT_NEW_VOLUME = {"volume_type": "__DEFAULT__", "availability_zone": AVAILABILITY_ZONE}


def backup_not_found(backup_id):
    return NotFound(f"Backup {backup_id} could not be found.")


class BackupService(CopyService):
    kind = "backup"
    log = LOG
    not_found = staticmethod(backup_not_found)
    lost_file_changes = {"fail_reason": "devcloud lost the backup's data"}

    def __init__(self, store, backups_dir, volumes, snapshots, scheduler, latency, copier=None):
        """``volumes``/``snapshots``: the services whose data is backed up (and
        restored into volumes); ``copier`` runs the copies (default:
        ``scheduler``); ``latency`` is a callable returning the current
        LatencyProfile (``create`` is spent before a copy, ``delete`` in
        ``deleting``)."""
        super().__init__(store, backups_dir, volumes, scheduler, latency, copier)
        self._snapshots = snapshots
        volumes.backups = self

    # -- records -------------------------------------------------------------

    # Cinder's names for the shared calls (the API face and the volume
    # service use these).
    get_backup = CopyService.get_record
    list_backups = CopyService.list_records

    def update_backup(self, project_id, backup_id, changes) -> dict:
        """PUT /backups/{id} (3.9): name, description, metadata (replaced whole)."""
        with self._store.transaction():
            return self._touch(self.get_backup(project_id, backup_id), **changes)

    # -- create --------------------------------------------------------------

    def create_backup(self, project_id, user_id, volume_id, *, name=None, description=None,
                      container=None, incremental=False, force=False, snapshot_id=None,
                      metadata=None, availability_zone=None) -> dict:
        with self._store.transaction():
            volume = self._volumes.get_volume(project_id, volume_id)
            snapshot = None
            if snapshot_id:
                if self._snapshots is None:
                    raise NotFound(f"Snapshot {snapshot_id} could not be found.")
                snapshot = self._snapshots.get_snapshot(project_id, snapshot_id)
                if snapshot["volume_id"] != volume_id:
                    raise Invalid(f"Invalid volume: Volume {volume_id} does not match with "
                                  f"snapshot.volume_id {snapshot['volume_id']}.")
                if snapshot["status"] != "available":
                    raise Invalid("Invalid snapshot: Snapshot to be backed up must be available, "
                                  f"but the current status is \"{snapshot['status']}\".")
            elif volume["status"] not in ("available", "in-use"):
                raise Invalid("Invalid volume: Volume to be backed up must be available or "
                              f"in-use, but the current status is \"{volume['status']}\".")
            elif volume["status"] == "in-use" and not force:
                raise Invalid("Invalid volume: Backing up an in-use volume must use the force "
                              "flag.")
            parent = self._parent_for(project_id, volume_id, snapshot) if incremental else None
            now = cinder_time()
            backup = {
                "id": str(uuid.uuid4()),
                "project_id": project_id,
                "user_id": user_id,
                "volume_id": volume_id,
                "snapshot_id": snapshot_id or None,
                "name": name,
                "description": description,
                "status": "creating",
                "size": volume["size"],
                "object_count": None,
                "availability_zone": availability_zone,
                "container": container,
                "fail_reason": None,
                "parent_id": parent["id"] if parent else None,
                "num_dependent_backups": 0,
                # When the data was the volume's: the snapshot's time, or now.
                "data_timestamp": snapshot["created_at"] if snapshot else now,
                "metadata": dict(metadata or {}),
                "restore_volume_id": None,
                "temp_volume_id": None,
                # The volume's metadata, name and description when the data
                # was copied (set then; restored along with the data).
                "volume_meta": None,
                "service": None,
                "created_at": now,
                # Cinder saves the backup again at once to set data_timestamp
                # (not for a snapshot's), which stamps it.
                "updated_at": None if snapshot else now,
            }
            if snapshot is not None:
                self._snapshots.save_snapshot(snapshot, status="backing-up")
            else:
                self._volumes.save_volume(volume, status="backing-up",
                                          previous_status=volume["status"])
            self._store.put("backup", backup)
        self._copier.call_later(self._latency().create, self._finish_create, backup["id"])
        return backup

    def _parent_for(self, project_id, volume_id, snapshot) -> dict:
        """Cinder's parent of an incremental backup: the available backup of the
        volume with the latest data (for a snapshot's, older than the snapshot)."""
        backups = [b for b in self.list_backups(project_id) if b["volume_id"] == volume_id]
        if not backups:
            raise Invalid("Invalid backup: No backups available to do an incremental backup.")

        def data_time(b):
            usable = b["status"] == "available" and (
                snapshot is None or b["data_timestamp"] < snapshot["created_at"])
            return b["data_timestamp"] if usable else ""

        latest = max(backups, key=data_time)
        if latest["status"] != "available":
            raise Invalid("Invalid backup: No backups available to do an incremental backup.")
        return latest

    def _finish_create(self, backup_id):
        backup = self._store.get("backup", backup_id)
        if backup is None or backup["status"] != "creating":
            return
        if backup["availability_zone"] not in (None, AVAILABILITY_ZONE):
            # Cinder's scheduler finds no backup service in that zone.
            with self._store.transaction():
                backup = self._store.get("backup", backup_id)
                self._release_source(backup)
                self._touch(backup, status="error",
                            fail_reason="Service not found for creating backup.")
            return
        with self._store.transaction():
            # What cinder-backup settles when it starts: its zone, its
            # driver's container (the posix driver's: the id, split).
            backup = self._store.get("backup", backup_id)
            container = backup["container"]
            if container is None:
                container = f"{backup_id[0:2]}/{backup_id[2:4]}/{backup_id}"
            # Cinder's volume driver hands the backup service a temporary
            # clone of an in-use volume or of a snapshot (not the volume).
            volume = self._store.get("volume", backup["volume_id"])
            temporary = None
            if volume is not None and (backup["snapshot_id"]
                                       or volume.get("previous_status") == "in-use"):
                temporary = self._volumes.add_temporary_volume(volume, "backing-up")["id"]
            backup = self._touch(backup, availability_zone=backup["availability_zone"]
                                 or AVAILABILITY_ZONE, container=container, service=DRIVER_NAME,
                                 temp_volume_id=temporary)
        source = (self._snapshots.path(backup["snapshot_id"]) if backup["snapshot_id"]
                  else self._volumes.path(backup["volume_id"]))
        try:
            copy_sparse(source, self.path(backup_id), backup["size"] * GIB)
            fsync_dir(self._dir)
            failure = None
        except OSError as exc:
            LOG.exception("could not back up volume %s into backup %s", backup["volume_id"],
                          backup_id)
            failure = str(exc)
        with self._store.transaction():
            backup = self._store.get("backup", backup_id)
            self._release_source(backup)
            if failure is not None:
                self._touch(backup, status="error", fail_reason=failure)
                return
            volume = self._store.get("volume", backup["volume_id"])
            size = volume["size"] if volume is not None else backup["size"]
            # Cinder's backup driver saves the volume's metadata with the data,
            # once the data is copied.
            volume_meta = None if volume is None else {
                "name": volume["name"], "description": volume["description"],
                "metadata": dict(volume["metadata"])}
            self._touch(backup, status="available", size=size,
                        object_count=math.ceil(size * GIB / BACKUP_FILE_SIZE),
                        volume_meta=volume_meta)
            parent = self._store.get("backup", backup["parent_id"]) if backup["parent_id"] else None
            if parent is not None:
                self._touch(parent, num_dependent_backups=parent["num_dependent_backups"] + 1)

    def _release_source(self, backup):
        """The snapshot or volume a backup was made from gets its status back
        (and the temporary volume made for it goes)."""
        if backup.get("temp_volume_id"):
            self._volumes.drop_temporary_volume(backup["temp_volume_id"])
            backup["temp_volume_id"] = None
        if backup["snapshot_id"]:
            snapshot = self._store.get("snapshot", backup["snapshot_id"])
            if snapshot is not None and snapshot["status"] == "backing-up":
                self._snapshots.save_snapshot(snapshot, status="available")
            return
        volume = self._store.get("volume", backup["volume_id"])
        if volume is not None and volume["status"] == "backing-up":
            self._volumes.save_volume(volume, status=volume.get("previous_status") or "available",
                                      previous_status="backing-up")

    # -- restore -------------------------------------------------------------

    def restore(self, project_id, user_id, backup_id, volume_id=None, name=None,
                new_volume=None) -> dict:
        """POST /backups/{id}/restore; ``new_volume``: the type and zone
        (``volume_type``, ``availability_zone``, ``multiattach``) of the volume
        made when no ``volume_id`` is given. Returns Cinder's answer."""
        backup = self.get_backup(project_id, backup_id)
        self._check_restorable(backup)
        if volume_id is None:
            if name is None:
                name = f"restore_backup_{backup_id}"
            volume = self._volumes.create_volume(
                project_id, user_id, name=name,
                description="auto-created_from_restore_from_backup", size=backup["size"],
                metadata={}, wait=True, **(new_volume or DEFAULT_NEW_VOLUME))
            volume_id = volume["id"]
            if volume["status"] == "error":
                raise Invalid(f"Invalid volume: Error while creating volume {volume_id} for "
                              f"restoring backup {backup_id}.")
        with self._store.transaction():
            backup = self.get_backup(project_id, backup_id)
            self._check_restorable(backup)
            volume = self._volumes.get_volume(project_id, volume_id)
            if volume["status"] != "available":
                raise Invalid("Invalid volume: Volume to be restored to must be available")
            if backup["size"] > volume["size"]:
                raise Invalid(f"Invalid volume: volume size {volume['size']} is too small to "
                              f"restore backup of size {backup['size']}.")
            self._touch(backup, status="restoring", restore_volume_id=volume_id)
            self._volumes.save_volume(volume, status="restoring-backup")
        self._copier.call_later(self._latency().create, self._finish_restore, backup_id, volume_id)
        return {"backup_id": backup_id, "volume_id": volume_id, "volume_name": volume["name"]}

    @staticmethod
    def _check_restorable(backup):
        if backup["status"] != "available":
            raise Invalid("Invalid backup: Backup status must be available")

    def _finish_restore(self, backup_id, volume_id):
        try:
            self._volumes.replace_data(volume_id, self.path(backup_id))
            ok = True
        except (OSError, CinderError):
            LOG.exception("could not restore backup %s into volume %s", backup_id, volume_id)
            ok = False
        with self._store.transaction():
            volume = self._store.get("volume", volume_id)
            if volume is None or volume["status"] != "restoring-backup":
                self.restored_into(backup_id, volume, ok=False)
                return
            changes = self.restored_into(backup_id, volume, ok=ok)
            self._volumes.save_volume(volume, status="available" if ok else "error_restoring",
                                      **changes)

    def claim(self, project_id, backup_id, volume_id) -> None:
        """A volume is being created from the backup: it is ``restoring`` into it
        (inside the volume service's transaction, which checked it available)."""
        backup = self.get_backup(project_id, backup_id)
        self._touch(backup, status="restoring", restore_volume_id=volume_id)

    def restored_into(self, backup_id, volume, ok) -> dict:
        """A restore into ``volume`` ended: the backup is available again.
        Returns the changes the volume gets (see the module's docstring): the
        backed-up metadata instead of its own, the backed-up name and
        description if it has no name of its own, and Cinder's tag of the
        backup it holds the data of (unless it is the backup's own volume)."""
        backup = self._store.get("backup", backup_id)
        if backup is None:
            return {}
        if backup["status"] == "restoring":
            self._touch(backup, status="available")
        if not ok or volume is None:
            return {}
        changes = {}
        metadata = dict(volume["metadata"])
        saved = backup.get("volume_meta")  # None: a record from before devcloud kept it
        if saved:
            if saved["metadata"]:  # Cinder saved none: it restores none
                metadata = dict(saved["metadata"])
            # Cinder's rule (BackupMetadataAPI._restore_vol_base_meta): the
            # name and description come together, onto a volume without a
            # name or with the one the restore made up.
            own = volume["name"]
            if saved["name"] and not (own and not own.startswith("restore_backup_")):
                changes.update(name=saved["name"], description=saved["description"])
        old = metadata.get("src_backup_id")
        if backup["volume_id"] != volume["id"] or (old and old != backup_id):
            metadata["src_backup_id"] = backup_id
        if metadata != volume["metadata"]:
            changes["metadata"] = metadata
        return changes

    # -- delete --------------------------------------------------------------

    def delete_backup(self, project_id, backup_id) -> None:
        with self._store.transaction():
            backup = self.get_backup(project_id, backup_id)
            if backup["status"] not in DELETABLE_STATUSES:
                raise Invalid("Invalid backup: Backup status must be available or error")
            if any(b["parent_id"] == backup_id for b in self.list_backups(project_id)):
                raise Invalid("Invalid backup: Incremental backups exist for this backup.")
            self._touch(backup, status="deleting")
        self._scheduler.call_later(self._latency().delete, self._finish_delete, backup_id)

    def _finish_delete(self, backup_id):
        backup = self._store.get("backup", backup_id)
        if backup is None or backup["status"] != "deleting":
            return
        if not self._remove_file(backup_id):
            return
        with self._store.transaction():
            parent = self._store.get("backup", backup["parent_id"]) if backup["parent_id"] else None
            if parent is not None and parent["num_dependent_backups"]:
                self._touch(parent, num_dependent_backups=parent["num_dependent_backups"] - 1)
            self._store.delete("backup", backup_id)

    # -- start-up ------------------------------------------------------------

    def _recover_interrupted(self, backup):
        if backup["status"] == "creating":
            LOG.warning("backup %s was being made; now in error", backup["id"])
            with self._store.transaction():
                backup = self._store.get("backup", backup["id"])
                self._release_source(backup)
                self._touch(backup, status="error", fail_reason=INCOMPLETE_ON_RESTART)
        elif backup["status"] == "restoring":
            LOG.warning("backup %s was being restored; available again", backup["id"])
            with self._store.transaction():
                backup = self._store.get("backup", backup["id"])
                volume = self._store.get("volume", backup["restore_volume_id"] or "")
                if volume is not None and volume["status"] == "restoring-backup":
                    self._volumes.save_volume(volume, status="error_restoring")
                self._touch(backup, status="available")
