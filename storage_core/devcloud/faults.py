"""Scripted failures, so tests can see how clients cope with a misbehaving cloud.

A fault is armed for one named operation and fires on the next ``times``
matching requests, in place of the real work. Faults are kept in memory only:
a restart is a clean cloud again.
"""

import threading
import time
from dataclasses import asdict, dataclass

from storage_core.devcloud.web import ResetConnection, Response

#: Every operation a fault can be armed for (see cinder.py / keystone.py /
#: nova.py / manila.py for which request is which).
OPERATIONS = (
    "auth.token",
    "volume.create",
    "volume.get",
    "volume.list",
    "volume.delete",
    "volume.metadata",
    "attachment.create",
    "attachment.get",
    "attachment.list",
    "attachment.update",
    "attachment.complete",
    "attachment.delete",
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
    "access.create",
    "access.get",
    "access.list",
    "access.delete",
    "export_locations.list",
    "export_locations.get",
)


@dataclass
class Fault:
    """What to do instead of the operation.

    ``status`` None with a ``delay`` makes a slow but otherwise normal call;
    ``reset_connection`` drops the TCP connection without an answer.
    ``times`` None means every time until cleared.
    """

    operation: str
    status: int | None = 500
    times: int | None = 1
    body: object = None
    delay: float = 0.0
    reset_connection: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class FaultInjector:
    """Thread-safe list of armed faults; the first match wins."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        operation,
        status=500,
        times=1,
        body=None,
        delay=0.0,
        reset_connection=False,
    ) -> Fault:
        if operation not in OPERATIONS:
            raise ValueError(
                f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}"
            )
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError(f"status must be an HTTP status code, not {status!r}")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be an integer >= 1 or None, not {times!r}")
        if not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"delay must be a number >= 0, not {delay!r}")
        if status is None and not delay and not reset_connection:
            raise ValueError("a fault needs a status, a delay or reset_connection")
        fault = Fault(operation, status, times, body, float(delay), bool(reset_connection))
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_many(self, specs) -> list[Fault]:
        """Arm faults from JSON: one object or a list of objects (HTTP control)."""
        if isinstance(specs, dict):
            specs = [specs]
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise ValueError("expected a fault object or a list of fault objects")
        allowed = {"operation", "status", "times", "body", "delay", "reset_connection"}
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
        """The fault to apply to this call of ``operation``, used up by one."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.operation != operation:
                    continue
                snapshot = Fault(**fault.to_dict())
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                return snapshot
            return None


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
    fault = injector.take(operation)
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)
    if fault.reset_connection:
        raise ResetConnection(operation)
    if fault.status is None:
        return None
    if fault.body is None:
        message = _DEFAULT_MESSAGES.get(
            fault.status, f"devcloud injected a {fault.status} fault into {operation}."
        )
        return error_response(fault.status, message)
    return Response(fault.status, fault.body)
