"""``fuxi-devcloud``: run devcloud in the foreground until SIGTERM/SIGINT.

Supervisors and out-of-process tests wait for ``--ready-file`` to appear: it
is written (atomically) only once the cloud listens, and holds the URL, the
pid and the clouds.yaml entry to use, plus the emulated Nova guest's view:
its server id and name, where its disk links and config drive are, and the
metadata service URL.
"""

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading

import yaml

from storage_core.devcloud.hypervisor import DEFAULT_SERVER_NAME
from storage_core.devcloud.latency import PROFILES, LatencyProfile
from storage_core.devcloud.server import DevCloud
from storage_core.devcloud.shares import directory_hooks

LOG = logging.getLogger(__name__)


def write_atomically(path, text):
    """Readers see the old file or the whole new one, never a part."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o600)  # it holds the password
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _seconds(text):
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fuxi-devcloud",
        description="A small OpenStack-compatible cloud (Keystone v3, Cinder v3, Nova v2.1, "
        "Manila v2) serving loop-device volumes and file shares on loopback.",
    )
    parser.add_argument("--state-dir", required=True, help="where volumes and state live")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-profile", default="none", choices=sorted(PROFILES))
    parser.add_argument("--ready-file", help="JSON {url, pid, cloud} written once listening")
    parser.add_argument("--clouds-yaml", help="clouds.yaml to write for this cloud")
    parser.add_argument("--cloud-name", default="devcloud")
    parser.add_argument("--log-level", default="INFO")
    guest = parser.add_argument_group("emulated Nova host", "the server fuxi runs on, as a guest")
    guest.add_argument("--server-name", default=DEFAULT_SERVER_NAME,
                       help="name of the local server (created once)")
    guest.add_argument("--disk-root", help="the guest's /dev/disk (default: STATE_DIR/dev-disk)")
    guest.add_argument("--config-drive-dir",
                       help="where the config drive is (default: STATE_DIR/config-drive; "
                            "'' for none)")
    guest.add_argument("--link-delay", type=_seconds, default=0.0,
                       help="seconds udev takes to make a new disk's links")
    guest.add_argument("--no-by-id-links", dest="by_id_links", action="store_false",
                       help="udev makes by-path links only")
    guest.add_argument("--lie-about-device", action="store_true",
                       help="Nova reports /dev/vdb for every attached volume")
    shares = parser.add_argument_group(
        "Manila file backends", "where shares live and how their export paths look")
    shares.add_argument("--glusterfs-server", help="GlusterFS server host (export HOST:/VOL/share-<id>)")
    shares.add_argument("--glusterfs-volume", help="GlusterFS volume holding the shares")
    shares.add_argument("--cephfs-mon", help="Ceph monitor HOST:PORT (export "
                                             "MON:/volumes/_nogroup/<id>)")
    shares.add_argument("--cephfs-name", help="CephFS file system name")
    shares.add_argument("--nfs-server", help="host of the (fake) NFS exports")
    for proto in ("glusterfs", "cephfs", "nfs"):
        shares.add_argument(f"--{proto}-mount", metavar="DIR",
                            help=f"where the root of the {proto} backend is mounted: share "
                                 "directories are created and removed there")
    return parser


def ready_info(cloud) -> dict:
    """What the ready file announces (besides the pid)."""
    server = cloud.local_server()
    return {
        "url": cloud.url,
        "cloud": cloud.cloud_config(),
        "server_id": server["id"],
        "server_name": server["name"],
        "disk_root": cloud.disk_root,
        "config_drive_dir": cloud.config_drive_dir,
        "metadata_url": cloud.metadata_url,
        "share_backends": cloud.share_backends.to_dict(),
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # A ready file left by an earlier (killed) run must not announce this one.
    if args.ready_file:
        _remove(args.ready_file)

    stop = threading.Event()

    def on_signal(signum, _frame):
        LOG.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        cloud = DevCloud(
            args.state_dir,
            host=args.host,
            port=args.port,
            latency=LatencyProfile.named(args.latency_profile),
            server_name=args.server_name,
            disk_root=args.disk_root,
            config_drive_dir=args.config_drive_dir,
            link_delay=args.link_delay,
            create_by_id_links=args.by_id_links,
            lie_about_device=args.lie_about_device,
            glusterfs_server=args.glusterfs_server,
            glusterfs_volume=args.glusterfs_volume,
            cephfs_mon=args.cephfs_mon,
            cephfs_name=args.cephfs_name,
            nfs_server=args.nfs_server,
        )
        mounts = {proto: path for proto, path in (
            ("GLUSTERFS", args.glusterfs_mount), ("CEPHFS", args.cephfs_mount),
            ("NFS", args.nfs_mount)) if path}
        if mounts:
            cloud.make_share_dir, cloud.remove_share_dir = directory_hooks(mounts)
        cloud.start()
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        print(f"fuxi-devcloud: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if args.clouds_yaml:
            write_atomically(
                args.clouds_yaml,
                yaml.safe_dump({"clouds": {args.cloud_name: cloud.cloud_config()}},
                               default_flow_style=False, sort_keys=False),
            )
        if args.ready_file:
            write_atomically(
                args.ready_file,
                json.dumps({"pid": os.getpid(), **ready_info(cloud)}, indent=2) + "\n",
            )
        print(f"devcloud listening on {cloud.url}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        cloud.stop()
        if args.ready_file:
            _remove(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
