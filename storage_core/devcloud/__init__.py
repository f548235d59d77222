"""devcloud: a small OpenStack-compatible cloud (Keystone v3 + Cinder v3) on loopback.

Fuxi's embedded default cloud, its test cloud and its benchmark cloud. Clients
drive it with the real openstacksdk over HTTP; volumes are sparse files that
attachments export as loop devices (os-brick's LOCAL connector).
"""

from storage_core.devcloud.faults import FaultInjector
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.server import DevCloud

__all__ = ["DevCloud", "FaultInjector", "LatencyProfile"]
