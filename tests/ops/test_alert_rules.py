"""Alert rules, state transitions and the ``[alerts]`` config: pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redrive.config import Settings, from_mapping
from redrive.exceptions import ConfigError
from redrive.ops.alerts import load
from redrive.ops.alerts.rules import Finding, Measurement, Severity, TopicRules, evaluate
from redrive.ops.alerts.sinks import LogSink, SlackSink, WebhookSink
from redrive.ops.alerts.state import AlertState, transition

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(minutes=15)
RFQ = TopicRules(warn_count=10, critical_count=50)


def finding(severity: Severity, value: float = 0) -> Finding:
    rule = {"ok": "count", "warning": "warn_count", "critical": "critical_count"}[severity]
    return Finding(family="count", severity=severity, rule=rule, value=value, threshold=10)


def step(
    previous: AlertState | None, found: Finding, at: datetime
) -> tuple[str | None, AlertState | None]:
    change = transition(previous, found, topic="rfq", now=at, cooldown=COOLDOWN, new_id="new")
    return (None, previous) if change is None else (change.kind, change.state)


class TestEvaluate:
    @pytest.mark.parametrize(
        ("dead", "severity", "rule"),
        [
            (9, "ok", "count"),
            (10, "warning", "warn_count"),
            (49, "warning", "warn_count"),
            (50, "critical", "critical_count"),
        ],
    )
    def test_count_thresholds(self, dead: int, severity: str, rule: str) -> None:
        """Seed 002's rfq thresholds: warning from 10, critical from 50 dead letters."""
        found = evaluate(RFQ, Measurement(dead=dead))["count"]
        assert (found.severity, found.rule) == (severity, rule)

    def test_max_age(self) -> None:
        """The oldest dead letter over ``max_age`` is a warning."""
        rules = TopicRules(max_age=timedelta(hours=1))
        assert evaluate(rules, Measurement(oldest_age=3600))["max_age"].severity == "warning"
        assert evaluate(rules, Measurement(oldest_age=3599))["max_age"].severity == "ok"

    def test_rate_is_off_by_default(self) -> None:
        """Without a ``rate`` threshold, no rate rule is evaluated."""
        assert "rate" not in evaluate(TopicRules(), Measurement(new_dead=1000))

    def test_rate(self) -> None:
        """``rate`` new dead letters within the window is a warning."""
        assert evaluate(TopicRules(rate=5), Measurement(new_dead=5))["rate"].severity == "warning"

    def test_expiring_needs_a_retention(self) -> None:
        """A topic without retention has no expiring rule; with one, any expiring warns."""
        assert "expiring" not in evaluate(TopicRules(), Measurement(expiring=None))
        found = evaluate(TopicRules(), Measurement(expiring=3))["expiring"]
        assert (found.severity, found.value) == ("warning", 3)

    def test_disabled_topic(self) -> None:
        """``enabled = false`` turns every rule of the topic off."""
        assert evaluate(TopicRules(enabled=False), Measurement(dead=10_000)) == {}


class TestTransition:
    def test_fires_when_crossed(self) -> None:
        """Crossing a threshold starts an episode and notifies."""
        kind, state = step(None, finding("warning", 12), T0)
        assert kind == "fired"
        assert state is not None and (state.severity, state.alert_id) == ("warning", "new")

    def test_quiet_during_cooldown(self) -> None:
        """An unchanged alert is not repeated within the cooldown."""
        _, state = step(None, finding("warning", 12), T0)
        kind, _ = step(state, finding("warning", 13), T0 + COOLDOWN - timedelta(seconds=1))
        assert kind is None

    def test_repeats_after_cooldown(self) -> None:
        """A still-firing alert is repeated once the cooldown is over, same episode."""
        _, state = step(None, finding("warning", 12), T0)
        kind, repeated = step(state, finding("warning", 13), T0 + COOLDOWN)
        assert kind == "repeated"
        assert repeated is not None and repeated.alert_id == "new"

    def test_escalates_at_once(self) -> None:
        """Warning to critical notifies at once, whatever the cooldown."""
        _, state = step(None, finding("warning", 12), T0)
        kind, escalated = step(state, finding("critical", 60), T0 + timedelta(seconds=1))
        assert kind == "escalated"
        assert escalated is not None and escalated.severity == "critical"

    def test_deescalation_is_recorded_not_sent(self) -> None:
        """Critical back to warning within the cooldown changes the state silently."""
        _, state = step(None, finding("critical", 60), T0)
        later = T0 + timedelta(minutes=1)
        change = transition(
            state, finding("warning", 20), topic="rfq", now=later, cooldown=COOLDOWN, new_id="x"
        )
        assert change is not None and (change.kind, change.notify) == ("changed", False)

    def test_resolves(self) -> None:
        """Back under the thresholds notifies a resolution of the same episode."""
        _, state = step(None, finding("warning", 12), T0)
        kind, resolved = step(state, finding("ok", 3), T0 + timedelta(minutes=1))
        assert kind == "resolved"
        assert resolved is not None and (resolved.severity, resolved.alert_id) == ("ok", "new")

    def test_nothing_while_ok(self) -> None:
        """A rule that stays under its thresholds changes nothing."""
        assert step(None, finding("ok", 3), T0) == (None, None)


def settings(data: Mapping[str, Any]) -> Settings:
    return from_mapping(data, source="redrive.toml")


class TestConfig:
    def test_seed_thresholds_per_topic(self) -> None:
        """Per-topic tables override the defaults; other topics keep the defaults."""
        config = load(
            settings(
                {
                    "topics": {
                        "rfq": {"alerts": {"warn_count": 10, "critical_count": 50}},
                        "trade": {"alerts": {"warn_count": 5, "critical_count": 20}},
                        "market-data": {"alerts": {"warn_count": 100, "critical_count": 500}},
                    },
                    "alerts": {"defaults": {"max_age": "2h"}},
                }
            )
        )
        trade = config.rules_for("trade")
        assert (trade.warn_count, trade.critical_count, trade.max_age) == (
            5,
            20,
            timedelta(hours=2),
        )
        assert config.rules_for("elsewhere").warn_count == 1

    def test_defaults(self) -> None:
        """Without an [alerts] table: 60 s interval, 15 min cooldown, a log sink."""
        config = load(settings({}))
        assert (config.interval, config.cooldown) == (60, 900)
        assert [type(s) for s in config.sinks.values()] == [LogSink]

    def test_false_turns_a_rule_off(self) -> None:
        """``max_age = false`` disables the age rule."""
        config = load(settings({"alerts": {"defaults": {"max_age": False}}}))
        assert config.defaults.max_age is None

    def test_secret_from_environment(self) -> None:
        """``url_env`` and ``secret_env`` read the named variables."""
        data = {
            "alerts": {
                "sinks": {
                    "ops": {"type": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_KEY"},
                    "chat": {"type": "slack", "url": "https://hooks.slack.invalid/T/B/X"},
                }
            }
        }
        config = load(settings(data), {"HOOK_URL": "http://127.0.0.1:9/x", "HOOK_KEY": "k"})
        assert isinstance(config.sinks["ops"], WebhookSink)
        assert isinstance(config.sinks["chat"], SlackSink)

    @pytest.mark.parametrize(
        ("data", "key"),
        [
            ({"alerts": {"intervall": "1m"}}, "alerts.intervall"),
            ({"alerts": {"interval": "soon"}}, "alerts.interval"),
            ({"alerts": {"defaults": {"warn_count": "ten"}}}, "alerts.defaults.warn_count"),
            (
                {"topics": {"rfq": {"alerts": {"warn_count": 50, "critical_count": 10}}}},
                "topics.rfq.alerts.critical_count",
            ),
            ({"alerts": {"sinks": {"x": {"type": "pager"}}}}, "alerts.sinks.x.type"),
            ({"alerts": {"sinks": {"x": {"type": "webhook"}}}}, "alerts.sinks.x.url"),
            (
                {"alerts": {"sinks": {"x": {"type": "webhook", "url_env": "NOPE"}}}},
                "alerts.sinks.x.url_env",
            ),
            (
                {"alerts": {"sinks": {"x": {"type": "email", "host": "h", "from": "a@b"}}}},
                "alerts.sinks.x.to",
            ),
        ],
    )
    def test_errors_name_the_key(self, data: dict[str, object], key: str) -> None:
        """A bad value is one error naming the file and the key."""
        with pytest.raises(ConfigError) as caught:
            load(settings(data), {})
        assert str(caught.value).startswith(f"redrive.toml: {key}: ")
        assert "\n" not in str(caught.value)

    def test_errors_never_show_a_secret(self) -> None:
        """A URL that is not http(s) is refused without echoing it (it may be a token)."""
        data = {"alerts": {"sinks": {"x": {"type": "slack", "url": "hooks.slack.com/SECRET"}}}}
        with pytest.raises(ConfigError) as caught:
            load(settings(data), {})
        assert "SECRET" not in str(caught.value)
