"""VolumeService: the whole life of a volume on this host, idempotent at every step.

Callers (fuxi's Docker API, a CSI driver) translate their protocol into these
calls. Every call that changes a volume holds that volume's lock; mounts are
counted per (name, caller id) in durable state; the volume is attached at its
first mount and detached at its last unmount.
"""

import dataclasses
import logging
import os

from oslo_concurrency import lockutils

from storage_core.errors import Conflict, InvalidInput, NotFound, NotOwned, StorageError
from storage_core.models import OWNER_KEY, OWNER_VALUE, CloudVolume, VolumeInfo
from storage_core.names import validate_volume_name
from storage_core.options import parse_create_options
from storage_core.state import HostVolume, Phase

LOG = logging.getLogger(__name__)

# Cinder statuses in which a volume can be attached to one more host.
_ATTACHABLE = ("available",)


def _not_owned(vol: CloudVolume, doing: str) -> NotOwned:
    return NotOwned(
        f"volume {vol.name!r} ({vol.id}) exists in the cloud but was not created by fuxi "
        f"(no {OWNER_KEY}={OWNER_VALUE} metadata), so fuxi will not {doing} it; "
        "pick another name or manage it outside fuxi"
    )


class VolumeService:
    def __init__(self, backend, attacher, filesystems, state, mount_root, limits, lock_dir):
        self._backend = backend
        self._attacher = attacher
        self._fs = filesystems
        self._state = state
        self._mount_root = mount_root
        self._limits = limits
        self._lock_dir = lock_dir
        os.makedirs(mount_root, exist_ok=True)
        os.makedirs(lock_dir, exist_ok=True)

    def _lock(self, name):
        # One lock per volume name, held across processes sharing the state dir.
        return lockutils.lock(f"volume-{name}", external=True, lock_path=self._lock_dir)

    def mountpoint_for(self, name) -> str:
        return os.path.join(self._mount_root, name)

    # -- lifecycle ------------------------------------------------------

    def create(self, name, options=None) -> CloudVolume:
        spec = parse_create_options(name, options, self._limits)
        with self._lock(name):
            existing = self._backend.find(name)
            vol = self._same_or_conflict(existing, spec) if existing else self._backend.create(spec)
            self._state.remember_volume(vol)
            return vol

    def _same_or_conflict(self, existing, spec) -> CloudVolume:
        if not existing.owned:
            raise _not_owned(existing, "reuse")
        differences = []
        if existing.size_gb != spec.size_gb:
            differences.append(f"size {existing.size_gb} GiB (asked {spec.size_gb})")
        if (existing.fstype or self._limits.default_fstype) != spec.fstype:
            differences.append(f"fstype {existing.fstype} (asked {spec.fstype})")
        if spec.volume_type and existing.volume_type != spec.volume_type:
            differences.append(f"type {existing.volume_type} (asked {spec.volume_type})")
        if spec.availability_zone and existing.availability_zone != spec.availability_zone:
            differences.append(
                f"availability_zone {existing.availability_zone} (asked {spec.availability_zone})"
            )
        if differences:
            raise Conflict(
                f"volume {spec.name!r} already exists with {', '.join(differences)}; "
                "remove it first or create it with the same options"
            )
        return existing

    def remove(self, name) -> None:
        validate_volume_name(name)
        with self._lock(name):
            mounts = self._state.mount_count(name)
            if mounts:
                raise Conflict(
                    f"volume {name!r} is still mounted {mounts} time(s) on this host; "
                    "stop the containers using it first"
                )
            vol = self._backend.find(name)
            if vol is None:
                self._release_host(name)
                self._state.forget_volume(name)
                return
            if not vol.owned:
                raise _not_owned(vol, "delete")
            if self._release_host(name):
                vol = self._backend.get(vol.id)  # our leftover attachment just went
            if vol.attachments:
                raise Conflict(
                    f"volume {name!r} is attached to {_where(vol)}; unmount it there before removing it"
                )
            self._backend.delete(vol)
            self._state.forget_volume(name)
            LOG.info("removed volume %s (%s)", name, vol.id)

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
                hv = self._attach_and_mount(name)
            total = self._state.add_mount(name, caller_id)
            LOG.info("volume %s mounted for %s (%d live mounts)", name, caller_id, total)
            return hv.mountpoint

    def _find_owned(self, name, doing) -> CloudVolume:
        """Look `name` up in the cloud: ours, or NotFound / NotOwned.

        Writes nothing locally: Get, called before every Create, uses it too.
        """
        vol = self._backend.find(name)
        if vol is None:
            raise NotFound(f"volume {name!r} does not exist; create it first")
        if not vol.owned:
            raise _not_owned(vol, doing)
        return vol

    def _attachable_volume(self, name) -> CloudVolume:
        """Look the volume up in the cloud and check that it may be attached here."""
        try:
            vol = self._find_owned(name, "attach")
        except NotFound:
            self._state.forget_volume(name)
            raise
        self._state.remember_volume(vol)
        # A multiattach volume in use elsewhere can be attached here as well.
        if vol.status not in _ATTACHABLE and not (vol.multiattach and vol.status == "in-use"):
            where = _where(vol)
            raise Conflict(
                f"volume {name!r} is {vol.status}"
                + (f" (attached to {where})" if where else "")
                + "; it can be mounted only when available"
                + (" or in-use" if vol.multiattach else "")
            )
        return vol

    def _attach(self, name, journal):
        """Attach the volume named `name`; return (volume, host attachment).

        A volume this host created or saw is attached by its remembered id,
        saving a lookup; if the cloud refuses (gone, or not available), the
        volume is looked up afresh so the answer says why.
        """
        vol = self._state.known_volume(name)
        if vol is not None:
            try:
                return vol, self._attacher.attach(vol, journal)
            except (NotFound, Conflict) as exc:
                LOG.info("volume %s: attach by remembered id failed (%s); looking it up", name, exc)
        vol = self._attachable_volume(name)
        return vol, self._attacher.attach(vol, journal)

    def _attach_and_mount(self, name) -> HostVolume:
        mountpoint = self.mountpoint_for(name)

        def journal(pending):
            # Written before the host connects, so a crash leaves what to undo.
            self._state.save_host_volume(
                HostVolume(
                    name=name,
                    volume_id=pending.volume_id,
                    phase=Phase.ATTACHING,
                    attachment_id=pending.attachment_id,
                    connection_info=dict(pending.connection_info),
                    mountpoint=mountpoint,
                )
            )

        vol, attachment = self._attach(name, journal)
        hv = HostVolume(
            name=name,
            volume_id=vol.id,
            phase=Phase.ATTACHED,
            attachment_id=attachment.attachment_id,
            connection_info=dict(attachment.connection_info),
            device_path=attachment.device_path,
            mountpoint=mountpoint,
        )
        self._state.save_host_volume(hv)
        try:
            fstype = self._fs.ensure_filesystem(attachment.device_path, vol.fstype or self._limits.default_fstype)
            self._fs.mount(attachment.device_path, mountpoint, fstype)
        except StorageError:
            self._teardown(hv)
            raise
        hv = dataclasses.replace(hv, phase=Phase.MOUNTED)
        self._state.save_host_volume(hv)
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
                LOG.info("volume %s unmounted for %s (%d still live)", name, caller_id, remaining)
                return
            self._release_host(name)

    def _release_host(self, name) -> bool:
        hv = self._state.host_volume(name)
        if hv is None:
            return False
        self._teardown(hv)
        return True

    def _teardown(self, hv: HostVolume) -> None:
        """Undo whatever this host holds for the volume, in reverse order."""
        if hv.mountpoint:
            self._fs.unmount(hv.mountpoint)
        if hv.host_attachment is not None:
            self._attacher.detach(hv.host_attachment)
        self._state.forget_host_volume(hv.name)
        if hv.mountpoint:
            try:
                os.rmdir(hv.mountpoint)
            except OSError:
                pass
        LOG.info("volume %s released from this host", hv.name)

    # -- queries --------------------------------------------------------

    def path(self, name) -> str | None:
        validate_volume_name(name)
        hv = self._state.host_volume(name)
        if hv and hv.phase == Phase.MOUNTED and self._state.mount_count(name):
            return hv.mountpoint
        if self._backend.find(name) is None:
            raise NotFound(f"volume {name!r} does not exist")
        return None

    def get(self, name) -> VolumeInfo:
        validate_volume_name(name)
        return self._info(self._find_owned(name, "manage"))

    def list(self) -> list[VolumeInfo]:
        return [self._info(v) for v in self._backend.list_owned()]

    def _info(self, vol: CloudVolume) -> VolumeInfo:
        hv = self._state.host_volume(vol.name)
        mounts = self._state.mount_count(vol.name)
        mounted = bool(hv and hv.phase == Phase.MOUNTED and mounts)
        return VolumeInfo(
            name=vol.name,
            mountpoint=hv.mountpoint if mounted else None,
            created_at=vol.created_at,
            status={
                "volume_id": vol.id,
                "size_gb": vol.size_gb,
                "fstype": vol.fstype or self._limits.default_fstype,
                "cloud_status": vol.status,
                "attached": bool(hv and hv.phase in (Phase.ATTACHED, Phase.MOUNTED)),
                "attach_mode": self._attacher.mode,
                "mounts": mounts,
                "volume_type": vol.volume_type,
                "availability_zone": vol.availability_zone,
            },
        )


def _where(vol: CloudVolume) -> str:
    """Who holds the volume's attachments, as well as the cloud tells."""
    return ", ".join(
        sorted({a.host_name or a.server_id or f"attachment {a.attachment_id}" for a in vol.attachments})
    )


def _caller(caller_id) -> str:
    # Docker always sends an ID; a caller without one still gets a distinct, countable key.
    if caller_id is None or caller_id == "":
        return "-"
    if not isinstance(caller_id, str) or len(caller_id) > 1024 or not caller_id.isprintable():
        raise InvalidInput("the caller ID must be a printable string of at most 1024 characters")
    return caller_id
