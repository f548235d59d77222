"""Attach Cinder volumes to a host without Nova: the attachments API + os-brick.

Order matters for safety: the cloud attachment is journaled before the host
connects, so a crash at any step leaves a record saying what to undo.
"""

import logging

from storage_core.crashpoints import crash_point
from storage_core.errors import AttachError, NotFound, StorageError
from storage_core.models import HOLDER_PREFIX, CloudVolume, HostAttachment, holder_of

LOG = logging.getLogger(__name__)


class BareMetalAttacher:
    mode = "baremetal"

    def __init__(self, backend, brick, host):
        self._backend = backend
        self._brick = brick
        self._host = host
        self._connector = None

    def _connector_properties(self):
        # Checked once: the cloud's API level and the host's connector
        # properties do not change while we run.
        if self._connector is None:
            self._backend.require_attachments_api()
            properties = self._brick.connector_properties(self._host.ip, self._host.name)
            # Cinder keeps the connector's mountpoint as the attachment's "device",
            # which every user sees (the host only admins): how other hosts name us.
            self._connector = {**properties, "mountpoint": HOLDER_PREFIX + self._host.name}
        return self._connector

    def attach(self, volume: CloudVolume, journal) -> HostAttachment:
        """Attach `volume` here; call journal(HostAttachment) once the cloud side exists."""
        attachment_id, connection_info = self._backend.create_attachment(
            volume.id, self._connector_properties()
        )
        crash_point("attach.cloud_attached")
        pending = HostAttachment(volume.id, attachment_id, connection_info)
        journal(pending)
        crash_point("attach.journaled")
        try:
            device_info = self._brick.connect(connection_info)
            crash_point("attach.connected")
            self._backend.complete_attachment(attachment_id)
        except StorageError:
            self._undo(pending, None)
            raise
        LOG.info("volume %s attached at %s (attachment %s)", volume.id, device_info["path"], attachment_id)
        return HostAttachment(volume.id, attachment_id, connection_info, device_info["path"])

    def attached_here(self, volume: CloudVolume) -> bool:
        """Never: an attachment of this host that no journal record holds is a
        leftover to release, not one to use (nobody else attaches for this host)."""
        return False

    def detach(self, attachment: HostAttachment) -> None:
        device_info = {"path": attachment.device_path} if attachment.device_path else None
        self._brick.disconnect(attachment.connection_info, device_info)
        crash_point("detach.disconnected")
        self._backend.delete_attachment(attachment.attachment_id)
        crash_point("detach.deleted")
        LOG.info("volume %s detached (attachment %s)", attachment.volume_id, attachment.attachment_id)

    def rescan(self, attachment: HostAttachment, wanted_bytes) -> int:
        """The volume grew in the cloud: make its device here show the new size."""
        return self._brick.extend(attachment.connection_info, attachment.device_path, wanted_bytes)

    def host_attachments(self, volume_id=None) -> list[tuple[str, str]]:
        """(volume id, attachment id) of the attachments this host made that its
        journal may have missed.

        Of one volume (its intent was journaled, the attachment's id perhaps
        not): the one attachment of it that is not completed — this host
        journals an attachment's id before completing it, so a completed one is
        never an unjournaled one of ours. Two or more are ambiguous (hosts
        attaching a multiattach volume at once); none is released then.
        Of all volumes (a lost journal): the completed attachments of fuxi's
        volumes that name this host as their holder.

        (Cinder's "instance" cannot mark a bare-metal attachment: since the
        2023 attachment-delete check, Cinder asks Nova about any attachment
        with an instance, and fails without one.)
        """
        if volume_id is None:
            return [(vol.id, a.attachment_id) for vol in self._backend.list_owned()
                    for a in vol.attachments if holder_of(a) == self._host.name]
        pending = [a for a in self._backend.attachment_summaries(volume_id=volume_id)
                   if a["instance"] is None and a["status"] not in ("attached", "detached")]
        if len(pending) > 1:
            LOG.warning("volume %s has %d attachments being made; cannot tell which, if any, is this "
                        "host's: leaving them", volume_id, len(pending))
            return []
        return [(volume_id, a["id"]) for a in pending]

    def release_leftover(self, volume_id, attachment_id) -> None:
        """Let go of an attachment no journal record names: disconnect whatever
        the host may hold of it, then delete it in the cloud."""
        try:
            connection_info = self._backend.attachment_connection_info(attachment_id)
        except NotFound:
            return
        if connection_info:
            try:
                self._brick.disconnect(connection_info, None)
            except AttachError:
                LOG.exception("could not disconnect leftover attachment %s of volume %s", attachment_id, volume_id)
        self._backend.delete_attachment(attachment_id)

    def _undo(self, attachment, device_info):
        try:
            self._brick.disconnect(attachment.connection_info, device_info)
        except AttachError:
            LOG.exception("could not disconnect volume %s while undoing", attachment.volume_id)
        self._backend.delete_attachment(attachment.attachment_id)
