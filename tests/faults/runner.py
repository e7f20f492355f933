"""The fault runner: starts the workload's processes, injects faults, then checks the store.

A run is: a seed (printed, and in the table, so a failing run can be replayed with
``REDRIVE_FAULT_SEED=<seed>``), a few processes of :mod:`tests.faults.workload`, faults
injected by a :class:`Run` at points drawn from the seed, a drain (one clean worker or
dispatcher until nothing is due), and :func:`check` over the logs and the rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

from redrive.exceptions import StoreError
from redrive.models import DeadLetter, Status, utcnow
from redrive.stores.base import Filter, Store
from tests.faults.workload import HANDLERS
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
GRACE = timedelta(seconds=5)
TABLE: list[dict[str, object]] = []  # one row per run, printed at the end of the session


def seed_for(name: str) -> int:
    """The run's seed: ``REDRIVE_FAULT_SEED`` if set, else a fresh one (printed)."""
    fixed = os.environ.get("REDRIVE_FAULT_SEED")
    seed = int(fixed) if fixed else random.SystemRandom().randrange(1, 10**6)
    print(f"\n[faults] {name}: seed {seed} (REDRIVE_FAULT_SEED={seed} to replay)", flush=True)
    return seed


class Run:
    """The processes of one run and the faults injected into them."""

    def __init__(
        self,
        name: str,
        url: str,
        logs: Path,
        seed: int,
        *,
        lease: float = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.url, self.logs, self.seed = name, url, logs, seed
        self.env = env or {}  # for the workload's processes (the broker's address, say)
        self.lease = timedelta(seconds=lease)
        self.rng = random.Random(seed)
        self.procs: list[subprocess.Popen[str]] = []
        self.faults: Counter[str] = Counter()
        self.stale: list[str] = []  # records seen retrying long past their lease, mid-run
        self._block = 0
        logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, role: str, count: int = 0) -> subprocess.Popen[str]:
        """Start a workload process; publishers get a fresh block of event numbers."""
        args = [role, self.url, str(self.logs), str(self.seed)]
        if count:
            args += [str(self._block * 10_000), str(count)]
            self._block += 1
        with open(self.logs / f"stderr-{role}-{len(self.procs)}.log", "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.workload", *args],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
                env={
                    **os.environ,
                    **self.env,
                    "REDRIVE_FAULT_LEASE": str(self.lease.total_seconds()),
                },
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[str], what: str) -> None:
        """SIGKILL ``proc`` (if it still runs) and count the fault."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            self.faults[f"SIGKILL {what}"] += 1

    def pause(self, low: float, high: float) -> None:
        """Let the processes run for a random while (the random point of the next fault)."""
        time.sleep(self.rng.uniform(low, high))  # the fault's timing, not a synchronisation

    def sample(self, store: Store) -> None:
        """Look, mid-run, for records still ``retrying`` well past their lease (``GRACE``
        after it: time for a live worker to notice and claim them again)."""
        try:
            held = store.find(Filter(statuses=(Status.RETRYING,)), limit=1000).items
        except StoreError:  # the server is restarting: look at the next fault
            return
        now = utcnow()
        for record in held:
            expires = record.lease_expires_at
            if expires is not None and expires < now - self.lease - GRACE:
                self.stale.append(f"{record.id} retrying {now - expires} past its lease")

    def stop_all(self) -> None:
        """SIGKILL whatever still runs and close the pipes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def drain(self, role: str, settled: Callable[[], bool], timeout: float = 60) -> None:
        """One clean process of ``role`` until ``settled()``, then stopped with SIGTERM."""
        proc = self.spawn(role)
        try:
            wait_for(settled, timeout=timeout, interval=0.2, what=f"{self.name}: drain")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextlib.contextmanager
def running(run: Run) -> Iterator[Run]:
    """The run's processes, all stopped at the end whatever happens."""
    try:
        yield run
    finally:
        run.stop_all()


# -- reading the logs ---------------------------------------------------------------------
def _lines(logs: Path, prefix: str) -> list[list[str]]:
    out: list[list[str]] = []
    for path in sorted(logs.glob(f"{prefix}-*.log")):
        text = path.read_text(errors="replace")
        complete = text if text.endswith("\n") else text.rsplit("\n", 1)[0]
        out += [line.split() for line in complete.splitlines() if line.strip()]
    return out


def all_records(store: Store) -> list[DeadLetter]:
    """Every record in the store, by pages."""
    records: list[DeadLetter] = []
    cursor: str | None = None
    while True:
        page = store.find(Filter(), limit=500, cursor=cursor)
        records += page.items
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


def unsettled(store: Store) -> int:
    """Records still to run: scheduled or retrying."""
    return store.count(Filter(statuses=(Status.SCHEDULED, Status.RETRYING)))


# -- the checks ---------------------------------------------------------------------------
@dataclasses.dataclass
class Report:
    """What a run did, and every broken promise found in it."""

    published: int = 0
    records: int = 0
    runs: int = 0
    retries_accepted: int = 0
    refused: int = 0
    unsaved: int = 0
    redelivered: int = 0
    by_status: Counter[str] = dataclasses.field(default_factory=Counter)
    violations: list[str] = dataclasses.field(default_factory=list)

    def fail(self, what: str) -> None:
        self.violations.append(what)


def check(
    store: Store,
    logs: Path,
    *,
    lease: timedelta = timedelta(seconds=2),
    outbox_rows: dict[str, str] | None = None,
    at_least_once: bool = False,
    refusals_expected: bool = False,
    stale: list[str] | None = None,
) -> Report:
    """Check the promises of a finished (drained) run against its logs and its rows.

    ``outbox_rows`` (event id -> outbox status) is given for outbox runs, and
    ``at_least_once`` for broker runs: there a delivery is at least once, so an ``ok``
    handler may run again after a kill, a ``transient`` one may succeed on its redelivery
    without a record, and a message whose deliveries were killed until the broker's limit
    ran out is recorded dead as ``WorkerLost`` whatever its handlers do.
    ``refusals_expected``: a run whose leases may lapse under a live worker (shorter than
    the store's reconnect time): a refused outcome is then counted, not a violation.
    """
    report = Report()
    at_least_once = at_least_once or outbox_rows is not None
    for seen in stale or ():
        report.fail(f"mid-run: {seen}")
    published = {p[1]: dict(zip(HANDLERS, p[3:5], strict=True)) for p in _lines(logs, "published")}
    hooks = _lines(logs, "hooks")
    report.published = len(published)
    report.runs = len(_lines(logs, "runs"))
    report.refused = sum(
        path.read_text(errors="replace").count("was lost") for path in logs.glob("err-*.log")
    )
    report.unsaved = sum(
        path.read_text(errors="replace").count("could not save the outcome")
        for path in logs.glob("err-*.log")
    )
    runs = Counter((r[1], r[2]) for r in _lines(logs, "runs"))
    records = all_records(store)
    report.records = len(records)
    report.by_status = Counter(r.status.value for r in records)
    pairs = Counter((r.event.id, r.handler) for r in records)
    for pair, n in pairs.items():
        if n > 1:
            report.fail(f"(event, handler) {pair} recorded {n} times")
    by_pair = {(r.event.id, r.handler): r for r in records}
    succeeded = {(h[1], h[2]) for h in hooks if h[0] == "S"}
    firsts = Counter((h[1], h[2]) for h in hooks if h[0] == "S" and h[3] == "-")
    firsts.update((h[1], h[2]) for h in hooks if h[0] == "F" and h[4] == "1")
    report.redelivered = sum(n - 1 for n in firsts.values() if n > 1)
    if not at_least_once and report.redelivered:
        report.fail(f"{report.redelivered} first attempts of the bus ran twice")

    # Every event whose publish returned is handled or recorded, as its kind says.
    for event_id, kinds in published.items():
        for handler, kind in kinds.items():
            record = by_pair.get((event_id, handler))
            where = f"event {event_id} handler {handler} ({kind})"
            if at_least_once and record is not None and _lost_with_workers(record):
                continue  # its deliveries were killed until the broker gave up on it
            if kind == "ok":
                if (event_id, handler) not in succeeded:
                    report.fail(f"{where}: no success logged")
                if record is not None:
                    report.fail(f"{where}: has a record ({record.status.value})")
            elif kind in ("transient", "slow"):
                if record is None:
                    if not at_least_once or (event_id, handler) not in succeeded:
                        report.fail(f"{where}: neither recorded nor handled")
                elif record.status != Status.RESOLVED and not _lost_with_workers(record):
                    report.fail(f"{where}: ends {record.status.value} ({record.error_type})")
            elif record is None or record.status != Status.DEAD:
                state = "no record" if record is None else record.status.value
                report.fail(f"{where}: should be dead, is {state}")
        if outbox_rows is not None and outbox_rows.get(event_id) != "done":
            report.fail(f"outbox event {event_id} is {outbox_rows.get(event_id)}, not done")

    # On the bus every run of a handler is the first attempt or a claim, which counts in
    # ``attempts`` (a run the store did not count would be a run outside any claim).
    if not at_least_once:
        for pair, n in runs.items():
            record = by_pair.get(pair)
            accounted = 1 if record is None else record.attempts
            if n > accounted:
                report.fail(f"{pair} ran {n} times, its claims account for {accounted}")

    # No record stuck in retrying (the run is drained), and every schedule ran once:
    # each (record, attempt) has at most one accepted outcome, and no save was refused.
    for status in (Status.RETRYING, Status.SCHEDULED):
        if report.by_status[status.value]:
            report.fail(f"{report.by_status[status.value]} records still {status.value}")
    retries = Counter((h[3], h[4]) for h in hooks if h[0] in "SF" and h[-1] == "claim")
    report.retries_accepted = sum(retries.values())
    for (record_id, attempt), n in retries.items():
        if n > 1:
            report.fail(f"record {record_id} attempt {attempt}: {n} accepted outcomes")
    if report.refused and not refusals_expected:
        report.fail(f"{report.refused} outcomes refused (a schedule ran twice)")

    # Counts, groups and the timeline agree with the rows.
    stats = store.stats(utcnow())
    counted = {
        (topic, status.value): n for topic, s in stats.counts.items() for status, n in s.items()
    }
    rows = Counter((r.topic, r.status.value) for r in records)
    if {k: v for k, v in counted.items() if v} != dict(rows):
        report.fail(f"stats() {counted} != rows {dict(rows)}")
    dead = Filter(statuses=(Status.DEAD,))
    grouped = sum(g.count for g in store.groups(dead, limit=10_000))
    if grouped != report.by_status["dead"]:
        report.fail(f"groups count {grouped} dead, the rows {report.by_status['dead']}")
    timeline = sum(n for _, _, n in store.dead_timeline(utcnow() - timedelta(days=1)))
    if timeline != report.by_status["dead"]:
        report.fail(f"timeline counts {timeline} deaths, the rows {report.by_status['dead']}")
    open_ids = {r.id for r in records if r.status == Status.RETRYING}
    expired = [
        r.id
        for r in records
        if r.id in open_ids and r.lease_expires_at and r.lease_expires_at < utcnow() - lease
    ]
    if expired:
        report.fail(f"retrying past their lease: {expired[:5]}")
    return report


def check_origins(report: Report, store: Store, fields: tuple[str, ...]) -> None:
    """No message recorded twice for a handler: each (``fields`` of the record's origin,
    handler), e.g. (stream, sequence, handler) on NATS, has at most one record."""
    keys = Counter(
        (*(record.origin.get(f) for f in fields), record.handler) for record in all_records(store)
    )
    for key, n in keys.items():
        if None in key:
            report.fail(f"a record without {fields} in its origin: {key}")
        elif n > 1:
            report.fail(f"{(*fields, 'handler')} {key} recorded {n} times")


def record_run(
    name: str, seed: int, faults: Counter[str], report: Report, *, lease: float | str = 2
) -> None:
    """Add the run to the session's table."""
    TABLE.append(
        {
            "run": name,
            "seed": seed,
            "lease s": lease,
            "faults": ", ".join(f"{n}x {what}" for what, n in sorted(faults.items())) or "-",
            "published": report.published,
            "handler runs": report.runs,
            "records": report.records,
            "resolved": report.by_status["resolved"],
            "dead": report.by_status["dead"],
            "retries accepted": report.retries_accepted,
            "redelivered": report.redelivered,
            "refused (double runs)": report.refused,
            "saves lost to an outage": report.unsaved,
            "violations": len(report.violations),
        }
    )
    print(f"[faults] {name} (seed {seed}): {TABLE[-1]}", flush=True)
    for violation in report.violations[:20]:
        print(f"[faults]   VIOLATION {violation}", flush=True)


def table_markdown() -> str:
    """The table of runs x faults x outcomes, as Markdown."""
    if not TABLE:
        return ""
    columns = list(TABLE[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in TABLE]
    return "\n".join(lines)


def chaos(
    run: Run,
    *,
    publisher: str,
    publishers: int,
    events: int,
    consumer: str,
    consumers: int,
    kills: int,
    midway: Callable[[], None] | None = None,
    store: Store | None = None,
    every: tuple[float, float] = (0.4, 1.4),
    consumers_only: bool = False,
) -> None:
    """Start the publishers and consumers, SIGKILL a random one ``kills`` times at random
    points (restarting one of its role; a publisher gets fresh events), call ``midway``
    (another fault) halfway, and wait for the publishers alive at the end to finish.
    With ``store``, look for stale leases (:meth:`Run.sample`) before each fault;
    ``every``: the range of seconds between two kills; ``consumers_only``: kill only
    consumers (the publishers of the broker runs are the test's load, not under test)."""
    live: dict[subprocess.Popen[str], tuple[str, int]] = {}
    for _ in range(publishers):
        live[run.spawn(publisher, events)] = (publisher, events)
    for _ in range(consumers):
        live[run.spawn(consumer)] = (consumer, 0)
    for n in range(kills):
        if midway is not None and n == kills // 2:
            run.pause(0.3, 1.0)
            midway()
        run.pause(*every)
        if store is not None:
            run.sample(store)
        running = [
            proc
            for proc in live
            if proc.poll() is None and not (consumers_only and live[proc][0] != consumer)
        ]
        victim = run.rng.choice(running)
        role, count = live.pop(victim)
        run.kill(victim, "publisher" if count else role)
        live[run.spawn(role, count)] = (role, count)

    def published(proc: subprocess.Popen[str]) -> int:
        path = run.logs / f"published-{proc.pid}.log"
        return path.read_text().count("\n") if path.exists() else 0

    def finished() -> bool:
        for proc, (_, count) in live.items():
            if count and published(proc) < count:
                if proc.poll() is not None:
                    raise AssertionError(f"{run.name}: a publisher exited with {proc.returncode}")
                return False
        return True

    wait_for(finished, timeout=90, interval=0.1, what=f"{run.name}: the publishers finish")


def _lost_with_workers(record: DeadLetter) -> bool:
    """Dead because its attempts ended with killed workers until the policy's ran out: the
    promised outcome for an event whose retries are killed again and again."""
    return record.status == Status.DEAD and record.error_type.endswith("WorkerLost")
