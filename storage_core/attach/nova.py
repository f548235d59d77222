"""Attach Cinder volumes to this host when it is a Nova instance: through Nova.

Nova attaches the volume to the server; the hypervisor then adds a disk to
the guest. Three parties, so three things to wait for, in order: Nova accepts
(journaled at once, so a crash leaves a record to undo), Cinder reports the
volume in-use for this server, and the disk shows up here under its serial.
If a later step fails, the volume is detached again before the error is
raised: a failed attach leaves nothing attached.
"""

import logging

from storage_core.crashpoints import crash_point
from storage_core.errors import CloudError, Conflict, NotFound, StorageError
from storage_core.models import CloudVolume, HostAttachment
from storage_core.waits import Clock, wait_until

LOG = logging.getLogger(__name__)

DRIVER_VOLUME_TYPE = "nova"
# Nova reserves the volume before it answers, so "available" while we wait
# for "in-use" means Nova gave up. A short grace covers clouds whose status
# lags the answer.
AVAILABLE_GRACE = 5.0


def _failed(status) -> bool:
    # error, error_attaching, error_detaching, error_deleting ...: Cinder will not move on by itself.
    return str(status).startswith("error")


class NovaAttacher:
    mode = "nova"

    def __init__(
        self, nova, cinder, devices, server_id, clock=None, in_use_timeout=50.0, detach_timeout=55.0,
        resizer=None,
    ):
        self._nova = nova
        self._cinder = cinder
        self._devices = devices
        self._server_id = server_id
        self._clock = clock or Clock()
        self._in_use_timeout = in_use_timeout
        self._detach_timeout = detach_timeout
        if resizer is None:
            from storage_core.attach.resize import DeviceResizer
            from storage_core.executor import Executor

            resizer = DeviceResizer(Executor())
        self._resizer = resizer

    def attach(self, volume: CloudVolume, journal) -> HostAttachment:
        """Attach `volume` to this instance; call journal(HostAttachment) once Nova accepted."""
        # Fresh from Cinder: the caller's copy may be a remembered one without status.
        current = self._cinder.get(volume.id)
        mine = [a for a in current.attachments if a.server_id == self._server_id]
        others = [a for a in current.attachments if a.server_id != self._server_id]
        if others and not current.multiattach:
            where = ", ".join(sorted({a.server_id or a.host_name or a.attachment_id for a in others}))
            raise Conflict(
                f"volume {current.name!r} ({current.id}) is attached to {where}; it is not a "
                "multiattach volume, so detach it there first"
            )
        if mine:
            # Already attached here: a CSI controller published it to this server,
            # or we stopped between Nova's answer and our journal. Take it as it is
            # instead of asking Nova twice.
            LOG.info("volume %s is already attached to this instance; using that attachment", current.id)
            attachment_id, nova_device = mine[0].attachment_id, None
        else:
            answer = self._nova.attach_volume(self._server_id, current.id, multiattach=current.multiattach)
            attachment_id, nova_device = answer.attachment_id, answer.device
            crash_point("attach.cloud_attached")
        pending = HostAttachment(
            current.id,
            # Nova before 2.89 names no attachment; the volume id is its key there.
            attachment_id or current.id,
            {"driver_volume_type": DRIVER_VOLUME_TYPE, "server_id": self._server_id, "nova_device": nova_device},
        )
        try:
            journal(pending)
            crash_point("attach.journaled")
            self._wait_in_use(current)
            device = self._devices.find(current.id, reported_device=nova_device)
        except Exception:
            # Anything (a full state disk too) must not leave the volume attached unrecorded.
            self._undo(pending)
            raise
        LOG.info("volume %s attached through Nova at %s", current.id, device)
        return HostAttachment(pending.volume_id, pending.attachment_id, pending.connection_info, device)

    def attached_here(self, volume: CloudVolume) -> bool:
        """Nova attached `volume` to this instance only (a CSI controller published it here)."""
        return bool(volume.attachments) and all(a.server_id == self._server_id for a in volume.attachments)

    def detach(self, attachment: HostAttachment) -> None:
        server_id = attachment.connection_info.get("server_id") or self._server_id
        self._nova.detach_volume(server_id, attachment.volume_id)
        self._wait_detached(attachment.volume_id, server_id, self._detach_timeout)
        crash_point("detach.deleted")
        LOG.info("volume %s detached from instance %s", attachment.volume_id, server_id)

    def rescan(self, attachment: HostAttachment, wanted_bytes) -> int:
        """The volume grew in the cloud: wait for its disk here to show the new size.

        Cinder tells Nova (an external event), the hypervisor resizes the
        virtio/SCSI disk and the guest kernel sees the new capacity by itself.
        devcloud's emulated hypervisor gives its guest loop devices, which
        learn their new size only through `losetup -c`.
        """
        self._resizer.refresh_if_loop(attachment.device_path)
        return self._resizer.wait_for_size(attachment.device_path, wanted_bytes)

    def host_attachments(self, volume_id=None) -> list[tuple[str, str]]:
        """(volume id, attachment id) of every Cinder attachment of this instance, of one volume or all."""
        return [(a["volume_id"], a["id"])
                for a in self._cinder.attachment_summaries(volume_id=volume_id, instance_id=self._server_id)]

    def release_leftover(self, volume_id, attachment_id) -> None:
        """Detach a volume Nova attached here that no journal record names."""
        self.detach(HostAttachment(volume_id, attachment_id, {"server_id": self._server_id}))

    # -- waits ----------------------------------------------------------

    def _wait_in_use(self, volume: CloudVolume) -> None:
        wait_in_use(self._cinder, volume.id, self._server_id, self._in_use_timeout, self._clock)

    def _wait_detached(self, volume_id, server_id, timeout) -> None:
        wait_detached(self._cinder, volume_id, server_id, timeout, self._clock)

    def _undo(self, pending: HostAttachment) -> None:
        """Detach what this attach started; report, do not raise: the first error is the one to tell."""
        try:
            self.detach(pending)
        except StorageError:
            LOG.exception(
                "could not detach volume %s from instance %s after a failed attach; "
                "it stays journaled and is detached at the next mount or remove",
                pending.volume_id, self._server_id,
            )


def wait_in_use(cinder, volume_id, server_id, timeout, clock: Clock) -> None:
    """Wait until Cinder reports `volume_id` in use by Nova server `server_id`."""
    start = clock.monotonic()

    def check():
        vol = cinder.get(volume_id)
        if _failed(vol.status):
            raise CloudError(
                f"volume {vol.name!r} ({vol.id}) went to status {vol.status!r} while Nova "
                "attached it; see the nova-compute and cinder-volume logs"
            )
        ours = any(a.server_id == server_id for a in vol.attachments)
        # A multiattach volume is in-use already if others hold it: wait for ours.
        if vol.status == "in-use" and (ours or not vol.multiattach):
            return True
        if vol.status == "available" and clock.monotonic() - start >= AVAILABLE_GRACE:
            raise CloudError(
                f"Nova accepted volume {vol.id} for instance {server_id}, but the volume "
                "went back to available: the attach failed in nova-compute; see its logs"
            )
        return False

    wait_until(check, timeout, f"volume {volume_id} to be in-use", clock, check_first=False)


def wait_detached(cinder, volume_id, server_id, timeout, clock: Clock) -> None:
    """Wait until Nova server `server_id` no longer holds `volume_id`."""
    def check():
        try:
            vol = cinder.get(volume_id)
        except NotFound:
            return True  # gone altogether
        if _failed(vol.status):
            raise CloudError(f"detaching volume {volume_id} failed: Cinder reports status {vol.status!r}")
        if vol.status == "available":
            return True
        # Multiattach, or someone attached it anew: enough that our server let go.
        ours = any(a.server_id == server_id for a in vol.attachments)
        return not ours and vol.status != "detaching"

    wait_until(check, timeout, f"volume {volume_id} to be detached from {server_id}", clock)
