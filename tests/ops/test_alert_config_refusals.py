"""More alert settings that are refused with the file and the key (``[alerts]`` tables,
rules and sinks), and the sinks and rules that valid settings build."""

from __future__ import annotations

from typing import Any

import pytest

from redrive.config import Settings, from_mapping
from redrive.exceptions import ConfigError
from redrive.ops.alerts import load
from redrive.ops.alerts.email import EmailSink
from redrive.ops.alerts.sinks import LogSink
from tests.ops.test_sinks import ALERT, Inbox, smtp

__all__ = ["smtp"]  # the SMTP receiver fixture, shared with the sink tests


def settings(data: dict[str, Any]) -> Settings:
    return from_mapping(data, source="redrive.toml")


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"alerts": {"sinks": 3}}, "alerts.sinks", "expected a table, got 3"),
        ({"alerts": {"public_url": ""}}, "alerts.public_url", "a non-empty string"),
        ({"alerts": {"interval": 0}}, "alerts.interval", "a duration above zero"),
        (
            {"alerts": {"defaults": {"enabled": "yes"}}},
            "alerts.defaults.enabled",
            "expected true or false, got 'yes'",
        ),
        (
            {"alerts": {"defaults": {"rate_window": False}}},
            "alerts.defaults.rate_window",
            "expected a duration, got false",
        ),
        (
            {"alerts": {"sinks": {"x": {"type": "log", "min_severity": "info"}}}},
            "alerts.sinks.x.min_severity",
            "expected warning or critical, got 'info'",
        ),
        (
            {"alerts": {"sinks": {"x": {"type": "email", "host": "h", "from": "a@b", "to": []}}}},
            "alerts.sinks.x.to",
            "expected an address or a list of them, got []",
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], key: str, expected: str) -> None:
    """A bad value is one error naming the file, the key and what was wrong."""
    with pytest.raises(ConfigError) as caught:
        load(settings(data), {})
    message = str(caught.value)
    assert message.startswith(f"redrive.toml: {key}: ") and expected in message
    assert "\n" not in message


def test_a_rule_turned_off_and_a_disabled_topic() -> None:
    """``max_age = false`` turns that rule off; ``enabled = false`` is kept as set."""
    config = load(settings({"alerts": {"defaults": {"max_age": False, "enabled": False}}}), {})
    assert config.defaults.max_age is None
    assert config.defaults.enabled is False


async def test_a_log_sink_and_an_email_sink_with_one_address(smtp: tuple[Inbox, int]) -> None:
    """A ``log`` sink keeps its severity; an email sink's single ``to`` string is a list
    of one: the alert reaches that address."""
    inbox, port = smtp
    mail = {"type": "email", "host": "127.0.0.1", "port": port, "from": "a@b", "to": "ops@b"}
    data = {
        "alerts": {"sinks": {"quiet": {"type": "log", "min_severity": "critical"}, "mail": mail}}
    }
    sinks = load(settings(data), {}).sinks
    quiet, email = sinks["quiet"], sinks["mail"]
    assert isinstance(quiet, LogSink) and quiet.min_severity == "critical"
    assert isinstance(email, EmailSink)
    await email.send(ALERT)
    [envelope] = inbox.messages
    assert envelope.rcpt_tos == ["ops@b"]
