"""The ``redrive kafka`` commands against a real broker and a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from redrive.ops.cli.app import app
from redrive.transports.kafka.depth import DlqDepthCollector
from tests.kafka.conftest import Broker
from tests.kafka.support import produce

pytestmark = pytest.mark.kafka


def redrive(tmp_path: Path, config: str, *args: str) -> Any:
    """Run ``redrive --config FILE ARGS`` in-process on a SQLite file in ``tmp_path``."""
    path = tmp_path / "redrive.toml"
    path.write_text(config)
    store = f"sqlite:///{tmp_path / 'redrive.db'}"
    return CliRunner().invoke(app, ["--store", store, "--config", str(path), *args])


def test_provision_then_depth_then_import(broker: Broker, tmp_path: Path, names: Any) -> None:
    """provision creates the configured DLQ topic and then has nothing to change; depth
    counts its records against the dlq_depth alert thresholds (and as a Prometheus gauge);
    import reads them into the store once."""
    config = f"""
[kafka]
bootstrap_servers = "{broker.bootstrap}"
topics = ["{names.topic}"]

[kafka.dlq]
partitions = 2
"retention.ms" = 604800000

[topics."{names.topic}".alerts]
dlq_depth_warn = 1
dlq_depth_critical = 2
"""
    first = redrive(tmp_path, config, "kafka", "provision")
    assert first.exit_code == 0, first.output
    assert f"created {names.topic}.dlq: 2 partitions" in first.output
    second = redrive(tmp_path, config, "kafka", "provision")
    assert second.output.strip().endswith("nothing to change")

    dlq = f"{names.topic}.dlq"
    produce(
        broker.bootstrap,
        dlq,
        [{"a": 1}],
        partition=0,
        headers=[("kafka_dlt-original-topic", names.topic.encode())],
    )
    depth = redrive(tmp_path, config, "kafka", "depth", "--check")
    assert depth.exit_code == 0
    assert f"{dlq}  1  warn" in depth.output
    produce(broker.bootstrap, dlq, [{"a": 2}], partition=1)
    critical = redrive(tmp_path, config, "kafka", "depth", "--check")
    assert critical.exit_code == 1
    assert "2  critical" in critical.output
    registry = CollectorRegistry()
    registry.register(DlqDepthCollector({"bootstrap.servers": broker.bootstrap}, [dlq]))
    assert f'redrive_kafka_dlq_depth{{topic="{dlq}"}} 2.0' in generate_latest(registry).decode()

    imported = redrive(tmp_path, config, "kafka", "import", dlq)
    assert imported.exit_code == 0, imported.output
    assert "read 2 records" in imported.output
    assert "imported 2" in imported.output
    listed = redrive(tmp_path, config, "list", "--json")
    assert listed.output.count('"status": "dead"') == 2


def test_missing_brokers_is_a_one_line_error(tmp_path: Path) -> None:
    """Without brokers in the options or the config, the command exits 2 with one line."""
    result = redrive(tmp_path, "", "kafka", "depth", "--topic", "orders")
    assert result.exit_code == 2
    assert "--bootstrap-servers" in result.output
