"""Who this host is, as the cloud should see it."""

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class HostIdentity:
    name: str
    ip: str

    @classmethod
    def detect(cls, name=None, ip=None) -> "HostIdentity":
        name = name or socket.gethostname()
        if not ip:
            try:
                ip = socket.gethostbyname(name)
            except OSError:
                ip = "127.0.0.1"
        return cls(name=name, ip=ip)
