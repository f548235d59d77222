"""`fuxi extend` under a running container: the real Docker engine's container
keeps its volume mounted while fuxi grows it, and `df` inside the container
shows the new size with the data intact."""

import subprocess
import sys

from tests.e2e.conftest import IMAGE, PLUGIN_SOCKET


def df_kib(docker, container) -> int:
    out = docker("exec", container, "df", "-k", "/data").stdout.splitlines()
    return int(out[-1].split()[1])


def test_a_running_container_sees_its_volume_grow(docker, fuxi_plugin, volume_name):
    name = volume_name("grow")
    # xfs: an online ext4 resize needs CAP_SYS_RESOURCE, which this test machine's
    # sandbox withholds even from root (tests/functional/test_extend.py covers ext4).
    docker("volume", "create", "-d", "fuxi", "-o", "size=1", "-o", "fstype=xfs", name)
    container = docker("run", "-d", "-v", f"{name}:/data", IMAGE, "sh", "-c",
                       "head -c 1048576 /dev/urandom > /data/f && md5sum /data/f > /data/f.md5 && sleep 600"
                       ).stdout.strip()
    try:
        docker("exec", container, "sh", "-c", "while [ ! -s /data/f.md5 ]; do sleep 0.05; done")
        before = df_kib(docker, container)
        assert before < 1024 * 1024, before

        done = subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", PLUGIN_SOCKET, "extend", name, "2"],
                              capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert f"{name}: grown from 1 to 2 GiB; the mounted file system was grown online" in done.stdout

        after = df_kib(docker, container)
        assert after > before + 900 * 1024, (before, after)
        docker("exec", container, "md5sum", "-c", "/data/f.md5")
        assert docker("volume", "inspect", "--format", "{{.Status.size_gb}}", name).stdout.strip() == "2"
    finally:
        docker("rm", "-f", container, check=False)
