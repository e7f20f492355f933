"""The monitor's ``dlq_depth`` rule: thresholds per Kafka DLQ topic (seed 002), read from
the real broker's watermarks by ``redrive monitor --once``.

Tansu's high watermark is wrong after a multi-record batch, so the records are produced
one per request (``support.produce``); it has no DeleteRecords (the broker panics), so the
DLQ topic is drained by deleting it, which Apache Kafka supports too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from redrive.config import from_mapping
from redrive.exceptions import ConfigError
from redrive.ops.alerts.config import load
from redrive.ops.alerts.rules import Measurement, TopicRules, describe, evaluate
from redrive.ops.cli.app import app
from tests.helpers import free_port
from tests.kafka.conftest import Broker
from tests.kafka.support import create_topic, produce

pytestmark = pytest.mark.kafka


def monitor_once(tmp_path: Path, config: str) -> list[dict[str, Any]]:
    """``redrive --json monitor --once`` on a SQLite file in ``tmp_path``: the alerts sent."""
    path = tmp_path / "redrive.toml"
    path.write_text(config)
    store = f"sqlite:///{tmp_path / 'redrive.db'}"
    result = CliRunner().invoke(
        app, ["--store", store, "--config", str(path), "--json", "monitor", "--once"]
    )
    assert result.exit_code == 0, result.output
    alerts: list[dict[str, Any]] = json.loads(result.output)
    return [alert for alert in alerts if alert["rule"].startswith("dlq_depth")]


def config_for(bootstrap: str, topic: str) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"

[alerts]
cooldown = "1h"

[topics."{topic}".alerts]
dlq_depth_warn = 2
dlq_depth_critical = 4
"""


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic]).values():
        future.result(10)


def test_depth_fires_escalates_and_resolves(broker: Broker, tmp_path: Path, names: Any) -> None:
    """Records on the DLQ topic fire a warning, then a critical alert naming the DLQ topic
    and its depth; once the topic is drained (deleted), the alert resolves."""
    dlq = f"{names.topic}.dlq"
    create_topic(broker.bootstrap, dlq)
    config = config_for(broker.bootstrap, names.topic)
    assert monitor_once(tmp_path, config) == []  # empty: under the thresholds

    produce(broker.bootstrap, dlq, [{"n": 1}, {"n": 2}])
    (warning,) = monitor_once(tmp_path, config)
    assert (warning["status"], warning["severity"], warning["rule"]) == (
        "firing",
        "warning",
        "dlq_depth_warn",
    )
    assert (warning["topic"], warning["value"], warning["threshold"]) == (names.topic, 2, 2)
    assert f"DLQ topic {dlq} holds 2 records (warning threshold 2)" in warning["message"]
    assert monitor_once(tmp_path, config) == []  # unchanged, within the cooldown

    produce(broker.bootstrap, dlq, [{"n": 3}, {"n": 4}])
    (critical,) = monitor_once(tmp_path, config)
    assert (critical["severity"], critical["rule"], critical["value"]) == (
        "critical",
        "dlq_depth_critical",
        4,
    )
    assert critical["alert_id"] == warning["alert_id"]  # one episode
    assert f"{dlq} holds 4 records (critical threshold 4)" in critical["message"]

    delete_topic(broker.bootstrap, dlq)
    (resolved,) = monitor_once(tmp_path, config)
    assert (resolved["status"], resolved["severity"], resolved["value"]) == (
        "resolved",
        "critical",
        0,
    )
    assert resolved["alert_id"] == warning["alert_id"]
    assert f"resolved: DLQ topic {dlq} holds 0 records" in resolved["message"]


def test_an_unreachable_broker_keeps_the_alert(
    broker: Broker, tmp_path: Path, names: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """While the broker cannot be asked, a firing depth alert is neither resolved nor
    repeated: the evaluation logs why and the other rules go on."""
    dlq = f"{names.topic}.dlq"
    create_topic(broker.bootstrap, dlq)
    produce(broker.bootstrap, dlq, [{"n": 1}, {"n": 2}])
    (fired,) = monitor_once(tmp_path, config_for(broker.bootstrap, names.topic))
    assert fired["status"] == "firing"

    nobody = f"127.0.0.1:{free_port()}"
    assert monitor_once(tmp_path, config_for(nobody, names.topic)) == []
    assert "could not read the Kafka DLQ depths" in caplog.text

    delete_topic(broker.bootstrap, dlq)
    (resolved,) = monitor_once(tmp_path, config_for(broker.bootstrap, names.topic))
    assert (resolved["status"], resolved["alert_id"]) == ("resolved", fired["alert_id"])


def test_depth_rule_needs_the_brokers() -> None:
    """A dlq_depth rule without [kafka] bootstrap_servers is a ConfigError naming the key."""
    settings = from_mapping(
        {"topics": {"rfq": {"alerts": {"dlq_depth_warn": 1}}}}, source="redrive.toml"
    )
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers"):
        load(settings)


def test_depth_thresholds_are_validated() -> None:
    """Thresholds are integers >= 1, critical at least warn; without them the rule is off
    and the monitor needs no Kafka settings."""
    bad = {"kafka": {"bootstrap_servers": "b:1"}, "alerts": {"defaults": {"dlq_depth_warn": 0}}}
    with pytest.raises(ConfigError, match=r"alerts\.defaults\.dlq_depth_warn"):
        load(from_mapping(bad))
    rules = {"dlq_depth_warn": 5, "dlq_depth_critical": 2}
    with pytest.raises(ConfigError, match=r"dlq_depth_critical"):
        load(from_mapping({"topics": {"rfq": {"alerts": rules}}}))
    config = load(from_mapping({"topics": {"rfq": {"alerts": {"warn_count": 3}}}}))
    assert config.kafka == {}
    assert not config.rules_for("rfq").watches_dlq_depth


def test_depth_finding_and_message() -> None:
    """The rule's levels, and the message naming the DLQ topic; unread depth: no finding."""
    rules = TopicRules(dlq_depth_warn=10, dlq_depth_critical=50)
    ok = evaluate(rules, Measurement(dlq_depth=9))["dlq_depth"]
    warn = evaluate(rules, Measurement(dlq_depth=10))["dlq_depth"]
    critical = evaluate(rules, Measurement(dlq_depth=57))["dlq_depth"]
    assert [f.severity for f in (ok, warn, critical)] == ["ok", "warning", "critical"]
    assert [f.rule for f in (ok, warn, critical)] == [
        "dlq_depth",
        "dlq_depth_warn",
        "dlq_depth_critical",
    ]
    assert "dlq_depth" not in evaluate(rules, Measurement())
    assert "dlq_depth" not in evaluate(TopicRules(), Measurement(dlq_depth=100))
    message = describe("rfq", critical, rules, dlq_topic="rfq-dead")
    assert message == "rfq: DLQ topic rfq-dead holds 57 records (critical threshold 50)"
