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
# On a volume made from a snapshot, a backup or another volume: where its data
# came from ("snapshot:ID", "backup:ID", "volume:ID"). Its file system is the
# source's: detected at the first mount, never made.
SOURCE_KEY = "fuxi_source"
# On a snapshot or a backup fuxi took: the name of the volume it is a copy of
# (its id is the cloud's own volume_id field, but the name outlives the volume).
COPY_OF_KEY = "fuxi_volume"
# On a snapshot fuxi took: "true" when the file system was frozen around it
# (consistent), "false" when it was taken of a volume no host of fuxi's froze.
FROZEN_KEY = "fuxi_frozen"
SOURCE_KINDS = ("snapshot", "backup", "volume")
# On a volume of a multiattach type: how fuxi shares it between hosts. ext4 and
# xfs are no cluster file systems: two hosts mounting one at once corrupt it.
# "exclusive": one host at a time (also what an untagged one gets); "shared":
# several at once, which the user chose knowingly (readers, or coordinated writers).
MULTIATTACH_KEY = "fuxi_multiattach"
MULTIATTACH_MODES = ("exclusive", "shared")
# On a volume mounted on a host: that host's lease, "<host> <expiry>" (storage_core.leases).
LEASE_KEY = "fuxi_lease"
# On a volume another host may take over (preempt) once its holder's lease ran out: "true".
PREEMPT_KEY = "fuxi_preempt"


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
    # Make it from this snapshot, backup or volume; size_gb 0 then means the source's.
    source: "SourceRef | None" = None
    # For a multiattach volume type: one of MULTIATTACH_MODES (None: not asked).
    multiattach: str | None = None
    # Another host may take it over from a holder whose lease ran out.
    preempt: bool = False


@dataclass(frozen=True)
class SourceRef:
    """A volume's source as the caller named it: a kind of SOURCE_KINDS and a
    name or id (resolved against the cloud when the volume is made)."""

    kind: str
    ref: str

    def __str__(self) -> str:
        return f"{self.kind} {self.ref!r}"

    def record(self) -> str:
        """What a volume made from this source carries under SOURCE_KEY."""
        return f"{self.kind}:{self.ref}"

    @classmethod
    def recorded_in(cls, metadata) -> "SourceRef | None":
        kind, _, ref = (metadata.get(SOURCE_KEY) or "").partition(":")
        return cls(kind, ref) if kind and ref else None


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

    @property
    def shared_between_hosts(self) -> bool:
        """A multiattach volume its owner chose to mount on several hosts at once."""
        return self.multiattach and self.metadata.get(MULTIATTACH_KEY) == "shared"

    @property
    def from_source(self) -> bool:
        """Made from a snapshot, a backup or another volume: it holds their data."""
        return SOURCE_KEY in self.metadata


@dataclass(frozen=True)
class CloudCopy:
    """A copy of a Cinder volume as the cloud reports it: a snapshot (in the
    volume's backend) or a backup (in the backup service)."""

    id: str
    name: str | None
    volume_id: str
    size_gb: int
    status: str
    created_at: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def owned(self) -> bool:
        return self.metadata.get(OWNER_KEY) == OWNER_VALUE

    @property
    def volume_name(self) -> str | None:
        return self.metadata.get(COPY_OF_KEY)


@dataclass(frozen=True)
class CloudSnapshot(CloudCopy):
    pass


@dataclass(frozen=True)
class CloudBackup(CloudCopy):
    # The snapshot it was made from, if any; only what changed since the last one.
    snapshot_id: str | None = None
    incremental: bool = False


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
