"""Keep secrets out of fuxi-server's log, at every level.

At DEBUG, keystoneauth logs the body of every cloud response ("RESP BODY: ...")
and of every request; it hashes token headers and leaves authentication bodies
out, but other bodies go out as they came. Manila's access rules carry the cephx
key of a client (``"access_key": "AQ..."``), Cinder's connection info may carry
CHAP or RBD secrets (``auth_password``, ``keyring``), and a repr of our own
records would print them too. A filter on the log handlers masks the value of
every field whose name says it is secret, in the message and in a traceback,
whichever library logged it.
"""

import logging
import re

MASK = "***"
# Field names that hold secrets: any name containing one of these words.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "access_key", "private_key",
                 "keyring", "credential")
_HINT = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)
_NAME = r"[\w.-]*?(?:" + "|".join(_SECRET_WORDS) + r")[\w.-]*"
_QUOTED = r"""(?P<v>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
_PATTERNS = (
    # "name": "value" (JSON) and 'name': 'value' (a Python dict's repr)
    re.compile(r"""(?P<k>(?P<q>["'])""" + _NAME + r"""(?P=q)\s*:\s*)""" + _QUOTED, re.IGNORECASE),
    # name='value' / name="value" (a dataclass's or keyword arguments' repr)
    re.compile(r"(?P<k>\b" + _NAME + r"\s*=\s*)" + _QUOTED, re.IGNORECASE),
    # name=value (a query string, a command-line option, key=value text)
    re.compile(r"(?P<k>\b" + _NAME + r"""\s*=\s*)(?P<v>[^\s,;&'"}\])]+)""", re.IGNORECASE),
)


def _mask_value(match) -> str:
    value = match.group("v")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return match.group("k") + quote + MASK + quote


def mask_secrets(text: str) -> str:
    """`text` with the value of every secret-named field replaced by ***."""
    if not text or not _HINT.search(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(_mask_value, text)
    return text


class SecretFilter(logging.Filter):
    """A handler filter: mask secrets in each record before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
            masked = mask_secrets(message)
            if masked != message:
                record.msg, record.args = masked, ()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = mask_secrets(record.exc_text)
            if record.stack_info:
                record.stack_info = mask_secrets(record.stack_info)
        except Exception:  # a record that cannot be formatted is the handler's to report
            pass
        return True


def install(logger=None) -> None:
    """Put the filter on every handler of `logger` (the root logger by default)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
