"""fuxi-csi: a Container Storage Interface driver for Kubernetes on OpenStack.

A second consumer of storage_core beside fuxi, and built only
on it: Cinder volumes (through Nova on VM nodes, through Cinder's attachments
and os-brick on bare metal) and Manila shares. Nothing here imports fuxi.
"""

import os

# gRPC's fork handlers restart its poller in a forked child, where closing the
# child's file descriptors before exec (subprocess, oslo's processutils) then
# aborts it: `blockdev`, `mount` ... die with SIGABRT about 7% of the time
# (grpcio >= 1.81, grpc/grpc#43055). fuxi-csi forks only to exec, so the handlers
# are not wanted. Set before any module imports grpc, which reads it once.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

DRIVER_NAME = "fuxi.csi.openstack.org"
TOPOLOGY_ZONE_KEY = "topology.fuxi.csi.openstack.org/zone"
