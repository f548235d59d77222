"""Cinder's copies of a volume: snapshots (in the volume's backend, point in
time) and backups (in the backup service, outliving the volume).

Both are records with a status that moves ``creating`` -> ``available``,
``deleting`` -> gone, ``error``/``error_deleting`` when the cloud failed;
this module makes, lists, waits for and deletes them through openstacksdk's
proxy (plain requests at a pinned microversion, so the JSON is Cinder's own).
"""

import logging

from openstack import exceptions as sdk_exceptions
from openstack import utils as sdk_utils

from storage_core.backends.cinder_paging import every_page
from storage_core.backends.cloud_time import parse_cloud_time
from storage_core.backends.sdk_errors import detail as _detail
from storage_core.backends.sdk_errors import translate_errors as _translate_errors
from storage_core.errors import CloudError, Conflict, NotFound
from storage_core.models import CloudBackup, CloudSnapshot
from storage_core.waits import wait_until

LOG = logging.getLogger(__name__)

# Backups carry metadata from 3.43 on (fuxi's tags live there).
BACKUP_METADATA_MICROVERSION = "3.43"
# Snapshots are served the same at every 3.x; metadata filters need 3.22 but
# fuxi filters its own tags itself.
SNAPSHOT_MICROVERSION = "3.0"
_FAILED = ("error", "error_deleting")


class _CinderCopies:
    """What snapshots and backups share: read, list, wait, delete."""

    collection = ""  # "snapshots" / "backups"
    noun = ""
    microversion = None
    list_page_size = 1000
    # Where the cloud's operator reads why one failed.
    _logs = "cinder-volume"

    def __init__(self, connection, clock=None, timeout=110.0, delete_timeout=55.0):
        self._conn = connection
        self._clock = clock
        self._timeout = timeout
        self._delete_timeout = delete_timeout

    @property
    def _bs(self):
        return self._conn.block_storage

    record_class = None  # CloudSnapshot / CloudBackup

    def _record(self, body):
        return self.record_class(
            id=body["id"],
            name=body.get("name"),
            volume_id=body.get("volume_id"),
            size_gb=int(body.get("size") or 0),
            status=body.get("status"),
            created_at=parse_cloud_time(body.get("created_at")),
            metadata=dict(body.get("metadata") or {}),
            **self._own_fields(body),
        )

    def _own_fields(self, body) -> dict:
        return {}

    def get(self, copy_id):
        with _translate_errors(f"reading {self.noun} {copy_id}"):
            resp = self._bs.get(f"/{self.collection}/{copy_id}", microversion=self.microversion)
            if resp.status_code == 404:
                raise NotFound(f"{self.noun} {copy_id} does not exist in this project's Cinder")
            sdk_exceptions.raise_from_response(resp)
            return self._record(resp.json()[self.collection[:-1]])

    def list(self, volume_id=None) -> list:
        """Every one of the project (of volume `volume_id`, if given)."""
        params = {"limit": self.list_page_size}
        if volume_id:
            params["volume_id"] = volume_id
        with _translate_errors(f"listing {self.collection}"):
            found = every_page(self._bs, f"/{self.collection}/detail", self.collection, params, self.microversion)
        # Checked again: a cloud that ignores the filter answers with everything.
        return [r for r in map(self._record, found) if volume_id is None or r.volume_id == volume_id]

    def wait_available(self, copy_id, timeout=None):
        def check():
            record = self.get(copy_id)
            if record.status in _FAILED:
                raise CloudError(
                    f"{self.noun} {record.name!r} ({copy_id}) went to status {record.status!r}; see the "
                    f"Cinder logs ({self._logs})"
                )
            return record if record.status == "available" else None

        return wait_until(check, timeout or self._timeout, f"{self.noun} {copy_id} to become available",
                          self._clock, check_first=False)

    def delete(self, record, timeout=None) -> None:
        with _translate_errors(f"deleting {self.noun} {record.name!r} ({record.id})"):
            resp = self._bs.delete(f"/{self.collection}/{record.id}", microversion=self.microversion)
            if resp.status_code == 404:
                return
            try:
                sdk_exceptions.raise_from_response(resp)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"Cinder refused to delete {self.noun} {record.name!r} ({record.id}): {_detail(exc)}"
                ) from exc

        def gone():
            try:
                current = self.get(record.id)
            except NotFound:
                return True
            if current.status in _FAILED:
                raise CloudError(f"deleting {self.noun} {record.id} failed: status {current.status!r}")
            return False

        wait_until(gone, timeout or self._delete_timeout, f"{self.noun} {record.id} to be deleted", self._clock)

    def _post(self, path, body, doing):
        """POST `body`; a 400 (the volume's status, a quota) is a Conflict in Cinder's words."""
        with _translate_errors(doing):
            resp = self._bs.post(path, json=body, microversion=self.microversion)
            try:
                sdk_exceptions.raise_from_response(resp)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(f"Cinder refused {doing}: {_detail(exc)}") from exc
            return resp.json()


class CinderSnapshots(_CinderCopies):
    collection = "snapshots"
    noun = "snapshot"
    microversion = SNAPSHOT_MICROVERSION
    record_class = CloudSnapshot

    def create(self, volume_id, name, metadata) -> CloudSnapshot:
        """Ask for a snapshot of the volume; Cinder answers at once with ``creating``.

        ``force``: Cinder below 3.66 snapshots an in-use volume only when told
        to; whoever calls this has made the volume's file system consistent
        (frozen) or decided a crash-consistent copy will do.
        """
        body = {"snapshot": {"volume_id": volume_id, "name": name, "force": True, "metadata": dict(metadata)}}
        answer = self._post("/snapshots", body, f"a snapshot {name!r} of volume {volume_id}")
        snapshot = self._record(answer["snapshot"])
        LOG.info("snapshot %s (%s) of volume %s requested", snapshot.id, name, volume_id)
        return snapshot


class CinderBackups(_CinderCopies):
    collection = "backups"
    noun = "backup"
    microversion = BACKUP_METADATA_MICROVERSION
    _logs = "cinder-backup"
    record_class = CloudBackup

    def _own_fields(self, body) -> dict:
        return {"snapshot_id": body.get("snapshot_id"), "incremental": bool(body.get("is_incremental"))}

    def require_api(self) -> None:
        """Refuse clearly on a cloud too old to tag backups (Cinder before Rocky)."""
        with _translate_errors("reading Cinder's API version"):
            if not sdk_utils.supports_microversion(self._bs, BACKUP_METADATA_MICROVERSION):
                raise CloudError(
                    f"fuxi's backups need Cinder's microversion {BACKUP_METADATA_MICROVERSION} (backup "
                    "metadata, Rocky or newer); this cloud offers less"
                )

    def create(self, volume_id, name, metadata, snapshot_id=None, incremental=False) -> CloudBackup:
        """Ask for a backup of the volume (of its snapshot `snapshot_id`, if given).

        ``force`` lets Cinder back up an in-use volume; fuxi backs up an in-use
        volume from a snapshot it froze the file system for, so what Cinder
        copies is consistent either way. The caller checked require_api() first,
        before taking the snapshot it backs up.
        """
        spec = {"volume_id": volume_id, "name": name, "force": True, "incremental": bool(incremental),
                "metadata": dict(metadata)}
        if snapshot_id:
            spec["snapshot_id"] = snapshot_id
        answer = self._post("/backups", {"backup": spec}, f"a backup {name!r} of volume {volume_id}")
        backup_id = answer["backup"]["id"]
        LOG.info("backup %s (%s) of volume %s requested%s", backup_id, name, volume_id,
                 f" from snapshot {snapshot_id}" if snapshot_id else "")
        return self.get(backup_id)

    def restore(self, backup: CloudBackup, volume_id) -> None:
        """Write the backup over volume `volume_id` (available, at least as large);
        Cinder answers at once, the volume goes ``restoring-backup``."""
        self._post(f"/backups/{backup.id}/restore", {"restore": {"volume_id": volume_id}},
                   f"restoring backup {backup.name!r} ({backup.id}) into volume {volume_id}")
        LOG.info("restoring backup %s into volume %s", backup.id, volume_id)

    def wait_restored(self, backup: CloudBackup, volume_get, volume_id, timeout=None):
        """Wait until the volume is ``available`` again and the backup no longer
        ``restoring``; the volume's record. `volume_get` reads a volume."""
        def check():
            vol = volume_get(volume_id)
            if vol.status == "error_restoring":
                raise CloudError(
                    f"restoring backup {backup.name!r} ({backup.id}) into volume {volume_id} failed: the volume "
                    "is in error_restoring; see the cinder-backup logs"
                )
            if vol.status != "available":
                return None
            return vol if self.get(backup.id).status != "restoring" else None

        return wait_until(check, timeout or self._timeout, f"backup {backup.id} to be restored into {volume_id}",
                          self._clock, check_first=False)
