"""Typed configuration of storage_core, filled in by whoever embeds it."""

import os
from dataclasses import dataclass, field
from typing import Mapping

SUPPORTED_FSTYPES = ("ext4", "xfs")
# mkfs.xfs refuses devices under 300 MB; a whole GiB is the smallest volume anyway.
MIN_SIZE_GB = 1


@dataclass(frozen=True)
class VolumeLimits:
    default_size_gb: int = 1
    max_size_gb: int = 1024
    default_fstype: str = "ext4"
    allowed_fstypes: tuple[str, ...] = SUPPORTED_FSTYPES


@dataclass(frozen=True)
class CloudConfig:
    """How to reach the cloud: a clouds.yaml entry by name, or explicit auth."""

    cloud_name: str | None = None
    auth: Mapping[str, str] | None = None
    region_name: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.cloud_name or self.auth)


@dataclass(frozen=True)
class StorageConfig:
    state_dir: str
    cloud: CloudConfig
    mount_root: str | None = None
    limits: VolumeLimits = field(default_factory=VolumeLimits)
    # Address the cloud sees this host by (os-brick connector 'ip'); None: guess.
    host_ip: str | None = None
    host_name: str | None = None
    create_timeout: float = 110.0
    attach_timeout: float = 110.0
    delete_timeout: float = 55.0

    @property
    def effective_mount_root(self) -> str:
        return self.mount_root or os.path.join(self.state_dir, "mounts")

    @property
    def lock_dir(self) -> str:
        return os.path.join(self.state_dir, "locks")

    @property
    def state_db(self) -> str:
        return os.path.join(self.state_dir, "state.sqlite")
