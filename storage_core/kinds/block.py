"""Cinder volumes: attached to this host (bare metal or through Nova), formatted
only when blank, mounted."""

import dataclasses

from storage_core.errors import Conflict
from storage_core.kinds import refuse_differences
from storage_core.models import CloudVolume, VolumeSpec
from storage_core.options import parse_volume_options
from storage_core.state import HostVolume, Phase
from storage_core.timing import step

# Cinder statuses in which a volume can be attached to one more host.
_ATTACHABLE = ("available",)


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
        self._backend.delete(vol)

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
        with step("mkfs", name):
            fstype = self._fs.ensure_filesystem(attachment.device_path, vol.fstype or self._limits.default_fstype)
        with step("mount", name):
            self._fs.mount(attachment.device_path, mountpoint, fstype)
        return dataclasses.replace(hv, phase=Phase.MOUNTED)

    def take_off_host(self, hv: HostVolume) -> None:
        if hv.mountpoint:
            self._fs.unmount(hv.mountpoint)
        if hv.host_attachment is not None:
            self._attacher.detach(hv.host_attachment)

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
    """Who holds the volume's attachments, as well as the cloud tells."""
    return ", ".join(
        sorted({a.host_name or a.server_id or f"attachment {a.attachment_id}" for a in vol.attachments})
    )
