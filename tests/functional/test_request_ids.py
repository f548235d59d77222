"""Issue 8: one log line per plugin call, and request ids that tie a Docker call
to its cloud requests, on a real fuxi-server and devcloud.

Each call's text line names its call, volume, caller id, outcome and duration,
and carries the call's request id; devcloud records the X-OpenStack-Request-ID
each cloud request came with (GET /devcloud/requests), so the test sees that a
call's id reached the cloud on that call's requests and on no other call's.
"""

import json
import re

import requests

from tests.functional.harness import ok

# devcloud alone records which request ids it received; Nova's attach path sends its own requests.
CLOUD_KINDS = ("devcloud", "devcloud-nova")

# A text line of a plugin call (fuxi.log_format.TEXT_FORMAT, fuxi.call_log).
CALL_LINE = re.compile(
    r"^\S+ \S+ (?P<pid>\d+) \[(?P<request_id>req-[0-9a-f-]{36})\] (?P<level>[A-Z]+) fuxi\.calls: "
    r"call=(?P<call>\S+) volume=(?P<volume>\S+) caller=(?P<caller>\S+) outcome=(?P<outcome>\S+) "
    r"duration=(?P<seconds>[0-9]+\.[0-9]{3})s(?: error=(?P<error>\".*\"))?$"
)


def call_lines(plugin) -> list[dict]:
    return [m.groupdict() for m in map(CALL_LINE.match, plugin.log(tail=None).splitlines()) if m]


def cloud_requests(cloud, request_id=None) -> list[dict]:
    params = {"global_request_id": request_id} if request_id else {}
    resp = requests.get(f"{cloud.devcloud['url']}/devcloud/requests", params=params, timeout=10)
    resp.raise_for_status()
    return resp.json()["recent"]


def forget_cloud_requests(cloud) -> None:
    requests.delete(f"{cloud.devcloud['url']}/devcloud/requests", timeout=10).raise_for_status()


def test_one_line_per_call_and_its_request_id_reaches_the_cloud(cloud, cloud_kind, plugin_factory):
    plugin = plugin_factory(options={"refresh_interval": 3600}).start()
    forget_cloud_requests(cloud)  # the start's own requests (reconcile, catalog) carry no call's id
    calls_before = len(call_lines(plugin))

    ok(plugin.call("VolumeDriver.Create", {"Name": "logged", "Opts": {"size": "1"}}))
    ok(plugin.call("VolumeDriver.Mount", {"Name": "logged", "ID": "caller-1"}))
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "logged", "ID": "caller-1"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "logged"}))
    status, body = plugin.call("VolumeDriver.Get", {"Name": "gone"})
    assert status == 404 and body["Err"], (status, body)

    lines = call_lines(plugin)[calls_before:]
    assert [(line["call"], line["volume"], line["caller"], line["outcome"]) for line in lines] == [
        ("Create", "logged", "-", "ok"),
        ("Mount", "logged", "caller-1", "ok"),
        ("Unmount", "logged", "caller-1", "ok"),
        ("Remove", "logged", "-", "ok"),
        ("Get", "gone", "-", "error(404)"),
    ], plugin.log()
    assert [line["level"] for line in lines] == ["INFO"] * 4 + ["WARNING"]
    assert json.loads(lines[-1]["error"]) == body["Err"]  # the Err dockerd got, in the line
    assert float(lines[0]["seconds"]) > 0  # a Create waits for the cloud: milliseconds at least
    create, mount, unmount, remove, get = (line["request_id"] for line in lines)
    assert len({create, mount, unmount, remove, get}) == 5, "each call has an id of its own"

    # The ids devcloud received: each call's cloud requests carry its id, and only its.
    def paths(request_id):
        return [f"{r['method']} {r['path']}" for r in cloud_requests(cloud, request_id)]

    assert any(re.fullmatch(r"POST /volume/v3/\w+/volumes", p) for p in paths(create)), paths(create)
    assert not any("attachments" in p for p in paths(create)), paths(create)
    attach = r"POST /compute/v2\.1/servers/[\w-]+/os-volume_attachments" if cloud_kind == "devcloud-nova" \
        else r"POST /volume/v3/\w+/attachments"
    assert any(re.fullmatch(attach, p) for p in paths(mount)), paths(mount)
    assert not any(re.fullmatch(r"POST /volume/v3/\w+/volumes", p) for p in paths(mount)), paths(mount)
    assert any(p.startswith("DELETE ") and "attachments/" in p for p in paths(unmount)), paths(unmount)
    assert any(re.fullmatch(r"DELETE /volume/v3/\w+/volumes/[\w-]+", p) for p in paths(remove)), paths(remove)
    # Get of an unknown name asks every backend at once (lookup threads): all under Get's id.
    assert any(p.startswith("GET /volume/") for p in paths(get)), paths(get)
    seen = {r["global_request_id"] for r in cloud_requests(cloud)}
    assert seen - {None} == {create, mount, unmount, remove, get}, "an id reached the cloud outside its call"

    # Every line the Create logged carries its id: its timed steps among them.
    create_lines = [line for line in plugin.log(tail=None).splitlines() if f" [{create}] " in line]
    assert any(" INFO storage_core.timing: step create volume=logged took " in line for line in create_lines), \
        plugin.log()
