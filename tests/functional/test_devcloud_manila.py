"""devcloud's Manila (shared file systems v2), driven with the real openstacksdk."""

import json
import os
import signal
import uuid

import openstack.exceptions
import pytest
import requests

from storage_core.devcloud import DevCloud, LatencyProfile
from storage_core.devcloud.shares import DEFAULT_SHARE_TYPE_ID
from storage_core.devcloud.testing import connect, start_subprocess
from tests.functional.devcloud_fixtures import cloud, conn  # noqa: F401 (fixtures)
from tests.functional.harness import wait_until

BACKENDS = {"glusterfs_server": "10.200.0.2", "glusterfs_volume": "gv0",
            "cephfs_mon": "10.200.0.3:6789", "cephfs_name": "fsx"}


def raw(conn, method, path, microversion=None, body=None, headers=None):
    """(status, JSON body) of a request to the share endpoint, no SDK error handling."""
    endpoint = conn.shared_file_system.get_endpoint()
    hdrs = {"X-Auth-Token": conn.session.get_token()}
    if microversion:
        hdrs["X-OpenStack-Manila-API-Version"] = microversion
    hdrs.update(headers or {})
    resp = requests.request(method, endpoint + path, headers=hdrs, json=body, timeout=10)
    return resp.status_code, (resp.json() if resp.content else None)



def available(conn, share):
    return conn.shared_file_system.wait_for_status(share, "available", failures=["error"],
                                                   interval=0.05, wait=10)


@pytest.fixture
def hooked(tmp_path):
    calls = []
    dc = DevCloud(tmp_path / "state", **BACKENDS,
                  make_share_dir=lambda proto, sid: calls.append(("make", proto, sid)),
                  remove_share_dir=lambda proto, sid: calls.append(("remove", proto, sid)))
    dc.start()
    connection = connect(dc)
    yield dc, connection, calls
    connection.close()
    dc.stop()


def test_version_documents_catalog_and_discovery(cloud, conn):
    root = requests.get(cloud.url + "/share/", timeout=10)
    assert root.status_code == 300
    # manila 23 lists v2 only (v1 is gone) and wants a token for the v2 document.
    assert [(v["id"], v["status"]) for v in root.json()["versions"]] == [("v2.0", "CURRENT")]
    assert requests.get(cloud.url + "/share/v1", timeout=10).status_code == 404
    token = conn.session.get_token()
    for path in ("/share/v2", "/share/v2/"):
        assert requests.get(cloud.url + path, timeout=10).status_code == 401
        [doc] = requests.get(cloud.url + path, headers={"X-Auth-Token": token},
                             timeout=10).json()["versions"]
        assert (doc["id"], doc["min_version"], doc["version"]) == ("v2.0", "2.0", "2.84")
        assert {"rel": "self", "href": cloud.url + "/share/v2/"} in doc["links"]
    catalog = requests.get(cloud.auth_url + "/auth/catalog", headers={"X-Auth-Token": token},
                           timeout=10).json()["catalog"]
    for service_type in ("shared-file-system", "sharev2"):
        [service] = [s for s in catalog if s["type"] == service_type]
        assert {e["url"] for e in service["endpoints"]} == {cloud.url + "/share/v2"}
    assert conn.shared_file_system.get_endpoint_data().max_microversion == (2, 84)


def test_microversion_negotiation_and_echo(cloud, conn):
    sfs = conn.shared_file_system
    resp = sfs.get("/shares", microversion="2.50")
    assert resp.headers["X-OpenStack-Manila-API-Version"] == "2.50"
    resp = sfs.get("/shares", microversion=None)
    assert resp.headers["X-OpenStack-Manila-API-Version"] == "2.0"
    assert "OpenStack-API-Version" not in resp.headers  # Manila echoes its own header only
    # keystoneauth passes "latest" on; Manila knows no such version.
    resp = sfs.get("/shares", microversion="latest", raise_exc=False)
    assert resp.status_code == 400 and "invalid format" in resp.json()["badRequest"]["message"]
    # The standard header alone is ignored, as Manila does: 2.0.
    resp = requests.get(sfs.get_endpoint() + "/shares", timeout=10, headers={
        "X-Auth-Token": conn.session.get_token(),
        "OpenStack-API-Version": "shared-file-system 2.45"})
    assert (resp.status_code, resp.headers["X-OpenStack-Manila-API-Version"]) == (200, "2.0")
    assert raw(conn, "GET", "/shares", microversion="2.85") == (406, {"computeFault": {
        "code": 406, "message": "Version 2.85 is not supported by the API. Minimum is 2.0 "
                                "and maximum is 2.84."}})
    resp = sfs.get("/shares", microversion="2.85", raise_exc=False)
    assert resp.headers["X-OpenStack-Manila-API-Version"] == "2.85"  # echoed even then
    status, body = raw(conn, "GET", "/shares", microversion="2")
    assert status == 400 and "invalid format" in body["badRequest"]["message"]
    # Routes newer than the request's version are missing, as in Manila.
    share_id = str(uuid.uuid4())
    status, body = raw(conn, "GET", f"/shares/{share_id}/export_locations", microversion="2.8")
    assert status == 404
    assert requests.get(cloud.url + "/share/v2/shares", timeout=10).status_code == 401


@pytest.mark.parametrize("proto,access_type,access_to,export", [
    ("NFS", "ip", "10.0.0.0/24", "127.0.0.1:/exports/{id}"),
    ("CEPHFS", "cephx", "alice", "10.200.0.3:6789:/volumes/_nogroup/{id}"),
    ("GLUSTERFS", "cert", "client.example.com", "10.200.0.2:/gv0/share-{id}"),
])
def test_full_lifecycle_per_protocol(hooked, proto, access_type, access_to, export):
    dc, conn, calls = hooked
    sfs = conn.shared_file_system
    share = sfs.create_share(name=f"vol-{proto}", size=2, share_proto=proto.lower(),
                             metadata={"volume_from": "fuxi", "fstype": "none"})
    assert share.status == "creating"
    assert share.share_protocol == proto
    share = available(conn, share)
    assert share.size == 2 and share.metadata == {"volume_from": "fuxi", "fstype": "none"}
    assert ("make", proto, share.id) in calls
    assert [s.id for s in sfs.shares(name=f"vol-{proto}")] == [share.id]
    assert list(sfs.shares(name=f"vol-{proto}x")) == []
    assert list(sfs.shares(name=f"vol-{proto[:2]}")) == []  # exact, not a pattern
    found = sfs.shares(metadata=str({"volume_from": "fuxi"}))
    assert [s.id for s in found] == [share.id]

    [location] = list(sfs.export_locations(share))
    assert location.path == export.format(id=share.id)
    assert location.is_preferred is True and location.is_admin is False
    assert location.share_instance_id and location.share_instance_id != share.id
    assert sfs.get_export_location(location, share).path == location.path

    rule = sfs.create_access_rule(share, access_type=access_type, access_to=access_to,
                                  access_level="rw")
    assert rule.state == "queued_to_apply" and rule.access_key is None
    active = wait_until(lambda: [r for r in sfs.access_rules(share) if r.state == "active"])
    assert [(r.id, r.access_type, r.access_to, r.access_level) for r in active] == [
        (rule.id, access_type, access_to, "rw")]
    if proto == "CEPHFS":
        assert active[0].access_key.startswith("AQ") and len(active[0].access_key) == 40
    else:
        assert active[0].access_key is None
    assert sfs.get_access_rule(rule).share_id == share.id

    sfs.delete_access_rule(rule, share)
    wait_until(lambda: not list(sfs.access_rules(share)))
    sfs.delete_share(share)
    sfs.wait_for_delete(share, interval=0.05, wait=10)
    assert ("remove", proto, share.id) in calls
    with pytest.raises(openstack.exceptions.NotFoundException):
        sfs.get_share(share.id)


def test_share_views_follow_the_microversion(cloud, conn):
    cloud.latency = LatencyProfile.coerce({"access": 0.3})
    share = available(conn, conn.shared_file_system.create_share(size=1, share_proto="NFS"))
    status, old = raw(conn, "GET", f"/shares/{share.id}")  # no header: 2.0
    assert old["share"]["export_locations"] == [f"127.0.0.1:/exports/{share.id}"]
    assert old["share"]["share_type"] == "default" and "access_rules_status" not in old["share"]
    _, new = raw(conn, "GET", f"/shares/{share.id}", microversion="2.84")
    assert "export_locations" not in new["share"]
    assert new["share"]["share_type"] == DEFAULT_SHARE_TYPE_ID
    assert new["share"]["share_type_name"] == "default"
    assert new["share"]["access_rules_status"] == "active"
    assert new["share"]["progress"] == "100%"

    status, body = raw(conn, "POST", f"/shares/{share.id}/action", microversion="2.84",
                       body={"allow_access": {"access_type": "ip", "access_to": "10.1.1.1"}})
    assert status == 200 and body["access"]["state"] == "queued_to_apply"
    assert body["access"]["access_level"] == "rw"  # Manila's default
    _, syncing = raw(conn, "GET", f"/shares/{share.id}", microversion="2.84")
    assert syncing["share"]["access_rules_status"] == "syncing"
    _, legacy = raw(conn, "POST", f"/shares/{share.id}/action", microversion="2.6",
                    body={"os-access_list": None})
    assert legacy["access_list"][0]["state"] == "new"  # before 2.28
    wait_until(lambda: raw(conn, "GET", f"/shares/{share.id}", microversion="2.84")[1]
               ["share"]["access_rules_status"] == "active")
    # Action names follow the version: os- prefixed before 2.7 only.
    status, body = raw(conn, "POST", f"/shares/{share.id}/action", microversion="2.84",
                       body={"os-allow_access": {"access_type": "ip", "access_to": "10.1.1.2"}})
    assert (status, body["itemNotFound"]["message"]) == (404, "The resource could not be found.")
    status, body = raw(conn, "POST", f"/shares/{share.id}/action", microversion="2.84",
                       body={"os-magic": None})
    assert (status, body["badRequest"]["message"]) == (400, "There is no such action: os-magic")


def test_access_rule_validation_and_driver_errors(cloud, conn):
    sfs = conn.shared_file_system
    share = available(conn, sfs.create_share(size=1, share_proto="CEPHFS"))
    path = f"/shares/{share.id}/action"

    def allow(access_type, access_to, level="rw", version="2.82"):
        return raw(conn, "POST", path, microversion=version, body={"allow_access": {
            "access_type": access_type, "access_to": access_to, "access_level": level}})

    status, body = allow("ip", "10.0.0.300")
    assert status == 400 and "10.0.0.300" in body["badRequest"]["message"]
    assert allow("cephx", "client.alice") == (400, {"badRequest": {
        "code": 400, "message": "Ceph IDs may not contain periods."}})
    assert allow("cephx", "alice", version="2.12") == (400, {"badRequest": {
        "code": 400, "message": "Only 'ip', 'user' or 'cert' access types are supported."}})
    assert allow("magic", "x") == (400, {"badRequest": {
        "code": 400, "message": "Only 'ip', 'user', 'cert' or 'cephx' access types are "
                                "supported."}})
    assert allow("cephx", "bob", level="rx")[0] == 400
    assert allow("cephx", "bob")[0] == 200
    assert allow("cephx", "bob", level="ro") == (400, {"badRequest": {
        "code": 400, "message": "Share access cephx:bob exists."}})
    with pytest.raises(openstack.exceptions.BadRequestException, match="exists"):
        sfs.create_access_rule(share, access_type="cephx", access_to="bob", access_level="rw")

    # The CephFS driver refuses ip rules and manila's own cephx id: error state.
    bad = sfs.create_access_rule(share, access_type="ip", access_to="10.0.0.1",
                                 access_level="rw")
    wait_until(lambda: sfs.get_access_rule(bad).state == "error")
    _, body = raw(conn, "GET", f"/shares/{share.id}", microversion="2.84")
    assert body["share"]["access_rules_status"] == "error"
    # A rule in error blocks new ones before 2.28 only (manila 23 checks the
    # version first, then the access type).
    status, body = allow("cephx", "carol", version="2.27")
    assert status == 400 and "access_rules_status set to error" in body["badRequest"]["message"]
    status, body = allow("magic", "x", version="2.12")
    assert status == 400 and "access_rules_status set to error" in body["badRequest"]["message"]
    assert allow("cephx", "carol")[0] == 200
    sfs.delete_access_rule(bad, share)  # denying the bad rule clears the error
    wait_until(lambda: raw(conn, "GET", f"/shares/{share.id}", microversion="2.84")[1]
               ["share"]["access_rules_status"] == "active")
    manila = sfs.create_access_rule(share, access_type="cephx", access_to="manila",
                                    access_level="rw")
    wait_until(lambda: sfs.get_access_rule(manila).state == "error")


def test_manila_shaped_errors(cloud, conn):
    sfs = conn.shared_file_system
    missing = str(uuid.uuid4())
    plain_404 = (404, {"itemNotFound": {"code": 404,
                                        "message": "The resource could not be found."}})
    assert raw(conn, "GET", f"/shares/{missing}") == plain_404
    assert raw(conn, "DELETE", f"/shares/{missing}") == plain_404
    with pytest.raises(openstack.exceptions.NotFoundException):
        sfs.get_share(missing)
    sfs.delete_share(missing)  # ignore_missing
    action_404 = (404, {"itemNotFound": {"code": 404,
                                         "message": "NotFound: Resource could not be found."}})
    assert raw(conn, "POST", f"/shares/{missing}/action", microversion="2.82",
               body={"allow_access": {"access_type": "ip", "access_to": "1.2.3.4"}}) == action_404
    assert raw(conn, "POST", f"/shares/{missing}/action", microversion="2.82",
               body={"deny_access": {"access_id": missing}}) == action_404
    assert raw(conn, "POST", f"/shares/{missing}/action", microversion="2.6",
               body={"os-access_list": None}) == action_404
    assert raw(conn, "POST", f"/shares/{missing}/action", microversion="2.7",
               body={"force_delete": None}) == plain_404
    assert raw(conn, "GET", f"/shares/{missing}/metadata") == (
        404, {"itemNotFound": {"code": 404, "message": "Share not found."}})
    assert raw(conn, "GET", f"/shares/{missing}/export_locations", microversion="2.47") == (
        404, {"itemNotFound": {"code": 404, "message": f"Share '{missing}' not found."}})
    assert raw(conn, "GET", f"/share-access-rules?share_id={missing}", microversion="2.82") == (
        400, {"badRequest": {"code": 400, "message": f"Share {missing} not found."}})
    assert raw(conn, "GET", "/share-access-rules", microversion="2.82") == (
        400, {"badRequest": {"code": 400,
                             "message": "The field 'share_id' has to be specified."}})
    assert raw(conn, "GET", f"/share-access-rules/{missing}", microversion="2.82") == (
        404, {"itemNotFound": {"code": 404,
                               "message": f"Share access rule {missing} not found."}})
    share = available(conn, sfs.create_share(size=1, share_proto="NFS"))
    assert raw(conn, "POST", f"/shares/{share.id}/action", microversion="2.82",
               body={"deny_access": {"access_id": missing}}) == (
        404, {"itemNotFound": {"code": 404, "message": "Resource could not be found."}})
    with pytest.raises(openstack.exceptions.NotFoundException):
        sfs.delete_access_rule(missing, share, ignore_missing=False)

    enabled = "It is either disabled or unsupported. Available protocols: ['NFS', 'CEPHFS', " \
              "'GLUSTERFS']."
    for body, message in (
        ({"share": {"size": 1, "share_proto": "SMB3"}},
         f"Invalid input received: Invalid share protocol provided: SMB3. {enabled}"),
        # Only the protocols with a backend are enabled (as in contrib/realcloud).
        ({"share": {"size": 1, "share_proto": "CIFS"}},
         f"Invalid input received: Invalid share protocol provided: CIFS. {enabled}"),
        ({"share": {"size": 0, "share_proto": "NFS"}},
         "Invalid input received: Share size '0' must be an integer and greater than 0."),
        ({"share": {"size": 1, "share_proto": "NFS", "metadata": {"k": ""}}},
         "Metadata property value is blank."),
    ):
        assert raw(conn, "POST", "/shares", body=body) == (
            400, {"badRequest": {"code": 400, "message": message}})
    assert raw(conn, "POST", "/shares", body={"share": {
        "size": 1, "share_proto": "NFS", "share_type": "gold"}}) == (
        404, {"itemNotFound": {"code": 404, "message": "Share type not found."}})
    assert raw(conn, "POST", "/shares", body={"share": {
        "size": 1, "share_proto": "NFS", "availability_zone": "az9"}}) == (
        404, {"itemNotFound": {"code": 404, "message": "Availability zone az9 could not be "
                                                       "found."}})
    assert raw(conn, "POST", "/shares", body={"nope": {}})[0] == 422


def test_delete_rules_and_statuses(cloud, conn):
    sfs = conn.shared_file_system
    share = available(conn, sfs.create_share(size=1, share_proto="NFS", name="busy"))
    sfs.create_access_rule(share, access_type="ip", access_to="10.9.9.9", access_level="ro")
    wait_until(lambda: [r for r in sfs.access_rules(share) if r.state == "active"])
    # Manila deletes a share whatever its access rules: so does devcloud.
    sfs.delete_share(share)
    sfs.wait_for_delete(share, interval=0.05, wait=10)

    cloud.latency = LatencyProfile.coerce({"create": 30.0})
    slow = sfs.create_share(size=1, share_proto="NFS")
    status, body = raw(conn, "DELETE", f"/shares/{slow.id}")
    assert (status, body) == (403, {"forbidden": {"code": 403, "message": (
        "Invalid share: Share status must be one of ('available', 'error', 'inactive').")}})
    # Not scheduled yet: no host, no zone, no progress, and no access rules.
    _, body = raw(conn, "GET", f"/shares/{slow.id}", microversion="2.82")
    assert (body["share"]["host"], body["share"]["availability_zone"],
            body["share"]["progress"]) == ("", None, None)
    assert raw(conn, "POST", f"/shares/{slow.id}/action", microversion="2.82",
               body={"allow_access": {"access_type": "ip", "access_to": "1.1.1.1"}}) == (
        400, {"badRequest": {"code": 400, "message": (
            "New access rules cannot be applied while the share or any of its replicas or "
            "migration copies lacks a valid host or is in an invalid state.")}})
    assert list(sfs.export_locations(slow)) == []
    # The SDK sends force_delete without a microversion (2.0), where Manila
    # only knows os-force_delete: a 404 the SDK swallows (ignore_missing).
    assert sfs.delete_share(slow, force=True) is None
    assert sfs.get_share(slow).status == "creating"
    with pytest.raises(openstack.exceptions.NotFoundException, match="could not be found"):
        sfs.delete_share(slow, force=True, ignore_missing=False)
    status, _ = raw(conn, "POST", f"/shares/{slow.id}/action", microversion="2.7",
                    body={"force_delete": None})  # skips the status check
    assert status == 202
    sfs.wait_for_delete(slow, interval=0.05, wait=10)


def test_metadata_api(cloud, conn):
    sfs = conn.shared_file_system
    share = available(conn, sfs.create_share(size=1, share_proto="NFS", metadata={"a": "1"}))
    assert sfs.fetch_share_metadata(share).metadata == {"a": "1"}
    sfs.set_share_metadata(share, b="2")
    assert sfs.fetch_share_metadata(share).metadata == {"a": "1", "b": "2"}
    assert sfs.fetch_share_metadata_item(share, "b").metadata["b"] == "2"
    sfs.set_share_metadata(share, c="3", replace=True)
    assert sfs.get_share(share).metadata == {"c": "3"}
    sfs.delete_share_metadata(share, ["c"])
    assert sfs.get_share(share).metadata == {}


def test_state_survives_restart(tmp_path):
    state = tmp_path / "state"
    dc = DevCloud(state, **BACKENDS).start()
    try:
        conn = connect(dc)
        sfs = conn.shared_file_system
        share = available(conn, sfs.create_share(name="keep", size=3, share_proto="CEPHFS"))
        rule = sfs.create_access_rule(share, access_type="cephx", access_to="fuxi",
                                      access_level="rw")
        key = wait_until(lambda: sfs.get_access_rule(rule).access_key)
        dc.latency = LatencyProfile.coerce({"create": 60.0, "access": 60.0})
        pending = sfs.create_share(name="pending", size=1, share_proto="NFS")
        queued = sfs.create_access_rule(share, access_type="cephx", access_to="later",
                                        access_level="ro")
        port = dc.port
    finally:
        dc.stop()
    dc = DevCloud(state, port=port, **BACKENDS).start()
    try:
        conn = connect(dc)
        sfs = conn.shared_file_system
        again = sfs.get_share(share.id)
        assert (again.name, again.size, again.status) == ("keep", 3, "available")
        assert sfs.get_access_rule(rule).access_key == key
        # Work pending at the stop is finished at the next start.
        assert sfs.get_share(pending.id).status == "available"
        assert sfs.get_access_rule(queued).state == "active"
        [location] = list(sfs.export_locations(share))
        assert location.path == f"10.200.0.3:6789:/volumes/_nogroup/{share.id}"
    finally:
        dc.stop()


def test_make_share_dir_failure_is_an_error_status(tmp_path):
    def broken(proto, share_id):
        raise OSError("the FUSE mount went away")

    with DevCloud(tmp_path / "state", make_share_dir=broken) as dc:
        conn = connect(dc)
        share = conn.shared_file_system.create_share(size=1, share_proto="GLUSTERFS")
        with pytest.raises(openstack.exceptions.ResourceFailure):
            available(conn, share)


def test_faults_for_share_operations(cloud, conn):
    sfs = conn.shared_file_system
    cloud.faults.add("share.create", status=500)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        sfs.create_share(size=1, share_proto="NFS")
    assert err.value.status_code == 500
    share = available(conn, sfs.create_share(size=1, share_proto="NFS"))
    for operation, call in (
        ("share.get", lambda: sfs.get_share(share)),
        ("share.list", lambda: list(sfs.shares())),
        ("access.create", lambda: sfs.create_access_rule(
            share, access_type="ip", access_to="1.2.3.4", access_level="rw")),
        ("access.list", lambda: list(sfs.access_rules(share))),
        ("export_locations.list", lambda: list(sfs.export_locations(share))),
    ):
        cloud.faults.add(operation, status=503)
        with pytest.raises(openstack.exceptions.HttpException) as err:
            call()
        assert err.value.status_code == 503, operation
    rule = sfs.create_access_rule(share, access_type="ip", access_to="1.2.3.4",
                                  access_level="rw")
    cloud.faults.add("access.delete", status=500)
    with pytest.raises(openstack.exceptions.HttpException):
        sfs.delete_access_rule(rule, share)
    cloud.faults.add("share.delete", status=409, body={"conflictingRequest": {
        "code": 409, "message": "busy"}})
    status, body = raw(conn, "DELETE", f"/shares/{share.id}")
    assert (status, body["conflictingRequest"]["message"]) == (409, "busy")
    requests.post(cloud.url + "/devcloud/faults", json={"operation": "share.get",
                                                        "status": 500}, timeout=10)
    assert raw(conn, "GET", f"/shares/{share.id}")[0] == 500


def test_cli_flags_mounts_and_ready_file(tmp_path):
    gluster_root = tmp_path / "gluster-mnt"
    gluster_root.mkdir()
    process, ready = start_subprocess(
        tmp_path / "state", tmp_path / "ready.json",
        "--glusterfs-server", "10.200.0.2", "--glusterfs-volume", "gv0",
        "--cephfs-mon", "10.200.0.3:6789", "--cephfs-name", "fsx",
        "--glusterfs-mount", gluster_root)
    try:
        assert ready["share_backends"] == {"nfs_server": "127.0.0.1", **BACKENDS}
        conn = connect(ready["cloud"])
        sfs = conn.shared_file_system
        share = available(conn, sfs.create_share(size=1, share_proto="GLUSTERFS"))
        assert os.path.isdir(gluster_root / f"share-{share.id}")
        [location] = list(sfs.export_locations(share))
        assert location.path == f"10.200.0.2:/gv0/share-{share.id}"
        sfs.delete_share(share)
        sfs.wait_for_delete(share, interval=0.05, wait=10)
        assert not os.path.exists(gluster_root / f"share-{share.id}")
        conn.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    assert not os.path.exists(tmp_path / "ready.json")
    json.dumps(ready)
