"""fuxi-csi: a Container Storage Interface driver for Kubernetes on OpenStack.

A second consumer of storage_core beside fuxi's Docker plugin, and built only
on it: Cinder volumes (through Nova on VM nodes, through Cinder's attachments
and os-brick on bare metal) and Manila shares. Nothing here imports fuxi.
"""

DRIVER_NAME = "fuxi.csi.openstack.org"
TOPOLOGY_ZONE_KEY = "topology.fuxi.csi.openstack.org/zone"
