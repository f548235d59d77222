"""The real Docker engine drives fuxi: volume create, run, inspect, ls, rm."""

import json

IMAGE = "fuxi-busybox"


def _listed(docker, name):
    out = docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout
    return [line.split(" ", 1)[0] for line in out.splitlines() if line.split(" ", 1)[-1] == name]


def test_volume_lifecycle_through_docker(docker, fuxi_plugin, volume_name):
    name = volume_name("life")

    created = docker("volume", "create", "-d", "fuxi", "-o", "size=1", name)
    assert created.stdout.strip() == name

    # First container writes; the volume is a real ext4 file system at /data.
    run1 = docker(
        "run", "--rm", "-v", f"{name}:/data", IMAGE,
        "sh", "-c", "echo hi > /data/f && grep ' /data ' /proc/mounts",
    )
    mount_fields = run1.stdout.split()
    assert len(mount_fields) >= 3 and mount_fields[2] == "ext4", f"/data in the container: {run1.stdout!r}"

    # A second container sees the data.
    run2 = docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "cat", "/data/f")
    assert run2.stdout == "hi\n"

    inspected = json.loads(docker("volume", "inspect", name).stdout)
    assert len(inspected) == 1
    info = inspected[0]
    assert info["Name"] == name
    assert info["Driver"] == "fuxi"
    assert info["Scope"] == "global"
    status = info.get("Status") or {}
    assert isinstance(status.get("volume_id"), str) and status["volume_id"], status
    assert status.get("size_gb") == 1, status
    assert status.get("fstype") == "ext4", status
    assert isinstance(status.get("attached"), bool), status
    assert status.get("mounts") == 0, status  # both containers are gone

    assert _listed(docker, name) == ["fuxi"]

    removed = docker("volume", "rm", name)
    assert removed.stdout.strip() == name
    gone = docker("volume", "inspect", name, check=False)
    assert gone.returncode != 0, gone.stdout
    assert "no such volume" in gone.stderr.lower(), gone.stderr
    assert _listed(docker, name) == []


def test_unknown_option_is_refused_with_a_useful_message(docker, fuxi_plugin, volume_name):
    name = volume_name("bad")

    result = docker("volume", "create", "-d", "fuxi", "-o", "sise=1", name, check=False)

    assert result.returncode != 0, result.stdout
    message = result.stderr
    assert "sise" in message, message
    assert "size" in message.replace("sise", ""), f"allowed options not named: {message}"
    assert "Traceback" not in message, message
    assert _listed(docker, name) == []
    assert docker("volume", "inspect", name, check=False).returncode != 0
