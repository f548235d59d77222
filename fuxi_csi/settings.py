"""fuxi-csi's configuration: the `[csi]` section of its config file (and its
`[pool:NAME]` sections), turned into storage_core's StorageConfig.

    [csi]
    cloud = mycloud             # a clouds.yaml entry (or OS_CLOUD)
    backends = cinder, manila
    availability_zone = nova    # this node's zone, reported as its topology

Every option has a default, so a file with only `cloud` works.
"""

import configparser
import os
from dataclasses import dataclass

from storage_core.config import ATTACH_MODES, CloudConfig, ShareConfig, StorageConfig, VolumeLimits
from storage_core.errors import ConfigError
from storage_core.pool.settings import PoolSettingsError, read_pools

SECTION = "csi"


@dataclass(frozen=True)
class CsiOption:
    kind: type
    default: object
    help: str


OPTIONS = {
    "cloud": CsiOption(str, "", "clouds.yaml entry to use (default: OS_CLOUD)"),
    "region_name": CsiOption(str, "", "region of that cloud"),
    "state_dir": CsiOption(str, "/var/lib/fuxi-csi", "journal, locks and mounts of this node (keep it on the host)"),
    "backends": CsiOption(str, "cinder", "where volumes may live: cinder, manila or both"),
    "default_backend": CsiOption(str, "cinder", "the backend of a StorageClass that names none"),
    "default_fstype": CsiOption(str, "ext4", "file system of a blank volume whose request names none"),
    "allowed_fstypes": CsiOption(str, "ext4, xfs", "file systems a request may ask for"),
    "default_size_gb": CsiOption(int, 1, "size of a volume whose request names no capacity"),
    "max_size_gb": CsiOption(int, 1024, "largest volume a request may ask for"),
    "attach_mode": CsiOption(str, "auto", f"how this node attaches Cinder volumes: {', '.join(ATTACH_MODES)}"),
    "instance_id": CsiOption(str, "", "this node's Nova server id (default: found)"),
    "host_name": CsiOption(str, "", "this node's name in Cinder attachments (default: the host name)"),
    "host_ip": CsiOption(str, "", "the address the cloud sees this node by (default: guessed)"),
    "metadata_url": CsiOption(str, "http://169.254.169.254", "Nova's metadata service"),
    "config_drive_dir": CsiOption(str, "", "where the config drive is mounted, if any"),
    "cloud_init_dir": CsiOption(str, "/var/lib/cloud", "cloud-init's directory"),
    "disk_root": CsiOption(str, "/dev/disk", "where udev links disks by id"),
    "availability_zone": CsiOption(str, "", "this node's availability zone, reported as its topology "
                                            "(default: a Nova instance's, from its metadata; else none)"),
    "default_share_proto": CsiOption(str, "NFS", "share protocol of a Manila StorageClass that names none"),
    "share_type": CsiOption(str, "", "Manila share type (default: the cloud's)"),
    "share_network": CsiOption(str, "", "Manila share network, for share servers that need one"),
    "cephfs_client": CsiOption(str, "fuse", "how CephFS shares are mounted"),
    "ceph_conf": CsiOption(str, "", "ceph.conf for CephFS mounts"),
    "cephx_client_id": CsiOption(str, "", "the cephx user access is granted to (default: this node's)"),
    "glusterfs_cert_cn": CsiOption(str, "", "the certificate CN access is granted to (default: this node's)"),
    "cloud_timeout": CsiOption(float, 10.0, "seconds for one cloud request"),
    "cloud_retries": CsiOption(int, 2, "tries of an idempotent cloud request after the first"),
    "log_level": CsiOption(str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
}


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class CsiSettings:
    storage: StorageConfig
    # This node's zone (None: no topology reported).
    availability_zone: str | None
    log_level: str


def load(path=None) -> CsiSettings:
    values = {name: option.default for name, option in OPTIONS.items()}
    pools = ()
    if path:
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, configparser.Error) as exc:
            raise SettingsError(f"config file {path}: {exc}") from None
        unknown = [s for s in parser.sections() if s != SECTION and not s.startswith("pool:")]
        if unknown:
            raise SettingsError(f"config file {path}: unknown section [{unknown[0]}]; known: [{SECTION}], [pool:NAME]")
        if parser.has_section(SECTION):
            for key, raw in parser.items(SECTION):
                values[key] = _convert(key, raw, path)
        try:
            pools = read_pools(parser, path)
        except PoolSettingsError as exc:
            raise SettingsError(str(exc)) from None
        _refuse_host_tiers(pools, path)
    try:
        return CsiSettings(_storage_config(values, pools), values["availability_zone"] or None,
                           values["log_level"].upper())
    except ConfigError as exc:
        raise SettingsError(f"config file {path or '(none)'}: {exc}") from None


def _convert(key, raw, path):
    if key not in OPTIONS:
        raise SettingsError(f"config file {path}, [{SECTION}]: unknown option {key!r}; known: {', '.join(OPTIONS)}")
    kind = OPTIONS[key].kind
    try:
        return kind(raw.strip())
    except ValueError:
        raise SettingsError(f"config file {path}, [{SECTION}]: {key} = {raw!r} is not a valid {kind.__name__}") from None


def _refuse_host_tiers(pools, path) -> None:
    # Kubernetes creates a volume on the controller's host and mounts it on a
    # node's: a volume attached or mounted ahead on the controller serves no pod.
    for pool in pools:
        if not pool.shared:
            raise SettingsError(
                f"config file {path}, [pool:{pool.name}]: tier = {pool.tier}; fuxi-csi serves CreateVolume from "
                "tier 1 (created) or 2 (also formatted) pools: tiers 3 and 4 attach to the controller's host, "
                "not to the node that mounts the volume")


def _words(text) -> tuple[str, ...]:
    return tuple(w.strip().lower() for w in text.split(",") if w.strip())


def _storage_config(v, pools) -> StorageConfig:
    host = {k: v[k] for k in ("instance_id", "config_drive_dir", "host_name", "host_ip") if v[k]}
    return StorageConfig(
        state_dir=v["state_dir"],
        cloud=CloudConfig(cloud_name=v["cloud"] or os.environ.get("OS_CLOUD") or None,
                          region_name=v["region_name"] or None),
        limits=VolumeLimits(default_size_gb=v["default_size_gb"], max_size_gb=v["max_size_gb"],
                            default_fstype=v["default_fstype"], allowed_fstypes=_words(v["allowed_fstypes"])),
        attach_mode=v["attach_mode"],
        metadata_url=v["metadata_url"],
        cloud_init_dir=v["cloud_init_dir"],
        disk_root=v["disk_root"],
        backends=_words(v["backends"]),
        default_backend=v["default_backend"].strip().lower(),
        shares=ShareConfig(
            default_proto=v["default_share_proto"].strip().upper(),
            share_type=v["share_type"] or None,
            share_network=v["share_network"] or None,
            cephfs_client=v["cephfs_client"].strip().lower(),
            ceph_conf=v["ceph_conf"] or None,
            cephx_client_id=v["cephx_client_id"] or None,
            glusterfs_cert_cn=v["glusterfs_cert_cn"] or None,
        ),
        pools=pools,
        cloud_timeout=v["cloud_timeout"],
        cloud_retries=v["cloud_retries"],
        # Kubernetes clones volumes that pods on other nodes use, as every CSI driver does.
        unfrozen_clones=True,
        **host,
    )
