"""One log line per timed step, so a run's own log shows where the time went.

    step create volume=v1 took 1.512 s

benchmarks/ read these lines (logger storage_core.timing) to rebuild the
per-step table of a cold or warm path.
"""

import logging
import time
from contextlib import contextmanager

LOG = logging.getLogger(__name__)


@contextmanager
def step(name, volume):
    start = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "took"
    finally:
        LOG.info("step %s volume=%s %s %.3f s", name, volume, outcome, time.perf_counter() - start)
