"""One rule for every failure: an HTTP status by kind and a {"Err": message} body.

dockerd shows the Err text to the user, so it must say what was wrong and what
to do; a traceback never leaves this process.
"""

import logging

from storage_core import errors as core

LOG = logging.getLogger(__name__)

_STATUS_BY_KIND = (
    (core.InvalidInput, 400),
    (core.NotFound, 404),
    (core.NotOwned, 409),
    (core.Conflict, 409),
    (core.Timeout, 504),
    (core.CloudError, 502),
)


class BadRequest(Exception):
    """The request itself (not the storage) was malformed."""


def error_response(exc: BaseException) -> tuple[dict, int]:
    if isinstance(exc, BadRequest):
        return {"Err": str(exc)}, 400
    if isinstance(exc, core.StorageError):
        for kind, status in _STATUS_BY_KIND:
            if isinstance(exc, kind):
                return {"Err": str(exc)}, status
        return {"Err": str(exc)}, 500
    LOG.exception("unexpected error")
    return {
        "Err": f"fuxi hit an internal error ({type(exc).__name__}); "
        "the fuxi-server log has the details"
    }, 500
