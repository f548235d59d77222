"""fuxi-server: the plugin, served by gunicorn on dockerd's unix socket.

One worker process (mount counts and locks live in it) with request threads,
and a request timeout above Docker's 120 s so gunicorn never kills a slow but
healthy attach.
"""

import errno
import grp
import logging
import os
import socket
import ssl
import stat
import sys
import threading

from gunicorn.app.base import BaseApplication

# Only light modules here: the gunicorn master imports this one and stays small.
# Flask, openstacksdk and os-brick (tens of MB) are imported by the worker alone,
# and by a short-lived child for the pre-flight checks.
from fuxi import settings as settings_mod
from fuxi.devcloud_process import DevcloudError, DevcloudProcess
from fuxi.systemd_integration import ReadinessNotifier, passed_socket_paths
from storage_core.config import HOW_TO_CONFIGURE, CloudConfig
from storage_core.errors import StorageError
from storage_core.leases import renewal_interval

LOG = logging.getLogger("fuxi.server")

SOCKET_MODE = 0o660
SOCKET_GROUP = "docker"
# Above Docker's longest deadline (120 s for Create and Mount).
REQUEST_TIMEOUT = 180
# How long an idle client connection stays open (a stop closes them at once).
KEEPALIVE_SECONDS = 75
# How long a stop waits for the calls under way: above Docker's longest deadline.
STOP_GRACE_SECONDS = 120
# A TCP client gets this long to finish its TLS handshake (it holds a request thread).
TLS_HANDSHAKE_TIMEOUT = 10


class StartupError(Exception):
    pass


def claim_socket(path) -> None:
    """Make `path` free to bind: remove a stale socket, refuse a live one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"{path} exists and is not a socket; move it away or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise StartupError(f"cannot check socket {path}: {exc}") from exc
        LOG.info("removing stale socket %s", path)
        os.unlink(path)
        return
    finally:
        probe.close()
    raise StartupError(
        f"another fuxi-server is already serving on {path}; stop it first or choose another --socket"
    )


def check_passed_sockets(settings, paths) -> None:
    """Socket activation: fuxi serves exactly the sockets systemd passed."""
    if settings.tcp_listener() is not None:
        raise StartupError(
            f"tcp_listen = {settings.tcp_listen} cannot be served under socket activation (systemd "
            f"passed {', '.join(paths)}); run fuxi-server without fuxi.socket, or leave tcp_listen empty"
        )
    if settings.socket not in paths:
        LOG.warning("serving the socket systemd passed (%s), not socket = %s; point the fuxi CLI "
                    "at it with --socket", ", ".join(paths), settings.socket)
    LOG.info("socket activated: serving %s", ", ".join(paths))


def secure_socket(path) -> None:
    """dockerd runs as root; members of group docker may use the plugin too."""
    os.chmod(path, SOCKET_MODE)
    try:
        gid = grp.getgrnam(SOCKET_GROUP).gr_gid
    except KeyError:
        return
    os.chown(path, -1, gid)


class TcpOnlyTLS:
    """What gunicorn's `ssl_context` hook returns: TLS on the TCP listener only.

    gunicorn wraps every accepted connection once certfile is set, the unix
    socket's too, which dockerd speaks plain HTTP on. This wraps TCP
    connections with the one server context (client certificate required) and
    hands unix-socket connections back untouched. The handshake is done here,
    bounded, and a failed one closes the connection without an answer (gunicorn
    would write a plain-text 400 into it).
    """

    def __init__(self):
        self._make_context = None
        self._context = None
        self._lock = threading.Lock()

    def __call__(self, conf, default_context_factory):
        """gunicorn's hook, called for each connection: the server context is
        made once, from gunicorn's factory (certfile, keyfile, ca_certs, cert_reqs)."""
        self._make_context = default_context_factory
        return self

    def _server_context(self):
        with self._lock:
            if self._context is None:
                self._context = self._make_context()
            return self._context

    def wrap_socket(self, sock, server_side=True, suppress_ragged_eofs=True, do_handshake_on_connect=True):
        if sock.family == socket.AF_UNIX:
            return sock
        try:
            peer = sock.getpeername()
        except OSError:
            peer = "?"
        sock.settimeout(TLS_HANDSHAKE_TIMEOUT)
        try:
            wrapped = self._server_context().wrap_socket(
                sock, server_side=True, suppress_ragged_eofs=suppress_ragged_eofs,
                do_handshake_on_connect=False,
            )
            wrapped.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            LOG.warning("TCP client %s refused at the TLS handshake: %s", peer, exc)
            sock.close()
            # EOF: gunicorn closes the connection quietly instead of answering.
            raise ssl.SSLError(ssl.SSL_ERROR_EOF, f"TLS handshake failed: {exc}") from None
        wrapped.setblocking(True)
        return wrapped


class PluginServer(BaseApplication):
    def __init__(self, settings, config, socket_activated=False, notifier=None):
        self._settings = settings
        self._config = config
        # Serving the socket systemd passed (gunicorn takes it from LISTEN_FDS):
        # systemd made it with its owner and mode, and keeps it across restarts.
        self._socket_activated = socket_activated
        self._notifier = notifier or ReadinessNotifier(None)
        super().__init__()

    def load_config(self):
        s = self._settings
        self.cfg.set("bind", [f"unix:{s.socket}"])
        tcp = s.tcp_listener()
        if tcp is not None:
            # Only ever with TLS and a client certificate signed by the configured CA.
            self.cfg.set("bind", [f"unix:{s.socket}", tcp.bind])
            self.cfg.set("certfile", tcp.cert_file)
            self.cfg.set("keyfile", tcp.key_file)
            self.cfg.set("ca_certs", tcp.client_ca_file)
            self.cfg.set("cert_reqs", ssl.CERT_REQUIRED)
            # TcpOnlyTLS.wrap_socket does the handshake; gunicorn must not ask the
            # unix socket's plain connections for one.
            self.cfg.set("do_handshake_on_connect", True)
            # Used in the worker only (the master never wraps a connection).
            self.cfg.set("ssl_context", TcpOnlyTLS())
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", s.threads)
        self.cfg.set("timeout", REQUEST_TIMEOUT)
        # dockerd keeps its plugin connections open with no idle limit and reuses
        # them; a server that closes idle ones after gunicorn's 2 s races every
        # request sent at that moment ("connection closed without response").
        self.cfg.set("keepalive", KEEPALIVE_SECONDS)
        # On SIGTERM the worker stops accepting and finishes the calls under way;
        # Docker gives a Create or Mount up to 120 s.
        self.cfg.set("graceful_timeout", STOP_GRACE_SECONDS)
        self.cfg.set("loglevel", s.log_level.lower())
        # gunicorn's own lines (start, worker boot, signals) in fuxi's format too.
        self.cfg.set("logger_class", "fuxi.log_format.GunicornLogger")
        self.cfg.set("control_socket_disable", True)
        self.cfg.set("proc_name", "fuxi-server")
        if not self._socket_activated:
            self.cfg.set("when_ready", lambda arbiter: secure_socket(s.socket))

    def load(self):
        # Runs in the worker after fork: sessions, threads and SQLite are made there.
        # First of all, the worker logs in the configured format whatever the master
        # was set up with (imports below may warn), gunicorn's own lines (a worker's
        # exit, a failed request) included.
        from fuxi import log_format

        _configure_logging(self._settings.log_level, self._settings.checked_log_format())
        log_format.route_gunicorn_logs_to_root()

        from fuxi.app import create_app
        from fuxi.metrics import serve_metrics
        from storage_core.factory import build_volume_service

        service = build_volume_service(self._config)
        # Before the first request: mend what a crash or a reboot left, then learn
        # the cloud's volumes, so Get and List are right from the first call.
        try:
            service.reconcile()
            service.refresh_catalog()
        except StorageError as exc:
            LOG.error("start-up reconciliation stopped: %s; the next mount or remove of each "
                      "volume finishes it", exc)
        service.start_refreshing(self._config.refresh_interval)
        service.start_leasing(renewal_interval(self._config.lease_seconds))
        if service.pools is not None:
            service.pools.start()
        # From this worker, on an address of their own (None when metrics_listen is empty).
        metrics = serve_metrics(service, self._settings.metrics_address())

        self._notifier.notify("READY=1", "STATUS=serving Docker volume calls")
        notifier = self._notifier

        def stop_background(server, worker):
            # After the calls under way have finished (gunicorn's graceful wait) and
            # before the worker goes: no refresh or fill half-way; pool volumes stay
            # as they are, and nothing mounted is unmounted or detached.
            notifier.notify("STOPPING=1", "STATUS=stopping: background refresh and pool keeper")
            service.stop_refreshing()
            if service.pools is not None:
                service.pools.stop()
            if metrics is not None:
                metrics.close()

        self.cfg.set("worker_exit", stop_background)
        return create_app(service, metrics)


def preflight(config) -> None:
    """Fail before serving when the cloud cannot be configured or this host cannot
    attach the configured way (no cloud calls). Run in a forked child, so the
    master never imports openstacksdk."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, report, leave without running any atexit code
        os.close(read_fd)
        message = ""
        try:
            from storage_core.factory import check_cloud, check_host

            check_cloud(config.cloud)
            check_host(config)
        except StorageError as exc:
            message = str(exc)
        except BaseException as exc:  # the parent must hear of any failure
            message = f"pre-flight checks failed: {exc!r}"
        os.write(write_fd, message.encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _pid, status = os.waitpid(pid, 0)
    if chunks:
        raise StartupError(b"".join(chunks).decode())
    if status != 0:
        raise StartupError(f"pre-flight checks died (wait status {status})")


def _configure_logging(level, log_format="text"):
    # One stderr handler, text or JSON, with request ids and secrets masked.
    from fuxi import log_format as formats

    formats.configure(level, log_format)


def main(argv=None) -> int:
    devcloud = None
    # Taken before any child starts (devcloud, pre-flight, mount helpers): only
    # the worker may tell systemd that fuxi is ready.
    notifier = ReadinessNotifier.take_from_environment()
    try:
        settings = settings_mod.load(argv)
        _configure_logging(settings.log_level, settings.checked_log_format())
        cloud, host_defaults = None, None
        if settings.devcloud:
            devcloud = DevcloudProcess(
                os.path.join(settings.state_dir, "devcloud"), settings.devcloud_latency_profile,
                extra_args=settings.devcloud_extra_args(),
            )
            entry = devcloud.start()
            LOG.info("devcloud is up at %s", entry["auth"]["auth_url"])
            cloud = CloudConfig(auth=entry["auth"], region_name=entry.get("region_name"))
            host_defaults = devcloud.host_defaults()
        config = settings.storage_config(cloud, host_defaults)
        if not config.cloud.configured:
            raise StartupError(HOW_TO_CONFIGURE)
        preflight(config)
        os.makedirs(settings.state_dir, exist_ok=True)
        passed = passed_socket_paths()
        if passed:
            check_passed_sockets(settings, passed)
        else:
            claim_socket(settings.socket)
        PluginServer(settings, config, socket_activated=bool(passed), notifier=notifier).run()
        return 0
    except (StartupError, settings_mod.SettingsError, DevcloudError, StorageError) as exc:
        print(f"fuxi-server: {exc}", file=sys.stderr)
        return 2
    finally:
        if devcloud is not None:
            devcloud.stop()


if __name__ == "__main__":
    sys.exit(main())
