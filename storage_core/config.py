"""Typed configuration of storage_core, filled in by whoever embeds it."""

import os
from dataclasses import dataclass, field
from typing import Mapping

from storage_core.attach.share import parse_nfs_options
from storage_core.errors import ConfigError, InvalidInput
from storage_core.models import SHARE_PROTOCOLS

SUPPORTED_FSTYPES = ("ext4", "xfs")
# mkfs.xfs refuses devices under 300 MB; a whole GiB is the smallest volume anyway.
MIN_SIZE_GB = 1

# How volumes reach this host: through Nova (this host is a Nova instance),
# through Cinder's attachments API + os-brick, or whichever fits ("auto").
ATTACH_MODES = ("baremetal", "nova", "auto")

# Where a volume lives: a Cinder block volume or a Manila share.
BACKENDS = ("cinder", "manila")
CEPHFS_CLIENTS = ("fuse", "kernel")


@dataclass(frozen=True)
class VolumeLimits:
    default_size_gb: int = 1
    max_size_gb: int = 1024
    default_fstype: str = "ext4"
    allowed_fstypes: tuple[str, ...] = SUPPORTED_FSTYPES

    def __post_init__(self):
        unsupported = [f for f in (*self.allowed_fstypes, self.default_fstype) if f not in SUPPORTED_FSTYPES]
        if unsupported:
            raise ConfigError(
                f"fstype {', '.join(unsupported)} is not supported; allowed: {', '.join(SUPPORTED_FSTYPES)}"
            )
        if not 1 <= self.default_size_gb <= self.max_size_gb:
            raise ConfigError("need 1 <= default_size_gb <= max_size_gb")


@dataclass(frozen=True)
class ShareConfig:
    """How Manila shares are created and mounted on this host."""

    default_proto: str = "NFS"
    share_type: str | None = None
    share_network: str | None = None
    nfs_mount_options: str = "vers=4.1"
    cephfs_client: str = "fuse"
    # ceph.conf for the CephFS client (ceph-fuse -c); None: the client's default.
    ceph_conf: str | None = None
    # The cephx id this host asks Manila for; it must differ between hosts,
    # since revoking it on one host's last unmount cuts off every holder.
    cephx_client_id: str | None = None
    # The certificate common name this host presents for GlusterFS (cert access).
    glusterfs_cert_cn: str | None = None
    access_timeout: float = 55.0

    def __post_init__(self):
        if self.default_proto not in SHARE_PROTOCOLS:
            raise ConfigError(
                f"default share protocol {self.default_proto!r} is not supported; "
                f"use one of {', '.join(SHARE_PROTOCOLS)}"
            )
        try:
            parse_nfs_options(self.nfs_mount_options)
        except InvalidInput as exc:
            raise ConfigError(f"nfs_mount_options: {exc}") from None
        if self.cephfs_client not in CEPHFS_CLIENTS:
            raise ConfigError(
                f"cephfs_client {self.cephfs_client!r} is not supported; use one of {', '.join(CEPHFS_CLIENTS)}"
            )


HOW_TO_CONFIGURE = (
    "no cloud is configured: name a clouds.yaml entry with the 'cloud' option or the "
    "OS_CLOUD environment variable, or run on the embedded test cloud with --devcloud"
)


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
    attach_mode: str = "auto"
    # This host's Nova instance UUID; None: find it (cloud-init, config drive,
    # metadata service, DMI), see storage_core.host.
    instance_id: str | None = None
    cloud_init_dir: str = "/var/lib/cloud"
    # Where the config drive is mounted (holds openstack/latest/meta_data.json);
    # None: not used, fuxi mounts nothing itself.
    config_drive_dir: str | None = None
    metadata_url: str = "http://169.254.169.254"
    dmi_uuid_path: str = "/sys/class/dmi/id/product_uuid"
    disk_root: str = "/dev/disk"
    sysfs_root: str = "/sys"
    # How long a Nova-attached disk may take to show up in the guest. It is
    # part of attach_timeout: Nova attach + Cinder "in-use" + this all fit in
    # attach_timeout, which fits in a caller's 120 s deadline for a mount.
    device_timeout: float = 60.0
    # The backends volumes may live in, and the one a create without -o backend uses.
    backends: tuple[str, ...] = BACKENDS
    default_backend: str = "cinder"
    shares: ShareConfig = field(default_factory=ShareConfig)
    # Warm pools of pre-made Cinder volumes (storage_core.pool.spec.PoolSpec).
    pools: tuple = ()
    # How often the local catalog (what Get, Path and List answer from) is
    # refreshed from the cloud; changes made through this host show at once.
    refresh_interval: float = 10.0
    # A counted mount older than this that no other mount namespace holds is
    # dropped as stale (storage_core.mount_users).
    stale_mount_grace: float = 60.0
    # Each cloud request: seconds to connect and between bytes of the answer,
    # and how often an idempotent one is tried again after a connection
    # failure, a timeout or a 5xx (see storage_core.factory.connect).
    cloud_timeout: float = 10.0
    cloud_retries: int = 2
    # The longest writes to a volume mounted here are held (its file system
    # frozen) while Cinder makes a snapshot or a clone of it.
    freeze_timeout: float = 60.0
    # How long a backup, or a restore into an existing volume, may take.
    backup_timeout: float = 600.0
    # Every volume (not only those created with -o preempt=true) may be taken
    # over from a host whose lease on it ran out (storage_core.leases); set alike
    # on every host, since the holder keeps leases only on volumes it may lose.
    preempt: bool = False
    # How long a host's lease on a mounted volume lasts; renewed every third.
    lease_seconds: float = 60.0
    # A clone of a volume mounted on another host (where this host cannot freeze
    # its file system) is made crash-consistent rather than refused.
    unfrozen_clones: bool = False

    def __post_init__(self):
        if not 0 < self.cloud_timeout <= 60:
            raise ConfigError(
                f"cloud_timeout = {self.cloud_timeout:g}: use a number of seconds above 0 and at "
                "most 60 (Docker gives most calls 60 s in all)"
            )
        if not 0 < self.freeze_timeout <= 110:
            raise ConfigError(
                f"freeze_timeout = {self.freeze_timeout:g}: use a number of seconds above 0 and at most 110 "
                "(a clone made while its source is frozen is part of a Create, which Docker gives 120 s)"
            )
        if not 0 < self.backup_timeout <= 86400:
            raise ConfigError(f"backup_timeout = {self.backup_timeout:g}: use a number of seconds above 0 "
                              "and at most 86400")
        if not 1 <= self.lease_seconds <= 3600:
            raise ConfigError(f"lease_seconds = {self.lease_seconds:g}: use a number of seconds from 1 to 3600")
        if not 0 <= self.cloud_retries <= 5:
            raise ConfigError(f"cloud_retries = {self.cloud_retries}: use a whole number from 0 to 5")
        if self.cloud_timeout * (1 + self.cloud_retries) > 60:
            raise ConfigError(
                f"cloud_timeout ({self.cloud_timeout:g} s) times the tries of one request "
                f"(1 + cloud_retries = {1 + self.cloud_retries}) is above 60 s: one slow cloud "
                "request could then outlast the 60 s Docker gives a Remove or an Unmount; lower either"
            )
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise ConfigError(
                f"backends = {', '.join(self.backends) or '(none)'}: use one or more of {', '.join(BACKENDS)}"
            )
        if self.default_backend not in self.backends:
            raise ConfigError(
                f"default_backend {self.default_backend!r} is not among the enabled backends "
                f"({', '.join(self.backends)})"
            )
        if self.attach_mode not in ATTACH_MODES:
            raise ConfigError(
                f"unknown attach_mode {self.attach_mode!r}; use one of {', '.join(ATTACH_MODES)}"
            )
        if not 0 < self.device_timeout < self.attach_timeout:
            raise ConfigError(
                f"device_timeout ({self.device_timeout:g} s) must be above 0 and below "
                f"attach_timeout ({self.attach_timeout:g} s), which also covers the cloud's attach"
            )

    @property
    def effective_mount_root(self) -> str:
        return self.mount_root or os.path.join(self.state_dir, "mounts")

    @property
    def lock_dir(self) -> str:
        return os.path.join(self.state_dir, "locks")

    @property
    def state_db(self) -> str:
        return os.path.join(self.state_dir, "state.sqlite")
