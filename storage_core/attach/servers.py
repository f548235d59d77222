"""Attach Cinder volumes to Nova servers other than this host.

The controller's half of the Nova path when one service decides where volumes
go and another mounts them (a CSI controller's publish): Nova attaches the
volume to the named server and Cinder reports it in use; finding the disk in
the guest and mounting it is the work of the host that is that server
(storage_core.attach.nova adopts the attachment it finds there).
"""

import logging

from storage_core.attach.nova import wait_detached, wait_in_use
from storage_core.errors import Conflict, NotFound
from storage_core.waits import Clock

LOG = logging.getLogger(__name__)


class ServerAttachments:
    def __init__(self, nova, cinder, clock=None, in_use_timeout=50.0, detach_timeout=55.0):
        self._nova = nova
        self._cinder = cinder
        self._clock = clock or Clock()
        self._in_use_timeout = in_use_timeout
        self._detach_timeout = detach_timeout

    def attach(self, volume_id, server_id) -> None:
        """Attach to `server_id` and wait until Cinder says so; attached there already is fine."""
        vol = self._cinder.get(volume_id)
        if any(a.server_id == server_id for a in vol.attachments):
            return
        others = sorted({a.server_id or a.host_name or a.attachment_id for a in vol.attachments})
        if others and not vol.shared_between_hosts:
            raise Conflict(
                f"volume {vol.name!r} ({vol.id}) is attached to {', '.join(others)}; detach it there first "
                "(only a multiattach volume created with multiattach=shared may be on several servers)"
            )
        self._nova.attach_volume(server_id, vol.id, multiattach=vol.multiattach)
        wait_in_use(self._cinder, vol.id, server_id, self._in_use_timeout, self._clock)
        LOG.info("volume %s (%s) attached to server %s", vol.name, vol.id, server_id)

    def detach(self, volume_id, server_id) -> None:
        """Detach from `server_id`; a volume that is gone or not attached there is fine."""
        try:
            vol = self._cinder.get(volume_id)
        except NotFound:
            return
        if not any(a.server_id == server_id for a in vol.attachments):
            return
        self._nova.detach_volume(server_id, vol.id)
        wait_detached(self._cinder, vol.id, server_id, self._detach_timeout, self._clock)
        LOG.info("volume %s (%s) detached from server %s", vol.name, vol.id, server_id)
