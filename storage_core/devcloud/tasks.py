"""Background work: status transitions later, off the HTTP threads.

Cinder answers a create with ``creating`` and finishes in the background; the
same happens here. Jobs are not persisted: whatever was pending when devcloud
died is found in its transitional status at start-up and finished there.
"""

import heapq
import itertools
import logging
import threading
import time

LOG = logging.getLogger(__name__)


class Scheduler:
    """One worker thread running callables at their due time."""

    def __init__(self, name="devcloud-tasks"):
        self._cond = threading.Condition()
        self._queue = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay, fn, *args):
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), fn, args))
            self._cond.notify()

    def stop(self, timeout=5.0):
        """Drop pending jobs and wait for a running one to end."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self):
        while True:
            with self._cond:
                while not self._stopped:
                    if self._queue:
                        wait = self._queue[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _due, _seq, fn, args = heapq.heappop(self._queue)
            try:
                fn(*args)
            except Exception:  # a failed job must not kill the service
                LOG.exception("devcloud background job %s failed", getattr(fn, "__name__", fn))


class Workers:
    """One thread per job, for jobs that sleep through several steps.

    Nova's compute manager works on many attachments at once: one slow
    attach (latency, a long link_delay) must not hold up the others, as it
    would on the single Scheduler thread. Jobs are not persisted either; the
    compute service finds unfinished ones by status at start-up.
    """

    def __init__(self, name="devcloud-compute"):
        self._name = name
        self._lock = threading.Lock()
        self._threads = set()
        #: set by stop(); long jobs check it between steps
        self.stopping = threading.Event()

    def spawn(self, fn, *args) -> None:
        with self._lock:
            if self.stopping.is_set():
                return
            thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                      name=f"{self._name}-{getattr(fn, '__name__', 'job')}")
            self._threads.add(thread)
        thread.start()

    def _run(self, fn, args):
        try:
            fn(*args)
        except Exception:  # a failed job must not go unnoticed, nor kill anything
            LOG.exception("devcloud job %s%r failed", getattr(fn, "__name__", fn), args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def stop(self, timeout=10.0) -> None:
        """Let running jobs reach a safe point; new ones are refused."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
