"""Provisioning: created from config, merged with what the server has, idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js import api

from redrive.exceptions import ConfigError
from redrive.transports.nats.options import DlqOptions, NatsOptions
from redrive.transports.nats.provision import provision
from tests.nats.names import Names
from tests.nats.support import make_stream

pytestmark = pytest.mark.nats


def options(nats_url: str, names: Names, **changes: Any) -> NatsOptions:
    return NatsOptions(
        servers=(nats_url,), stream=names.stream, durable=names.durable, ack_wait=5.0, **changes
    )


async def test_first_run_creates_everything_and_the_second_changes_nothing(
    nc: Any, nats_url: str, names: Names
) -> None:
    """DLQ stream, advisory stream and consumer, and the durable: created once, then unchanged."""
    js = nc.jetstream()
    await make_stream(js, names)
    first = await provision(js, options(nats_url, names), max_attempts=4)
    by_name = {c.name: c for c in first}
    dlq = by_name[f"{names.stream}_DLQ"]
    assert dlq.action == "create" and dlq.kind == "stream"
    work = by_name[f"{names.stream}/{names.durable}"]
    assert work.action == "create" and work.fields["max_deliver"][1] == 7
    second = await provision(js, options(nats_url, names), max_attempts=4)
    assert [c.action for c in second] == ["unchanged"] * len(second)

    dlq_config = (await js.stream_info(f"{names.stream}_DLQ")).config
    assert dlq_config.subjects == [f"dlq.{names.subject}.>"]
    assert dlq_config.max_msgs == 100_000 and dlq_config.max_age == 30 * 86400
    assert dlq_config.allow_direct is True
    consumer = (await js.consumer_info(names.stream, names.durable)).config
    assert consumer.max_deliver == 7 and consumer.ack_wait == 5.0 and not consumer.backoff
    assert consumer.ack_policy == api.AckPolicy.EXPLICIT


async def test_an_update_changes_only_what_redrive_owns(
    nc: Any, nats_url: str, names: Names
) -> None:
    """A changed max_msgs is updated in place; fields set by hand (description) are kept."""
    js = nc.jetstream()
    await make_stream(js, names)
    await provision(js, options(nats_url, names), max_attempts=3)
    dlq_name = f"{names.stream}_DLQ"
    current = (await js.stream_info(dlq_name)).config
    current.description = "kept by hand"
    current.duplicate_window = 300.0
    await js.update_stream(current)

    changed = await provision(
        js, options(nats_url, names, dlq=DlqOptions(max_msgs=500)), max_attempts=3
    )
    (update,) = [c for c in changed if c.action == "update"]
    assert update.name == dlq_name and update.fields == {"max_msgs": (100_000, 500)}
    assert "max_msgs 100000 -> 500" in update.describe()
    after = (await js.stream_info(dlq_name)).config
    assert after.max_msgs == 500
    assert after.description == "kept by hand" and after.duplicate_window == 300.0


async def test_a_dry_run_changes_nothing(nc: Any, nats_url: str, names: Names) -> None:
    """--dry-run reports the creations without making them."""
    js = nc.jetstream()
    await make_stream(js, names)
    changes = await provision(js, options(nats_url, names), max_attempts=3, dry_run=True)
    assert {c.action for c in changes if c.name.startswith(names.stream)} == {"create"}
    names_now = [info.config.name for info in await js.streams_info()]
    assert f"{names.stream}_DLQ" not in names_now


async def test_a_backoff_set_by_hand_is_removed(nc: Any, nats_url: str, names: Names) -> None:
    """A consumer with ConsumerConfig.backoff is updated to none (it distorts nak delays)."""
    js = nc.jetstream()
    await make_stream(js, names)
    await js.add_consumer(
        names.stream,
        config=api.ConsumerConfig(
            durable_name=names.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            max_deliver=9,
            backoff=[1.0, 2.0],
        ),
    )
    changes = await provision(js, options(nats_url, names), max_attempts=3)
    (work,) = [c for c in changes if c.name == f"{names.stream}/{names.durable}"]
    assert work.action == "update" and "backoff" in work.fields
    assert not (await js.consumer_info(names.stream, names.durable)).config.backoff


async def test_max_deliver_at_or_below_the_attempts_is_refused(
    nc: Any, nats_url: str, names: Names
) -> None:
    """max_deliver must exceed the attempts, or a crash loop looks like a failure."""
    js = nc.jetstream()
    await make_stream(js, names)
    with pytest.raises(ConfigError, match="must be above"):
        await provision(js, options(nats_url, names, max_deliver=3), max_attempts=3)


async def test_a_dlq_prefix_inside_the_source_stream_is_a_clear_error(
    nc: Any, nats_url: str, names: Names
) -> None:
    """DLQ subjects that overlap the source stream are refused with the server's reason."""
    js = nc.jetstream()
    await make_stream(js, names)
    await js.add_stream(name=f"{names.stream}W", subjects=[f"w{names.subject}.>"])
    bad = NatsOptions(
        servers=(nats_url,),
        stream=f"{names.stream}W",
        durable=names.durable,
        dlq=DlqOptions(subject_prefix=f"w{names.subject}"),
    )
    with pytest.raises(ConfigError, match="refused"):
        await provision(js, bad, max_attempts=3)
