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


# Found by tests/functional/test_fuzz.py: each of these answered 500 "internal error"
# (or, for OPTIONS, an empty 200 that is not the protocol's JSON).
@pytest.mark.parametrize(
    "body, needle",
    [
        (b"[" * 100_000, "nests JSON too deeply"),
        (b'{"Name": ' * 50_000, "nests JSON too deeply"),
        (b'{"Name": ' + b"9" * 5000 + b"}", "not JSON"),
        (b'{"Name": "v1", "Opts": {"size": ' + b"1" * 4301 + b"}}", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_bodies_json_cannot_hold_are_refused_not_crashed(client, body, needle):
    for method in ("VolumeDriver.Create", "VolumeDriver.Get", "VolumeDriver.List"):
        status, answer = call(client, method, body)
        assert status == 400 and needle in answer["Err"], answer
        assert len(answer["Err"]) < 400  # the parser's message is quoted, not the body
    assert client.cloud.volumes == {}


def test_a_size_with_thousands_of_digits_is_out_of_range_not_an_error(client):
    status, answer = call(client, "VolumeDriver.Create", {"Name": "v1", "Opts": {"size": "9" * 5000}})
    assert status == 400 and "out of range" in answer["Err"] and len(answer["Err"]) < 300, answer
    assert client.cloud.volumes == {}


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "PUT", "DELETE"])
def test_every_method_but_post_gets_a_json_405(client, method):
    resp = client.open("/VolumeDriver.Create", method=method, data=b"{}", headers=DOCKER_HEADERS)
    assert resp.status_code == 405 and "POST" in json.loads(resp.data)["Err"]
    assert client.cloud.volumes == {}


class DeadlineRecorder:
    """A service that notes how long each call was given."""

    def __init__(self):
        self.given = {}

    def _note(self, call):
        from storage_core.waits import current_deadline

        limit = current_deadline()
        self.given[call] = (round(limit.time_left()), limit.what) if limit else None

    def create(self, name, opts):
        self._note("create")

    def mount(self, name, caller):
        self._note("mount")
        return "/m"

    def unmount(self, name, caller):
        self._note("unmount")

    def remove(self, name):
        self._note("remove")


def test_each_call_runs_inside_dockers_deadline(tmp_path):
    service = DeadlineRecorder()
    app = create_app(service)
    c = app.test_client()
    for method in ("Create", "Mount", "Unmount", "Remove"):
        assert call(c, f"VolumeDriver.{method}", {"Name": "v", "ID": "c"})[0] == 200
    assert service.given == {
        "create": (115, "Docker's Create of volume 'v'"),
        "mount": (115, "Docker's Mount of volume 'v'"),
        "unmount": (55, "Docker's Unmount of volume 'v'"),
        "remove": (55, "Docker's Remove of volume 'v'"),
    }
