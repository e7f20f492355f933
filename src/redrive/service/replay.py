"""Safe replay: a plan before the change, JSON merge patches, pacing, canaries and an abort
threshold. The service (``DeadLetterQueue.plan`` / ``DeadLetterQueue.replay``) is the way in.

A replay only *schedules* records; the scheduler of the app (or ``redrive worker``) runs
them. So a canary or an abort threshold watches the store until the replayed records
settle: ``resolved`` (success), ``dead`` again (failure), or gone/discarded (neither).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Protocol

from redrive._batch import chunks
from redrive._clock import Clock
from redrive.models import JSON, Attempt, DeadLetter, Status
from redrive.service.selection import BATCH, REPLAYABLE, Result, iter_ids
from redrive.stores.base import Change, Filter, Group, Store

POLL_INTERVAL = 0.25
"""Seconds between looks at the store while waiting for replayed records to settle."""

ABORT_MIN_SAMPLE = 10
"""Settled records needed before ``abort_on_failure_rate`` may stop a replay."""

WAVE_WHEN_WATCHING = 100
"""Records per wave when an abort threshold is set without a rate: each wave settles
before the next starts, so a bad fix stops after about one wave."""


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """Apply an RFC 7386 JSON merge patch to ``target`` and return the result.

    Objects merge key by key, ``null`` removes a key, anything else replaces. The input
    is not changed.
    """
    if not isinstance(patch, Mapping):
        return patch
    result: dict[str, JSON] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReplayPlan:
    """What a replay of ``where`` would do; ``where`` is bounded (``max_id``) so that a
    real run replays at most ``count`` records.

    :param guarded: dead letters left out because they were replayed ``max_replays``
        times already (the loop guard); ``force`` includes them.
    """

    where: Filter
    count: int
    by_topic: Mapping[str, int]
    groups: tuple[Group, ...]
    samples: tuple[DeadLetter, ...]
    guarded: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReplayOptions:
    """How a safe replay proceeds.

    :param rate: records scheduled per second (None: as fast as the store allows).
    :param canary: replay this many first; go on only if every one of them succeeds.
    :param abort_on_failure_rate: stop when more than this share (0..1) of the settled
        replayed records failed again; the rest stay ``dead``.
    :param wait: how long to wait for replayed records to settle before giving up.
    """

    rate: float | None = None
    canary: int = 0
    abort_on_failure_rate: float | None = None
    wait: timedelta = timedelta(minutes=2)

    @property
    def watching(self) -> bool:
        """True when the outcome of replayed records decides what follows."""
        return self.canary > 0 or self.abort_on_failure_rate is not None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReplayReport:
    """What a replay did. ``remaining`` were selected but not replayed (left ``dead``);
    ``pending`` were replayed but had not settled when the replay stopped watching."""

    scheduled: int
    skipped: int
    missing: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    remaining: int = 0
    aborted: str | None = None

    def to_dict(self) -> dict[str, JSON]:
        """The JSON shape of the report."""
        return dataclasses.asdict(self)


class _Outcomes:
    """Replayed ids not settled yet, and the tally of those that did."""

    def __init__(self) -> None:
        self.open: list[str] = []
        self.succeeded = 0
        self.failed = 0

    @property
    def settled(self) -> int:
        return self.succeeded + self.failed

    def failure_rate(self) -> float:
        return self.failed / self.settled if self.settled else 0.0


class ReplayWatch(Protocol):
    """Follows a replay as it runs, and may stop it (a replay run kept in the store)."""

    def on_wave(self, result: Result) -> None:
        """A wave was scheduled (``result.ids`` are the records it replayed)."""

    def stop_reason(self) -> str | None:
        """Why the replay must stop now (say, an operator pressed Stop), or None."""


class SafeReplay:
    """Replays in waves, paced and watched. Built by ``DeadLetterQueue.replay``."""

    def __init__(
        self,
        store: Store,
        options: ReplayOptions,
        *,
        schedule: Callable[[list[str]], Result],
        progress: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        watch: ReplayWatch | None = None,
    ) -> None:
        self.store = store
        self._hook = watch
        self.options = options
        self._schedule = schedule
        self._progress = progress
        self._sleep = sleep
        self._monotonic = monotonic
        self.outcomes = _Outcomes()

    def run(self, batches: Iterable[list[str]], total: int) -> ReplayReport:
        """Replay the ids of ``batches`` (``total`` of them at most) and report."""
        scheduled = skipped = missing = done = 0
        started = self._monotonic()
        aborted: str | None = None
        for number, wave in enumerate(self._waves(batches)):
            aborted = self._pace(started, done)
            if aborted:
                break
            result = self._schedule(wave)
            scheduled, skipped = scheduled + result.changed, skipped + result.skipped
            missing += result.missing
            done += len(wave)
            if self.options.watching:
                self.outcomes.open.extend(result.ids)
            if self._progress is not None:
                self._progress(len(wave))
            if self._hook is not None:
                self._hook.on_wave(result)
            aborted = self._stopped() or self._verdict(first=number == 0)
            if aborted:
                break
        if self.options.watching and not aborted:
            self._watch(until_settled=True)
            aborted = self._abort_reason(final=True)
        return ReplayReport(
            scheduled=scheduled,
            skipped=skipped,
            missing=missing,
            succeeded=self.outcomes.succeeded,
            failed=self.outcomes.failed,
            pending=len(self.outcomes.open),
            remaining=max(total - done, 0),
            aborted=aborted,
        )

    def _waves(self, batches: Iterable[list[str]]) -> Iterator[list[str]]:
        """Re-cut the id batches into waves: the canary first, then paced slices."""
        size = self._wave_size()
        first = self.options.canary or size
        buffer: list[str] = []
        for batch in batches:
            buffer.extend(batch)
            while len(buffer) >= first:
                yield buffer[:first]
                buffer, first = buffer[first:], size
        if buffer:
            yield buffer

    def _wave_size(self) -> int:
        if self.options.rate:
            return max(1, min(BATCH, math.ceil(self.options.rate)))
        if self.options.abort_on_failure_rate is not None:
            return WAVE_WHEN_WATCHING
        return BATCH

    def _stopped(self) -> str | None:
        return self._hook.stop_reason() if self._hook is not None else None

    def _pace(self, started: float, done: int) -> str | None:
        """Wait until the next wave is due; a stop asked for meanwhile ends the wait."""
        if not self.options.rate or done == 0:
            return None
        while (delay := started + done / self.options.rate - self._monotonic()) > 0:
            stopped = self._stopped()
            if stopped:
                return stopped
            self._sleep(min(delay, 1.0) if self._hook is not None else delay)
        return None

    def _verdict(self, *, first: bool) -> str | None:
        """Decide after a wave whether to go on; None means go on."""
        if first and self.options.canary:
            self._watch(until_settled=True)
            if self.outcomes.open:
                return f"canary: {len(self.outcomes.open)} replayed records did not settle in time"
            if self.outcomes.failed:
                return f"canary: {self.outcomes.failed} of {self.outcomes.settled} failed again"
            return None
        if self.options.abort_on_failure_rate is None:
            return None
        self._watch(until_settled=not self.options.rate)
        return self._abort_reason(final=False)

    def _abort_reason(self, *, final: bool) -> str | None:
        threshold = self.options.abort_on_failure_rate
        settled = self.outcomes.settled
        if threshold is None or settled == 0:
            return None
        if not final and settled < ABORT_MIN_SAMPLE:
            return None
        rate = self.outcomes.failure_rate()
        if rate <= threshold:
            return None
        return (
            f"failure rate {rate:.0%} ({self.outcomes.failed} of {settled}) "
            f"is above {threshold:.0%}"
        )

    def _watch(self, *, until_settled: bool) -> None:
        """Look at the replayed records; if asked, wait (up to ``wait``) until all settle."""
        deadline = self._monotonic() + self.options.wait.total_seconds()
        self._look()
        while until_settled and self.outcomes.open and self._monotonic() < deadline:
            if self._stopped():
                return
            self._sleep(POLL_INTERVAL)
            self._look()

    def _look(self) -> None:
        still_open: list[str] = []
        for chunk in chunks(self.outcomes.open, 500):
            found = {
                r.id: r for r in self.store.find(Filter(ids=tuple(chunk)), limit=len(chunk)).items
            }
            for record_id in chunk:
                state = _settled(found.get(record_id))
                if state is None:
                    still_open.append(record_id)
                elif state == Status.RESOLVED:
                    self.outcomes.succeeded += 1
                elif state == Status.DEAD:
                    self.outcomes.failed += 1
        self.outcomes.open = still_open


def _settled(record: DeadLetter | None) -> Status | None:
    """The final status a replayed record reached, or None while it is still in flight."""
    if record is None:
        return Status.DISCARDED  # deleted meanwhile: settled, neither success nor failure
    if record.status in (Status.SCHEDULED, Status.RETRYING):
        return None
    return record.status


def plan_replay(store: Store, bounded: Filter, *, samples: int) -> ReplayPlan:
    """Count, break down and sample what a replay of ``bounded`` (a selection the service
    bounded to the dead letters that exist now) would change."""
    groups = store.groups(bounded, limit=10_000)
    by_topic: dict[str, int] = {}
    for group in groups:
        by_topic[group.topic] = by_topic.get(group.topic, 0) + group.count
    count = sum(by_topic.values())
    left_out = 0
    if bounded.max_replays is not None:
        left_out = store.count(bounded.replace(max_replays=None)) - count
    sample = store.find(bounded, limit=samples).items if samples else []
    return ReplayPlan(
        where=bounded,
        count=count,
        by_topic=dict(sorted(by_topic.items())),
        groups=tuple(groups[:10]),
        samples=tuple(sample),
        guarded=left_out,
    )


class ReplayRun:
    """One replay: its selection (explicit ids, or a bounded filter), the changes per wave,
    and the tally the service records in the audit trail."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        ids: list[str] | None,
        where: Filter | None,
        *,
        patch: JSON,
        delay: timedelta,
        actor: str,
        note: str | None,
    ) -> None:
        self.store, self.clock, self.ids, self.where = store, clock, ids, where
        self.patch, self.delay, self.actor, self.note = patch, delay, actor, note
        self.originals: dict[str, JSON] = {}
        self.tally = Result(0, 0, 0)

    def execute(
        self,
        options: ReplayOptions,
        progress: Callable[[int], None] | None,
        watch: ReplayWatch | None = None,
    ) -> ReplayReport:
        """Replay in waves under ``options``; return the report."""
        if self.ids is not None:
            batches: Iterable[list[str]] = (list(c) for c in chunks(self.ids, BATCH))
            total = len(self.ids)
        else:
            assert self.where is not None
            batches, total = iter_ids(self.store, self.where), self.store.count(self.where)
        runner = SafeReplay(
            self.store, options, schedule=self._schedule, progress=progress, watch=watch
        )
        return runner.run(batches, total)

    def _schedule(self, wave: list[str]) -> Result:
        result = schedule_wave(
            self.store,
            self.clock,
            wave,
            self.ids is not None,
            self.delay,
            self.patch,
            self.actor,
            self.note,
            self.originals,
        )
        self.tally += result
        return result

    def audit_detail(self, report: ReplayReport) -> dict[str, JSON]:
        """What the audit entry adds to the counts: the outcome and any patch."""
        extra: dict[str, JSON] = {k: v for k, v in report.to_dict().items() if v}
        if self.patch is not None:
            extra.update(patch=self.patch, original_payloads=self.originals)
        return extra


AUDITED_ORIGINALS = 100
"""Original payloads of a patched replay kept in its audit entry (each record's history
keeps its own in any case)."""


def schedule_wave(
    store: Store,
    clock: Clock,
    wave: list[str],
    explicit: bool,
    delay: timedelta,
    patch: JSON,
    actor: str,
    note: str | None,
    originals: dict[str, JSON],
) -> Result:
    """Replay one wave (no audit entry: ``DeadLetterQueue.replay`` writes one per run).

    :param explicit: the ids were named by the operator: count those that do not exist.
    """
    now, missing = clock.now(), 0
    if explicit:
        found = store.ids(Filter(ids=tuple(wave)), limit=len(wave))
        wave, missing = found, len(wave) - len(found)
    if not wave:  # an empty id filter would mean "every record": never pass one on
        return Result(0, 0, 0, missing)
    detail: dict[str, JSON] = {"actor": actor, **({"note": note} if note else {})}
    change = Change(
        to=Status.SCHEDULED,
        from_statuses=REPLAYABLE,
        now=now,
        next_attempt_at=now + delay,
        entry=Attempt(kind="replay", at=now, detail=detail),
        replay=True,
    )
    if patch is None:
        changed = store.transition(wave, change)
    else:
        changed = _patch_wave(store, wave, change, patch, originals)
    return Result(len(wave), len(changed), len(wave) - len(changed), missing, tuple(changed))


def _patch_wave(
    store: Store,
    wave: list[str],
    change: Change,
    patch: JSON,
    originals: dict[str, JSON],
) -> list[str]:
    """Patch and replay record by record, so each history entry keeps its own original."""
    changed: list[str] = []
    dead = Filter(ids=tuple(wave), statuses=change.from_statuses)
    entry = change.entry
    assert entry is not None
    for record in store.find(dead, limit=len(wave)).items:
        detail = {**entry.detail, "patch": patch, "original_payload": record.payload}
        one = dataclasses.replace(
            change,
            entry=dataclasses.replace(entry, detail=detail),
            payloads={record.id: merge_patch(record.payload, patch)},
        )
        if store.transition([record.id], one):
            changed.append(record.id)
            if len(originals) < AUDITED_ORIGINALS:
                originals[record.id] = record.payload
    return changed
