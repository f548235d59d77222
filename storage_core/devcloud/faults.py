"""Scripted failures, so tests can see how clients cope with a misbehaving cloud.

A fault is armed for one named operation and fires on the next ``times``
matching requests, in place of the real work. Faults are kept in memory only:
a restart is a clean cloud again.

What a fault does, in this order: wait ``delay`` seconds; drop the connection
(``reset_connection``); make every token issued so far invalid and answer 401,
as Keystone's middleware does for an expired or revoked token
(``expire_tokens``); answer ``status``. A ``volume_status`` fault is of
another sort: the request is served as usual, but the volume it concerns ends
in that status (``error``, say) instead of the one it would have reached; see
VOLUME_STATUS_OPERATIONS.
"""

import threading
import time
from dataclasses import asdict, dataclass

from storage_core.devcloud.web import ResetConnection, Response, keystone_error

#: Every operation a fault can be armed for (see cinder.py / keystone.py /
#: nova.py / manila.py for which request is which).
OPERATIONS = (
    "auth.token",
    "volume.create",
    "volume.get",
    "volume.list",
    "volume.update",
    "volume.delete",
    "volume.metadata",
    "volume.extend",
    "attachment.create",
    "attachment.get",
    "attachment.list",
    "attachment.update",
    "attachment.complete",
    "attachment.delete",
    "snapshot.create",
    "snapshot.get",
    "snapshot.list",
    "snapshot.delete",
    "backup.create",
    "backup.get",
    "backup.list",
    "backup.delete",
    "backup.restore",
    "server.get",
    "server.list",
    "volume_attachment.create",
    "volume_attachment.get",
    "volume_attachment.list",
    "volume_attachment.delete",
    "share.create",
    "share.get",
    "share.list",
    "share.update",
    "share.delete",
    "share.metadata",
    "share.extend",
    "access.create",
    "access.get",
    "access.list",
    "access.delete",
    "export_locations.list",
    "export_locations.get",
)


#: The operations a ``volume_status`` fault can be armed for, and what the
#: volume would have become: a create that ends in ``error`` (no valid
#: backend, a driver failure), an attach whose completion leaves the volume in
#: ``error`` instead of ``in-use`` (Nova's attach completes it too).
VOLUME_STATUS_OPERATIONS = {
    "volume.create": "available",
    "attachment.complete": "in-use",
}

_UNSET = object()


@dataclass
class Fault:
    """What to do instead of the operation.

    ``status`` None with a ``delay`` makes a slow but otherwise normal call;
    ``reset_connection`` drops the TCP connection without an answer;
    ``expire_tokens`` invalidates every token issued so far and answers 401;
    ``volume_status`` lets the call through and puts its volume in that status.
    ``times`` None means every time until cleared.
    """

    operation: str
    status: int | None = 500
    times: int | None = 1
    body: object = None
    delay: float = 0.0
    reset_connection: bool = False
    expire_tokens: bool = False
    volume_status: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class FaultInjector:
    """Thread-safe list of armed faults; the first match wins."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        # Requests per operation (armed or not): which operations a client reaches.
        self._seen: dict[str, int] = {}
        # The Keystone whose tokens an expire_tokens fault invalidates (it
        # binds itself when it starts; see keystone.Identity).
        self._identity = None

    def add(
        self,
        operation,
        status=_UNSET,
        times=1,
        body=None,
        delay=0.0,
        reset_connection=False,
        expire_tokens=False,
        volume_status=None,
    ) -> Fault:
        if operation not in OPERATIONS:
            raise ValueError(
                f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}"
            )
        if status is _UNSET:
            # 500 unless the fault is of a kind that answers otherwise.
            status = None if (expire_tokens or volume_status is not None) else 500
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError(f"status must be an HTTP status code, not {status!r}")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be an integer >= 1 or None, not {times!r}")
        if not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"delay must be a number >= 0, not {delay!r}")
        if volume_status is not None:
            if operation not in VOLUME_STATUS_OPERATIONS:
                raise ValueError(
                    f"volume_status faults work on {', '.join(VOLUME_STATUS_OPERATIONS)}, "
                    f"not {operation!r}"
                )
            if not isinstance(volume_status, str) or not volume_status:
                raise ValueError(f"volume_status must be a status name, not {volume_status!r}")
            if status is not None or delay or reset_connection or expire_tokens:
                raise ValueError("a volume_status fault lets the call through: it takes no "
                                 "status, delay, reset_connection or expire_tokens")
        elif status is None and not delay and not reset_connection and not expire_tokens:
            raise ValueError(
                "a fault needs a status, a delay, reset_connection, expire_tokens or volume_status"
            )
        fault = Fault(operation, status, times, body, float(delay), bool(reset_connection),
                      bool(expire_tokens), volume_status)
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_many(self, specs) -> list[Fault]:
        """Arm faults from JSON: one object or a list of objects (HTTP control)."""
        if isinstance(specs, dict):
            specs = [specs]
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise ValueError("expected a fault object or a list of fault objects")
        allowed = {"operation", "status", "times", "body", "delay", "reset_connection",
                   "expire_tokens", "volume_status"}
        for spec in specs:
            unknown = set(spec) - allowed
            if unknown:
                raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
            if "operation" not in spec:
                raise ValueError("a fault needs an operation")
        # Validate all before arming any, so a bad list arms nothing.
        probe = FaultInjector()
        for spec in specs:
            probe.add(**spec)
        return [self.add(**spec) for spec in specs]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return [Fault(**f.to_dict()) for f in self._faults]

    def take(self, operation) -> Fault | None:
        """The fault to apply to this call of ``operation``, used up by one.

        ``volume_status`` faults are not taken here: the request goes through
        and the service asks for them with take_volume_status().
        """
        return self._take(operation, outcome=False)

    def take_volume_status(self, operation) -> str | None:
        """The status a volume_status fault gives the volume of this call, used up by one."""
        fault = self._take(operation, outcome=True)
        return fault.volume_status if fault is not None else None

    def _take(self, operation, outcome):
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.operation != operation or (fault.volume_status is not None) != outcome:
                    continue
                snapshot = Fault(**fault.to_dict())
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                return snapshot
            return None

    def note(self, operation) -> None:
        """Count one request of ``operation`` (GET /devcloud/operations)."""
        with self._lock:
            self._seen[operation] = self._seen.get(operation, 0) + 1

    def seen(self) -> dict:
        with self._lock:
            return dict(self._seen)

    def clear_seen(self) -> None:
        with self._lock:
            self._seen.clear()

    # -- tokens ----------------------------------------------------------------

    def bind_identity(self, identity) -> None:
        """The Keystone (anything with expire_tokens() and unauthorized()) of this cloud."""
        self._identity = identity

    def expire_tokens(self) -> bool:
        """Make every token issued so far invalid; False when no Keystone is bound."""
        if self._identity is None:
            return False
        self._identity.expire_tokens()
        return True


_DEFAULT_MESSAGES = {
    500: "The server has either erred or is incapable of performing the requested operation.",
    503: "The service is unavailable at this time.",
}


def apply_fault(injector, operation, error_response):
    """Act out the fault armed for ``operation``, if any.

    Returns the Response to send instead of doing the work, or None to go on
    (no fault, or a delay-only fault). ``error_response(status, message)``
    shapes the default body (Cinder or Keystone style).
    """
    if injector is None:
        return None
    injector.note(operation)
    fault = injector.take(operation)
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)
    if fault.reset_connection:
        raise ResetConnection(operation)
    if fault.expire_tokens:
        # The token the client sent is now expired, as is every other one:
        # the service refuses it the way keystonemiddleware does.
        identity = injector._identity
        if identity is not None:
            identity.expire_tokens()
            return identity.unauthorized()
        return keystone_error(401, "The request you have made requires authentication.")
    if fault.status is None:
        return None
    if fault.body is None:
        message = _DEFAULT_MESSAGES.get(
            fault.status, f"devcloud injected a {fault.status} fault into {operation}."
        )
        return error_response(fault.status, message)
    return Response(fault.status, fault.body)
