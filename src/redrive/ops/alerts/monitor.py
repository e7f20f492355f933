"""The monitor: every ``interval``, read the store, evaluate each topic's rules, notify.

Run it as ``redrive monitor``, inside an app (``await monitor.start()`` ...
``await monitor.stop()``), or inside ``redrive serve``'s lifespan the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from redrive._ids import owner_id
from redrive.models import JSON, Status
from redrive.ops.alerts.alert import Alert, console_link, group_summary
from redrive.ops.alerts.config import AlertsConfig, load
from redrive.ops.alerts.rules import FAMILIES, Finding, Measurement, describe, evaluate
from redrive.ops.alerts.sinks import Sink, SinkError, accepts
from redrive.ops.alerts.state import AlertState, StateStore, Transition, state_key, transition

if TYPE_CHECKING:
    from redrive._clock import Clock
    from redrive.config import Settings
    from redrive.service import DeadLetterQueue

logger = logging.getLogger("redrive.alerts")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RuleStatus:
    """One rule of one topic, as ``redrive alerts status`` shows it.

    :param severity: what the rule says now; ``notified`` what was last recorded/sent.
    """

    topic: str
    family: str
    severity: str
    rule: str
    value: float
    threshold: float | None
    notified: str
    since: datetime | None
    last_sent_at: datetime | None


class Monitor:
    """Evaluates alert rules against the store and sends notifications to sinks.

    :param config: rules, sinks and timings (``Monitor.from_settings`` reads them from
        the config file).
    :param sinks: override ``config.sinks`` (by name).
    :param clock: what "now" is (tests pass a ``FakeClock``); default: the service's.
    :param sink_timeout: the longest one sink may take for one alert, retries included.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        service: DeadLetterQueue,
        config: AlertsConfig | None = None,
        *,
        sinks: Mapping[str, Sink] | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        sink_timeout: float = 60.0,
    ) -> None:
        self.service = service
        self.config = config or AlertsConfig()
        self.sinks: dict[str, Sink] = dict(self.config.sinks if sinks is None else sinks)
        self.clock = clock or service.clock
        self.owner = owner or owner_id()
        self.sink_failures: dict[str, int] = dict.fromkeys(self.sinks, 0)
        self.evaluations = 0
        self._sink_timeout = sink_timeout
        self._state = StateStore(service)
        self._stopping: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        service: DeadLetterQueue,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Monitor:
        """A monitor configured by ``[alerts]`` and ``[topics.NAME.alerts]``; ``environ``
        supplies the secrets named by ``*_env`` keys. Raises ``ConfigError``."""
        return cls(service, load(settings, environ), clock=clock)

    def sink_names(self) -> list[str]:
        """The names of the sinks, sorted."""
        return sorted(self.sinks)

    # -- one evaluation ----------------------------------------------------------------
    async def evaluate_once(self) -> list[Alert]:
        """Evaluate every topic once and send what changed; return the alerts sent.

        A replica that does not hold the lock does nothing and returns ``[]``.
        """
        now = self.clock.now()
        ttl = timedelta(seconds=self.config.lock_ttl or max(3 * self.config.interval, 30.0))
        if not await asyncio.to_thread(self._state.acquire, self.owner, now, ttl):
            return []
        alerts = await asyncio.to_thread(self._decide, now)
        await self.deliver(alerts)
        self.evaluations += 1
        return alerts

    def _decide(self, now: datetime) -> list[Alert]:
        measured, oldest = self._measure(now)
        snapshot = self._state.all()
        topics = set(measured) | set(self.config.topics) | {s.topic for s in snapshot.values()}
        alerts: list[Alert] = []
        for topic in sorted(topics):
            findings = self._findings(topic, measured.get(topic, Measurement()), snapshot)
            for finding in findings:
                seen = snapshot.get(state_key(topic, finding.family))
                change = self._commit(topic, finding, seen, now)
                if change is not None and change.notify:
                    alerts.append(self._alert(change, measured.get(topic), oldest.get(topic), now))
        return alerts

    def _findings(
        self, topic: str, measured: Measurement, snapshot: Mapping[str, AlertState]
    ) -> list[Finding]:
        rules = self.config.rules_for(topic)
        found = evaluate(rules, measured)
        for family in FAMILIES:  # a rule turned off (or a topic gone) resolves its alert
            if family == "dlq_depth" and rules.watches_dlq_depth:
                continue  # on: measured, or the broker could not be asked (keep the state)
            if family not in found and state_key(topic, family) in snapshot:
                found[family] = Finding(
                    family=family, severity="ok", rule=family, value=0, threshold=None
                )
        return [found[family] for family in FAMILIES if family in found]

    def _commit(
        self, topic: str, finding: Finding, seen: AlertState | None, now: datetime
    ) -> Transition | None:
        """Decide on the snapshot; if something changes, decide again on the current state
        and write it with compare-and-set: only the replica that wins notifies."""
        decide = functools.partial(
            transition,
            finding=finding,
            topic=topic,
            now=now,
            cooldown=timedelta(seconds=self.config.cooldown),
            new_id=uuid.uuid4().hex,
        )
        if decide(seen) is None:
            return None
        current, version = self._state.get(state_key(topic, finding.family))
        change = decide(current)
        if change is None or not self._state.put(change.state, version):
            return None
        return change

    def _measure(self, now: datetime) -> tuple[dict[str, Measurement], dict[str, float]]:
        stats = self.service.stats()
        topics = set(stats.counts) | set(self.config.topics)
        oldest = {t: (now - at).total_seconds() for t, at in stats.oldest_dead_at.items()}
        new_dead = self._new_dead(topics)
        stalled = self._stalled(topics, now)
        depths = self._dlq_depths(topics)
        measured = {}
        for topic in topics:
            dead = stats.counts.get(topic, {}).get(Status.DEAD, 0)
            measured[topic] = Measurement(
                dead=dead,
                oldest_age=oldest.get(topic),
                new_dead=new_dead.get(topic, 0),
                expiring=self._expiring(topic, dead, now),
                stalled=stalled.get(topic, 0),
                dlq_depth=depths.get(topic),
            )
        return measured, oldest

    def _dlq_depths(self, topics: Iterable[str]) -> dict[str, int]:
        """Records held by the Kafka DLQ topic of each topic with a ``dlq_depth`` rule
        (a DLQ topic that does not exist holds none). The Kafka code is imported only
        when such a rule is on; a broker that cannot be asked is logged, and those rules
        keep their state until the next evaluation."""
        names = {
            topic: self.config.dlq_topic(topic)
            for topic in topics
            if self.config.rules_for(topic).watches_dlq_depth
        }
        if not names:
            return {}
        from redrive.transports.kafka.depth import dlq_depth

        try:
            depths = dlq_depth(self.config.kafka, sorted(set(names.values())))
        except Exception as exc:  # KafkaException: the broker is down or slow
            logger.warning("could not read the Kafka DLQ depths: %s", exc)
            return {}
        return {topic: depths.get(name) or 0 for topic, name in names.items()}

    def _stalled(self, topics: Iterable[str], now: datetime) -> dict[str, int]:
        """Scheduled records per topic overdue by the topic's ``stalled`` duration with no
        live worker for their handler (one look at the heartbeats for all topics)."""
        limits = {}
        for topic in topics:
            rules = self.config.rules_for(topic)
            if rules.enabled and rules.stalled is not None:
                limits[topic] = rules.stalled
        if not limits:
            return {}
        counts: dict[str, int] = {}
        for item in self.service.stalled(min(limits.values())):
            limit = limits.get(item.topic)
            if limit is not None and now - item.oldest_due_at >= limit:
                counts[item.topic] = counts.get(item.topic, 0) + item.count
        return counts

    def _new_dead(self, topics: Iterable[str]) -> dict[str, int]:
        """New dead letters per topic within its ``rate_window`` (one query per window)."""
        windows: dict[timedelta, set[str]] = {}
        for topic in topics:
            rules = self.config.rules_for(topic)
            if rules.enabled and rules.rate is not None:
                windows.setdefault(rules.rate_window, set()).add(topic)
        counts: dict[str, int] = {}
        for window, wanted in windows.items():
            for _, topic, n in self.service.timeline(window):
                if topic in wanted:
                    counts[topic] = counts.get(topic, 0) + n
        return counts

    def _expiring(self, topic: str, dead: int, now: datetime) -> int | None:
        """Dead letters that retention deletes within the ``expiring`` window: those last
        updated before ``now - (retention - window)``; None without a retention."""
        retention = self.config.retention.get(topic)
        window = self.config.rules_for(topic).expiring
        if retention is None or window is None:
            return None
        if dead == 0:
            return 0
        cutoff = now - max(retention - window, timedelta(0))
        return self.service.count(topic=topic, status=Status.DEAD, updated_before=cutoff)

    def _alert(
        self,
        change: Transition,
        measured: Measurement | None,
        oldest: float | None,
        now: datetime,
    ) -> Alert:
        state = change.state
        rules = self.config.rules_for(state.topic)
        resolved = change.kind == "resolved"
        finding = Finding(
            family=state.family,
            severity=state.severity,  # type: ignore[arg-type]
            rule=state.rule,
            value=state.value,
            threshold=state.threshold,
        )
        message = describe(
            state.topic,
            finding,
            rules,
            resolved=resolved,
            dlq_topic=self.config.dlq_topic(state.topic),
        )
        groups = [] if resolved else self._groups(state.topic)
        return Alert(
            alert_id=state.alert_id,
            timestamp=now,
            status="resolved" if resolved else "firing",
            severity=self._severity(change),
            topic=state.topic,
            rule=state.rule,
            message=message,
            value=state.value,
            threshold=state.threshold,
            oldest_age_seconds=oldest,
            dead_letters=measured.dead if measured else 0,
            groups=groups,
            console_url=console_link(self.config.public_url, state.topic),
        )

    def _severity(self, change: Transition) -> str:
        if change.kind != "resolved":
            return change.state.severity
        # a resolution carries the severity of what it ends: read it before it was reset
        critical = change.state.rule in ("critical_count", "dlq_depth_critical")
        return "critical" if critical else "warning"

    def _groups(self, topic: str) -> list[dict[str, JSON]]:
        if self.config.top_groups <= 0:
            return []
        groups = self.service.groups(topic=topic, limit=self.config.top_groups)
        return [group_summary(group) for group in groups]

    # -- delivery ----------------------------------------------------------------------
    async def deliver(self, alerts: Iterable[Alert]) -> None:
        """Send each alert to every sink that accepts it, all at once; a failing or slow
        sink is logged and counted, and never delays or stops the others."""
        sends = [
            self._send(sink, alert)
            for alert in alerts
            for sink in self.sinks.values()
            if accepts(sink, alert)
        ]
        await asyncio.gather(*sends)

    async def _send(self, sink: Sink, alert: Alert) -> None:
        reason = await self._attempt(sink, alert)
        if reason is not None:
            self.sink_failures[sink.name] = self.sink_failures.get(sink.name, 0) + 1
            logger.warning("alert sink failed: %s (alert %s)", reason, alert.alert_id)

    async def _attempt(self, sink: Sink, alert: Alert) -> str | None:
        """None when delivered, else why not (safe to log: no URL, no secret)."""
        try:
            await asyncio.wait_for(sink.send(alert), self._sink_timeout)
        except SinkError as exc:
            return str(exc)
        except TimeoutError:
            return f"{sink.name}: timed out after {self._sink_timeout:g}s"
        except Exception as exc:  # a bug in a custom sink: name its class, not its message
            return f"{sink.name}: {type(exc).__name__}"
        return None

    async def send_test(self, sink_name: str) -> None:
        """Send a test alert to one sink; raises ``KeyError`` or ``SinkError`` (why)."""
        sink = self.sinks[sink_name]
        reason = await self._attempt(sink, test_alert(self.clock.now(), self.config.public_url))
        if reason is not None:
            raise SinkError(reason)

    # -- running -----------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Evaluate every ``interval`` until :meth:`stop`; store errors are logged and the
        next evaluation tries again."""
        self._stopping = self._stopping or asyncio.Event()
        while not self._stopping.is_set():
            try:
                await self.evaluate_once()
            except Exception as exc:  # the store may be down for a while: keep watching
                logger.warning("alert evaluation failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.interval)
        await self.release()

    async def release(self) -> None:
        """Give the replica lock up (if this monitor holds it), so the next evaluation,
        here or in another process, does not wait for it to expire."""
        await asyncio.to_thread(self._state.release, self.owner, self.clock.now())

    async def start(self) -> None:
        """Run :meth:`run_forever` as a task of the running loop (e.g. an app's lifespan)."""
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self.run_forever(), name="redrive-monitor")

    async def wait(self) -> None:
        """Wait until the monitor :meth:`start` began has been stopped."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop after the evaluation in progress, and give the lock up."""
        if self._stopping is not None:
            self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- status ------------------------------------------------------------------------
    def status(self) -> list[RuleStatus]:
        """Every rule of every topic: what it says now and what was last notified."""
        now = self.clock.now()
        measured, _ = self._measure(now)
        snapshot = self._state.all()
        topics = set(measured) | {s.topic for s in snapshot.values()}
        rows = []
        for topic in sorted(topics):
            for finding in self._findings(topic, measured.get(topic, Measurement()), snapshot):
                stored = snapshot.get(state_key(topic, finding.family))
                rows.append(
                    RuleStatus(
                        topic=topic,
                        family=finding.family,
                        severity=finding.severity,
                        rule=finding.rule,
                        value=finding.value,
                        threshold=finding.threshold,
                        notified=stored.severity if stored else "ok",
                        since=stored.since if stored else None,
                        last_sent_at=stored.last_sent_at if stored else None,
                    )
                )
        return rows


def test_alert(now: datetime, public_url: str | None) -> Alert:
    """The alert ``redrive alerts test`` sends."""
    return Alert(
        alert_id=uuid.uuid4().hex,
        timestamp=now,
        status="firing",
        severity="warning",
        topic="redrive.test",
        rule="test",
        message="redrive test alert: if you can read this, the sink works",
        value=0,
        threshold=None,
        oldest_age_seconds=None,
        dead_letters=0,
        console_url=public_url,
        test=True,
    )
