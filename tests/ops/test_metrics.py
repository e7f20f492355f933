"""Prometheus metrics scraped over HTTP from real servers after a real workload."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from redrive import EventBus, RetryPolicy
from redrive.models import Status
from redrive.ops.metrics import (
    DeadLetterCollector,
    MetricsServer,
    PrometheusHook,
    metrics_app,
    start_http_server,
)
from redrive.service import DeadLetterQueue
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock
from tests.helpers import wait_for


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value, or None when it is not exposed."""
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of its own, so tests do not share counters."""
    return CollectorRegistry()


@pytest.fixture
def server(service: DeadLetterQueue, registry: CollectorRegistry) -> Iterator[MetricsServer]:
    """``start_http_server`` on a free port of 127.0.0.1."""
    running = start_http_server(0, service, addr="127.0.0.1", registry=registry)
    yield running
    running.close()


def scrape(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


class Flaky:
    """A handler that fails with ``error`` until ``healed``."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.healed = False

    def __call__(self, event: Any) -> None:
        if not self.healed:
            raise self.error("boom")


@pytest.fixture
async def workload(sqlite_store: SQLiteStore, clock: FakeClock, registry: CollectorRegistry) -> Any:
    """One success, one non-retriable failure, one retry scheduled, on orders."""
    bus = EventBus(sqlite_store, clock=clock, hooks=[PrometheusHook(registry=registry)])
    bus.subscribe("orders", lambda event: None, name="app.ok")
    poison = Flaky(ValueError)
    bus.subscribe("orders", poison, name="app.poison")
    transient = Flaky(ConnectionError)
    bus.subscribe(
        "orders",
        transient,
        name="app.transient",
        policy=RetryPolicy(max_attempts=3, initial_delay=60),
    )
    await bus.publish("orders", {"n": 1})
    yield bus, poison, transient
    await bus.stop()


class TestHookOverHttp:
    async def test_counts_outcomes(self, workload: Any, server: MetricsServer) -> None:
        """Each handler run is counted under its outcome."""
        text = scrape(server.port)
        total = "redrive_events_processed_total"
        assert value(text, total, topic="orders", handler="app.ok", outcome="success") == 1
        assert (
            value(text, total, topic="orders", handler="app.poison", outcome="non_retriable") == 1
        )
        assert (
            value(text, total, topic="orders", handler="app.transient", outcome="retry_scheduled")
            == 1
        )

    async def test_counts_dead_letters_by_error_type(
        self, workload: Any, server: MetricsServer
    ) -> None:
        """A record that becomes dead is counted with its error class, and its attempts."""
        text = scrape(server.port)
        assert (
            value(
                text,
                "redrive_dead_letters_total",
                topic="orders",
                handler="app.poison",
                error_type="ValueError",
            )
            == 1
        )
        assert value(text, "redrive_attempts_before_dead_count", topic="orders") == 1
        assert value(text, "redrive_attempts_before_dead_sum", topic="orders") == 1

    async def test_times_every_run(self, workload: Any, server: MetricsServer) -> None:
        """The duration histogram has one observation per handler run."""
        text = scrape(server.port)
        for handler in ("app.ok", "app.poison", "app.transient"):
            count = value(
                text, "redrive_handler_duration_seconds_count", topic="orders", handler=handler
            )
            assert count == 1

    async def test_counts_replay_outcomes(
        self, workload: Any, service: DeadLetterQueue, server: MetricsServer
    ) -> None:
        """A replayed record that then succeeds counts as a successful replay."""
        bus, poison, _ = workload
        dead = service.list(status=Status.DEAD).items
        assert len(dead) == 1
        poison.healed = True
        service.retry([dead[0].id])
        assert await bus.scheduler.run_once() == 1
        text = scrape(server.port)
        assert value(text, "redrive_replays_total", topic="orders", outcome="success") == 1

    async def test_no_replay_counted_for_first_attempts(
        self, workload: Any, server: MetricsServer
    ) -> None:
        """Records that were never replayed do not count as replays."""
        text = scrape(server.port)
        assert not [key for key in samples(text) if key[0] == "redrive_replays_total"]


class TestFormat:
    async def test_text_format_even_when_openmetrics_is_asked(
        self, workload: Any, server: MetricsServer
    ) -> None:
        """The endpoint answers in the text format, where the counter and the gauge named
        ``redrive_dead_letters*`` are distinct families."""
        accept = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.port}/metrics"
            response = await client.get(url, headers={"Accept": accept})
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE redrive_dead_letters_total counter" in response.text
        assert "# TYPE redrive_dead_letters gauge" in response.text


class TestStoreGauges:
    async def test_counts_by_topic_and_status(self, workload: Any, server: MetricsServer) -> None:
        """The store's records show by topic and status, zeros included."""
        text = scrape(server.port)
        assert value(text, "redrive_dead_letters", topic="orders", status="dead") == 1
        assert value(text, "redrive_dead_letters", topic="orders", status="scheduled") == 1
        assert value(text, "redrive_dead_letters", topic="orders", status="resolved") == 0
        assert value(text, "redrive_store_up") == 1

    async def test_oldest_age_follows_the_clock(
        self, workload: Any, clock: FakeClock, server: MetricsServer
    ) -> None:
        """The oldest dead letter's age is measured on the service's clock."""
        clock.advance(120)
        text = scrape(server.port)
        assert value(text, "redrive_oldest_dead_letter_age_seconds", topic="orders") == 120
        assert value(text, "redrive_dead_letters_last_hour", topic="orders") == 1

    async def test_cached_between_scrapes(
        self, workload: Any, service: DeadLetterQueue, registry: CollectorRegistry
    ) -> None:
        """Within the cache period the store is not read again; after it, it is."""
        now = [0.0]
        collector = DeadLetterCollector(service, cache_seconds=5, monotonic=lambda: now[0])
        registry.register(collector)
        first = value(_expose(registry), "redrive_dead_letters", topic="orders", status="dead")
        service.resolve([record.id for record in service.list(status="dead").items])
        cached = value(_expose(registry), "redrive_dead_letters", topic="orders", status="dead")
        now[0] = 5.0
        fresh = value(_expose(registry), "redrive_dead_letters", topic="orders", status="dead")
        assert (first, cached, fresh) == (1, 1, 0)

    def test_store_down_is_a_gauge_not_an_error(
        self, sqlite_store: SQLiteStore, clock: FakeClock, registry: CollectorRegistry
    ) -> None:
        """When the store cannot be read, the scrape still answers, with store_up 0."""
        service = DeadLetterQueue(sqlite_store, clock=clock)
        sqlite_store.close()
        registry.register(DeadLetterCollector(service))
        text = _expose(registry)
        assert value(text, "redrive_store_up") == 0
        assert "redrive_dead_letters{" not in text


def _expose(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


class TestLabels:
    def test_label_values_are_bounded(
        self, sqlite_store: SQLiteStore, registry: CollectorRegistry
    ) -> None:
        """Beyond ``max_label_values`` distinct topics, new ones are counted as ``other``."""
        from redrive.models import Event

        hook = PrometheusHook(registry=registry, max_label_values=2)
        for topic in ("a", "b", "c", "d"):
            hook.on_success(Event(topic=topic), "h", 0.01, None)
        text = _expose(registry)
        topics = {
            dict(labels)["topic"]
            for name, labels in samples(text)
            if name == "redrive_events_processed_total"
        }
        assert topics == {"a", "b", "other"}


class TestAsgiApp:
    async def test_served_by_uvicorn(
        self, workload: Any, service: DeadLetterQueue, registry: CollectorRegistry
    ) -> None:
        """``metrics_app`` serves the hook's counters and the store's gauges over HTTP."""
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(metrics_app(service, registry=registry), log_level="warning")
        uv = uvicorn.Server(config)
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            wait_for(lambda: uv.started, timeout=10)
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
        finally:
            uv.should_exit = True
            thread.join(timeout=10)
            sock.close()
        text = response.text
        assert response.headers["content-type"].startswith("text/plain")
        assert value(text, "redrive_dead_letters", topic="orders", status="dead") == 1
        assert (
            value(
                text,
                "redrive_events_processed_total",
                topic="orders",
                handler="app.ok",
                outcome="success",
            )
            == 1
        )
