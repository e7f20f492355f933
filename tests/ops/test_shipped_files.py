"""The shipped Prometheus rules, Grafana dashboard and docs use only exported metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from redrive.ops.alerts import Monitor
from redrive.ops.metrics import DeadLetterCollector, MonitorCollector, PrometheusHook
from redrive.service import DeadLetterQueue

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "redrive-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "redrive-dashboard.json"
DOCS = ROOT / "docs" / "observability.md"
NAME = re.compile(r"\bredrive_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


@pytest.fixture
def exported(service: DeadLetterQueue) -> set[str]:
    """Every series name redrive can expose, read from a real exposition."""
    registry = CollectorRegistry()
    PrometheusHook(registry=registry)
    registry.register(DeadLetterCollector(service))
    registry.register(MonitorCollector(Monitor(service)))
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def expressions_of_rules() -> list[str]:
    data = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in data["groups"] for rule in group["rules"]]


def expressions_of_dashboard() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in data["panels"] for target in panel["targets"]]


def test_rules_are_valid_alerting_rules() -> None:
    """Every rule has an alert name, an expression and a severity label."""
    data = yaml.safe_load(RULES.read_text())
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    assert rules
    assert all(rule["alert"] and rule["expr"] and rule["labels"]["severity"] for rule in rules)


def test_rules_use_exported_metrics(exported: set[str]) -> None:
    """Every metric the Prometheus rules use is one the code exports."""
    used = {name for expr in expressions_of_rules() for name in NAME.findall(expr)}
    assert used
    assert used <= exported, sorted(used - exported)


def test_dashboard_uses_exported_metrics(exported: set[str]) -> None:
    """Every metric the Grafana dashboard queries is one the code exports."""
    used = {name for expr in expressions_of_dashboard() for name in NAME.findall(expr)}
    assert used
    assert used <= exported, sorted(used - exported)


def test_dashboard_panels_have_unique_ids() -> None:
    """Grafana needs each panel id once."""
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


def test_docs_table_lists_every_metric(exported: set[str]) -> None:
    """The metrics table in docs/observability.md names every exported metric."""
    text = DOCS.read_text()
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in exported}
    missing = {name for name in bases if f"| `{name}` |" not in text}
    assert not missing, sorted(missing)


def test_docs_mention_only_exported_metrics(exported: set[str]) -> None:
    """The docs' PromQL and prose mention no metric the code does not export."""
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in exported}
    used = set(NAME.findall(DOCS.read_text()))
    assert used <= exported | bases, sorted(used - exported - bases)
