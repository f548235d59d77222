"""What fuxi-server does for systemd: serve the socket fuxi.socket passes, and
say when it is ready and when it stops (sd_notify), without libsystemd.

Both work by environment variables systemd sets (LISTEN_PID/LISTEN_FDS,
NOTIFY_SOCKET); without systemd they are absent and nothing here does anything.
"""

import logging
import os
import socket

LOG = logging.getLogger(__name__)

# systemd passes its sockets as fds 3, 4, ... (sd_listen_fds(3)).
FIRST_PASSED_FD = 3


def passed_socket_paths() -> list[str]:
    """Paths of the unix sockets systemd passed this process, [] when not socket
    activated. The environment is left as it is: gunicorn's arbiter reads the
    same variables to serve these sockets."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    paths = []
    for fd in range(FIRST_PASSED_FD, FIRST_PASSED_FD + count):
        # fromfd dups the fd, so closing the probe leaves systemd's socket alone.
        with socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            name = probe.getsockname()
        paths.append(name if isinstance(name, str) else repr(name))
    return paths


class ReadinessNotifier:
    """sd_notify(3) over NOTIFY_SOCKET.

    The variable is taken out of the environment at start: gunicorn's arbiter
    would otherwise say READY=1 as soon as it has bound the socket, before the
    worker has reconciled this host and loaded the volume catalog, and the
    mount helpers and devcloud fuxi starts would inherit it. The worker says
    READY=1 itself when it can answer (systemd must then allow NotifyAccess=all).
    """

    def __init__(self, address: str | None):
        self.address = address

    @classmethod
    def take_from_environment(cls) -> "ReadinessNotifier":
        return cls(os.environ.pop("NOTIFY_SOCKET", None) or None)

    def notify(self, *assignments: str) -> None:
        """Send VAR=value lines (READY=1, STOPPING=1, STATUS=...); never fails the caller."""
        if not self.address:
            return
        address = self.address
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall("\n".join(assignments).encode())
        except OSError as exc:
            LOG.warning("could not tell systemd %s on %s: %s", ", ".join(assignments), self.address, exc)
