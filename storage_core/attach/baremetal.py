"""Attach Cinder volumes to a host without Nova: the attachments API + os-brick.

Order matters for safety: the cloud attachment is journaled before the host
connects, so a crash at any step leaves a record saying what to undo.
"""

import logging

from storage_core.errors import AttachError, StorageError
from storage_core.models import CloudVolume, HostAttachment

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
            self._connector = self._brick.connector_properties(self._host.ip, self._host.name)
        return self._connector

    def attach(self, volume: CloudVolume, journal) -> HostAttachment:
        """Attach `volume` here; call journal(HostAttachment) once the cloud side exists."""
        attachment_id, connection_info = self._backend.create_attachment(
            volume.id, self._connector_properties()
        )
        pending = HostAttachment(volume.id, attachment_id, connection_info)
        journal(pending)
        try:
            device_info = self._brick.connect(connection_info)
            self._backend.complete_attachment(attachment_id)
        except StorageError:
            self._undo(pending, None)
            raise
        LOG.info("volume %s attached at %s (attachment %s)", volume.id, device_info["path"], attachment_id)
        return HostAttachment(volume.id, attachment_id, connection_info, device_info["path"])

    def detach(self, attachment: HostAttachment) -> None:
        device_info = {"path": attachment.device_path} if attachment.device_path else None
        self._brick.disconnect(attachment.connection_info, device_info)
        self._backend.delete_attachment(attachment.attachment_id)
        LOG.info("volume %s detached (attachment %s)", attachment.volume_id, attachment.attachment_id)

    def _undo(self, attachment, device_info):
        try:
            self._brick.disconnect(attachment.connection_info, device_info)
        except AttachError:
            LOG.exception("could not disconnect volume %s while undoing", attachment.volume_id)
        self._backend.delete_attachment(attachment.attachment_id)
