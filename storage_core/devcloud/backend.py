"""The volume service behind the Cinder API: records, status rules, files, loops.

What cinder-volume and its driver do in a real cloud happens here: a volume is
a sparse file ``<state_dir>/volumes/<id>.img``, exporting it binds it to a loop
device. Status rules follow Cinder's so clients meet the same refusals:

* volume: ``creating`` -> ``available`` -> ``reserved`` (attachment created
  without a connector) or ``attaching`` (with one: exported) -> ``in-use``
  (attachment completed) -> ``detaching`` (Nova's begin_detaching) ->
  ``available`` (last attachment deleted); delete: ``available``/``error`` ->
  ``deleting`` -> gone. A multiattach volume may also be reserved again while
  ``in-use``; its status then follows its most advanced attachment.
* attachment: ``reserved`` -> ``attaching`` (connector given) -> ``attached``
  (os-complete) -> deleted. Real Cinder answers the create itself with the
  ``reserved`` view even when it has already moved on to ``attaching``.

A volume may also be made from a copy: a snapshot (snapshots.py), another
volume, or a backup (backups.py). Its file is then a sparse copy of the
source's, grown to the new size, made while the volume is ``creating``; a
volume with snapshots is not deleted (unless ``cascade``, which deletes them
too).

Every change is one store transaction; slow work (latency, losetup, copies)
runs outside the store lock so one slow request never stalls the others.
"""

import errno
import logging
import os
import threading
import time
import uuid

from storage_core.devcloud.web import cinder_time
from storage_core.errors import CommandError

LOG = logging.getLogger(__name__)

GIB = 1024**3
DELETABLE_STATUSES = ("available", "error", "error_restoring", "error_extending", "error_managing")
ATTACHABLE_STATUSES = ("available", "downloading")
# Cinder's _attachment_reserve: a multiattach volume may be reserved in-use too.
MULTIATTACH_ATTACHABLE_STATUSES = ("available", "in-use", "downloading")
# The volume status an attachment status stands for; with several
# attachments the first in this order wins (Cinder's
# _get_statuses_from_attachments sorts them the same way).
_STATUS_OF_ATTACHMENTS = (("attached", "in-use"), ("attaching", "attaching"),
                          ("reserved", "reserved"))
HOST = "devcloud@local#local"


#: What a volume can be made from: Cinder's name of it in its refusals, its
#: exception's message prefix, and the statuses it must be in.
_ORIGINS = {
    "snapshot": ("snapshot", "Invalid snapshot", ("available",)),
    "volume": ("source volume", "Invalid volume", ("available", "in-use")),
    "backup": ("backup", "Invalid backup", ("available",)),
}
#: Cinder's refusals of a volume smaller than what it is made from (its
#: create flow's words, the double space included).
_TOO_SMALL = {
    "snapshot": "Volume size '{size}'GB cannot be smaller than the snapshot size "
                "{source_size}GB. They must be >= original snapshot size.",
    "volume": "Volume size '{size}'GB cannot be smaller than original volume size  "
              "{source_size}GB. They must be >= original volume size.",
    "backup": "Volume size {size}GB cannot be smaller than the backup size {source_size}GB. "
              "It must be >= backup size.",
}


class CinderError(Exception):
    """A refusal the API answers as ``{"<fault>": {"code": status, ...}}``."""

    status = 400

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(CinderError):
    status = 404


class Invalid(CinderError):
    status = 400


class BackendFailure(CinderError):
    status = 500


def volume_not_found(volume_id):
    return NotFound(f"Volume {volume_id} could not be found.")


def attachment_not_found(attachment_id):
    return NotFound(
        f"Volume attachment could not be found with filter: attachment_id = {attachment_id}."
    )


class VolumeService:
    # The cloud's FaultInjector, for volume_status faults (a create or an
    # attach that leaves the volume in error); None: none. Set by the API
    # face that shares it (cinder.BlockStorage).
    faults = None
    # The snapshot and backup services (snapshots.SnapshotService,
    # backups.BackupService), which set themselves here when made; None:
    # this cloud has none, and no volume is made from one.
    snapshots = None
    backups = None

    def __init__(self, store, volumes_dir, loops, scheduler, latency, copier=None):
        """``latency`` is a callable returning the current LatencyProfile.

        ``copier`` runs the jobs that copy data (a volume made from a
        snapshot, a volume or a backup), so that a long copy does not hold up
        the other transitions on ``scheduler``; default: ``scheduler``.
        """
        self._store = store
        self._dir = os.fspath(volumes_dir)
        self._loops = loops
        self._scheduler = scheduler
        self._copier = copier or scheduler
        self._latency = latency
        # Volumes being copied: id -> (kind, id) of the source (none survive a
        # restart: recover() ends such volumes in error).
        self._copying = {}
        self._copying_lock = threading.Lock()
        os.makedirs(self._dir, exist_ok=True)

    def _forced_status(self, operation) -> str | None:
        """The status an armed volume_status fault gives this call's volume, if any."""
        return self.faults.take_volume_status(operation) if self.faults is not None else None

    def path(self, volume_id) -> str:
        return os.path.join(self._dir, f"{volume_id}.img")

    # -- volumes -------------------------------------------------------------

    def create_volume(self, project_id, user_id, *, name, description, size, metadata,
                      volume_type, availability_zone, multiattach=False, source=None,
                      wait=False) -> dict:
        """A new volume, ``creating`` until its file is made.

        ``source``: ``("snapshot" | "volume" | "backup", id)`` to make it a copy
        of (the caller checked Cinder's rules on it). ``wait``: make it in this
        call, after the create latency (as Cinder's backup restore waits for
        the volume it creates), instead of in the background.
        """
        now = cinder_time()
        kind, source_id = source if source else (None, None)
        volume = {
            "id": str(uuid.uuid4()),
            "project_id": project_id,
            "user_id": user_id,
            "name": name,
            "description": description,
            "size": size,
            "status": "creating",
            "metadata": dict(metadata or {}),
            "volume_type": volume_type,
            "availability_zone": availability_zone,
            "bootable": False,
            "multiattach": bool(multiattach),
            "created_at": now,
            "updated_at": None,
            "device": None,  # loop device while exported; not shown by the API
            # What Cinder's volume view shows of the volume's origin.
            "snapshot_id": source_id if kind == "snapshot" else None,
            "source_volid": source_id if kind == "volume" else None,
            # What the data is copied from, {"kind", "id"}; not shown by the API.
            "source": {"kind": kind, "id": source_id} if kind else None,
        }
        try:
            with self._store.transaction():
                if kind:
                    self._claim_source(project_id, kind, source_id, size, volume["id"])
                    # Known as copying before anyone may delete the source.
                    with self._copying_lock:
                        self._copying[volume["id"]] = (kind, source_id)
                self._store.put("volume", volume)
        except BaseException:
            with self._copying_lock:
                self._copying.pop(volume["id"], None)
            raise
        forced = self._forced_status("volume.create")
        if wait:
            time.sleep(self._latency().create)
            self._finish_create(volume["id"], forced)
            return self._store.get("volume", volume["id"]) or volume
        jobs = self._copier if kind else self._scheduler
        jobs.call_later(self._latency().create, self._finish_create, volume["id"], forced)
        return volume

    def _finish_create(self, volume_id, forced_status=None):
        volume = self._store.get("volume", volume_id)
        if volume is None or volume["status"] != "creating":
            with self._copying_lock:
                self._copying.pop(volume_id, None)
            return
        source = volume.get("source")
        if forced_status is not None:
            LOG.info("volume %s ends in %s (injected fault)", volume_id, forced_status)
            status = forced_status
        else:
            try:
                if source:
                    copy_sparse(self._source_path(source), self.path(volume_id),
                                volume["size"] * GIB)
                    self._fsync_dir()
                else:
                    self._make_file(volume)
                status = "available"
            except (OSError, CinderError):
                LOG.exception("could not create the file of volume %s", volume_id)
                status = "error"
        self._end_create(volume_id, status)

    def _end_create(self, volume_id, status):
        with self._copying_lock:
            self._copying.pop(volume_id, None)
        with self._store.transaction():
            volume = self._store.get("volume", volume_id)
            if volume is None or volume["status"] != "creating":
                return
            source = volume.get("source")
            changes = {}
            if source and source["kind"] == "backup" and self.backups is not None:
                # Cinder restores the backup into the new volume: the backup
                # is available again, the volume tagged with it.
                changes = self.backups.restored_into(source["id"], volume,
                                                     ok=status == "available")
            self._touch(volume, status=status, **changes)

    def _claim_source(self, project_id, kind, source_id, size, volume_id):
        """Cinder's create-flow checks of what a volume is made from: its status,
        then that the new volume is no smaller. A backup is then ``restoring``."""
        getter = {"volume": self.get_volume,
                  "snapshot": self.snapshots and self.snapshots.get_snapshot,
                  "backup": self.backups and self.backups.get_backup}[kind]
        if not getter:
            raise CinderError(f"Invalid input received: devcloud cannot create a volume from "
                              f"a {kind}.")
        record = getter(project_id, source_id)
        noun, exception, statuses = _ORIGINS[kind]
        if record["status"] not in statuses:
            raise Invalid(f"{exception}: Originating {noun} status must be one of "
                          f"'{', '.join(statuses)}' values")
        if size < record["size"]:
            raise Invalid("Invalid input received: " + _TOO_SMALL[kind].format(
                size=size, source_size=record["size"]))
        if kind == "backup":
            self.backups.claim(project_id, source_id, volume_id)

    def _source_path(self, source) -> str:
        kind, source_id = source["kind"], source["id"]
        owner = {"volume": self, "snapshot": self.snapshots, "backup": self.backups}.get(kind)
        if owner is None:
            raise CinderError(f"devcloud has no {kind} service")
        return owner.path(source_id)

    def replace_data(self, volume_id, source_path) -> None:
        """Make the volume's data a copy of ``source_path``'s, at the volume's size
        (a backup restored into it). The file is replaced whole once the copy
        is complete; nothing may hold its loop device (the caller made sure)."""
        volume = self._store.get("volume", volume_id)
        if volume is None:
            raise volume_not_found(volume_id)
        copy_sparse(source_path, self.path(volume_id), volume["size"] * GIB)
        self._fsync_dir()

    def add_temporary_volume(self, volume, status) -> dict:
        """Cinder's temporary volume ``backup-vol-<id>``: what its backup
        service reads instead of an in-use volume or a snapshot (a clone made
        for the backup, counted in no quota). Clients see it in the listings
        while the backup runs; devcloud needs no file for it."""
        temporary = {
            "id": str(uuid.uuid4()), "project_id": volume["project_id"],
            "user_id": volume["user_id"], "name": f"backup-vol-{volume['id']}",
            "description": None, "size": volume["size"], "status": status, "metadata": {},
            "volume_type": volume["volume_type"],
            "availability_zone": volume["availability_zone"], "bootable": False,
            "multiattach": bool(volume.get("multiattach")), "created_at": cinder_time(),
            "updated_at": None, "device": None, "snapshot_id": None, "source_volid": None,
            "source": None, "temporary": True,
        }
        self._store.put("volume", temporary)
        return temporary

    def drop_temporary_volume(self, volume_id) -> None:
        """The backup is done with its temporary volume: it goes."""
        path = self.path(volume_id)
        if os.path.exists(path):
            os.unlink(path)
        self._store.delete("volume", volume_id)

    def clones_pending(self, kind, source_id) -> bool:
        """Whether a volume is still being made from this snapshot or volume."""
        with self._copying_lock:
            return (kind, source_id) in self._copying.values()

    def _make_file(self, volume):
        path = self.path(volume["id"])
        # Sparse: truncate allocates nothing, so 100 GiB volumes are free.
        with open(path, "ab") as f:
            if os.fstat(f.fileno()).st_size != volume["size"] * GIB:
                f.truncate(volume["size"] * GIB)
            os.fsync(f.fileno())
        self._fsync_dir()

    def _fsync_dir(self):
        fsync_dir(self._dir)

    def _touch(self, volume, **changes):
        volume.update(changes)
        volume["updated_at"] = cinder_time()
        self._store.put("volume", volume)
        return volume

    def save_volume(self, volume, **changes) -> dict:
        """Change and stamp a volume record (for the snapshot and backup
        services, inside their own transaction)."""
        return self._touch(volume, **changes)

    def get_volume(self, project_id, volume_id) -> dict:
        volume = self._store.get("volume", volume_id)
        if volume is None or volume["project_id"] != project_id:
            raise volume_not_found(volume_id)
        return volume

    def list_volumes(self, project_id) -> list[dict]:
        return [v for v in self._store.list("volume") if v["project_id"] == project_id]

    def delete_volume(self, project_id, volume_id, cascade=False) -> None:
        """Cinder's volume delete: refused while attached, in a busy status or
        with snapshots; ``cascade`` deletes its snapshots along, if each is
        available or in error."""
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            snapshots = self.snapshots.of_volume(volume_id) if self.snapshots else []
            blocked = bool(snapshots) and (not cascade or any(
                s["status"] not in ("available", "error") for s in snapshots))
            if (volume["status"] not in DELETABLE_STATUSES or self.attachments_of(volume_id)
                    or blocked):
                raise Invalid(
                    "Invalid volume: Volume status must be "
                    + " or ".join(DELETABLE_STATUSES)
                    + " and must not be migrating, attached, belong to a group, have "
                    "snapshots, awaiting a transfer, or be disassociated from snapshots "
                    "after volume transfer."
                )
            self._touch(volume, status="deleting")
            for snapshot in snapshots:
                self.snapshots.mark_deleting(snapshot)
        self._scheduler.call_later(self._latency().delete, self._finish_delete, volume_id)

    def _finish_delete(self, volume_id):
        volume = self._store.get("volume", volume_id)
        if volume is None or volume["status"] != "deleting":
            return
        snapshots = self.snapshots.of_volume(volume_id) if self.snapshots else []
        if self.clones_pending("volume", volume_id) or any(
                self.clones_pending("snapshot", s["id"]) for s in snapshots):
            # Cinder's volume manager holds the source's lock while it clones:
            # the delete waits for the copy.
            self._scheduler.call_later(0.1, self._finish_delete, volume_id)
            return
        for snapshot in snapshots:  # a cascade: the snapshots go first
            if not self.snapshots.finish_delete(snapshot["id"]):
                with self._store.transaction():
                    volume = self._store.get("volume", volume_id)
                    if volume is not None:
                        self._touch(volume, status="error_deleting")
                return
        path = self.path(volume_id)
        try:
            self._loops.release(path)  # in case a crash left one behind
            if os.path.exists(path):
                os.unlink(path)
        except (OSError, CommandError):
            LOG.exception("could not delete volume %s", volume_id)
            with self._store.transaction():
                volume = self._store.get("volume", volume_id)
                if volume is not None:
                    self._touch(volume, status="error_deleting")
            return
        self._store.delete("volume", volume_id)

    def update_volume(self, project_id, volume_id, changes) -> tuple[dict, str | None]:
        """Cinder's volume update (PUT /volumes/{id}): ``changes`` holds any of
        name, description (already validated) and metadata (replaces it all).

        Allowed in any status (Cinder refuses only ``maintenance``, which
        devcloud has not). Returns the volume and its ``updated_at`` from
        before the change: Cinder's answer shows that stale stamp.
        """
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            before = volume["updated_at"]
            if changes:  # Cinder saves (and stamps) only when a field was given
                if "metadata" in changes:
                    changes = dict(changes, metadata=dict(changes["metadata"]))
                self._touch(volume, **changes)
            return volume, before

    def extend_volume(self, project_id, volume_id, new_size, in_use_allowed) -> None:
        """Cinder's os-extend: ``available`` (or, when the request's microversion
        allows, ``in-use``) -> ``extending`` -> back, at the new size. The driver's
        part is growing the sparse file; a loop device bound to it keeps its old
        size until its holder runs ``losetup -c``, as a host must rescan on a
        real cloud."""
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            if new_size <= volume["size"]:
                raise Invalid("Invalid input received: New size for extend must be greater than current "
                              f"size. (current: {volume['size']}, extended: {new_size}).")
            expected = "in-use" if in_use_allowed and volume["status"] == "in-use" else "available"
            if volume["status"] != expected:
                raise Invalid(f"Invalid volume: Volume {volume_id} status must be "
                              f"'{{'status': '{expected}'}}' to extend, currently {volume['status']}.")
            self._touch(volume, status="extending")
        self._scheduler.call_later(self._latency().create, self._finish_extend, volume_id, new_size, expected)

    def _finish_extend(self, volume_id, new_size, previous_status):
        try:
            os.truncate(self.path(volume_id), new_size * GIB)
            status, size = previous_status, new_size
        except OSError:
            LOG.exception("could not grow the file of volume %s", volume_id)
            status, size = "error_extending", None
        with self._store.transaction():
            volume = self._store.get("volume", volume_id)
            if volume is not None and volume["status"] == "extending":
                self._touch(volume, status=status, size=size or volume["size"])

    def reset_status(self, project_id, volume_id, status) -> None:
        """Cinder's os-reset_status (admin): set the status, nothing else."""
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            LOG.info("volume %s: status reset from %s to %s", volume_id, volume["status"], status)
            self._touch(volume, status=status)

    def update_metadata(self, project_id, volume_id, metadata, replace) -> dict:
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            new = dict(metadata) if replace else {**volume["metadata"], **metadata}
            self._touch(volume, metadata=new)
            return new

    def delete_metadata_item(self, project_id, volume_id, key) -> None:
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            if key not in volume["metadata"]:
                raise metadata_not_found(volume_id, key)
            del volume["metadata"][key]
            self._touch(volume)

    # -- attachments ---------------------------------------------------------

    def attachments_of(self, volume_id) -> list[dict]:
        return [a for a in self._store.list("attachment") if a["volume_id"] == volume_id]

    def attachments_by_volume(self) -> dict[str, list[dict]]:
        """Every attachment grouped by volume id: one read for a whole listing."""
        grouped = {}
        for attachment in self._store.list("attachment"):
            grouped.setdefault(attachment["volume_id"], []).append(attachment)
        return grouped

    def get_attachment(self, project_id, attachment_id) -> dict:
        attachment = self._store.get("attachment", attachment_id)
        if attachment is None or attachment["project_id"] != project_id:
            raise attachment_not_found(attachment_id)
        return attachment

    def list_attachments(self, project_id) -> list[dict]:
        return [a for a in self._store.list("attachment") if a["project_id"] == project_id]

    def create_attachment(self, project_id, volume_id, *, instance_uuid, connector, mode):
        latency = self._latency()
        # Check the volume exists before paying any latency, as Cinder's API
        # looks it up before it reserves.
        self.get_volume(project_id, volume_id)
        time.sleep(latency.reserve)
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            if "error" in volume["status"]:
                # Cinder's attachment_create, trailing space included.
                raise Invalid(
                    "Invalid volume: Volume attachments can not be created if the volume is in "
                    f"an error state. The Volume {volume_id} currently has a status of: "
                    f"{volume['status']} "
                )
            allowed = (MULTIATTACH_ATTACHABLE_STATUSES if volume.get("multiattach")
                       else ATTACHABLE_STATUSES)
            if volume["status"] not in allowed:
                raise Invalid(
                    f"Invalid volume: Volume {volume_id} status must be "
                    + " or ".join(allowed)
                    + f" to reserve, but the current status is {volume['status']}."
                )
            attachment = {
                "id": str(uuid.uuid4()),
                "project_id": project_id,
                "volume_id": volume_id,
                "status": "reserved",
                "instance_uuid": instance_uuid,
                "attach_mode": mode,
                "connector": None,
                "connection_info": None,
                "attached_host": None,
                "mountpoint": None,
                "attach_time": None,
                "detach_time": None,
                "created_at": cinder_time(),
            }
            self._store.put("attachment", attachment)
            self._touch(volume, status="reserved")
        if connector is None:
            return attachment
        try:
            connected = self._connect(project_id, attachment["id"], connector, latency)
        except CinderError:
            self._undo_reserve(attachment["id"])
            raise
        # Cinder's create answers with the attachment as reserved, connection included.
        return {**connected, "status": "reserved"}

    def _undo_reserve(self, attachment_id):
        with self._store.transaction():
            attachment = self._store.get("attachment", attachment_id)
            if attachment is None:
                return
            self._store.delete("attachment", attachment_id)
            volume = self._store.get("volume", attachment["volume_id"])
            if volume is not None:
                remaining = self.attachments_of(volume["id"])
                self._touch(volume, status=_status_from(remaining),
                            device=volume["device"] if remaining else None)

    def update_attachment(self, project_id, attachment_id, connector) -> dict:
        self.get_attachment(project_id, attachment_id)
        return self._connect(project_id, attachment_id, connector, self._latency())

    def _connect(self, project_id, attachment_id, connector, latency) -> dict:
        """Export the volume to ``connector`` (Cinder's initialize_connection)."""
        time.sleep(latency.initialize_connection)
        attachment = self.get_attachment(project_id, attachment_id)
        volume_id = attachment["volume_id"]
        # Cinder: the mode attachment-create named, else the connector's, else rw.
        mode = attachment["attach_mode"]
        if mode in (None, "null"):
            mode = connector.get("mode") or "rw"
        try:
            device = self._loops.bind(self.path(volume_id), read_only=mode == "ro")
        except CommandError as exc:
            raise BackendFailure(
                f"Unable to create attachment for volume (Failed to export volume: {exc})."
            ) from exc
        try:
            with self._store.transaction():
                attachment = self.get_attachment(project_id, attachment_id)
                attachment.update(
                    status="attaching",
                    connector=connector,
                    connection_info=local_connection_info(attachment_id, device, mode),
                    # Cinder records no host for an attachment without an instance.
                    attached_host=None,
                    mountpoint=connector.get("mountpoint", "na"),
                )
                self._store.put("attachment", attachment)
                volume = self._store.get("volume", volume_id)
                self._touch(volume, status="attaching" if volume["status"] == "reserved" else volume["status"],
                            device=device)
                return attachment
        except NotFound:
            # Deleted while we were exporting: do not leave the export behind.
            if not any(a["connection_info"] for a in self.attachments_of(volume_id)):
                self._loops.release(self.path(volume_id))
            raise

    def complete_attachment(self, project_id, attachment_id) -> None:
        self.get_attachment(project_id, attachment_id)
        forced = self._forced_status("attachment.complete")
        time.sleep(self._latency().attach)
        with self._store.transaction():
            attachment = self.get_attachment(project_id, attachment_id)
            attachment.update(status="attached", attach_time=cinder_time())
            self._store.put("attachment", attachment)
            volume = self._store.get("volume", attachment["volume_id"])
            if forced is not None:
                LOG.info("volume %s ends in %s after its attach (injected fault)", volume["id"], forced)
            self._touch(volume, status=forced or "in-use")

    def delete_attachment(self, project_id, attachment_id) -> list[dict]:
        """Detach; returns the volume's remaining attachments (as Cinder does)."""
        attachment = self.get_attachment(project_id, attachment_id)
        time.sleep(self._latency().detach)
        volume_id = attachment["volume_id"]
        others = [a for a in self.attachments_of(volume_id) if a["id"] != attachment_id]
        if attachment["connection_info"] and not any(a["connection_info"] for a in others):
            # Unexport first: if losetup fails nothing has changed and the
            # client can retry; a crash after this point is repaired at start.
            try:
                self._loops.release(self.path(volume_id))
            except CommandError as exc:
                raise BackendFailure(f"Unable to terminate volume connection: {exc}") from exc
        with self._store.transaction():
            attachment = self.get_attachment(project_id, attachment_id)
            self._store.delete("attachment", attachment_id)
            remaining = self.attachments_of(volume_id)
            volume = self._store.get("volume", volume_id)
            if volume is not None:
                device = volume["device"]
                if not any(a["connection_info"] for a in remaining):
                    device = None
                self._touch(volume, status=_status_from(remaining), device=device)
            return remaining

    def begin_detaching(self, project_id, volume_id) -> None:
        """Cinder's os-begin_detaching, as Nova calls it before a detach."""
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            if volume["status"] != "in-use":
                raise Invalid("Invalid volume: Unable to detach volume. Volume status must be "
                              "'in-use' and attach_status must be 'attached' to detach.")
            self._touch(volume, status="detaching")

    def roll_detaching(self, project_id, volume_id) -> None:
        """Cinder's os-roll_detaching: a detach failed, the volume stays in use."""
        with self._store.transaction():
            volume = self.get_volume(project_id, volume_id)
            if volume["status"] == "detaching":
                self._touch(volume, status=_status_from(self.attachments_of(volume_id)))

    # -- start-up ------------------------------------------------------------

    def recover(self) -> None:
        """Finish what a crash interrupted and make loop bindings match the store.

        A plain create is finished; a copy (from a snapshot, a volume or a
        backup) ends in ``error``, as Cinder leaves a volume it was creating
        when its volume service restarts: what it was copying may have
        changed since.
        """
        remove_partial_copies(self._dir)
        for volume in self._store.list("volume"):
            if volume["status"] == "creating" and volume.get("source"):
                LOG.warning("volume %s was being copied from %s %s; now in error",
                            volume["id"], volume["source"]["kind"], volume["source"]["id"])
                self._end_create(volume["id"], "error")
            elif volume["status"] == "creating":
                self._finish_create(volume["id"])
            elif volume["status"] == "deleting":
                self._finish_delete(volume["id"])
        connected = {}
        for attachment in self._store.list("attachment"):
            if self._store.get("volume", attachment["volume_id"]) is None:
                LOG.warning("dropping attachment %s of a vanished volume", attachment["id"])
                self._store.delete("attachment", attachment["id"])
            elif attachment["connection_info"]:
                connected.setdefault(attachment["volume_id"], []).append(attachment)
        for volume in self._store.list("volume"):
            if (volume["status"] in ("creating", "deleting", "error", "error_deleting")
                    or volume.get("temporary")):  # the backup service's (backups.py)
                continue
            try:
                self._reconcile(volume, connected.get(volume["id"]))
            except (OSError, CommandError):
                # One broken volume must not keep the whole cloud down; its
                # clients will see the failure when they use it.
                LOG.exception("could not reconcile volume %s at start-up", volume["id"])

    def _reconcile(self, volume, connected_attachments):
        path = self.path(volume["id"])
        if not os.path.exists(path):
            LOG.warning("volume %s lost its file; recreating it empty", volume["id"])
            self._make_file(volume)
        if connected_attachments:
            self._rebind(volume, connected_attachments)
        elif self._loops.devices_for(path):
            LOG.warning("releasing stray loop devices of volume %s", volume["id"])
            self._loops.release(path)
            with self._store.transaction():
                self._touch(self._store.get("volume", volume["id"]), device=None)

    def _rebind(self, volume, attachments):
        path = self.path(volume["id"])
        wanted = attachments[0]["connection_info"]["device_path"]
        bound = self._loops.devices_for(path)
        if wanted in bound:
            device = wanted
        else:
            mode = attachments[0]["connection_info"].get("access_mode") or "rw"
            device = bound[0] if bound else self._loops.bind(path, read_only=mode == "ro")
            LOG.warning("volume %s was on %s, now on %s", volume["id"], wanted, device)
        with self._store.transaction():
            for attachment in attachments:
                attachment = self._store.get("attachment", attachment["id"])
                info = attachment["connection_info"]
                if info["device_path"] != device:
                    info["device_path"] = device
                    self._store.put("attachment", attachment)
            current = self._store.get("volume", volume["id"])
            if current["device"] != device:
                self._touch(current, device=device)


_COPY_CHUNK = 1024 * 1024
_ZEROS = memoryview(bytes(_COPY_CHUNK))
PARTIAL_SUFFIX = ".part"


def copy_sparse(src, dst, size) -> None:
    """Copy file ``src`` to ``dst``, ``size`` bytes long, allocating only data.

    Only the data extents of ``src`` are read (SEEK_DATA/SEEK_HOLE; the
    whole file where the file system cannot tell), and all-zero blocks of
    them are not written either: a copy of a sparse volume of many GiB with
    little data costs that little data. The copy is written beside ``dst``
    and renamed over it when complete (and on disk), so ``dst`` is never
    half a copy.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    partial = dst + PARTIAL_SUFFIX
    with open(src, "rb") as source:
        fd_in = source.fileno()
        end = os.fstat(fd_in).st_size
        fd_out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            for start, stop in _data_extents(fd_in, min(end, size)):
                _copy_range(fd_in, fd_out, start, stop)
            os.ftruncate(fd_out, size)
            os.fsync(fd_out)
        except BaseException:
            os.close(fd_out)
            os.unlink(partial)
            raise
        os.close(fd_out)
    os.replace(partial, dst)


def _data_extents(fd, end):
    """(start, stop) of each stretch of ``fd`` before ``end`` that may hold data."""
    pos = 0
    while pos < end:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here on
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP) and pos == 0:
                yield 0, end  # no SEEK_DATA here: read it all, skip zeros
                return
            raise
        if start >= end:
            return
        stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
        yield start, stop
        pos = stop


def _copy_range(fd_in, fd_out, start, stop):
    offset = start
    while offset < stop:
        data = os.pread(fd_in, min(_COPY_CHUNK, stop - offset), offset)
        if not data:
            return
        if data != _ZEROS[:len(data)]:
            view = memoryview(data)
            written = 0
            while written < len(data):
                written += os.pwrite(fd_out, view[written:], offset + written)
        offset += len(data)


def fsync_dir(path) -> None:
    """Make the directory's entries (a file created, renamed, removed) durable."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_partial_copies(directory) -> None:
    """Remove what copies a crash interrupted left (``*.part``) in ``directory``."""
    for name in os.listdir(directory):
        if name.endswith(PARTIAL_SUFFIX):
            LOG.warning("removing the interrupted copy %s", name)
            os.unlink(os.path.join(directory, name))


def _status_from(attachments) -> str:
    """The volume status its remaining attachments stand for."""
    statuses = {a["status"] for a in attachments}
    for attachment_status, volume_status in _STATUS_OF_ATTACHMENTS:
        if attachment_status in statuses:
            return volume_status
    return "available"


def metadata_not_found(volume_id, key):
    return NotFound(f"Volume {volume_id} has no metadata with key {key}.")


def local_connection_info(attachment_id, device, mode) -> dict:
    """The attachment's connection info, shaped as the attachments API returns it.

    Cinder flattens the driver's {"driver_volume_type", "data"} into one dict
    and adds its own keys; os-brick's LOCAL connector reads device_path.
    """
    return {
        "driver_volume_type": "local",
        "device_path": device,
        "access_mode": mode,
        "encrypted": False,
        "cacheable": False,
        "qos_specs": None,
        "attachment_id": attachment_id,
        "enforce_multipath": False,
    }
