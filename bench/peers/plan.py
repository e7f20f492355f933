"""The failure pipeline's workload, shared by redrive and every peer (standard library only).

Event ``i`` is poison (fails non-retriably) when ``i % 100 == 0``, transient (fails once,
then succeeds) when ``i % 100`` is 1 to 5, and succeeds otherwise: 1% poison, 5% transient.
At most 3 attempts; backoff 10 ms doubling to at most 100 ms.

Handlers count their calls in memory; in the peers' worker processes a thread writes the
counts to ``<folder>/<pid>.json`` every 20 ms (atomically), so the runner can tell when
every event is settled without adding a round trip to each handler call.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections import Counter
from pathlib import Path

MAX_ATTEMPTS = 3
INITIAL_DELAY = 0.010  # seconds
MAX_DELAY = 0.100
FLUSH_EVERY = 0.020


class Poison(Exception):
    """The error of a poison event: never retried."""


class Transient(ConnectionError):
    """The error of a transient event's first attempt: retried."""


def kind(i: int) -> str:
    """``poison``, ``transient`` or ``ok`` for event number ``i``."""
    rest = i % 100
    if rest == 0:
        return "poison"
    return "transient" if rest <= 5 else "ok"


def delay(retry: int) -> float:
    """Seconds before retry number ``retry`` (1-based): 10 ms doubling, capped at 100 ms."""
    return min(MAX_DELAY, INITIAL_DELAY * 2 ** (retry - 1))


def shares(n: int, producers: int) -> list[range]:
    """The events each of ``producers`` concurrent producers sends, interleaved."""
    return [range(k, n, producers) for k in range(producers)]


@functools.cache  # a walk over every event: polls call it every few ms (while handlers run)
def expected(n: int) -> dict[str, int]:
    """What a settled run of ``n`` events shows: dead letters, successes and handler calls
    (the same dict on every call: do not change it)."""
    kinds = Counter(kind(i) for i in range(n))
    return {
        "dead": kinds["poison"],
        "transient": kinds["transient"],
        "ok": kinds["ok"],
        "calls": kinds["poison"] + 2 * kinds["transient"] + kinds["ok"],
    }


class Calls:
    """Thread-safe counters of one process: ``<kind>.calls`` and ``<kind>.done``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def flush_to(self, folder: str | Path) -> None:
        """Write the counts to ``folder/<pid>.json`` now and then every 20 ms, from a daemon
        thread (the process's lifetime)."""
        target = Path(folder) / f"{os.getpid()}.json"

        def write() -> None:
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.snapshot()))
            os.replace(tmp, target)

        def loop() -> None:
            stop = threading.Event()
            while True:
                write()
                stop.wait(FLUSH_EVERY)

        write()
        threading.Thread(target=loop, name="bench-counts", daemon=True).start()


def read_counts(folder: str | Path) -> Counter[str]:
    """The counts of every process that flushed into ``folder``, added up."""
    total: Counter[str] = Counter()
    for path in Path(folder).glob("*.json"):
        try:
            total.update(json.loads(path.read_text()))
        except (OSError, ValueError):  # replaced while read: the next poll sees it
            continue
    return total


def handle(calls: Calls, i: int, attempt: int) -> None:
    """The handler's body for event ``i`` at ``attempt`` (1-based): count, then fail or not."""
    what = kind(i)
    calls.add(f"{what}.calls")
    if what == "poison":
        raise Poison(f"order {i} is invalid")
    if what == "transient" and attempt == 1:
        raise Transient(f"inventory service unavailable for order {i}")
    calls.add(f"{what}.done")


def settled(counts: Counter[str], n: int) -> bool:
    """True once every non-poison event succeeded and every poison event was called."""
    want = expected(n)
    return (
        counts["ok.done"] == want["ok"]
        and counts["transient.done"] == want["transient"]
        and counts["poison.calls"] == want["dead"]
    )


def check_calls(counts: Counter[str], n: int) -> list[str]:
    """What is wrong with the handler calls of a settled run (empty: as expected)."""
    want = expected(n)
    problems = []
    for name, value in (
        ("poison.calls", want["dead"]),
        ("transient.calls", 2 * want["transient"]),
        ("transient.done", want["transient"]),
        ("ok.calls", want["ok"]),
        ("ok.done", want["ok"]),
    ):
        if counts[name] != value:
            problems.append(f"{name} = {counts[name]}, expected {value}")
    return problems
