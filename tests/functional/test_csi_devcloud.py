"""fuxi-csi on one devcloud: the status codes the CSI specification demands of
every call (a required field missing, a volume that does not exist, what
cannot be served), its identity and capabilities, and a warm pool serving
CreateVolume. The codes come from fuxi-csi, not from the cloud: one cloud
kind is enough (test_csi.py walks the lifecycle on every kind)."""

import os

import grpc
import pytest

from fuxi_csi.stubs import csi
from tests.functional.csi_harness import cluster, code, csi_driver, mount_capability, ok  # noqa: F401 (fixtures)

CLOUD_KINDS = ("devcloud",)
GIB = 1024**3
Code = grpc.StatusCode
CAP = mount_capability("ext4")
BLOCK = csi.VolumeCapability(block=csi.VolumeCapability.BlockVolume(),
                             access_mode=csi.VolumeCapability.AccessMode(mode=CAP.access_mode.mode))
MULTI_NODE = mount_capability("ext4", "MULTI_NODE_MULTI_WRITER")
ONE_GIB = csi.CapacityRange(required_bytes=GIB)


def expect(driver, service, method, wanted, **fields):
    answer = driver.call(service, method, **fields)
    got = Code.OK if not isinstance(answer, grpc.RpcError) else answer.code()
    assert got == wanted, f"{method}({fields}): {got}, not {wanted}: {getattr(answer, 'details', lambda: '')()}"
    return answer


def test_controller_calls_refuse_what_the_specification_says(cluster, cloud):
    controller, node = cluster
    c = lambda method, wanted, **fields: expect(controller, "controller", method, wanted, **fields)  # noqa: E731
    # Missing required fields.
    c("CreateVolume", Code.INVALID_ARGUMENT, volume_capabilities=[CAP])
    c("CreateVolume", Code.INVALID_ARGUMENT, name="pvc-x")
    c("DeleteVolume", Code.INVALID_ARGUMENT)
    c("ControllerPublishVolume", Code.INVALID_ARGUMENT, node_id="host:a", volume_capability=CAP)
    c("ControllerPublishVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x", volume_capability=CAP)
    c("ControllerPublishVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x", node_id="host:a")
    c("ControllerUnpublishVolume", Code.INVALID_ARGUMENT, node_id="host:a")
    c("ValidateVolumeCapabilities", Code.INVALID_ARGUMENT, volume_capabilities=[CAP])
    c("ControllerExpandVolume", Code.INVALID_ARGUMENT, capacity_range=ONE_GIB)
    c("CreateSnapshot", Code.INVALID_ARGUMENT, name="snap")
    c("CreateSnapshot", Code.INVALID_ARGUMENT, source_volume_id="pvc-x")
    c("DeleteSnapshot", Code.INVALID_ARGUMENT)
    # What cannot be served, and sizes out of range.
    c("CreateVolume", Code.INVALID_ARGUMENT, name="pvc-x", volume_capabilities=[BLOCK])
    c("CreateVolume", Code.INVALID_ARGUMENT, name="pvc-x", volume_capabilities=[MULTI_NODE])
    c("CreateVolume", Code.INVALID_ARGUMENT, name="pvc-x", volume_capabilities=[CAP], parameters={"colour": "blue"})
    c("CreateVolume", Code.OUT_OF_RANGE, name="pvc-x", volume_capabilities=[CAP],
      capacity_range=csi.CapacityRange(required_bytes=2 * GIB, limit_bytes=GIB))
    c("CreateVolume", Code.OUT_OF_RANGE, name="pvc-x", volume_capabilities=[CAP],
      capacity_range=csi.CapacityRange(limit_bytes=GIB // 2))
    c("CreateVolume", Code.OUT_OF_RANGE, name="pvc-x", volume_capabilities=[CAP],
      capacity_range=csi.CapacityRange(required_bytes=11 * GIB))  # max_size_gb is 10
    c("CreateVolume", Code.NOT_FOUND, name="pvc-x", volume_capabilities=[CAP], volume_content_source=(
        csi.VolumeContentSource(snapshot=csi.VolumeContentSource.SnapshotSource(
            snapshot_id="3f1b2c4d-0000-4000-8000-000000000000"))))
    assert cloud.volumes_named("pvc-x") == []
    # Volumes and snapshots that do not exist.
    c("DeleteVolume", Code.OK, volume_id="pvc-none")
    c("DeleteVolume", Code.OK, volume_id="no such/volume")
    c("ControllerPublishVolume", Code.NOT_FOUND, volume_id="pvc-none", node_id="host:a", volume_capability=CAP)
    c("ControllerUnpublishVolume", Code.OK, volume_id="pvc-none", node_id="host:a")
    c("ValidateVolumeCapabilities", Code.NOT_FOUND, volume_id="pvc-none", volume_capabilities=[CAP])
    c("ControllerExpandVolume", Code.NOT_FOUND, volume_id="pvc-none", capacity_range=ONE_GIB)
    c("CreateSnapshot", Code.NOT_FOUND, source_volume_id="pvc-none", name="snap")
    c("DeleteSnapshot", Code.OK, snapshot_id="3f1b2c4d-0000-4000-8000-000000000000")

    # An existing volume: the same name with other parameters, an unknown node, a block capability.
    c("CreateVolume", Code.OK, name="pvc-x", volume_capabilities=[CAP], capacity_range=ONE_GIB)
    c("CreateVolume", Code.ALREADY_EXISTS, name="pvc-x", volume_capabilities=[CAP],
      capacity_range=csi.CapacityRange(required_bytes=2 * GIB))
    c("ControllerPublishVolume", Code.NOT_FOUND, volume_id="pvc-x", node_id="kube-node-7", volume_capability=CAP)
    answer = c("ValidateVolumeCapabilities", Code.OK, volume_id="pvc-x", volume_capabilities=[BLOCK])
    assert not answer.HasField("confirmed") and "block" in answer.message
    c("ControllerExpandVolume", Code.OUT_OF_RANGE, volume_id="pvc-x",
      capacity_range=csi.CapacityRange(required_bytes=11 * GIB))
    # Shrinking is no expansion: the volume keeps its size.
    assert c("ControllerExpandVolume", Code.OK, volume_id="pvc-x",
             capacity_range=csi.CapacityRange(required_bytes=GIB // 2)).capacity_bytes == GIB
    [vol] = cloud.volumes_named("pvc-x")
    assert vol.size == 1
    c("DeleteVolume", Code.OK, volume_id="pvc-x")


def test_node_calls_refuse_what_the_specification_says(cluster, tmp_path):
    controller, node = cluster
    n = lambda method, wanted, **fields: expect(node, "node", method, wanted, **fields)  # noqa: E731
    staging, target = str(tmp_path / "staging"), str(tmp_path / "pod" / "mount")
    n("NodeStageVolume", Code.INVALID_ARGUMENT, staging_target_path=staging, volume_capability=CAP)
    n("NodeStageVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x", volume_capability=CAP)
    n("NodeStageVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x", staging_target_path=staging)
    n("NodeUnstageVolume", Code.INVALID_ARGUMENT, staging_target_path=staging)
    n("NodeUnstageVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x")
    n("NodePublishVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x", staging_target_path=staging,
      volume_capability=CAP)
    n("NodePublishVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x", target_path=target, volume_capability=CAP)
    n("NodePublishVolume", Code.INVALID_ARGUMENT, staging_target_path=staging, target_path=target,
      volume_capability=CAP)
    n("NodeUnpublishVolume", Code.INVALID_ARGUMENT, volume_id="pvc-x")
    n("NodeUnpublishVolume", Code.INVALID_ARGUMENT, target_path=target)
    # One log line per call, with the code and the reason of a refusal.
    assert "NodeStageVolume volume_id=pvc-x: INVALID_ARGUMENT in " in node.log()
    assert "s: staging_target_path is required" in node.log()
    n("NodeGetVolumeStats", Code.INVALID_ARGUMENT, volume_id="pvc-x")
    n("NodeExpandVolume", Code.INVALID_ARGUMENT, volume_path=target)
    # A volume that does not exist.
    for volume_id in ("pvc-none", "no such/volume"):
        n("NodeStageVolume", Code.NOT_FOUND, volume_id=volume_id, staging_target_path=staging, volume_capability=CAP)
        n("NodeUnstageVolume", Code.NOT_FOUND, volume_id=volume_id, staging_target_path=staging)
        n("NodePublishVolume", Code.NOT_FOUND, volume_id=volume_id, staging_target_path=staging,
          target_path=target, volume_capability=CAP)
        n("NodeUnpublishVolume", Code.NOT_FOUND, volume_id=volume_id, target_path=target)
        n("NodeExpandVolume", Code.NOT_FOUND, volume_id=volume_id, volume_path=target)
    n("NodeGetVolumeStats", Code.NOT_FOUND, volume_id="pvc-none", volume_path=str(tmp_path / "nowhere"))
    # An existing volume not staged here: publishing it first is refused.
    ok(controller.call("controller", "CreateVolume", name="pvc-y", volume_capabilities=[CAP]))
    n("NodePublishVolume", Code.FAILED_PRECONDITION, volume_id="pvc-y", staging_target_path=staging,
      target_path=target, volume_capability=CAP)
    n("NodeStageVolume", Code.INVALID_ARGUMENT, volume_id="pvc-y", staging_target_path=staging,
      volume_capability=BLOCK)
    n("NodeUnstageVolume", Code.OK, volume_id="pvc-y", staging_target_path=staging)
    n("NodeUnpublishVolume", Code.OK, volume_id="pvc-y", target_path=target)
    # Staged on this node, the volume is refused to another one (it is on one node at a time).
    os.makedirs(staging)
    n("NodeStageVolume", Code.OK, volume_id="pvc-y", staging_target_path=staging, volume_capability=CAP)
    this_node = ok(node.call("node", "NodeGetInfo")).node_id
    for node_id, wanted in ((this_node, Code.OK), ("host:another-node", Code.FAILED_PRECONDITION)):
        expect(controller, "controller", "ControllerPublishVolume", wanted, volume_id="pvc-y", node_id=node_id,
               volume_capability=CAP)
    n("NodeUnstageVolume", Code.OK, volume_id="pvc-y", staging_target_path=staging)
    ok(controller.call("controller", "DeleteVolume", volume_id="pvc-y"))


def test_identity_and_capabilities(cluster):
    controller, node = cluster
    info = ok(node.call("identity", "GetPluginInfo"))
    assert (info.name, info.vendor_version) == ("fuxi.csi.openstack.org", "0.1.0")
    Service = csi.PluginCapability.Service.Type
    plugin = {c.service.type for c in ok(controller.call("identity", "GetPluginCapabilities")).capabilities
              if c.HasField("service")}
    assert plugin == {Service.CONTROLLER_SERVICE, Service.VOLUME_ACCESSIBILITY_CONSTRAINTS}
    assert Service.CONTROLLER_SERVICE not in {
        c.service.type for c in ok(node.call("identity", "GetPluginCapabilities")).capabilities}
    rpc = csi.ControllerServiceCapability.RPC.Type
    assert {c.rpc.type for c in ok(controller.call("controller", "ControllerGetCapabilities")).capabilities} >= {
        rpc.CREATE_DELETE_VOLUME, rpc.PUBLISH_UNPUBLISH_VOLUME, rpc.CREATE_DELETE_SNAPSHOT, rpc.LIST_SNAPSHOTS,
        rpc.CLONE_VOLUME, rpc.EXPAND_VOLUME}
    node_rpc = csi.NodeServiceCapability.RPC.Type
    assert {c.rpc.type for c in ok(node.call("node", "NodeGetCapabilities")).capabilities} >= {
        node_rpc.STAGE_UNSTAGE_VOLUME, node_rpc.EXPAND_VOLUME, node_rpc.GET_VOLUME_STATS}
    assert ok(node.call("identity", "Probe")).ready.value
    # A controller alone serves no node calls, and a node no controller calls.
    assert code(controller.call("node", "NodeGetInfo")) == Code.UNIMPLEMENTED
    assert code(node.call("controller", "CreateVolume", name="pvc-z", volume_capabilities=[CAP])) == Code.UNIMPLEMENTED


def test_a_warm_pool_serves_create_volume(csi_driver, cloud, tmp_path):
    """A tier 2 pool (created and formatted ahead, attached nowhere) kept by the
    controller: CreateVolume claims one, and the node mounts it without mkfs."""
    from tests.functional.harness import wait_until
    from tests.functional.test_csi import stage_and_publish, unpublish_and_unstage

    pool = "[pool:warm]\nsize_gb = 1\nfstype = ext4\ntier = 2\nmin_ready = 1\nmax = 1\nbatch = 1\nrefill_interval = 0.5\n"
    controller, node = csi_driver("controller", extra_config=pool), csi_driver("node")
    ready = lambda: [v for v in cloud.sdk.block_storage.volumes(details=True)  # noqa: E731
                     if (v.metadata or {}).get("fuxi_pool_state") == "ready" and v.status == "available"]
    [warm] = wait_until(ready, timeout=60, what="the pool's first volume")
    volume = ok(controller.call("controller", "CreateVolume", name="pvc-warm", volume_capabilities=[CAP],
                                capacity_range=ONE_GIB)).volume
    [claimed] = cloud.volumes_named("pvc-warm")
    assert (claimed.id, claimed.metadata["fuxi_claimed_from"]) == (warm.id, "warm")
    staging, targets = stage_and_publish(node, volume, CAP, {}, tmp_path / "kubelet", ["pod"])
    assert "formatting blank device" not in open(node.log_path).read()  # the pool formatted it
    unpublish_and_unstage(node, "pvc-warm", staging, targets)
    ok(controller.call("controller", "DeleteVolume", volume_id="pvc-warm"))
