"""fuxi-server's Prometheus metrics, served on a loopback address of their own
(metrics_listen; off by default), never on the plugin socket.

Counted as they happen:
    fuxi_plugin_calls_total{call,outcome}      plugin calls by call (Create, Mount, ...) and ok/error
    fuxi_plugin_call_seconds{call}             their duration (histogram)
    fuxi_plugin_calls_in_progress              calls being served now
    fuxi_volume_step_seconds{step,outcome}     each volume step (create, attach, mkfs, mount,
                                               pool-create ... pool-claim) by ok/error (histogram)
Read from the service at each scrape:
    fuxi_mounted_volumes                       volumes mounted on this host for a caller
    fuxi_mounts                                live mounts counted (one volume may have several)
    fuxi_pool_volumes{pool,state}              a warm pool's ready and filling volumes
    fuxi_pool_min_ready{pool}, fuxi_pool_max_volumes{pool}   its configured levels
    fuxi_pool_levels_known                     1 when this scrape could read every pool's levels
and process_* (memory, CPU, open files) of the worker that serves the calls.
"""

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily

from storage_core import timing
from storage_core.errors import StorageError
from storage_core.waits import deadline

LOG = logging.getLogger(__name__)

# Docker calls take from a millisecond (Get from the catalog) to Docker's 120 s
# (a cold Create or Mount on a slow cloud).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OUTCOMES = ("ok", "error")
_STEP_OUTCOMES = {timing.SUCCEEDED: "ok", timing.FAILED: "error"}
# A shared pool's levels are a cloud listing: a scrape waits this long for them
# at most (Prometheus gives a scrape 10 s by default).
POOL_LEVELS_SECONDS = 5.0
POOL_STATES = ("ready", "filling")


def serve_metrics(service, address) -> "PluginMetrics | None":
    """The metrics of `service`'s plugin, served at http://HOST:PORT/metrics
    (`address`); None when `address` is None (metrics off).

    A port that cannot be bound is logged and the plugin goes on serving Docker:
    the volumes of running containers matter more than their metrics (the
    scrape target shows down).
    """
    if address is None:
        return None
    metrics = PluginMetrics(service)
    host, port = address
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        metrics.serve(host, port)
    except OSError as exc:
        LOG.error("metrics_listen = %s cannot be served (%s); no metrics until fuxi-server restarts "
                  "with a free address", shown, exc)
        return metrics
    LOG.info("serving Prometheus metrics at http://%s/metrics", shown)
    return metrics


class PluginMetrics:
    """The metrics of one plugin process, in a registry of their own."""

    def __init__(self, service):
        self.registry = CollectorRegistry()
        self._calls = Counter("fuxi_plugin_calls", "Plugin calls served, by call and outcome (ok or error)",
                              ["call", "outcome"], registry=self.registry)
        self._call_seconds = Histogram("fuxi_plugin_call_seconds", "Time to serve a plugin call, by call",
                                       ["call"], buckets=CALL_BUCKETS, registry=self.registry)
        self._in_progress = Gauge("fuxi_plugin_calls_in_progress", "Plugin calls being served now",
                                  registry=self.registry)
        self._step_seconds = Histogram(
            "fuxi_volume_step_seconds", "Time of a volume step (cloud create, attach, mkfs, mount, pool "
            "fill and claim steps), by step and outcome (ok or error)",
            ["step", "outcome"], buckets=STEP_BUCKETS, registry=self.registry)
        self.registry.register(ServiceCollector(service))
        ProcessCollector(registry=self.registry)
        self._server = None
        timing.add_observer(self.observe_step)

    def expect_call(self, call) -> None:
        """Show `call`'s series (at 0) before its first use, so rates start from the first scrape."""
        for outcome in OUTCOMES:
            self._calls.labels(call, outcome)
        self._call_seconds.labels(call)

    def call_in_progress(self):
        """A context manager counting a call as being served while it is open."""
        return self._in_progress.track_inprogress()

    def observe_call(self, call, outcome, seconds) -> None:
        self._calls.labels(call, outcome).inc()
        self._call_seconds.labels(call).observe(seconds)

    def observe_step(self, step, volume, outcome, seconds) -> None:
        """storage_core.timing's observer (the volume is in the log line, not in a label)."""
        self._step_seconds.labels(step, _STEP_OUTCOMES.get(outcome, outcome)).observe(seconds)

    def serve(self, host, port) -> None:
        """Answer scrapes at http://HOST:PORT/metrics from a thread of this process."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        timing.remove_observer(self.observe_step)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ServiceCollector:
    """Mount and pool levels, read from the service when Prometheus scrapes."""

    def __init__(self, service):
        self._service = service

    def describe(self):
        return []  # unknown before the first scrape (pools may come and go)

    def collect(self):
        counts = self._service.mount_counts()
        yield GaugeMetricFamily("fuxi_mounted_volumes", "Volumes mounted on this host for at least one caller",
                                value=len(counts))
        yield GaugeMetricFamily("fuxi_mounts", "Live mounts counted on this host (by volume and caller id)",
                                value=sum(counts.values()))
        keeper = self._service.pools
        if keeper is not None:
            yield from self._pool_levels(keeper)

    def _pool_levels(self, keeper):
        volumes = GaugeMetricFamily("fuxi_pool_volumes", "Warm pool volumes by state (ready, filling)",
                                    labels=["pool", "state"])
        min_ready = GaugeMetricFamily("fuxi_pool_min_ready", "Ready volumes below which a pool refills",
                                      labels=["pool"])
        maximum = GaugeMetricFamily("fuxi_pool_max_volumes", "Most ready and filling volumes a pool holds",
                                    labels=["pool"])
        known = 1
        try:
            # A shared pool (tier 1/2) is counted in the cloud: bounded, so a slow
            # cloud costs this scrape its pool levels, not the whole scrape.
            with deadline(POOL_LEVELS_SECONDS, "reading pool levels for a metrics scrape"):
                rows = keeper.status()
        except StorageError as exc:
            LOG.warning("metrics: pool levels unknown for this scrape: %s", exc)
            rows, known = [], 0
        except Exception:  # a scrape must still answer with what it has
            LOG.exception("metrics: pool levels unknown for this scrape")
            rows, known = [], 0
        for row in rows:
            for state in POOL_STATES:
                volumes.add_metric([row["pool"], state], row[state])
            min_ready.add_metric([row["pool"]], row["min_ready"])
            maximum.add_metric([row["pool"]], row["max"])
        yield volumes
        yield min_ready
        yield maximum
        yield GaugeMetricFamily("fuxi_pool_levels_known", "1 when this scrape read every pool's levels, "
                                "0 when they could not be read (the cloud did not answer)", value=known)
