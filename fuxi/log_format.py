"""fuxi-server's log lines: text for people, or one JSON object a line for a log
pipeline (log_format = json). Either way, a line written while a plugin call is
served carries the call's request id, the one its cloud requests carry
(storage_core.request_context), and secrets are masked (fuxi.log_redaction).

    text: 2025-06-01 10:00:00,123 4242 [req-1c9e...] INFO fuxi.calls: call=Create volume=db ...
    json: {"time": "2025-06-01T10:00:00.123Z", "level": "INFO", "logger": "fuxi.calls",
           "request_id": "req-1c9e...", "message": "call=Create volume=db ...", "call": "Create", ...}

Only light modules here: the gunicorn master imports this one.
"""

import json
import logging
import sys
from datetime import datetime, timezone

from gunicorn.glogging import Logger as GunicornBaseLogger

from fuxi import log_redaction
from storage_core.request_context import current_request_id

LOG_FORMATS = ("text", "json")
# The request tag stands before the level, so "LEVEL logger: message" reads as it
# always did (benchmarks/ read "storage_core.timing: step ...", tests "DEBUG keystoneauth").
TEXT_FORMAT = "%(asctime)s %(process)d %(request_tag)s%(levelname)s %(name)s: %(message)s"
# A record's `fields` (a dict given with extra=) become keys of its JSON object.
FIELDS_ATTRIBUTE = "fields"
_JSON_KEYS = ("time", "level", "logger", "process", "thread", "request_id", "message", "exception", "stack")


class RequestIdFilter(logging.Filter):
    """A handler filter: stamp each record with the request id of the call that
    logged it (None outside any call), read in the logging thread itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        record.request_tag = f"[{record.request_id}] " if record.request_id else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or a
    traceback are escaped, so a line is always a whole record)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "request_id": getattr(record, "request_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text  # masked already by the SecretFilter
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in (getattr(record, FIELDS_ATTRIBUTE, None) or {}).items():
            if key not in _JSON_KEYS:
                # The message went through the SecretFilter; fields are masked here.
                entry[key] = log_redaction.mask_secrets(value) if isinstance(value, str) else value
        # ASCII only (other characters escaped): a line reads the same whatever the locale.
        return json.dumps(entry, default=str)


def formatter_for(log_format) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT, defaults={"request_tag": ""})
    raise ValueError(f"log_format = {log_format!r} is not one of: {', '.join(LOG_FORMATS)}")


def configure(level, log_format="text") -> None:
    """fuxi-server's logging: one stderr handler on the root logger, in
    `log_format`, with request ids and secrets masked. Called again (in the
    worker, or with another format) it changes that handler, adding none."""
    formatter = formatter_for(log_format)
    root = logging.getLogger()
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    handler = next((h for h in root.handlers if getattr(h, "_fuxi", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._fuxi = True
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(formatter)
    # Python's warnings (a library's DeprecationWarning at import) as records of
    # logger py.warnings, not raw text in the middle of JSON lines.
    logging.captureWarnings(True)
    # At DEBUG keystoneauth logs response bodies whole (a cephx access_key among
    # them): mask every secret-named field, whoever logs it.
    log_redaction.install(root)


def route_gunicorn_logs_to_root() -> None:
    """gunicorn's own lines ("Booting worker", "Worker exiting", a request that
    failed in gunicorn) through fuxi's handler: same format, request ids and
    secret masking. gunicorn gives its error logger a handler of its own, in
    its own text format; that one goes."""
    if not any(getattr(h, "_fuxi", False) for h in logging.getLogger().handlers):
        return  # fuxi's handler is not there (a test, a library use): keep gunicorn's
    error_log = logging.getLogger("gunicorn.error")
    for handler in list(error_log.handlers):
        if getattr(handler, "_gunicorn", False):
            error_log.removeHandler(handler)
    error_log.propagate = True


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger_class for fuxi-server: its lines in fuxi's format.

    gunicorn's master logs its start ("Starting gunicorn", "Listening at")
    before the worker exists, so only its own logger class can route those.
    """

    def setup(self, cfg):
        super().setup(cfg)
        route_gunicorn_logs_to_root()
