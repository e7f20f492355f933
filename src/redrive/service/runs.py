"""Replay runs kept in the store: one record per run with its state, like an SQS move task.

The console and the API start a run (a planned, bounded replay of everything a filter
matches, optionally paced, with a canary and an abort threshold); it runs in a thread of
that server and writes its progress to the store's key/value meta table (namespace
``replays``), so ``redrive replays list|show|stop``, ``/api/v1/replays`` and the console
all see the same runs and can stop them. A run whose server went away is shown as
``interrupted`` (its heartbeat stops); the records it had not reached stay ``dead``.

States: ``running`` → ``done`` | ``stopped`` (an operator pressed Stop) | ``aborted`` (the
canary or the failure rate stopped it) | ``failed`` (an error; the log says which) |
``interrupted`` (the server stopped or restarted while it ran).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from redrive._ids import new_id
from redrive.exceptions import InvalidTransition, NotFound
from redrive.models import JSON, Status, format_time, parse_time
from redrive.service.replay import ReplayOptions, ReplayPlan, _settled
from redrive.service.selection import Result, filter_to_dict
from redrive.stores.base import Filter

if TYPE_CHECKING:
    from redrive.service import DeadLetterQueue

logger = logging.getLogger("redrive.replays")

NAMESPACE = "replays"
FINAL = ("done", "stopped", "aborted", "failed", "interrupted")
STALE = timedelta(seconds=60)
"""A running run whose heartbeat is older than this has lost its server: interrupted."""
BEAT = 2.0
"""Seconds between progress writes while a run waits (pacing, canary, settling)."""
SETTLE_POLL = 0.25
KEPT_RUNS = 200
"""Finished runs kept in the store; older ones are dropped when a new run starts."""


def filter_from_dict(data: dict[str, Any]) -> Filter:
    """The ``Filter`` that ``filter_to_dict`` wrote (a run's selection, read back)."""
    fields: dict[str, Any] = {}
    for name, value in data.items():
        if name == "statuses":
            fields[name] = tuple(Status(v) for v in value)
        elif name == "ids":
            fields[name] = tuple(value)
        elif name.endswith(("_after", "_before")):
            fields[name] = parse_time(value)
        else:
            fields[name] = value
    return Filter(**fields)


_JOBS: dict[str, _Job] = {}
"""The runs this process is running (so a stopping server can end them)."""
_JOBS_LOCK = threading.Lock()


class ReplayRuns:
    """Start, list, show and stop replay runs; every surface uses this one class.

    .. versionadded:: 0.2
    """

    def __init__(self, dlq: DeadLetterQueue) -> None:
        self.dlq = dlq
        self.store = dlq.store
        self.owner = {"host": socket.gethostname(), "pid": os.getpid()}

    # -- reading -----------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        """Every kept run, newest first (a running one that lost its server shows as
        ``interrupted``)."""
        runs = [self._view(v) for v in self.store.meta_list(NAMESPACE).values() if _is_run(v)]
        return sorted(runs, key=lambda run: str(run.get("created_at")), reverse=True)

    def get(self, run_id: str) -> dict[str, Any]:
        """One run; raises ``NotFound``."""
        found = self.store.meta_get(NAMESPACE, run_id)
        if found is None or not _is_run(found[0]):
            raise NotFound(f"no replay run with id {run_id!r}")
        return self._view(found[0])

    # -- changing ----------------------------------------------------------------------
    def start(
        self,
        plan: ReplayPlan,
        options: ReplayOptions,
        *,
        actor: str,
        note: str | None = None,
        force: bool = False,
        background: bool = True,
    ) -> dict[str, Any]:
        """Start replaying ``plan`` (its bounded filter) under ``options``; return the run.

        ``background`` runs it in a daemon thread of this process (a server); without it
        the call returns when the run has ended.
        """
        self._prune()
        now = self.dlq.clock.now()
        run: dict[str, Any] = {
            "kind": "replay-run",
            "id": new_id(),
            "state": "running",
            "actor": actor,
            "note": note,
            "created_at": format_time(now),
            "updated_at": format_time(now),
            "finished_at": None,
            "filter": filter_to_dict(plan.where),
            "upto": plan.where.max_id or None,
            "count": plan.count,
            "by_topic": dict(plan.by_topic),
            "options": {
                "rate": options.rate,
                "canary": options.canary,
                "abort_on_failure_rate": options.abort_on_failure_rate,
                "force": force,
            },
            "done": 0,
            "scheduled": 0,
            "skipped": 0,
            "succeeded": 0,
            "failed": 0,
            "pending": 0,
            "left": plan.count,
            "aborted": None,
            "stop_requested_by": None,
            "error": None,
            "owner": self.owner,
        }
        self.store.meta_put(NAMESPACE, run["id"], run, version=0)
        job = _Job(self, run["id"], plan, options, force=force, actor=actor, note=note)
        if background:
            thread = threading.Thread(target=job.run, name=f"redrive-replay-{run['id']}")
            thread.daemon = True
            thread.start()
            return run
        job.run()
        return self.get(run["id"])

    def stop(self, run_id: str, *, actor: str) -> dict[str, Any]:
        """Ask a running run to stop (it stops after the wave in progress); raises
        ``NotFound``, or ``InvalidTransition`` if it is not running."""
        current = self.get(run_id)
        if current["state"] != "running":
            raise InvalidTransition(f"replay run {run_id} is {current['state']}, not running")
        self.update(run_id, stop_requested_by=actor)
        return self.get(run_id)

    def update(self, run_id: str, **changes: JSON) -> dict[str, Any] | None:
        """Merge ``changes`` into the stored run (compare-and-set, retried on a race)."""
        for _ in range(10):
            found = self.store.meta_get(NAMESPACE, run_id)
            if found is None or not isinstance(found[0], dict):
                return None
            value = {**found[0], **changes, "updated_at": format_time(self.dlq.clock.now())}
            if self.store.meta_put(NAMESPACE, run_id, value, version=found[1]):
                return value
        return None

    def recover(self, *, ended: bool = False) -> int:
        """Mark runs that cannot go on as ``interrupted``: this host's runs whose process
        is gone, any run whose heartbeat is stale, and (``ended``: this server is
        stopping) this process's own. Returns how many were marked."""
        marked = 0
        for run_id, value in self.store.meta_list(NAMESPACE).items():
            if not _is_run(value) or value.get("state") != "running":
                continue
            owner = value.get("owner") or {}
            mine = owner == self.owner
            gone = owner.get("host") == self.owner["host"] and not _alive(owner.get("pid"))
            if (mine and ended) or (not mine and (gone or self._stale(value))):
                why = "the server stopped" if mine else "the server running it went away"
                self.update(run_id, state="interrupted", aborted=why, finished_at=self._now())
                marked += 1
        if ended:
            with _JOBS_LOCK:
                jobs = [job for job in _JOBS.values() if job.runs.store is self.store]
            for job in jobs:
                job.cancelled = "the server stopped"
        return marked

    # -- helpers -----------------------------------------------------------------------
    def _now(self) -> str | None:
        return format_time(self.dlq.clock.now())

    def _stale(self, value: dict[str, Any]) -> bool:
        beat = parse_time(value.get("updated_at"))
        return beat is None or self.dlq.clock.now() - beat > STALE

    def _view(self, value: JSON) -> dict[str, Any]:
        run = dict(value) if isinstance(value, dict) else {}
        if run.get("state") == "running" and self._stale(run):
            run["state"] = "interrupted"
            run["aborted"] = run.get("aborted") or "the server running it stopped answering"
        return run

    def _prune(self) -> None:
        finished = [run for run in self.list() if run.get("state") in FINAL]
        for run in finished[KEPT_RUNS:]:
            self.store.meta_delete(NAMESPACE, str(run["id"]))


class _Job:
    """The thread's side of one run: replays, writes progress, honours Stop."""

    def __init__(
        self,
        runs: ReplayRuns,
        run_id: str,
        plan: ReplayPlan,
        options: ReplayOptions,
        *,
        force: bool,
        actor: str,
        note: str | None,
    ) -> None:
        self.runs, self.run_id, self.plan, self.options = runs, run_id, plan, options
        self.force, self.actor, self.note = force, actor, note
        self.tally = Result(0, 0, 0)
        self.ids: list[str] = []
        self.last_beat = 0.0
        self.stop_by: str | None = None
        self.cancelled: str | None = None

    def run(self) -> None:
        with _JOBS_LOCK:
            _JOBS[self.run_id] = self
        try:
            self._run()
        except Exception:  # the store went away (closed, down): nothing left to record
            logger.exception("replay run %s could not record its end", self.run_id)
        finally:
            with _JOBS_LOCK:
                _JOBS.pop(self.run_id, None)

    def _run(self) -> None:
        try:
            report = self.runs.dlq.replay(
                where=self.plan.where,
                options=self.options,
                force=self.force,
                actor=self.actor,
                note=self._note(),
                watch=self,
            )
            succeeded, failed, pending = report.succeeded, report.failed, report.pending
            if not self.options.watching and not report.aborted:
                succeeded, failed, pending = self._settle()
            state = "stopped" if self.stop_by else ("aborted" if report.aborted else "done")
            if self.cancelled:
                state = "interrupted"
            self.runs.update(
                self.run_id,
                state=state,
                aborted=report.aborted,
                scheduled=report.scheduled,
                skipped=report.skipped,
                succeeded=succeeded,
                failed=failed,
                pending=pending,
                left=report.remaining,
                finished_at=self.runs._now(),
            )
        except Exception as exc:  # the run's record must say it ended; the log says why
            logger.exception("replay run %s failed", self.run_id)
            self.runs.update(
                self.run_id, state="failed", error=type(exc).__name__, finished_at=self.runs._now()
            )

    def _note(self) -> str:
        prefix = f"{self.note}; " if self.note else ""
        return f"{prefix}replay run {self.run_id}"

    # ReplayWatch
    def on_wave(self, result: Result) -> None:
        self.tally += result
        self.ids.extend(result.ids)
        self._beat(force=True)

    def stop_reason(self) -> str | None:
        if self.cancelled:
            return self.cancelled
        if self.stop_by is None and time.monotonic() - self.last_beat >= BEAT:
            self._beat(force=True)
        return f"stopped by {self.stop_by}" if self.stop_by else None

    def _beat(self, *, force: bool = False, **extra: JSON) -> None:
        """Write progress (and read a Stop request) at most every ``BEAT`` seconds."""
        if not force and time.monotonic() - self.last_beat < BEAT:
            return
        self.last_beat = time.monotonic()
        done = self.tally.matched
        value = self.runs.update(
            self.run_id,
            done=done,
            scheduled=self.tally.changed,
            skipped=self.tally.skipped,
            left=max(self.plan.count - done, 0),
            **extra,
        )
        if value is not None and value.get("stop_requested_by"):
            self.stop_by = str(value["stop_requested_by"])

    def _settle(self) -> tuple[int, int, int]:
        """Follow the replayed records until they settle (or ``wait`` passes, or Stop)."""
        deadline = time.monotonic() + self.options.wait.total_seconds()
        succeeded = failed = 0
        open_ids = list(self.ids)
        while True:
            still: list[str] = []
            for chunk in _chunks(open_ids, 500):
                found = {
                    r.id: r
                    for r in self.runs.dlq.list(Filter(ids=tuple(chunk)), limit=len(chunk)).items
                }
                for record_id in chunk:
                    state = _settled(found.get(record_id))
                    if state is None:
                        still.append(record_id)
                    elif state == Status.RESOLVED:
                        succeeded += 1
                    elif state == Status.DEAD:
                        failed += 1
            open_ids = still
            self._beat(succeeded=succeeded, failed=failed, pending=len(open_ids))
            if not open_ids or time.monotonic() > deadline or self.stop_reason():
                return succeeded, failed, len(open_ids)
            time.sleep(SETTLE_POLL)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_run(value: JSON) -> bool:
    return isinstance(value, dict) and value.get("kind") == "replay-run"


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
