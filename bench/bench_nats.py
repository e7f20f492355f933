"""Issue 10 benchmark: the JetStream consumer against a raw nats-py pull loop.

1. Messages/s with a no-op handler: ``JetStreamConsumer`` vs a raw loop doing the same
   per-message work (fetch batches of 100, ``json.loads``, an awaited no-op, ``ack``).
   Target: at least 80 % of the raw loop.
2. Dead letters/s when every message fails non-retriably (store record + DLQ copy +
   confirmed term) vs the raw cost of the same three writes done by hand per fetched batch
   (one SQLite transaction for the batch's records, the DLQ publishes awaited together, the
   ``+TERM`` requests awaited together).

Rounds are interleaved (raw, redrive, redrive, raw, ...) and each figure is the median; every
round uses a fresh stream whose messages are all stored before the clock starts. The server
is started here on 127.0.0.1 and stopped by PID.

Run: .venv/bin/python bench/bench_nats.py [--messages 10000] [--dead 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import nats
from _common import report
from nats.js import api

from redrive import Event, NonRetriableError, RetryPolicy
from redrive._ids import new_id
from redrive.models import DeadLetter, Status, utcnow
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.nats import JetStreamConsumer

_names = itertools.count(1)


@contextmanager
def nats_server() -> Iterator[str]:
    exe = os.path.join(sysconfig.get_path("scripts"), "nats-server")
    data = tempfile.mkdtemp(prefix="bench-nats-")
    port, monitor = free_port(), free_port()
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js", "-sd", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urlopen(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true") as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fill(js: Any, nc: Any, count: int) -> tuple[str, str]:
    """A fresh stream holding ``count`` small JSON messages; (stream, subject)."""
    n = next(_names)
    stream, subject = f"BENCH{n}", f"bench{n}.orders"
    await js.add_stream(name=stream, subjects=[f"bench{n}.>"], storage=api.StorageType.FILE)
    body = json.dumps({"order_id": 1, "amount": 12.5, "currency": "EUR"}).encode()
    for _ in range(count):
        await nc.publish(subject, body)
    await nc.flush()
    while (await js.stream_info(stream)).state.messages < count:  # noqa: ASYNC110 - stored async
        await asyncio.sleep(0.01)
    return stream, subject


async def noop(payload: Any) -> None:
    return None


async def raw_loop(js: Any, stream: str, count: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    sub = await js.pull_subscribe(f"{stream.lower()}.>", durable="raw", stream=stream)
    done = 0
    while done < count:
        for msg in await sub.fetch(100, timeout=5):
            await noop(json.loads(msg.data))
            await msg.ack()
            done += 1
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1e6


async def redrive_loop(
    url: str, store: Any, stream: str, subject: str, count: int
) -> tuple[float, float]:
    consumer = JetStreamConsumer(
        store, servers=url, stream=stream, durable="redrive", batch=100, concurrency=200
    )

    @consumer.handler(subject, name="noop")
    async def handle(event: Event) -> None:
        return None

    async with consumer:  # timed from the end of start() (connect, provisioning)
        return await steady_rate(consumer, "acked", count)


async def redrive_dead(
    url: str, store: Any, stream: str, subject: str, count: int
) -> tuple[float, float]:
    consumer = JetStreamConsumer(
        store, servers=url, stream=stream, durable="dead", batch=100, concurrency=200
    )

    @consumer.handler(subject, name="reject", policy=RetryPolicy(max_attempts=3))
    async def reject(event: Event) -> None:
        raise NonRetriableError("rejected")

    async with consumer:
        return await steady_rate(consumer, "dead", count)


async def steady_rate(consumer: JetStreamConsumer, counter: str, count: int) -> tuple[float, float]:
    """(messages/s, CPU µs per message) from now until ``stats[counter]`` reaches ``count``."""
    start, cpu, before = time.perf_counter(), time.process_time(), consumer.stats[counter]
    while consumer.stats[counter] < count:  # noqa: ASYNC110 - polling the counter is the clock
        await asyncio.sleep(0.002)
    done = count - before
    return done / (time.perf_counter() - start), (time.process_time() - cpu) / done * 1e6


def bare_record(subject: str, data: bytes) -> DeadLetter:
    now = utcnow()
    event = Event(topic=subject, payload=json.loads(data))
    return DeadLetter(
        id=new_id(),
        event=event,
        handler="reject",
        status=Status.DEAD,
        attempts=1,
        max_attempts=3,
        error_type="NonRetriableError",
        error_message="rejected",
        traceback="",
        fingerprint="0" * 16,
        created_at=now,
        updated_at=now,
        dead_at=now,
    )


async def raw_dead(
    nc: Any, js: Any, store: Any, stream: str, dlq: str, count: int
) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    sub = await js.pull_subscribe(f"{stream.lower()}.>", durable="rawdead", stream=stream)
    done = 0
    while done < count:
        msgs = await sub.fetch(100, timeout=5)
        records = [bare_record(m.subject, m.data) for m in msgs]
        await asyncio.to_thread(store.add, records)
        await asyncio.gather(
            *(
                js.publish(
                    f"dlq.{m.subject}",
                    m.data,
                    stream=dlq,
                    headers={"Nats-Msg-Id": f"{stream}:{m.metadata.sequence.stream}"},
                )
                for m in msgs
            )
        )
        await asyncio.gather(*(nc.request(m.reply, b"+TERM dead", timeout=5) for m in msgs))
        done += len(msgs)
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1e6


def med(samples: list[tuple[float, float]], index: int) -> float:
    return statistics.median(sample[index] for sample in samples)


def summary(what: str, rounds: int, count: int, raw: list[Any], ours: list[Any]) -> None:
    def rates(samples: list[Any]) -> str:
        return ", ".join(f"{rate:,.0f}" for rate, _ in samples)

    print(
        f"{what} over {rounds} interleaved rounds of {count:,} (medians; raw "
        f"{rates(raw)}; redrive {rates(ours)})"
    )


async def main(messages: int, dead: int, rounds: int) -> None:
    with nats_server() as url, tempfile.TemporaryDirectory() as tmp:
        nc = await nats.connect(url)
        js = nc.jetstream()
        store = SQLiteStore(Path(tmp) / "bench.db")
        raw, ours = [], []
        for r in range(rounds):
            order = ("raw", "redrive") if r % 2 == 0 else ("redrive", "raw")
            for kind in order:
                stream, subject = await fill(js, nc, messages)
                if kind == "raw":
                    raw.append(await raw_loop(js, stream, messages))
                else:
                    ours.append(await redrive_loop(url, store, stream, subject, messages))
                await js.delete_stream(stream)
        summary("messages/s", rounds, messages, raw, ours)
        report("raw pull loop: fetch(100), json.loads, awaited no-op, ack", med(raw, 0), "msg/s")
        report(
            "JetStreamConsumer, no-op handler", med(ours, 0), "msg/s", med(raw, 0), "target >= 0.80"
        )
        report("raw pull loop: CPU per message", med(raw, 1), "us/msg")
        report("JetStreamConsumer: CPU per message", med(ours, 1), "us/msg", med(raw, 1))

        raw_d, ours_d = [], []
        for r in range(rounds):
            order = ("raw", "redrive") if r % 2 == 0 else ("redrive", "raw")
            for kind in order:
                stream, subject = await fill(js, nc, dead)
                dlq = f"{stream}_DLQ"
                if kind == "raw":
                    await js.add_stream(name=dlq, subjects=[f"dlq.{stream.lower()}.>"])
                    raw_d.append(await raw_dead(nc, js, store, stream, dlq, dead))
                else:
                    ours_d.append(await redrive_dead(url, store, stream, subject, dead))
                await js.delete_stream(stream)
                await js.delete_stream(dlq)
        summary("dead letters/s", rounds, dead, raw_d, ours_d)
        report("raw: store.add(batch) + DLQ publishes + confirmed terms", med(raw_d, 0), "dead/s")
        report("JetStreamConsumer, every message dead", med(ours_d, 0), "dead/s", med(raw_d, 0))
        report("raw three writes: CPU per dead letter", med(raw_d, 1), "us/dead")
        report("JetStreamConsumer: CPU per dead letter", med(ours_d, 1), "us/dead", med(raw_d, 1))
        store.close()
        await nc.close()  # not drain: it would wait for the raw loops' pull subscriptions


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dead", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.dead, args.rounds))
