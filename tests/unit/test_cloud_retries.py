"""How fuxi talks to a misbehaving cloud (storage_core.factory's transport),
the caller's deadline (storage_core.waits.deadline), and the devcloud fault
hooks the functional fault matrix relies on (expired tokens, volumes that go
to error). The HTTP tests run a stdlib server on loopback."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from keystoneauth1 import exceptions as ks_exceptions

from storage_core.backends.sdk_errors import no_answer, translate_errors
from storage_core.config import CloudConfig, StorageConfig
from storage_core.devcloud.faults import FaultInjector, apply_fault
from storage_core.devcloud.keystone import Identity
from storage_core.devcloud.store import Store
from storage_core.devcloud.web import cinder_error
from storage_core.errors import CloudError, ConfigError, Timeout
from storage_core.factory import CloudHTTPAdapter, CloudRetry, CloudSession
from storage_core.fakes import FakeClock
from storage_core.waits import deadline, time_left, wait_until

# -- the retry policy -----------------------------------------------------------


def test_idempotent_requests_are_retried_on_5xx_posts_only_when_refused():
    retry = CloudRetry.policy(2)
    for status in (500, 502, 503, 504, 429):
        assert retry.is_retry("GET", status) and retry.is_retry("DELETE", status)
    assert not retry.is_retry("GET", 404) and not retry.is_retry("GET", 409)
    assert retry.is_retry("POST", 503) and retry.is_retry("POST", 429)
    for status in (500, 502, 504, 400):
        assert not retry.is_retry("POST", status), status


class _Script(BaseHTTPRequestHandler):
    """Answers from a per-path script of ("status", code) / ("reset",) / ("slow", seconds)."""

    protocol_version = "HTTP/1.1"

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        server = self.server
        with server.lock:
            server.seen.append((self.command, self.path))
            steps = server.script.get(self.path) or [("status", 200)]
            step = steps.pop(0) if len(steps) > 1 else steps[0]
        if step[0] == "reset":
            self.close_connection = True
            self.connection.close()
            return
        if step[0] == "slow":
            time.sleep(step[1])
            step = ("status", 200)
        body = json.dumps({"status": step[1]}).encode()
        self.send_response(step[1])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.seen = []
    srv.script = {}
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def http():
    session = requests.Session()
    session.mount("http://", CloudHTTPAdapter(timeout=0.3, retries=2))
    yield session
    session.close()


def _count(server, method, path):
    return sum(1 for m, p in server.seen if (m, p) == (method, path))


def test_a_get_meets_a_500_and_a_reset_and_still_gets_its_answer(server, http):
    server.script["/v"] = [("status", 500), ("reset",), ("status", 200)]
    assert http.get(server.url + "/v").status_code == 200
    assert _count(server, "GET", "/v") == 3


def test_a_get_gives_up_after_its_retries_with_the_clouds_own_answer(server, http):
    server.script["/v"] = [("status", 503)]
    resp = http.get(server.url + "/v")
    assert resp.status_code == 503 and resp.json() == {"status": 503}  # not urllib3's RetryError
    assert _count(server, "GET", "/v") == 3


def test_a_slow_get_is_tried_again(server, http):
    server.script["/v"] = [("slow", 0.5), ("status", 200)]
    started = time.monotonic()
    assert http.get(server.url + "/v").status_code == 200
    assert 0.3 <= time.monotonic() - started < 1.5
    assert _count(server, "GET", "/v") == 2


def test_a_post_that_may_have_arrived_is_not_sent_again(server, http):
    server.script["/volumes"] = [("status", 500), ("status", 200)]
    assert http.post(server.url + "/volumes", json={}).status_code == 500
    server.script["/attachments"] = [("reset",), ("status", 200)]
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(server.url + "/attachments", json={})
    assert _count(server, "POST", "/volumes") == 1 and _count(server, "POST", "/attachments") == 1


def test_a_post_refused_with_503_is_sent_again(server, http):
    server.script["/volumes"] = [("status", 503), ("status", 202)]
    assert http.post(server.url + "/volumes", json={}).status_code == 202
    assert _count(server, "POST", "/volumes") == 2


def test_a_post_gets_the_time_its_retries_would_have_had(server, http):
    server.script["/volumes"] = [("slow", 0.5)]  # above the 0.3 s of a GET, below 3 * 0.3 s
    assert http.post(server.url + "/volumes", json={}).status_code == 200
    assert _count(server, "POST", "/volumes") == 1


def test_a_token_request_lost_on_the_way_back_is_asked_again(server, http):
    server.script["/identity/v3/auth/tokens"] = [("reset",), ("status", 201)]
    assert http.post(server.url + "/identity/v3/auth/tokens", json={}).status_code == 201


def test_a_connection_refused_is_retried_for_any_method(http):
    # A port nothing listens on: never sent, so even a POST may be tried again.
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError, match="Max retries exceeded"):
        http.post(f"http://127.0.0.1:{port}/volumes", json={})
    assert time.monotonic() - started >= 1.0  # the backoff before the last try


# -- timeouts and the caller's deadline ---------------------------------------------

def test_request_timeouts_by_method_and_within_the_deadline():
    adapter = CloudHTTPAdapter(timeout=10, retries=2)
    assert adapter.request_timeout("GET") == 10 and adapter.request_timeout("DELETE") == 10
    assert adapter.request_timeout("POST") == 30
    # A token request may be repeated, so it is tried like a GET.
    assert adapter.request_timeout("POST", url="http://k/identity/v3/auth/tokens") == 10
    assert adapter.request_timeout("GET", asked=4) == 4
    clock = FakeClock(100.0)
    with deadline(12, "Remove of volume 'v'", clock):
        # Three tries and the 1 s backoff fit in the 12 s left.
        assert adapter.request_timeout("GET") == pytest.approx((12 - 1) / 3)
        assert adapter.request_timeout("POST") == 12
        clock.now += 12
        with pytest.raises(Timeout, match="Remove of volume 'v' must answer within 12 s.*GET http://cloud/x was not sent"):
            adapter.request_timeout("GET", url="http://cloud/x?y=1")
    assert time_left() is None


def test_wait_until_stops_at_the_callers_deadline():
    clock = FakeClock()
    with deadline(30, "Mount of volume 'v'", clock):
        clock.now += 25
        with pytest.raises(Timeout, match=r"gave up after 5.0 s waiting for the disk: Mount of volume 'v' "
                                          r"must answer within 30 s and its time is up"):
            wait_until(lambda: None, 60, "the disk", clock)
    assert clock.now == pytest.approx(30)
    # Without a deadline the wait's own timeout holds.
    with pytest.raises(Timeout, match="gave up after 5 s waiting for x"):
        wait_until(lambda: None, 5, "x", FakeClock())


def test_nested_deadlines_keep_the_earlier_end():
    clock = FakeClock()
    with deadline(60, "outer", clock):
        with deadline(120, "inner", clock) as inner:
            assert inner.what == "outer" and time_left() == 60
        with deadline(10, "inner", clock):
            assert time_left() == 10
        assert time_left() == 60


def test_cloud_settings_are_checked():
    with pytest.raises(ConfigError, match="cloud_timeout"):
        StorageConfig(state_dir="/tmp/x", cloud=CloudConfig(), cloud_timeout=0)
    with pytest.raises(ConfigError, match="cloud_retries"):
        StorageConfig(state_dir="/tmp/x", cloud=CloudConfig(), cloud_retries=-1)
    with pytest.raises(ConfigError, match="above 60 s"):
        StorageConfig(state_dir="/tmp/x", cloud=CloudConfig(), cloud_timeout=30, cloud_retries=2)
    assert StorageConfig(state_dir="/tmp/x", cloud=CloudConfig()).cloud_timeout == 10


# -- tokens that expire early ---------------------------------------------------------

class _Plugin:
    def __init__(self, auth_ref):
        self.auth_ref = auth_ref

    def invalidate(self):
        if self.auth_ref:
            self.auth_ref = None
            return True
        return False


def test_a_401_is_retried_by_every_thread_that_meets_it():
    session = CloudSession()
    plugin = _Plugin("token")
    assert session.invalidate(plugin) is True  # the first thread invalidates
    # A second thread with the same 401 finds the token already gone: it
    # retries too, with the token the first one is fetching.
    assert session.invalidate(plugin) is True


# -- error messages ---------------------------------------------------------------------

@pytest.mark.parametrize("raised,expected", [
    (ks_exceptions.ConnectTimeout("Request to http://c/volume/v3/p/volumes?x=1 timed out"),
     "creating volume 'v': no answer from Cinder: timed out waiting for an answer (http://c/volume/v3/p/volumes)"),
    (ks_exceptions.ConnectFailure(
        "Unable to establish connection to http://c/volume/v3/p/volumes/detail: ('Connection aborted.', "
        "RemoteDisconnected('Remote end closed connection without response'))"),
     "creating volume 'v': no answer from Cinder: the connection was dropped before an answer came "
     "(http://c/volume/v3/p/volumes/detail)"),
    (ks_exceptions.ConnectFailure("Unable to establish connection to http://c/identity/v3/auth/tokens: "
                                  "Connection refused"),
     "creating volume 'v': no answer from Keystone: the connection was refused (http://c/identity/v3/auth/tokens)"),
])
def test_no_answer_says_what_happened_in_a_few_words(raised, expected):
    with pytest.raises(CloudError) as err:
        with translate_errors("creating volume 'v'"):
            raise raised
    assert str(err.value) == expected


def test_no_answer_without_a_url():
    assert no_answer(Exception("boom"), "Nova") == "no answer from Nova: the request failed"


# -- devcloud: the fault hooks the matrix uses ------------------------------------------

def test_an_expire_tokens_fault_invalidates_every_token_and_answers_401(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    try:
        faults = FaultInjector()
        identity = Identity(store, lambda: "http://127.0.0.1:1", faults)
        token, _ = identity._issue(identity.project_id, ["password"])
        assert identity.validate(token) is not None
        faults.add("volume.get", expire_tokens=True)
        resp = apply_fault(faults, "volume.get", cinder_error)
        assert resp.status == 401 and "WWW-Authenticate" in resp.headers
        assert identity.validate(token) is None  # expired with all the others
        fresh, _ = identity._issue(identity.project_id, ["password"])
        assert identity.validate(fresh) is not None
        assert apply_fault(faults, "volume.get", cinder_error) is None  # used up
        # The expiry survives a restart of the cloud (the key is in the store).
        assert Identity(store, lambda: "http://127.0.0.1:1", None).validate(token) is None
    finally:
        store.close()


def test_volume_status_faults_let_the_call_through_and_are_taken_by_the_service():
    faults = FaultInjector()
    fault = faults.add("volume.create", volume_status="error")
    assert fault.status is None
    assert faults.take("volume.create") is None  # the request itself is served
    assert apply_fault(faults, "volume.create", cinder_error) is None
    assert faults.take_volume_status("volume.create") == "error"
    assert faults.take_volume_status("volume.create") is None
    assert faults.seen() == {"volume.create": 1}  # the requests served, per operation
    with pytest.raises(ValueError, match="volume_status faults work on"):
        faults.add("volume.get", volume_status="error")
    with pytest.raises(ValueError, match="takes no status"):
        faults.add("volume.create", volume_status="error", status=500)
    assert faults.add("volume.create").status == 500  # the default stays
