"""Cinder volumes: attached to this host (bare metal or through Nova), formatted
only when blank, mounted."""

import dataclasses
import logging

from storage_core.crashpoints import crash_point
from storage_core.errors import Conflict, FilesystemError, InvalidInput, NotFound
from storage_core.kinds import check_new_size, refuse_differences, refuse_other_adoption
from storage_core.kinds.block_sharing import BlockSharing
from storage_core.models import (
    ADOPTED_FROM_KEY,
    FSTYPE_KEY,
    MULTIATTACH_KEY,
    OWNER_KEY,
    OWNER_VALUE,
    POOL_KEY,
    PREEMPT_KEY,
    SOURCE_KEY,
    CloudVolume,
    SourceRef,
    VolumeSpec,
    holder_of,
)
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
GIB = 1024**3
# Cinder statuses in which an existing volume can be adopted (`volume_id`): nobody
# else may be using it, or its file system could be mounted twice.
_ADOPTABLE = ("available",)


def fuxi_keys(metadata) -> list[str]:
    """The metadata keys fuxi put on a volume: its ownership tag, its file
    system, the adoption record and every pool tag (all named fuxi_*)."""
    return [k for k in metadata if k in (OWNER_KEY, FSTYPE_KEY) or k.startswith("fuxi_")]


class CinderVolumes:
    name = "cinder"
    noun = "volume"

    def __init__(self, backend, attacher, filesystems, limits, claims=None, sources=None, leases=None,
                 binds_mounts=False):
        """`binds_mounts`: the caller binds each volume's mount elsewhere on this
        host (a CSI node: staging and pod paths), so a bind may outlive the mount."""
        self._backend = backend
        self._binds_mounts = binds_mounts
        # Multiattach modes, this host's leases (storage_core.leases; None: none kept,
        # nothing taken over) and preemption.
        self._sharing = BlockSharing(backend, leases)
        # Where a volume made from a snapshot, backup or volume gets its data
        # (storage_core.sources); None: only blank volumes are made.
        self._sources = sources
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

    def _resolver(self):
        if self._sources is None:
            raise InvalidInput("this fuxi makes only blank volumes (no snapshot or backup support configured)")
        return self._sources

    def find(self, name):
        return self._backend.find(name)

    def get(self, volume_id):
        return self._backend.get(volume_id)

    def list_owned(self):
        return self._backend.list_owned()

    def create(self, spec: VolumeSpec, mountpoint, journal) -> CloudVolume:
        """A ready pool volume when a pool serves the spec (a tier 3/4 one comes
        mounted at `mountpoint`, journaled); else a new volume. An empty pool
        is no error: the cold path is always there. With `adopt_volume_id`,
        that existing volume, adopted."""
        if spec.adopt_volume_id:
            return self.adopt(spec.adopt_volume_id, spec.name)
        if spec.source is not None:
            # A copy: never a pool volume (those are blank).
            spec = self._resolver().resolve(spec)
        elif self._claims is not None and spec.multiattach is None and not spec.preempt:
            claimed = self._claims.claim(spec, mountpoint, journal)
            if claimed is not None:
                return claimed
        with step("create", spec.name):
            vol = self._backend.create(spec)
        self._sharing.check_choice(vol, spec)
        return vol

    def adopt(self, volume_id, name) -> CloudVolume:
        """Make an existing, available volume fuxi's under `name`: renamed and
        tagged in one update, its old name kept in its metadata so that giving
        it back restores it. Its file system is detected at its first mount;
        it is never formatted.

        The update is made under Cinder's reservation (as a shared pool claim
        is), which Cinder grants to one caller only: of two hosts adopting the
        same volume at once, or a host adopting it while someone attaches it,
        exactly one goes ahead."""
        vol = self._adoptable(volume_id, name)
        if vol.owned:
            return vol  # adopted under this name already: a retry
        try:
            reservation = self._backend.reserve(volume_id)
            crash_point("adopt.reserved")
        except Conflict:
            raise Conflict(
                f"volume {vol.name!r} ({volume_id}) was taken by someone else while fuxi adopted it "
                "(Cinder refused to reserve it); only an available volume can be adopted"
            ) from None
        try:
            # Read again under the reservation: another host may have adopted it since.
            current = self._adoptable(volume_id, name, reserved=True)
            if not current.owned:
                metadata = {**current.metadata, OWNER_KEY: OWNER_VALUE, ADOPTED_FROM_KEY: current.name or ""}
                # A file system tag from its earlier life is not trusted: the first mount detects it.
                metadata.pop(FSTYPE_KEY, None)
                with step("adopt", name):
                    self._backend.rename_and_replace_metadata(volume_id, name, metadata)
                LOG.info("adopted Cinder volume %s (was %r) as %s", volume_id, current.name, name)
        finally:
            self._backend.release(reservation)
        return self._backend.get(volume_id)  # read after the release: its status is final

    def _adoptable(self, volume_id, name, reserved=False) -> CloudVolume:
        """The volume, if it may be adopted as `name` (an owned one only when it is
        `name` already); else NotFound or Conflict saying why not."""
        try:
            vol = self._backend.get(volume_id)
        except NotFound:
            raise NotFound(
                f"volume {volume_id} does not exist in this project's Cinder, so it cannot be adopted as "
                f"{name!r}; `openstack volume list` shows the ids"
            ) from None
        if vol.owned:
            if vol.name == name and POOL_KEY not in vol.metadata:
                return vol
            what = "a warm-pool volume" if POOL_KEY in vol.metadata else f"the fuxi volume {vol.name!r}"
            raise Conflict(
                f"volume {volume_id} is already {what}; fuxi will not adopt it again as {name!r}"
                + ("" if POOL_KEY in vol.metadata else "; use that name, or `fuxi release` it first")
            )
        if not reserved and vol.status not in _ADOPTABLE:
            held_by = where(vol)
            raise Conflict(
                f"volume {vol.name!r} ({volume_id}) is {vol.status}"
                + (f" (attached to {held_by})" if held_by else "")
                + f"; only an {' or '.join(_ADOPTABLE)} volume can be adopted: detach it first"
            )
        return vol

    def give_back(self, vol: CloudVolume) -> CloudVolume:
        """Forget a volume without deleting it: fuxi's tags go, and an adopted
        volume gets the name it had back (one made by fuxi keeps its name).
        Whatever attached it must be gone already."""
        original = vol.metadata.get(ADOPTED_FROM_KEY) if vol.adopted else vol.name
        dropped = set(fuxi_keys(vol.metadata))
        metadata = {k: v for k, v in vol.metadata.items() if k not in dropped}
        given = self._backend.rename_and_replace_metadata(vol.id, original or "", metadata)
        LOG.info("gave back Cinder volume %s as %r, not deleted", vol.id, original)
        return given

    def namesakes(self, vol: CloudVolume) -> list[CloudVolume]:
        """fuxi's other live volumes called vol.name: made by another host's
        Create of the same name at the same time (hosts share no lock)."""
        return [v for v in self._backend.named(vol.name)
                if v.id != vol.id and v.owned and v.status not in _GOING]

    def same_or_conflict(self, existing: CloudVolume, spec: VolumeSpec) -> CloudVolume:
        if spec.adopt_volume_id:
            refuse_other_adoption(self.noun, spec.name, existing.id, spec.adopt_volume_id)
            return existing
        differences = []
        if spec.source is not None:
            if not self._resolver().same_source(existing, spec.source):
                recorded = SourceRef.recorded_in(existing.metadata)
                differences.append(f"{'data from ' + str(recorded) if recorded else 'no source'} "
                                   f"(asked from {spec.source})")
            if spec.size_gb and existing.size_gb != spec.size_gb:
                differences.append(f"size {existing.size_gb} GiB (asked {spec.size_gb})")
        elif existing.size_gb != spec.size_gb:
            differences.append(f"size {existing.size_gb} GiB (asked {spec.size_gb})")
        if spec.source is None and (existing.fstype or self._limits.default_fstype) != spec.fstype:
            differences.append(f"fstype {existing.fstype} (asked {spec.fstype})")
        if spec.preempt and existing.metadata.get(PREEMPT_KEY) != "true":
            differences.append("preempt not set (asked true)")
        if spec.multiattach and existing.metadata.get(MULTIATTACH_KEY) != spec.multiattach:
            differences.append(f"multiattach {existing.metadata.get(MULTIATTACH_KEY) or 'not set'} "
                               f"(asked {spec.multiattach})")
        if spec.volume_type and existing.volume_type != spec.volume_type:
            differences.append(f"type {existing.volume_type} (asked {spec.volume_type})")
        if spec.availability_zone and existing.availability_zone != spec.availability_zone:
            differences.append(
                f"availability_zone {existing.availability_zone} (asked {spec.availability_zone})"
            )
        refuse_differences(self.noun, spec.name, differences)
        return existing

    def prepare_delete(self, vol: CloudVolume, doing="removing") -> None:
        if vol.attachments:
            raise Conflict(
                f"volume {vol.name!r} is attached to {where(vol)}; unmount it there before {doing} it"
            )

    def delete(self, vol: CloudVolume) -> None:
        if vol.adopted:
            # Adopted, not made, by fuxi: its data was someone's before; give it back whole.
            self.give_back(vol)
            return
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
        """Conflict when `vol` may not be put on this host now. A volume held by a
        host whose lease ran out is taken over first, where preemption is allowed."""
        # A multiattach volume shared on purpose may be attached here as well.
        if vol.status in _ATTACHABLE or (vol.shared_between_hosts and vol.status == "in-use"):
            return
        if vol.status == "in-use" and self._attacher.attached_here(vol):
            return  # attached to this very server by another (a CSI controller): the attacher takes it
        held_by = where(vol)
        if vol.status == "in-use" and (vol.multiattach or self._sharing.may_take_over(vol)):
            self._sharing.mount_elsewhere_allowed(vol, held_by)
            return
        raise Conflict(
            f"volume {vol.name!r} is {vol.status}"
            + (f" (attached to {held_by})" if held_by else "")
            + "; it can be mounted only when available"
            + (" or in-use" if vol.shared_between_hosts else "")
        )

    def renew_leases(self, held) -> None:
        self._sharing.renew_leases(held)

    def release_leftover_reservations(self) -> list[str]:
        return self._backend.release_leftover_reservations()

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
        if vol.multiattach and not vol.shared_between_hosts:
            self._sharing.refuse_racing_host(vol, name)
        if vol.adopted or vol.from_source:
            fstype = self._detect_filesystem(vol, name, attachment.device_path)
        else:
            with step("mkfs", name):
                fstype = self._fs.ensure_filesystem(attachment.device_path,
                                                    vol.fstype or self._limits.default_fstype)
        crash_point("mount.formatted")
        # Extended while on no host: the file system still has its old size.
        behind = self._fs.smaller_than_device(attachment.device_path, fstype)
        if behind:
            with step("growfs", name):
                behind = not self._fs.grow_unmounted(attachment.device_path, fstype)
        with step("mount", name):
            self._fs.mount(attachment.device_path, mountpoint, fstype)
        crash_point("mount.mounted")
        self._sharing.take_lease(vol)
        if behind:
            with step("growfs", name):
                self._fs.grow(attachment.device_path, mountpoint)
        return dataclasses.replace(hv, phase=Phase.MOUNTED)

    def _detect_filesystem(self, vol: CloudVolume, name, device) -> str:
        """The file system of an adopted volume, or of one made from a snapshot, a
        backup or another volume, as blkid finds it; recorded in its metadata.
        Never formatted: a device without a signature blkid knows may still
        hold someone's data (a raw database file, an encrypted disk)."""
        signatures = self._fs.probe(device)
        found = signatures.get("TYPE")
        if not found:
            source = SourceRef.recorded_in(vol.metadata)
            how = f"was made from {source}" if source else "was adopted"
            raise FilesystemError(
                f"volume {name!r} ({vol.id}) {how}, and fuxi never formats such a volume, but it "
                + (f"holds no file system ({', '.join(sorted(signatures))} found)" if signatures
                   else "holds no file system blkid knows")
                + ("; its source held none either (a volume never mounted is blank): remove it with "
                   "`docker volume rm`" if source else
                   "; give it back with `docker volume rm` and format it yourself, or create a new volume")
            )
        if found not in self._limits.allowed_fstypes:
            raise FilesystemError(
                f"volume {name!r} ({vol.id}) holds a {found} file system; fuxi mounts "
                f"{', '.join(self._limits.allowed_fstypes)}"
            )
        if vol.fstype != found:
            self._backend.update_metadata(vol.id, {FSTYPE_KEY: found}, ())
        return found

    def take_off_host(self, hv: HostVolume) -> None:
        # Asked only where binds are made: a mount of the same device is otherwise
        # another host's (a two-host test on one machine), and fuxi's unmount
        # path reads the mount table once less.
        lost_mount = self._binds_mounts and hv.phase == Phase.MOUNTED and hv.device_path and not (
            hv.mountpoint and self._fs.is_mounted(hv.mountpoint))
        if hv.mountpoint:
            self._fs.unmount(hv.mountpoint)
            crash_point("unmount.unmounted")
        elsewhere = self._fs.mounted_from(hv.device_path) if lost_mount else []
        if elsewhere:
            # Our mount went (the mount namespace that held it ended), but a bind
            # made from it outlived it and still writes to the device: detaching
            # would lose data.
            raise Conflict(
                f"volume {hv.name!r}: its device {hv.device_path} is still mounted at {', '.join(elsewhere)}; "
                "unmount it there first, fuxi does not detach a device in use"
            )
        if hv.host_attachment is not None:
            # Its lease stays in the metadata and runs out: only an in-use volume
            # is ever taken over, and the next holder writes its own.
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

    def extend(self, vol: CloudVolume, size_gb, hv: HostVolume | None, hosts_grow_themselves=False) -> CloudVolume:
        """Grow the volume to `size_gb` GiB in Cinder (online, at 3.42, when in
        use); when it is mounted here (`hv`), rescan its device and grow the
        mounted file system. Not on this host: only Cinder grows it, and the
        file system grows at its next mount (put_on_host). Asked again for the
        size the cloud already has, on a volume mounted here that is still
        smaller on this host (an extend interrupted after the cloud's part), it
        does the host's part. `hosts_grow_themselves`: the hosts it is attached to
        grow their device and file system when told (a CSI node's expand), so an
        attachment elsewhere is no reason to refuse."""
        if hv is not None and size_gb == vol.size_gb and self._fs.short_of(
                hv.device_path, vol.fstype or self._limits.default_fstype, size_gb * GIB):
            LOG.warning("volume %s is %d GiB in Cinder but less on this host: finishing an interrupted extend",
                        vol.name, size_gb)
            self._grow_here(vol, hv, size_gb)
            return vol
        check_new_size(self.noun, vol, size_gb, self._limits)
        held_here = 1 if hv is not None else 0
        if len(vol.attachments) > held_here and not hosts_grow_themselves:
            # Another host's device and file system would stay at the old size.
            raise Conflict(
                f"volume {vol.name!r} is attached to {where(vol)}; extend it on the host that mounts it "
                "(fuxi grows the file system only where it runs)"
            )
        with step("extend", vol.name):
            vol = self._backend.extend(vol, size_gb)
        if hv is not None:
            self._grow_here(vol, hv, size_gb)
        return vol

    def catch_up_here(self, vol: CloudVolume, hv: HostVolume) -> None:
        """The volume, mounted here, grew in Cinder from another host: rescan its
        device and grow the file system to the cloud's size (nothing when done)."""
        if self._fs.short_of(hv.device_path, vol.fstype or self._limits.default_fstype, vol.size_gb * GIB):
            self._grow_here(vol, hv, vol.size_gb)

    def _grow_here(self, vol, hv: HostVolume, size_gb) -> None:
        with step("rescan", vol.name):
            self._attacher.rescan(hv.host_attachment, size_gb * GIB)
        with step("growfs", vol.name):
            self._fs.grow(hv.device_path, hv.mountpoint)

    def status(self, vol: CloudVolume) -> dict:
        return {
            "volume_id": vol.id,
            "size_gb": vol.size_gb,
            # An adopted volume's file system is known from its first mount on.
            "fstype": vol.fstype or (None if vol.adopted or vol.from_source else self._limits.default_fstype),
            "cloud_status": vol.status,
            "attach_mode": self._attacher.mode,
            "volume_type": vol.volume_type,
            "availability_zone": vol.availability_zone,
            "adopted": vol.adopted,
            **({"multiattach": vol.metadata.get(MULTIATTACH_KEY, "exclusive")} if vol.multiattach else {}),
            **({"preempt": True} if vol.metadata.get(PREEMPT_KEY) == "true" else {}),
            **({"source": vol.metadata[SOURCE_KEY]} if vol.from_source else {}),
        }


def where(vol: CloudVolume) -> str:
    """Who holds the volume's attachments, as well as the cloud tells: the host
    (Cinder shows its name to admins; a fuxi host names itself in the device),
    else the server, else the attachment."""
    return ", ".join(sorted({
        a.host_name or holder_of(a) or a.server_id or f"attachment {a.attachment_id}" for a in vol.attachments
    }))
