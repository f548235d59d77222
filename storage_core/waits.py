"""Bounded waits that poll fast at first and back off.

Measured waits are set mostly by when polling starts and how often it runs, so
the first polls come after tens of milliseconds. The clock is injected so unit
tests run without sleeping.
"""

import time
from dataclasses import dataclass

from storage_core.errors import Timeout


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Backoff:
    first_interval: float = 0.02
    factor: float = 1.6
    max_interval: float = 1.0


DEFAULT_BACKOFF = Backoff()


def wait_until(check, timeout, what, clock=None, backoff=DEFAULT_BACKOFF):
    """Call check() until it returns something truthy; return that value.

    check may raise to abort the wait. Raises Timeout naming `what` when
    `timeout` seconds pass first.
    """
    clock = clock or Clock()
    deadline = clock.monotonic() + timeout
    interval = backoff.first_interval
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise Timeout(f"gave up after {timeout:g} s waiting for {what}")
        clock.sleep(min(interval, remaining))
        interval = min(interval * backoff.factor, backoff.max_interval)
