"""The [nats] table: typed values, defaults, overrides, and errors naming the key."""

from __future__ import annotations

import pytest

from redrive import ConfigError, Settings
from redrive.config import from_mapping
from redrive.transports.nats.options import NatsOptions


def settings(nats: dict[str, object]) -> Settings:
    return from_mapping({"nats": nats}, source="redrive.toml")


def test_the_table_becomes_typed_options_with_defaults() -> None:
    """Durations parse, a single server becomes a tuple, unset keys keep their defaults."""
    options = NatsOptions.from_settings(
        settings(
            {
                "servers": "nats://n1:4222",
                "stream": "ORDERS",
                "durable": "billing",
                "ack_wait": "45s",
                "broker_retry_max": "2m",
                "dlq": {"max_age": "7d", "max_msgs": 10},
            }
        )
    )
    assert options.servers == ("nats://n1:4222",)
    assert (options.ack_wait, options.broker_retry_max) == (45.0, 120.0)
    assert options.dlq.max_age == 7 * 86400 and options.dlq.max_msgs == 10
    assert options.dlq.stream_for("ORDERS") == "ORDERS_DLQ"
    assert options.dlq.subject_for("orders.created") == "dlq.orders.created"
    assert options.max_deliver is None and options.deliver_limit(5) == 8


def test_overrides_win_and_none_means_unset() -> None:
    """Options given in code or on the command line override the file; None leaves it."""
    base = settings({"stream": "ORDERS", "durable": "billing"})
    options = NatsOptions.from_settings(base, durable="shipping", stream=None)
    assert (options.stream, options.durable) == ("ORDERS", "shipping")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"ack_wait": "soon"}, "nats.ack_wait"),
        ({"batch": 0}, "nats.batch"),
        ({"servers": []}, "nats.servers"),
        ({"dlq": {"enabled": "yes"}}, "nats.dlq.enabled"),
        ({"colour": "blue"}, "nats.colour"),
        ({"advisories": []}, "nats.advisories"),
    ],
)
def test_bad_values_name_the_file_and_the_key(table: dict[str, object], key: str) -> None:
    """Each bad value is a ConfigError naming redrive.toml and the key."""
    with pytest.raises(ConfigError) as info:
        NatsOptions.from_settings(settings(table))
    assert str(info.value).startswith(f"redrive.toml: {key}: expected")
