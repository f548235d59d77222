"""The warm pool through the real Docker engine.

The session's fuxi plugin (``fuxi_plugin``, embedded devcloud) is restarted
for this module with two pools and restarted without them afterwards; it stays
dockerd's ``fuxi`` driver on /run/docker/plugins/fuxi.sock.  (A second plugin
under another name would not do: dockerd keeps every legacy volume plugin it
has used until it restarts, and retries a vanished one for ~15 s at every
`docker volume ls`/`rm`.)

* tier 4 (pre-created, formatted, attached, mounted on this host), 1 GiB:
  `docker volume create` gets the very volume the pool had ready (same Cinder
  id, renamed, pool tags gone), containers write and read it, `docker volume
  ls` never shows a pool volume, `docker volume rm` deletes it, and the pool
  has a new ready volume (another id) afterwards.
* tier 1 (pre-created only, shared by every host), 2 GiB: the same claim, then
  the first `docker run` attaches, formats and mounts it.
* a size no pool holds takes the cold path and leaves both pools alone.

The ids are read from the cloud itself (devcloud's Cinder API through
openstacksdk), never from fuxi's own answers.
"""

import json
import subprocess
import sys
import time

import pytest
import yaml

from storage_core.pool.spec import NAME_PREFIX, POOL_KEYS
from tests.clouds import connect
from tests.e2e.conftest import IMAGE, PLUGIN_SOCKET, FuxiPlugin
from tests.functional.harness import mounted_under

DRIVER = "fuxi"
# The pool needs devcloud (the SDK view comes from the embedded devcloud's ready file).
CLOUD_KINDS = ("devcloud",)
POOL_KEY = "fuxi_pool"
TIER4, TIER1 = "warm4", "shared1"
POOLS = {
    # name: (tier, size_gb); one volume each, so "the one that was ready" is unambiguous.
    TIER4: (4, 1),
    TIER1: (1, 2),
}
REFILL_TIMEOUT = 90
DELETE_TIMEOUT = 60


def _pool_sections() -> str:
    return "".join(
        f"[pool:{name}]\nsize_gb = {size}\nfstype = ext4\ntier = {tier}\nmin_ready = 1\nmax = 1\n"
        f"batch = 1\nrefill_interval = 0.5\n"
        for name, (tier, size) in POOLS.items())


class PoolHost:
    """The pool plugin, the fuxi CLI against it and an SDK view of its cloud."""

    def __init__(self, plugin: FuxiPlugin, sdk):
        self.plugin = plugin
        self.sdk = sdk

    def cli(self, *args):
        result = subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", PLUGIN_SOCKET, *args],
                                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"fuxi {' '.join(args)} exited {result.returncode}: {result.stderr}"
        return result.stdout

    def status(self) -> dict:
        return {row["pool"]: row for row in json.loads(self.cli("--json", "pool", "status"))}

    def volumes(self):
        return list(self.sdk.block_storage.volumes(details=True))

    def pool_volumes(self, pool):
        key = self.status()[pool]["key"]
        return [v for v in self.volumes() if (v.metadata or {}).get(POOL_KEY) == key]

    def volumes_named(self, name):
        return [v for v in self.volumes() if v.name == name]

    def wait_ready(self, pool, not_id=None):
        """The pool's one ready volume (as the cloud has it) once the refill made it."""
        deadline = time.monotonic() + REFILL_TIMEOUT
        while True:
            row = self.status()[pool]
            vols = self.pool_volumes(pool)
            if (row["ready"] == 1 and row["filling"] == 0 and len(vols) == 1
                    and vols[0].metadata.get("fuxi_pool_state") == "ready" and vols[0].id != not_id):
                return vols[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"pool {pool} has no ready volume after {REFILL_TIMEOUT} s: "
                                     f"status {row}, in the cloud {[(v.id, v.metadata) for v in vols]}")
            time.sleep(0.2)

    def wait_deleted(self, volume_id):
        deadline = time.monotonic() + DELETE_TIMEOUT
        while any(v.id == volume_id for v in self.volumes()):
            if time.monotonic() > deadline:
                raise AssertionError(f"volume {volume_id} still in the cloud {DELETE_TIMEOUT} s after docker volume rm")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def pool_host(fuxi_plugin, docker):
    config = fuxi_plugin.workdir / "fuxi.conf"
    original = config.read_text()
    _restart(fuxi_plugin, config, original + _pool_sections())
    with open(fuxi_plugin.state_dir / "devcloud" / "ready.json", encoding="utf-8") as f:
        entry = json.load(f)["cloud"]
    clouds_yaml = fuxi_plugin.workdir / "pool-clouds.yaml"
    clouds_yaml.write_text(yaml.safe_dump({"clouds": {"devcloud": entry}}))
    host = PoolHost(fuxi_plugin, connect(clouds_yaml, "devcloud"))
    yield host

    # Each test removed its own Docker volumes (volume_name); the pools' go now.
    problems = []
    try:
        host.cli("pool", "drain")
        deadline = time.monotonic() + DELETE_TIMEOUT
        while (left := [v for v in host.volumes() if POOL_KEY in (v.metadata or {})]) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        if left:
            problems.append(f"pool volumes left after drain: {[(v.name, v.id, v.status) for v in left]}")
    except Exception as exc:  # noqa: BLE001 - reported below, after the plugin is back as it was
        problems.append(f"draining the pools: {exc}")
    _restart(fuxi_plugin, config, original)
    staging = mounted_under(fuxi_plugin.state_dir / "pool")
    if staging:
        problems.append(f"pool staging mounts left: {staging}")
    if problems:
        pytest.fail("pool e2e teardown:\n" + "\n".join(problems), pytrace=False)


def _restart(plugin, config, text):
    problem = plugin.stop()
    assert problem is None, problem
    config.write_text(text)
    plugin.start()


def _listed(docker):
    """(driver, name) of every volume `docker volume ls` shows, whatever its driver."""
    out = docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout
    return [tuple(line.split(" ", 1)) for line in out.splitlines() if line.strip()]


def _assert_no_pool_volume_listed(docker, host, *pool_volumes):
    listed = _listed(docker)
    names = {name for _driver, name in listed}
    pooled = {v.name for v in pool_volumes} | {v.id for v in pool_volumes}
    assert not names & pooled, f"docker volume ls shows pool volumes: {sorted(names & pooled)}"
    assert not [n for n in names if n.startswith(NAME_PREFIX)], listed
    return listed


def _claim_run_remove(docker, host, pool, name, size_gb):
    """Create NAME from the pool through dockerd, use it in two containers, remove it; the claimed id."""
    ready = host.wait_ready(pool)
    other_pools = {p: host.wait_ready(p) for p in POOLS if p != pool}
    assert [d for d, _n in _listed(docker) if d == DRIVER] == []
    _assert_no_pool_volume_listed(docker, host, ready, *other_pools.values())

    created = docker("volume", "create", "-d", DRIVER, "-o", f"size={size_gb}", name)
    assert created.stdout.strip() == name

    # The very volume the pool had ready, now the user's: renamed, pool tags gone.
    [vol] = host.volumes_named(name)
    assert vol.id == ready.id, f"{name} is {vol.id}, not the pool's ready volume {ready.id}"
    assert vol.name == name and vol.size == size_gb
    assert not set(POOL_KEYS) & set(vol.metadata), vol.metadata
    assert vol.metadata.get("volume_from") == "fuxi", vol.metadata
    assert ready.id not in [v.id for v in host.pool_volumes(pool)]
    # The other pool was not touched.
    for other, other_vol in other_pools.items():
        assert [v.id for v in host.pool_volumes(other)] == [other_vol.id], other
    [info] = json.loads(docker("volume", "inspect", name).stdout)
    assert (info["Driver"], info["Name"]) == (DRIVER, name)
    assert info["Status"]["volume_id"] == ready.id, info

    run1 = docker("run", "--rm", "-v", f"{name}:/data", IMAGE,
                  "sh", "-c", "echo data > /data/f && grep ' /data ' /proc/mounts")
    fields = run1.stdout.split()
    assert len(fields) >= 3 and fields[2] == "ext4", f"/data in the container: {run1.stdout!r}"
    run2 = docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "cat", "/data/f")
    assert run2.stdout == "data\n"

    # The pool made another ready volume; Docker sees only the user's volume.
    refilled = host.wait_ready(pool, not_id=ready.id)
    assert refilled.id != ready.id and refilled.name.startswith(NAME_PREFIX)
    listed = _assert_no_pool_volume_listed(docker, host, refilled, *other_pools.values())
    assert [n for d, n in listed if d == DRIVER] == [name], listed
    [info] = json.loads(docker("volume", "inspect", name).stdout)
    assert info["Status"]["volume_id"] == ready.id and info["Status"]["mounts"] == 0, info
    assert info["Status"]["fstype"] == "ext4", info

    removed = docker("volume", "rm", name)
    assert removed.stdout.strip() == name
    host.wait_deleted(ready.id)
    assert host.volumes_named(name) == []
    gone = docker("volume", "inspect", name, check=False)
    assert gone.returncode != 0 and "no such volume" in gone.stderr.lower(), (gone.stdout, gone.stderr)
    assert [n for d, n in _listed(docker) if d == DRIVER] == []

    # Afterwards the pool is full again, with the refilled volume (not a resurrected one).
    after = host.wait_ready(pool)
    assert after.id == refilled.id
    assert host.status()[pool]["ready"] == 1
    return ready.id


def test_tier4_pool_volume_serves_docker_volume_create_and_run(docker, fuxi_plugin, pool_host, volume_name):
    _claim_run_remove(docker, pool_host, TIER4, volume_name("pool4"), POOLS[TIER4][1])


def test_shared_tier1_pool_volume_is_attached_and_formatted_at_the_first_run(docker, fuxi_plugin, pool_host,
                                                                             volume_name):
    _claim_run_remove(docker, pool_host, TIER1, volume_name("pool1"), POOLS[TIER1][1])


def test_a_size_no_pool_serves_takes_the_cold_path(docker, fuxi_plugin, pool_host, volume_name):
    """A Create the pools do not match leaves both pools' ready volumes where they are."""
    ready = {p: pool_host.wait_ready(p) for p in POOLS}
    name = volume_name("cold")
    docker("volume", "create", "-d", DRIVER, "-o", "size=3", name)
    [vol] = pool_host.volumes_named(name)
    assert vol.id not in {v.id for v in ready.values()} and vol.size == 3
    for pool, pooled in ready.items():
        assert [v.id for v in pool_host.pool_volumes(pool)] == [pooled.id], pool
    docker("volume", "rm", name)
    pool_host.wait_deleted(vol.id)
