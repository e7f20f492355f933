"""docs/kafka.md's code blocks run as written (against the test broker)."""

from __future__ import annotations

import asyncio
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from redrive.config import from_mapping
from redrive.ops.cli.app import app
from redrive.transports.kafka import DlqMessage, KafkaConsumer, KafkaSettings
from redrive.transports.kafka.depth import DlqDepthCollector
from tests.helpers import eventually
from tests.kafka.conftest import CLIENT, Broker
from tests.kafka.support import create_topic, produce

pytestmark = pytest.mark.kafka

DOC = Path(__file__).resolve().parents[2] / "docs" / "kafka.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
NOT_RUN = ("pip install", "redrive kafka run", "redrive retry")  # installs; long-running; NATS's


def blocks(language: str, broker: Broker) -> list[str]:
    """The doc's blocks in ``language``, pointed at the test broker."""
    text = DOC.read_text().replace("localhost:9092", broker.bootstrap)
    return [code for lang, code in BLOCK.findall(text) if lang == language]


async def test_python_blocks_run(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Each Python block runs; the first one's consumer charges an order from the topic."""
    monkeypatch.chdir(tmp_path)
    consumers = []
    for code in blocks("python", broker):
        scope: dict[str, Any] = {"__name__": "kafka_docs"}
        exec(compile(code, str(DOC), "exec"), scope)
        consumers.append(scope["consumer"])
    first: KafkaConsumer = consumers[0]
    assert consumers[1].ordering == "key"
    create_topic(broker.bootstrap, "orders.created")
    produce(broker.bootstrap, "orders.created", [{"order_id": 42, "amount": 5}], key="c-42")
    first._config.update(CLIENT)  # Tansu joins in session.timeout / 2: the tests' 6 s
    out: list[str] = []

    def charged() -> bool:
        out.append(capsys.readouterr().out)
        return "charging order 42 for c-42" in "".join(out)

    async with first:
        await eventually(charged)
    await asyncio.to_thread(first.store.close)


def test_toml_and_json_blocks_parse(broker: Broker) -> None:
    """The config block is a valid [kafka] table and the JSON block a DlqMessage."""
    (toml,) = blocks("toml", broker)
    kafka = KafkaSettings.of(from_mapping(tomllib.loads(toml)))
    spec = kafka.dlq_spec("orders.created")
    assert (spec.name, spec.partitions, spec.critical) == ("orders.created.dlq", 6, 20)
    assert spec.configs == {"cleanup.policy": "delete", "retention.ms": "604800000"}
    (example,) = blocks("json", broker)
    message = DlqMessage.from_json(example.encode())
    assert message.original_offset == 4711


def test_bash_blocks_run(broker: Broker, tmp_path: Path) -> None:
    """Each ``redrive kafka`` command of the doc runs with the doc's config and exits 0."""
    (toml,) = blocks("toml", broker)
    config = tmp_path / "redrive.toml"
    config.write_text(toml)
    create_topic(broker.bootstrap, "orders.DLT")  # what `import` reads, as Spring wrote it
    produce(
        broker.bootstrap,
        "orders.DLT",
        [{"n": 1}],
        headers=[("kafka_dlt-original-topic", b"orders")],
    )
    store = f"sqlite:///{tmp_path / 'redrive.db'}"
    ran = 0
    for code in blocks("bash", broker):
        for line in code.strip().splitlines():
            if line.startswith(NOT_RUN):
                continue
            args = shlex.split(line)
            assert args[0] == "redrive"
            result = CliRunner().invoke(app, ["--store", store, "--config", str(config), *args[1:]])
            assert result.exit_code == 0, f"{line}: {result.output}"
            ran += 1
    assert ran == 5


def test_yaml_block_alerts_on_the_exported_gauge(broker: Broker) -> None:
    """The Prometheus rules of the doc use the gauge DlqDepthCollector exports."""
    (rules,) = blocks("yaml", broker)
    data = yaml.safe_load(rules)
    exprs = [rule["expr"] for group in data["groups"] for rule in group["rules"]]
    registry = CollectorRegistry()
    registry.register(DlqDepthCollector({"bootstrap.servers": broker.bootstrap}, []))
    exported = {family.name for family in registry.collect()}
    assert exprs
    assert {re.split(r"[{ ]", expr, maxsplit=1)[0] for expr in exprs} <= exported
