"""The CSI Controller service: volumes and snapshots in the cloud, and Cinder
volumes attached to Nova servers (ControllerPublish).

Volume ids are storage_core volume names (Kubernetes' `pvc-...`), so a
repeated CreateVolume is storage_core's idempotent create of that name.
Snapshot ids are Cinder's.
"""

import logging

from fuxi_csi import TOPOLOGY_ZONE_KEY
from fuxi_csi.capabilities import requested_fstype, unsupported
from fuxi_csi.errors import Code, answering, known_name, require, volume_name
from fuxi_csi.node_ids import parse_node_id
from fuxi_csi.sizes import GIB, OutOfRange, check_within, size_gb_for
from fuxi_csi.snapshots import SnapshotCalls
from fuxi_csi.stubs import csi, csi_grpc
from storage_core.errors import NotFound
from storage_core.models import MULTIATTACH_KEY

LOG = logging.getLogger(__name__)

# StorageClass parameters, each the storage_core create option of that name
# (`proto` is Manila's share protocol).
VOLUME_PARAMETERS = ("backend", "type", "availability_zone", "fstype", "multiattach")
SHARE_PARAMETERS = ("backend", "proto", "share_type", "share_network", "availability_zone")
# The external-provisioner adds these (PVC name and namespace, PV name); not options.
PROVISIONER_PREFIX = "csi.storage.k8s.io/"

RPC = csi.ControllerServiceCapability.RPC.Type
CAPABILITIES = (RPC.CREATE_DELETE_VOLUME, RPC.PUBLISH_UNPUBLISH_VOLUME, RPC.CREATE_DELETE_SNAPSHOT,
                RPC.LIST_SNAPSHOTS, RPC.CLONE_VOLUME, RPC.EXPAND_VOLUME, RPC.SINGLE_NODE_MULTI_WRITER)


class Controller(SnapshotCalls, csi_grpc.ControllerServicer):
    def __init__(self, service, default_backend, limits):
        self._service = service
        self._default_backend = default_backend
        self._limits = limits

    # -- volumes ------------------------------------------------------------

    def CreateVolume(self, request, context):
        name = require(context, request.name, "name")
        require(context, request.volume_capabilities, "volume_capabilities")
        options = self._options(request, context)
        backend = options["backend"]
        why = unsupported(request.volume_capabilities, backend)
        if why:
            context.abort(Code.INVALID_ARGUMENT, why)
        with answering(context, conflict=Code.ALREADY_EXISTS, not_owned=Code.ALREADY_EXISTS):
            vol = self._service.create(name, options)
        try:
            check_within(vol.size_gb, request.capacity_range)
        except OutOfRange as exc:
            context.abort(Code.OUT_OF_RANGE, str(exc))
        # Only a zone asked for constrains where pods go: nodes that report no zone
        # (bare metal, unless configured) could never use a volume that named one.
        zone = options.get("availability_zone") if backend == "cinder" else None
        return csi.CreateVolumeResponse(volume=csi.Volume(
            volume_id=name,
            capacity_bytes=vol.size_gb * GIB,
            volume_context={"backend": backend},
            content_source=request.volume_content_source if request.HasField("volume_content_source") else None,
            # A share is reached over the network from any zone.
            accessible_topology=[csi.Topology(segments={TOPOLOGY_ZONE_KEY: zone})] if zone else [],
        ))

    def _options(self, request, context) -> dict:
        """storage_core create options from the StorageClass parameters and the request."""
        params = {k: v for k, v in request.parameters.items() if not k.startswith(PROVISIONER_PREFIX)}
        backend = params.get("backend", self._default_backend).strip().lower()
        allowed = SHARE_PARAMETERS if backend == "manila" else VOLUME_PARAMETERS
        unknown = sorted(k for k in params if k not in allowed)
        if unknown:
            context.abort(Code.INVALID_ARGUMENT,
                          f"StorageClass parameter {unknown[0]!r} is not known for backend {backend}; "
                          f"allowed: {', '.join(allowed)} (and {PROVISIONER_PREFIX}*)")
        options = dict(params, backend=backend)
        try:
            size_gb = size_gb_for(request.capacity_range, self._limits.default_size_gb)
        except OutOfRange as exc:
            context.abort(Code.OUT_OF_RANGE, str(exc))
        if size_gb is not None and size_gb > self._limits.max_size_gb:
            context.abort(Code.OUT_OF_RANGE, f"{size_gb} GiB is more than this driver's max_size_gb "
                                             f"({self._limits.max_size_gb} GiB)")
        if size_gb is not None:
            options["size"] = str(size_gb)
        source = self._source_option(request, context)
        if source:
            # A copy has its source's file system: no fstype to ask for.
            options.pop("fstype", None)
            options.update(source)
        elif backend == "cinder" and "fstype" not in options:
            fstype = requested_fstype(request.volume_capabilities)
            if fstype:
                options["fstype"] = fstype
        zone = _zone_of(request.accessibility_requirements)
        if zone and "availability_zone" not in options and backend == "cinder":
            options["availability_zone"] = zone
        return options

    def _source_option(self, request, context) -> dict:
        if not request.HasField("volume_content_source"):
            return {}
        source = request.volume_content_source
        if source.HasField("snapshot"):
            return {"snapshot": require(context, source.snapshot.snapshot_id, "volume_content_source.snapshot_id")}
        if source.HasField("volume"):
            return {"source": known_name(context, source.volume.volume_id, "volume_content_source.volume_id")}
        context.abort(Code.INVALID_ARGUMENT, "volume_content_source names neither a snapshot nor a volume")

    def DeleteVolume(self, request, context):
        require(context, request.volume_id, "volume_id")
        name = volume_name(request.volume_id)
        if name is None:  # it names no volume: deleted already
            return csi.DeleteVolumeResponse()
        with answering(context):
            self._service.remove(name)
        return csi.DeleteVolumeResponse()

    def ValidateVolumeCapabilities(self, request, context):
        name = known_name(context, request.volume_id)
        require(context, request.volume_capabilities, "volume_capabilities")
        with answering(context):
            info = self._service.get(name)
        why = unsupported(request.volume_capabilities, info.status.get("backend"))
        if why:
            return csi.ValidateVolumeCapabilitiesResponse(message=why)
        return csi.ValidateVolumeCapabilitiesResponse(confirmed=csi.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context, volume_capabilities=request.volume_capabilities,
            parameters=request.parameters))

    def ControllerExpandVolume(self, request, context):
        name = known_name(context, request.volume_id)
        require(context, request.HasField("capacity_range"), "capacity_range")
        with answering(context):
            info = self._service.describe(name).info  # the cloud's size now, not the catalog's
        try:
            wanted = size_gb_for(request.capacity_range, info.status["size_gb"]) or info.status["size_gb"]
        except OutOfRange as exc:
            context.abort(Code.OUT_OF_RANGE, str(exc))
        if wanted > self._limits.max_size_gb:
            context.abort(Code.OUT_OF_RANGE, f"{wanted} GiB is more than this driver's max_size_gb "
                                             f"({self._limits.max_size_gb} GiB)")
        size = info.status["size_gb"]
        if wanted > size:
            with answering(context):
                size = self._service.extend(name, wanted, hosts_grow_themselves=True).new_size_gb
        # A block device's file system grows on its node; a share's mounts see the size at once.
        return csi.ControllerExpandVolumeResponse(capacity_bytes=size * GIB,
                                                  node_expansion_required=info.status["backend"] == "cinder")

    # -- publishing ---------------------------------------------------------

    def ControllerPublishVolume(self, request, context):
        name = known_name(context, request.volume_id)
        node_id = require(context, request.node_id, "node_id")
        require(context, request.HasField("volume_capability"), "volume_capability")
        node = parse_node_id(node_id)
        if node is None:
            context.abort(Code.NOT_FOUND, f"node {node_id!r} is not a node id fuxi-csi reports "
                                          "(nova:SERVER_ID or host:NAME)")
        with answering(context):
            backend = self._service.get(name).status["backend"]  # the catalog's: no cloud call
        why = unsupported([request.volume_capability], backend)
        if why:
            context.abort(Code.INVALID_ARGUMENT, why)
        if backend != "cinder":
            return csi.ControllerPublishVolumeResponse(publish_context={"attach": "node"})
        if node.server_id is None:
            with answering(context):
                details = self._service.describe(name)  # the cloud's attachments now
            self._refuse_held_elsewhere(context, name, details, node.host_name)
            # A bare-metal node attaches the volume itself when it stages it.
            return csi.ControllerPublishVolumeResponse(publish_context={"attach": "node"})
        with answering(context):
            self._service.attach_to_server(name, node.server_id)
        return csi.ControllerPublishVolumeResponse(publish_context={"attach": "nova", "server_id": node.server_id})

    @staticmethod
    def _refuse_held_elsewhere(context, name, details, host_name):
        shared = details.metadata.get(MULTIATTACH_KEY) == "shared"
        others = sorted({a["host"] or a["server_id"] for a in details.cloud_attachments} - {host_name})
        if others and not shared:
            context.abort(Code.FAILED_PRECONDITION,
                          f"volume {name!r} is attached to {', '.join(others)}; it is on one node at a time")

    def ControllerUnpublishVolume(self, request, context):
        name = volume_name(require(context, request.volume_id, "volume_id"))
        node = parse_node_id(request.node_id) if request.node_id else None
        if name is None or request.node_id and (node is None or node.server_id is None):
            # A bare-metal node (or none fuxi-csi knows) detaches at NodeUnstage.
            return csi.ControllerUnpublishVolumeResponse()
        with answering(context):
            try:
                if self._service.get(name).status["backend"] != "cinder":
                    return csi.ControllerUnpublishVolumeResponse()
                # No node named: from every server it is on.
                servers = [node.server_id] if node else sorted(
                    {a["server_id"] for a in self._service.describe(name).cloud_attachments if a["server_id"]})
            except NotFound:
                return csi.ControllerUnpublishVolumeResponse()
            for server_id in servers:
                self._service.detach_from_server(name, server_id)
        return csi.ControllerUnpublishVolumeResponse()

    def ControllerGetCapabilities(self, request, context):
        return csi.ControllerGetCapabilitiesResponse(capabilities=[
            csi.ControllerServiceCapability(rpc=csi.ControllerServiceCapability.RPC(type=t)) for t in CAPABILITIES])


def _zone_of(requirements) -> str | None:
    """The zone to create in: the first preferred topology's, else the first requisite's."""
    for topology in list(requirements.preferred) + list(requirements.requisite):
        zone = topology.segments.get(TOPOLOGY_ZONE_KEY)
        if zone:
            return zone
    return None
