"""Volume attachments of Nova servers through openstacksdk (compute v2).

Microversions: openstacksdk picks the version of each call itself. Unless the
cloud config pins one (e.g. compute_api_version), it sends the highest
version both it (2.89 for volume attachments) and the server support, and
the proxy call takes no microversion argument. So for a multiattach volume
we do not "ask for 2.60": we check that the version openstacksdk will send
is at least 2.60 and refuse clearly when it is not.
"""

import logging

from openstack import exceptions as sdk_exceptions
from openstack import utils as sdk_utils
from openstack.compute.v2.server import Server

from storage_core.backends.sdk_errors import detail, translate_errors
from storage_core.errors import CloudError, Conflict
from storage_core.models import ServerVolumeAttachment

LOG = logging.getLogger(__name__)

# Nova attaches a multiattach volume only at this microversion or newer.
MULTIATTACH_MICROVERSION = "2.60"
# Tagged attach: only tagged volumes are listed in the metadata service's
# "devices" (serial -> bus address), the fallback when no by-id link appears.
TAGGED_ATTACH_MICROVERSION = "2.49"
DEVICE_TAG = "fuxi"


class _TagRefused(Exception):
    """Nova cannot tag this attach; it is retried untagged."""


def _to_attachment(server_id, att) -> ServerVolumeAttachment:
    return ServerVolumeAttachment(
        server_id=server_id,
        volume_id=att.volume_id,
        # Cinder's attachment id, reported from 2.89 on; before, Nova has none of its own.
        attachment_id=att.attachment_id,
        device=att.device,
    )


def _server(server_id) -> Server:
    # A typed server: given bare ids, openstacksdk first GETs the server to
    # check the two arguments are not swapped (a shim until openstacksdk 5).
    return Server(id=server_id)


class NovaBackend:
    def __init__(self, connection):
        self._conn = connection

    @property
    def _compute(self):
        return self._conn.compute

    def require_multiattach(self) -> None:
        """Refuse clearly when the compute API version sent would be below 2.60."""
        with translate_errors("reading Nova's API version", "Nova"):
            # Considers the server's range and any version pinned in the cloud config.
            if not sdk_utils.supports_microversion(self._compute, MULTIATTACH_MICROVERSION):
                raise CloudError(
                    f"attaching a multiattach volume needs compute API microversion "
                    f"{MULTIATTACH_MICROVERSION} or newer (Queens+); this cloud offers less, "
                    "or compute_api_version in the cloud config pins an older one"
                )

    def attach_volume(self, server_id, volume_id, multiattach=False) -> ServerVolumeAttachment:
        """Ask Nova to attach the volume to the server; return Nova's answer.

        Nova answers once it has reserved the volume; the hypervisor adds the
        disk afterwards, so the caller still waits for Cinder and the guest.
        """
        if multiattach:
            self.require_multiattach()
        doing = f"attaching volume {volume_id} to server {server_id}"
        with translate_errors(doing, "Nova"):
            tagged = sdk_utils.supports_microversion(self._compute, TAGGED_ATTACH_MICROVERSION)
            try:
                att = self._create(server_id, volume_id, tagged, doing)
            except _TagRefused as refused:
                # Some hypervisors cannot tag a hot-plugged disk: attach untagged.
                LOG.info("Nova refused a tagged attach (%s); attaching untagged", refused)
                att = self._create(server_id, volume_id, False, doing)
        LOG.info(
            "Nova accepted volume %s for server %s (compute API %s); Nova names it %s, "
            "which the guest need not agree with",
            volume_id, server_id, att.microversion or "default", att.device,
        )
        return _to_attachment(server_id, att)

    def _create(self, server_id, volume_id, tagged, doing):
        try:
            if tagged:
                return self._compute.create_volume_attachment(server_id, volume_id, tag=DEVICE_TAG)
            return self._compute.create_volume_attachment(server_id, volume_id)
        except (sdk_exceptions.BadRequestException, sdk_exceptions.ConflictException) as exc:
            if tagged and isinstance(exc, sdk_exceptions.BadRequestException) and "tag" in detail(exc).lower():
                raise _TagRefused(detail(exc)) from exc
            # Nova's 400/409 here mean the volume's or the server's state forbids it.
            raise Conflict(f"Nova refused {doing}: {detail(exc)}") from exc

    def detach_volume(self, server_id, volume_id) -> None:
        """Ask Nova to detach; a volume no longer attached there is fine."""
        doing = f"detaching volume {volume_id} from server {server_id}"
        with translate_errors(doing, "Nova"):
            try:
                self._compute.delete_volume_attachment(_server(server_id), volume_id, ignore_missing=True)
            except (sdk_exceptions.BadRequestException, sdk_exceptions.ConflictException) as exc:
                raise Conflict(f"Nova refused {doing}: {detail(exc)}") from exc

    def volume_attachments(self, server_id) -> list[ServerVolumeAttachment]:
        with translate_errors(f"listing the volumes of server {server_id}", "Nova"):
            return [_to_attachment(server_id, a) for a in self._compute.volume_attachments(server_id)]
