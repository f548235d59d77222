"""fuxi-server settings: command-line flags over the config file over defaults.

Every option has one definition here (name, type, default, help), used both for
the config file and, where it has one, for the command-line flag.
"""

import argparse
import configparser
import ipaddress
import os
import shlex
import ssl
from dataclasses import dataclass, field

from storage_core.config import SUPPORTED_FSTYPES, CloudConfig, ShareConfig, StorageConfig, VolumeLimits
from fuxi.log_format import LOG_FORMATS
from storage_core.pool.settings import PoolSettingsError, read_pools
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
    Option("socket", str, "/run/docker/plugins/fuxi.sock", "unix socket dockerd connects to (mode 0660, group docker); "
           "under systemd socket activation fuxi serves the socket systemd passes instead", True),
    Option("state_dir", str, "/var/lib/fuxi", "durable local state: mount counts, attachments, locks, mount points", True),
    Option("devcloud", bool, False, "run on the embedded devcloud instead of a real cloud (no OpenStack needed)", True),
    Option("devcloud_latency_profile", str, "none", "devcloud latency profile: none, or seed (the original fuxi's measured step times)"),
    Option("devcloud_args", str, "", "more fuxi-devcloud flags for the embedded devcloud, e.g. "
           "where its Manila keeps shares (--glusterfs-server, --cephfs-mon ...; see fuxi-devcloud --help)"),
    Option("cloud", str, "", "clouds.yaml entry to use (default: the OS_CLOUD environment variable)"),
    Option("region_name", str, "", "cloud region (default: the clouds.yaml entry's)"),
    Option("mount_root", str, "", "where volumes are mounted (default: STATE_DIR/mounts)"),
    Option("default_size_gb", int, 1, "size in GiB of a volume created without -o size"),
    Option("max_size_gb", int, 1024, "largest -o size accepted, in GiB"),
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
    Option("stale_mount_grace", float, 60.0, "seconds after which a counted mount whose volume no "
           "container's mount namespace holds is dropped as stale (its container died while the engine "
           "could not unmount it, e.g. dockerd was down); checked at Unmount, Remove and start"),
    Option("freeze_timeout", float, 60.0, "seconds writes to a volume mounted here may be held (its file "
           "system frozen) while Cinder makes a snapshot or a clone of it; a copy not made by then fails"),
    Option("backup_timeout", float, 600.0, "seconds a backup, or a restore into an existing volume, may take"),
    Option("preempt", bool, False, "let a Mount take over any volume (not only those created with "
           "-o preempt=true) from a host whose lease on it ran out, force-detaching it there; logged as "
           "PREEMPTING. Set it alike on every host: a holder keeps leases only on volumes it may lose"),
    Option("lease_seconds", float, 60.0, "how long a host's lease on a volume it mounted lasts (renewed every "
           "third of it); a volume is taken over only half a lease after its holder's lease ran out"),
    Option("threads", int, 16, "request threads in the one gunicorn worker"),
    Option("tcp_listen", str, "", "HOST:PORT of a TCP listener beside the unix socket (default: none); "
           "it needs tls_cert_file, tls_key_file and tls_client_ca_file, and serves only clients "
           "whose certificate that CA signed"),
    Option("tls_cert_file", str, "", "PEM certificate (chain) the TCP listener presents"),
    Option("tls_key_file", str, "", "PEM private key of tls_cert_file"),
    Option("tls_client_ca_file", str, "", "PEM CA certificate(s) a TCP client's certificate must be "
           "signed by; clients without one are refused at the TLS handshake"),
    Option("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Option("log_format", str, "text", "text (for people) or json (one JSON object a line, for a log "
           "pipeline); either way each plugin call logs one line, and every line of a call and its "
           "cloud requests carry the call's request id"),
    Option("metrics_listen", str, "", "HOST:PORT to serve Prometheus metrics on, at /metrics "
           "(default: none); loopback only (127.0.0.1, [::1] or localhost), as the endpoint has no "
           "authentication"),
    Option("cloud_timeout", float, 10.0, "seconds a cloud request may take to connect and between "
           "bytes of the answer (a POST, tried once, gets (1 + cloud_retries) times this; "
           "cloud_timeout * (1 + cloud_retries) stays <= 60)"),
    Option("cloud_retries", int, 2, "retries of an idempotent cloud request (GET, PUT, DELETE) "
           "after a connection failure, a timeout or HTTP 500/502/503/504; a POST only when it was never "
           "sent, or on 503, since a second try could make a second volume"),
)
_BY_NAME = {o.name: o for o in OPTIONS}


class SettingsError(Exception):
    pass


# The port of the example in metrics_listen's messages.
METRICS_EXAMPLE_PORT = 9101

# The TLS files a TCP listener cannot do without.
TLS_OPTIONS = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")


@dataclass(frozen=True)
class TcpListener:
    """The TCP listener's address and TLS files, checked (see Settings.tcp_listener)."""
    host: str
    port: int
    cert_file: str
    key_file: str
    client_ca_file: str

    @property
    def bind(self) -> str:
        """The address as gunicorn's `bind` takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


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

    def tcp_listener(self) -> "TcpListener | None":
        """The TCP listener, or None when tcp_listen is empty (the default: the unix
        socket only). A TCP listener always needs TLS with client certificates: a
        tcp_listen without all three TLS files, or with files that do not load,
        is a start-up error naming them."""
        where = self.tcp_listen.strip()
        if not where:
            return None
        host, port = _host_port(where)
        missing = [name for name in TLS_OPTIONS if not self.values[name].strip()]
        if missing:
            raise SettingsError(
                f"tcp_listen = {where} needs TLS with client certificates, but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set; set all of {', '.join(TLS_OPTIONS)} "
                "or leave tcp_listen empty (the unix socket only)"
            )
        files = {name: self.values[name].strip() for name in TLS_OPTIONS}
        for name, path in files.items():
            if not os.path.isfile(path):
                raise SettingsError(f"{name} = {path}: no such file (needed by tcp_listen = {where})")
        _check_tls_files(**files)
        return TcpListener(host, port, files["tls_cert_file"], files["tls_key_file"],
                           files["tls_client_ca_file"])

    def metrics_address(self) -> "tuple[str, int] | None":
        """(HOST, PORT) the Prometheus metrics are served on, or None when
        metrics_listen is empty (the default: no metrics). Only a loopback
        address: the endpoint has no authentication, and what it tells (pool
        names, call rates, error counts) is this host's business."""
        where = self.metrics_listen.strip()
        if not where:
            return None
        host, port = _host_port(where, "metrics_listen", METRICS_EXAMPLE_PORT)
        if not _is_loopback(host):
            raise SettingsError(
                f"metrics_listen = {where}: {host} is not a loopback address; the metrics endpoint has "
                f"no authentication, so it listens on this host only: 127.0.0.1:PORT, [::1]:PORT or "
                "localhost:PORT (scrape it from this host, e.g. with a Prometheus agent, or put a proxy "
                "with TLS in front of it)"
            )
        return host, port

    def checked_log_format(self) -> str:
        log_format = self.log_format.strip().lower()
        if log_format not in LOG_FORMATS:
            raise SettingsError(f"log_format = {self.log_format!r} is not one of: {', '.join(LOG_FORMATS)}")
        return log_format

    def storage_config(self, cloud: CloudConfig | None = None, host_defaults=None) -> StorageConfig:
        """The storage_core config. host_defaults fill host options left unset
        (devcloud passes its config drive, metadata URL and disk root)."""
        allowed = tuple(f.strip() for f in self.allowed_fstypes.split(",") if f.strip())
        try:
            limits = VolumeLimits(
                default_size_gb=self.default_size_gb,
                max_size_gb=self.max_size_gb,
                default_fstype=self.default_fstype,
                allowed_fstypes=allowed,
            )
        except ConfigError as exc:
            raise SettingsError(str(exc)) from exc
        if cloud is None:
            cloud = CloudConfig(
                cloud_name=self.cloud or os.environ.get("OS_CLOUD") or None,
                region_name=self.region_name or None,
            )
        return StorageConfig(
            pools=self.pools,
            refresh_interval=self.refresh_interval,
            stale_mount_grace=self.stale_mount_grace,
            freeze_timeout=self.freeze_timeout,
            preempt=self.preempt,
            lease_seconds=self.lease_seconds,
            backup_timeout=self.backup_timeout,
            cloud_timeout=self.cloud_timeout,
            cloud_retries=self.cloud_retries,
            backends=_words(self.backends, "backends"),
            default_backend=self.default_backend.strip().lower(),
            shares=self._share_config(),
            state_dir=self.state_dir,
            cloud=cloud,
            mount_root=self.mount_root or None,
            limits=limits,
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


def _host_port(where, option="tcp_listen", example_port=2376) -> tuple[str, int]:
    """("HOST", PORT) of `option`'s HOST:PORT ([V6ADDR]:PORT for IPv6)."""
    usage = (f"{option} = {where!r} is not HOST:PORT (e.g. 127.0.0.1:{example_port} or "
             f"[::1]:{example_port})")
    host, sep, port_text = where.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingsError(usage + "; put an IPv6 address in brackets")
    if not sep or not host or not port_text.isdigit():
        raise SettingsError(usage)
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise SettingsError(f"{option} = {where!r}: port {port} is not between 1 and 65535")
    return host, port


def _is_loopback(host) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it could resolve anywhere
        return False


def _check_tls_files(tls_cert_file, tls_key_file, tls_client_ca_file) -> None:
    """Load the files as the listener will, so a bad one stops the start, not the first client."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=tls_cert_file, keyfile=tls_key_file)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"tls_cert_file = {tls_cert_file} with tls_key_file = {tls_key_file} do not load as a "
            f"PEM certificate and its private key: {exc}"
        ) from None
    try:
        context.load_verify_locations(cafile=tls_client_ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"tls_client_ca_file = {tls_client_ca_file} does not load as PEM CA certificates: {exc}"
        ) from None
    if not context.cert_store_stats()["x509"]:
        raise SettingsError(
            f"tls_client_ca_file = {tls_client_ca_file} holds no certificate; TCP clients' "
            "certificates could never be verified"
        )


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
    settings = Settings(values, pools)
    settings.tcp_listener()  # a TCP listener without TLS never starts
    settings.metrics_address()  # nor a metrics endpoint off loopback
    settings.checked_log_format()
    return settings


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
