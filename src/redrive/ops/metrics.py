"""Prometheus metrics: a hook for what handlers do, a collector for what the store holds.

``pip install "redrive[metrics]"``. Nothing in the core imports this module: the hook plugs
into ``EventBus(hooks=[...])`` and the collector reads ``DeadLetterQueue.stats()``::

    from redrive.ops.metrics import PrometheusHook, start_http_server

    bus = EventBus(store, hooks=[PrometheusHook()])
    start_http_server(9464, service=DeadLetterQueue(store))

``redrive serve`` mounts :func:`metrics_app` at ``/metrics``. Label values are bounded:
topics, handler names and error class names only (never ids or messages), each capped at
``max_label_values`` distinct values, beyond which they are counted as ``other``.

Both endpoints always answer in the classic text format, never OpenMetrics: the counter
``redrive_dead_letters_total`` and the gauge ``redrive_dead_letters`` would both be the
family ``redrive_dead_letters`` in OpenMetrics, which requires family names to be unique.
Prometheus accepts the text format from every target.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import (
    CONTENT_TYPE_LATEST,
    ThreadingWSGIServer,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from redrive.hooks import Hook
from redrive.models import DeadLetter, Event, Status

if TYPE_CHECKING:
    from redrive.ops.alerts import Monitor
    from redrive.service import DeadLetterQueue

logger = logging.getLogger("redrive.metrics")

__all__ = [
    "DeadLetterCollector",
    "MetricsServer",
    "MonitorCollector",
    "PrometheusHook",
    "metrics_app",
    "metrics_registry",
    "start_http_server",
]

OTHER = "other"
"""The label value that stands for every value beyond the cap."""

ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50)

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _Bounded:
    """Caps the distinct values of each label, so a bug cannot explode the series count."""

    def __init__(self, limit: int, length: int = 120) -> None:
        self._limit = limit
        self._length = length
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: str) -> str:
        value = value[: self._length] or "unknown"
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) >= self._limit:
                return OTHER
            seen.add(value)
            return value


class PrometheusHook(Hook):
    """Counts outcomes and times handlers; pass it to ``EventBus(hooks=[...])``.

    :param registry: where the metrics are registered (default: prometheus-client's).
    :param max_label_values: distinct values kept per label before ``other``.

    .. versionadded:: 0.1
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, max_label_values: int = 100
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self._bound = _Bounded(max_label_values)
        self.processed = Counter(
            "redrive_events_processed",
            "Handler runs by outcome: success, retry_scheduled, dead, non_retriable.",
            ["topic", "handler", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "redrive_dead_letters",
            "Records that became dead, by error class.",
            ["topic", "handler", "error_type"],
            registry=registry,
        )
        self.replays = Counter(
            "redrive_replays",
            "Runs of replayed records by outcome: success, retry_scheduled, dead.",
            ["topic", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "redrive_handler_duration_seconds",
            "How long one handler run took, whatever its outcome.",
            ["topic", "handler"],
            registry=registry,
        )
        self.attempts_before_dead = Histogram(
            "redrive_attempts_before_dead",
            "Attempts a record had made when it became dead.",
            ["topic"],
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )

    def on_success(
        self, event: Event, handler: str, duration: float, record: DeadLetter | None
    ) -> None:
        self._ran(event.topic, handler, duration, "success", record)

    def on_failure(self, record: DeadLetter, error: BaseException, duration: float) -> None:
        self._ran(record.topic, record.handler, duration, _outcome(record), record)

    def on_dead(self, record: DeadLetter) -> None:
        topic = self._bound("topic", record.topic)
        handler = self._bound("handler", record.handler)
        error_type = self._bound("error_type", record.error_type)
        self.dead_letters.labels(topic, handler, error_type).inc()
        self.attempts_before_dead.labels(topic).observe(record.attempts)

    def _ran(
        self, topic: str, handler: str, duration: float, outcome: str, record: DeadLetter | None
    ) -> None:
        topic = self._bound("topic", topic)
        handler = self._bound("handler", handler)
        self.processed.labels(topic, handler, outcome).inc()
        self.duration.labels(topic, handler).observe(duration)
        if record is not None and record.replays > 0:
            replay_outcome = "dead" if outcome == "non_retriable" else outcome
            self.replays.labels(topic, replay_outcome).inc()


def _outcome(record: DeadLetter) -> str:
    if record.status != Status.DEAD:
        return "retry_scheduled"
    last = record.history[-1] if record.history else None
    if last is not None and last.detail.get("decision") == "non_retriable":
        return "non_retriable"
    return "dead"


class DeadLetterCollector(Collector):
    """Gauges read from ``service.stats()`` at scrape time, cached ``cache_seconds`` so a
    scrape storm costs the store one query (the counts are kept by triggers: cheap anyway).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        service: DeadLetterQueue,
        *,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._ttl = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        # One refresh at a time: concurrent scrapes wait and reuse its result.
        with self._lock:
            now = self._monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._read())
            return list(self._cached[1])

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("redrive_store_up", "1 if the last read of the store worked.")
        try:
            stats = self._service.stats()
        except Exception as exc:  # a scrape must answer even when the store does not
            logger.warning("metrics: cannot read the store: %s", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        now = self._service.clock.now()
        counts = GaugeMetricFamily(
            "redrive_dead_letters",
            "Records in the store by topic and status.",
            labels=["topic", "status"],
        )
        oldest = GaugeMetricFamily(
            "redrive_oldest_dead_letter_age_seconds",
            "Age of the oldest dead record of the topic (0 when none is dead).",
            labels=["topic"],
        )
        last_hour = GaugeMetricFamily(
            "redrive_dead_letters_last_hour",
            "Records of the topic that became dead in the last hour (all processes).",
            labels=["topic"],
        )
        for topic, by_status in sorted(stats.counts.items()):
            for status in Status:
                counts.add_metric([topic, status.value], by_status.get(status, 0))
            dead_at = stats.oldest_dead_at.get(topic)
            age = (now - dead_at).total_seconds() if dead_at is not None else 0.0
            oldest.add_metric([topic], max(age, 0.0))
            last_hour.add_metric([topic], stats.new_dead_last_hour.get(topic, 0))
        return [up, counts, oldest, last_hour, *self._liveness()]

    def _liveness(self) -> list[Metric]:
        """Live schedulers, and scheduled records stalled for lack of one."""
        live = GaugeMetricFamily(
            "redrive_workers_live", "Schedulers (apps, workers, outbox) with a recent heartbeat."
        )
        stalled = GaugeMetricFamily(
            "redrive_stalled_records",
            "Scheduled records overdue with no live worker for their handler.",
            labels=["topic", "handler"],
        )
        try:
            workers = self._service.workers()
            found = self._service.stalled()
        except Exception as exc:  # liveness is advisory: the other gauges still answer
            logger.warning("metrics: cannot read worker heartbeats: %s", type(exc).__name__)
            return []
        live.add_metric([], sum(1 for w in workers if w.get("live")))
        for item in found:
            stalled.add_metric([item.topic, item.handler], item.count)
        return [live, stalled]


class MonitorCollector(Collector):
    """Exposes an alert monitor's sink failures as ``redrive_alert_sink_failures_total``.

    .. versionadded:: 0.1
    """

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        failures = CounterMetricFamily(
            "redrive_alert_sink_failures",
            "Alert notifications a sink failed to deliver (after its retries).",
            labels=["sink"],
        )
        for sink in self._monitor.sink_names():
            failures.add_metric([sink], self._monitor.sink_failures.get(sink, 0))
        return [failures]


class _Forward(Collector):
    """Collects another registry. No ``describe``: it claims no names, so it never clashes
    with a registry that the same metrics are already in."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def metrics_registry(
    service: DeadLetterQueue | None = None,
    *,
    monitor: Monitor | None = None,
    registry: Collector | None = None,
    cache_seconds: float = 5.0,
) -> CollectorRegistry:
    """A registry with ``registry``'s metrics (the hook's; default: prometheus-client's)
    plus the store's gauges for ``service`` and the sink failures of ``monitor``.

    Each call builds a fresh registry, so two apps in one process never clash.
    """
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_Forward(REGISTRY if registry is None else registry))
    if service is not None:
        combined.register(DeadLetterCollector(service, cache_seconds=cache_seconds))
    if monitor is not None:
        combined.register(MonitorCollector(monitor))
    return combined


def metrics_app(
    service: DeadLetterQueue,
    *,
    monitor: Monitor | None = None,
    registry: Collector | None = None,
) -> ASGIApp:
    """An ASGI app serving the metrics (mount it at ``/metrics``).

    The exposition runs in a worker thread: reading the store never blocks the event loop.

    .. versionadded:: 0.1
    """
    combined = metrics_registry(service, monitor=monitor, registry=registry)

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":  # when served on its own rather than mounted
            await _lifespan(receive, send)
            return
        body = await asyncio.to_thread(generate_latest, combined)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode("latin-1"))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


async def _lifespan(
    receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class MetricsServer:
    """A running metrics endpoint; ``port`` is the one bound (useful with port 0).

    .. versionadded:: 0.1
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_http_server(
    port: int,
    service: DeadLetterQueue | None = None,
    *,
    monitor: Monitor | None = None,
    addr: str = "0.0.0.0",  # noqa: S104 - Prometheus scrapes from another host
    registry: Collector | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread, for apps without the API.

    .. versionadded:: 0.1
    """
    wsgi = make_wsgi_app(metrics_registry(service, monitor=monitor, registry=registry))

    def text_only(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["HTTP_ACCEPT"] = "text/plain"  # never OpenMetrics: see the module docstring
        result: Iterable[bytes] = wsgi(environ, start_response)
        return result

    server = make_server(addr, port, text_only, ThreadingWSGIServer, handler_class=_Quiet)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        daemon=True,
        name="redrive-metrics",
    )
    thread.start()
    return MetricsServer(server, thread)


class _Quiet(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
