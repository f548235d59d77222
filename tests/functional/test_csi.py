"""fuxi-csi walked as Kubernetes walks it: the external-provisioner's and
external-attacher's controller calls, kubelet's node calls, every call made
twice (the specification requires each to be idempotent), on devcloud (bare
metal and the Nova path), Manila shares (CephFS) and the real cloud tier.

The controller and the node are two fuxi-csi processes with their own state,
as in a cluster (the controller Deployment, the node DaemonSet).
"""

import errno
import os
import uuid

import pytest

from fuxi_csi import DRIVER_NAME, TOPOLOGY_ZONE_KEY as ZONE_KEY
from fuxi_csi.stubs import csi
from tests.functional.csi_harness import cluster, code, csi_driver, mount_capability, ok  # noqa: F401 (fixtures)

SHARE_SERVERS = True
GIB = 1024**3
StatusCode = __import__("grpc").StatusCode
ONLY_ON_CLOUD_KINDS = {"backend": {"manila": ("devcloud", "realcloud")}}


def twice(call):
    """Make a call twice: both must succeed with the same answer."""
    first, second = ok(call()), ok(call())
    assert first == second
    return first


def stage_and_publish(node, volume, cap, publish_context, kubelet, pods, read_only_pods=()):
    """NodeStage (twice) and NodePublish (twice) into each pod; the pods' paths."""
    staging = kubelet / "plugins" / DRIVER_NAME / volume.volume_id / "globalmount"
    staging.mkdir(parents=True)  # kubelet makes the staging directory
    twice(lambda: node.call("node", "NodeStageVolume", volume_id=volume.volume_id, publish_context=publish_context,
                            staging_target_path=str(staging), volume_capability=cap,
                            volume_context=volume.volume_context))
    targets = {}
    for pod in pods:
        target = kubelet / "pods" / pod / "volumes" / volume.volume_id / "mount"
        target.parent.mkdir(parents=True)  # kubelet makes the parent, the driver the target
        twice(lambda: node.call("node", "NodePublishVolume", volume_id=volume.volume_id,
                                publish_context=publish_context, staging_target_path=str(staging),
                                target_path=str(target), volume_capability=cap, readonly=pod in read_only_pods,
                                volume_context=volume.volume_context))
        targets[pod] = target
    return staging, targets


def unpublish_and_unstage(node, volume_id, staging, targets):
    for target in targets.values():
        twice(lambda: node.call("node", "NodeUnpublishVolume", volume_id=volume_id, target_path=str(target)))
        assert not target.exists()
    twice(lambda: node.call("node", "NodeUnstageVolume", volume_id=volume_id, staging_target_path=str(staging)))
    assert not os.path.ismount(staging)


@pytest.mark.parametrize("backend", ["cinder", "manila"])
def test_the_lifecycle_kubelet_and_the_sidecars_walk(cloud, cluster, tmp_path, backend):
    controller, node = cluster
    if backend == "manila":
        params, cap = {"backend": "manila", "proto": "CEPHFS"}, mount_capability(mode="MULTI_NODE_MULTI_WRITER")
    else:
        params, cap = {"backend": "cinder"}, mount_capability("ext4")
    info = twice(lambda: node.call("node", "NodeGetInfo"))
    nova = cloud.kind == "devcloud-nova"
    assert info.node_id == (f"nova:{cloud.devcloud['server_id']}" if nova else f"host:{os.uname().nodename}")

    # A Nova instance reports its zone (from its metadata): the provisioner asks for it.
    assert dict(info.accessible_topology.segments) == ({ZONE_KEY: "nova"} if nova else {})
    wanted = csi.TopologyRequirement(preferred=[info.accessible_topology]) if nova else None
    volume = twice(lambda: controller.call(
        "controller", "CreateVolume", name="pvc-life", capacity_range=csi.CapacityRange(required_bytes=GIB),
        volume_capabilities=[cap], parameters=params, accessibility_requirements=wanted)).volume
    assert (volume.volume_id, volume.capacity_bytes, dict(volume.volume_context)) == ("pvc-life", GIB,
                                                                                      {"backend": backend})
    # A share is reached from any zone; a volume is where it was asked to be.
    assert list(volume.accessible_topology) == ([info.accessible_topology] if nova and backend == "cinder" else [])
    in_cloud = cloud.shares_named if backend == "manila" else cloud.volumes_named
    [record] = in_cloud("pvc-life")
    assert ok(controller.call("controller", "ValidateVolumeCapabilities", volume_id="pvc-life",
                              volume_capabilities=[cap])).confirmed.volume_capabilities == [cap]

    if nova and backend == "cinder":  # a server Nova does not know is a node that does not exist
        assert code(controller.call("controller", "ControllerPublishVolume", volume_id="pvc-life",
                                    node_id=f"nova:{uuid.uuid4()}", volume_capability=cap)) == StatusCode.NOT_FOUND
    published = twice(lambda: controller.call("controller", "ControllerPublishVolume", volume_id="pvc-life",
                                              node_id=info.node_id, volume_capability=cap))
    attached_by_controller = backend == "cinder" and nova
    assert published.publish_context["attach"] == ("nova" if attached_by_controller else "node")
    if attached_by_controller:
        [attachment] = cloud.attachments_of(record.id)
        assert attachment.instance == cloud.devcloud["server_id"]
        # On one server at a time: another is refused before Nova is asked.
        assert code(controller.call("controller", "ControllerPublishVolume", volume_id="pvc-life",
                                    node_id=f"nova:{uuid.uuid4()}", volume_capability=cap)) == (
            StatusCode.FAILED_PRECONDITION)

    kubelet = tmp_path / "kubelet"
    staging, targets = stage_and_publish(node, volume, cap, published.publish_context, kubelet, ["pod-a", "pod-b"],
                                         read_only_pods=("pod-b",))
    (targets["pod-a"] / "greeting").write_text("hello from pod-a\n")
    assert (targets["pod-b"] / "greeting").read_text() == "hello from pod-a\n"
    with pytest.raises(OSError) as refused:
        (targets["pod-b"] / "other").write_text("no")
    assert refused.value.errno == errno.EROFS
    stats = ok(node.call("node", "NodeGetVolumeStats", volume_id="pvc-life", volume_path=str(targets["pod-a"])))
    units = {u.unit: u for u in stats.usage}
    assert units[csi.VolumeUsage.Unit.INODES].used >= 1
    if backend == "cinder":  # (the test Ceph's statfs of a share's directory says 0 bytes)
        assert 0.9 * GIB < units[csi.VolumeUsage.Unit.BYTES].total <= GIB
    assert not stats.volume_condition.abnormal
    # The volume is in use: the controller refuses to delete it.
    assert code(controller.call("controller", "DeleteVolume", volume_id="pvc-life")) == StatusCode.FAILED_PRECONDITION

    unpublish_and_unstage(node, "pvc-life", staging, targets)
    twice(lambda: controller.call("controller", "ControllerUnpublishVolume", volume_id="pvc-life",
                                  node_id=info.node_id))
    if backend == "cinder":
        assert cloud.attachments_of(record.id) == []
    twice(lambda: controller.call("controller", "DeleteVolume", volume_id="pvc-life"))
    assert in_cloud("pvc-life") == []
    # One log line per call, naming the volume and how it ended.
    assert "fuxi_csi.calls: CreateVolume name=pvc-life: OK in " in controller.log()
    assert "fuxi_csi.calls: NodeStageVolume volume_id=pvc-life: OK in " in node.log()


def write_synced(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def create(controller, name, cap, source=None, size_gb=1, **params):
    return twice(lambda: controller.call(
        "controller", "CreateVolume", name=name, capacity_range=csi.CapacityRange(required_bytes=size_gb * GIB),
        volume_capabilities=[cap], parameters={"backend": "cinder", **params}, volume_content_source=source)).volume


def test_snapshots_clones_and_online_expansion(cloud, cluster, tmp_path):
    """external-snapshotter's and external-resizer's calls, and a volume made from
    a snapshot and from a volume, on a volume a pod is writing to."""
    controller, node = cluster
    cap = mount_capability("xfs")  # (ext4 cannot grow online in this sandbox: no CAP_SYS_RESOURCE)
    node_id = ok(node.call("node", "NodeGetInfo")).node_id
    kubelet = tmp_path / "kubelet"
    source = create(controller, "pvc-source", cap)
    context = ok(controller.call("controller", "ControllerPublishVolume", volume_id="pvc-source", node_id=node_id,
                                 volume_capability=cap)).publish_context
    staging, targets = stage_and_publish(node, source, cap, context, kubelet, ["writer"])
    # The snapshot and the clone are crash-consistent (the controller cannot freeze a
    # node's file system): what the writer synced is in them.
    write_synced(targets["writer"] / "data", "before the snapshot\n")

    snap = twice(lambda: controller.call("controller", "CreateSnapshot", source_volume_id="pvc-source",
                                         name="snapshot-one")).snapshot
    assert (snap.source_volume_id, snap.size_bytes, snap.ready_to_use) == ("pvc-source", GIB, True)
    listed = ok(controller.call("controller", "ListSnapshots", source_volume_id="pvc-source")).entries
    assert [e.snapshot.snapshot_id for e in listed] == [snap.snapshot_id]
    assert ok(controller.call("controller", "ListSnapshots", snapshot_id=snap.snapshot_id)).entries[0].snapshot == snap
    assert code(controller.call("controller", "ListSnapshots", starting_token="nine")) == StatusCode.ABORTED
    write_synced(targets["writer"] / "data", "after the snapshot\n")

    from_snapshot = create(controller, "pvc-restored", cap, csi.VolumeContentSource(
        snapshot=csi.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)))
    clone = create(controller, "pvc-clone", cap, csi.VolumeContentSource(
        volume=csi.VolumeContentSource.VolumeSource(volume_id="pvc-source")))
    assert code(controller.call("controller", "CreateSnapshot", source_volume_id="pvc-clone",
                                name="snapshot-one")) == StatusCode.ALREADY_EXISTS
    for copy, expected in ((from_snapshot, "before the snapshot\n"), (clone, "after the snapshot\n")):
        ok(controller.call("controller", "ControllerPublishVolume", volume_id=copy.volume_id, node_id=node_id,
                           volume_capability=cap))
        copy_staging, copy_targets = stage_and_publish(node, copy, cap, context, kubelet, ["reader-" + copy.volume_id])
        assert (copy_targets["reader-" + copy.volume_id] / "data").read_text() == expected
        unpublish_and_unstage(node, copy.volume_id, copy_staging, copy_targets)
        ok(controller.call("controller", "ControllerUnpublishVolume", volume_id=copy.volume_id, node_id=node_id))
        twice(lambda: controller.call("controller", "DeleteVolume", volume_id=copy.volume_id))

    # Online expansion: the controller grows it in the cloud, the node its device and file system.
    grown = twice(lambda: controller.call("controller", "ControllerExpandVolume", volume_id="pvc-source",
                                          capacity_range=csi.CapacityRange(required_bytes=2 * GIB)))
    assert (grown.capacity_bytes, grown.node_expansion_required) == (2 * GIB, True)
    assert os.statvfs(targets["writer"]).f_blocks * os.statvfs(targets["writer"]).f_frsize < 1.1 * GIB
    expanded = twice(lambda: node.call("node", "NodeExpandVolume", volume_id="pvc-source",
                                       volume_path=str(targets["writer"]), staging_target_path=str(staging)))
    assert expanded.capacity_bytes == 2 * GIB
    st = os.statvfs(targets["writer"])
    assert 1.9 * GIB < st.f_blocks * st.f_frsize <= 2 * GIB
    assert (targets["writer"] / "data").read_text() == "after the snapshot\n"

    unpublish_and_unstage(node, "pvc-source", staging, targets)
    ok(controller.call("controller", "ControllerUnpublishVolume", volume_id="pvc-source", node_id=node_id))
    twice(lambda: controller.call("controller", "DeleteSnapshot", snapshot_id=snap.snapshot_id))
    twice(lambda: controller.call("controller", "DeleteVolume", volume_id="pvc-source"))
    assert cloud.volumes_named("pvc-source") == [] and list(cloud.sdk.block_storage.snapshots()) == []
