"""Fuzz the plugin socket: at least 6,000 generated requests to a real
fuxi-server on devcloud, sent as raw HTTP/1.1 over its unix socket.

The requests: every plugin path, unknown paths and wrong methods; bodies that
are random bytes, not JSON, JSON that is not an object, too deep or with
numbers too long to convert; objects whose Name is of the wrong type, huge,
unicode, with slashes, NUL or `..`; Opts of the wrong type or with random keys
and values (shell metacharacters, mkfs and mount option injection attempts);
extra, missing and wrongly typed fields (ID too).

What must hold for every answer: a status below 500 unless the body is JSON
with a non-empty Err; a JSON body holding "Err" (or the documented success
shape of the call); no traceback. And after the run: the server (one worker,
never restarted) still answers Plugin.Activate; the cloud holds only volumes
and shares whose Create was accepted; no mount point or directory under the
mount root belongs to a rejected request; after clean-up, nothing is left.

The request mix leans on rejected input and on Get/Path/List of random names,
which cost at most a cloud lookup; real creates (and so real attaches, mkfs and
mounts) are kept to a handful of names and capped.
"""

import collections
import json
import os
import re
import socket
import time
import urllib.parse

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.functional.harness import mounted_under, ok

CLOUD_KINDS = ("devcloud",)

TOTAL_REQUESTS = 6_000
# The only names a Create may succeed for; every other Create name is invalid.
POOL_NAMES = tuple(f"fz{i}" for i in range(6))
MAX_REAL_CREATES = 30
MOUNT_IDS = ("a" * 64, "c1", "c2", "")

ROUTES = (
    "/Plugin.Activate",
    "/VolumeDriver.Create",
    "/VolumeDriver.Remove",
    "/VolumeDriver.Mount",
    "/VolumeDriver.Unmount",
    "/VolumeDriver.Path",
    "/VolumeDriver.Get",
    "/VolumeDriver.List",
    "/VolumeDriver.Capabilities",
    "/fuxi/pool/status",
    "/fuxi/pool/fill",
    "/fuxi/pool/drain",
)
# Get, Path and List (cheap: catalog or one cloud lookup) are asked most.
ROUTE_WEIGHTS = {"/VolumeDriver.Get": 6, "/VolumeDriver.Path": 4, "/VolumeDriver.List": 2,
                 "/VolumeDriver.Create": 6, "/VolumeDriver.Mount": 2, "/VolumeDriver.Unmount": 2,
                 "/VolumeDriver.Remove": 2}
WEIGHTED_ROUTES = tuple(r for r in ROUTES for _ in range(ROUTE_WEIGHTS.get(r, 1)))
NAMED_ROUTES = {"/VolumeDriver.Create", "/VolumeDriver.Remove", "/VolumeDriver.Mount",
                "/VolumeDriver.Unmount", "/VolumeDriver.Path", "/VolumeDriver.Get"}
# The documented naming rule (README), written out here independently of fuxi's own check.
VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
TRACEBACK_MARKS = ("Traceback", 'File "')

# -- strategies ----------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(max_size=20))
# One level of nesting is enough to be "the wrong type", and keeps generation cheap.
json_values = (json_scalars | st.lists(json_scalars, max_size=3)
               | st.dictionaries(st.text(max_size=6), json_scalars, max_size=3))
wrong_types = (st.booleans() | st.integers() | st.floats() | st.lists(json_scalars, max_size=3)
               | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3))

ODD_NAMES = (
    "", " ", ".", "..", "...", "../x", "x/..", "../../etc/passwd", "/", "/etc", "a/b", "a\\b",
    "a\x00b", "\x00", "v\n", "v\r\nX: y", "\t", " v", "v ", "-v", "--help", "-rf", ".v", "_v", "v..w",
    "v;rm -rf /", "$(reboot)", "`id`", "v|cat", "v&&true", "v>x", "*", "?", "~root", "%2e%2e", "%00",
    "é", "名前", "\u202ev", "\ufeffv", "\ud800", "𝔳", "v\u0000", "v" * 256, "fz0/..", "fz0\x00",
    "FZ0 ", "fz0\n", "null", "None", "true", "CON", "lost+found",
)
NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
valid_names = st.builds(
    lambda first, rest: (first + rest).replace("..", "._"),
    st.sampled_from(NAME_START), st.text(alphabet=NAME_START + "_.-", max_size=40),
)
huge_strings = st.tuples(st.sampled_from("v.1/\x00é"), st.integers(256, 200_000)).map(lambda t: t[0] * t[1])
odd_text = st.text(alphabet=st.sampled_from("/.\x00 \n-_aZ9;$`|&é"), min_size=1, max_size=30)
any_names = st.one_of(
    st.sampled_from(POOL_NAMES), valid_names, st.sampled_from(ODD_NAMES), huge_strings, odd_text,
    st.text(min_size=1, max_size=60), wrong_types, st.none(),
)


def documented_valid(name) -> bool:
    return isinstance(name, str) and bool(VALID_NAME.fullmatch(name)) and ".." not in name


# A Create may only name a pool name or an invalid one: real creates stay few.
create_names = st.one_of(
    st.sampled_from(POOL_NAMES),
    st.one_of(st.sampled_from(ODD_NAMES), huge_strings, odd_text, st.text(min_size=1, max_size=60),
              wrong_types, st.none()).filter(lambda n: not documented_valid(n)),
)

OPTION_KEYS = ("size", "type", "availability_zone", "fstype", "backend", "proto", "share_type",
               "share_network", "share_id", "volume_id", "snapshot", "backup", "source", "multiattach",
               "preempt", "Size", "fs_type", "mkfs_options", "mount_options",
               "options", "o", "-o", "", " size", "size ", "size\x00")
INJECTIONS = (
    "ext4; rm -rf /", "ext4 && reboot", "ext4|cat /etc/shadow", "$(reboot)", "`reboot`", "ext4\n",
    "ext4\x00", "ext4\x00xfs", "-F", "--force", "-O ^has_journal", "ext4 -E nodiscard", "xfs -f",
    "ext4 /dev/sda", "/dev/sda", "rw,exec", "rw,suid,dev", "defaults,exec", "exec", "vers=4.1,exec",
    "nfs -o exec", "glusterfs -o remount", "-o exec", "--bind /", "1; rm -rf /", "1 && reboot",
    "1\n2", "1 ", " 1", "1e3", "0x10", "1_000", "+1", "-1", "0", "1.0", "١", "१", "²", "99999999999",
    "9" * 5000, "1" * 4301, "EXT4", " ext4", "ext4\t", "Ext4", "btrfs", "ext2", "vfat", "nfs; reboot",
    "NFS\n", "cinder;", "manila\x00", "../..", "a" * 300, "\u202e", "\ud800",
)
VALID_VALUES = ("1", "2", "ext4", "xfs", "cinder", "manila", "nfs", "cephfs", "glusterfs", "az1", "t1")
long_numbers = st.integers(4000, 20_000).map(lambda n: "9" * n)  # beyond int()'s digit limit
option_values = st.one_of(
    st.sampled_from(INJECTIONS), st.sampled_from(VALID_VALUES), st.text(max_size=30), huge_strings,
    long_numbers,
)
option_maps = st.dictionaries(
    st.sampled_from(OPTION_KEYS) | st.text(max_size=20) | huge_strings,
    option_values | wrong_types | st.none(),
    max_size=4,
)
VALID_OPTIONS = {
    "cinder": {"size": ("1", "2"), "fstype": ("ext4", "xfs"), "type": ("t1",), "availability_zone": ("az1",),
               "volume_id": ("0f6e7c1a-6d0b-4a51-9b43-3d2f9a1c0e55",), "snapshot": ("s1",), "backup": ("b1",),
               "source": ("v1",), "multiattach": ("exclusive", "shared"), "preempt": ("true", "false")},
    "manila": {"size": ("1",), "proto": ("nfs", "glusterfs", "cephfs"), "share_type": ("t1",),
               "share_network": ("n1",), "availability_zone": ("az1",), "share_id": ("0f6e",)},
}


@st.composite
def nearly_valid_options(draw):
    """Options of one backend, valid but for one value: the fuzz reaches each value's own check."""
    backend = draw(st.sampled_from((None, "cinder", "manila")))
    known = VALID_OPTIONS[backend or "cinder"]
    keys = draw(st.lists(st.sampled_from(sorted(known)), min_size=1, max_size=3, unique=True))
    options = {key: draw(st.sampled_from(known[key])) for key in keys}
    if backend is not None:
        options["backend"] = backend
    bent = draw(st.sampled_from(sorted(options)))
    options[bent] = draw(option_values if draw(st.integers(0, 4)) else (wrong_types | st.none()))
    return options


opts = st.one_of(st.none(), option_maps, nearly_valid_options(), nearly_valid_options(),
                 nearly_valid_options(), wrong_types, st.text(max_size=10))
caller_ids = st.one_of(st.sampled_from(MOUNT_IDS), st.text(max_size=70), huge_strings, wrong_types,
                       st.sampled_from(("a\x00b", "\n", "x" * 1025)))


@st.composite
def object_bodies(draw, route):
    """A JSON object as a plugin call might carry: fields missing, mistyped, extra."""
    body = {}
    if route in NAMED_ROUTES or draw(st.integers(0, 4)) == 0:
        if draw(st.integers(0, 9)):
            body["Name"] = draw(create_names if route == "/VolumeDriver.Create" else any_names)
    if route == "/VolumeDriver.Create" and draw(st.integers(0, 4)):
        body["Opts"] = draw(opts)
    if route in ("/VolumeDriver.Mount", "/VolumeDriver.Unmount") and draw(st.integers(0, 5)):
        body["ID"] = draw(caller_ids)
    if route.startswith("/fuxi/pool/") and draw(st.booleans()):
        body.update({"Pool": draw(json_values), "Count": draw(json_values)})
    extra = draw(st.dictionaries(st.sampled_from(("name", "NAME", "Opts", "ID", "Err", "Volume", "x"))
                                 | st.text(max_size=10), json_values, max_size=3))
    for key, value in extra.items():
        if key not in body and not (route == "/VolumeDriver.Create" and key in ("Name", "Opts")):
            body[key] = value
    return body


def encode_json(value, ascii_only, newline) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only) + ("\n" if newline else "")
    return text.encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw, route):
    kind = draw(st.integers(0, 99))
    if kind < 70:  # a JSON object, dockerd's shape with the fields fuzzed
        value = draw(object_bodies(route))
        return encode_json(value, draw(st.booleans()), draw(st.booleans()))
    if kind < 76:
        return draw(st.binary(max_size=300))
    if kind < 82:  # JSON that is not an object
        value = draw(json_scalars | st.lists(json_values, max_size=4))
        return encode_json(value, True, draw(st.booleans()))
    if kind < 86:  # a valid object cut short
        whole = encode_json(draw(object_bodies(route)), True, False)
        return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    if kind < 89:  # nesting deeper than any parser's recursion
        depth = draw(st.integers(50, 200_000))
        return draw(st.sampled_from((b"[", b'{"Name":', b'{"Opts":'))) * depth
    if kind < 92:  # numbers too long to convert
        digits = draw(st.integers(4000, 50_000))
        field = draw(st.sampled_from((b'{"Name": %s}', b'{"Name": "fz0", "Opts": {"size": %s}}',
                                      b'{"Name": "fz0", "ID": %s}', b"%s", b'{"Count": %s}')))
        return field % (b"9" * digits)
    if kind < 95:  # other encodings, BOMs, duplicate keys, NaN
        return draw(st.sampled_from((
            json.dumps({"Name": "fz0"}).encode("utf-16"),
            json.dumps({"Name": "fz0"}).encode("utf-32-le"),
            b"\xef\xbb\xbf" + json.dumps({"Name": "fz0"}).encode(),
            b'{"Name": "fz0", "Name": 1}', b'{"Name": 1, "Name": "fz0"}',
            b'{"Name": NaN}', b'{"Name": "fz0", "Opts": {"size": Infinity}}', b'{"Name": -Infinity}',
            b'{"Name": "fz\\u0000"}', b'{"Name": "\\ud800\\udc00"}', b"\x00" * 64, b"\xff\xfe\xfd",
            b"{}" * 3, b"{} {}", b"null", b"\n", b" \t\r\n ",
        )))
    if kind < 97:  # a big body
        size = draw(st.integers(100_000, 2_000_000))
        return b'{"Name": "' + b"a" * size + b'"}'
    return b""


@st.composite
def targets(draw, route):
    """The request target for a route: mostly as dockerd writes it, sometimes bent."""
    kind = draw(st.integers(0, 19))
    if kind < 15:
        return route
    if kind == 15:
        return route + "?" + urllib.parse.quote(draw(st.text(max_size=20)), safe="=&")
    if kind == 16:
        return route.replace(".", "%2E")
    return draw(st.sampled_from((route + "/", "/" + route, route.lower(), route.upper(),
                                 route + "%00", route + "/..", route.replace("/", "/./", 1))))


# Origin-form targets only: what gunicorn's own parser refuses (e.g. "*") never reaches
# fuxi and is answered by gunicorn in HTML; dockerd never sends such a target.
unknown_paths = st.one_of(
    st.text(max_size=40).map(lambda t: "/" + urllib.parse.quote(t, safe="/.")),
    st.sampled_from(("/", "/VolumeDriver.", "/VolumeDriver.Nope", "/Plugin.Deactivate", "/Plugin",
                     "/VolumeDriver.Create/../VolumeDriver.Remove", "/fuxi", "/fuxi/pool",
                     "/fuxi/pool/nope", "/..", "/../../etc/passwd", "/%2e%2e/%2e%2e", "/%ff%fe",
                     "/static/x", "/favicon.ico", "/VolumeDriver.List/extra")),
)
methods_not_post = st.sampled_from(("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"))
content_types = st.one_of(
    st.none(), st.none(), st.none(),
    st.sampled_from(("application/json", "text/plain", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "application/json; charset=latin-1", "")),
)


class Request(collections.namedtuple("Request", "method target route body content_type chunked")):
    def __repr__(self):
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"...(%d bytes)" % len(self.body)
        return (f"Request({self.method} {self.target!r} route={self.route} ct={self.content_type!r} "
                f"chunked={self.chunked} body={body!r})")


@st.composite
def requests(draw):
    kind = draw(st.integers(0, 99))
    if kind < 86:
        method, route = "POST", draw(st.sampled_from(WEIGHTED_ROUTES))
        target = draw(targets(route))
    elif kind < 93:
        method, route = "POST", None
        target = draw(unknown_paths)
    else:
        method, route = draw(methods_not_post), draw(st.sampled_from(ROUTES))
        target = route
    body = draw(bodies(route or "/VolumeDriver.Get"))
    return Request(method, target, route, body, draw(content_types), draw(st.integers(0, 9)) == 0)


# -- a small HTTP/1.1 client speaking dockerd's bytes ---------------------------------


class Answer(collections.namedtuple("Answer", "status head body")):
    pass


class SocketClient:
    """One kept-alive connection to the plugin socket; requests as dockerd sends them
    (an empty Host, its Accept type, no Content-Type), answers read by Content-Length
    or chunks."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _read_until(self, marker):
        while marker not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exactly(self, n):
        while len(self.buf) < n:
            self._recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_chunked(self):
        data = b""
        while True:
            size = int(self._read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self._read_until(b"\r\n")
                return data
            data += self._read_exactly(size)
            self._read_exactly(2)

    @staticmethod
    def encode(req: Request) -> bytes:
        lines = [f"{req.method} {req.target} HTTP/1.1", "Host: ", "User-Agent: Go-http-client/1.1",
                 "Accept: application/vnd.docker.plugins.v1.2+json"]
        if req.content_type is not None:
            lines.append(f"Content-Type: {req.content_type}")
        if req.chunked:
            lines.append("Transfer-Encoding: chunked")
            body = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                            for part in (req.body[i:i + 4096] for i in range(0, len(req.body), 4096)))
            body += b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(req.body)}")
            body = req.body
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def send(self, req: Request) -> Answer:
        raw = self.encode(req)
        early_answer = False
        for attempt in (1, 2):
            fresh = self.sock is None
            if fresh:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(130)
                self.sock.connect(self.path)
                self.buf = b""
            try:
                try:
                    self.sock.sendall(raw)
                except (BrokenPipeError, ConnectionResetError):
                    # The server may answer before reading a body it does not need, and
                    # then close (as gunicorn does for big unread bodies): read its answer.
                    if not fresh:
                        raise
                    early_answer = True
                head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
                break
            except ConnectionError:
                # A kept-alive connection the server had closed (idle): once more on a new one.
                self.close()
                if fresh or attempt == 2:
                    raise
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if req.method == "HEAD":
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exactly(int(headers["content-length"]))
        else:  # read to the end
            try:
                while True:
                    self._recv()
            except ConnectionError:
                pass
            body, self.buf = self.buf, b""
            self.close()
        if early_answer or headers.get("connection", "").lower() == "close":
            self.close()
        return Answer(status, "\r\n".join(head), body)


# -- checks ------------------------------------------------------------------------------


def route_of(req: Request):
    """The plugin call the target names after decoding, as the server routes it, or None."""
    # gunicorn hands "//X" to the app as "/X"; either answer is fine, so both count as X.
    path = re.sub("/+", "/", urllib.parse.unquote(req.target.split("?", 1)[0]))
    return path if req.method == "POST" and path in ROUTES else None


def request_object(req: Request) -> dict:
    """The request body as the server reads it, if it is a JSON object; else {}."""
    try:
        body = json.loads(req.body)
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def request_name(req: Request):
    return request_object(req).get("Name")


def check_answer(req: Request, ans: Answer, mount_root):
    text = ans.body.decode("utf-8", "replace")
    for mark in TRACEBACK_MARKS:
        assert mark not in text and mark not in ans.head, f"a traceback in the answer to {req!r}: {text[:2000]}"
    if req.method == "HEAD":
        assert ans.status < 500, f"{req!r} answered {ans.status}"
        return None
    try:
        data = json.loads(ans.body)
    except ValueError:
        raise AssertionError(f"{req!r} answered {ans.status} with a body that is not JSON: {text[:500]!r}")
    assert isinstance(data, dict), f"{req!r} answered {ans.status} with {text[:500]!r}"
    if ans.status >= 500:
        assert isinstance(data.get("Err"), str) and data["Err"], f"{req!r} answered {ans.status}: {data}"
    assert "internal error" not in str(data.get("Err")), f"{req!r} hit an unexpected error: {data}"
    route = route_of(req)
    if ans.status != 200:
        assert isinstance(data.get("Err"), str) and data["Err"], f"{req!r} answered {ans.status}: {data}"
        return route
    assert route is not None, f"{req!r} is no plugin call but answered 200: {data}"
    if route == "/Plugin.Activate":
        assert data == {"Implements": ["VolumeDriver"]}, data
    elif route == "/VolumeDriver.Capabilities":
        assert data == {"Capabilities": {"Scope": "global"}}, data
    elif route in ("/VolumeDriver.Create", "/VolumeDriver.Remove", "/VolumeDriver.Unmount"):
        assert data == {"Err": ""}, data
    elif route in ("/VolumeDriver.Mount", "/VolumeDriver.Path"):
        assert set(data) == {"Mountpoint", "Err"} and data["Err"] == "", data
        if route == "/VolumeDriver.Mount" or data["Mountpoint"]:
            assert data["Mountpoint"].startswith(mount_root + "/"), data
    elif route == "/VolumeDriver.Get":
        assert set(data) == {"Volume", "Err"} and data["Err"] == "", data
        assert data["Volume"]["Name"] == request_name(req), (req, data)
    elif route == "/VolumeDriver.List":
        assert set(data) == {"Volumes", "Err"} and data["Err"] == "", data
        assert all(set(v) == {"Name", "Mountpoint"} for v in data["Volumes"]), data
    elif route.startswith("/fuxi/pool/"):
        raise AssertionError(f"no pool is configured, yet {req!r} answered 200: {data}")
    if route == "/VolumeDriver.Create":
        name = request_name(req)
        assert documented_valid(name), (
            f"a Create of a name outside the documented rule was accepted: {req!r}")
    return route


def cloud_names(cloud):
    names = [v.name for v in cloud.sdk.block_storage.volumes(details=True)]
    if cloud.has_manila():
        names += [s.name for s in cloud.sdk.shared_file_system.shares(details=True)]
    return names


def test_fuzzed_requests_never_crash_leak_or_trace(plugin_factory, cloud):
    """The first examples are the bugs this fuzz found (each answered 500 "internal
    error", or an empty 200 for OPTIONS); then TOTAL_REQUESTS generated ones."""
    plugin = plugin_factory().start()
    mount_root = os.path.join(plugin.state_dir, "mounts")
    assert cloud_names(cloud) == []
    client = SocketClient(plugin.socket)
    sent = collections.Counter()
    statuses = collections.Counter()
    succeeded = collections.Counter()
    spent = collections.Counter()  # seconds waiting for answers, by route
    slowest = []
    began = time.monotonic()
    accepted = set()  # names a Create succeeded for
    live = set()  # ... and not removed since
    mounts = collections.Counter()  # (name, ID) of successful Mounts not unmounted yet
    real_creates = [0]

    @settings(max_examples=TOTAL_REQUESTS, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate, Phase.shrink),
              print_blob=True)
    @given(req=requests())
    @example(req=Request("OPTIONS", "/VolumeDriver.Create", "/VolumeDriver.Create", b"{}", None, False))
    @example(req=Request("POST", "/VolumeDriver.Get", "/VolumeDriver.Get", b"[" * 100_000, None, False))
    @example(req=Request("POST", "/VolumeDriver.Get", "/VolumeDriver.Get", b'{"Name": ' + b"9" * 5000 + b"}",
                         None, False))
    @example(req=Request("POST", "/VolumeDriver.Create", "/VolumeDriver.Create",
                         b'{"Name": "fz0", "Opts": {"size": "%s"}}' % (b"9" * 5000), None, False))
    def fuzz(req):
        name = request_name(req)
        if route_of(req) == "/VolumeDriver.Create" and name in POOL_NAMES and name not in live \
                and real_creates[0] >= MAX_REAL_CREATES:
            # Enough real volumes made: ask about the name instead.
            req = req._replace(target="/VolumeDriver.Get", route="/VolumeDriver.Get")
        started = time.monotonic()
        ans = client.send(req)
        took = time.monotonic() - started
        spent[req.route or "unknown"] += took
        slowest.append((took, repr(req)[:160]))
        slowest.sort(reverse=True)
        del slowest[5:]
        sent[req.route or "unknown"] += 1
        statuses[ans.status] += 1
        route = check_answer(req, ans, mount_root)
        if ans.status != 200 or route is None:
            return
        succeeded[route] += 1
        body = request_object(req)
        if route == "/VolumeDriver.Create":
            if name not in live:
                real_creates[0] += 1
            accepted.add(name)
            live.add(name)
        elif route == "/VolumeDriver.Remove":
            live.discard(name)
        elif route in ("/VolumeDriver.Mount", "/VolumeDriver.Unmount"):
            key = (name, body.get("ID") or "")  # no ID and "" are one caller to fuxi
            if route == "/VolumeDriver.Mount":
                mounts[key] += 1
            elif mounts[key]:
                mounts[key] -= 1

    try:
        fuzz()
    finally:
        client.close()
        print(f"sent {sum(sent.values())} requests: {dict(sent)}; statuses {dict(statuses)}; "
              f"succeeded {dict(succeeded)}; "
              f"{time.monotonic() - began:.1f} s in all, answers took "
              f"{ {k: round(v, 1) for k, v in spent.items()} }; slowest {slowest}; "
              f"{real_creates[0]} real creates of {sorted(accepted)}")

    assert sum(sent.values()) >= TOTAL_REQUESTS
    # The server is up, on the worker it started with.
    assert plugin.process.poll() is None
    assert ok(plugin.call("Plugin.Activate", b"")) == {"Implements": ["VolumeDriver"]}
    log = plugin.log(tail=None)
    assert log.count("Booting worker") == 1, log[-5000:]
    # Nothing made by a rejected request: every volume and share of the cloud, and
    # every directory under the mount root, belongs to an accepted Create.
    leaked = [n for n in cloud_names(cloud) if n not in accepted]
    assert not leaked, f"the cloud holds {leaked}, which no accepted Create made"
    strays = [d for d in (os.listdir(mount_root) if os.path.isdir(mount_root) else []) if d not in accepted]
    assert not strays, f"mount root entries of rejected requests: {strays}"
    assert all(os.path.basename(m) in accepted for m in mounted_under(mount_root))

    # Clean up what the accepted requests made; then nothing is left.
    for (name, caller), count in mounts.items():
        for _ in range(count):
            ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": caller}))
    for name in sorted(accepted):
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
    assert cloud_names(cloud) == []
    assert mounted_under(mount_root) == []
    assert mounted_under(plugin.workdir) == []
