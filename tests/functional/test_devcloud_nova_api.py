"""devcloud's Nova API face: versions, microversions, error bodies, faults, CLI and knobs."""

import json
import os
import signal
import uuid
import warnings

import openstack.exceptions
import pytest
import requests
from openstack.compute.v2.server import Server

from storage_core.devcloud.testing import (
    connect,
    release_loop_devices_under,
    start_subprocess,
)
from tests.functional.test_devcloud_nova import (
    available,
    by_id,
    in_use,
    new_volume,
    raw,
    wait_until,
)
from tests.functional.devcloud_fixtures import cloud, conn  # noqa: F401 (fixtures)




def test_version_documents_and_catalog(cloud, conn):
    root = requests.get(cloud.url + "/compute/", timeout=10)
    assert root.status_code == 200
    assert [(v["id"], v["status"]) for v in root.json()["versions"]] == [
        ("v2.0", "SUPPORTED"), ("v2.1", "CURRENT")]
    for path in ("/compute/v2.1", "/compute/v2.1/"):
        doc = requests.get(cloud.url + path, timeout=10).json()["version"]  # no token
        assert (doc["id"], doc["min_version"], doc["version"]) == ("v2.1", "2.1", "2.96")
        assert {"rel": "self", "href": cloud.url + "/compute/v2.1/"} in doc["links"]

    token = conn.session.get_token()
    body = requests.get(cloud.auth_url + "/auth/catalog", headers={"X-Auth-Token": token},
                        timeout=10).json()
    [compute] = [s for s in body["catalog"] if s["type"] == "compute"]
    assert {e["interface"] for e in compute["endpoints"]} == {"public", "internal", "admin"}
    assert {e["url"] for e in compute["endpoints"]} == {cloud.url + "/compute/v2.1"}
    assert {e["region"] for e in compute["endpoints"]} == {"RegionOne"}
    assert conn.compute.get_endpoint_data().max_microversion == (2, 96)


def test_microversion_negotiation_and_echo(cloud, conn):
    resp = conn.compute.request("/servers", "GET", microversion="2.60")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.60"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.60"
    resp = conn.compute.request("/servers", "GET", microversion=None,
                                headers={"X-OpenStack-Nova-API-Version": "2.53"})
    assert resp.headers["OpenStack-API-Version"] == "compute 2.53"
    resp = conn.compute.request("/servers", "GET", microversion=None)
    assert resp.headers["OpenStack-API-Version"] == "compute 2.1"
    resp = conn.compute.request("/servers", "GET", microversion="latest")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.96"
    assert raw(conn, "GET", "/servers", microversion="2.97") == (406, {"computeFault": {
        "code": 406, "message": "Version 2.97 is not supported by the API. Minimum is 2.1 "
                                "and maximum is 2.96."}})
    status, body = raw(conn, "GET", "/servers", headers={"OpenStack-API-Version": "compute 2"})
    assert status == 400 and "invalid format" in body["badRequest"]["message"]
    unauthenticated = requests.get(cloud.url + "/compute/v2.1/servers", timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == 401


def test_nova_shaped_errors(cloud, conn):
    server_id = cloud.local_server()["id"]
    missing = str(uuid.uuid4())
    assert raw(conn, "GET", f"/servers/{missing}") == (404, {"itemNotFound": {
        "code": 404, "message": f"Instance {missing} could not be found."}})
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server(missing)
    body = {"volumeAttachment": {"volumeId": missing}}
    assert raw(conn, "POST", f"/servers/{missing}/os-volume_attachments", json=body)[0] == 404
    assert raw(conn, "POST", f"/servers/{server_id}/os-volume_attachments", json=body) == (
        404, {"itemNotFound": {"code": 404, "message": f"Volume {missing} could not be found."}})

    volume = new_volume(conn, "errors")
    path = f"/servers/{server_id}/os-volume_attachments"
    refused = [
        ({}, "2.89", "'volumeAttachment' is a required property"),
        ({"volumeAttachment": {}}, "2.89", "'volumeId' is a required property"),
        ({"volumeAttachment": {"volumeId": "nope"}}, "2.89", "'nope' is not a 'uuid'"),
        ({"volumeAttachment": {"volumeId": volume.id, "device": "vdb"}}, "2.89",
         "does not match"),
        ({"volumeAttachment": {"volumeId": volume.id, "tag": "a"}}, "2.48",
         "Additional properties are not allowed ('tag' was unexpected)"),
        ({"volumeAttachment": {"volumeId": volume.id, "tag": "a/b"}}, "2.49",
         "is not a valid tag"),
        ({"volumeAttachment": {"volumeId": volume.id, "delete_on_termination": True}},
         "2.78", "('delete_on_termination' was unexpected)"),
        ({"volumeAttachment": {"volumeId": volume.id}, "extra": 1}, "2.89",
         "Additional properties are not allowed"),
    ]
    for request_body, version, message in refused:
        status, answer = raw(conn, "POST", path, microversion=version, json=request_body)
        assert status == 400 and message in answer["badRequest"]["message"], (request_body,
                                                                              answer)
    status, answer = raw(conn, "POST", path, data=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert (status, answer) == (400, {"badRequest": {"code": 400,
                                                     "message": "Malformed request body"}})
    assert conn.block_storage.get_volume(volume.id).status == "available"

    not_attached = f"Instance {server_id} is not attached to volume {volume.id}"
    assert raw(conn, "GET", f"{path}/{volume.id}") == (
        404, {"itemNotFound": {"code": 404, "message": not_attached}})
    assert raw(conn, "DELETE", f"{path}/{volume.id}") == (
        404, {"itemNotFound": {"code": 404, "message": not_attached}})
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.delete_volume_attachment(Server(id=server_id), volume.id,
                                              ignore_missing=False)


def test_attachment_views_follow_the_microversion(cloud, conn):
    server_id = cloud.local_server()["id"]
    volume = new_volume(conn, "views")
    path = f"/servers/{server_id}/os-volume_attachments"
    status, answer = raw(conn, "POST", path, microversion="2.89", json={"volumeAttachment": {
        "volumeId": volume.id, "device": "/dev/vdq", "tag": "t", "delete_on_termination": True}})
    assert status == 200
    # The device asked for is ignored (as libvirt does); the create has no attachment_id.
    assert answer["volumeAttachment"] == {
        "id": volume.id, "serverId": server_id, "volumeId": volume.id, "device": "/dev/vdb",
        "tag": "t", "delete_on_termination": True}
    in_use(conn, volume.id)
    attachment_id = conn.block_storage.get_volume(volume.id).attachments[0]["attachment_id"]

    def listed(version):
        status, body = raw(conn, "GET", path, microversion=version)
        assert status == 200
        [item] = body["volumeAttachments"]
        single = raw(conn, "GET", f"{path}/{volume.id}", microversion=version)[1]
        assert single["volumeAttachment"] == item
        return item

    base = {"volumeId": volume.id, "serverId": server_id, "device": "/dev/vdb"}
    assert listed("2.1") == dict(base, id=volume.id)
    assert listed("2.70") == dict(base, id=volume.id, tag="t")
    assert listed("2.79") == dict(base, id=volume.id, tag="t", delete_on_termination=True)
    at_289 = listed("2.89")
    assert at_289 == dict(base, tag="t", delete_on_termination=True,
                          attachment_id=attachment_id, bdm_uuid=at_289["bdm_uuid"])
    status, body = raw(conn, "GET", f"{path}?limit=1&sort=x", microversion="2.75")
    assert status == 400 and "query parameters" in body["badRequest"]["message"]
    assert raw(conn, "GET", f"{path}?limit=0", microversion="2.75") == (
        200, {"volumeAttachments": []})

    server = raw(conn, "GET", f"/servers/{server_id}", microversion="2.96")[1]["server"]
    assert server["os-extended-volumes:volumes_attached"] == [
        {"id": volume.id, "delete_on_termination": True}]
    assert server["pinned_availability_zone"] is None and server["status"] == "ACTIVE"
    old = raw(conn, "GET", f"/servers/{server_id}", microversion="2.1")[1]["server"]
    assert "locked" not in old and "id" in old["flavor"]

    conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    available(conn, volume.id)


def test_faults_on_nova_operations(cloud, conn):
    server_id = cloud.local_server()["id"]
    volume = new_volume(conn, "faulty")
    cloud.faults.add("volume_attachment.create", status=500)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        conn.compute.create_volume_attachment(server_id, volume.id)
    assert err.value.status_code == 500
    assert conn.block_storage.get_volume(volume.id).status == "available"
    cloud.faults.add("server.get", status=503)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        conn.compute.get_server(server_id)
    assert err.value.status_code == 503
    cloud.faults.add("volume_attachment.list", status=500)
    with pytest.raises(openstack.exceptions.HttpException):
        list(conn.compute.volume_attachments(server_id))
    conn.compute.create_volume_attachment(server_id, volume.id)
    in_use(conn, volume.id)
    cloud.faults.add("volume_attachment.delete", status=409)
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    assert conn.block_storage.get_volume(volume.id).status == "in-use"
    conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    available(conn, volume.id)


def test_openstacksdk_quirks(cloud, conn):
    """What the compute proxy does that a caller may not expect."""
    server_id = cloud.local_server()["id"]
    volume = new_volume(conn, "quirks")
    # volume_id= is the legacy spelling: it works but warns.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conn.compute.create_volume_attachment(server_id, volume_id=volume.id)
    assert any("legacy" in str(w.message) for w in caught)
    in_use(conn, volume.id)
    # Given two bare ids and an unknown server, delete_volume_attachment
    # "un-swaps" them (server not found, so they must be the wrong way round),
    # DELETEs /servers/<volume>/os-volume_attachments/<server>, gets a 404 and,
    # with ignore_missing (the default), reports nothing at all.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn.compute.delete_volume_attachment(str(uuid.uuid4()), volume.id)
    assert conn.block_storage.get_volume(volume.id).status == "in-use"
    conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    available(conn, volume.id)


def _http(method, url, body=None):
    resp = requests.request(method, url, json=body, timeout=10)
    return resp.status_code, (resp.json() if resp.content else None)


def test_cli_flags_ready_file_and_http_knobs(tmp_path):
    ready = tmp_path / "ready.json"
    disk_root, drive = tmp_path / "guest-disk", tmp_path / "drive"
    process, info = start_subprocess(
        tmp_path / "state", ready, "--server-name", "Fuxi Host 1", "--disk-root", disk_root,
        "--config-drive-dir", drive, "--link-delay", "0.2", "--no-by-id-links",
        "--lie-about-device")
    try:
        assert {"url", "pid", "cloud", "server_id", "server_name", "disk_root",
                "config_drive_dir", "metadata_url"} <= set(info)
        assert info["server_name"] == "Fuxi Host 1"
        assert (info["disk_root"], info["config_drive_dir"]) == (str(disk_root), str(drive))
        assert info["metadata_url"] == info["url"]
        md = requests.get(info["metadata_url"] + "/openstack/latest/meta_data.json",
                          timeout=10).json()
        assert (md["uuid"], md["name"], md["hostname"]) == (
            info["server_id"], "Fuxi Host 1", "fuxi-host-1")
        with open(drive / "openstack" / "latest" / "meta_data.json", encoding="utf-8") as f:
            assert json.load(f) == md

        url = info["url"] + "/devcloud/hypervisor"
        status, body = _http("GET", url)
        assert status == 200 and body["hypervisor"] == {
            "server_name": "Fuxi Host 1", "disk_root": str(disk_root),
            "config_drive_dir": str(drive), "link_delay": 0.2, "create_by_id_links": False,
            "lie_about_device": True}

        conn = connect(info["cloud"])
        volume = new_volume(conn, "cli")
        answer = conn.compute.create_volume_attachment(info["server_id"], volume.id)
        assert answer.device == "/dev/vdb"
        in_use(conn, volume.id)

        class Where:  # by_id() wants something with a disk_root
            pass
        where = Where()
        where.disk_root = str(disk_root)
        wait_until(lambda: os.listdir(disk_root / "by-path"), what="by-path links")
        assert not os.path.lexists(by_id(where, volume.id))
        status, body = _http("PUT", url, {"create_by_id_links": True, "link_delay": 0})
        assert status == 200 and body["hypervisor"]["create_by_id_links"] is True
        assert body["hypervisor"]["lie_about_device"] is True  # untouched
        assert os.path.islink(by_id(where, volume.id))
        assert _http("PUT", url, {"colour": "red"})[0] == 400
        assert _http("PUT", url, {"link_delay": -1})[0] == 400

        status, body = _http("POST", info["url"] + "/devcloud/servers", {"name": "second"})
        assert status == 201 and body["server"]["name"] == "second"
        status, body = _http("GET", info["url"] + "/devcloud/servers")
        assert {(s["name"], s["local"]) for s in body["servers"]} == {
            ("Fuxi Host 1", True), ("second", False)}
        assert _http("POST", info["url"] + "/devcloud/servers", {})[0] == 400

        conn.compute.delete_volume_attachment(Server(id=info["server_id"]), volume.id)
        available(conn, volume.id)
        assert not os.path.lexists(by_id(where, volume.id))
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        release_loop_devices_under(tmp_path)
    assert code == 0
