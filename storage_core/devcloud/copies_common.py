"""What devcloud's snapshot and backup services share: records and their files.

Both keep copies of volume data: records of one kind in the store (a project
sees only its own), each with a sparse file ``<dir>/<id>.img`` made in the
background. Looking records up, stamping them, an admin's status reset,
removing a deleted copy's file and the start-up clean-up are the same for
both; what may be copied, deleted or restored, and when, stays with each
(snapshots.py, backups.py).
"""

import os

from storage_core.devcloud.backend import remove_partial_copies
from storage_core.devcloud.web import cinder_time


class CopyService:
    """The common part of a service of copies; a subclass sets:

    * ``kind``: its records' kind in the store, also the word its logs use;
    * ``log``: its module's logger (so that its lines keep their logger name);
    * ``not_found(record_id)``: the NotFound of an id it does not have;
    * ``lost_file_changes``: what a record whose file is gone gets besides
      ``error`` at start-up;

    and provides ``_finish_delete(record_id)`` and
    ``_recover_interrupted(record)`` (see ``recover``).
    """

    kind = None
    log = None
    lost_file_changes = {}

    def __init__(self, store, directory, volumes, scheduler, latency, copier=None):
        """``volumes``: the VolumeService whose data is copied; ``copier`` runs
        the copies (default: ``scheduler``); ``latency`` is a callable
        returning the current LatencyProfile."""
        self._store = store
        self._dir = os.fspath(directory)
        self._volumes = volumes
        self._scheduler = scheduler
        self._copier = copier or scheduler
        self._latency = latency
        os.makedirs(self._dir, exist_ok=True)

    def path(self, record_id) -> str:
        return os.path.join(self._dir, f"{record_id}.img")

    @staticmethod
    def not_found(record_id):
        raise NotImplementedError

    # -- records -------------------------------------------------------------

    def get_record(self, project_id, record_id) -> dict:
        record = self._store.get(self.kind, record_id)
        # Another project's record is as missing as one that never was.
        if record is None or record["project_id"] != project_id:
            raise self.not_found(record_id)
        return record

    def list_records(self, project_id) -> list[dict]:
        return [r for r in self._store.list(self.kind) if r["project_id"] == project_id]

    def _touch(self, record, **changes):
        record.update(changes)
        record["updated_at"] = cinder_time()
        self._store.put(self.kind, record)
        return record

    def reset_status(self, project_id, record_id, status) -> None:
        """An admin's os-reset_status: set the status, nothing else."""
        with self._store.transaction():
            record = self.get_record(project_id, record_id)
            self.log.info("%s %s: status reset from %s to %s", self.kind, record_id,
                          record["status"], status)
            self._touch(record, status=status)

    # -- delete --------------------------------------------------------------

    def _remove_file(self, record_id) -> bool:
        """Remove a ``deleting`` record's file; False if that failed (the record
        is then in ``error_deleting``, and the caller keeps it)."""
        try:
            path = self.path(record_id)
            if os.path.exists(path):
                os.unlink(path)
        except OSError:
            self.log.exception("could not delete %s %s", self.kind, record_id)
            with self._store.transaction():
                record = self._store.get(self.kind, record_id)
                if record is not None:
                    self._touch(record, status="error_deleting")
            return False
        return True

    # -- start-up ------------------------------------------------------------

    def recover(self) -> None:
        """Settle what a crash interrupted: partial copies go, deletes are
        finished, an available record whose file is lost is in ``error``; the
        subclass ends the rest (``_recover_interrupted``: a copy being made,
        a restore)."""
        remove_partial_copies(self._dir)
        for record in self._store.list(self.kind):
            if record["status"] == "deleting":
                self._finish_delete(record["id"])
            elif record["status"] == "available" and not os.path.exists(
                    self.path(record["id"])):
                self.log.warning("%s %s lost its file; now in error", self.kind, record["id"])
                with self._store.transaction():
                    self._touch(self._store.get(self.kind, record["id"]), status="error",
                                **self.lost_file_changes)
            else:
                self._recover_interrupted(record)

    def _finish_delete(self, record_id):
        raise NotImplementedError

    def _recover_interrupted(self, record):
        raise NotImplementedError
