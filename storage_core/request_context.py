"""The request id of the call being served, carried to every cloud request it makes.

A caller (fuxi's Docker API, a CSI driver) opens one id per call it serves:

    with serving_request() as request_id:
        service.create(...)

and every cloud request made inside the block, in this thread or in a thread
started with ``in_this_context``, carries it as ``X-OpenStack-Request-ID``
(storage_core.factory's HTTP adapter adds the header). OpenStack services
take an inbound id of that exact form as the *global* request id and log it
next to their own, so one grep finds a Docker call in fuxi's log and in
Cinder's, Nova's and Manila's.

The id lives in a context variable: concurrent calls in request threads each
see their own, and work outside any call (the catalog refresh, the pool
keeper's own rounds) sees none and sends no header.
"""

import contextvars
import re
import uuid
from contextlib import contextmanager

# The header OpenStack's request-id middleware reads (oslo.middleware), and the
# only form it accepts from a client: "req-" and a UUID in lower-case hex.
REQUEST_ID_HEADER = "X-OpenStack-Request-ID"
_REQUEST_ID_FORM = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_REQUEST_ID: contextvars.ContextVar = contextvars.ContextVar("storage_core_request_id", default=None)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def is_request_id(text) -> bool:
    """Would an OpenStack service accept `text` as a global request id?"""
    return isinstance(text, str) and _REQUEST_ID_FORM.match(text) is not None


def current_request_id() -> "str | None":
    """The id of the call being served in this context, or None outside any call."""
    return _REQUEST_ID.get()


@contextmanager
def serving_request(request_id=None):
    """Within the block, `request_id` (a new one by default) is the current id."""
    request_id = request_id or new_request_id()
    if not is_request_id(request_id):
        raise ValueError(f"{request_id!r} is not a request id of the form req-<uuid>")
    token = _REQUEST_ID.set(request_id)
    try:
        yield request_id
    finally:
        _REQUEST_ID.reset(token)


def in_this_context(fn):
    """`fn`, to be run in another thread as if it ran here.

    A new thread (threading.Thread, a ThreadPoolExecutor's worker) starts with
    an empty context: no request id, and no deadline (storage_core.waits).
    The function returned runs `fn` in a copy of the caller's context taken
    now, so the work it does for the call is tied to the call and bounded by
    its deadline. Make one per thread: one copy cannot be entered by two
    threads at once.
    """
    context = contextvars.copy_context()

    def run_in_callers_context(*args, **kwargs):
        return context.run(fn, *args, **kwargs)

    return run_in_callers_context
