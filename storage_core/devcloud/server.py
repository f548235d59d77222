"""DevCloud: Keystone, Cinder, Nova and Manila on one loopback port, devstack-style paths.

``/identity`` is Keystone v3, ``/volume`` is Cinder v3, ``/compute`` is Nova
v2.1, ``/share`` is Manila v2 (shared file systems), ``/openstack`` is the metadata service of the local server (the host
fuxi runs on, emulated as a Nova guest), ``/devcloud`` holds test knobs.
Serving is the standard library's ThreadingHTTPServer: devcloud must start
in milliseconds inside any test and pull in no web framework.
"""

import fcntl
import logging
import os
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from storage_core.devcloud.backend import VolumeService
from storage_core.devcloud.backups import BackupService
from storage_core.devcloud.cinder import BlockStorage
from storage_core.devcloud.cinder_backups import BackupsAPI
from storage_core.devcloud.cinder_snapshots import SnapshotsAPI
from storage_core.devcloud.compute import ComputeService
from storage_core.devcloud.control import Control
from storage_core.devcloud.faults import FaultInjector
from storage_core.devcloud.hypervisor import (
    DEFAULT_SERVER_NAME,
    Hypervisor,
    HypervisorOptions,
)
from storage_core.devcloud.keystone import (  # noqa: F401  (re-exported constants)
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_PROJECT_NAME,
    DEFAULT_USERNAME,
    REGION_NAME,
    Identity,
)
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.loopdev import LoopDevices
from storage_core.devcloud.manila import SharedFileSystem
from storage_core.devcloud.metadata import MetadataService
from storage_core.devcloud.nova import Compute
from storage_core.devcloud.shares import ShareBackends, ShareService
from storage_core.devcloud.snapshots import SnapshotService
from storage_core.devcloud.store import Store
from storage_core.devcloud.tasks import Scheduler
from storage_core.devcloud.web import (GLOBAL_REQUEST_ID_HEADER, Request, RequestLog, ResetConnection, Response,
                                       cinder_error)

LOG = logging.getLogger(__name__)

DB_NAME = "devcloud.sqlite"
LOCK_NAME = "devcloud.lock"
VOLUMES_DIR = "volumes"
SNAPSHOTS_DIR = "snapshots"
BACKUPS_DIR = "backups"


class DevCloud:
    """An OpenStack-compatible cloud (Keystone + Cinder + Nova) over HTTP on loopback.

    State lives in ``state_dir`` and survives restarts and crashes. ``port=0``
    picks a free port at the first start; later starts reuse it so clients'
    catalog URLs stay valid.

    The keyword-only arguments shape the emulated hypervisor and the local
    guest (see :class:`HypervisorOptions`); ``hypervisor_options`` changes
    them while running.

    Manila's shares live on a file backend per protocol (see
    :class:`ShareBackends`: ``share_backends``, or its fields one by one as
    ``glusterfs_server``, ``glusterfs_volume``, ``cephfs_mon``,
    ``cephfs_name``, ``nfs_server``). ``make_share_dir(proto, share_id)``
    is called (off the HTTP threads) before a share becomes available, and
    ``remove_share_dir(proto, share_id)`` before a deleted one is gone;
    either raising puts the share in ``error`` / ``error_deleting``. The
    directory's place on its file system is
    ``share_backends.subdir(proto, share_id)``.
    """

    def __init__(self, state_dir, host="127.0.0.1", port=0, latency=None, faults=None,
                 executor=None, *, server_name=DEFAULT_SERVER_NAME, disk_root=None,
                 config_drive_dir=None, link_delay=0.0, create_by_id_links=True,
                 lie_about_device=False, share_backends=None, glusterfs_server=None,
                 glusterfs_volume=None, cephfs_mon=None, cephfs_name=None, nfs_server=None,
                 make_share_dir=None, remove_share_dir=None):
        self.state_dir = os.path.abspath(os.fspath(state_dir))
        self._hypervisor_options = HypervisorOptions(
            server_name=server_name, disk_root=disk_root, config_drive_dir=config_drive_dir,
            link_delay=link_delay, create_by_id_links=create_by_id_links,
            lie_about_device=lie_about_device,
        ).resolved(self.state_dir)
        backends = share_backends if share_backends is not None else ShareBackends()
        overrides = {k: v for k, v in (
            ("glusterfs_server", glusterfs_server), ("glusterfs_volume", glusterfs_volume),
            ("cephfs_mon", cephfs_mon), ("cephfs_name", cephfs_name),
            ("nfs_server", nfs_server)) if v is not None}
        self.share_backends = backends.updated(overrides)
        self.make_share_dir = make_share_dir
        self.remove_share_dir = remove_share_dir
        self.host = host
        self.port = port
        self.latency = LatencyProfile.coerce(latency)
        self.faults = faults if faults is not None else FaultInjector()
        self.region_name = REGION_NAME
        # Every request but /devcloud's own, per "METHOD /path", and the recent ones
        # with their request ids (GET /devcloud/requests).
        self.requests = RequestLog()
        self._executor = executor
        self._server = None
        self._thread = None
        self._lock_fd = None
        self._store = None
        self._scheduler = None
        self._copier = None
        self._compute = None

    # -- addresses and credentials -----------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("DevCloud has no port yet: call start() first")
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"  # what a client on this machine can reach
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def auth_url(self) -> str:
        return self.url + "/identity/v3"

    @property
    def auth(self) -> dict:
        return {
            "auth_url": self.auth_url,
            "username": DEFAULT_USERNAME,
            "password": DEFAULT_PASSWORD,
            "project_name": DEFAULT_PROJECT_NAME,
            "user_domain_name": DEFAULT_DOMAIN_NAME,
            "project_domain_name": DEFAULT_DOMAIN_NAME,
        }

    def cloud_config(self) -> dict:
        """One ``clouds:`` entry of a clouds.yaml."""
        return {
            "auth": self.auth,
            "region_name": self.region_name,
            "identity_api_version": 3,
            "block_storage_api_version": 3,
        }

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- the emulated hypervisor and guest -----------------------------------

    @property
    def hypervisor_options(self) -> HypervisorOptions:
        """The hypervisor's behaviour, directories resolved to absolute paths."""
        return self._hypervisor_options

    @hypervisor_options.setter
    def hypervisor_options(self, options: HypervisorOptions):
        old = self._hypervisor_options
        self._hypervisor_options = options.resolved(self.state_dir)
        if self._compute is not None:
            new = self._hypervisor_options
            if new.server_name != old.server_name:
                self._compute.ensure_local_server(new.server_name)
            self._compute.sync_guest(old_disk_root=old.disk_root)

    @property
    def disk_root(self) -> str:
        """Where the local guest's by-id/by-path links are (its /dev/disk)."""
        return self._hypervisor_options.disk_root

    @property
    def config_drive_dir(self) -> str:
        """Where the config drive is "mounted"; "" when there is none."""
        return self._hypervisor_options.config_drive_dir

    @property
    def metadata_url(self) -> str:
        """Base URL of the metadata service (its paths start /openstack)."""
        return self.url

    def local_server(self) -> dict:
        """The server record (id, name, ...) of the host fuxi runs on."""
        self._require_running()
        return dict(self._compute.ensure_local_server(self._hypervisor_options.server_name))

    def servers(self) -> list[dict]:
        """Every server of the cloud, newest first."""
        self._require_running()
        return [dict(s) for s in self._compute.list_servers()]

    def create_server(self, name) -> dict:
        """Another server (another guest, on a compute host of its own)."""
        self._require_running()
        return dict(self._compute.create_server(name))

    def _require_running(self):
        if self._compute is None:
            raise RuntimeError("DevCloud is not running: call start() first")

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> "DevCloud":
        """Recover the state dir, then serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("DevCloud is already running")
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self._lock_state_dir()
        try:
            self._start()
        except BaseException:
            self._teardown()
            raise
        LOG.info("devcloud serving %s from %s", self.url, self.state_dir)
        return self

    def _start(self):
        self._store = Store(os.path.join(self.state_dir, DB_NAME))
        # Bind first (the catalog needs the port), serve only after recovery;
        # early connections just wait in the listen backlog.
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._scheduler = Scheduler()
        # Data copies (snapshots, backups, volumes made of them) on a thread
        # of their own: a long copy holds up no other transition.
        self._copier = Scheduler(name="devcloud-copies")
        self._identity = Identity(self._store, lambda: self.url, self.faults)
        self._backend = VolumeService(
            self._store,
            os.path.join(self.state_dir, VOLUMES_DIR),
            LoopDevices(self._executor),
            self._scheduler,
            lambda: self.latency,
            copier=self._copier,
        )
        self._snapshots = SnapshotService(
            self._store, os.path.join(self.state_dir, SNAPSHOTS_DIR), self._backend,
            self._scheduler, lambda: self.latency, copier=self._copier,
        )
        self._backups = BackupService(
            self._store, os.path.join(self.state_dir, BACKUPS_DIR), self._backend,
            self._snapshots, self._scheduler, lambda: self.latency, copier=self._copier,
        )
        self._compute = ComputeService(
            self._store,
            self._backend,
            Hypervisor(lambda: self._hypervisor_options),
            self._scheduler,
            lambda: self._hypervisor_options,
            self._identity.project_id,
            self._identity.user_id,
        )
        self._shares = ShareService(
            self._store,
            self._scheduler,
            lambda: self.latency,
            lambda: self.share_backends,
            make_share_dir=lambda proto, sid: self._call_share_hook(
                self.make_share_dir, proto, sid),
            remove_share_dir=lambda proto, sid: self._call_share_hook(
                self.remove_share_dir, proto, sid),
        )
        self._apps = (
            ("/identity", self._identity.handle),
            ("/volume", BlockStorage(self._backend, self._identity, self.faults,
                                     lambda: self.url,
                                     extensions=(SnapshotsAPI(self._snapshots, self._backend),
                                                 BackupsAPI(self._backups))).handle),
            ("/compute", Compute(self._compute, self._identity, self.faults,
                                 lambda: self.url).handle),
            ("/share", SharedFileSystem(self._shares, self._identity, self.faults,
                                        lambda: self.url).handle),
            ("/openstack", MetadataService(self._compute).handle),
            ("/devcloud", Control(self).handle),
        )
        self._backend.recover()
        self._snapshots.recover()
        self._backups.recover()
        self._compute.recover(self._hypervisor_options.server_name)
        self._shares.recover()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"devcloud-{self.port}", daemon=True,
        )
        self._thread.start()

    @staticmethod
    def _call_share_hook(hook, proto, share_id):
        if hook is not None:
            hook(proto, share_id)

    def stop(self) -> None:
        """Stop serving; pending transitions are finished at the next start."""
        if self._server is None:
            return
        self._server.shutdown()
        self._teardown()
        LOG.info("devcloud on port %s stopped", self.port)

    def _teardown(self):
        if self._server is not None:
            self._server.server_close()
            self._server.drop_connections()
            self._server.wait_idle(timeout=10)
            self._server = None
        if self._compute is not None:
            self._compute.stop()  # before the store closes under its jobs
            self._compute = None
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._copier is not None:
            self._copier.stop()
            self._copier = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._thread = None

    def _lock_state_dir(self):
        # Two clouds on one state dir would bind the same files twice; the
        # kernel drops the lock when the process dies, even by kill -9.
        fd = os.open(os.path.join(self.state_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"{self.state_dir} is in use by another devcloud") from None
        self._lock_fd = fd

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- requests ------------------------------------------------------------

    def dispatch(self, req: Request) -> Response:
        if not (req.path == "/devcloud" or req.path.startswith("/devcloud/")):
            self.requests.add(req.method, req.path, req.headers.get(GLOBAL_REQUEST_ID_HEADER), req.request_id)
        for prefix, handle in self._apps:
            if req.path == prefix or req.path.startswith(prefix + "/"):
                return handle(req, req.path[len(prefix):])
        return cinder_error(404, "The resource could not be found.")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The stdlib's backlog of 5 refuses connections under benchmark load.
    request_queue_size = 128

    def __init__(self, address, cloud):
        self.cloud = cloud
        self._conns = set()
        self._busy = 0
        self._cond = threading.Condition()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self._cond:
            self._conns.add(request)
        super().process_request(request, client_address)

    def close_request(self, request):
        with self._cond:
            self._conns.discard(request)
        super().close_request(request)

    def drop_connections(self):
        """End idle keep-alive connections, so their threads end too."""
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def busy(self, delta):
        with self._cond:
            self._busy += delta
            self._cond.notify_all()

    def wait_idle(self, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as keystoneauth's sessions expect
    # Headers and body go out in separate writes; with Nagle on, the client's
    # delayed ACK holds the body back ~40 ms on every call.
    disable_nagle_algorithm = True
    server_version = "devcloud/1"
    timeout = 120  # idle keep-alive connections do not hold a thread forever

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _serve(self):
        started = time.monotonic()
        self.server.busy(+1)
        try:
            self._serve_one(started)
        finally:
            self.server.busy(-1)

    def _serve_one(self, started):
        body = self._read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        path = "/".join(unquote(seg) for seg in split.path.split("/"))
        req = Request(
            method=self.command,
            path=path.rstrip("/") or "/",
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            resp = self.server.cloud.dispatch(req)
        except ResetConnection:
            LOG.info("%s %s: dropping the connection (injected fault)", self.command, self.path)
            # Linger 0: close with a reset instead of an orderly FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        except Exception:
            LOG.exception("%s %s failed", self.command, self.path)
            resp = cinder_error(500, "The server has either erred or is incapable of "
                                     "performing the requested operation.")
        payload, headers = resp.encoded()
        headers.setdefault("x-openstack-request-id", req.request_id)
        try:
            self.send_response(resp.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD" and payload:
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client went away; nothing to tell it
        LOG.debug("[%s %s] %s %s -> %s (%.3f s)", req.request_id, req.headers.get(GLOBAL_REQUEST_ID_HEADER) or "-",
                  self.command, self.path, resp.status, time.monotonic() - started)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        return self.rfile.read(length) if length > 0 else b""

    def log_request(self, code="-", size="-"):
        pass  # _serve_one logs every request, with its duration

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        LOG.debug("%s - %s", self.address_string(), format % args)
