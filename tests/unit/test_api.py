"""The Docker protocol layer, driven with the exact bytes dockerd sends."""

import json

import pytest

from fuxi.app import create_app
from storage_core.fakes import fake_volume_service

DOCKER_HEADERS = {"Accept": "application/vnd.docker.plugins.v1.2+json", "Host": ""}


@pytest.fixture
def client(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    app = create_app(fakes.service)
    app.testing = True
    c = app.test_client()
    c.cloud = fakes.cinder
    return c


def call(client, method, body):
    # No Content-Type and a trailing newline, as dockerd sends them.
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body) + "\n"
    resp = client.post(f"/{method}", data=raw, headers=DOCKER_HEADERS)
    return resp.status_code, json.loads(resp.data)


def test_activate_and_capabilities(client):
    assert call(client, "Plugin.Activate", b"") == (200, {"Implements": ["VolumeDriver"]})
    assert call(client, "VolumeDriver.Capabilities", {}) == (200, {"Capabilities": {"Scope": "global"}})


def test_full_cycle(client):
    status, body = call(client, "VolumeDriver.Get", {"Name": "v1"})
    assert status == 404 and "does not exist" in body["Err"]
    assert call(client, "VolumeDriver.Create", {"Name": "v1", "Opts": {"size": "2"}}) == (200, {"Err": ""})
    status, body = call(client, "VolumeDriver.Get", {"Name": "v1"})
    assert status == 200 and body["Err"] == ""
    volume = body["Volume"]
    assert volume["Name"] == "v1" and volume["Mountpoint"] == ""
    assert volume["CreatedAt"].endswith("Z")
    assert {"volume_id", "size_gb", "fstype", "attached", "mounts"} <= set(volume["Status"])
    status, body = call(client, "VolumeDriver.Mount", {"Name": "v1", "ID": "a" * 64})
    assert status == 200 and body["Mountpoint"].endswith("/v1") and body["Err"] == ""
    assert call(client, "VolumeDriver.Path", {"Name": "v1"}) == (200, {"Mountpoint": body["Mountpoint"], "Err": ""})
    assert call(client, "VolumeDriver.List", {}) == (
        200, {"Volumes": [{"Name": "v1", "Mountpoint": body["Mountpoint"]}], "Err": ""},
    )
    assert call(client, "VolumeDriver.Unmount", {"Name": "v1", "ID": "a" * 64}) == (200, {"Err": ""})
    assert call(client, "VolumeDriver.Remove", {"Name": "v1"}) == (200, {"Err": ""})
    assert client.cloud.volumes == {}


def test_create_with_null_or_absent_opts(client):
    assert call(client, "VolumeDriver.Create", {"Name": "v1", "Opts": None})[0] == 200
    assert call(client, "VolumeDriver.Create", {"Name": "v2"})[0] == 200


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        ({"Opts": {}}, '"Name"'),
        ({"Name": 5}, '"Name" must be a string'),
        ({"Name": "v1", "Opts": {"sise": "1"}}, "'sise'"),
        ({"Name": "v1", "Opts": {"size": "abc"}}, "size="),
        ({"Name": "v1", "Opts": {"size": "-1"}}, "size="),
        ({"Name": "v1", "Opts": {"size": "0"}}, "size="),
        ({"Name": "v1", "Opts": {"size": "11"}}, "from 1 to 10"),
        ({"Name": "v1", "Opts": {"fstype": "vfat"}}, "ext4, xfs"),
        ({"Name": "v1", "Opts": ["size"]}, '"Opts"'),
        ({"Name": "a/b"}, "not allowed"),
        ({"Name": ".."}, "not allowed"),
        ({"Name": "a\x00b"}, "not allowed"),
        ({"Name": "x" * 300}, "300 characters"),
    ],
)
def test_bad_create_requests_get_clear_errors_and_create_nothing(client, body, needle):
    status, answer = call(client, "VolumeDriver.Create", body)
    assert 400 <= status < 500
    assert needle in answer["Err"] and "Traceback" not in answer["Err"]
    assert client.cloud.volumes == {}


def test_unknown_path_and_wrong_method_answer_err(client):
    resp = client.post("/VolumeDriver.Explode", data="{}")
    assert resp.status_code == 404 and "unknown call" in json.loads(resp.data)["Err"]
    resp = client.get("/VolumeDriver.Get")
    assert resp.status_code == 405 and "POST" in json.loads(resp.data)["Err"]


def test_unexpected_errors_have_no_traceback(client, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.cloud, "find", boom)
    status, body = call(client, "VolumeDriver.Get", {"Name": "v1"})
    assert status == 500 and "internal error" in body["Err"] and "secret" not in body["Err"]
