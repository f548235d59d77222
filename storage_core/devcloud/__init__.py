"""devcloud: a small OpenStack-compatible cloud (Keystone v3, Cinder v3, Nova v2.1, Manila v2).

Fuxi's embedded default cloud, its test cloud and its benchmark cloud. Clients
drive it with the real openstacksdk over HTTP; volumes are sparse files that
attachments export as loop devices (os-brick's LOCAL connector). Its Nova
treats the host as a guest: attached volumes show up under a by-id/by-path
tree of its own, in a metadata service and on a config drive.
"""

from storage_core.devcloud.faults import FaultInjector
from storage_core.devcloud.hypervisor import HypervisorOptions
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.server import DevCloud
from storage_core.devcloud.shares import ShareBackends

__all__ = ["DevCloud", "FaultInjector", "HypervisorOptions", "LatencyProfile", "ShareBackends"]
