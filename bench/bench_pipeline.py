"""The failure pipeline (issue 14, items 4 and 5): redrive against dramatiq, celery and
procrastinate, in the same run, interleaved rounds, medians.

Workload (bench/peers/plan.py): 10,000 events, 1% poison (non-retriable), 5% transient
(fail once, then succeed), at most 3 attempts, backoff 10 ms doubling to 100 ms. Each
system is timed from its first publish (enqueue, outbox insert) until every event is
settled and verified in the system's own store: 100 dead letters (the poison events), every
transient event succeeded on its second attempt, handler calls as expected. A round whose
verification fails does not count; the run says so.

Systems: redrive's bus and outbox on SQLite (file, WAL, synchronous=FULL) and PostgreSQL
(fsync on), and the peers, each configured as its docs recommend for this workload (the
settings are printed, and explained in bench/peers/<peer>_app.py): dramatiq + Redis with
no persistence and with ``appendfsync always``, celery + Redis, procrastinate +
PostgreSQL. The peers are installed into their own virtualenv (bench/.peers-venv, made on
first use, never redrive's) and run there as worker processes. Redis (Debian's
redis-server, installed if missing) and PostgreSQL are started on 127.0.0.1 on free ports
in temp dirs; every server, worker and writer started here is stopped by its PID.

Usage: .venv/bin/python bench/bench_pipeline.py [--events 10000] [--rounds 3]
       [--contended] [--quick] [--redrive-only] [--only dramatiq,redrive]
       [--producers 1] [--outbox-batch 1] [--store-calls]
``--contended``: the same with a process writing 64 KB + fsync in a loop on the same disk.
``--quick``: 1,000 events, 1 round (a smoke run). ``--redrive-only``: no peers.
``--only``: the systems whose names contain one of the parts (the others are listed as not
run). ``--producers``: concurrent producers for the peers and the outbox (default 1: one
event after the other, each durable before the next). ``--store-calls``: then one more bus
run per store, counting its store calls (each a transaction) and the time spent in them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pg_server

import pipeline_redrive as ours
from peers.servers import BENCH, DiskWriter, RedisServer, peers_python
from pipeline_redrive import Result
from tests.pg_server import PgServer


@dataclasses.dataclass
class System:
    name: str
    family: str  # "bus", "outbox" or "peer"
    durable: bool  # is each event durable before its publish returns?
    settings: str
    run: Callable[[int], Result]  # round number -> result


def redrive_systems(folder: Path, pg: PgServer, n: int, batch: int, producers: int) -> list[System]:
    def sqlite_dir(kind: str, k: int) -> Path:
        path = folder / f"{kind}-{k}"
        path.mkdir()
        return path

    policy = "RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.1, jitter='none')"
    return [
        System(
            "redrive bus, SQLite",
            "bus",
            False,
            f"100 publishers; {policy}",
            lambda k: ours.sqlite_bus(sqlite_dir("bus", k), n),
        ),
        System(
            "redrive bus, PostgreSQL",
            "bus",
            False,
            f"100 publishers; {policy}",
            lambda k: ours.postgres_bus(pg.create_database(f"bus_{k}"), n),
        ),
        System(
            "redrive outbox, SQLite",
            "outbox",
            True,
            f"{producers} producer(s), {batch} event(s) per business transaction; "
            "poll_interval=0.1 (no NOTIFY)",
            lambda k: ours.sqlite_outbox(sqlite_dir("outbox", k), n, batch, producers),
        ),
        System(
            "redrive outbox, PostgreSQL",
            "outbox",
            True,
            f"{producers} producer(s), {batch} event(s) per business transaction; "
            "NOTIFY wakes the dispatcher",
            lambda k: ours.postgres_outbox(pg.create_database(f"outbox_{k}"), n, batch, producers),
        ),
        System(
            "raw inserts, SQLite",
            "limit",
            True,
            f"{producers} connection(s), {batch} row(s) per COMMIT, minimal table, WAL, "
            "synchronous=FULL",
            lambda k: ours.sqlite_raw_inserts(sqlite_dir("raw", k), n, batch, producers),
        ),
        System(
            "raw inserts, PostgreSQL",
            "limit",
            True,
            f"{producers} connection(s), {batch} row(s) per COMMIT, minimal table, fsync on",
            lambda k: ours.postgres_raw_inserts(
                pg.create_database(f"raw_{k}"), n, batch, producers
            ),
        ),
    ]


def peer(python: Path, system: str, env: dict[str, str], n: int, producers: int) -> Result:
    """One round of a peer, through peers/runner.py in the peers' venv."""
    deadline = 300.0
    proc = subprocess.Popen(
        [
            str(python),
            "-m",
            "peers.runner",
            system,
            "--events",
            str(n),
            "--deadline",
            str(deadline),
            "--producers",
            str(producers),
        ],
        cwd=BENCH,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=deadline + 120)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGTERM)  # the runner stops its workers on the way out
        out, err = proc.communicate(timeout=60)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return Result(float("nan"), [f"runner exited {proc.returncode}: {err[-1500:]}"])
    data = json.loads(lines[-1])
    if data["seconds"] is None:
        return Result(float("nan"), [*data["problems"], data.get("log", "")[-1500:]])
    return Result(float(data["seconds"]), list(data["problems"]))


def peer_systems(
    python: Path, plain: RedisServer, fsynced: RedisServer, pg_url: str, n: int, producers: int
):
    return [
        System(
            "dramatiq + Redis (no persistence)",
            "peer",
            False,
            "2 processes x 8 threads; Retries(max_retries=2, min_backoff=10, "
            "max_backoff=100, throws=(Poison,)); dramatiq_worker_timeout=100",
            lambda k: peer(python, "dramatiq", {"BENCH_REDIS_URL": plain.url}, n, producers),
        ),
        System(
            "dramatiq + Redis (appendfsync always)",
            "peer",
            True,
            "as above; Redis appendonly yes, appendfsync always",
            lambda k: peer(python, "dramatiq", {"BENCH_REDIS_URL": fsynced.url}, n, producers),
        ),
        System(
            "celery + Redis (no persistence)",
            "peer",
            False,
            "prefork -c 2; acks_late, reject_on_worker_lost, prefetch 16; "
            "ignore_result + store_errors_even_if_ignored; self.retry(countdown)",
            lambda k: peer(python, "celery", {"BENCH_REDIS_URL": plain.url}, n, producers),
        ),
        System(
            "procrastinate + PostgreSQL",
            "peer",
            True,
            "2 workers x concurrency 10; LISTEN/NOTIFY; fetch_job_polling_interval=0.1; "
            "custom BaseRetryStrategy; defer_async per job",
            lambda k: peer(python, "procrastinate", {"BENCH_PG_URL": pg_url}, n, producers),
        ),
    ]


def rounds_of(systems: list[System], rounds: int) -> dict[str, list[Result]]:
    """Every system once per round, in turn (interleaved), each result printed as it comes."""
    results: dict[str, list[Result]] = {s.name: [] for s in systems}
    for k in range(rounds):
        for system in systems:
            result = system.run(k)
            results[system.name].append(result)
            state = "verified" if result.verified else "FAILED: " + "; ".join(result.problems)
            print(
                f"  round {k + 1}: {system.name:<40} {result.seconds:8.2f} s  {state}", flush=True
            )
    return results


def median(results: list[Result]) -> float | None:
    """The median of the verified rounds; None if any round failed verification."""
    if not results or not all(r.verified for r in results):
        return None
    return statistics.median(r.seconds for r in results)


def summary(systems: list[System], results: dict[str, list[Result]]) -> None:
    medians = {s.name: median(results[s.name]) for s in systems}
    print("\nsystem                                     durable  median s  settings")
    for s in systems:
        value = medians[s.name]
        shown = f"{value:8.2f}" if value is not None else "  FAILED"
        print(f"  {s.name:<40} {'yes' if s.durable else 'no ':<7} {shown}  {s.settings}")
    limits(systems, medians)
    peers = [s for s in systems if s.family == "peer" and medians[s.name] is not None]
    if not peers:
        print("\n(no peer ran: no ratios)")
        return
    fastest = min(peers, key=lambda s: medians[s.name])
    durable = [s for s in peers if s.durable]
    fastest_durable = min(durable, key=lambda s: medians[s.name]) if durable else None
    print("\nratios (the peer's time / redrive's time; 2.0 = redrive takes half the time):")
    targets = {"redrive bus, SQLite": 10, "redrive bus, PostgreSQL": 6}
    for s in systems:
        mine = medians[s.name]
        if s.family in ("peer", "limit") or mine is None:
            continue
        against = fastest if s.family == "bus" else fastest_durable
        if against is None:
            continue
        ratio = medians[against.name] / mine
        target = targets.get(s.name, 5)
        print(f"  {s.name:<28} vs {against.name:<38} {ratio:6.2f}x  (target >= {target}x)")
    for s in systems:  # the most an outbox on that database could reach against the peer
        limit = medians[s.name]
        if s.family == "limit" and limit is not None and fastest_durable is not None:
            ratio = medians[fastest_durable.name] / limit
            print(f"  {s.name:<28} vs {fastest_durable.name:<38} {ratio:6.2f}x  (the ceiling)")


def limits(systems: list[System], medians: dict[str, float | None]) -> None:
    """Each outbox against the physical limit of its producers' side, on its database."""
    shown = False
    for s in systems:
        database = s.name.rpartition(", ")[2]
        limit = medians.get(f"raw inserts, {database}")
        mine = medians[s.name]
        if s.family != "outbox" or limit is None or mine is None:
            continue
        if not shown:
            print("\nthe outbox against its physical limit (the same inserts, raw; 1.0 = no cost):")
            shown = True
        print(f"  {s.name:<28} {limit / mine:5.2f} of raw inserts, {database}")


def store_calls(folder: Path, pg: PgServer, n: int) -> None:
    """Where the bus pipeline's store time goes: its calls, records and seconds."""
    print(
        f"\nstore calls of one bus pipeline run ({n:,} events; each a transaction, "
        "next_due_at a read):"
    )
    runs = (
        ("SQLite", lambda: ours.sqlite_bus(folder / "calls", n, count=True)),
        ("PostgreSQL", lambda: ours.postgres_bus(pg.create_database("calls"), n, count=True)),
    )
    (folder / "calls").mkdir()
    for label, run in runs:
        result = run()
        calls, records, seconds = (result.detail[k] for k in ("calls", "records", "seconds"))
        print(f"  {label} ({result.seconds:.2f} s, {'verified' if result.verified else 'FAILED'}):")
        for name in sorted(calls, key=lambda name: -seconds[name]):
            total, each = seconds[name] * 1000, seconds[name] / calls[name] * 1000
            print(
                f"    {name:<14} {calls[name]:>6} calls {records[name]:>7} records "
                f"{total:9.1f} ms in all {each:7.2f} ms each"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contended", action="store_true", help="a concurrent fsync writer")
    parser.add_argument("--quick", action="store_true", help="1,000 events, 1 round")
    parser.add_argument("--redrive-only", action="store_true", help="no peers")
    parser.add_argument("--outbox-batch", type=int, default=1, help="events per transaction")
    parser.add_argument(
        "--producers", type=int, default=1, help="concurrent producers (peers and outbox)"
    )
    parser.add_argument("--store-calls", action="store_true", help="count the bus's store calls")
    parser.add_argument(
        "--only", default="", help="comma-separated parts of system names to run (default all)"
    )
    args = parser.parse_args()
    n, rounds = (1_000, 1) if args.quick else (args.events, args.rounds)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        pg = PgServer(durable=True).start()
        stack.callback(pg.stop)
        systems = redrive_systems(Path(folder), pg, n, args.outbox_batch, args.producers)
        if args.redrive_only:
            print("peers: not run (--redrive-only)")
        else:
            python = peers_python()
            plain = RedisServer().start()
            stack.callback(plain.stop)
            fsynced = RedisServer(fsync="always").start()
            stack.callback(fsynced.stop)
            systems += peer_systems(
                python, plain, fsynced, pg.create_database("peers"), n, args.producers
            )
        if args.only:
            wanted = [part.strip().lower() for part in args.only.split(",")]
            left = [s for s in systems if not any(w in s.name.lower() for w in wanted)]
            systems = [s for s in systems if s not in left]
            print(f"not run (--only): {', '.join(s.name for s in left) or 'none'}")
        if args.contended:
            stack.callback(DiskWriter().start().stop)
        disk = "with a concurrent 64 KB-write+fsync loop" if args.contended else "quiet disk"
        print(
            f"failure pipeline: {n:,} events, 1% poison, 5% transient, 3 attempts, backoff "
            f"10 ms doubling to 100 ms; {rounds} round(s), {disk}"
        )
        results = rounds_of(systems, rounds)
        summary(systems, results)
        if args.store_calls:
            store_calls(Path(folder), pg, n)
        if not all(r.verified for rs in results.values() for r in rs):
            sys.exit(1)


if __name__ == "__main__":
    main()
