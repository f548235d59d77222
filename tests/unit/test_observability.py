"""Issue 8, observability, piece by piece: request ids (storage_core.request_context,
the cloud adapter's header, devcloud's record of them), step observers
(storage_core.timing), the log's formats (fuxi.log_format), the per-call line
(fuxi.call_log), the metrics (fuxi.metrics) and their settings."""

import io
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fuxi import call_log, log_format, log_redaction, settings as settings_mod
from fuxi.app import create_app
from fuxi.metrics import PluginMetrics, serve_metrics
from storage_core import timing
from storage_core.devcloud.control import Control
from storage_core.devcloud.web import Request, RequestLog
from storage_core.errors import CloudError
from storage_core.factory import CloudHTTPAdapter
from storage_core.fakes import fake_volume_service
from storage_core.pool.spec import PoolSpec
from storage_core.request_context import (REQUEST_ID_HEADER, current_request_id, in_this_context, is_request_id,
                                          new_request_id, serving_request)
from storage_core.waits import deadline, time_left

DOCKER_HEADERS = {"Accept": "application/vnd.docker.plugins.v1.2+json", "Host": ""}
# benchmarks/fuxi_bench.py's reading of a step line, which must keep working.
BENCHMARK_STEP_LINE = re.compile(
    r"storage_core\.timing: step (?P<step>\S+) volume=(?P<volume>\S+) (?P<outcome>took|failed) (?P<secs>[0-9.]+) s"
)


# -- request ids ------------------------------------------------------------------

def test_a_request_id_holds_inside_its_block_only():
    assert current_request_id() is None
    with serving_request() as outer:
        assert is_request_id(outer) and current_request_id() == outer
        mine = new_request_id()
        with serving_request(mine):
            assert current_request_id() == mine
        assert current_request_id() == outer
    assert current_request_id() is None


@pytest.mark.parametrize("bad", ["abc", "req-123", "REQ-" + new_request_id()[4:], new_request_id()[4:],
                                 new_request_id() + "\nX-Injected: 1"])
def test_only_ids_an_openstack_service_accepts_are_used(bad):
    assert not is_request_id(bad)
    with pytest.raises(ValueError, match="req-<uuid>"):
        with serving_request(bad):
            pass


def test_a_thread_carries_the_callers_id_and_deadline_only_through_in_this_context():
    seen = {}

    def look(key):
        seen[key] = (current_request_id(), time_left())

    with serving_request() as request_id, deadline(30, "a test call"):
        plain = threading.Thread(target=look, args=("plain",))
        carried = threading.Thread(target=in_this_context(look), args=("carried",))
        for thread in (plain, carried):
            thread.start()
            thread.join()
    assert seen["plain"] == (None, None)
    assert seen["carried"][0] == request_id and 0 < seen["carried"][1] <= 30


def test_concurrent_calls_each_keep_their_own_id():
    ids, ready = {}, threading.Barrier(4)

    def call(n):
        with serving_request() as request_id:
            ready.wait(5)  # all four calls are open at once
            ids[n] = (request_id, current_request_id())

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(given == seen for given, seen in ids.values())
    assert len({given for given, _ in ids.values()}) == 4


class _HeaderRecorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.server.seen.append(self.headers.get(REQUEST_ID_HEADER))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_cloud_requests_carry_the_request_id_of_the_call_that_makes_them(recorder):
    session = requests.Session()
    session.mount("http://", CloudHTTPAdapter(timeout=5, retries=0))
    url = f"http://127.0.0.1:{recorder.server_address[1]}/volumes"
    session.get(url)  # outside any call: no header, the cloud makes its own id
    with serving_request() as request_id:
        session.post(url)
        session.get(url)
    with serving_request():
        # An id the request was built with (openstacksdk's global_request) is kept.
        session.get(url, headers={REQUEST_ID_HEADER: "req-00000000-0000-0000-0000-000000000001"})
    assert recorder.seen == [None, request_id, request_id, "req-00000000-0000-0000-0000-000000000001"]


def test_devcloud_records_the_global_request_id_of_each_request():
    log = RequestLog()
    first, second = new_request_id(), new_request_id()
    log.add("POST", "/volume/v3/p/volumes", first, "req-devcloud-1")
    log.add("GET", "/volume/v3/p/volumes/detail", None, "req-devcloud-2")
    log.add("POST", "/volume/v3/p/attachments", second, "req-devcloud-3")
    control = Control(type("Cloud", (), {"requests": log})())

    def get(**query):
        req = Request("GET", "/devcloud/requests", {k: [v] for k, v in query.items()}, {})
        return control.handle(req, "/requests").body

    answer = get()
    assert answer["requests"] == {"POST /volume/v3/p/volumes": 1, "GET /volume/v3/p/volumes/detail": 1,
                                  "POST /volume/v3/p/attachments": 1}
    assert [r["global_request_id"] for r in answer["recent"]] == [first, None, second]
    assert get(global_request_id=second)["recent"] == [
        {"method": "POST", "path": "/volume/v3/p/attachments", "global_request_id": second,
         "request_id": "req-devcloud-3"}]
    assert control.handle(Request("DELETE", "/devcloud/requests", {}, {}), "/requests").status == 204
    assert get() == {"requests": {}, "recent": []}


def test_devcloud_keeps_only_the_recent_requests():
    log = RequestLog()
    for n in range(RequestLog.RECENT + 5):
        log.add("GET", f"/p{n}")
    recent = log.recent()
    assert len(recent) == RequestLog.RECENT and recent[0]["path"] == "/p5"
    assert sum(log.snapshot().values()) == RequestLog.RECENT + 5  # the counts keep everything


# -- step observers -----------------------------------------------------------------

def test_step_observers_hear_every_step_and_a_broken_one_harms_nothing(caplog):
    heard = []

    def observer(*args):
        heard.append(args)

    def broken(*args):
        raise RuntimeError("observer bug")

    timing.add_observer(observer)
    timing.add_observer(broken)
    try:
        with caplog.at_level(logging.INFO, logger="storage_core.timing"):
            with timing.step("attach", "v1"):
                pass
            with pytest.raises(CloudError):
                with timing.step("create", "v2"):
                    raise CloudError("Cinder said no")
    finally:
        timing.remove_observer(observer)
        timing.remove_observer(broken)
    assert [(s, v, o) for s, v, o, _ in heard] == [("attach", "v1", timing.SUCCEEDED), ("create", "v2", timing.FAILED)]
    assert all(seconds >= 0 for *_, seconds in heard)
    lines = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name == "storage_core.timing"]
    steps = [BENCHMARK_STEP_LINE.search(line) for line in lines]
    assert [(m["step"], m["outcome"]) for m in steps if m] == [("attach", "took"), ("create", "failed")]
    assert any("step observer" in line and "failed" in line for line in lines)  # the broken one, logged
    with timing.step("mount", "v3"):
        pass
    assert len(heard) == 2  # removed observers hear nothing


# -- log formats --------------------------------------------------------------------

def _handler(fmt):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(log_format.RequestIdFilter())
    handler.addFilter(log_redaction.SecretFilter())
    handler.setFormatter(log_format.formatter_for(fmt))
    logger = logging.getLogger(f"test.observability.{fmt}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_text_lines_carry_the_request_id_before_the_logger_name():
    logger, stream = _handler("text")
    logger.info("outside any call")
    with serving_request() as request_id:
        logger.info("step create volume=v1 took 0.100 s")
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(r"\S+ \S+ \d+ INFO test\.observability\.text: outside any call", first)
    assert f" [{request_id}] INFO test.observability.text: step create" in second


def test_a_step_line_in_a_call_still_reads_as_the_benchmarks_read_it(caplog):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(log_format.RequestIdFilter())
    handler.setFormatter(log_format.formatter_for("text"))
    step_log = logging.getLogger("storage_core.timing")
    step_log.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="storage_core.timing"), serving_request(), \
                timing.step("mkfs", "v1"):
            pass
    finally:
        step_log.removeHandler(handler)
    match = BENCHMARK_STEP_LINE.search(stream.getvalue())
    assert match and (match["step"], match["volume"], match["outcome"]) == ("mkfs", "v1", "took")


def test_json_lines_are_whole_records_with_their_fields_and_no_secret():
    logger, stream = _handler("json")
    with serving_request() as request_id:
        logger.info('RESP BODY: {"access_key": "AQBsecretkey==", "id": "%s"}', "share-1",
                    extra={"fields": {"call": "Mount", "error": "rejected password=hunter2", "message": "not mine"}})
    try:
        raise ValueError("two\nlines, token='abc123'")
    except ValueError:
        logger.exception("it broke")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the traceback's newlines are escaped inside its one line
    call, broke = map(json.loads, lines)
    assert call["request_id"] == request_id and call["level"] == "INFO" and call["call"] == "Mount"
    assert call["message"] == 'RESP BODY: {"access_key": "***", "id": "share-1"}'  # a field may not replace it
    assert call["error"] == "rejected password=***"
    assert call["time"].endswith("Z") and call["logger"] == "test.observability.json"
    assert broke["request_id"] is None and "ValueError: two\nlines" in broke["exception"]
    assert "abc123" not in lines[1]
    assert "exception" not in call


@pytest.fixture
def root_logging():
    """The root logger as it was, after the test changed it (configure() is process-wide)."""
    root, error_log = logging.getLogger(), logging.getLogger("gunicorn.error")
    saved = (list(root.handlers), root.level, list(error_log.handlers), error_log.propagate)
    yield root
    root.handlers[:], root.level = saved[0], saved[1]
    error_log.handlers[:], error_log.propagate = saved[2], saved[3]
    logging.captureWarnings(False)


def test_configure_again_changes_the_format_of_its_one_handler(root_logging):
    log_format.configure("DEBUG", "text")
    log_format.configure("INFO", "json")
    ours = [h for h in root_logging.handlers if getattr(h, "_fuxi", False)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, log_format.JsonFormatter)
    assert root_logging.level == logging.INFO
    assert any(isinstance(f, log_redaction.SecretFilter) for f in ours[0].filters)
    with pytest.raises(ValueError, match="text, json"):
        log_format.configure("INFO", "xml")


def test_gunicorns_lines_go_through_fuxis_handler(root_logging):
    from gunicorn.config import Config

    log_format.configure("INFO", "json")
    ours = next(h for h in root_logging.handlers if getattr(h, "_fuxi", False))
    stream = io.StringIO()
    ours.setStream(stream)
    log_format.GunicornLogger(Config()).info("Booting worker with pid: %s", 42)
    assert json.loads(stream.getvalue())["message"] == "Booting worker with pid: 42"
    assert not any(getattr(h, "_gunicorn", False) for h in logging.getLogger("gunicorn.error").handlers)


# -- the line of each call ---------------------------------------------------------

@pytest.fixture
def plugin(tmp_path):
    parts = fake_volume_service(str(tmp_path))
    app = create_app(parts.service)
    app.testing = True
    client = app.test_client()
    client.parts = parts
    return client


def post(client, path, body):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body) + "\n"
    return client.post(path, data=raw, headers=DOCKER_HEADERS)


def call_records(caplog):
    return [r for r in caplog.records if r.name == "fuxi.calls"]


def test_each_call_logs_one_line_with_its_volume_caller_outcome_and_duration(plugin, caplog, monkeypatch):
    ids_in_calls = []
    create = plugin.parts.service.create
    monkeypatch.setattr(plugin.parts.service, "create",
                        lambda *a, **kw: (ids_in_calls.append(current_request_id()), create(*a, **kw))[1])
    with caplog.at_level(logging.INFO, logger="fuxi.calls"):
        post(plugin, "/VolumeDriver.Create", {"Name": "v1", "Opts": {"size": "1", "type": "gold-hunter2"}})
        post(plugin, "/VolumeDriver.Mount", {"Name": "v1", "ID": "c" * 64})
        post(plugin, "/VolumeDriver.Get", {"Name": "missing"})
        post(plugin, "/VolumeDriver.Nonsense", {"Name": "v1"})
        post(plugin, "/VolumeDriver.Get", b"not json")
    records = call_records(caplog)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 5
    assert re.fullmatch(r"call=Create volume=v1 caller=- outcome=ok duration=\d+\.\d{3}s", lines[0])
    assert re.fullmatch(rf"call=Mount volume=v1 caller={'c' * 64} outcome=ok duration=\d+\.\d{{3}}s", lines[1])
    assert re.fullmatch(r'call=Get volume=missing caller=- outcome=error\(404\) duration=\S+ '
                        r'error="volume \'missing\' does not exist; create it first"', lines[2])
    assert lines[3].startswith("call=unknown volume=v1 caller=- outcome=error(404) ")
    assert lines[4].startswith("call=Get volume=- caller=- outcome=error(400) ")
    assert [r.levelno for r in records] == [logging.INFO] * 2 + [logging.WARNING] * 3
    assert not any("hunter2" in line for line in lines)  # Opts never logged
    assert records[0].fields == {"call": "Create", "volume": "v1", "caller": None, "outcome": "ok",
                                 "status": 200, "duration_s": records[0].fields["duration_s"]}
    # The service served the Create under a request id (see the next test for the line's).
    assert len(ids_in_calls) == 1 and is_request_id(ids_in_calls[0])
    assert current_request_id() is None  # nothing left behind in this thread


def test_the_request_id_of_a_line_is_the_one_its_call_served_under(plugin, monkeypatch):
    seen = []
    get = plugin.parts.service.get
    monkeypatch.setattr(plugin.parts.service, "get", lambda name: (seen.append(current_request_id()), get(name))[1])
    logger = logging.getLogger("fuxi.calls")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(log_format.RequestIdFilter())
    handler.setFormatter(log_format.formatter_for("json"))
    logger.addHandler(handler)
    try:
        for _ in range(2):
            post(plugin, "/VolumeDriver.Get", {"Name": "missing"})
    finally:
        logger.removeHandler(handler)
    logged = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert logged == seen and len(set(seen)) == 2 and all(map(is_request_id, seen))


@pytest.mark.parametrize("name, shown", [
    ("plain-name_1.x", "plain-name_1.x"),
    ("two words", '"two words"'),
    ("line\nbreak", '"line\\nbreak"'),
    ('q"uote=x', '"q\\"uote=x"'),
    (12, "12"),
    ("x" * 300, "x" * call_log.MAX_FIELD_CHARS + "..."),
])
def test_a_name_cannot_break_its_line_or_pass_for_another_field(plugin, caplog, name, shown):
    with caplog.at_level(logging.INFO, logger="fuxi.calls"):
        post(plugin, "/VolumeDriver.Path", {"Name": name})
    [record] = call_records(caplog)
    assert record.getMessage().startswith(f"call=Path volume={shown} caller=- outcome=error(")
    assert "\n" not in record.getMessage()


def test_call_names_are_the_protocols_without_its_prefixes(plugin):
    rules = {rule.rule: call_log.call_name(rule) for rule in plugin.application.url_map.iter_rules()
             if rule.endpoint != "static"}
    assert rules["/VolumeDriver.Create"] == "Create" and rules["/Plugin.Activate"] == "Activate"
    assert rules["/fuxi/pool/status"] == "fuxi.pool.status"
    assert call_log.call_name(None) == "unknown"


# -- metrics ------------------------------------------------------------------------

def samples_of(registry) -> dict:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def metered(tmp_path):
    parts = fake_volume_service(str(tmp_path), pools=(PoolSpec("warm", 2, "ext4", tier=4, min_ready=1,
                                                              max_volumes=3, batch=1),))
    metrics = PluginMetrics(parts.service)
    app = create_app(parts.service, metrics)
    app.testing = True
    client = app.test_client()
    client.parts, client.metrics = parts, metrics
    yield client
    metrics.close()


def test_calls_are_counted_and_timed_by_call_and_outcome(metered):
    before = samples_of(metered.metrics.registry)
    assert value(before, "fuxi_plugin_calls_total", call="Create", outcome="ok") == 0  # there from the start
    assert value(before, "fuxi_plugin_calls_total", call="fuxi.pool.fill", outcome="error") == 0
    post(metered, "/VolumeDriver.Create", {"Name": "v1", "Opts": {"size": "1"}})
    post(metered, "/VolumeDriver.Create", {"Name": "v1", "Opts": {"size": "3"}})  # a conflict
    post(metered, "/VolumeDriver.Get", {"Name": "v1"})
    post(metered, "/nowhere", {})
    after = samples_of(metered.metrics.registry)
    assert value(after, "fuxi_plugin_calls_total", call="Create", outcome="ok") == 1
    assert value(after, "fuxi_plugin_calls_total", call="Create", outcome="error") == 1
    assert value(after, "fuxi_plugin_calls_total", call="Get", outcome="ok") == 1
    assert value(after, "fuxi_plugin_calls_total", call="unknown", outcome="error") == 1
    assert value(after, "fuxi_plugin_call_seconds_count", call="Create") == 2
    assert value(after, "fuxi_plugin_call_seconds_bucket", call="Create", le="+Inf") == 2
    assert value(after, "fuxi_plugin_calls_in_progress") == 0
    # The fake cloud's create is a step like the real one.
    assert value(after, "fuxi_volume_step_seconds_count", step="create", outcome="ok") == 1


def test_a_call_is_in_progress_while_it_is_served(metered, monkeypatch):
    during = []
    get = metered.parts.service.get

    def watched_get(name):
        during.append(value(samples_of(metered.metrics.registry), "fuxi_plugin_calls_in_progress"))
        return get(name)

    monkeypatch.setattr(metered.parts.service, "get", watched_get)
    post(metered, "/VolumeDriver.Get", {"Name": "v1"})
    assert during == [1]
    assert value(samples_of(metered.metrics.registry), "fuxi_plugin_calls_in_progress") == 0


def test_failed_steps_are_counted_apart(metered):
    with pytest.raises(CloudError):
        with timing.step("attach", "v1"):
            raise CloudError("no")
    samples = samples_of(metered.metrics.registry)
    assert value(samples, "fuxi_volume_step_seconds_count", step="attach", outcome="error") == 1
    assert ("fuxi_volume_step_seconds_count", (("outcome", "ok"), ("step", "attach"))) not in samples


def test_a_scrape_reads_mounts_and_pool_levels(metered):
    metered.parts.service.pools.fill("warm", 1)
    post(metered, "/VolumeDriver.Create", {"Name": "a", "Opts": {"size": "1"}})
    post(metered, "/VolumeDriver.Create", {"Name": "b", "Opts": {"size": "1"}})
    for name, caller in (("a", "c1"), ("a", "c2"), ("b", "c1")):
        assert post(metered, "/VolumeDriver.Mount", {"Name": name, "ID": caller}).status_code == 200
    samples = samples_of(metered.metrics.registry)
    assert value(samples, "fuxi_mounted_volumes") == 2 and value(samples, "fuxi_mounts") == 3
    assert value(samples, "fuxi_pool_volumes", pool="warm", state="ready") == 1
    assert value(samples, "fuxi_pool_volumes", pool="warm", state="filling") == 0
    assert value(samples, "fuxi_pool_min_ready", pool="warm") == 1
    assert value(samples, "fuxi_pool_max_volumes", pool="warm") == 3
    assert value(samples, "fuxi_pool_levels_known") == 1


def test_a_scrape_without_pool_levels_still_answers(metered, monkeypatch, caplog):
    def cloud_down():
        raise CloudError("Cinder did not answer")

    monkeypatch.setattr(metered.parts.service.pools, "status", cloud_down)
    with caplog.at_level(logging.WARNING, logger="fuxi.metrics"):
        samples = samples_of(metered.metrics.registry)
    assert value(samples, "fuxi_pool_levels_known") == 0
    assert not any(name == "fuxi_pool_volumes" for name, _ in samples)
    assert value(samples, "fuxi_mounts") == 0
    assert "pool levels unknown for this scrape: Cinder did not answer" in caplog.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_are_served_on_their_address_and_a_taken_port_is_only_logged(tmp_path, caplog):
    service = fake_volume_service(str(tmp_path)).service
    port = free_port()
    served = serve_metrics(service, ("127.0.0.1", port))
    try:
        resp = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert resp.status_code == 200 and "fuxi_mounts 0.0" in resp.text
        with caplog.at_level(logging.ERROR, logger="fuxi.metrics"):
            second = serve_metrics(service, ("127.0.0.1", port))
        second.close()
        assert f"metrics_listen = 127.0.0.1:{port} cannot be served" in caplog.text
    finally:
        served.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert serve_metrics(service, None) is None


# -- settings -----------------------------------------------------------------------

def load(tmp_path, **values):
    config = tmp_path / "fuxi.conf"
    config.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return settings_mod.load(["--config-file", str(config)])


def test_metrics_and_text_logs_by_default(tmp_path):
    settings = load(tmp_path)
    assert settings.metrics_address() is None
    assert settings.checked_log_format() == "text"


@pytest.mark.parametrize("where, address", [
    ("127.0.0.1:9101", ("127.0.0.1", 9101)),
    ("127.0.0.53:9101", ("127.0.0.53", 9101)),
    ("[::1]:9101", ("::1", 9101)),
    ("localhost:9101", ("localhost", 9101)),
])
def test_metrics_listen_on_loopback(tmp_path, where, address):
    assert load(tmp_path, metrics_listen=where).metrics_address() == address


@pytest.mark.parametrize("where, message", [
    ("0.0.0.0:9101", "metrics_listen = 0.0.0.0:9101: 0.0.0.0 is not a loopback address"),
    ("[::]:9101", ":: is not a loopback address"),
    ("192.0.2.7:9101", "listens on this host only: 127.0.0.1:PORT, [::1]:PORT or localhost:PORT"),
    ("metrics.example:9101", "metrics.example is not a loopback address"),
    ("9101", "metrics_listen = '9101' is not HOST:PORT (e.g. 127.0.0.1:9101"),
    ("127.0.0.1:0", "port 0 is not between 1 and 65535"),
])
def test_metrics_listen_elsewhere_is_a_start_up_error(tmp_path, where, message):
    with pytest.raises(settings_mod.SettingsError) as raised:
        load(tmp_path, metrics_listen=where)
    assert message in str(raised.value)


def test_log_format_is_text_or_json(tmp_path):
    assert load(tmp_path, log_format="JSON").checked_log_format() == "json"
    with pytest.raises(settings_mod.SettingsError, match="log_format = 'xml' is not one of: text, json"):
        load(tmp_path, log_format="xml")
