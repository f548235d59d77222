"""The `fuxi` CLI: its tables and JSON, its command line, and the doctor's
socket and dockerd checks, against small fakes served on real unix sockets
(a plugin answering canned JSON, an Engine API, a socket nobody serves)."""

import json
import os
import socket
import socketserver
import stat
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from fuxi import cli, cli_output, doctor
from storage_core.config import CloudConfig, StorageConfig
from storage_core.diagnostics import FAIL, INFO, OK, WARN, Check

MOUNT_ID_A = "a" * 64
MOUNT_ID_B = "b" * 64


# -- a fake fuxi-server on a unix socket -------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.seen.append((self.path, body))
        answer = self.server.answers.get(self.path)
        if callable(answer):
            answer = answer(body)
        status, payload = answer if answer is not None else (404, {"Err": "unknown call"})
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"


class FakePlugin(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path, answers):
        self.answers, self.seen = answers, []
        super().__init__(path, _Handler)


@pytest.fixture
def fake_plugin(tmp_path):
    servers = []

    def serve(answers, name="fuxi.sock"):
        server = FakePlugin(str(tmp_path / name), answers)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def volume(name, size=1, attached=False, mounts=0, cloud_status="available", pool=None, backend="cinder"):
    status = {"backend": backend, "size_gb": size, "cloud_status": cloud_status, "attached": attached,
              "mounts": mounts}
    status["volume_id" if backend == "cinder" else "share_id"] = f"id-{name}"
    if pool:
        status["pool"] = pool
    return {"Name": name, "Mountpoint": f"/m/{name}" if mounts else "", "CreatedAt": "2026-01-02T03:04:05Z",
            "Status": status}


VOLUMES = [volume("web", 2, attached=True, mounts=2, cloud_status="in-use", pool="warm"),
           volume("db", 10, cloud_status="in-use"),
           volume("spare", 1),
           volume("files", 1, backend="manila")]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- output ------------------------------------------------------------------------

def test_table_aligns_columns_and_shows_none_as_a_dash():
    text = cli_output.table([{"a": "x", "b": None}, {"a": "longer", "b": True}], ["a", "b"])
    assert text.splitlines() == ["A       B", "x       -", "longer  yes"]


@pytest.mark.parametrize("status, expected", [
    ({"backend": "cinder", "attached": True, "cloud_status": "in-use"}, "here"),
    ({"backend": "cinder", "attached": False, "cloud_status": "in-use"}, "other host"),
    ({"backend": "cinder", "attached": False, "cloud_status": "available"}, "no"),
    ({"backend": "cinder", "attached": False, "cloud_status": "reserved"}, "reserved"),
    ({"backend": "manila", "attached": False, "cloud_status": "available"}, "not here"),
    ({"backend": "manila", "attached": True, "cloud_status": "available"}, "here"),
])
def test_attach_state(status, expected):
    assert cli_output.attach_state(status) == expected


def test_fuxi_volumes_prints_a_table_sorted_by_name(fake_plugin, capsys):
    server = fake_plugin({"/fuxi/volumes": (200, {"Volumes": VOLUMES, "Err": ""})})
    code, out, _err = run(capsys, "--socket", server.server_address, "volumes")
    assert code == 0
    assert out.splitlines() == [
        "NAME   BACKEND  SIZE    ATTACHED    MOUNTS  POOL",
        "db     cinder   10 GiB  other host  0       -",
        "files  manila   1 GiB   not here    0       -",
        "spare  cinder   1 GiB   no          0       -",
        "web    cinder   2 GiB   here        2       warm",
    ]


def test_fuxi_volumes_json_after_the_command(fake_plugin, capsys):
    server = fake_plugin({"/fuxi/volumes": (200, {"Volumes": VOLUMES[:1], "Err": ""})})
    code, out, _err = run(capsys, "volumes", "--json", "--socket", server.server_address)
    assert code == 0
    assert json.loads(out) == [{"name": "web", "backend": "cinder", "id": "id-web", "size_gb": 2, "attached": "here",
                                "mounts": 2, "pool": "warm", "cloud_status": "in-use", "mountpoint": "/m/web",
                                "created_at": "2026-01-02T03:04:05Z"}]


def test_no_volumes(fake_plugin, capsys):
    server = fake_plugin({"/fuxi/volumes": (200, {"Volumes": [], "Err": ""})})
    assert run(capsys, "--socket", server.server_address, "volumes")[1] == "no volumes\n"


def inspected(pool=None):
    vol = volume("web", 2, attached=True, mounts=3, cloud_status="in-use", pool=pool)
    vol["Status"].update(fstype="xfs", attach_mode="baremetal", volume_type=None, availability_zone="nova")
    return {**vol, "VolumeId": "id-web", "Metadata": {"volume_from": "fuxi", "fstype": "xfs"},
            "CloudAttachments": [{"attachment_id": "att-1", "host": "host-a", "server_id": None}],
            "Host": {"phase": "mounted", "attachment_id": "att-1", "device_path": "/dev/loop3",
                     "mountpoint": "/m/web"},
            "MountCallers": {MOUNT_ID_A: 2, MOUNT_ID_B: 1}}


def test_fuxi_inspect_shows_the_cloud_and_this_host(fake_plugin, capsys):
    server = fake_plugin({"/fuxi/volumes/inspect": (200, {"Volume": inspected(pool="warm"), "Err": ""})})
    code, out, _err = run(capsys, "--socket", server.server_address, "inspect", "web")
    assert code == 0 and server.seen == [("/fuxi/volumes/inspect", {"Name": "web"})]
    lines = dict(line.split(None, 1) if "  " not in line else [p.strip() for p in line.split("  ", 1)]
                 for line in out.splitlines())
    assert lines["pool"] == "warm"
    assert lines["held by"] == "host-a"
    assert lines["device"] == "/dev/loop3"
    assert lines["mounts"] == "3 (aaaaaaaaaaaa x2, bbbbbbbbbbbb)"  # Docker's ids, shortened as `docker ps` does
    assert lines["volume type"] == "-"
    assert lines["metadata"] == "fstype=xfs, volume_from=fuxi"
    cold = cli_output.inspect_text(inspected())
    assert "pool          none (created cold)" in cold


def test_fuxi_inspect_json_is_the_servers_record(fake_plugin, capsys):
    record = inspected(pool="warm")
    server = fake_plugin({"/fuxi/volumes/inspect": (200, {"Volume": record, "Err": ""})})
    code, out, _err = run(capsys, "--socket", server.server_address, "--json", "inspect", "web")
    assert code == 0 and json.loads(out) == record


def test_an_error_from_the_server_is_printed_without_a_traceback(fake_plugin, capsys):
    server = fake_plugin({"/fuxi/volumes/inspect": (404, {"Err": "volume 'nope' does not exist; create it first"})})
    code, out, err = run(capsys, "--socket", server.server_address, "inspect", "nope")
    assert (code, out) == (1, "")
    assert err == "fuxi: volume 'nope' does not exist; create it first\n"


def test_no_server_says_how_to_find_out_why(tmp_path, capsys):
    code, _out, err = run(capsys, "--socket", str(tmp_path / "none.sock"), "volumes")
    assert code == 1
    assert err.startswith(f"fuxi: cannot reach fuxi-server on {tmp_path}/none.sock") and "fuxi doctor" in err


def test_the_socket_comes_from_the_config_file(fake_plugin, tmp_path, capsys):
    server = fake_plugin({"/fuxi/volumes": (200, {"Volumes": [], "Err": ""})}, name="configured.sock")
    conf = tmp_path / "fuxi.conf"
    conf.write_text(f"[fuxi]\nsocket = {server.server_address}\n")
    assert run(capsys, "--config-file", str(conf), "volumes")[:2] == (0, "no volumes\n")
    conf.write_text("[fuxi]\nsokcet = /x\n")
    code, _out, err = run(capsys, "--config-file", str(conf), "volumes")
    assert code == 1 and "unknown option 'sokcet'" in err


@pytest.mark.parametrize("argv, message", [
    (["pool", "fill", "--count", "0"], "argument --count: '0' is not a whole number of at least 1"),
    (["pool", "fill", "--count", "many"], "argument --count: 'many' is not a whole number of at least 1"),
    (["inspect"], "the following arguments are required: NAME"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_command_lines_name_the_input(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


# -- pools: progress while it goes ---------------------------------------------------

POOLS = [{"pool": "warm", "key": "k", "tier": 4, "size_gb": 1, "fstype": "ext4", "ready": 1, "filling": 0,
          "min_ready": 1, "max": 4, "batch": 2}]


def test_pool_fill_prints_each_round_and_asks_at_most_a_batch(fake_plugin, capsys):
    made = iter([["v1", "v2"], ["v3"]])
    server = fake_plugin({"/fuxi/pool/status": (200, {"Pools": POOLS, "Err": ""}),
                          "/fuxi/pool/fill": lambda body: (200, {"Made": next(made), "Err": ""})})
    code, out, _err = run(capsys, "--socket", server.server_address, "pool", "fill")
    assert code == 0
    assert out.splitlines() == ["warm: making 2 volume(s) (0/3 done)", "warm: 2/3 ready: v1 v2",
                                "warm: making 1 volume(s) (2/3 done)", "warm: 3/3 ready: v3", "made 3 volume(s)"]
    assert [body for path, body in server.seen if path == "/fuxi/pool/fill"] == [
        {"Pool": "warm", "Count": 2}, {"Pool": "warm", "Count": 1}]


def test_pool_drain_reports_pool_by_pool_and_json_keeps_stdout_clean(fake_plugin, capsys):
    pools = POOLS + [{**POOLS[0], "pool": "big"}]
    server = fake_plugin({"/fuxi/pool/status": (200, {"Pools": pools, "Err": ""}),
                          "/fuxi/pool/drain": lambda body: (200, {"Deleted": [f"{body['Pool']}-1"], "Err": ""})})
    code, out, err = run(capsys, "--socket", server.server_address, "--json", "pool", "drain")
    assert code == 0 and json.loads(out) == {"deleted": ["warm-1", "big-1"]}
    assert err.splitlines() == ["warm: draining", "warm: deleted 1 volume(s)", "big: draining",
                                "big: deleted 1 volume(s)"]


def test_pool_commands_name_an_unknown_pool(fake_plugin, capsys):
    server = fake_plugin({"/fuxi/pool/status": (200, {"Pools": POOLS, "Err": ""})})
    code, _out, err = run(capsys, "--socket", server.server_address, "pool", "drain", "--pool", "cold")
    assert code == 1 and err == "fuxi: no pool named 'cold'; pools: warm\n"
    assert [path for path, _ in server.seen] == ["/fuxi/pool/status"]  # nothing drained


# -- doctor: rendering ----------------------------------------------------------------

def test_doctor_lines_show_the_fix_under_a_problem():
    assert cli_output.check_lines(Check("cloud", "Keystone auth", OK, "token")) == "OK    cloud   Keystone auth: token"
    assert cli_output.check_lines(Check("socket", "socket permissions", FAIL, "mode 0666", "chmod 0660 S")) == (
        "FAIL  socket  socket permissions: mode 0666\n              fix: chmod 0660 S")
    assert cli_output.check_lines(Check("host", "iSCSI", INFO, "missing", "if needed: install")).endswith(
        "note: if needed: install")


def test_doctor_summary_and_record():
    checks = [Check("a", "x", OK, "fine"), Check("a", "y", WARN, "meh", "do"), Check("a", "z", INFO, "fyi")]
    assert cli_output.doctor_summary(checks) == "1 OK, 1 INFO, 1 WARN, 0 FAIL: no failures; see the WARN lines"
    assert cli_output.doctor_record(checks)["ok"] is True
    failed = checks + [Check("a", "w", FAIL, "bad", "fix")]
    assert cli_output.doctor_record(failed)["ok"] is False
    assert cli_output.doctor_record(failed)["counts"] == {"OK": 1, "INFO": 1, "WARN": 1, "FAIL": 1}


# -- doctor: the socket -----------------------------------------------------------------

def stat_of(mode, uid=0, gid=0):
    return os.stat_result((stat.S_IFSOCK | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize("mode, uid, gid, group_exists, status, words", [
    (0o660, 0, "docker", True, OK, "mode 0660, owner root, group docker"),
    (0o666, 0, "docker", True, FAIL, "any local user can create, mount and delete volumes"),
    (0o660, 1000, "docker", True, FAIL, "may change who can use it"),
    (0o660, 0, "nogroup", True, FAIL, "members of group nogroup, not docker, can use the plugin"),
    (0o600, 0, "docker", True, WARN, "members of group docker cannot use the fuxi CLI"),
    (0o660, 0, "root", True, WARN, "members of group docker cannot use the fuxi CLI"),
    (0o660, 0, "root", False, OK, "mode 0660, owner root, group root"),
])
def test_socket_permissions(mode, uid, gid, group_exists, status, words):
    import grp

    try:
        gid_number = grp.getgrnam(gid).gr_gid
    except KeyError:
        pytest.fail(f"this machine has no group {gid}")  # Debian has root, nogroup; install.sh adds docker
    check = doctor.permissions_check("/run/docker/plugins/fuxi.sock", stat_of(mode, uid, gid_number), group_exists)
    assert check.status == status and words in check.found
    if status != OK:
        assert "chmod 0660 /run/docker/plugins/fuxi.sock" in check.fix


def test_socket_missing_or_not_a_socket(tmp_path):
    [missing] = doctor.socket_checks(str(tmp_path / "fuxi.sock"))
    assert missing.status == FAIL and "start fuxi-server" in missing.fix
    (tmp_path / "file").write_text("")
    [not_socket] = doctor.socket_checks(str(tmp_path / "file"))
    assert not_socket.status == FAIL and not_socket.found.endswith("exists but is not a socket")


def test_a_live_fuxi_answers_activate_and_its_setup_is_compared(fake_plugin, tmp_path):
    setup = {"pid": 42, "mount_root": str(tmp_path / "state" / "mounts"), "attach_mode": "baremetal",
             "backends": {"cinder": None, "manila": None}, "default_backend": "cinder", "pools": ["warm"]}
    server = fake_plugin({"/Plugin.Activate": (200, {"Implements": ["VolumeDriver"]}),
                          "/fuxi/server": (200, {"Server": setup, "Err": ""})})
    same = StorageConfig(state_dir=str(tmp_path / "state"), cloud=CloudConfig(cloud_name="c"))
    checks = {c.what: c for c in doctor.socket_checks(server.server_address, same)}
    assert checks["answers /Plugin.Activate"].status == OK
    assert checks["fuxi-server's set-up"] == Check(
        "socket", "fuxi-server's set-up", OK,
        f"pid 42, mounts under {tmp_path}/state/mounts, attach mode baremetal, backends cinder, manila, pools warm")
    other = StorageConfig(state_dir=str(tmp_path / "other"), cloud=CloudConfig(cloud_name="c"))
    mismatch = [c for c in doctor.socket_checks(server.server_address, other) if c.what == "fuxi-server's set-up"]
    assert mismatch[0].status == WARN and "the server runs with another config" in mismatch[0].found


def test_something_else_on_the_socket_is_not_fuxi(fake_plugin):
    server = fake_plugin({"/Plugin.Activate": (200, {"Implements": ["NetworkDriver"]})})
    check = doctor.activate_check(server.server_address)
    assert check.status == FAIL and "not a Docker volume plugin" in check.found


def test_a_stale_socket_and_a_stuck_server(tmp_path):
    stale = str(tmp_path / "stale.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(stale)
    sock.close()  # the file stays, nobody listens: what a killed fuxi-server leaves
    checks = list(doctor.socket_checks(stale))
    answer = next(c for c in checks if c.what == "answers /Plugin.Activate")
    assert answer.status == FAIL and "nothing answers" in answer.found and "connection refused" in answer.found
    assert checks[-1].status == INFO  # the set-up is not asked for
    stuck = socket.socket(socket.AF_UNIX)
    stuck.bind(str(tmp_path / "stuck.sock"))
    stuck.listen(1)  # the kernel accepts, nobody ever answers
    try:
        check = doctor.activate_check(str(tmp_path / "stuck.sock"), timeout=0.2)
    finally:
        stuck.close()
    assert check.status == FAIL and "gave no answer within 0.2 s" in check.found


# -- doctor: dockerd ---------------------------------------------------------------------

def test_driver_names_dockerd_would_find(tmp_path):
    plugins, specs = tmp_path / "run-plugins", tmp_path / "etc-plugins"
    os.makedirs(plugins / "nested")
    os.makedirs(specs)
    assert doctor.driver_name(str(plugins / "fuxi.sock"), str(plugins), [str(specs)]) == "fuxi"
    assert doctor.driver_name(str(plugins / "nested" / "nested.sock"), str(plugins), [str(specs)]) == "nested"
    elsewhere = str(tmp_path / "srv" / "fuxi.sock")
    assert doctor.driver_name(elsewhere, str(plugins), [str(specs)]) is None
    (specs / "byspec.spec").write_text(f"unix://{elsewhere}\n")
    assert doctor.driver_name(elsewhere, str(plugins), [str(specs)]) == "byspec"
    (specs / "byspec.spec").unlink()
    (specs / "byjson.json").write_text(json.dumps({"Name": "byjson", "Addr": f"unix://{elsewhere}"}))
    assert doctor.driver_name(elsewhere, str(plugins), [str(specs)]) == "byjson"


class FakeEngine:
    def __init__(self, drivers_after_lookup=("local", "fuxi"), warnings=None, down=False):
        self.calls = []
        self.looked_up = False
        self.drivers_after_lookup, self.warnings, self.down = drivers_after_lookup, warnings, down

    def get(self, path, **params):
        self.calls.append((path, params))
        if self.down:
            raise FileNotFoundError(2, "No such file or directory")
        if path == "/version":
            return {"Version": "20.10.24", "ApiVersion": "1.41"}
        if path == "/volumes":
            self.looked_up = True  # dockerd loads a legacy plugin at its first lookup
            return {"Volumes": [{"Name": "v1"}], "Warnings": self.warnings}
        if path == "/info":
            return {"Plugins": {"Volume": list(self.drivers_after_lookup) if self.looked_up else ["local"]}}
        raise AssertionError(path)


def docker(tmp_path, engine, live=True, name="fuxi.sock"):
    plugins = tmp_path / "plugins"
    os.makedirs(plugins, exist_ok=True)
    checks = doctor.docker_checks(str(plugins / name), live, "/var/run/docker.sock", engine, str(plugins),
                                  [str(tmp_path / "no-specs")])
    return {c.what: c for c in checks}


def test_dockerd_loads_the_driver_after_a_lookup(tmp_path):
    engine = FakeEngine()
    checks = docker(tmp_path, engine)
    assert checks["dockerd finds the socket"].found == "as volume driver 'fuxi' (docker volume create -d fuxi)"
    assert checks["dockerd answers"].found == "Docker 20.10.24 (API 1.41) on /var/run/docker.sock"
    assert checks["dockerd loaded the volume driver"] == Check(
        "docker", "dockerd loaded the volume driver", OK, "'fuxi', listing 1 volume(s)")
    assert engine.calls[1] == ("/volumes", {"filters": '{"driver": ["fuxi"]}'})


def test_dockerd_problems(tmp_path):
    down = docker(tmp_path, FakeEngine(down=True))["dockerd answers"]
    assert down.status == FAIL and "systemctl start docker" in down.fix and "--no-docker" in down.fix
    unloaded = docker(tmp_path, FakeEngine(drivers_after_lookup=("local",)))["dockerd loaded the volume driver"]
    assert unloaded.status == FAIL and unloaded.found == "dockerd's volume drivers are local"
    warned = docker(tmp_path, FakeEngine(warnings=["fuxi: List failed"]))["dockerd loaded the volume driver"]
    assert warned.status == WARN and "fuxi: List failed" in warned.found


def test_dockerd_is_not_asked_about_a_plugin_that_does_not_answer(tmp_path):
    # dockerd would retry a dead plugin for 15 s, then keep it registered dead.
    engine = FakeEngine()
    check = docker(tmp_path, engine, live=False)["dockerd loaded the volume driver"]
    assert check.status == INFO and [path for path, _ in engine.calls] == ["/version"]


def test_docker_host_over_tcp_is_not_checked(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2376")
    assert doctor.docker_socket_from_env() is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/docker.sock")
    assert doctor.docker_socket_from_env() == "/run/user/docker.sock"


# -- doctor: config and the embedded devcloud ---------------------------------------------

def test_a_bad_config_file_fails_first_and_the_socket_is_still_checked(tmp_path):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\nattach_mode = sometimes\n")
    options = doctor.DoctorOptions(config_file=str(conf), socket=str(tmp_path / "none.sock"), docker=False)
    checks = list(doctor.Doctor(options, diagnosis_factory=pytest.fail).run())
    assert [(c.what, c.status) for c in checks] == [
        ("config file", OK), ("storage settings", FAIL), ("plugin socket", FAIL), ("dockerd", INFO)]
    assert "attach_mode = 'sometimes' is not one of: auto, baremetal, nova" in checks[1].found


def test_devcloud_that_is_not_running_says_how_to_start_it(tmp_path):
    check, cloud, _ = doctor.devcloud_cloud(str(tmp_path))
    assert check.status == FAIL and cloud is None
    assert f"fuxi-server --devcloud --state-dir {tmp_path}" in check.fix
    os.makedirs(tmp_path / "devcloud")
    ready = {"pid": 2 ** 22 + 1, "url": "http://127.0.0.1:1", "cloud": {"auth": {"auth_url": "http://127.0.0.1:1/v3"}},
             "disk_root": "/d", "config_drive_dir": "/c", "metadata_url": "http://127.0.0.1:1"}
    (tmp_path / "devcloud" / "ready.json").write_text(json.dumps(ready))
    gone, _, _ = doctor.devcloud_cloud(str(tmp_path))
    assert gone.status == FAIL and "which is gone" in gone.found
    (tmp_path / "devcloud" / "ready.json").write_text(json.dumps({**ready, "pid": os.getpid()}))
    alive, cloud, host_defaults = doctor.devcloud_cloud(str(tmp_path))
    assert alive.status == OK and cloud.auth == {"auth_url": "http://127.0.0.1:1/v3"}
    assert host_defaults == {"disk_root": "/d", "config_drive_dir": "/c", "metadata_url": "http://127.0.0.1:1"}


# -- the admin routes the CLI reads, on the in-memory fakes ----------------------------

@pytest.fixture
def admin(tmp_path):
    from fuxi.app import create_app
    from storage_core.fakes import fake_volume_service
    from storage_core.pool.spec import PoolSpec

    fakes = fake_volume_service(str(tmp_path), pools=[PoolSpec(name="warm", size_gb=1, fstype="ext4", tier=1)])
    client = create_app(fakes.service).test_client()

    def post(path, body=None):
        resp = client.post(path, data=json.dumps(body or {}))
        return resp.status_code, resp.get_json(force=True)

    post.fakes = fakes
    return post


def test_volumes_route_answers_dockers_get_shape_with_the_pool_origin(admin):
    admin.fakes.service.pools.fill("warm", 1)
    admin.fakes.service.create("warm-one", {"size": "1"})
    admin.fakes.service.create("cold-one", {"size": "2"})
    status, body = admin("/fuxi/volumes")
    assert status == 200
    by_name = {v["Name"]: v for v in body["Volumes"]}
    assert by_name["warm-one"]["Status"]["pool"] == "warm"
    assert "pool" not in by_name["cold-one"]["Status"]  # Get's status is unchanged for cold volumes
    assert cli_output.volume_record(by_name["warm-one"])["pool"] == "warm"
    assert admin("/VolumeDriver.Get", {"Name": "warm-one"})[1]["Volume"]["Status"]["pool"] == "warm"


def test_inspect_route_reads_the_cloud_and_this_hosts_mounts(admin):
    admin.fakes.service.create("data", {"size": "1"})
    admin.fakes.service.mount("data", MOUNT_ID_A)
    admin.fakes.service.mount("data", MOUNT_ID_A)
    status, body = admin("/fuxi/volumes/inspect", {"Name": "data"})
    assert status == 200
    vol = body["Volume"]
    [cloud] = [v for v in admin.fakes.cinder.volumes.values() if v.name == "data"]
    assert vol["VolumeId"] == cloud.id and vol["Metadata"] == dict(cloud.metadata)
    assert vol["MountCallers"] == {MOUNT_ID_A: 2} and vol["Host"]["phase"] == "mounted"
    assert vol["Status"]["cloud_status"] == "in-use" and len(vol["CloudAttachments"]) == 1
    assert admin("/fuxi/volumes/inspect", {"Name": "nope"}) == (
        404, {"Err": "volume 'nope' does not exist; create it first"})
    assert admin("/fuxi/volumes/inspect", {}) == (
        400, {"Err": 'the request has no "Name"; every volume call names its volume'})


def test_release_route_forgets_a_volume_without_deleting_it(admin):
    vol = admin.fakes.service.create("data", {"size": "1"})
    admin.fakes.service.mount("data", MOUNT_ID_A)
    status, body = admin("/fuxi/volumes/release", {"Name": "data"})
    assert status == 409 and "still mounted 1 time(s) on this host" in body["Err"]
    admin.fakes.service.unmount("data", MOUNT_ID_A)
    assert admin("/fuxi/volumes/release", {"Name": "data"}) == (200, {"Released": {
        "Name": "data", "Backend": "cinder", "VolumeId": vol.id, "Adopted": False, "CloudName": "data"}, "Err": ""})
    assert vol.id in admin.fakes.cinder.volumes and not admin.fakes.cinder.volumes[vol.id].owned
    assert admin("/VolumeDriver.List")[1]["Volumes"] == []
    assert admin("/fuxi/volumes/release", {"Name": "nope"}) == (
        404, {"Err": "volume 'nope' does not exist; nothing to release"})


def test_fuxi_release_says_what_the_volume_is_called_now(fake_plugin, capsys):
    answer = {"Name": "db", "Backend": "cinder", "VolumeId": "id-db", "Adopted": True, "CloudName": "projects-db"}
    server = fake_plugin({"/fuxi/volumes/release": (200, {"Released": answer, "Err": ""})})
    code, out, _err = run(capsys, "--socket", server.server_address, "release", "db")
    assert code == 0 and server.seen == [("/fuxi/volumes/release", {"Name": "db"})]
    assert out == ("released db: fuxi no longer manages Cinder volume id-db; not deleted, it is named "
                   "'projects-db' in the cloud now\n")
    code, out, _err = run(capsys, "--socket", server.server_address, "release", "db", "--json")
    assert code == 0 and json.loads(out) == answer
    server.answers["/fuxi/volumes/release"] = (409, {"Err": "volume 'db' is still mounted 1 time(s)"})
    code, out, err = run(capsys, "--socket", server.server_address, "release", "db")
    assert (code, out, err) == (1, "", "fuxi: volume 'db' is still mounted 1 time(s)\n")


def test_server_route_tells_how_the_server_is_set_up(admin, tmp_path):
    status, body = admin("/fuxi/server")
    assert status == 200
    server = body["Server"]
    assert server["pid"] == os.getpid() and server["mount_root"] == str(tmp_path / "mounts")
    assert (server["backends"], server["default_backend"], server["pools"]) == (
        {"cinder": None, "manila": None}, "cinder", ["warm"])
