"""How hosts share a Cinder volume: a multiattach volume's mode (one host at a
time, or several at once), this host's leases on the volumes it mounted, and
taking a volume over from a host whose lease ran out (preemption).

ext4 and xfs are no cluster file systems: two hosts mounting one at once
corrupt it. So a multiattach volume is mounted on one host at a time unless its
owner chose "shared" at Create; and a volume is taken from a host only when
that host is known to be gone (storage_core.leases).
"""

import logging

from storage_core.errors import Conflict, InvalidInput, StorageError
from storage_core.models import LEASE_KEY, CloudVolume, VolumeSpec
from storage_core.state import Phase

LOG = logging.getLogger(__name__)

# How long a take-over waits for Cinder to show the volume available.
_AVAILABLE_TIMEOUT = 55.0
# Why a multiattach volume not marked "shared" is mounted on one host at a time.
_EXCLUSIVE_WHY = "ext4 and xfs are no cluster file systems; create it with -o multiattach=shared to share it"


class BlockSharing:
    def __init__(self, backend, leases=None):
        """`backend`: Cinder's volumes (storage_core.backends.cinder); `leases`:
        this host's (storage_core.leases.Leases), None: none kept, nothing taken over."""
        self._backend = backend
        self._leases = leases

    def may_take_over(self, vol: CloudVolume) -> bool:
        return self._leases is not None and self._leases.may_preempt(vol)

    def mount_elsewhere_allowed(self, vol: CloudVolume, held_by) -> None:
        """`vol` is in use on another host and is multiattach or may be taken over:
        take it over where that is allowed and its holder's lease ran out, else
        Conflict (for a multiattach one, why it is one host at a time). Returns
        when this host may attach it."""
        if self.may_take_over(vol):
            self._preempt(vol, held_by)
            return
        raise Conflict(
            f"volume {vol.name!r} is attached to {held_by or 'another host'}; it is multiattach, but fuxi "
            f"mounts it on one host at a time ({_EXCLUSIVE_WHY}): unmount it there first"
        )

    def check_choice(self, vol: CloudVolume, spec: VolumeSpec) -> None:
        """A volume of a multiattach type must say how hosts share it (its file
        system is no cluster file system); another must not. Cinder decides from
        the type, so the new volume says which it is; a refused one, still
        blank, is deleted at once."""
        if vol.multiattach == bool(spec.multiattach):
            return
        type_name = vol.volume_type or "the default"
        if vol.multiattach:
            fstype = vol.fstype or "its file system"
            message = (
                f"volume type {type_name!r} is multiattach: several hosts may attach its volumes at once, but "
                f"{fstype} is no cluster file system, and two hosts mounting it at once corrupt it. Say how "
                "hosts share it: -o multiattach=exclusive (fuxi mounts it on one host at a time) or "
                "-o multiattach=shared (on several at once: only for readers, or writers you coordinate)"
            )
        else:
            message = (f"option multiattach is for volumes of a multiattach volume type; type {type_name!r} is "
                       "not one (drop the option, or pick a type whose extra spec multiattach is \"<is> True\")")
        self._backend.delete(vol)
        raise InvalidInput(message)

    def _preempt(self, vol: CloudVolume, held_by) -> None:
        """Take `vol` over from the host holding it, whose lease ran out (a dead or
        cut-off host): its attachments are deleted in Cinder, which also ends the
        backend's export to it, so it cannot write should it come back."""
        lease = self._leases.run_out(vol, held_by)
        if any(a.server_id for a in vol.attachments):
            raise Conflict(
                f"volume {vol.name!r} is attached to Nova server(s) {held_by}; fuxi takes over only volumes a "
                "host attached itself: detach it with `openstack server remove volume`"
            )
        LOG.warning("PREEMPTING volume %s (%s): %s held it and its lease ran out at %s; deleting its "
                    "attachment(s) %s", vol.name, vol.id, lease.holder, lease.expires,
                    ", ".join(a.attachment_id for a in vol.attachments))
        for attachment in vol.attachments:
            self._backend.delete_attachment(attachment.attachment_id)
        self._backend.wait_for_status(vol.id, "available", _AVAILABLE_TIMEOUT)

    def renew_leases(self, held) -> None:
        """Renew this host's lease on each volume it has mounted that another host
        may take over (`held`: (HostVolume, the catalog's record or None) pairs).
        Shared multiattach volumes have no single holder to take over from."""
        for hv, vol in held:
            if hv.backend == "cinder" and hv.phase == Phase.MOUNTED and vol is not None and self._leased(vol):
                try:
                    self._backend.update_metadata(hv.volume_id, {LEASE_KEY: self._leases.fresh()}, ())
                except StorageError as exc:
                    LOG.warning("volume %s: renewing this host's lease failed: %s", hv.name, exc)

    def _leased(self, vol: CloudVolume) -> bool:
        """Only a volume another host may take over carries a lease: one cloud write
        per mount and per renewal that no other volume pays."""
        return self.may_take_over(vol) and not vol.shared_between_hosts

    def take_lease(self, vol: CloudVolume) -> None:
        if self._leased(vol):
            self._backend.update_metadata(vol.id, {LEASE_KEY: self._leases.fresh()}, ())

    def refuse_racing_host(self, vol: CloudVolume, name) -> None:
        """A multiattach volume mounted one host at a time, attached here: if
        another host attached it at the same time (both saw it available), this
        host gives way before anything is mounted. Of two racing hosts, the one
        that lists the attachments last sees both and gives way; when both do,
        neither mounts and Docker's next try settles it."""
        live = [a for a in self._backend.attachment_summaries(volume_id=vol.id) if a["status"] != "detached"]
        if len(live) > 1:
            raise Conflict(
                f"volume {name!r}: another host attached it at the same moment; it is multiattach, but fuxi "
                f"mounts it on one host at a time ({_EXCLUSIVE_WHY}): this host let go; try again"
            )
