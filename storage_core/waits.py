"""Bounded waits that poll fast at first and back off.

Measured waits are set mostly by when polling starts and how often it runs:
cloud steps usually finish within a few seconds, so for that long we poll every
few tens of milliseconds (a step is seen done within one short interval), then
back off so a slow cloud is not hammered. The clock is injected so unit tests
run without sleeping.
"""

import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass

from storage_core.errors import Timeout


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Backoff:
    """Poll every `first_interval` for `first_period`, every `fast_interval`
    until `fast_period`, then back off by `factor` up to `max_interval`.

    Most cloud steps end within the first second; polling every 20 ms there
    sees them done within 20 ms (a 50 ms poll lost 25 ms on average, and a
    whole interval when a step ended just after a poll), at the cost of at
    most 50 reads for a wait that lasts the whole second.
    """

    fast_interval: float = 0.05
    fast_period: float = 3.0
    factor: float = 1.5
    max_interval: float = 1.0
    first_interval: float = 0.02
    first_period: float = 1.0

    def interval(self, previous, elapsed):
        if elapsed < self.first_period:
            return self.first_interval
        if elapsed < self.fast_period:
            return self.fast_interval
        return min(max(previous, self.fast_interval) * self.factor, self.max_interval)


DEFAULT_BACKOFF = Backoff()


# -- the caller's budget ------------------------------------------------------

@dataclass(frozen=True)
class Deadline:
    """When the call being served must have ended, by `clock`."""

    ends: float
    seconds: float
    what: str
    clock: Clock

    def time_left(self) -> float:
        return self.ends - self.clock.monotonic()


_DEADLINE: contextvars.ContextVar = contextvars.ContextVar("storage_core_deadline", default=None)


@contextmanager
def deadline(seconds, what, clock=None):
    """Within the block, every wait (wait_until) and every cloud request (the
    HTTP adapter of storage_core.factory) ends by `seconds` from now.

    Each wait has its own timeout, sized for its step; the sum of the steps of
    one call can still exceed what the caller gives the whole call (Docker:
    120 s for Create and Mount, 60 s for the rest). A caller that knows its
    deadline opens one here, and the step that would overrun it stops in time
    with an error naming what it waited for. Nested: the earlier end wins.
    Per thread of execution (a context variable), so concurrent calls each
    have their own.
    """
    clock = clock or Clock()
    mine = Deadline(clock.monotonic() + seconds, seconds, what, clock)
    outer = _DEADLINE.get()
    if outer is not None and outer.time_left() < mine.time_left():
        mine = outer
    token = _DEADLINE.set(mine)
    try:
        yield mine
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> "Deadline | None":
    """The deadline of the call being served, if its caller set one."""
    return _DEADLINE.get()


def time_left() -> "float | None":
    """Seconds left of the current call's deadline; None when it has none."""
    current = _DEADLINE.get()
    return None if current is None else current.time_left()


def wait_until(check, timeout, what, clock=None, backoff=DEFAULT_BACKOFF, check_first=True):
    """Call check() until it returns something truthy; return that value.

    check may raise to abort the wait. Raises Timeout naming `what` when
    `timeout` seconds pass first, or when the caller's deadline (see
    deadline()) would pass first. check_first=False waits one interval before
    the first check: for a caller that has just seen the old state.
    """
    clock = clock or Clock()
    budget = _DEADLINE.get()
    limited_by = None
    if budget is not None and budget.time_left() < timeout:
        timeout, limited_by = max(budget.time_left(), 0.0), budget
    start = clock.monotonic()
    interval = 0.0
    if not check_first:
        interval = backoff.interval(interval, 0.0)
        clock.sleep(min(interval, timeout))
    while True:
        result = check()
        if result:
            return result
        elapsed = clock.monotonic() - start
        if elapsed >= timeout:
            if limited_by is not None:
                raise Timeout(
                    f"gave up after {elapsed:.1f} s waiting for {what}: {limited_by.what} must "
                    f"answer within {limited_by.seconds:g} s and its time is up"
                )
            raise Timeout(f"gave up after {timeout:g} s waiting for {what}")
        interval = backoff.interval(interval, elapsed)
        clock.sleep(min(interval, timeout - elapsed))
