"""The CSI Controller's snapshot calls: Cinder snapshots through storage_core.

Kubernetes takes snapshots of volumes mounted on other nodes, where this
controller cannot freeze the file system: they are crash-consistent, as with
every CSI driver (a volume mounted on the controller's own host is frozen).
"""

from google.protobuf.timestamp_pb2 import Timestamp

from fuxi_csi.errors import Code, answering, known_name, require
from fuxi_csi.sizes import GIB
from fuxi_csi.stubs import csi
from storage_core.errors import NotFound


def _snapshot(snap) -> "csi.Snapshot":
    created = Timestamp()
    if snap.created_at is not None:
        created.FromDatetime(snap.created_at)
    return csi.Snapshot(size_bytes=snap.size_gb * GIB, snapshot_id=snap.id, source_volume_id=snap.volume_name,
                        creation_time=created, ready_to_use=snap.status == "available")


class SnapshotCalls:
    """Mixed into the Controller, whose `_service` is the VolumeService."""

    def _copies(self, context):
        if self._service.copies is None:
            context.abort(Code.FAILED_PRECONDITION, "snapshots are of Cinder volumes; the cinder backend is off")
        return self._service.copies

    def CreateSnapshot(self, request, context):
        source = known_name(context, request.source_volume_id, "source_volume_id")
        name = require(context, request.name, "name")
        copies = self._copies(context)
        # The same name of another volume is a Conflict: ALREADY_EXISTS, as the specification asks.
        with answering(context, conflict=Code.ALREADY_EXISTS):
            snap = copies.snapshot(source, name, allow_unfrozen=True, again_ok=True)
        return csi.CreateSnapshotResponse(snapshot=_snapshot(snap))

    def DeleteSnapshot(self, request, context):
        snapshot_id = require(context, request.snapshot_id, "snapshot_id")
        copies = self._copies(context)
        with answering(context):
            try:
                copies.delete_snapshot(snapshot_id)
            except NotFound:
                pass  # deleted already
        return csi.DeleteSnapshotResponse()

    def ListSnapshots(self, request, context):
        copies = self._copies(context)
        with answering(context):
            snaps = copies.snapshots()
        if request.snapshot_id:
            snaps = [s for s in snaps if s.id == request.snapshot_id]
        if request.source_volume_id:
            snaps = [s for s in snaps if s.volume_name == request.source_volume_id]
        start = 0
        if request.starting_token:
            if not request.starting_token.isdigit() or int(request.starting_token) > len(snaps):
                context.abort(Code.ABORTED, f"starting_token {request.starting_token!r} is not one this "
                                            "driver gave; list again from the start")
            start = int(request.starting_token)
        end = start + request.max_entries if request.max_entries else len(snaps)
        return csi.ListSnapshotsResponse(
            entries=[csi.ListSnapshotsResponse.Entry(snapshot=_snapshot(s)) for s in snaps[start:end]],
            next_token=str(end) if end < len(snaps) else "")
