"""Issue 8, observability, on a real fuxi-server and devcloud:

* Prometheus metrics on metrics_listen: after Create, Mount, Unmount, Remove
  and failing calls the scrape shows the calls' counts and histograms, the
  volume steps (a failed one too), the live mounts and a warm pool's levels;
  without metrics_listen no port is opened at all.
* log_format = json: every line is a JSON object; a call's line has its
  fields, and its steps' lines its request id.

(test_request_ids.py: the text line of each call, and its id in the cloud.)
"""

import json
import os
import re
import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from storage_core.devcloud.testing import Control
from tests.functional.harness import ok, wait_until

# Nothing here depends on the attach path; devcloud's fault injection fails a create.
CLOUD_KINDS = ("devcloud",)

# fuxi's text lines (fuxi.log_format.TEXT_FORMAT).
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ (\[req-[0-9a-f-]{36}\] )?[A-Z]+ [\w.]+: ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port) -> dict:
    """{(sample name, ((label, value), ...)): value} of one scrape, read with prometheus_client's parser."""
    resp = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    resp.raise_for_status()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def sample(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no {name}{labels} in the scrape: {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def listening_tcp_ports(pids) -> set[int]:
    """TCP ports the processes `pids` listen on (their sockets in LISTEN state)."""
    inodes = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def process_group(plugin) -> list[int]:
    """The server's processes: gunicorn's master and its worker (and any helper)."""
    group = os.getpgid(plugin.process.pid)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group:
                    pids.append(int(entry))
            except ProcessLookupError:
                continue
    return pids


# -- the JSON log, and no metrics unless asked ---------------------------------

def test_json_log_lines_parse_and_metrics_are_off_by_default(cloud, plugin_factory):
    plugin = plugin_factory(options={"log_format": "json"}).start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "json-volume", "Opts": {"size": "1"}}))
    # A name fuxi refuses (spaces), a caller id with a newline: each stays in its one line and field.
    status, body = plugin.call("VolumeDriver.Mount", {"Name": "no such volume", "ID": "c\n2"})
    assert status == 400, body

    records, text_before, text_after = [], [], []
    for line in plugin.log(tail=None).splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            (text_after if records else text_before).append(line)
    calls = [r for r in records if r["logger"] == "fuxi.calls"]
    create, mount = calls[-2:]
    assert {k: create[k] for k in ("level", "call", "volume", "caller", "outcome", "status")} == {
        "level": "INFO", "call": "Create", "volume": "json-volume", "caller": None, "outcome": "ok", "status": 200}
    assert create["duration_s"] > 0 and create["request_id"].startswith("req-")
    assert {k: mount[k] for k in ("level", "call", "volume", "caller", "outcome", "status", "error")} == {
        "level": "WARNING", "call": "Mount", "volume": "no such volume", "caller": "c\n2", "outcome": "error",
        "status": 400, "error": body["Err"]}
    assert mount["request_id"] not in (None, create["request_id"])
    steps = [r for r in records if r["logger"] == "storage_core.timing" and "volume=json-volume" in r["message"]]
    assert steps and {r["request_id"] for r in steps} == {create["request_id"]}

    # Off by default: not a single TCP port open in any of the server's processes.
    assert listening_tcp_ports(process_group(plugin)) == set()
    assert not any("Prometheus" in r["message"] for r in records)

    # Every line is JSON: the master's and gunicorn's from the start, fuxi's, the
    # libraries' (their warnings too) and gunicorn's in the worker.
    assert text_before == [] and text_after == [], text_before + text_after


# -- metrics ---------------------------------------------------------------------

POOL = ("[pool:spare]\nsize_gb = 2\nfstype = ext4\ntier = 1\nmin_ready = 1\nmax = 1\nbatch = 1\n"
        "refill_interval = 0.5\n")


def test_metrics_count_calls_steps_mounts_and_pool_levels(cloud, plugin_factory, tmp_path):
    port = free_port()
    plugin = plugin_factory(options={"metrics_listen": f"127.0.0.1:{port}"})
    with open(os.path.join(plugin.workdir, "fuxi.conf"), "a") as f:
        f.write(POOL)  # a pool of 2 GiB volumes: the 1 GiB Creates below go the cold way
    plugin.start()
    assert listening_tcp_ports(process_group(plugin)) == {port}

    before = scrape(port)
    # Every call's series is there from the start, at 0.
    assert sample(before, "fuxi_plugin_calls_total", call="Create", outcome="ok") == 0
    assert sample(before, "fuxi_plugin_call_seconds_count", call="Mount") == 0
    assert sample(before, "fuxi_mounts") == 0
    assert sample(before, "process_resident_memory_bytes") > 0  # of the worker serving the calls

    ok(plugin.call("VolumeDriver.Create", {"Name": "counted", "Opts": {"size": "1"}}))
    ok(plugin.call("VolumeDriver.Mount", {"Name": "counted", "ID": "a"}))
    ok(plugin.call("VolumeDriver.Mount", {"Name": "counted", "ID": "b"}))
    mounted = scrape(port)
    assert sample(mounted, "fuxi_mounted_volumes") == 1
    assert sample(mounted, "fuxi_mounts") == 2
    assert sample(mounted, "fuxi_plugin_calls_in_progress") == 0  # a scrape is no plugin call

    for caller in ("a", "b"):
        ok(plugin.call("VolumeDriver.Unmount", {"Name": "counted", "ID": caller}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "counted"}))
    assert plugin.call("VolumeDriver.Get", {"Name": "counted"})[0] == 404
    control = Control(cloud.devcloud["url"])
    try:
        control.add_fault("volume.create", status=500, times=1)
        status, body = plugin.call("VolumeDriver.Create", {"Name": "refused", "Opts": {"size": "1"}})
    finally:
        control.clear_faults()
        control.close()
    assert status >= 500 and body["Err"], (status, body)

    after = scrape(port)
    for call, outcome, count in (("Create", "ok", 1), ("Create", "error", 1), ("Mount", "ok", 2),
                                 ("Unmount", "ok", 2), ("Remove", "ok", 1), ("Get", "error", 1),
                                 ("Get", "ok", 0)):
        assert sample(after, "fuxi_plugin_calls_total", call=call, outcome=outcome) == count, (call, outcome)
    assert sample(after, "fuxi_plugin_call_seconds_count", call="Create") == 2
    assert sample(after, "fuxi_plugin_call_seconds_count", call="Mount") == 2
    assert sample(after, "fuxi_plugin_call_seconds_sum", call="Create") > 0
    # The histogram's buckets hold each call once: the first covers none of a Create's
    # (a cold Create takes longer than 5 ms), +Inf both.
    assert sample(after, "fuxi_plugin_call_seconds_bucket", call="Create", le="0.005") == 0
    assert sample(after, "fuxi_plugin_call_seconds_bucket", call="Create", le="+Inf") == 2
    assert sample(after, "fuxi_mounted_volumes") == 0 and sample(after, "fuxi_mounts") == 0
    # The steps, the failed create among them (the cold Creates: not the pool's 2 GiB volume).
    for step in ("attach", "mkfs", "mount"):
        assert sample(after, "fuxi_volume_step_seconds_count", step=step, outcome="ok") == 1, step
    assert sample(after, "fuxi_volume_step_seconds_count", step="create", outcome="ok") == 1
    assert sample(after, "fuxi_volume_step_seconds_count", step="create", outcome="error") == 1

    # The pool: its configured levels, and its one volume once the keeper made it.
    levels = wait_until(lambda: (lambda s: s if s.get(("fuxi_pool_volumes", (("pool", "spare"), ("state", "ready"))))
                                 == 1 else None)(scrape(port)), timeout=30, what="the pool's ready volume")
    assert sample(levels, "fuxi_pool_volumes", pool="spare", state="filling") == 0
    assert sample(levels, "fuxi_pool_min_ready", pool="spare") == 1
    assert sample(levels, "fuxi_pool_max_volumes", pool="spare") == 1
    assert sample(levels, "fuxi_pool_levels_known") == 1
    assert sample(levels, "fuxi_volume_step_seconds_count", step="pool-create", outcome="ok") >= 1

    # The text format: gunicorn's own lines are in fuxi's format too.
    gunicorn_lines = [line for line in plugin.log(tail=None).splitlines()
                      if "Starting gunicorn" in line or "Booting worker" in line]
    assert len(gunicorn_lines) == 2 and all(TEXT_LINE.match(line) for line in gunicorn_lines), gunicorn_lines
