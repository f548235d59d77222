"""Snapshots and backups of fuxi's Cinder volumes, and restores: consistent
wherever fuxi can make them so.

A copy of a volume mounted on this host is taken with its file system frozen
(fsfreeze: everything written so far is flushed to the device, and new writes
wait) from the moment it is asked for until Cinder says the copy is made, so
the copy holds a clean file system, not the one a power cut would leave.
Containers writing to the volume only pause. A volume that another host
holds cannot be frozen from here: copying it is refused unless the caller
accepts a crash-consistent copy.

A backup of a volume in use is made from a frozen snapshot (deleted once the
backup is done), so the long copy to the backup service never holds writes.

Every snapshot and backup fuxi takes is tagged as fuxi's with the name of its
volume; fuxi lists and deletes only its own. A frozen file system is always
thawed, also after a failure; a crash while frozen is mended at the next start
(thaw_all).
"""

import contextlib
import logging
import time
from dataclasses import dataclass

from storage_core.crashpoints import crash_point
from storage_core.errors import CloudError, Conflict, FilesystemError, InvalidInput, NotFound, StorageError, Timeout
from storage_core.models import (
    COPY_OF_KEY,
    FROZEN_KEY,
    FSTYPE_KEY,
    OWNER_KEY,
    OWNER_VALUE,
    POOL_KEY,
    SOURCE_KEY,
    SourceRef,
    VolumeSpec,
)
from storage_core.names import validate_volume_name
from storage_core.sources import is_cloud_id
from storage_core.state import Phase
from storage_core.timing import step
from storage_core.waits import deadline

LOG = logging.getLogger(__name__)

# The longest writes to a volume are held for a snapshot or a clone: Cinder
# copies (or marks) the data while the file system is frozen.
DEFAULT_FREEZE_TIMEOUT = 60.0
# How long a backup may take (the data goes to the backup service).
DEFAULT_BACKUP_TIMEOUT = 600.0
_MAX_COPY_NAME = 255
_THAW_TRIES = 3


@dataclass(frozen=True)
class Restored:
    """restore()'s answer."""

    name: str
    volume_id: str
    backup_id: str
    created: bool  # a new volume was made for it (else an existing one was overwritten)


class VolumeCopies:
    def __init__(self, backend, snapshots, backups, sources, filesystems, state, lock,
                 freeze_timeout=DEFAULT_FREEZE_TIMEOUT, backup_timeout=DEFAULT_BACKUP_TIMEOUT,
                 unfrozen_clones=False):
        """`backend`: Cinder's volumes (storage_core.backends.cinder); `snapshots`,
        `backups`: storage_core.backends.cinder_copies; `sources`: the
        SourceResolver; `lock(name)`: the service's lock of a volume name;
        `unfrozen_clones`: a clone of a volume mounted on another host is made
        crash-consistent instead of refused."""
        self._unfrozen_clones = unfrozen_clones
        self._backend = backend
        self._snapshots = snapshots
        self._backups = backups
        self._sources = sources
        self._fs = filesystems
        self._state = state
        self._lock = lock
        self.freeze_timeout = freeze_timeout
        self.backup_timeout = backup_timeout

    # -- snapshots ----------------------------------------------------------

    def snapshot(self, name, snapshot_name=None, allow_unfrozen=False, again_ok=False):
        """Take a snapshot of volume `name`, frozen if it is mounted here.
        `again_ok`: a snapshot of this volume already called `snapshot_name` is
        the answer (a caller that retries, as a CSI snapshotter does); of another
        volume, it is still a Conflict."""
        validate_volume_name(name)
        snapshot_name = _copy_name("snapshot", snapshot_name, name)
        with self._lock(name):
            vol = self._owned_volume(name, "snapshot")
            taken = self._taken(self._snapshots, snapshot_name)
            if taken is not None and again_ok and taken.volume_name == name:
                return taken
            if taken is not None:
                raise Conflict(f"fuxi already has a snapshot called {snapshot_name!r} ({taken.id}, of volume "
                               f"{taken.volume_name!r}); pick another name")
            with self._consistent(name, vol, allow_unfrozen, "snapshot") as frozen:
                return self._take_snapshot(vol, name, snapshot_name, frozen)

    def _take_snapshot(self, vol, name, snapshot_name, frozen):
        metadata = {**self._tags(vol, name), FROZEN_KEY: "true" if frozen else "false"}
        with step("snapshot", name):
            snap = self._snapshots.create(vol.id, snapshot_name, metadata)
            try:
                # While frozen the wait is bounded by how long writes may be held.
                return self._snapshots.wait_available(snap.id, self.freeze_timeout if frozen else None)
            except (CloudError, Timeout) as exc:
                self._drop_failed(self._snapshots, snap, exc)
                raise

    def snapshots(self, name=None) -> list:
        """fuxi's snapshots (of volume `name`, if given), oldest first."""
        return _owned_of(self._snapshots.list(), name)

    def delete_snapshot(self, ref) -> object:
        snap = self._sources.find("snapshot", _ref(ref, "snapshot"), owned_only=True)
        with step("snapshot_delete", snap.name or snap.id):
            self._snapshots.delete(snap)
        LOG.info("deleted snapshot %s (%s) of volume %s", snap.name, snap.id, snap.volume_name)
        return snap

    # -- backups --------------------------------------------------------------

    def backup(self, name, backup_name=None, incremental=False, allow_unfrozen=False):
        """Back volume `name` up, from a snapshot taken for it (frozen if the volume
        is mounted here) that goes once the backup is made: Cinder then copies
        the snapshot, and the volume stays usable (a backup of the volume
        itself would hold it "backing-up", unmountable, for the whole copy)."""
        validate_volume_name(name)
        backup_name = _copy_name("backup", backup_name, name)
        with self._lock(name):
            vol = self._owned_volume(name, "back up")
            self._refuse_taken_name(self._backups, "backup", backup_name)
            self._backups.require_api()
            with self._consistent(name, vol, allow_unfrozen, "backup") as frozen:
                staging = self._take_snapshot(vol, name, f"{backup_name}-staging", frozen)
        # The copy to the backup service runs without the volume's lock: mounts
        # and unmounts go on meanwhile.
        try:
            metadata = {**self._tags(vol, name), FROZEN_KEY: staging.metadata.get(FROZEN_KEY, "false")}
            with step("backup", name):
                made = self._backups.create(vol.id, backup_name, metadata, snapshot_id=staging.id,
                                            incremental=incremental)
                try:
                    return self._backups.wait_available(made.id, self.backup_timeout)
                except (CloudError, Timeout) as exc:
                    self._drop_failed(self._backups, made, exc)
                    raise
        finally:
            self._delete_staging(staging)

    def _delete_staging(self, staging) -> None:
        try:
            self._snapshots.delete(staging)
        except StorageError:
            LOG.exception("could not delete snapshot %s (%s) taken for a backup; delete it with "
                          "`fuxi snapshot delete %s`", staging.name, staging.id, staging.id)

    def backups(self, name=None) -> list:
        return _owned_of(self._backups.list(), name)

    def delete_backup(self, ref):
        backup = self._sources.find("backup", _ref(ref, "backup"), owned_only=True)
        with step("backup_delete", backup.name or backup.id):
            self._backups.delete(backup, self.backup_timeout)
        LOG.info("deleted backup %s (%s) of volume %s", backup.name, backup.id, backup.volume_name)
        return backup

    def restore(self, ref, name, overwrite, create):
        """Put backup `ref` into volume `name`. A volume that does not exist is
        made from the backup (`create(name, options)`: the service's Create);
        an existing one is overwritten only with `overwrite`, and only while no
        host uses it."""
        validate_volume_name(name)
        backup = self._sources.find("backup", _ref(ref, "backup"))
        existing = self._backend.find(name)
        if existing is None:
            vol = create(name, {"backend": "cinder", "backup": backup.id})
            return Restored(name, vol.id, backup.id, created=True)
        if not overwrite:
            raise Conflict(
                f"volume {name!r} exists; restoring backup {backup.name!r} into it would replace all its data. "
                "Pass --overwrite to do so (no host may use it), or restore into a new name"
            )
        with self._lock(name):
            vol = self._owned_volume(name, "restore into")
            on_this_host = self._state.host_volume(name) is not None
            if on_this_host or vol.attachments or vol.status != "available":
                raise Conflict(
                    f"volume {name!r} is {vol.status}" + (" and on this host" if on_this_host else "")
                    + "; a backup is restored only into a volume no host uses: stop its containers everywhere"
                )
            if backup.size_gb > vol.size_gb:
                raise InvalidInput(
                    f"backup {backup.name!r} is {backup.size_gb} GiB, volume {name!r} only {vol.size_gb} GiB; "
                    f"extend the volume first (`fuxi extend {name} {backup.size_gb}`) or restore into a new name"
                )
            with step("restore", name):
                self._backups.restore(backup, vol.id)
                restored = self._backups.wait_restored(backup, self._backend.get, vol.id, self.backup_timeout)
            # The data, and so its file system, is the backup's now; the rest of the
            # metadata stays the volume's own (Cinder put the backed-up volume's in its place).
            fstype = backup.metadata.get(FSTYPE_KEY)
            metadata = {k: v for k, v in vol.metadata.items() if k != FSTYPE_KEY}
            metadata[SOURCE_KEY] = SourceRef("backup", backup.id).record()
            if fstype:
                metadata[FSTYPE_KEY] = fstype
            self._backend.keep_only_metadata(restored, metadata)
            LOG.info("restored backup %s (%s) into volume %s (%s)", backup.name, backup.id, name, vol.id)
            return Restored(name, vol.id, backup.id, created=False)

    # -- clones -----------------------------------------------------------------

    @contextlib.contextmanager
    def source_frozen(self, spec: VolumeSpec):
        """Around the making of a volume from another volume (`spec.source`): that
        volume frozen, when it is mounted here. Held by the source's lock, which
        is taken after the new name's (a volume never is its own source)."""
        source = spec.source
        if source is None or source.kind != "volume":
            yield
            return
        vol = self._sources.find("volume", source.ref)
        name = vol.name if vol.owned else None
        if name is None:
            if vol.attachments:
                raise Conflict(
                    f"volume {source.ref!r} is {vol.status} and not fuxi's; fuxi copies an attached volume "
                    "only when it can freeze its file system: detach it, or snapshot it where it is mounted"
                )
            yield
            return
        with self._lock(name):
            vol = self._backend.get(vol.id)
            with self._consistent(name, vol, self._unfrozen_clones, "clone") as frozen:
                if not frozen:
                    yield
                    return
                # Writes wait while Cinder copies: as long as for a snapshot, at most.
                with deadline(self.freeze_timeout, f"a copy of volume {name!r} while its file system is frozen"):
                    yield

    # -- after a crash ------------------------------------------------------------

    def thaw_all(self) -> list[str]:
        """Thaw every file system fuxi mounted (a crash may have left one frozen,
        holding every write to it); the ones that were frozen."""
        thawed = []
        for hv in self._state.host_volumes():
            if hv.mountpoint and hv.phase == Phase.MOUNTED and self._fs.is_mounted(hv.mountpoint):
                try:
                    if self._fs.thaw(hv.mountpoint):
                        LOG.warning("volume %s: its file system was left frozen (a crash during a snapshot); "
                                    "thawed it", hv.name)
                        thawed.append(hv.name)
                except StorageError:
                    LOG.exception("volume %s: could not thaw %s", hv.name, hv.mountpoint)
        return thawed

    # -- helpers --------------------------------------------------------------------

    def _owned_volume(self, name, doing):
        vol = self._backend.find(name)
        if vol is None:
            raise NotFound(f"there is no Cinder volume called {name!r} to {doing} (fuxi snapshots and backs up "
                           "Cinder volumes; `fuxi volumes` lists them)")
        if not vol.owned or POOL_KEY in vol.metadata:
            raise Conflict(f"volume {name!r} ({vol.id}) is not fuxi's; fuxi will not {doing} it")
        return vol

    @contextlib.contextmanager
    def _consistent(self, name, vol, allow_unfrozen, doing):
        """Yields True with `name`'s file system frozen (mounted here and used by
        no other host), False when nothing needed freezing (on no host) or the
        caller accepted a crash-consistent copy; else Conflict."""
        hv = self._state.host_volume(name)
        mounted_here = hv is not None and hv.phase == Phase.MOUNTED and self._fs.is_mounted(hv.mountpoint)
        if hv is not None and not mounted_here:
            raise Conflict(f"volume {name!r} is half on this host ({hv.phase}); mount it again or remove it, "
                           f"then {doing} it")
        # Mounted here, one attachment is this host's (Cinder's and Nova's ids of
        # it need not match): any more are other hosts' (a multiattach volume).
        elsewhere = len(vol.attachments) > (1 if mounted_here else 0)
        if elsewhere and not allow_unfrozen:
            raise Conflict(
                f"volume {name!r} is in use on another host, where fuxi here cannot freeze its file system; "
                f"take the {doing} on that host, or accept a crash-consistent copy (--crash-consistent)"
            )
        if not mounted_here or elsewhere:
            yield False
            return
        with step("freeze", name):
            self._fs.freeze(hv.mountpoint)
        LOG.info("volume %s: file system frozen for a %s", name, doing)
        try:
            crash_point("copy.frozen")
            yield True
        finally:
            self._thaw(name, hv.mountpoint)

    def _thaw(self, name, mountpoint) -> None:
        for attempt in range(_THAW_TRIES):
            try:
                self._fs.thaw(mountpoint)
                LOG.info("volume %s: file system thawed", name)
                return
            except StorageError:
                LOG.exception("volume %s: thawing %s failed (try %d of %d)", name, mountpoint, attempt + 1,
                              _THAW_TRIES)
                time.sleep(0.5)
        raise FilesystemError(
            f"volume {name!r}: its file system at {mountpoint} stays frozen, and every write to it waits; "
            f"run `fsfreeze --unfreeze {mountpoint}` (or restart fuxi-server, which thaws it)"
        )

    def _tags(self, vol, name) -> dict:
        tags = {OWNER_KEY: OWNER_VALUE, COPY_OF_KEY: name}
        if vol.fstype:
            tags[FSTYPE_KEY] = vol.fstype
        return tags

    @staticmethod
    def _taken(records, copy_name):
        """fuxi's snapshot or backup called `copy_name`, if any."""
        return next((r for r in records.list() if r.owned and r.name == copy_name), None)

    def _refuse_taken_name(self, records, noun, copy_name) -> None:
        taken = self._taken(records, copy_name)
        if taken is not None:
            raise Conflict(f"fuxi already has a {noun} called {copy_name!r} ({taken.id}); pick another name")

    def _drop_failed(self, records, record, error) -> None:
        """A copy that failed (or was not made in time) goes, if Cinder lets it."""
        try:
            current = records.get(record.id)
            if current.status in ("error", "available"):
                records.delete(current)
                return
        except StorageError:
            pass
        LOG.warning("%s %s (%s) is left in Cinder after: %s; delete it once Cinder is done with it",
                    records.noun, record.name, record.id, error)


def _owned_of(records, name) -> list:
    mine = [r for r in records if r.owned and (name is None or r.volume_name == name)]
    return sorted(mine, key=lambda r: (r.created_at is None, r.created_at, r.name or ""))


def _ref(ref, noun) -> str:
    if not isinstance(ref, str) or not ref.strip() or len(ref) > _MAX_COPY_NAME:
        raise InvalidInput(f"name the {noun} by its name or id (1 to {_MAX_COPY_NAME} characters)")
    return ref.strip()


def _copy_name(noun, given, volume_name) -> str:
    """The name a new snapshot or backup gets: the one given, else the volume's
    name and the time (UTC, to the second)."""
    if given is None:
        return f"{volume_name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    if not isinstance(given, str) or not given or len(given) > _MAX_COPY_NAME or not given.isprintable():
        raise InvalidInput(f"a {noun} name is 1 to {_MAX_COPY_NAME} printable characters, not {given!r}")
    if is_cloud_id(given):
        raise InvalidInput(f"a {noun} name may not look like an id ({given!r}): fuxi finds them by name or id")
    return given
