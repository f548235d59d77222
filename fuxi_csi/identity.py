"""The CSI Identity service: who this driver is and what it offers."""

from google.protobuf.wrappers_pb2 import BoolValue

from fuxi_csi import DRIVER_NAME
from fuxi_csi.stubs import csi, csi_grpc

VERSION = "0.1.0"


class Identity(csi_grpc.IdentityServicer):
    def __init__(self, serves_controller: bool):
        self._serves_controller = serves_controller

    def GetPluginInfo(self, request, context):
        return csi.GetPluginInfoResponse(name=DRIVER_NAME, vendor_version=VERSION)

    def GetPluginCapabilities(self, request, context):
        service = csi.PluginCapability.Service.Type
        wanted = [service.VOLUME_ACCESSIBILITY_CONSTRAINTS]
        if self._serves_controller:
            wanted.insert(0, service.CONTROLLER_SERVICE)
        capabilities = [csi.PluginCapability(service=csi.PluginCapability.Service(type=t)) for t in wanted]
        # Volumes grow while pods use them (Cinder 3.42, Manila's extend).
        capabilities.append(csi.PluginCapability(volume_expansion=csi.PluginCapability.VolumeExpansion(
            type=csi.PluginCapability.VolumeExpansion.Type.ONLINE)))
        return csi.GetPluginCapabilitiesResponse(capabilities=capabilities)

    def Probe(self, request, context):
        # Answering at all means the service was built: the cloud was configured
        # and this host's identity found when the server started.
        return csi.ProbeResponse(ready=BoolValue(value=True))
