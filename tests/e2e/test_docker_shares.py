"""The real Docker engine on Manila shares: two containers at once on one
GlusterFS share, and `docker volume rm` deleting the share."""

import json
import time
import uuid

IMAGE = "fuxi-busybox"
CLOUD_KINDS = ("devcloud", "realcloud")


def test_two_containers_share_files_and_rm_deletes_the_share(docker, fuxi_plugin, volume_name, glusterfs_server):
    name = volume_name("share")
    docker("volume", "create", "-d", "fuxi", "-o", "backend=manila", "-o", "proto=glusterfs", name)
    status = json.loads(docker("volume", "inspect", name).stdout)[0]["Status"]
    assert (status["backend"], status["proto"], status["mounts"]) == ("manila", "glusterfs", 0), status
    share_dir = glusterfs_server.root_mount / f"share-{status['share_id']}"
    assert share_dir.is_dir()

    writer = f"fuxi-e2e-writer-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", writer, "-v", f"{name}:/data", IMAGE,
           "sh", "-c", "echo from-writer > /data/a && sleep 120")
    try:
        deadline = time.monotonic() + 30
        while not (share_dir / "a").exists():
            assert time.monotonic() < deadline, "the first container's file never reached the share"
            time.sleep(0.1)
        # A second container, while the first still runs, reads and answers.
        reader = docker("run", "--rm", "-v", f"{name}:/data", IMAGE,
                        "sh", "-c", "cat /data/a && echo from-reader > /data/b && grep ' /data ' /proc/mounts")
        lines = reader.stdout.splitlines()
        assert lines[0] == "from-writer" and lines[1].split()[2] == "fuse.glusterfs", reader.stdout
        assert docker("exec", writer, "cat", "/data/b").stdout == "from-reader\n"
        assert json.loads(docker("volume", "inspect", name).stdout)[0]["Status"]["mounts"] == 1
    finally:
        docker("rm", "-f", writer, check=False)

    docker("volume", "rm", name)
    assert not share_dir.exists()
    assert docker("volume", "inspect", name, check=False).returncode != 0
