"""Plain, frozen records passed between the service and its adapters."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

# The metadata key/value that marks a cloud volume as ours. It is the tag the
# original fuxi used, so volumes it made stay manageable.
OWNER_KEY = "volume_from"
OWNER_VALUE = "fuxi"
FSTYPE_KEY = "fstype"
# On a share adopted with `share_id` (a volume with `volume_id`): the name it had
# before, so that giving it back (on remove or release) restores it as it was
# instead of deleting someone's data.
ADOPTED_FROM_KEY = "fuxi_adopted_from"
# On a volume of the warm pool: the pool's key (storage_core.pool.spec). Such
# volumes are ours but nobody's yet: never listed, found or mounted as a user's.
POOL_KEY = "fuxi_pool"


@dataclass(frozen=True)
class VolumeSpec:
    """What a caller asked for when creating a volume."""

    name: str
    size_gb: int
    fstype: str
    volume_type: str | None = None
    availability_zone: str | None = None
    # More metadata to create the volume with (the pool's tags).
    extra_metadata: Mapping[str, str] = field(default_factory=dict)
    # Adopt this existing volume under `name` instead of creating one.
    adopt_volume_id: str | None = None


@dataclass(frozen=True)
class CloudAttachment:
    """One attachment of a cloud volume, as the cloud reports it."""

    attachment_id: str
    host_name: str | None = None
    server_id: str | None = None
    # Cinder's "device": the attachment's mountpoint, shown to every user of the
    # project (host_name only to admins); fuxi's bare-metal attachments put
    # HOLDER_PREFIX + the host's name there (see holder_of).
    device: str | None = None


#: How a bare-metal attachment names the host holding it, in the connector's
#: "mountpoint" (Cinder shows it as the attachment's "device").
HOLDER_PREFIX = "fuxi-host:"


def holder_of(attachment: CloudAttachment) -> str | None:
    """The fuxi host named by a bare-metal attachment's device, or None."""
    device = attachment.device or ""
    return device[len(HOLDER_PREFIX):] or None if device.startswith(HOLDER_PREFIX) else None


@dataclass(frozen=True)
class CloudVolume:
    """A block volume as the cloud reports it."""

    id: str
    name: str
    size_gb: int
    status: str
    created_at: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    volume_type: str | None = None
    availability_zone: str | None = None
    attachments: tuple[CloudAttachment, ...] = ()
    # The volume type allows more than one attachment at a time.
    multiattach: bool = False

    @property
    def owned(self) -> bool:
        return self.metadata.get(OWNER_KEY) == OWNER_VALUE

    @property
    def fstype(self) -> str | None:
        return self.metadata.get(FSTYPE_KEY)

    @property
    def adopted(self) -> bool:
        return ADOPTED_FROM_KEY in self.metadata


@dataclass(frozen=True)
class ServerVolumeAttachment:
    """A volume attached to a Nova server, as Nova reports it.

    `device` is the name Nova guessed (e.g. /dev/vdb); the guest often names
    the disk otherwise, so it is for logs only, never for finding the disk.
    """

    server_id: str
    volume_id: str
    attachment_id: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class HostAttachment:
    """What this host holds for an attached volume: enough to undo it after a restart."""

    volume_id: str
    attachment_id: str
    connection_info: Mapping
    device_path: str | None = None


@dataclass(frozen=True)
class VolumeInfo:
    """What get/list report about a volume."""

    name: str
    mountpoint: str | None
    created_at: datetime | None = None
    status: Mapping = field(default_factory=dict)


SHARE_PROTOCOLS = ("NFS", "CEPHFS", "GLUSTERFS")


@dataclass(frozen=True)
class ShareSpec:
    """What a caller asked for when creating a Manila share."""

    name: str
    size_gb: int
    proto: str
    share_type: str | None = None
    share_network: str | None = None
    availability_zone: str | None = None
    # Adopt this existing share under `name` instead of creating one.
    adopt_share_id: str | None = None


@dataclass(frozen=True)
class CloudShare:
    """A Manila share as the cloud reports it."""

    id: str
    name: str
    size_gb: int
    status: str
    proto: str
    created_at: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    share_type: str | None = None
    availability_zone: str | None = None

    @property
    def owned(self) -> bool:
        return self.metadata.get(OWNER_KEY) == OWNER_VALUE

    @property
    def adopted(self) -> bool:
        return ADOPTED_FROM_KEY in self.metadata


@dataclass(frozen=True)
class AccessRule:
    """One host's (or client's) access to a share."""

    id: str
    access_type: str
    access_to: str
    access_level: str
    state: str
    # For cephx rules: the secret Manila made for the client id, once active.
    access_key: str | None = None


@dataclass(frozen=True)
class ExportLocation:
    path: str
    preferred: bool = False
