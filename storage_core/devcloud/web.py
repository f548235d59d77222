"""Plain request/response values shared by the Keystone, Cinder and Nova emulations.

The HTTP server (server.py) turns each HTTP request into a :class:`Request`
and writes back whatever :class:`Response` the service returns, so the service
modules know nothing about sockets and can be called directly in unit tests.
"""

import json
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus

# A client names the call it serves with this header; OpenStack logs it as the
# global request id next to the service's own (answered in the same header).
GLOBAL_REQUEST_ID_HEADER = "X-OpenStack-Request-ID"

# Cinder's error bodies are {"<faultName>": {"code": N, "message": ...}}; the
# names come from its wsgi Fault class, anything else is "computeFault".
_CINDER_FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict  # name -> list of values, as urllib.parse.parse_qs gives
    headers: object  # anything with .get(name) that ignores case
    body: bytes = b""
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4()}")

    def param(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self):
        """The body as JSON; raises ValueError when it is not."""
        if not self.body.strip():
            raise ValueError("empty body")
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int
    body: object = None  # dict/list -> JSON, bytes -> as is, None -> empty
    headers: dict = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict]:
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
            return self.body.encode("utf-8"), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode("utf-8"), headers


class RequestLog:
    """The requests devcloud was sent (thread-safe): how many per
    ``"METHOD /path"``, and the last RECENT of them with the request ids each
    had: the global one its client sent (``X-OpenStack-Request-ID``, None
    without one) and devcloud's own.

    Tests read it (``GET /devcloud/requests``) to prove a client reuses its
    token and catalog instead of fetching them per call, and to tie a
    client's call to the cloud requests it made, as an operator ties them
    in a real cloud's logs.
    """

    RECENT = 2000

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = Counter()
        self._recent = deque(maxlen=self.RECENT)

    def add(self, method: str, path: str, global_request_id: str | None = None,
            request_id: str | None = None) -> None:
        with self._lock:
            self._counts[f"{method} {path}"] += 1
            self._recent.append({"method": method, "path": path, "global_request_id": global_request_id,
                                 "request_id": request_id})

    def snapshot(self) -> dict:
        """{"METHOD /path": how many}, since the start or the last clear()."""
        with self._lock:
            return dict(self._counts)

    def recent(self, global_request_id: str | None = None) -> list[dict]:
        """The last requests, oldest first; only those sent with `global_request_id` if given."""
        with self._lock:
            recent = list(self._recent)
        if global_request_id is None:
            return recent
        return [r for r in recent if r["global_request_id"] == global_request_id]

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._recent.clear()


class Route:
    """One API call: method, path pattern (``*`` matches one segment), handler.

    ``operation`` names it for fault injection; ``min_version`` is the
    microversion it appeared at (None: always there).
    """

    def __init__(self, method, pattern, handler, operation=None, min_version=None):
        self.method = method
        self.pattern = pattern.split("/")
        self.handler = handler
        self.operation = operation
        self.min_version = min_version

    def match(self, parts):
        """The ``*`` segments of ``parts`` if they match, else None."""
        if len(parts) != len(self.pattern):
            return None
        args = []
        for want, got in zip(self.pattern, parts):
            if want == "*":
                args.append(got)
            elif want != got:
                return None
        return args


def find_route(routes, method, parts):
    """(route, args) of the first route matching, or (None, None)."""
    for route in routes:
        if route.method == method:
            args = route.match(parts)
            if args is not None:
                return route, args
    return None, None


class HttpError(Exception):
    """Raised anywhere in a service to answer with ``response`` at once."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


class ResetConnection(Exception):
    """Drop the client's connection without answering (fault injection)."""


def cinder_fault_name(status: int) -> str:
    return _CINDER_FAULT_NAMES.get(status, "computeFault")


def cinder_error(status: int, message: str) -> Response:
    return Response(status, {cinder_fault_name(status): {"code": status, "message": message}})


def keystone_error(status: int, message: str, title: str | None = None) -> Response:
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    return Response(status, {"error": {"code": status, "title": title, "message": message}})


def utcnow() -> datetime:
    # Naive UTC datetimes, as Cinder's database hands them to its views.
    return datetime.now(timezone.utc).replace(tzinfo=None)


def cinder_time(value: datetime | None = None) -> str:
    """Cinder's timestamp format: ``2026-11-26T21:33:59.000000``."""
    return (value or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%f")


def keystone_time(value: datetime) -> str:
    """Keystone's token timestamps: ``2026-11-26T21:33:59.000000Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
