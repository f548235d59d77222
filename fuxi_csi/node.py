"""The CSI Node service: volumes put on this node and mounted into pods.

NodeStage is storage_core's mount (attach on bare metal or find the disk Nova
attached, format only if blank, mount under the state directory), bound at
the staging path; NodePublish binds the staging path into the pod, read-only
where asked. Each staging path is one counted mount of the volume, so the
volume leaves this node at its last NodeUnstage.
"""

import logging
import os

from fuxi_csi import TOPOLOGY_ZONE_KEY
from fuxi_csi.capabilities import read_only, unsupported
from fuxi_csi.errors import Code, answering, known_name, require
from fuxi_csi.sizes import GIB
from fuxi_csi.stubs import csi, csi_grpc

LOG = logging.getLogger(__name__)

RPC = csi.NodeServiceCapability.RPC.Type
CAPABILITIES = (RPC.STAGE_UNSTAGE_VOLUME, RPC.EXPAND_VOLUME, RPC.GET_VOLUME_STATS, RPC.VOLUME_CONDITION,
                RPC.SINGLE_NODE_MULTI_WRITER)
STAGE_CALLER = "csi-stage:"


class Node(csi_grpc.NodeServicer):
    def __init__(self, service, filesystems, node_id, zone=None):
        self._service = service
        self._fs = filesystems
        self._node_id = node_id
        self._zone = zone

    def NodeStageVolume(self, request, context):
        name = known_name(context, request.volume_id)
        staging = require(context, request.staging_target_path, "staging_target_path")
        require(context, request.HasField("volume_capability"), "volume_capability")
        with answering(context):
            backend = request.volume_context.get("backend") or self._service.get(name).status["backend"]
        why = unsupported([request.volume_capability], backend)
        if why:
            context.abort(Code.INVALID_ARGUMENT, why)
        at_staging, ours = self._mounts_at(staging, self._service.mountpoint_for(name))
        if _same_file_system(at_staging, ours):
            return csi.NodeStageVolumeResponse()
        if at_staging is not None:
            context.abort(Code.ALREADY_EXISTS, f"{staging} holds another mount; it is not volume {name!r}")
        with answering(context):
            mountpoint = self._service.mount(name, STAGE_CALLER + staging)
            try:
                self._fs.bind(mountpoint, staging)
            except Exception:
                self._service.unmount(name, STAGE_CALLER + staging)
                raise
        LOG.info("volume %s staged at %s", name, staging)
        return csi.NodeStageVolumeResponse()

    def _mounts_at(self, *paths):
        """The mount at each path (None where there is none), from one read of the mount table."""
        mounts = self._fs.mounts()
        return [self._fs.mount_at(path, mounts) for path in paths]

    def _exists(self, context, name) -> None:
        """NOT_FOUND for a volume that does not exist (asked only when nothing of it is here)."""
        with answering(context):
            self._service.get(name)

    def NodeUnstageVolume(self, request, context):
        name = known_name(context, request.volume_id)
        staging = require(context, request.staging_target_path, "staging_target_path")
        if not self._fs.is_mounted(staging):
            self._exists(context, name)
        with answering(context):
            self._fs.unmount(staging)
            # Uncounting a mount never counted (unstaged already) changes nothing.
            self._service.unmount(name, STAGE_CALLER + staging)
        LOG.info("volume %s unstaged from %s", name, staging)
        return csi.NodeUnstageVolumeResponse()

    def NodePublishVolume(self, request, context):
        name = known_name(context, request.volume_id)
        staging = require(context, request.staging_target_path, "staging_target_path")
        target = require(context, request.target_path, "target_path")
        require(context, request.HasField("volume_capability"), "volume_capability")
        at_staging, ours, at = self._mounts_at(staging, self._service.mountpoint_for(name), target)
        if not _same_file_system(at_staging, ours):
            self._exists(context, name)
            context.abort(Code.FAILED_PRECONDITION, f"volume {name!r} is not staged at {staging}; stage it first")
        wanted_ro = read_only(request.volume_capability, request.readonly)
        if at is not None:
            if _same_file_system(at, at_staging) and at.read_only == wanted_ro:
                return csi.NodePublishVolumeResponse()
            context.abort(Code.ALREADY_EXISTS, f"{target} holds another mount (another volume, or this one "
                                               f"{'writable' if at.read_only is False else 'read-only'})")
        with answering(context):
            self._fs.bind(staging, target, read_only=wanted_ro)
        LOG.info("volume %s published at %s%s", name, target, " read-only" if wanted_ro else "")
        return csi.NodePublishVolumeResponse()

    def NodeUnpublishVolume(self, request, context):
        name = known_name(context, request.volume_id)
        target = require(context, request.target_path, "target_path")
        if not self._fs.is_mounted(target):
            self._exists(context, name)
        with answering(context):
            self._fs.unmount(target)
        try:
            os.rmdir(target)  # the driver made it at NodePublish
        except FileNotFoundError:
            pass
        except OSError as exc:
            context.abort(Code.INTERNAL, f"removing {target} after unmounting it failed: {exc}")
        LOG.info("volume %s unpublished from %s", name, target)
        return csi.NodeUnpublishVolumeResponse()

    def NodeGetVolumeStats(self, request, context):
        known_name(context, request.volume_id)
        path = require(context, request.volume_path, "volume_path")
        if not os.path.exists(path):
            context.abort(Code.NOT_FOUND, f"volume path {path} does not exist")
        mounted = self._fs.is_mounted(path)
        st = os.statvfs(path)
        usage = [
            csi.VolumeUsage(unit=csi.VolumeUsage.Unit.BYTES, total=st.f_blocks * st.f_frsize,
                            available=st.f_bavail * st.f_frsize, used=(st.f_blocks - st.f_bfree) * st.f_frsize),
            csi.VolumeUsage(unit=csi.VolumeUsage.Unit.INODES, total=st.f_files, available=st.f_favail,
                            used=st.f_files - st.f_ffree),
        ]
        condition = csi.VolumeCondition(abnormal=not mounted,
                                        message="mounted" if mounted else f"{path} is not mounted")
        return csi.NodeGetVolumeStatsResponse(usage=usage, volume_condition=condition)

    def NodeExpandVolume(self, request, context):
        name = known_name(context, request.volume_id)
        require(context, request.volume_path, "volume_path")
        with answering(context):
            size_gb = self._service.catch_up_here(name)
        return csi.NodeExpandVolumeResponse(capacity_bytes=size_gb * GIB)

    def NodeGetCapabilities(self, request, context):
        return csi.NodeGetCapabilitiesResponse(capabilities=[
            csi.NodeServiceCapability(rpc=csi.NodeServiceCapability.RPC(type=t)) for t in CAPABILITIES])

    def NodeGetInfo(self, request, context):
        topology = csi.Topology(segments={TOPOLOGY_ZONE_KEY: self._zone}) if self._zone else None
        return csi.NodeGetInfoResponse(node_id=self._node_id, accessible_topology=topology)


def _same_file_system(a, b) -> bool:
    """Two mounts (bind mounts of one another) of one file system."""
    return a is not None and b is not None and a.device == b.device
