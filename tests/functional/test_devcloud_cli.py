"""fuxi-devcloud as a separate process: ready file, clouds.yaml, HTTP knobs, SIGTERM."""

import json
import signal
import urllib.error
import urllib.request

import openstack
import pytest
import yaml

from storage_core.devcloud import cli
from storage_core.devcloud.testing import release_loop_devices_under, start_subprocess


def _http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def test_cli_subprocess_end_to_end(tmp_path, monkeypatch):
    ready = tmp_path / "ready.json"
    clouds_yaml = tmp_path / "clouds.yaml"
    process, info = start_subprocess(tmp_path / "state", ready,
                                     "--clouds-yaml", clouds_yaml, "--cloud-name", "mycloud")
    try:
        assert {"url", "pid", "cloud"} <= set(info)
        assert info["pid"] == process.pid
        assert info["url"].startswith("http://127.0.0.1:")
        cloud = info["cloud"]
        assert cloud["auth"]["auth_url"] == info["url"] + "/identity/v3"
        assert cloud["region_name"] == "RegionOne"
        assert cloud["identity_api_version"] == 3
        assert cloud["block_storage_api_version"] == 3

        written = yaml.safe_load(clouds_yaml.read_text())
        assert written == {"clouds": {"mycloud": cloud}}

        assert _http("GET", info["url"] + "/devcloud/health") == (200, {"status": "ok"})

        # clouds.yaml is usable as is by openstack.connect().
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_yaml))
        conn = openstack.connect(cloud="mycloud")
        bs = conn.block_storage

        status, body = _http("POST", info["url"] + "/devcloud/faults",
                             [{"operation": "volume.create", "status": 500}])
        assert status == 201 and body["faults"][0]["operation"] == "volume.create"
        with pytest.raises(openstack.exceptions.HttpException):
            bs.create_volume(name="cli", size=1)
        volume = bs.create_volume(name="cli", size=1)
        bs.wait_for_status(volume, "available", interval=0.05, wait=10)

        status, _ = _http("POST", info["url"] + "/devcloud/faults",
                          {"operation": "volume.get", "status": 503, "times": 5})
        assert status == 201
        assert _http("DELETE", info["url"] + "/devcloud/faults") == (204, None)
        assert bs.get_volume(volume.id).status == "available"
        assert _http("POST", info["url"] + "/devcloud/faults",
                     {"operation": "no.such"})[0] == 400

        assert _http("PUT", info["url"] + "/devcloud/latency",
                     {"profile": "seed"})[1]["latency"]["create"] == 1.5
        assert _http("PUT", info["url"] + "/devcloud/latency",
                     {"profile": "none"})[1]["latency"]["create"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        release_loop_devices_under(tmp_path)
    assert code == 0
    assert not ready.exists()


def test_cli_rejects_unknown_latency_profile(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--state-dir", str(tmp_path), "--latency-profile", "glacial"])
    assert exit_info.value.code == 2


def test_write_atomically(tmp_path):
    target = tmp_path / "sub" / "file.json"
    cli.write_atomically(target, "one")
    cli.write_atomically(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]
    assert target.stat().st_mode & 0o777 == 0o600
