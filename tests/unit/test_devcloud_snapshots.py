"""devcloud's snapshots and volumes made of copies: status rules, point-in-time
sparse data, Cinder's refusals and views, restart. No loop devices (fake
ones), no sockets (the HTTP face is called with Request objects)."""

import json
import os

import pytest

from storage_core.devcloud.backend import GIB, Invalid, NotFound, VolumeService, copy_sparse
from storage_core.devcloud.backups import BackupService
from storage_core.devcloud.cinder import BlockStorage
from storage_core.devcloud.cinder_backups import BackupsAPI
from storage_core.devcloud.cinder_snapshots import SNAPSHOT_IN_USE_FLAG_MSG, SnapshotsAPI
from storage_core.devcloud.faults import FaultInjector
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.snapshots import SnapshotService
from storage_core.devcloud.store import Store
from storage_core.devcloud.web import Request, Response
from tests.unit.test_devcloud_backend import FakeLoops, ManualScheduler

PROJECT = "p1"
MIB = 1024 * 1024
DELETE_REFUSED = (
    "Invalid volume: Volume status must be available or error or error_restoring or error_extending "
    "or error_managing and must not be migrating, attached, belong to a group, have snapshots, "
    "awaiting a transfer, or be disassociated from snapshots after volume transfer."
)
CONNECTOR = {"host": "h"}


class Parts:
    """A volume, snapshot and backup service on one store, jobs run by hand."""

    def __init__(self, root, store=None):
        self.root = root
        self.store = store or Store(root / "db.sqlite")
        self.loops = FakeLoops()
        self.scheduler = ManualScheduler()
        latency = lambda: LatencyProfile.named("none")  # noqa: E731
        self.volumes = VolumeService(self.store, root / "volumes", self.loops, self.scheduler,
                                     latency)
        self.snapshots = SnapshotService(self.store, root / "snapshots", self.volumes,
                                         self.scheduler, latency)
        self.backups = BackupService(self.store, root / "backups", self.volumes, self.snapshots,
                                     self.scheduler, latency)
        self.faults = FaultInjector()
        self.api = BlockStorage(self.volumes, FakeIdentity(), self.faults,
                                lambda: "http://devcloud",
                                extensions=(SnapshotsAPI(self.snapshots, self.volumes),
                                            BackupsAPI(self.backups)))

    def restarted(self):
        """devcloud stops; a new one opens the same state dir, settles what was
        interrupted (as the server does at start-up) and runs what that queued."""
        self.store.close()
        fresh = Parts(self.root)
        fresh.volumes.recover()
        fresh.snapshots.recover()
        fresh.backups.recover()
        fresh.run()
        return fresh

    def run(self):
        """Run the background jobs until none is left (jobs may queue more)."""
        for _ in range(10):
            if not self.scheduler.jobs:
                return
            self.scheduler.run_all()

    def volume(self, size=1, **kwargs):
        kwargs.setdefault("name", "v")
        kwargs.setdefault("volume_type", "__DEFAULT__")
        volume = self.volumes.create_volume(PROJECT, "u1", description=None, size=size,
                                            metadata={}, availability_zone="nova", **kwargs)
        self.run()
        return self.volumes.get_volume(PROJECT, volume["id"])

    def attach(self, volume_id):
        att = self.volumes.create_attachment(PROJECT, volume_id, instance_uuid=None,
                                             connector=CONNECTOR, mode="rw")
        self.volumes.complete_attachment(PROJECT, att["id"])
        return att

    def snapshot(self, volume_id, in_use_allowed=False, run=True, **kwargs):
        snapshot = self.snapshots.create_snapshot(
            PROJECT, "u1", volume_id, name=kwargs.get("name", "s"), description=None,
            metadata=kwargs.get("metadata"), in_use_allowed=in_use_allowed)
        if run:
            self.run()
            return self.snapshots.get_snapshot(PROJECT, snapshot["id"])
        return snapshot

    def status(self, volume_id):
        return self.volumes.get_volume(PROJECT, volume_id)["status"]

    def call(self, method, path, body=None, version="3.0", query=None):
        """One request through the Cinder face, as the HTTP server would make it."""
        req = Request(method=method, path=f"/volume/v3/{PROJECT}/{path}",
                      query={k: [v] for k, v in (query or {}).items()},
                      headers={"X-Auth-Token": "token", "OpenStack-API-Version": f"volume {version}"},
                      body=b"" if body is None else json.dumps(body).encode())
        resp = self.api.handle(req, f"/v3/{PROJECT}/{path}")
        return resp.status, resp.body


class FakeIdentity:
    """Keystone's part in a request: one token of one project."""

    def validate(self, token):
        return {"p": PROJECT, "u": "u1"} if token == "token" else None

    def unauthorized(self):
        return Response(401, {"error": {"code": 401}})


def write(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def allocated(path):
    return os.stat(path).st_blocks * 512


def bad_request(message):
    return 400, {"badRequest": {"code": 400, "message": message}}


@pytest.fixture
def parts(tmp_path):
    parts = Parts(tmp_path)
    yield parts
    parts.store.close()


# -- the copy ------------------------------------------------------------------


def test_copy_sparse_copies_data_only_and_keeps_holes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    with open(src, "wb") as f:
        f.truncate(4 * GIB)
    write(src, 0, b"head")
    write(src, 3 * GIB + 7, b"tail")
    write(src, GIB, bytes(8 * MIB))  # allocated, but zeros: not worth writing
    copy_sparse(src, dst, 5 * GIB)
    assert os.path.getsize(dst) == 5 * GIB
    assert read(dst, 0, 4) == b"head" and read(dst, 3 * GIB + 7, 4) == b"tail"
    assert read(dst, GIB, 16) == bytes(16)
    assert allocated(dst) < 2 * MIB
    assert not os.path.exists(str(dst) + ".part")


# -- snapshots -----------------------------------------------------------------


def test_a_snapshot_is_a_point_in_time_sparse_copy(parts):
    volume = parts.volume(size=2)
    path = parts.volumes.path(volume["id"])
    write(path, 300 * MIB, b"before")

    snapshot = parts.snapshot(volume["id"], run=False, metadata={"k": "v"})
    assert (snapshot["status"], snapshot["progress"], snapshot["size"]) == ("creating", "0%", 2)
    assert not os.path.exists(parts.snapshots.path(snapshot["id"]))  # copied while creating
    parts.run()
    snapshot = parts.snapshots.get_snapshot(PROJECT, snapshot["id"])
    assert (snapshot["status"], snapshot["progress"]) == ("available", "100%")
    assert snapshot["metadata"] == {"k": "v"} and snapshot["volume_type"] == "__DEFAULT__"
    assert allocated(parts.snapshots.path(snapshot["id"])) < MIB

    write(path, 300 * MIB, b"after!")  # the volume moves on; the snapshot does not
    clone = parts.volumes.create_volume(
        PROJECT, "u1", name="clone", description=None, size=3, metadata={},
        volume_type="__DEFAULT__", availability_zone="nova", source=("snapshot", snapshot["id"]))
    assert clone["status"] == "creating" and clone["snapshot_id"] == snapshot["id"]
    assert clone["source_volid"] is None
    parts.run()
    assert parts.status(clone["id"]) == "available"
    clone_path = parts.volumes.path(clone["id"])
    assert read(clone_path, 300 * MIB, 6) == b"before"
    assert os.path.getsize(clone_path) == 3 * GIB  # grown to the size asked for
    assert allocated(clone_path) < MIB  # and still sparse


def test_an_in_use_volume_needs_force(parts):
    volume = parts.volume()
    parts.attach(volume["id"])
    with pytest.raises(Invalid) as err:
        parts.snapshot(volume["id"])
    assert err.value.message == (f"Invalid volume: Volume {volume['id']} status must be "
                                 "available, but current status is: in-use.")
    snapshot = parts.snapshot(volume["id"], in_use_allowed=True)
    assert snapshot["status"] == "available"
    assert parts.status(volume["id"]) == "in-use"  # a snapshot changes nothing of the volume


def test_no_snapshot_of_a_volume_being_created_or_in_error(parts):
    creating = parts.volumes.create_volume(
        PROJECT, "u1", name="c", description=None, size=1, metadata={},
        volume_type="__DEFAULT__", availability_zone="nova")
    with pytest.raises(Invalid, match="^Invalid volume: The snapshot cannot be created because "
                                      "volume has not been scheduled to any host.$"):
        parts.snapshot(creating["id"])
    parts.run()
    parts.volumes.reset_status(PROJECT, creating["id"], "error")
    with pytest.raises(Invalid, match="^Invalid volume: The snapshot cannot be created when the "
                                      "volume is in error status.$"):
        parts.snapshot(creating["id"], in_use_allowed=True)
    with pytest.raises(NotFound, match="Volume nope could not be found."):
        parts.snapshot("nope")


def test_a_volume_with_snapshots_is_not_deleted_until_they_are(parts):
    volume = parts.volume()
    snapshot = parts.snapshot(volume["id"], run=False)
    with pytest.raises(Invalid) as err:
        parts.snapshots.delete_snapshot(PROJECT, snapshot["id"])  # still creating
    assert err.value.message == ("Invalid snapshot: Snapshot status must be available or error "
                                 "and must not be part of a group.")
    parts.run()
    with pytest.raises(Invalid) as err:
        parts.volumes.delete_volume(PROJECT, volume["id"])
    assert err.value.message == DELETE_REFUSED
    assert parts.status(volume["id"]) == "available"

    parts.snapshots.delete_snapshot(PROJECT, snapshot["id"])
    assert parts.snapshots.get_snapshot(PROJECT, snapshot["id"])["status"] == "deleting"
    with pytest.raises(Invalid):  # deleting is still a snapshot
        parts.volumes.delete_volume(PROJECT, volume["id"])
    parts.run()
    with pytest.raises(NotFound, match=f"Snapshot {snapshot['id']} could not be found."):
        parts.snapshots.get_snapshot(PROJECT, snapshot["id"])
    assert not os.path.exists(parts.snapshots.path(snapshot["id"]))
    parts.volumes.delete_volume(PROJECT, volume["id"])
    parts.run()
    assert parts.volumes.list_volumes(PROJECT) == []


def test_cascade_deletes_the_snapshots_along(parts):
    volume = parts.volume()
    first, second = parts.snapshot(volume["id"]), parts.snapshot(volume["id"])
    parts.volumes.delete_volume(PROJECT, volume["id"], cascade=True)
    assert {s["status"] for s in parts.snapshots.of_volume(volume["id"])} == {"deleting"}
    parts.run()
    assert parts.snapshots.list_snapshots(PROJECT) == []
    assert parts.volumes.list_volumes(PROJECT) == []
    for snapshot in (first, second):
        assert not os.path.exists(parts.snapshots.path(snapshot["id"]))


def test_a_snapshot_delete_waits_for_the_volumes_made_of_it(parts):
    volume = parts.volume()
    snapshot = parts.snapshot(volume["id"])
    clone = parts.volumes.create_volume(
        PROJECT, "u1", name="clone", description=None, size=1, metadata={},
        volume_type="__DEFAULT__", availability_zone="nova", source=("snapshot", snapshot["id"]))
    parts.snapshots.delete_snapshot(PROJECT, snapshot["id"])
    create_job, delete_job = parts.scheduler.jobs
    parts.scheduler.jobs = [delete_job]
    parts.scheduler.run_all()  # the delete comes first: it waits
    assert parts.snapshots.get_snapshot(PROJECT, snapshot["id"])["status"] == "deleting"
    parts.scheduler.jobs.insert(0, create_job)
    parts.run()
    assert parts.status(clone["id"]) == "available"
    assert parts.snapshots.list_snapshots(PROJECT) == []


def test_volumes_from_snapshots_and_volumes_size_and_status_rules(parts):
    volume = parts.volume(size=2)
    write(parts.volumes.path(volume["id"]), 5, b"data")
    snapshot = parts.snapshot(volume["id"])

    def make(size, source):
        return parts.volumes.create_volume(
            PROJECT, "u1", name="n", description=None, size=size, metadata={},
            volume_type="__DEFAULT__", availability_zone="nova", source=source)

    with pytest.raises(Invalid) as err:
        make(1, ("snapshot", snapshot["id"]))
    assert err.value.message == ("Invalid input received: Volume size '1'GB cannot be smaller "
                                 "than the snapshot size 2GB. They must be >= original snapshot "
                                 "size.")
    with pytest.raises(Invalid) as err:
        make(1, ("volume", volume["id"]))
    assert err.value.message == ("Invalid input received: Volume size '1'GB cannot be smaller "
                                 "than original volume size  2GB. They must be >= original "
                                 "volume size.")
    assert [v["id"] for v in parts.volumes.list_volumes(PROJECT)] == [volume["id"]]

    parts.attach(volume["id"])  # an in-use volume may be cloned
    clone = make(2, ("volume", volume["id"]))
    assert clone["source_volid"] == volume["id"] and clone["snapshot_id"] is None
    parts.run()
    assert parts.status(clone["id"]) == "available"
    assert read(parts.volumes.path(clone["id"]), 5, 4) == b"data"

    pending = make(2, ("volume", clone["id"]))  # a volume still being made
    with pytest.raises(Invalid) as err:
        make(2, ("volume", pending["id"]))
    assert err.value.message == ("Invalid volume: Originating source volume status must be one "
                                 "of 'available, in-use' values")
    taking = parts.snapshot(clone["id"], run=False)
    with pytest.raises(Invalid) as err:
        make(2, ("snapshot", taking["id"]))
    assert err.value.message == ("Invalid snapshot: Originating snapshot status must be one of "
                                 "'available' values")


def test_snapshot_records_and_metadata(parts):
    volume = parts.volume()
    snapshot = parts.snapshot(volume["id"], metadata={"a": "1"})
    updated, before = parts.snapshots.update_snapshot(PROJECT, snapshot["id"], {"name": "new"})
    assert updated["name"] == "new" and before == snapshot["updated_at"]
    assert parts.snapshots.update_metadata(PROJECT, snapshot["id"], {"b": "2"}, replace=False) == \
        {"a": "1", "b": "2"}
    assert parts.snapshots.update_metadata(PROJECT, snapshot["id"], {"c": "3"}, replace=True) == \
        {"c": "3"}
    with pytest.raises(NotFound, match=f"Snapshot {snapshot['id']} has no metadata with key a."):
        parts.snapshots.delete_metadata_item(PROJECT, snapshot["id"], "a")
    with pytest.raises(NotFound):
        parts.snapshots.get_snapshot("other-project", snapshot["id"])


def test_snapshots_survive_a_restart_and_interrupted_work_ends_sensibly(parts, tmp_path):
    volume = parts.volume()
    write(parts.volumes.path(volume["id"]), 0, b"kept")
    kept = parts.snapshot(volume["id"])
    doomed = parts.snapshot(volume["id"])
    parts.snapshots.delete_snapshot(PROJECT, doomed["id"])
    interrupted = parts.snapshot(volume["id"], run=False)
    clone = parts.volumes.create_volume(
        PROJECT, "u1", name="clone", description=None, size=1, metadata={},
        volume_type="__DEFAULT__", availability_zone="nova", source=("snapshot", kept["id"]))
    open(parts.snapshots.path(interrupted["id"]) + ".part", "wb").close()  # a copy cut short
    parts.scheduler.jobs.clear()  # "crash": nothing pending survives

    fresh = parts.restarted()
    assert fresh.snapshots.get_snapshot(PROJECT, kept["id"])["status"] == "available"
    assert read(fresh.snapshots.path(kept["id"]), 0, 4) == b"kept"
    # Cinder leaves a snapshot or a copy it was making in error when it restarts.
    assert fresh.snapshots.get_snapshot(PROJECT, interrupted["id"])["status"] == "error"
    assert fresh.status(clone["id"]) == "error"
    with pytest.raises(NotFound):
        fresh.snapshots.get_snapshot(PROJECT, doomed["id"])
    assert not any(n.endswith(".part") for n in os.listdir(tmp_path / "snapshots"))
    # An error snapshot may be deleted, and then the volume.
    fresh.snapshots.delete_snapshot(PROJECT, interrupted["id"])
    fresh.snapshots.delete_snapshot(PROJECT, kept["id"])
    fresh.run()
    fresh.volumes.delete_volume(PROJECT, volume["id"])
    fresh.run()
    fresh.store.close()


# -- the HTTP face ---------------------------------------------------------------


def test_http_snapshot_of_an_in_use_volume_by_microversion(parts):
    volume = parts.volume()
    parts.attach(volume["id"])
    body = {"snapshot": {"volume_id": volume["id"]}}
    assert parts.call("POST", "snapshots", body) == bad_request(
        f"Invalid volume: Volume {volume['id']} status must be available, but current status "
        "is: in-use.")
    forced = {"snapshot": {"volume_id": volume["id"], "force": "True"}}
    assert parts.call("POST", "snapshots", forced)[0] == 202
    assert parts.call("POST", "snapshots", body, "3.66")[0] == 202
    assert parts.call("POST", "snapshots", forced, "3.66")[0] == 202
    unforced = {"snapshot": {"volume_id": volume["id"], "force": False}}
    assert parts.call("POST", "snapshots", unforced, "3.66") == bad_request(SNAPSHOT_IN_USE_FLAG_MSG)
    status, answer = parts.call("POST", "snapshots", {"snapshot": {"volume_id": volume["id"],
                                                                   "force": "maybe"}})
    assert status == 400 and answer["badRequest"]["message"].startswith(
        "Invalid input for field/attribute force. Value: maybe. 'maybe' is not one of [True, ")
    assert parts.call("POST", "snapshots", {"snapshot": {"name": "x"}}) == bad_request(
        "Invalid input for field/attribute snapshot. Value: {'name': 'x'}. 'volume_id' is a "
        "required property")
    assert parts.call("POST", "snapshots", {"snapshot": {"volume_id": volume["id"], "x": 1}}) == \
        bad_request(f"Invalid input for field/attribute snapshot. Value: {{'volume_id': "
                    f"'{volume['id']}', 'x': 1}}. Additional properties are not allowed ('x' was "
                    "unexpected)")


def test_http_snapshot_views(parts):
    volume = parts.volume()
    status, answer = parts.call("POST", "snapshots", {"snapshot": {
        "volume_id": volume["id"], "name": " s1 ", "description": "d", "metadata": {"k": "v"}}})
    created = answer["snapshot"]
    assert status == 202 and created["status"] == "creating" and created["name"] == "s1"
    assert set(created) == {"id", "created_at", "updated_at", "name", "description", "volume_id",
                            "status", "size", "metadata"}
    parts.run()
    status, answer = parts.call("GET", f"snapshots/{created['id']}", version="3.65")
    assert status == 200
    shown = answer["snapshot"]
    assert shown["status"] == "available" and shown["metadata"] == {"k": "v"}
    assert shown["os-extended-snapshot-attributes:progress"] == "100%"
    assert shown["os-extended-snapshot-attributes:project_id"] == PROJECT
    assert shown["user_id"] == "u1" and shown["group_snapshot_id"] is None
    assert shown["consumes_quota"] is True
    summary = parts.call("GET", "snapshots")[1]["snapshots"]
    assert [set(s) for s in summary] == [set(created)]
    detail = parts.call("GET", "snapshots/detail")[1]["snapshots"]
    assert detail[0]["os-extended-snapshot-attributes:progress"] == "100%"
    assert "user_id" not in detail[0]  # from 3.41

    status, answer = parts.call("PUT", f"snapshots/{created['id']}", {"snapshot": {"name": "s2"}})
    assert status == 200 and answer["snapshot"]["name"] == "s2"
    assert answer["snapshot"]["updated_at"] == shown["updated_at"]  # the stale stamp
    assert parts.call("PUT", f"snapshots/{created['id']}", {"snapshot": {}}) == bad_request(
        "Invalid input for field/attribute snapshot. Value: {}. {} is not valid under any of the "
        "given schemas")
    missing = "00000000-0000-0000-0000-000000000000"
    assert parts.call("GET", f"snapshots/{missing}") == (404, {"itemNotFound": {
        "code": 404, "message": f"Snapshot {missing} could not be found."}})


def test_http_snapshot_list_filters_and_pages(parts):
    one, two = parts.volume(name="one"), parts.volume(name="two")
    a = parts.snapshot(one["id"], name="a", metadata={"k": "v"})
    b = parts.snapshot(two["id"], name="b")

    def names(query, version="3.0"):
        status, body = parts.call("GET", "snapshots/detail", version=version, query=query)
        return sorted(s["name"] for s in body["snapshots"]) if status == 200 else (status, body)

    assert names({}) == ["a", "b"]
    assert names({"volume_id": one["id"]}) == ["a"]
    assert names({"name": "b"}) == ["b"]
    assert names({"status": "available"}) == ["a", "b"]
    meta = json.dumps({"k": "v"})
    assert names({"metadata": meta}) == ["a", "b"]  # ignored before 3.22, as Cinder does
    assert names({"metadata": meta}, "3.22") == ["a"]
    assert names({"bogus": "1"}, "3.34") == (400, {"badRequest": {
        "code": 400, "message": "Invalid filters bogus are found in query options."}})
    status, body = parts.call("GET", "snapshots", query={"limit": "1"})
    assert [s["id"] for s in body["snapshots"]] == [b["id"]]  # newest first
    assert f"marker={b['id']}" in body["snapshots_links"][0]["href"]
    status, body = parts.call("GET", "snapshots", query={"limit": "1", "marker": b["id"]})
    assert [s["id"] for s in body["snapshots"]] == [a["id"]]
    assert parts.call("GET", "snapshots", version="3.45", query={"with_count": "true"})[1]["count"] == 2


def test_http_snapshot_metadata(parts):
    snapshot = parts.snapshot(parts.volume()["id"], metadata={"a": "1"})
    path = f"snapshots/{snapshot['id']}/metadata"
    assert parts.call("GET", path) == (200, {"metadata": {"a": "1"}})
    assert parts.call("POST", path, {"metadata": {"b": "2"}}) == (200, {"metadata": {"a": "1", "b": "2"}})
    assert parts.call("PUT", path, {"metadata": {"c": "3"}}) == (200, {"metadata": {"c": "3"}})
    assert parts.call("PUT", f"{path}/d", {"meta": {"d": "4"}}) == (200, {"meta": {"d": "4"}})
    assert parts.call("GET", f"{path}/d") == (200, {"meta": {"d": "4"}})
    assert parts.call("PUT", f"{path}/d", {"meta": {"e": "4"}}) == bad_request(
        "Request body and URI mismatch")
    assert parts.call("POST", path, {"metadata": {"a/b": "1"}})[0] == 400  # no "/" in keys
    assert parts.call("DELETE", f"{path}/d") == (200, None)
    assert parts.call("GET", f"{path}/d") == (404, {"itemNotFound": {
        "code": 404, "message": f"Snapshot {snapshot['id']} has no metadata with key d."}})


def test_http_volume_from_a_snapshot_or_a_volume(parts):
    volume = parts.volume(size=2, volume_type="multiattach", multiattach=True)
    snapshot = parts.snapshot(volume["id"])
    status, answer = parts.call("POST", "volumes", {"volume": {"snapshot_id": snapshot["id"]}})
    made = answer["volume"]
    assert status == 202 and made["size"] == 2 and made["snapshot_id"] == snapshot["id"]
    assert made["volume_type"] == "multiattach" and made["multiattach"] is True  # the source's
    assert made["source_volid"] is None and made["status"] == "creating"
    status, answer = parts.call("POST", "volumes", {"volume": {"source_volid": volume["id"],
                                                               "size": 3, "volume_type": "local"}})
    assert status == 202 and answer["volume"]["source_volid"] == volume["id"]
    assert answer["volume"]["size"] == 3 and answer["volume"]["volume_type"] == "local"
    assert parts.call("POST", "volumes", {"volume": {"snapshot_id": snapshot["id"], "size": 1}}) == \
        bad_request("Invalid input received: Volume size '1'GB cannot be smaller than the snapshot "
                    "size 2GB. They must be >= original snapshot size.")
    assert parts.call("POST", "volumes", {"volume": {"snapshot_id": snapshot["id"],
                                                     "source_volid": volume["id"]}}) == \
        bad_request("Invalid input received: May specify only one of backup, imageRef, snapshot, "
                    "source volume")
    assert parts.call("POST", "volumes", {"volume": {"snapshot_id": "nope"}}) == bad_request(
        "Invalid input for field/attribute snapshot_id. Value: nope. 'nope' is not valid under any "
        "of the given schemas")
    missing = "00000000-0000-0000-0000-000000000000"
    assert parts.call("POST", "volumes", {"volume": {"snapshot_id": missing}}) == (404, {
        "itemNotFound": {"code": 404, "message": f"Snapshot {missing} could not be found."}})
    assert parts.call("POST", "volumes", {"volume": {"size": 1, "imageRef": missing}})[0] == 400
    parts.run()
    assert {v["status"] for v in parts.volumes.list_volumes(PROJECT)} == {"available"}


def test_http_fault_hooks_for_snapshots(parts):
    volume = parts.volume()
    parts.faults.add("snapshot.create", status=503)
    status, _ = parts.call("POST", "snapshots", {"snapshot": {"volume_id": volume["id"]}})
    assert status == 503 and parts.snapshots.list_snapshots(PROJECT) == []
    parts.faults.add("snapshot.list", status=500)
    assert parts.call("GET", "snapshots/detail")[0] == 500
    assert parts.call("GET", "snapshots/detail")[0] == 200
