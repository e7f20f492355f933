"""``redrive kafka run`` until SIGTERM, the kafka commands' JSON output, and the refusals of
an ``--app`` that is no consumer or a command with no topic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_support import REDRIVE, ROOT
from tests.helpers import wait_for
from tests.kafka.conftest import Broker
from tests.kafka.support import produce
from tests.kafka.test_cli import redrive

pytestmark = pytest.mark.kafka


def test_run_consumes_until_sigterm_then_stops_cleanly(
    broker: Broker, tmp_path: Path, names: Any
) -> None:
    """The consumer of ``--app`` (a factory) says what it consumes, handles a message, and
    on SIGTERM leaves its group and exits 0."""
    notes = tmp_path / "notes"
    produce(broker.bootstrap, names.topic, [{"n": 1}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")} | {
        "PYTHONPATH": str(ROOT),
        "REDRIVE_STORE_URL": f"sqlite:///{tmp_path / 'redrive.db'}",
        "KAFKA_BOOTSTRAP": broker.bootstrap,
        "KAFKA_GROUP": names.group,
        "KAFKA_TOPIC": names.topic,
        "CRASH_NOTES": str(notes),
    }
    child = subprocess.Popen(
        [REDRIVE, "kafka", "run", "--app", "tests.kafka.crash_app:make"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: notes.exists() and notes.read_text().split() == ["1"],
            timeout=30,
            what="the consumer handled the message",
        )
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == 0, err
    assert f"consuming {names.topic} as group {names.group}" in err
    assert "consumer stopped" in err


def test_run_refuses_an_app_that_is_no_consumer(tmp_path: Path) -> None:
    """``--app`` naming a value without a bus and topics is a one-line usage error."""
    (tmp_path / "kafka_cli_notaconsumer.py").write_text("def make():\n    return object()\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = redrive(tmp_path, "", "kafka", "run", "--app", "kafka_cli_notaconsumer:make")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 2
    expected = "--app: kafka_cli_notaconsumer:make is not a KafkaConsumer"
    assert f"{expected} (or a function returning one)" in result.output


def test_a_command_without_topics_says_where_to_name_them(broker: Broker, tmp_path: Path) -> None:
    """With no --topic and no [kafka] topics, provision exits 2 naming the option."""
    config = f'[kafka]\nbootstrap_servers = "{broker.bootstrap}"\n'
    result = redrive(tmp_path, config, "kafka", "provision")
    assert result.exit_code == 2
    assert "--topic: name the source topics (or topics in [kafka])" in result.output


def test_provision_depth_and_import_speak_json(broker: Broker, tmp_path: Path, names: Any) -> None:
    """--json gives each command's result as data: the provision actions, the depth per
    topic, and the counts an import read and imported."""
    config = f'[kafka]\nbootstrap_servers = "{broker.bootstrap}"\ntopics = ["{names.topic}"]\n'
    dlq = f"{names.topic}.dlq"
    provisioned = redrive(tmp_path, config, "kafka", "provision", "--json")
    assert provisioned.exit_code == 0, provisioned.output
    [change] = json.loads(provisioned.output)
    assert (change["topic"], change["action"]) == (dlq, "created")
    produce(broker.bootstrap, dlq, [{"a": 1}], partition=0)
    depth = redrive(tmp_path, config, "kafka", "depth", "--json")
    [measured] = json.loads(depth.output)
    assert measured["topic"] == dlq and measured["depth"] == 1
    imported = redrive(tmp_path, config, "kafka", "import", dlq, "--json")
    assert imported.exit_code == 0, imported.output
    counts = json.loads(imported.output)
    assert (counts["read"], counts["imported"]) == (1, 1)
