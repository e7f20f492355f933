"""The alert monitor against a real SQLite store and a real local webhook receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from redrive.ops.alerts import AlertsConfig, Monitor, TopicRules, WebhookSink
from redrive.ops.metrics import MonitorCollector
from redrive.service import DeadLetterQueue
from redrive.testing import FakeClock
from tests.helpers import eventually, free_port
from tests.ops.conftest import Receiver, Workload

SECRET = "hmac-key-for-tests"
QUIET = TopicRules(warn_count=None, critical_count=None, max_age=None, expiring=None)
RFQ = QUIET.replace(warn_count=10, critical_count=50)


def hook(receiver: Receiver, name: str = "hook", path: str = "/hook") -> WebhookSink:
    return WebhookSink(name, receiver.url(path), secret=SECRET, retries=0, backoff=0)


def make_monitor(
    service: DeadLetterQueue, clock: FakeClock, receiver: Receiver, **config: Any
) -> Monitor:
    config.setdefault("topics", {"rfq": RFQ})
    config.setdefault("defaults", QUIET)
    return Monitor(service, AlertsConfig(**config), sinks={"hook": hook(receiver)}, clock=clock)


def verified(request: Any) -> bool:
    """Whether the request carries a valid HMAC-SHA256 signature of its body."""
    timestamp = request.headers["X-Redrive-Timestamp"].encode()
    digest = hmac.new(SECRET.encode(), timestamp + b"." + request.body, hashlib.sha256)
    return hmac.compare_digest(
        request.headers["X-Redrive-Signature"], f"sha256={digest.hexdigest()}"
    )


class TestThresholds:
    async def test_fires_when_crossed(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Ten rfq dead letters send one signed warning to the webhook."""
        await workload.dead("rfq", 10)
        await make_monitor(service, clock, receiver).evaluate_once()
        [request] = receiver.requests
        assert verified(request)
        body = request.json()
        assert (body["severity"], body["rule"], body["value"], body["threshold"]) == (
            "warning",
            "warn_count",
            10,
            10,
        )

    async def test_quiet_under_threshold(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Nine rfq dead letters send nothing."""
        await workload.dead("rfq", 9)
        assert await make_monitor(service, clock, receiver).evaluate_once() == []
        assert receiver.requests == []

    async def test_payload_shape(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """The payload has seed 004's fields, the top error group and a console link."""
        await workload.dead("rfq", 10, error="price missing")
        clock.advance(90)
        monitor = make_monitor(service, clock, receiver, public_url="https://dlq.example.com/")
        await monitor.evaluate_once()
        body = receiver.bodies()[0]
        assert {
            "alert_id",
            "timestamp",
            "severity",
            "topic",
            "rule",
            "message",
            "value",
            "threshold",
            "oldest_age_seconds",
        } <= set(body)
        assert body["oldest_age_seconds"] == 90
        assert body["groups"][0]["count"] == 10
        assert body["groups"][0]["error_type"] == "ValueError"
        assert body["groups"][0]["sample_message"].startswith("price missing")
        assert body["console_url"] == "https://dlq.example.com/dead-letters?topic=rfq&status=dead"

    async def test_max_age(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """A dead letter older than ``max_age`` fires the age rule."""
        await workload.dead("rfq", 1)
        monitor = make_monitor(
            service, clock, receiver, topics={"rfq": QUIET.replace(max_age=timedelta(hours=1))}
        )
        assert await monitor.evaluate_once() == []
        clock.advance(hours=1)
        [alert] = await monitor.evaluate_once()
        assert (alert.rule, alert.value) == ("max_age", 3600)

    async def test_rate(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """``rate`` new dead letters within the window fire the rate rule."""
        await workload.dead("rfq", 3)
        rules = QUIET.replace(rate=3, rate_window=timedelta(minutes=10))
        [alert] = await make_monitor(
            service, clock, receiver, topics={"rfq": rules}
        ).evaluate_once()
        assert (alert.rule, alert.value) == ("rate", 3)

    async def test_expiring(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Dead letters that retention deletes within the window fire the expiring rule."""
        await workload.dead("rfq", 2)
        monitor = make_monitor(
            service,
            clock,
            receiver,
            retention={"rfq": timedelta(days=7)},
            topics={"rfq": QUIET.replace(expiring=timedelta(hours=48))},
        )
        clock.advance(days=4)
        assert await monitor.evaluate_once() == []
        clock.advance(days=1, seconds=1)
        [alert] = await monitor.evaluate_once()
        assert (alert.rule, alert.value) == ("expiring", 2)


class TestLifecycle:
    async def test_cooldown_then_repeat(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Unchanged, the alert is quiet during the cooldown and repeated after it."""
        await workload.dead("rfq", 10)
        monitor = make_monitor(service, clock, receiver, cooldown=900)
        await monitor.evaluate_once()
        await workload.dead("rfq", 1)
        clock.advance(minutes=14)
        assert await monitor.evaluate_once() == []
        clock.advance(minutes=1)
        [repeat] = await monitor.evaluate_once()
        first = receiver.bodies()[0]
        assert (repeat.alert_id, repeat.value) == (first["alert_id"], 11)

    async def test_escalation_is_immediate(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Going from warning to critical notifies at once, inside the cooldown."""
        await workload.dead("rfq", 10)
        monitor = make_monitor(service, clock, receiver)
        await monitor.evaluate_once()
        await workload.dead("rfq", 40)
        clock.advance(1)
        await monitor.evaluate_once()
        assert [b["severity"] for b in receiver.bodies()] == ["warning", "critical"]

    async def test_resolved(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Back under the thresholds sends a resolution of the same alert."""
        await workload.dead("rfq", 50)
        monitor = make_monitor(service, clock, receiver)
        await monitor.evaluate_once()
        service.resolve([r.id for r in service.list(status="dead", limit=100).items])
        clock.advance(1)
        await monitor.evaluate_once()
        fired, resolved = receiver.bodies()
        assert (resolved["status"], resolved["severity"]) == ("resolved", "critical")
        assert resolved["alert_id"] == fired["alert_id"]
        assert await monitor.evaluate_once() == []


class TestSinkFailures:
    async def test_broken_sink_does_not_block_others(
        self,
        workload: Workload,
        service: DeadLetterQueue,
        clock: FakeClock,
        receiver: Receiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A sink that cannot connect is logged (without its URL) and counted; the other
        sink still gets the alert."""
        await workload.dead("rfq", 10)
        secret_url = f"http://127.0.0.1:{free_port()}/T0000/B0000/SECRETTOKEN"
        sinks = {
            "broken": WebhookSink("broken", secret_url, retries=1, backoff=0),
            "hook": hook(receiver),
        }
        monitor = Monitor(
            service, AlertsConfig(topics={"rfq": RFQ}, defaults=QUIET), sinks=sinks, clock=clock
        )
        with caplog.at_level(logging.WARNING, logger="redrive.alerts"):
            await monitor.evaluate_once()
        assert len(receiver.requests) == 1
        assert monitor.sink_failures == {"broken": 1, "hook": 0}
        assert "broken: ConnectError after 2 tries" in caplog.text
        assert "SECRETTOKEN" not in caplog.text

    async def test_failures_are_exported(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Sink failures show as ``redrive_alert_sink_failures_total{sink}``."""
        await workload.dead("rfq", 10)
        receiver.statuses = [500]
        monitor = make_monitor(service, clock, receiver)
        await monitor.evaluate_once()
        registry = CollectorRegistry()
        registry.register(MonitorCollector(monitor))
        text = generate_latest(registry).decode()
        assert 'redrive_alert_sink_failures_total{sink="hook"} 1.0' in text


class TestReplicas:
    async def test_concurrent_replicas_send_once(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Two replicas evaluating at the same moment on one store send one alert."""
        await workload.dead("rfq", 10)
        # Same owner: both pass the lock, so only the state's compare-and-set decides.
        replicas = [make_monitor(service, clock, receiver) for _ in range(2)]
        for replica in replicas:
            replica.owner = "same-owner"
        await asyncio.gather(*(replica.evaluate_once() for replica in replicas))
        assert len(receiver.requests) == 1

    async def test_standby_takes_over_without_resending(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """A standby waits while the lock is held, then continues from the shared state."""
        await workload.dead("rfq", 10)
        active, standby = (make_monitor(service, clock, receiver) for _ in range(2))
        await active.evaluate_once()
        assert await standby.evaluate_once() == []
        clock.advance(minutes=4)  # the active replica died: its lock expired (3 intervals)
        assert await standby.evaluate_once() == []
        service.resolve([r.id for r in service.list(status="dead", limit=100).items])
        [resolved] = await standby.evaluate_once()
        assert resolved.status == "resolved"
        assert len(receiver.requests) == 2


class TestRunning:
    async def test_start_and_stop(
        self, workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
    ) -> None:
        """``start`` evaluates in the background; ``stop`` ends it and frees the lock."""
        await workload.dead("rfq", 10)
        monitor = make_monitor(service, clock, receiver)
        other = make_monitor(service, clock, receiver)
        await monitor.start()
        await eventually(lambda: monitor.evaluations)
        await monitor.stop()
        service.resolve([r.id for r in service.list(status="dead", limit=100).items])
        [resolved] = await other.evaluate_once()  # the lock was given up: no wait
        assert [b["status"] for b in receiver.bodies()] == ["firing", "resolved"]
        assert resolved.status == "resolved"


@pytest.mark.postgres
class TestReplicasOnPostgres:
    async def test_replicas_on_separate_connections_send_once(
        self, postgres_url: str, clock: FakeClock, receiver: Receiver
    ) -> None:
        """Three replicas, each with its own PostgreSQL connection pool, racing through
        fire, escalation and resolution: each notification is sent exactly once."""
        from redrive.bootstrap import open_store

        stores = [open_store(postgres_url) for _ in range(3)]
        try:
            work = Workload(stores[0], clock)
            replicas = []
            for store in stores:
                replica = make_monitor(DeadLetterQueue(store, clock=clock), clock, receiver)
                replica.owner = "same-owner"  # all pass the lock: only the CAS decides
                replicas.append(replica)

            async def race() -> None:
                clock.advance(1)
                await asyncio.gather(*(replica.evaluate_once() for replica in replicas))

            await work.dead("rfq", 10)
            await race()
            await work.dead("rfq", 40)
            await race()
            service = DeadLetterQueue(stores[0], clock=clock)
            service.resolve([r.id for r in service.list(status="dead", limit=100).items])
            await race()
            await work.bus.stop()
        finally:
            for store in stores:
                store.close()
        kinds = [(b["status"], b["severity"]) for b in receiver.bodies()]
        assert kinds == [("firing", "warning"), ("firing", "critical"), ("resolved", "critical")]


async def test_runs_inside_the_api_app(
    workload: Workload, service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
) -> None:
    """create_app(monitor=...) runs the monitor for the app's lifetime and stops it after."""
    from redrive.ops.api import create_app

    await workload.dead("rfq", 10)
    monitor = make_monitor(service, clock, receiver)
    app = create_app(service, console=False, monitor=monitor)
    async with app.router.lifespan_context(app):
        await eventually(lambda: receiver.requests)
        assert receiver.requests[0].json()["rule"] == "warn_count"
    assert monitor._task is None
