"""The Kafka transport's pure parts: the commit tracker, the [kafka] config, DlqMessage,
and the importer's header decoding (no broker needed)."""

from __future__ import annotations

import base64
import dataclasses
import struct
from datetime import UTC, datetime

import pytest
from confluent_kafka import Message

from redrive.config import from_mapping
from redrive.exceptions import ConfigError
from redrive.models import DeadLetter, Status, utcnow
from redrive.stores.base import Change
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.kafka import KafkaConsumer
from redrive.transports.kafka.dlq import DlqMessage, original_key
from redrive.transports.kafka.envelope import PartitionDecoder, decode_headers, decode_value
from redrive.transports.kafka.importer import _number
from redrive.transports.kafka.offsets import CommitTracker
from redrive.transports.kafka.ordering import KeyOrder
from redrive.transports.kafka.republish import replay_headers, value_of
from redrive.transports.kafka.settings import KafkaSettings
from tests.factories import make_record

TP = ("orders", 0)


class TestCommitTracker:
    def test_commits_only_below_the_lowest_held_offset(self) -> None:
        """Work finished out of order commits only up to the first offset still held."""
        tracker = CommitTracker()
        offsets = tracker.reset(TP)
        for offset in range(5):
            offsets.hold(offset)
        assert tracker.committable() == {TP: 0}  # the first held offset: nothing passes it
        offsets.release(1)
        offsets.release(2)
        assert tracker.committable() == {}
        offsets.release(0)
        assert tracker.committable() == {TP: 3}
        assert tracker.committable() == {}  # handed out once
        offsets.release(4)
        assert offsets.next_offset == 3
        assert offsets.unfinished == 1
        offsets.release(3)
        assert tracker.committable() == {TP: 5}

    def test_passed_messages_commit_up_to_a_held_one(self) -> None:
        """Messages finished at once move the commit point, but not past a held one."""
        tracker = CommitTracker()
        offsets = tracker.reset(TP)
        offsets.passed(10)
        assert tracker.committable() == {TP: 11}
        offsets.hold(11)
        offsets.passed(12)
        offsets.passed(14)  # offsets may skip (compaction, transaction markers)
        assert tracker.committable() == {}
        offsets.release(11)
        assert tracker.committable() == {TP: 15}

    def test_forgotten_partitions_ignore_late_finishes(self) -> None:
        """After a revocation, a message that finishes late commits nothing, and a new
        assignment of the partition starts afresh."""
        tracker = CommitTracker()
        old = tracker.reset(TP)
        old.hold(7)
        tracker.forget([TP])
        old.release(7)
        assert tracker.committable() == {}
        assert tracker.safe_offsets([TP]) == {}
        new = tracker.reset(TP)
        old.passed(9)
        assert tracker.committable() == {}
        new.passed(3)
        assert tracker.committable() == {TP: 4}

    def test_safe_offsets_give_the_finished_prefix_again(self) -> None:
        """A revocation commits the finished prefix even if it was handed out before."""
        tracker = CommitTracker()
        offsets = tracker.reset(TP)
        offsets.passed(0)
        assert tracker.committable() == {TP: 1}
        offsets.hold(1)
        assert tracker.safe_offsets([TP]) == {TP: 1}
        assert offsets.unfinished == 1


class TestPartitionDecoder:
    def test_builds_the_event_of_a_record(self) -> None:
        """Id from (topic, partition, offset) or the redrive-event-id header; key, headers,
        correlation and tenant ids, source and timestamp; the JSON value as payload."""
        decode = PartitionDecoder("orders", 2)
        plain = Message(
            topic="orders",
            partition=2,
            offset=7,
            key=b"k",
            value=b'{"n": 1}',
            timestamp=(1, 1_700_000_000_123),
        )
        event, error = decode(plain, 7)
        assert error is None
        assert (event.id, event.topic, event.key, event.payload) == (
            "kafka:orders:2:7",
            "orders",
            "k",
            {"n": 1},
        )
        assert (event.source, event.headers) == ("kafka:orders", {})
        assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
        headed = Message(
            topic="orders",
            partition=2,
            offset=8,
            key=b"\xff",
            value=None,
            headers=[("redrive-event-id", b"e-1"), ("correlation-id", b"c"), ("tenant_id", b"t")],
            timestamp=(1, 1_700_000_000_124),
        )
        event, error = decode(headed, 8)
        assert (event.id, event.correlation_id, event.tenant_id) == ("e-1", "c", "t")
        assert (event.payload, error, event.key) == (
            None,
            None,
            "\\xff",
        )  # a tombstone; a lossy key
        assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, 124000, tzinfo=UTC)

    def test_a_value_that_is_not_json_is_the_error(self) -> None:
        bad = Message(topic="t", partition=0, offset=0, value=b"\xffnot json", timestamp=(0, -1))
        event, error = PartitionDecoder("t", 0)(bad, 0)
        assert error is not None and "not UTF-8" in str(error)
        assert event.payload is None
        assert event.occurred_at.tzinfo is UTC  # no timestamp: now


class TestKafkaSettings:
    def test_dlq_spec_merges_topic_over_defaults(self) -> None:
        """A topic's DLQ entry overrides the defaults; retention.ms becomes a topic config."""
        settings = from_mapping(
            {
                "kafka": {
                    "bootstrap_servers": "b:9092",
                    "dlq": {
                        "partitions": 3,
                        "retention.ms": 1000,
                        "topics": {"rfq": {"partitions": 6}},
                    },
                },
                "topics": {"rfq": {"dlq_topic": "rfq-dead"}},
            }
        )
        kafka = KafkaSettings.of(settings)
        spec = kafka.dlq_spec("rfq")
        assert (spec.name, spec.partitions, spec.configs) == (
            "rfq-dead",
            6,
            {"retention.ms": "1000"},
        )
        assert kafka.dlq_spec("trade").name == "trade.dlq"

    def test_depth_thresholds_are_the_alert_rules(self) -> None:
        """`redrive kafka depth` reads the dlq_depth rule's thresholds: a topic's alerts
        table over [alerts.defaults]; false turns one off."""
        settings = from_mapping(
            {
                "kafka": {"bootstrap_servers": "b:9092"},
                "alerts": {"defaults": {"dlq_depth_warn": 10, "dlq_depth_critical": 50}},
                "topics": {
                    "rfq": {"alerts": {"dlq_depth_critical": 20}},
                    "trade": {"alerts": {"dlq_depth_warn": False}},
                    "quiet": {"alerts": {"enabled": False}},
                },
            }
        )
        kafka = KafkaSettings.of(settings)
        specs = {t: kafka.dlq_spec(t) for t in ("rfq", "trade", "quiet", "other")}
        assert {t: (s.warn, s.critical) for t, s in specs.items()} == {
            "rfq": (10, 20),
            "trade": (None, 50),
            "quiet": (None, None),
            "other": (10, 50),
        }

    def test_old_depth_keys_point_to_the_alert_rules(self) -> None:
        """warn/critical under [kafka.dlq.topics] name the alert keys that replace them."""
        data = {"kafka": {"dlq": {"topics": {"rfq": {"critical": 5}}}}}
        with pytest.raises(ConfigError, match="dlq_depth_critical"):
            KafkaSettings.of(from_mapping(data, source="redrive.toml"))

    @pytest.mark.parametrize(
        ("data", "key"),
        [
            ({"kafka": {"grup": "x"}}, "kafka.grup"),
            ({"kafka": {"dlq": {"partitions": 0}}}, "kafka.dlq.partitions"),
            ({"kafka": {"dlq": {"topics": {"t": {"warn": "many"}}}}}, "kafka.dlq.topics.t.warn"),
            ({"kafka": {"topics": [1]}}, "kafka.topics"),
        ],
    )
    def test_bad_values_name_the_key(self, data: dict[str, object], key: str) -> None:
        """A bad [kafka] value is a ConfigError naming its key."""
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            KafkaSettings.of(from_mapping(data, source="redrive.toml"))


def test_dlq_message_round_trips() -> None:
    """A DlqMessage reads back as it was written; the offset travels as a string."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    message = DlqMessage(
        original_topic="t",
        original_partition=1,
        original_offset=2**60,
        original_key=None,
        original_timestamp=now,
        event={"a": [1]},
        error="E: x",
        stack=None,
        error_code="X",
        consumer_group="g",
        consumer_id=None,
        processing_timestamp=now,
        retry_count=3,
    )
    assert b'"originalOffset":"1152921504606846976"' in message.to_json()
    assert DlqMessage.from_json(message.to_json()) == message
    with pytest.raises(ValueError, match="DlqMessage"):
        DlqMessage.from_json(b'{"something": "else"}')


def test_header_and_value_decoding() -> None:
    """Repeated, null and binary headers are flagged lossy; a non-JSON value previews bytes;
    Spring's numbers are big-endian binary (or decimal text)."""
    headers, lossy = decode_headers([("a", b"1"), ("a", b"2"), ("n", None)])
    assert (headers, lossy) == ({"a": "2"}, True)
    assert decode_headers([("a", b"x")]) == ({"a": "x"}, False)
    payload, error = decode_value(b"\x00" * 100)
    assert payload is None
    assert error is not None
    assert "(100 bytes)" in str(error)
    assert _number({"p": struct.pack(">i", 7)}, "p") == 7
    assert _number({"o": struct.pack(">q", 2**40)}, "o") == 2**40
    assert _number({"o": b"12"}, "o") == 12


def test_consumer_from_settings(sqlite_store: SQLiteStore) -> None:
    """from_settings takes brokers, group, topics and the DLQ switch from [kafka]; without
    a group it is a ConfigError naming the key."""
    settings = from_mapping(
        {
            "kafka": {
                "bootstrap_servers": "b:9092",
                "group": "g",
                "topics": ["t"],
                "dlq": {"enabled": False},
            },
        }
    )
    consumer = KafkaConsumer.from_settings(sqlite_store, settings, in_place=2.0)
    assert (consumer.group, consumer.topics, consumer.dlq, consumer.in_place) == (
        "g",
        ["t"],
        False,
        2.0,
    )
    with pytest.raises(ConfigError, match=r"kafka\.group"):
        KafkaConsumer.from_settings(
            sqlite_store, from_mapping({"kafka": {"bootstrap_servers": "b"}})
        )


def test_republish_sends_the_original_bytes_and_replay_headers() -> None:
    """A record whose value was not JSON is republished with its original bytes, its raw
    headers, and an earlier replay's headers replaced by this one's."""
    base = make_record()
    record = base.replace(
        event=dataclasses.replace(base.event, payload=None),
        origin={
            "transport": "kafka",
            "topic": "t",
            "key": None,
            "key_base64": "/w==",
            "value_base64": base64.b64encode(b"\xffraw").decode(),
            "raw_headers": [["h", "AA=="], ["h", None], ["retry-count", "OQ=="]],
        },
    )
    assert value_of(record) == b"\xffraw"
    assert original_key(record) == b"\xff"
    headers = replay_headers(record, "ops")
    assert headers[:2] == [("h", b"\x00"), ("h", None)]
    assert ("retry-count", str(record.attempts).encode()) in headers
    assert ("redrive-replay-of", record.id.encode()) in headers
    assert [name for name, _ in headers].count("retry-count") == 1


async def test_key_chain_releases_in_order_and_moves_past_a_head_settled_by_hand(
    sqlite_store: SQLiteStore,
) -> None:
    """A chain makes its parked records due one by one as heads settle; a head resolved by
    an operator (no hook fires) is passed over at the next look."""
    order = KeyOrder(sqlite_store, "g")

    def kafka_record(name: str) -> DeadLetter:
        base = make_record(status=Status.SCHEDULED)
        event = dataclasses.replace(base.event, key="K", payload={"m": name})
        return base.replace(event=event, origin={"transport": "kafka", "group": "g"})

    head = kafka_record("m1")
    sqlite_store.add([head])
    await order.block(head)
    found = await order.head(head.topic, head.handler, "K")
    assert found is not None
    assert found.id == head.id
    parked = [await order.park(kafka_record(m), head.id) for m in ("m2", "m3")]
    sqlite_store.add(parked)
    assert all(p.next_attempt_at and p.next_attempt_at.year > head.created_at.year for p in parked)

    task = order.settled(head.replace(status=Status.RESOLVED))
    assert task is not None
    await task
    second = sqlite_store.get(parked[0].id)
    assert second is not None
    assert second.next_attempt_at is not None
    assert second.next_attempt_at <= utcnow()  # due now
    found = await order.head(head.topic, head.handler, "K")
    assert found is not None
    assert found.id == parked[0].id

    resolve = Change(to=Status.RESOLVED, from_statuses=(Status.SCHEDULED,), now=utcnow())
    sqlite_store.transition([parked[0].id], resolve)  # by hand: no hook
    found = await order.head(head.topic, head.handler, "K")
    assert found is not None
    assert found.id == parked[1].id
    sqlite_store.transition([parked[1].id], resolve)
    assert await order.head(head.topic, head.handler, "K") is None
    assert sqlite_store.meta_list("kafka-order") == {}
