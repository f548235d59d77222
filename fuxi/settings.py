"""fuxi-server settings: command-line flags over the config file over defaults.

Every option has one definition here (name, type, default, help), used both for
the config file and, where it has one, for the command-line flag.
"""

import argparse
import configparser
import os
import shlex
from dataclasses import dataclass, field

from storage_core.config import SUPPORTED_FSTYPES, CloudConfig, ShareConfig, StorageConfig, VolumeLimits
from fuxi.pool_settings import PoolSettingsError, read_pools
from storage_core.errors import ConfigError

CONFIG_SECTION = "fuxi"
ATTACH_MODES = ("auto", "baremetal", "nova")


@dataclass(frozen=True)
class Option:
    name: str
    kind: type
    default: object
    help: str
    flag: bool = False


OPTIONS = (
    Option("socket", str, "/run/docker/plugins/fuxi.sock", "unix socket dockerd connects to", True),
    Option("state_dir", str, "/var/lib/fuxi", "durable local state (mount counts, attachments)", True),
    Option("devcloud", bool, False, "run on the embedded devcloud instead of a real cloud", True),
    Option("devcloud_latency_profile", str, "none", "devcloud latency profile: none or seed"),
    Option("devcloud_args", str, "", "more fuxi-devcloud flags for the embedded devcloud, e.g. "
           "where its Manila keeps shares (--glusterfs-server, --cephfs-mon ...; see fuxi-devcloud --help)"),
    Option("cloud", str, "", "clouds.yaml entry to use (default: the OS_CLOUD environment variable)"),
    Option("region_name", str, "", "cloud region (default: the clouds.yaml entry's)"),
    Option("mount_root", str, "", "where volumes are mounted (default: STATE_DIR/mounts)"),
    Option("default_size_gb", int, 1, "size of a volume created without -o size"),
    Option("max_size_gb", int, 1024, "largest -o size accepted"),
    Option("default_fstype", str, "ext4", "file system made on a blank volume without -o fstype"),
    Option("allowed_fstypes", str, ",".join(SUPPORTED_FSTYPES), "comma-separated -o fstype values accepted"),
    Option("host_ip", str, "", "this host's address as the cloud should see it (default: resolve the hostname)"),
    Option("host_name", str, "", "this host's name in cloud attachments (default: the hostname)"),
    Option("attach_mode", str, "auto", "how volumes reach this host: baremetal (Cinder attachments "
           "API + os-brick), nova (through Nova, on a Nova instance) or auto (nova when this host "
           "has a local instance identity: instance_id, cloud-init, a config drive)"),
    Option("instance_id", str, "", "this host's Nova instance UUID (default: cloud-init, config "
           "drive, metadata service, DMI, in that order)"),
    Option("cloud_init_dir", str, "/var/lib/cloud", "cloud-init's state directory"),
    Option("config_drive_dir", str, "", "where the config drive is mounted (holds openstack/latest/meta_data.json)"),
    Option("metadata_url", str, "http://169.254.169.254", "the Nova metadata service"),
    Option("disk_root", str, "/dev/disk", "where udev makes the by-id/ and by-path/ links of guest disks"),
    Option("device_timeout", float, 60.0, "seconds to wait for an attached disk to appear in the guest"),
    Option("backends", str, "cinder,manila", "comma-separated backends volumes may live in: cinder "
           "(block volumes), manila (shares; used only when the cloud's catalog has Manila)"),
    Option("default_backend", str, "cinder", "backend of a volume created without -o backend"),
    Option("default_share_proto", str, "nfs", "protocol of a share created without -o proto: nfs, "
           "cephfs or glusterfs"),
    Option("share_type", str, "", "Manila share type of a share created without -o share_type "
           "(default: the cloud's default type)"),
    Option("share_network", str, "", "Manila share network of a share created without -o share_network"),
    Option("nfs_mount_options", str, "vers=4.1", "mount options for NFS shares (checked against an allowed set)"),
    Option("cephfs_client", str, "fuse", "how CephFS shares are mounted: fuse (ceph-fuse) or kernel"),
    Option("ceph_conf", str, "", "ceph.conf the CephFS client reads (default: the client's own default)"),
    Option("cephx_client_id", str, "", "cephx id this host asks Manila for on CephFS shares; must "
           "differ between hosts (default: fuxi-HOSTNAME)"),
    Option("glusterfs_cert_cn", str, "", "certificate common name this host presents for GlusterFS "
           "shares (default: the host name)"),
    Option("refresh_interval", float, 10.0, "seconds between refreshes of the volume catalog Get, Path "
           "and List answer from (changes made through this host show at once)"),
    Option("threads", int, 16, "request threads in the one gunicorn worker"),
    Option("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
)
_BY_NAME = {o.name: o for o in OPTIONS}


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    values: dict = field(default_factory=dict)
    # The warm pools, from the [pool:NAME] sections (fuxi.pool_settings).
    pools: tuple = ()

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def devcloud_extra_args(self) -> list[str]:
        try:
            return shlex.split(self.devcloud_args)
        except ValueError as exc:
            raise SettingsError(f"devcloud_args = {self.devcloud_args!r}: {exc}") from None

    def storage_config(self, cloud: CloudConfig | None = None, host_defaults=None) -> StorageConfig:
        """The storage_core config. host_defaults fill host options left unset
        (devcloud passes its config drive, metadata URL and disk root)."""
        allowed = tuple(f.strip() for f in self.allowed_fstypes.split(",") if f.strip())
        unsupported = [f for f in allowed + (self.default_fstype,) if f not in SUPPORTED_FSTYPES]
        if unsupported:
            raise SettingsError(
                f"fstype {', '.join(unsupported)} is not supported; allowed: {', '.join(SUPPORTED_FSTYPES)}"
            )
        if self.default_size_gb < 1 or self.max_size_gb < self.default_size_gb:
            raise SettingsError("need 1 <= default_size_gb <= max_size_gb")
        if cloud is None:
            cloud = CloudConfig(
                cloud_name=self.cloud or os.environ.get("OS_CLOUD") or None,
                region_name=self.region_name or None,
            )
        return StorageConfig(
            pools=self.pools,
            refresh_interval=self.refresh_interval,
            backends=_words(self.backends, "backends"),
            default_backend=self.default_backend.strip().lower(),
            shares=self._share_config(),
            state_dir=self.state_dir,
            cloud=cloud,
            mount_root=self.mount_root or None,
            limits=VolumeLimits(
                default_size_gb=self.default_size_gb,
                max_size_gb=self.max_size_gb,
                default_fstype=self.default_fstype,
                allowed_fstypes=allowed,
            ),
            host_ip=self.host_ip or None,
            host_name=self.host_name or None,
            device_timeout=self.device_timeout,
            **self._host_options(host_defaults or {}),
        )

    def _share_config(self) -> ShareConfig:
        try:
            return ShareConfig(
                default_proto=self.default_share_proto.strip().upper(),
                share_type=self.share_type or None,
                share_network=self.share_network or None,
                nfs_mount_options=self.nfs_mount_options,
                cephfs_client=self.cephfs_client.strip().lower(),
                ceph_conf=self.ceph_conf or None,
                cephx_client_id=self.cephx_client_id or None,
                glusterfs_cert_cn=self.glusterfs_cert_cn or None,
            )
        except ConfigError as exc:
            raise SettingsError(str(exc)) from exc

    def _host_options(self, host_defaults) -> dict:
        if self.attach_mode not in ATTACH_MODES:
            raise SettingsError(
                f"attach_mode = {self.attach_mode!r} is not one of: {', '.join(ATTACH_MODES)}"
            )
        chosen = {"attach_mode": self.attach_mode}
        if host_defaults and self.attach_mode == "auto":
            # On devcloud its emulated guest view always exists, so "auto" would
            # always pick Nova; the embedded default stays bare metal unless asked.
            chosen["attach_mode"] = "baremetal"
        defaults = {o.name: o.default for o in OPTIONS}
        for name in ("instance_id", "cloud_init_dir", "config_drive_dir", "metadata_url", "disk_root"):
            value = self.values[name]
            if value == defaults[name] and name in host_defaults:
                value = host_defaults[name]
            chosen[name] = value or None
        return {k: v for k, v in chosen.items() if v is not None}


def _words(text, option) -> tuple[str, ...]:
    words = tuple(w.strip().lower() for w in text.split(",") if w.strip())
    if not words:
        raise SettingsError(f"{option} is empty; name at least one")
    return words


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fuxi-server", description="Docker volume plugin for OpenStack storage"
    )
    parser.add_argument("--config-file", metavar="PATH", help="INI file with a [fuxi] section")
    for option in OPTIONS:
        if not option.flag:
            continue
        flag = "--" + option.name.replace("_", "-")
        if option.kind is bool:
            parser.add_argument(flag, dest=option.name, action="store_true", default=None, help=option.help)
        else:
            parser.add_argument(flag, dest=option.name, metavar="PATH", default=None, help=option.help)
    return parser


def _convert(option: Option, raw, source):
    try:
        if option.kind is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return option.kind(raw)
    except ValueError:
        raise SettingsError(
            f"{source}: {option.name} = {raw!r} is not a valid {option.kind.__name__}"
        ) from None


def load(argv=None) -> Settings:
    args = argument_parser().parse_args(argv)
    values = {o.name: o.default for o in OPTIONS}
    pools = ()
    if args.config_file:
        parser = _parse_config_file(args.config_file)
        values.update(_read_fuxi_section(parser, args.config_file))
        try:
            pools = read_pools(parser, args.config_file)
        except PoolSettingsError as exc:
            raise SettingsError(str(exc)) from None
    for option in OPTIONS:
        flagged = getattr(args, option.name, None) if option.flag else None
        if flagged is not None:
            values[option.name] = _convert(option, flagged, "command line")
    return Settings(values, pools)


def _parse_config_file(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    return parser


def _read_fuxi_section(parser, path) -> dict:
    if not parser.has_section(CONFIG_SECTION):
        raise SettingsError(f"config file {path} has no [{CONFIG_SECTION}] section")
    values = {}
    for key, raw in parser.items(CONFIG_SECTION):
        option = _BY_NAME.get(key)
        if option is None:
            raise SettingsError(
                f"config file {path}: unknown option {key!r}; known: {', '.join(_BY_NAME)}"
            )
        values[key] = _convert(option, raw, f"config file {path}")
    return values
