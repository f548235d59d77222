"""One log line per plugin call, and the call's request id.

Each call dockerd (or the fuxi CLI) makes is served under a new request id
(storage_core.request_context): every line logged while it is served carries
it, and so does every cloud request it makes (X-OpenStack-Request-ID). When
the call ends, one line says what it was and how it went:

    call=Mount volume=db caller=4f1e... outcome=ok duration=0.412s
    call=Get volume=nope caller=- outcome=error(404) duration=0.003s error="volume 'nope' does not exist"

at INFO for a success and WARNING for an error. Only the volume name and the
caller id are taken from the body, never the rest of it (Opts may hold
anything). With metrics on (fuxi.metrics), the same facts feed them.
"""

import json
import logging
import time
from contextlib import ExitStack

from flask import g, request

from fuxi.log_format import FIELDS_ATTRIBUTE
from storage_core.request_context import serving_request

LOG = logging.getLogger("fuxi.calls")

# Docker's bodies are a few hundred bytes; a larger one is read by the call
# alone (its volume is then logged as "-"), never held twice.
MAX_BODY_READ = 64 * 1024
# A volume name, caller id or error longer than this is cut in the line.
MAX_FIELD_CHARS = 256
UNKNOWN_CALL = "unknown"


def call_name(rule) -> str:
    """What a route is called in the line and in metrics: Create, Mount, Activate,
    fuxi.pool.status; `unknown` for a path or method fuxi does not serve
    (their number must not grow the metrics' label values)."""
    if rule is None:
        return UNKNOWN_CALL
    name = rule.rule.lstrip("/")
    for protocol_prefix in ("VolumeDriver.", "Plugin."):
        name = name.removeprefix(protocol_prefix)
    return name.replace("/", ".")


def install(app, metrics=None) -> None:
    """Serve each call of `app` under its own request id and log it when it ends;
    `metrics` (fuxi.metrics.PluginMetrics), if given, counts and times it."""
    if metrics is not None:
        for rule in app.url_map.iter_rules():
            if rule.endpoint != "static":
                metrics.expect_call(call_name(rule))

    @app.before_request
    def start_call():
        g.call_started = time.perf_counter()
        g.call_scope = ExitStack()
        g.call_scope.enter_context(serving_request())
        if metrics is not None:
            g.call_scope.enter_context(metrics.call_in_progress())
        # Kept for the line: the view reads the body again, from this copy.
        if _body_is_small():
            request.get_data(cache=True)

    @app.after_request
    def end_call(response):
        seconds = time.perf_counter() - g.call_started
        call = call_name(request.url_rule)
        volume, caller = _volume_and_caller()
        failed = response.status_code >= 400
        outcome = f"error({response.status_code})" if failed else "ok"
        fields = {"call": call, "volume": volume, "caller": caller, "outcome": "error" if failed else "ok",
                  "status": response.status_code, "duration_s": round(seconds, 6)}
        error = _error_text(response) if failed else None
        if error is not None:
            fields["error"] = _cut(error)
        LOG.log(logging.WARNING if failed else logging.INFO,
                "call=%s volume=%s caller=%s outcome=%s duration=%.3fs%s", call, _shown(volume), _shown(caller),
                outcome, seconds, f" error={json.dumps(_cut(error))}" if error is not None else "",
                extra={FIELDS_ATTRIBUTE: fields})
        if metrics is not None:
            metrics.observe_call(call, fields["outcome"], seconds)
        return response

    @app.teardown_request
    def leave_call(exc=None):
        scope = g.pop("call_scope", None)
        if scope is not None:
            scope.close()


def _body_is_small() -> bool:
    return request.content_length is not None and request.content_length <= MAX_BODY_READ


def _volume_and_caller():
    """Name and ID of the call's body, if it had them (None otherwise)."""
    if not _body_is_small():
        return None, None
    raw = request.get_data(cache=True)  # start_call's copy
    if not raw:
        return None, None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON: the call itself says so
        return None, None
    if not isinstance(body, dict):
        return None, None
    return _field(body.get("Name")), _field(body.get("ID"))


def _field(value):
    """A body's value as the line and the JSON fields hold it: a string, cut to size."""
    if value is None or isinstance(value, str):
        return None if value is None else _cut(value)
    return _cut(json.dumps(value))  # a wrong type, shown as sent (the call refuses it)


def _error_text(response):
    """The Err of an error answer (every error answer carries one, see fuxi.errors)."""
    try:
        body = json.loads(response.get_data())
    except (ValueError, RecursionError):
        return None
    err = body.get("Err") if isinstance(body, dict) else None
    return err if isinstance(err, str) and err else None


def _cut(text) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "..."


def _shown(value) -> str:
    """A name or id as it goes in the line: bare when it is a plain word, else
    quoted as JSON (a name with spaces, newlines or quotes cannot break the
    line or pass for another field); "-" when absent."""
    if value is None or value == "":
        return "-"
    if value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json.dumps(value)
