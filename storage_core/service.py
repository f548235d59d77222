"""VolumeService: the whole life of a volume on this host, idempotent at every step.

Callers (fuxi's Docker API, a CSI driver) translate their protocol into these
calls. A volume lives in one backend (a Cinder volume or a Manila share, see
storage_core.kinds); what every backend shares is kept here: every call that
changes a volume holds that volume's lock; mounts are counted per (name,
caller id) in durable state; the volume is put on this host at its first
mount and taken off at its last unmount; what is not ours is never touched.
"""

import contextlib
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping

from storage_core.crashpoints import crash_point
from storage_core.errors import AttachRefused, AttachUnanswered, Conflict, InvalidInput, NotFound, NotOwned, StorageError
from storage_core.models import ADOPTED_FROM_KEY, OWNER_KEY, OWNER_VALUE, VolumeInfo, holder_of
from storage_core.locks import volume_lock
from storage_core.names import validate_volume_name
from storage_core.options import split_backend
from storage_core.pool.claims import CLAIMED_FROM_KEY
from storage_core.reconcile import HostReconciler
from storage_core.request_context import in_this_context
from storage_core.state import HostVolume, Phase

LOG = logging.getLogger(__name__)

# A counted mount is judged stale only this long after it was counted: the
# caller's bind mount (a container starting) follows the Mount's answer.
STALE_MOUNT_GRACE = 60.0
# Creates of one name racing on several hosts: how often a tie is tried again.
_SETTLE_ATTEMPTS = 3


def _not_owned(kind, vol, doing: str) -> NotOwned:
    return NotOwned(
        f"{kind.noun} {vol.name!r} ({vol.id}) exists in {kind.name.capitalize()} but was not "
        f"created by fuxi (no {OWNER_KEY}={OWNER_VALUE} metadata), so fuxi will not {doing} it; "
        "pick another name or manage it outside fuxi"
    )


@dataclass(frozen=True)
class VolumeDetails:
    """describe()'s answer: get()'s VolumeInfo and what an operator asks next."""

    info: VolumeInfo
    volume_id: str
    # The cloud's metadata of the volume, fuxi's tags included.
    metadata: Mapping[str, str]
    # The cloud's attachments ({attachment_id, host, server_id}), every host's.
    cloud_attachments: tuple = ()
    # What this host holds of it ({phase, attachment_id, device_path, mountpoint}), or None.
    host: Mapping | None = None
    # {caller id: live mounts} on this host.
    mount_callers: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Released:
    """release()'s answer: what fuxi let go of, and the name it has in the cloud now."""

    name: str
    backend: str
    volume_id: str
    adopted: bool
    # The cloud's name of it now: the name it had before adoption, else `name`.
    cloud_name: str | None


class VolumeService:
    def __init__(self, kinds, filesystems, state, mount_root, lock_dir, default_backend=None, pools=None,
                 mount_users=None, stale_mount_grace=STALE_MOUNT_GRACE, copies=None, servers=None):
        """`kinds`: the enabled volume kinds (storage_core.kinds); `default_backend`
        the one a create without `backend` uses (default: the first); `pools`: the
        warm pool's keeper (storage_core.pool.keeper), if any pool is configured;
        `mount_users` (storage_core.mount_users.MountUsers) tells whether any mount
        namespace still holds a volume: counts older than `stale_mount_grace` s
        that none holds are dropped (None: counts are only ever uncounted);
        `copies` (storage_core.copies.VolumeCopies): snapshots, backups and
        restores of Cinder volumes, and a clone's source frozen (None: none);
        `servers` (storage_core.attach.servers.ServerAttachments): Cinder volumes
        attached to other Nova servers (None: not offered)."""
        self.pools = pools
        self._servers = servers
        self.copies = copies
        self._mount_users = mount_users
        self._stale_mount_grace = stale_mount_grace
        self._kinds = {kind.name: kind for kind in kinds}
        self._default = default_backend or next(iter(self._kinds))
        self._fs = filesystems
        self._state = state
        self._mount_root = mount_root
        self._lock_dir = lock_dir
        # Lookups of one name in several backends run side by side.
        self._lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        # Get, Path and List answer from the local catalog (state's known volumes),
        # refreshed from the cloud in the background and written on every change.
        # A refresh whose listing overlapped a change here is dropped: it could
        # bring back a volume just removed.
        self._catalog_lock = threading.Lock()
        self._catalog_changes = 0
        self._catalog_loaded = False
        self._refresher = None
        self._leaser = None
        # Stops the catalog refresh and the lease renewal alike.
        self._stop_refresh = threading.Event()
        os.makedirs(mount_root, exist_ok=True)
        os.makedirs(lock_dir, exist_ok=True)

    # -- the local catalog ------------------------------------------------

    def _remember(self, backend, vol) -> None:
        with self._catalog_lock:
            self._catalog_changes += 1
            self._state.remember_volume(backend, vol)

    def _forget(self, name) -> None:
        with self._catalog_lock:
            self._catalog_changes += 1
            self._state.forget_volume(name)

    def refresh_catalog(self) -> bool:
        """Replace the local catalog with the cloud's lists; False when a change
        here overlapped the listing (the next refresh will do)."""
        with self._catalog_lock:
            seen = self._catalog_changes
        listed = {kind.name: kind.list_owned() for kind in self._usable_kinds()}
        with self._catalog_lock:
            if seen != self._catalog_changes:
                return False
            for backend, volumes in listed.items():
                self._state.replace_known(backend, volumes)
            self._catalog_loaded = True
        return True

    def start_refreshing(self, interval) -> None:
        """Refresh the catalog every `interval` seconds in a background thread."""
        def run():
            while not self._stop_refresh.wait(interval):
                try:
                    self.refresh_catalog()
                except StorageError as exc:
                    LOG.warning("refreshing the volume catalog failed: %s", exc)
                except Exception:
                    LOG.exception("refreshing the volume catalog failed")

        if self._refresher is None:
            self._refresher = threading.Thread(target=run, name="catalog-refresh", daemon=True)
            self._refresher.start()

    def start_leasing(self, interval) -> None:
        """Renew this host's leases on its mounted volumes every `interval` seconds
        (storage_core.leases), for the kinds that keep any."""
        renewers = [k.renew_leases for k in self._kinds.values() if getattr(k, "renew_leases", None)]

        def run():
            while not self._stop_refresh.wait(interval):
                held = [(hv, (self._state.known_volume(hv.name) or (None, None))[1])
                        for hv in self._state.host_volumes()]
                for renew in renewers:
                    try:
                        renew(held)
                    except Exception:
                        LOG.exception("renewing this host's leases failed")

        if renewers and self._leaser is None:
            self._leaser = threading.Thread(target=run, name="lease-renewal", daemon=True)
            self._leaser.start()

    def stop_refreshing(self) -> None:
        self._stop_refresh.set()

    def _lock(self, name):
        return volume_lock(self._lock_dir, name)

    def mountpoint_for(self, name) -> str:
        return os.path.join(self._mount_root, name)

    # -- which backend holds a name -------------------------------------

    def _usable_kinds(self):
        return [k for k in self._kinds.values() if k.unavailable_reason() is None]

    def _kind(self, backend):
        kind = self._kinds[backend]
        reason = kind.unavailable_reason()
        if reason:
            usable = ", ".join(k.name for k in self._usable_kinds())
            raise InvalidInput(f"option backend={backend} cannot be used: {reason}; usable: {usable}")
        return kind

    def _locate(self, name):
        """(kind, cloud record) of the volume called `name`, or (None, None).

        The backend this host last saw the name in is asked first and trusted;
        otherwise every backend is asked, and a name fuxi owns in two of them
        is a conflict nobody should guess about.
        """
        remembered = self._state.known_volume(name)
        kinds = self._usable_kinds()
        if remembered is not None and remembered[0] in self._kinds:
            kind = self._kinds[remembered[0]]
            record = kind.find(name) if kind in kinds else None
            if record is not None:
                return kind, record
            kinds = [k for k in kinds if k is not kind]
        found = [(k, r) for k, r in zip(kinds, self._find_in_each(kinds, name)) if r is not None]
        owned = [(k, r) for k, r in found if r.owned]
        if len(owned) > 1:
            raise Conflict(
                f"fuxi owns both {' and '.join(f'a {k.name.capitalize()} {k.noun} ({r.id})' for k, r in owned)} "
                f"named {name!r}; rename or remove one of them in the cloud"
            )
        return (owned or found or [(None, None)])[0]

    def _find_in_each(self, kinds, name) -> list:
        """kind.find(name) for each kind, asked at once: a new name costs one round trip."""
        if len(kinds) < 2:
            return [k.find(name) for k in kinds]
        # In the caller's context: the lookups carry its request id and keep to its deadline.
        futures = [self._lookups.submit(in_this_context(k.find), name) for k in kinds]
        return [f.result() for f in futures]

    # -- lifecycle ------------------------------------------------------

    def create(self, name, options=None):
        backend, rest = split_backend(name, options, self._default, tuple(self._kinds))
        kind = self._kind(backend)
        spec = kind.parse_options(name, rest)
        with self._lock(name):
            existing_kind, existing = self._locate(name)
            if existing is None:
                with self._source_frozen(spec):
                    vol = self._create_settled(kind, spec)
            elif not existing.owned:
                raise _not_owned(existing_kind, existing, "reuse")
            elif existing_kind is not kind:
                raise Conflict(
                    f"{name!r} already exists as a {existing_kind.name.capitalize()} {existing_kind.noun} "
                    f"({existing.id}); remove it first or create it with backend={existing_kind.name}"
                )
            else:
                vol = kind.same_or_conflict(existing, spec)
            self._remember(kind.name, vol)
            return vol

    def _create_settled(self, kind, spec):
        """Create `spec`, then settle with any other host that created the same
        name at the same time (hosts share no lock): of the volumes called the
        name, one stays.

        Each creator lists the name again after its create and gives way (removes
        its own, answers with the other) to a namesake created no later than its
        own. A strictly younger namesake's maker sees ours and gives way itself;
        of two that listed before the other's create, the later one sees the
        earlier. A tie (Cinder on MySQL keeps created_at to the second) makes
        both give way when both see each other: nothing is left, so each tries
        again after a random pause, which breaks the tie.
        """
        for attempt in range(_SETTLE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.5, 1.5))
            vol = kind.create(spec, self.mountpoint_for(spec.name), self._state.save_host_volume)
            crash_point("create.sent")
            namesakes = getattr(kind, "namesakes", None)
            first = [o for o in (namesakes(vol) if namesakes is not None else []) if not _younger(o, vol)]
            if not first:
                return vol
            LOG.warning("%s %s: another host made %s at the same time; removing ours (%s)",
                        kind.noun, spec.name, ", ".join(o.id for o in first), vol.id)
            hv = self._state.host_volume(spec.name)
            if hv is not None and hv.volume_id == vol.id:
                self._teardown(hv)  # a tier 3/4 pool volume comes mounted here
            kind.delete(vol)
            remaining = namesakes(vol)
            if remaining:
                return kind.same_or_conflict(min(remaining, key=_age), spec)
            LOG.warning("%s %s: the other host gave way too; creating it again", kind.noun, spec.name)
        raise Conflict(f"{kind.noun} {spec.name!r}: other hosts kept creating the same name at the same "
                       f"time; {_SETTLE_ATTEMPTS} tries did not settle it; try again")

    def _source_frozen(self, spec):
        """A volume copied from another one mounted here: that one's file system
        frozen meanwhile, so the copy is clean."""
        if self.copies is None or getattr(spec, "source", None) is None:
            return contextlib.nullcontext()
        return self.copies.source_frozen(spec)

    def remove(self, name) -> None:
        validate_volume_name(name)
        with self._lock(name):
            self._refuse_while_mounted(name, "first")
            kind, vol = self._locate(name)
            if vol is None:
                self._release_host(name)
                self._forget(name)
                return
            if not vol.owned:
                raise _not_owned(kind, vol, "delete")
            if self._release_host(name):
                vol = kind.get(vol.id)  # what this host held of it just went
            kind.prepare_delete(vol)
            kind.delete(vol)
            crash_point("remove.deleted")
            self._forget(name)
            LOG.info("removed %s %s (%s)", kind.noun, name, vol.id)

    def _refuse_while_mounted(self, name, when) -> None:
        """Conflict while live (not stale) mounts of `name` are counted on this host."""
        mounts = self._drop_stale_mounts(name)
        if mounts:
            raise Conflict(
                f"volume {name!r} is still mounted {mounts} time(s) on this host; "
                f"stop the containers using it {when}"
            )

    def release(self, name) -> Released:
        """Forget a volume without deleting it: fuxi's tags go, an adopted one gets
        the name it had back (one fuxi made keeps its name), and this host's
        catalog forgets it (other hosts' at their next refresh). Refused while
        mounted here or used by another host."""
        validate_volume_name(name)
        with self._lock(name):
            self._refuse_while_mounted(name, "before releasing it")
            kind, vol = self._locate(name)
            if vol is None:
                self._forget(name)
                raise NotFound(f"volume {name!r} does not exist; nothing to release")
            if not vol.owned:
                raise NotOwned(
                    f"{kind.noun} {name!r} ({vol.id}) is not fuxi's (no {OWNER_KEY}={OWNER_VALUE} "
                    "metadata); nothing to release"
                )
            if self._release_host(name):
                vol = kind.get(vol.id)  # what this host held of it just went
            kind.prepare_delete(vol, "releasing")
            kind.give_back(vol)
            self._forget(name)
            adopted = ADOPTED_FROM_KEY in vol.metadata
            cloud_name = (vol.metadata[ADOPTED_FROM_KEY] or None) if adopted else vol.name
            LOG.info("released %s %s (%s); it is %r in the cloud, not deleted", kind.noun, name, vol.id,
                     cloud_name)
            return Released(name, kind.name, vol.id, adopted, cloud_name)

    # -- mounts ---------------------------------------------------------

    def mount(self, name, caller_id) -> str:
        validate_volume_name(name)
        caller_id = _caller(caller_id)
        with self._lock(name):
            hv = self._state.host_volume(name)
            if not (hv and hv.phase == Phase.MOUNTED and self._fs.is_mounted(hv.mountpoint)):
                if hv is not None:
                    # A previous attach or mount did not finish (crash, reboot): undo
                    # what is left, then do it again from the start.
                    LOG.warning("volume %s: finishing interrupted %s state", name, hv.phase)
                    self._teardown(hv)
                hv = self._put_on_host(name)
            total = self._state.add_mount(name, caller_id)
            crash_point("mount.counted")
            LOG.info("volume %s mounted for %s (%d live mounts)", name, caller_id, total)
            return hv.mountpoint

    def _find_owned(self, name, doing):
        """(kind, record) of `name` if fuxi owns it, else NotFound / NotOwned.

        Writes nothing locally: Get, called before every Create, uses it too.
        """
        kind, vol = self._locate(name)
        if vol is None:
            raise NotFound(f"volume {name!r} does not exist; create it first")
        if not vol.owned:
            raise _not_owned(kind, vol, doing)
        return kind, vol

    def _mountable_volume(self, name):
        """Look the volume up in the cloud and check that it may be put on this host."""
        try:
            kind, vol = self._find_owned(name, "attach")
        except NotFound:
            self._forget(name)
            raise
        self._remember(kind.name, vol)
        kind.check_mountable(vol)
        return kind, vol

    def _put_on_host(self, name) -> HostVolume:
        """Attach (or grant) and mount `name`.

        A volume this host created or saw is tried by its remembered id,
        saving a lookup; if the cloud refuses (gone, or not available), it is
        looked up afresh so the answer says why.
        """
        mountpoint = self.mountpoint_for(name)
        remembered = self._state.known_volume(name)
        if remembered is not None and remembered[0] in self._kinds:
            kind = self._kinds[remembered[0]]
            try:
                return self._put_on_host_as(kind, remembered[1], name, mountpoint)
            except (NotFound, Conflict) as exc:
                LOG.info("volume %s: mount by remembered id failed (%s); looking it up", name, exc)
        kind, vol = self._mountable_volume(name)
        return self._put_on_host_as(kind, vol, name, mountpoint)

    def _put_on_host_as(self, kind, vol, name, mountpoint) -> HostVolume:
        try:
            hv = kind.put_on_host(vol, name, mountpoint, self._state.save_host_volume)
        except StorageError as exc:
            # Leave nothing half-done behind; if even that fails, the journal
            # keeps the record for the next mount or remove to finish.
            partial = self._state.host_volume(name)
            intent_only = partial is not None and partial.host_attachment is None
            if intent_only and isinstance(exc, AttachRefused):
                # The cloud said no: no attachment is ours. (A search for one would
                # find another host's, being made at the same time.)
                self._state.forget_host_volume(name)
            elif intent_only and isinstance(exc, AttachUnanswered):
                # The cloud may make the asked-for attachment later: the intent stays,
                # and the next Mount, Remove or start looks for it and lets it go.
                pass
            elif partial is not None:
                try:
                    self._teardown(partial)
                except StorageError:
                    LOG.exception("volume %s: could not undo a failed mount; will retry", name)
            raise
        self._state.save_host_volume(hv)
        crash_point("mount.state_written")
        return hv

    def unmount(self, name, caller_id) -> None:
        validate_volume_name(name)
        caller_id = _caller(caller_id)
        with self._lock(name):
            remaining = self._state.remove_mount(name, caller_id)
            if remaining is None:
                # Unmount is retried by callers; one we never counted changes nothing.
                LOG.warning("volume %s: unmount by %s, which holds no mount; ignored", name, caller_id)
                return
            if remaining:
                remaining = self._drop_stale_mounts(name)
            if remaining:
                LOG.info("volume %s unmounted for %s (%d still live)", name, caller_id, remaining)
                return
            crash_point("unmount.uncounted")
            self._release_host(name)

    def _drop_stale_mounts(self, name) -> int:
        """Drop counted mounts whose callers are gone; return the volume's count.

        A caller may vanish without uncounting (a container that died while its
        engine was down is never unmounted). When no other mount namespace holds
        the volume's file system, no container uses it: counts older than the
        grace are dropped, each logged. Call with the volume's lock held.
        """
        counted = self._state.mount_count(name)
        hv = self._state.host_volume(name)
        if not counted or self._mount_users is None or hv is None or hv.phase != Phase.MOUNTED:
            return counted
        cutoff = time.time() - self._stale_mount_grace
        stale = [c for c, since in self._state.mount_callers_since(name).items() if since <= cutoff]
        if not stale or self._mount_users.held_elsewhere(hv.mountpoint):
            return counted
        LOG.warning("volume %s: no mount namespace but this host's holds it; dropping the counted "
                    "mounts of %s, whose callers are gone", name, ", ".join(sorted(stale)))
        self._state.forget_mounts(name, stale)
        return self._state.mount_count(name)

    def _release_host(self, name) -> bool:
        hv = self._state.host_volume(name)
        if hv is None:
            return False
        self._teardown(hv)
        return True

    def _teardown(self, hv: HostVolume) -> None:
        """Undo whatever this host holds for the volume, in reverse order."""
        self._kinds[hv.backend].take_off_host(hv)
        self._state.forget_host_volume(hv.name)
        if hv.mountpoint:
            try:
                os.rmdir(hv.mountpoint)
            except OSError:
                pass
        LOG.info("volume %s released from this host", hv.name)

    # -- growing ------------------------------------------------------------

    def extend(self, name, size_gb, hosts_grow_themselves=False) -> "Extended":
        """Grow volume `name` to `size_gb` GiB. Mounted here: the cloud grows it
        (online where it allows), then the device is rescanned and the mounted
        file system grown, while containers keep using it. On no host: only
        the cloud grows it; the file system follows at its next mount. A share
        just grows in Manila (its mounts see the new size at once).
        Attached to another host, it is refused unless `hosts_grow_themselves`
        (that host is told and calls catch_up_here, as a CSI node does)."""
        validate_volume_name(name)
        with self._lock(name):
            kind, vol = self._find_owned(name, "extend")
            if not hasattr(kind, "extend"):
                raise InvalidInput(f"a {kind.name.capitalize()} {kind.noun} cannot be extended by fuxi")
            hv = self._state.host_volume(name)
            if hv is not None and not (hv.phase == Phase.MOUNTED and self._fs.is_mounted(hv.mountpoint)):
                raise Conflict(
                    f"{kind.noun} {name!r} is half on this host (an attach or mount did not finish, "
                    f"{hv.phase}); mount it again or remove it, then extend it"
                )
            old_size = vol.size_gb
            try:
                grown = kind.extend(vol, size_gb, hv, hosts_grow_themselves=hosts_grow_themselves)
            except StorageError:
                # The cloud may have grown it before the host's part failed: the catalog says so.
                try:
                    self._remember(kind.name, kind.get(vol.id))
                except StorageError:
                    pass
                raise
            self._remember(kind.name, grown)
            LOG.info("extended %s %s (%s) from %d to %d GiB%s", kind.noun, name, vol.id, old_size, grown.size_gb,
                     " while mounted here" if hv is not None else "")
            return Extended(name, kind.name, vol.id, old_size, grown.size_gb, mounted_here=hv is not None)

    def catch_up_here(self, name) -> int:
        """Volume `name`, mounted here, grew in the cloud from elsewhere: grow its
        device and file system here to the cloud's size; return that size (GiB)."""
        validate_volume_name(name)
        with self._lock(name):
            kind, vol = self._find_owned(name, "grow")
            hv = self._state.host_volume(name)
            if hv is None or hv.phase != Phase.MOUNTED or not self._fs.is_mounted(hv.mountpoint):
                raise Conflict(f"{kind.noun} {name!r} is not mounted on this host; there is nothing to grow here")
            catch_up = getattr(kind, "catch_up_here", None)
            if catch_up is not None:  # a share's mounts see its size by themselves
                catch_up(vol, hv)
            self._remember(kind.name, vol)
            return vol.size_gb

    # -- on another Nova server (a controller's side of the Nova path) -----

    def attach_to_server(self, name, server_id) -> None:
        """Attach Cinder volume `name` to Nova server `server_id` (not this host);
        the host that is that server mounts it later. Idempotent."""
        validate_volume_name(name)
        with self._lock(name):
            kind, vol = self._find_owned(name, "attach")
            self._require_servers(kind, name).attach(vol.id, server_id)

    def detach_from_server(self, name, server_id) -> None:
        """Detach Cinder volume `name` from Nova server `server_id`; a volume that
        is gone or not attached there is fine."""
        validate_volume_name(name)
        with self._lock(name):
            kind, vol = self._locate(name)
            if vol is None:
                return
            if not vol.owned:
                raise _not_owned(kind, vol, "detach")
            self._require_servers(kind, name).detach(vol.id, server_id)

    def _require_servers(self, kind, name):
        if self._servers is None or kind.name != "cinder":
            raise InvalidInput(
                f"{kind.noun} {name!r} is a {kind.name.capitalize()} {kind.noun}; only Cinder volumes are "
                "attached to Nova servers" if self._servers is not None else
                "attaching to a Nova server needs the cinder backend enabled")
        return self._servers

    # -- after a crash or a reboot ----------------------------------------

    def reconcile(self) -> list[str]:
        """Make this host's journal, its mounts and the cloud agree again; run
        before the first request. Returns the repairs made (each is logged)."""
        pool_volume_ids = self.pools.volume_ids() if self.pools is not None else ()
        # First: a file system a crash left frozen holds every write to it.
        thawed = self.copies.thaw_all() if self.copies is not None else []
        freed = [volume_id for kind in self._kinds.values()
                 for volume_id in getattr(kind, "release_leftover_reservations", list)()]
        repairs = HostReconciler(self._state, self._kinds, self._fs, self._lock, self._teardown,
                                 pool_volume_ids, self._drop_stale_mounts).run()
        return ([f"volume {name}: thawed its file system, left frozen" for name in thawed]
                + [f"volume {volume_id}: released a reservation a crash left held" for volume_id in freed]
                + repairs)

    # -- queries --------------------------------------------------------

    def path(self, name) -> str | None:
        validate_volume_name(name)
        hv = self._state.host_volume(name)
        if hv and hv.phase == Phase.MOUNTED and self._state.mount_count(name):
            return hv.mountpoint
        if self._state.known_volume(name) is None and self._locate(name)[1] is None:
            raise NotFound(f"volume {name!r} does not exist")
        return None

    def get(self, name) -> VolumeInfo:
        validate_volume_name(name)
        known = self._state.known_volume(name)
        if known is not None and known[0] in self._kinds:
            return self._info(self._kinds[known[0]], known[1])
        return self._info(*self._find_owned(name, "manage"))

    def list(self) -> list[VolumeInfo]:
        if not self._catalog_loaded:
            self.refresh_catalog()
        host_volumes = {hv.name: hv for hv in self._state.host_volumes()}
        mounts = self._state.mount_counts()
        return [self._info(self._kinds[backend], vol, host_volumes.get(vol.name), mounts.get(vol.name, 0))
                for backend, vol in self._state.known_volumes() if backend in self._kinds]

    def list_mountpoints(self) -> "list[tuple[str, str | None]]":
        """(name, mount point or None) of every volume: List without the status of each."""
        if not self._catalog_loaded:
            self.refresh_catalog()
        return self._state.known_mountpoints(tuple(self._kinds))

    def mount_counts(self) -> dict[str, int]:
        """Live mounts on this host per volume name (volumes without one left out); local only."""
        return self._state.mount_counts()

    def _info(self, kind, vol, hv=None, mounts=None) -> VolumeInfo:
        if mounts is None:
            hv, mounts = self._state.host_volume(vol.name), self._state.mount_count(vol.name)
        mounted = bool(hv and hv.phase == Phase.MOUNTED and mounts)
        return VolumeInfo(
            name=vol.name,
            mountpoint=hv.mountpoint if mounted else None,
            created_at=vol.created_at,
            status={
                "backend": kind.name,
                **kind.status(vol),
                "attached": bool(hv and hv.phase in (Phase.ATTACHED, Phase.MOUNTED)),
                "mounts": mounts,
                # Only on a volume a warm pool served: the pool's name.
                **({"pool": vol.metadata[CLAIMED_FROM_KEY]} if CLAIMED_FROM_KEY in vol.metadata else {}),
            },
        )

    # -- for operators ----------------------------------------------------

    def describe(self, name) -> VolumeDetails:
        """Everything known about one volume: the cloud's record read afresh (not
        the catalog), what this host holds of it and who mounts it here. Reads
        only; a name fuxi does not own is refused as by every other call."""
        validate_volume_name(name)
        kind, vol = self._find_owned(name, "inspect")
        hv = self._state.host_volume(name)
        callers = self._state.mount_callers(name)
        return VolumeDetails(
            info=self._info(kind, vol, hv, sum(callers.values())),
            volume_id=vol.id,
            metadata=dict(vol.metadata),
            cloud_attachments=tuple(
                {"attachment_id": a.attachment_id, "host": a.host_name or holder_of(a), "server_id": a.server_id}
                for a in getattr(vol, "attachments", ())  # shares have access rules, not attachments
            ),
            host=None if hv is None else {
                "phase": hv.phase, "attachment_id": hv.attachment_id,
                "device_path": hv.device_path, "mountpoint": hv.mountpoint,
            },
            mount_callers=callers,
        )

    def summary(self) -> dict:
        """How this service is set up: where it mounts, its backends (with why one
        cannot be used), how Cinder volumes reach the host, its pools. Lets a
        caller check that it talks to the service it means to."""
        cinder = self._kinds.get("cinder")
        return {
            "mount_root": self._mount_root,
            "backends": {name: kind.unavailable_reason() for name, kind in self._kinds.items()},
            "default_backend": self._default,
            "attach_mode": cinder.attach_mode if cinder is not None else None,
            "pools": [pool.name for pool in self.pools.pools] if self.pools is not None else [],
        }


@dataclass(frozen=True)
class Extended:
    """extend()'s answer. `mounted_here`: the file system was grown online on
    this host; else it grows at the volume's next mount (a share: nothing to grow)."""

    name: str
    backend: str
    volume_id: str
    old_size_gb: int
    new_size_gb: int
    mounted_here: bool


def _younger(vol, than) -> bool:
    """True when `vol` was created strictly after `than` (unknown times count as newest)."""
    if vol.created_at is None or than.created_at is None:
        return vol.created_at is None and than.created_at is not None
    return vol.created_at > than.created_at


def _age(vol):
    """Order of creation: created_at (unknown counts as newest), then id."""
    return (vol.created_at is None, vol.created_at or 0, vol.id)


def _caller(caller_id) -> str:
    # Docker always sends an ID; a caller without one still gets a distinct, countable key.
    if caller_id is None or caller_id == "":
        return "-"
    if not isinstance(caller_id, str) or len(caller_id) > 1024 or not caller_id.isprintable():
        raise InvalidInput("the caller ID must be a printable string of at most 1024 characters")
    return caller_id
