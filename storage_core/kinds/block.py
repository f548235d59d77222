"""Cinder volumes: attached to this host (bare metal or through Nova), formatted
only when blank, mounted."""

import dataclasses
import logging

from storage_core.crashpoints import crash_point
from storage_core.errors import Conflict, NotFound
from storage_core.kinds import refuse_differences
from storage_core.models import OWNER_KEY, OWNER_VALUE, POOL_KEY, CloudVolume, VolumeSpec, holder_of
from storage_core.options import parse_volume_options
from storage_core.state import HostVolume, Phase
from storage_core.timing import step

LOG = logging.getLogger(__name__)

# Cinder statuses in which a volume can be attached to one more host.
_ATTACHABLE = ("available",)
# Statuses of a volume on its way out: no namesake to give way to.
_GOING = ("deleting", "error", "error_deleting")
# How long a Remove waits for a volume another host is deleting (Docker allows 60 s).
_GONE_TIMEOUT = 55.0


class CinderVolumes:
    name = "cinder"
    noun = "volume"

    def __init__(self, backend, attacher, filesystems, limits, claims=None):
        self._backend = backend
        self._attacher = attacher
        self._fs = filesystems
        self._limits = limits
        # The warm pool's claims (storage_core.pool.claims), or None: every create is cold.
        self._claims = claims

    @property
    def attach_mode(self) -> str:
        return self._attacher.mode

    def unavailable_reason(self):
        return None  # Cinder is what fuxi cannot run without

    def parse_options(self, name, options) -> VolumeSpec:
        return parse_volume_options(name, options, self._limits)

    # -- cloud records ----------------------------------------------------

    def find(self, name):
        return self._backend.find(name)

    def get(self, volume_id):
        return self._backend.get(volume_id)

    def list_owned(self):
        return self._backend.list_owned()

    def create(self, spec: VolumeSpec, mountpoint, journal) -> CloudVolume:
        """A ready pool volume when a pool serves the spec (a tier 3/4 one comes
        mounted at `mountpoint`, journaled); else a new volume. An empty pool
        is no error: the cold path is always there."""
        if self._claims is not None:
            claimed = self._claims.claim(spec, mountpoint, journal)
            if claimed is not None:
                return claimed
        with step("create", spec.name):
            return self._backend.create(spec)

    def namesakes(self, vol: CloudVolume) -> list[CloudVolume]:
        """fuxi's other live volumes called vol.name: made by another host's
        Create of the same name at the same time (hosts share no lock)."""
        return [v for v in self._backend.named(vol.name)
                if v.id != vol.id and v.owned and v.status not in _GOING]

    def same_or_conflict(self, existing: CloudVolume, spec: VolumeSpec) -> CloudVolume:
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
        refuse_differences(self.noun, spec.name, differences)
        return existing

    def prepare_delete(self, vol: CloudVolume) -> None:
        if vol.attachments:
            raise Conflict(
                f"volume {vol.name!r} is attached to {where(vol)}; unmount it there before removing it"
            )

    def delete(self, vol: CloudVolume) -> None:
        try:
            self._backend.delete(vol)
        except Conflict:
            # Another host's Remove of the same name may have been first: a
            # volume already being deleted is a Remove done, once it is gone.
            try:
                current = self._backend.get(vol.id)
            except NotFound:
                return
            if current.status != "deleting":
                raise
            self._backend.wait_gone(vol.id, _GONE_TIMEOUT)

    # -- this host ----------------------------------------------------------

    def check_mountable(self, vol: CloudVolume) -> None:
        # A multiattach volume in use elsewhere can be attached here as well.
        if vol.status in _ATTACHABLE or (vol.multiattach and vol.status == "in-use"):
            return
        held_by = where(vol)
        raise Conflict(
            f"volume {vol.name!r} is {vol.status}"
            + (f" (attached to {held_by})" if held_by else "")
            + "; it can be mounted only when available"
            + (" or in-use" if vol.multiattach else "")
        )

    def put_on_host(self, vol: CloudVolume, name, mountpoint, journal) -> HostVolume:
        # The intent first: a crash before the cloud's answer is journaled leaves
        # a record saying which volume may hold an attachment of ours.
        journal(HostVolume(name=name, volume_id=vol.id, phase=Phase.ATTACHING, backend=self.name,
                           mountpoint=mountpoint))
        crash_point("attach.intent_written")

        def journal_pending(pending):
            # Written before the host connects, so a crash leaves what to undo.
            journal(HostVolume(
                name=name, volume_id=pending.volume_id, phase=Phase.ATTACHING, backend=self.name,
                attachment_id=pending.attachment_id, connection_info=dict(pending.connection_info),
                mountpoint=mountpoint,
            ))

        with step("attach", name):
            attachment = self._attacher.attach(vol, journal_pending)
        hv = HostVolume(
            name=name, volume_id=vol.id, phase=Phase.ATTACHED, backend=self.name,
            attachment_id=attachment.attachment_id, connection_info=dict(attachment.connection_info),
            device_path=attachment.device_path, mountpoint=mountpoint,
        )
        journal(hv)
        crash_point("mount.attached")
        with step("mkfs", name):
            fstype = self._fs.ensure_filesystem(attachment.device_path, vol.fstype or self._limits.default_fstype)
        crash_point("mount.formatted")
        with step("mount", name):
            self._fs.mount(attachment.device_path, mountpoint, fstype)
        crash_point("mount.mounted")
        return dataclasses.replace(hv, phase=Phase.MOUNTED)

    def take_off_host(self, hv: HostVolume) -> None:
        if hv.mountpoint:
            self._fs.unmount(hv.mountpoint)
            crash_point("unmount.unmounted")
        if hv.host_attachment is not None:
            self._attacher.detach(hv.host_attachment)
        else:
            # Only the intent was journaled: the cloud may still have made the attachment.
            for volume_id, attachment_id in self._attacher.host_attachments(hv.volume_id):
                LOG.warning("volume %s: releasing attachment %s, which a crash kept out of the journal",
                            hv.name, attachment_id)
                self._attacher.release_leftover(volume_id, attachment_id)

    def host_leftovers(self, held_volume_ids) -> list[tuple[str, str, str]]:
        """(volume id, attachment id, volume name) of this host's attachments of
        fuxi's volumes other than `held_volume_ids` (those the journal or the pool
        ledger names). Pool volumes are the pool's to recover; volumes fuxi does
        not own are never touched."""
        leftovers = []
        for volume_id, attachment_id in self._attacher.host_attachments():
            if volume_id in held_volume_ids:
                continue
            try:
                vol = self._backend.get(volume_id)
            except NotFound:
                continue
            if vol.metadata.get(OWNER_KEY) != OWNER_VALUE or POOL_KEY in vol.metadata:
                continue
            leftovers.append((volume_id, attachment_id, vol.name))
        return leftovers

    def release_leftover(self, volume_id, attachment_id) -> None:
        self._attacher.release_leftover(volume_id, attachment_id)

    def status(self, vol: CloudVolume) -> dict:
        return {
            "volume_id": vol.id,
            "size_gb": vol.size_gb,
            "fstype": vol.fstype or self._limits.default_fstype,
            "cloud_status": vol.status,
            "attach_mode": self._attacher.mode,
            "volume_type": vol.volume_type,
            "availability_zone": vol.availability_zone,
        }


def where(vol: CloudVolume) -> str:
    """Who holds the volume's attachments, as well as the cloud tells: the host
    (Cinder shows its name to admins; a fuxi host names itself in the device),
    else the server, else the attachment."""
    return ", ".join(sorted({
        a.host_name or holder_of(a) or a.server_id or f"attachment {a.attachment_id}" for a in vol.attachments
    }))
