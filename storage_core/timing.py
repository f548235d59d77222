"""One log line per timed step, so a run's own log shows where the time went.

    step create volume=v1 took 1.512 s

benchmarks/ read these lines (logger storage_core.timing) to rebuild the
per-step table of a cold or warm path.

Observers (add_observer) hear of every step as it ends, with the same facts
as the line: a plugin feeds its own metrics from them, and storage_core needs
to know nothing of how they are kept.
"""

import logging
import threading
import time
from contextlib import contextmanager

LOG = logging.getLogger(__name__)

# What a step's end is reported as, to observers and in the log line.
SUCCEEDED = "took"
FAILED = "failed"

_observers = ()
_observers_lock = threading.Lock()


def add_observer(observer) -> None:
    """Call `observer(step, volume, outcome, seconds)` at the end of every step,
    in the thread that ran it; outcome is SUCCEEDED or FAILED. An observer must
    be quick and must not raise (what it raises is logged and dropped)."""
    global _observers
    with _observers_lock:
        _observers = (*_observers, observer)


def remove_observer(observer) -> None:
    global _observers
    with _observers_lock:
        _observers = tuple(o for o in _observers if o is not observer)


@contextmanager
def step(name, volume):
    start = time.perf_counter()
    outcome = FAILED
    try:
        yield
        outcome = SUCCEEDED
    finally:
        seconds = time.perf_counter() - start
        LOG.info("step %s volume=%s %s %.3f s", name, volume, outcome, seconds)
        _tell_observers(name, volume, outcome, seconds)


def _tell_observers(name, volume, outcome, seconds) -> None:
    # A snapshot: observers added or removed meanwhile do not disturb the loop.
    for observer in _observers:
        try:
            observer(name, volume, outcome, seconds)
        except Exception:  # a broken observer must not fail the volume's step
            LOG.exception("step observer %r failed", observer)
