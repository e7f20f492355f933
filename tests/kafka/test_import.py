"""Importing existing DLQ topics: redrive's, Kafka Connect's and Spring Kafka's dead letters."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from typing import Any

import pytest

from redrive.models import Status
from redrive.service import Filter
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.kafka.dlq import DlqMessage
from redrive.transports.kafka.importer import import_topic
from tests.kafka.conftest import Broker
from tests.kafka.support import create_topic, produce

pytestmark = pytest.mark.kafka

CONNECT = [
    ("__connect.errors.topic", b"orders"),
    ("__connect.errors.partition", b"2"),
    ("__connect.errors.offset", b"41"),
    ("__connect.errors.connector.name", b"jdbc-sink"),
    ("__connect.errors.task.id", b"0"),
    ("__connect.errors.stage", b"VALUE_CONVERTER"),
    ("__connect.errors.class.name", b"org.apache.kafka.connect.json.JsonConverter"),
    ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
    ("__connect.errors.exception.message", b"Converting byte[] to Kafka Connect data failed"),
    (
        "__connect.errors.exception.stacktrace",
        b"org.apache.kafka.connect.errors.DataException: ...",
    ),
    ("trace-id", b"abc"),
]
SPRING = [
    ("kafka_dlt-original-topic", b"payments"),
    ("kafka_dlt-original-partition", struct.pack(">i", 1)),
    ("kafka_dlt-original-offset", struct.pack(">q", 1234)),
    ("kafka_dlt-original-timestamp", struct.pack(">q", 1_700_000_000_000)),
    ("kafka_dlt-original-timestamp-type", b"CreateTime"),
    ("kafka_dlt-original-consumer-group", b"payments-svc"),
    ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
    ("kafka_dlt-exception-message", b"no such account 77"),
    ("kafka_dlt-exception-stacktrace", b"java.lang.IllegalStateException: no such account 77"),
    # a second hop through another DLT appends its own values: the first one is the origin
    ("kafka_dlt-original-topic", b"payments-retry-0"),
    ("kafka_dlt-original-offset", struct.pack(">q", 9)),
]


def redrive_message() -> DlqMessage:
    """A DlqMessage as a redrive consumer elsewhere wrote it."""
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    return DlqMessage(
        original_topic="rfq",
        original_partition=0,
        original_offset=7,
        original_key="r-1",
        original_timestamp=now,
        event={"rfq": 1},
        error="ValueError: bad quantity",
        stack="Traceback ...",
        error_code="NON_RETRIABLE",
        consumer_group="quotes",
        consumer_id="m-1",
        processing_timestamp=now,
        retry_count=2,
        metadata={"tenantId": "acme"},
        record_id="0190a000-0000-7000-8000-000000000001",
        event_id="kafka:rfq:0:7",
        handler="quotes.price",
        error_type="ValueError",
    )


async def test_import_reads_three_styles_once(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """Connect's string headers, Spring's binary headers (first repeated key wins) and
    redrive's DlqMessage become dead letters with their origins; a second run imports
    nothing, a third only what is new, and one without its stored position nothing."""
    topic = names.of("mixed.dlq")
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, [{"id": 5}], key="c-key", headers=CONNECT)
    produce(broker.bootstrap, topic, [b"\x00binary"], key=b"s-key", headers=SPRING, raw=True)
    message = redrive_message()
    produce(
        broker.bootstrap, topic, [message.to_json()], key="r-1", headers=message.headers(), raw=True
    )
    config = {"bootstrap.servers": broker.bootstrap}

    result = import_topic(config, topic, sqlite_store)
    assert (result.read, result.imported) == (3, 3)
    assert dict(result.by_format) == {"connect": 1, "spring": 1, "redrive": 1}
    records = {r.handler: r for r in sqlite_store.find(Filter(), limit=10).items}
    connect = records["connect:jdbc-sink"]
    assert connect.status == Status.DEAD
    assert connect.topic == "orders"
    assert (connect.origin["partition"], connect.origin["offset"]) == (2, 41)
    assert connect.error_type == "org.apache.kafka.connect.errors.DataException"
    assert connect.payload == {"id": 5}
    assert connect.event.headers == {"trace-id": "abc"}
    spring = records["spring:payments-svc"]
    assert spring.topic == "payments"
    assert (spring.origin["partition"], spring.origin["offset"]) == (1, 1234)
    assert spring.origin["timestamp"] == 1_700_000_000_000
    assert spring.error_message == "no such account 77"
    assert spring.origin["value_base64"]  # not JSON: kept as bytes for a republish
    ours = records["quotes.price"]
    assert ours.id == message.record_id
    assert ours.attempts == 3
    assert ours.event.tenant_id == "acme"
    assert ours.origin["imported_from"]["format"] == "redrive"

    again = import_topic(config, topic, sqlite_store)
    assert (again.read, again.imported) == (0, 0)
    produce(broker.bootstrap, topic, [{"late": 1}], headers=[("kafka_dlt-original-topic", b"x")])
    resumed = import_topic(config, topic, sqlite_store)
    assert (resumed.read, resumed.imported) == (1, 1)  # from the stored position on
    sqlite_store.meta_delete("kafka-import", topic)  # position lost: the ids still dedupe
    replayed = import_topic(config, topic, sqlite_store)
    assert (replayed.read, replayed.imported) == (4, 0)
    assert sqlite_store.count(Filter()) == 4
    assert json.loads(message.to_json())["originalOffset"] == "7"
