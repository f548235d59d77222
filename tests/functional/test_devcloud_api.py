"""devcloud driven by the real openstacksdk over HTTP, as fuxi drives a cloud."""

import json
import subprocess
import time
import uuid

import keystoneauth1.exceptions
import openstack.exceptions
import pytest
import requests

from storage_core.devcloud import DevCloud
from storage_core.devcloud.testing import connect, loop_devices_under, release_loop_devices_under
from tests.functional.devcloud_fixtures import cloud, conn  # noqa: F401 (fixtures)

CONNECTOR = {"host": "fuxi-test-host", "platform": "x86_64", "os_type": "linux",
             "multipath": False, "initiator": None}




def wait_available(bs, volume, timeout=10):
    return bs.wait_for_status(volume, "available", interval=0.05, wait=timeout)


def losetup_j(path):
    out = subprocess.run(["losetup", "-j", path], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


def raw(conn, method, path, microversion=None, **kwargs):
    """A block-storage call with an explicit microversion, answer not raised."""
    return conn.block_storage.request(path, method, microversion=microversion,
                                      raise_exc=False, **kwargs)


def test_volume_attach_detach_delete_lifecycle(cloud, conn):
    bs = conn.block_storage
    volume = bs.create_volume(name="fuxi-vol", size=1,
                              metadata={"volume_from": "fuxi", "fstype": "ext4"})
    assert volume.status == "creating"
    volume = wait_available(bs, volume)
    assert volume.size == 1
    assert volume.volume_type == "__DEFAULT__"
    assert volume.availability_zone == "nova"
    assert volume.is_bootable is False and volume.is_multiattach is False
    assert len(volume.created_at) == len("2026-11-26T21:33:59.000000")

    found = list(bs.volumes(name="fuxi-vol"))
    assert [v.id for v in found] == [volume.id]
    assert list(bs.volumes(name="fuxi")) == []  # exact match, not a prefix
    # Metadata filtering as Cinder parses it: a dict literal in the query.
    tagged = list(bs.volumes(properties=json.dumps({"volume_from": "fuxi"})))
    assert [v.id for v in tagged] == [volume.id]
    assert list(bs.volumes(properties=json.dumps({"volume_from": "other"}))) == []

    bs.set_volume_metadata(volume, mounted="no")
    assert bs.fetch_volume_metadata(volume).metadata == {
        "volume_from": "fuxi", "fstype": "ext4", "mounted": "no"}
    bs.delete_volume_metadata(volume, keys=["mounted"])
    assert bs.get_volume(volume).metadata == {"volume_from": "fuxi", "fstype": "ext4"}

    image = cloud._backend.path(volume.id)
    attachment = bs.create_attachment(volume.id, connector=CONNECTOR, mode="rw")
    # As real Cinder: the create answers "reserved", then it reads "attaching";
    # connection info is flat (no "data"), with Cinder's own keys added.
    assert attachment.status == "reserved"
    info = attachment.connection_info
    assert info["driver_volume_type"] == "local"
    assert info["attachment_id"] == attachment.id
    assert info["access_mode"] == "rw"
    assert "data" not in info
    device = info["device_path"]
    assert device.startswith("/dev/loop")
    assert losetup_j(image) == [device]
    assert bs.get_volume(volume).status == "attaching"
    assert bs.get_attachment(attachment.id).status == "attaching"
    assert bs.get_volume(volume).attachments == []  # listed only once completed

    bs.complete_attachment(attachment.id)
    volume = bs.get_volume(volume)
    assert volume.status == "in-use"
    assert len(volume.attachments) == 1
    entry = volume.attachments[0]
    assert entry["attachment_id"] == attachment.id
    assert entry["volume_id"] == volume.id
    assert entry["host_name"] is None  # Cinder records no host without an instance
    assert entry["device"] == "na"
    assert entry["attached_at"]
    assert bs.get_attachment(attachment.id).status == "attached"
    assert [a.id for a in bs.attachments(volume_id=volume.id)] == [attachment.id]

    bs.delete_attachment(attachment.id)
    assert losetup_j(image) == []
    volume = bs.get_volume(volume)
    assert volume.status == "available"
    assert volume.attachments == []
    with pytest.raises(openstack.exceptions.NotFoundException):
        bs.get_attachment(attachment.id)

    bs.delete_volume(volume)
    bs.wait_for_delete(volume, interval=0.05, wait=10)
    with pytest.raises(openstack.exceptions.NotFoundException):
        bs.get_volume(volume.id)
    assert list(bs.volumes(name="fuxi-vol")) == []
    assert not loop_devices_under(cloud.state_dir)


def test_attachment_without_connector_then_update(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="later", size=1))
    attachment = bs.create_attachment(volume.id)
    assert attachment.connection_info == {}  # real Cinder's answer to a bare reservation
    assert loop_devices_under(cloud.state_dir) == {}
    updated = bs.update_attachment(attachment.id, connector=CONNECTOR)
    device = updated.connection_info["device_path"]
    assert losetup_j(cloud._backend.path(volume.id)) == [device]
    bs.delete_attachment(attachment.id)
    assert loop_devices_under(cloud.state_dir) == {}
    assert bs.get_volume(volume).status == "available"


def test_read_only_attachment(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="ro", size=1))
    attachment = bs.create_attachment(volume.id, connector=CONNECTOR, mode="ro")
    device = attachment.connection_info["device_path"]
    assert attachment.connection_info["access_mode"] == "ro"
    ro = subprocess.run(["blockdev", "--getro", device], capture_output=True, text=True)
    assert ro.stdout.strip() == "1"
    bs.delete_attachment(attachment.id)


def test_not_found_has_cinder_shape(conn):
    missing = str(uuid.uuid4())
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.block_storage.get_volume(missing)
    resp = raw(conn, "GET", f"/volumes/{missing}")
    assert resp.status_code == 404
    assert resp.json() == {"itemNotFound": {
        "code": 404, "message": f"Volume {missing} could not be found."}}
    resp = raw(conn, "GET", f"/attachments/{missing}", microversion="3.27")
    assert resp.status_code == 404
    assert missing in resp.json()["itemNotFound"]["message"]


def test_delete_attached_volume_is_refused(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="busy", size=1))
    attachment = bs.create_attachment(volume.id, connector=CONNECTOR)
    resp = raw(conn, "DELETE", f"/volumes/{volume.id}")
    assert resp.status_code == 400
    message = resp.json()["badRequest"]["message"]
    assert message.startswith("Invalid volume: Volume status must be available or error")
    bs.complete_attachment(attachment.id)
    with pytest.raises(openstack.exceptions.BadRequestException):
        bs.delete_volume(volume)
    assert bs.get_volume(volume).status == "in-use"
    bs.delete_attachment(attachment.id)
    bs.delete_volume(volume)
    bs.wait_for_delete(volume, interval=0.05, wait=10)


def test_second_attachment_is_refused(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="single", size=1))
    first = bs.create_attachment(volume.id, connector=CONNECTOR)
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        bs.create_attachment(volume.id, connector=CONNECTOR)
    assert "status must be available" in str(err.value)
    bs.delete_attachment(first.id)


def test_attachments_need_microversion_3_27(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="mv", size=1))
    body = {"attachment": {"volume_uuid": volume.id, "connector": CONNECTOR}}
    for version in (None, "3.0", "3.26"):
        resp = raw(conn, "POST", "/attachments", microversion=version, json=body)
        assert resp.status_code == 404, version
        assert resp.json() == {"itemNotFound": {
            "code": 404, "message": "The resource could not be found."}}
    assert bs.get_volume(volume).status == "available"

    resp = raw(conn, "POST", "/attachments", microversion="3.27", json=body)
    assert resp.status_code == 200
    assert resp.headers["OpenStack-API-Version"] == "volume 3.27"
    attachment_id = resp.json()["attachment"]["id"]
    # os-complete arrived at 3.44.
    resp = raw(conn, "POST", f"/attachments/{attachment_id}/action", microversion="3.43",
               json={"os-complete": attachment_id})
    assert resp.status_code == 404
    resp = raw(conn, "POST", f"/attachments/{attachment_id}/action", microversion="3.44",
               json={"os-complete": attachment_id})
    assert resp.status_code == 204
    resp = raw(conn, "DELETE", f"/attachments/{attachment_id}", microversion="3.27")
    assert resp.status_code == 200
    assert resp.json() == {"attachments": []}


def test_mode_needs_3_54_and_no_instance_none(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="mode", size=1))
    body = {"attachment": {"volume_uuid": volume.id, "mode": "rw"}}
    resp = raw(conn, "POST", "/attachments", microversion="3.53", json=body)
    assert resp.status_code == 400
    assert "Additional properties are not allowed ('mode' was unexpected)" in \
        resp.json()["badRequest"]["message"]
    # The SDK sends instance=None as "instance": null, which Cinder refuses.
    with pytest.raises(openstack.exceptions.BadRequestException):
        bs.create_attachment(volume.id, instance=None)
    assert bs.get_volume(volume).status == "available"


def test_microversion_negotiation_and_echo(conn):
    resp = raw(conn, "GET", "/volumes", microversion="3.72")
    assert resp.status_code == 406
    assert resp.json() == {"computeFault": {"code": 406, "message": (
        "Version 3.72 is not supported by the API. Minimum is 3.0 and maximum is 3.71.")}}
    resp = raw(conn, "GET", "/volumes", microversion="3.50")
    assert resp.status_code == 200
    assert resp.headers["OpenStack-API-Version"] == "volume 3.50"
    resp = raw(conn, "GET", "/volumes")
    assert resp.headers["OpenStack-API-Version"] == "volume 3.0"
    resp = raw(conn, "GET", "/volumes", headers={"X-OpenStack-Volume-API-Version": "3.33"})
    assert resp.headers["OpenStack-API-Version"] == "volume 3.33"
    resp = raw(conn, "GET", "/volumes", headers={"OpenStack-API-Version": "volume 3"})
    assert resp.status_code == 400


def test_version_discovery_documents(cloud):
    root = requests.get(cloud.url + "/volume/")
    assert root.status_code == 300
    (doc,) = root.json()["versions"]
    assert (doc["id"], doc["status"], doc["min_version"], doc["version"]) == \
        ("v3.0", "CURRENT", "3.0", "3.71")
    v3 = requests.get(cloud.url + "/volume/v3/").json()["version"]
    assert v3["version"] == "3.71" and v3["min_version"] == "3.0"
    assert {"rel": "self", "href": cloud.url + "/volume/v3/"} in v3["links"]
    assert requests.get(cloud.url + "/identity").status_code == 300
    identity = requests.get(cloud.url + "/identity/v3").json()["version"]
    assert identity["id"].startswith("v3.")
    assert requests.get(cloud.url + "/devcloud/health").json() == {"status": "ok"}


def _password_body(password, project="fuxi"):
    return {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "fuxi", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
    }}


def test_keystone_token_catalog_and_validation(cloud):
    resp = requests.post(cloud.auth_url + "/auth/tokens", json=_password_body("devcloud"))
    assert resp.status_code == 201
    token = resp.headers["X-Subject-Token"]
    body = resp.json()["token"]
    for key in ("expires_at", "issued_at", "user", "project", "roles", "methods", "catalog"):
        assert key in body
    assert body["methods"] == ["password"]
    assert body["project"]["name"] == "fuxi"
    project_id = body["project"]["id"]
    by_type = {s["type"]: s for s in body["catalog"]}
    for service_type in ("block-storage", "volumev3"):
        endpoints = by_type[service_type]["endpoints"]
        assert {e["interface"] for e in endpoints} == {"public", "internal", "admin"}
        assert {e["url"] for e in endpoints} == {f"{cloud.url}/volume/v3/{project_id}"}
        assert {e["region"] for e in endpoints} == {"RegionOne"}

    check = requests.get(cloud.auth_url + "/auth/tokens",
                         headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert check.status_code == 200
    assert check.json()["token"]["project"]["id"] == project_id

    volumes = requests.get(f"{cloud.url}/volume/v3/{project_id}/volumes",
                           headers={"X-Auth-Token": token})
    assert volumes.status_code == 200 and volumes.json() == {"volumes": []}
    other = requests.get(f"{cloud.url}/volume/v3/{uuid.uuid4().hex}/volumes",
                         headers={"X-Auth-Token": token})
    assert other.status_code == 400


def test_wrong_password_and_missing_token_are_401(cloud):
    resp = requests.post(cloud.auth_url + "/auth/tokens", json=_password_body("wrong"))
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == 401 and error["title"] == "Unauthorized" and error["message"]
    bad_project = requests.post(cloud.auth_url + "/auth/tokens",
                                json=_password_body("devcloud", project="nope"))
    assert bad_project.status_code == 401

    bad = dict(cloud.cloud_config())
    bad["auth"] = dict(bad["auth"], password="wrong")
    conn = connect(bad)
    with pytest.raises(keystoneauth1.exceptions.Unauthorized):
        list(conn.block_storage.volumes())

    project_url = cloud.url + "/volume/v3/" + uuid.uuid4().hex + "/volumes"
    for headers in ({}, {"X-Auth-Token": "not-a-token"}, {"X-Auth-Token": "a.b"}):
        resp = requests.get(project_url, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == 401


def test_bad_bodies_are_400(conn):
    for body in ({"volume": {"size": 0}}, {"volume": {"size": "abc"}}, {"volume": {}},
                 {"volume": {"size": True}}, {"size": 1},
                 {"volume": {"size": 1, "metadata": {"k": 1}}},
                 {"volume": {"size": 1, "availability_zone": "elsewhere"}}):
        resp = raw(conn, "POST", "/volumes", json=body)
        assert resp.status_code == 400, body
        assert resp.json()["badRequest"]["code"] == 400
    resp = raw(conn, "POST", "/volumes", data=b"{not json",
               headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    resp = raw(conn, "POST", "/volumes", json={"volume": {"size": 1, "volume_type": "gold"}})
    assert resp.status_code == 404
    resp = raw(conn, "POST", "/attachments", microversion="3.27",
               json={"attachment": {"volume_uuid": "not-a-uuid"}})
    assert resp.status_code == 400
    assert list(conn.block_storage.volumes()) == []


def test_metadata_item_endpoints(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="meta", size=1, metadata={"a": "1"}))
    resp = raw(conn, "PUT", f"/volumes/{volume.id}/metadata", json={"metadata": {"b": "2"}})
    assert resp.json() == {"metadata": {"b": "2"}}
    resp = raw(conn, "POST", f"/volumes/{volume.id}/metadata", json={"metadata": {"c": "3"}})
    assert resp.json() == {"metadata": {"b": "2", "c": "3"}}
    resp = raw(conn, "PUT", f"/volumes/{volume.id}/metadata/d", json={"meta": {"d": "4"}})
    assert resp.json() == {"meta": {"d": "4"}}
    resp = raw(conn, "PUT", f"/volumes/{volume.id}/metadata/d", json={"meta": {"e": "4"}})
    assert resp.status_code == 400
    resp = raw(conn, "GET", f"/volumes/{volume.id}/metadata/d")
    assert resp.json() == {"meta": {"d": "4"}}
    resp = raw(conn, "DELETE", f"/volumes/{volume.id}/metadata/d")
    assert resp.status_code == 200
    resp = raw(conn, "DELETE", f"/volumes/{volume.id}/metadata/d")
    assert resp.status_code == 404
    assert bs.get_volume(volume).metadata == {"b": "2", "c": "3"}


def test_list_pagination_and_summary(cloud, conn):
    bs = conn.block_storage
    made = [bs.create_volume(name=f"page-{i}", size=1) for i in range(3)]
    ids = {v.id for v in made}
    assert {v.id for v in bs.volumes(limit=1)} == ids
    resp = raw(conn, "GET", "/volumes/detail?limit=2")
    body = resp.json()
    assert len(body["volumes"]) == 2
    assert body["volumes_links"][0]["rel"] == "next"
    summary = raw(conn, "GET", "/volumes").json()["volumes"]
    assert set(summary[0]) == {"id", "name", "links"}
    # Newest first, as Cinder sorts by default.
    assert [v["id"] for v in summary] == [v.id for v in reversed(made)]
    for v in made:
        wait_available(bs, v)


def test_a_detail_listing_reads_the_attachments_once_per_page(cloud, conn):
    """Thousands of volumes list in one pass over the attachments, not one per volume."""
    from storage_core.devcloud.web import cinder_time

    store, project = cloud._store, cloud._identity.project_id
    with store.transaction():
        for i in range(1500):
            vid = str(uuid.uuid4())
            store.put("volume", {
                "id": vid, "project_id": project, "user_id": "u", "name": f"bulk-{i}",
                "description": None, "size": 1, "status": "in-use" if i % 3 == 0 else "available",
                "metadata": {}, "volume_type": "__DEFAULT__", "availability_zone": "nova",
                "bootable": False, "multiattach": False, "created_at": cinder_time(),
                "updated_at": None, "device": None})
            if i % 3 == 0:
                store.put("attachment", {
                    "id": str(uuid.uuid4()), "project_id": project, "volume_id": vid,
                    "status": "attached", "instance_uuid": None, "attach_mode": "rw",
                    "connector": {}, "connection_info": None, "attached_host": None,
                    "mountpoint": "na", "attach_time": cinder_time(), "detach_time": None,
                    "created_at": cinder_time()})
    reads = []
    real_list = store.list
    store.list = lambda kind: reads.append(kind) or real_list(kind)
    try:
        volumes = list(conn.block_storage.volumes(details=True))
    finally:
        store.list = real_list
    assert len(volumes) == 1500
    assert sum(1 for v in volumes if v.attachments) == 500
    pages = 2  # 1,000 a page (Cinder's osapi_max_limit)
    assert reads.count("attachment") == pages and reads.count("volume") == pages


def test_fault_500_then_success(cloud, conn):
    bs = conn.block_storage
    cloud.faults.add("volume.create", status=500)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        bs.create_volume(name="flaky", size=1)
    assert err.value.status_code == 500
    volume = wait_available(bs, bs.create_volume(name="flaky", size=1))
    assert [v.id for v in bs.volumes(name="flaky")] == [volume.id]

    cloud.faults.add("attachment.create", status=503, times=2, body={"custom": "body"})
    for _ in range(2):
        resp = raw(conn, "POST", "/attachments", microversion="3.27",
                   json={"attachment": {"volume_uuid": volume.id}})
        assert resp.status_code == 503 and resp.json() == {"custom": "body"}
    assert bs.get_volume(volume).status == "available"
    assert cloud.faults.list() == []


def test_fault_reset_connection_and_delay(cloud, conn):
    bs = conn.block_storage
    volume = wait_available(bs, bs.create_volume(name="net", size=1))
    cloud.faults.add("volume.get", reset_connection=True)
    with pytest.raises(keystoneauth1.exceptions.ConnectionError):
        bs.get_volume(volume.id)
    assert bs.get_volume(volume.id).id == volume.id

    cloud.faults.add("volume.list", status=None, delay=0.5)
    started = time.monotonic()
    assert [v.id for v in bs.volumes(name="net")] == [volume.id]
    assert time.monotonic() - started >= 0.5


def test_fault_on_auth(cloud):
    cloud.faults.add("auth.token", status=503)
    with pytest.raises(keystoneauth1.exceptions.ServiceUnavailable):
        list(connect(cloud).block_storage.volumes())
    assert list(connect(cloud).block_storage.volumes()) == []


def test_seed_latency(tmp_path):
    dc = DevCloud(tmp_path / "state", latency="seed").start()
    try:
        bs = connect(dc).block_storage
        started = time.monotonic()
        volume = bs.create_volume(name="slow", size=1)
        assert volume.status == "creating"
        wait_available(bs, volume)
        assert time.monotonic() - started >= 1.5

        started = time.monotonic()
        attachment = bs.create_attachment(volume.id, connector=CONNECTOR)
        assert time.monotonic() - started >= 0.9
        started = time.monotonic()
        bs.complete_attachment(attachment.id)
        assert time.monotonic() - started >= 0.7
        bs.delete_attachment(attachment.id)
    finally:
        dc.stop()
        leaked = release_loop_devices_under(tmp_path)
    assert not leaked


def test_concurrent_clients_get_distinct_loop_devices(cloud):
    import threading

    devices, errors = {}, []

    def work(i):
        try:
            bs = connect(cloud).block_storage
            volume = wait_available(bs, bs.create_volume(name=f"c{i}", size=1))
            attachment = bs.create_attachment(volume.id, connector=CONNECTOR)
            devices[i] = attachment.connection_info["device_path"]
            bs.complete_attachment(attachment.id)
            barrier.wait(timeout=30)  # all attached at once
            bs.delete_attachment(attachment.id)
            bs.delete_volume(volume)
            bs.wait_for_delete(volume, interval=0.05, wait=30)
        except Exception as exc:  # reported below, in the test's thread
            errors.append((i, repr(exc)))
            barrier.abort()

    count = 6
    barrier = threading.Barrier(count)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(set(devices.values())) == count
    assert loop_devices_under(cloud.state_dir) == {}
