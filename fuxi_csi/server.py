"""fuxi-csi: serve the CSI Identity, Controller and Node services on a unix socket.

    fuxi-csi --endpoint unix:///csi/csi.sock --config-file /etc/fuxi-csi/fuxi-csi.conf \\
             --services controller          # or node, or controller,node
"""

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc

from fuxi_csi import settings as csi_settings
from fuxi_csi.call_log import CallLog
from fuxi_csi.identity import Identity
from fuxi_csi.stubs import csi_grpc
from storage_core.errors import StorageError

LOG = logging.getLogger("fuxi_csi")
SERVICES = ("controller", "node")
# Sidecars and kubelet call one at a time per volume, but many volumes at once.
WORKERS = 16
# How long calls under way may finish at SIGTERM (kubelet's grace is 30 s).
STOP_GRACE = 25.0


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fuxi-csi", description="CSI driver for OpenStack Cinder and Manila")
    parser.add_argument("--endpoint", default="unix:///csi/csi.sock",
                        help="where to serve: unix:///PATH (default: %(default)s)")
    parser.add_argument("--config-file", help="fuxi-csi.conf ([csi] and [pool:NAME] sections)")
    parser.add_argument("--services", default="controller,node",
                        help=f"which of {', '.join(SERVICES)} to serve besides Identity (default: %(default)s)")
    return parser


def socket_path(endpoint) -> str:
    prefix = "unix://" if endpoint.startswith("unix://") else "unix:"
    path = endpoint[len(prefix):] if endpoint.startswith(prefix) else ""
    if path.startswith("/") and not path.startswith("//"):
        return path
    raise csi_settings.SettingsError(f"--endpoint {endpoint!r} is not unix:///ABSOLUTE/PATH")


def parse_services(text) -> tuple[str, ...]:
    wanted = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    unknown = [s for s in wanted if s not in SERVICES]
    if unknown or not wanted:
        raise csi_settings.SettingsError(f"--services {text!r}: use one or both of {', '.join(SERVICES)}")
    return wanted


def build_server(config, services, zone, path) -> "tuple[grpc.Server, object]":
    """The gRPC server for `services`, bound at `path`, and the storage_core
    VolumeService under it."""
    from storage_core.executor import Executor
    from storage_core.factory import build_volume_service
    from storage_core.fs import Filesystems

    # kubelet unstages every volume it staged: a count is never stale. A
    # controller alone mounts nothing: what its host holds is a node's. A node
    # binds each volume at kubelet's paths: a bind may outlive the mount.
    service = build_volume_service(config, judge_stale_mounts=False, mounts_here="node" in services,
                                   binds_mounts="node" in services)
    if "node" in services:
        try:
            # Mend what a crash or a reboot left on this node before the first call
            # (each repair is logged).
            service.reconcile()
        except StorageError as exc:
            LOG.error("start-up reconciliation stopped: %s; the next stage or unstage of each volume "
                      "finishes it", exc)
    server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="csi"),
                         interceptors=[CallLog()])
    csi_grpc.add_IdentityServicer_to_server(Identity("controller" in services), server)
    if "controller" in services:
        from fuxi_csi.controller import Controller

        csi_grpc.add_ControllerServicer_to_server(
            Controller(service, config.default_backend, config.limits), server)
        if service.pools is not None:
            service.pools.start()
    if "node" in services:
        from fuxi_csi.node import Node

        node_id, zone = _node_identity(config, zone)
        csi_grpc.add_NodeServicer_to_server(Node(service, Filesystems(Executor()), node_id, zone), server)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # a socket left by an earlier run; kubelet re-registers on restart
    server.add_insecure_port("unix://" + path)
    return server, service


def _node_identity(config, zone) -> tuple[str, str | None]:
    """This node's id and zone: a Nova instance's zone is in its metadata when
    `availability_zone` is not configured."""
    from fuxi_csi.node_ids import node_id_for
    from storage_core.factory import check_host
    from storage_core.host import HostIdentity, InstanceLocator

    mode = check_host(config)
    if mode == "nova":
        locator = InstanceLocator.from_config(config)
        server_id = locator.find().uuid
        return node_id_for(mode, server_id=server_id), zone or (locator.meta_data() or {}).get("availability_zone")
    return node_id_for(mode, host_name=HostIdentity.detect(config.host_name, config.host_ip).name), zone


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        loaded = csi_settings.load(args.config_file)
        services = parse_services(args.services)
        path = socket_path(args.endpoint)
    except csi_settings.SettingsError as exc:
        print(f"fuxi-csi: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=loaded.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server, service = build_server(loaded.storage, services, loaded.availability_zone, path)
    except StorageError as exc:
        LOG.error("cannot start: %s", exc)
        return 1
    stopping = threading.Event()

    def stop(signum, _frame):
        LOG.info("signal %d: stopping after the calls under way (at most %.0f s)", signum, STOP_GRACE)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    LOG.info("serving CSI identity, %s on %s", ", ".join(services), path)
    stopping.wait()
    server.stop(STOP_GRACE).wait()
    service.stop_refreshing()
    if service.pools is not None:
        service.pools.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
