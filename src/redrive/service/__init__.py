"""DeadLetterQueue: the one API the operator surfaces (CLI, REST API, console, metrics,
alerts) use. It reads the store and changes records only by status transitions; it never
runs handlers: a replay schedules the record, and the scheduler of the process that owns
the handler runs it.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import dataclasses
import getpass
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from redrive._batch import chunks
from redrive._clock import Clock, SystemClock
from redrive._ids import new_id
from redrive._json import check_text
from redrive.core.presence import Stalled
from redrive.exceptions import FormatError, InvalidInput, NotFound
from redrive.hooks import Hook, Hooks
from redrive.models import JSON, Attempt, DeadLetter, Status
from redrive.redact import MASK, Redactor, keep_masked
from redrive.service import archive as archives
from redrive.service import formats, selection
from redrive.service.audit import AuditQuery
from redrive.service.formats import redacted
from redrive.service.replay import (
    ReplayOptions,
    ReplayPlan,
    ReplayReport,
    ReplayRun,
    ReplayWatch,
    plan_replay,
)
from redrive.service.selection import (
    BATCH,
    REPLAYABLE,
    RESOLVABLE,
    Result,
    filter_to_dict,
    make_filter,
)
from redrive.stores.base import AuditEntry, Change, Filter, Group, Page, Stats, Store
from redrive.stores.paging import DEFAULT_SORT, SORTS, check_sort, cursor_of

logger = logging.getLogger("redrive.service")

__all__ = [
    "BATCH",
    "REPLAYABLE",
    "RESOLVABLE",
    "SORTS",
    "AuditEntry",
    "AuditQuery",
    "DeadLetterQueue",
    "Filter",
    "FormatError",
    "Group",
    "Page",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayReport",
    "Result",
    "Stalled",
    "Stats",
    "filter_to_dict",
    "make_filter",
    "redacted",
]

AUDIT_IDS = 100
"""Ids an audit entry names (more are counted, not listed)."""

STALLED_AFTER = timedelta(minutes=5)
"""A scheduled record overdue this long with no live worker for its handler is stalled."""

TIMELINE_KEPT = timedelta(days=8)
"""How far back the per-minute dead-letter timeline (charts, rates) is kept."""

Progress = Callable[[int], None]
"""Called with the number of records a bulk operation has just handled."""

SEARCH_LIMIT = 10_000
"""With masked fields, a search is matched against scrubbed error messages record by record:
a count, a group listing or a bulk change takes at most this many matches (a listing pages
through any number)."""

SEARCH_SCAN = 5_000
"""Records one page of a listing looks through for scrubbed matches before it returns a
short page with a cursor (bounded work per request)."""


class DeadLetterQueue:
    """Inspect and manage dead letters.

    :param actor: who is acting, for the audit trail (default: the OS user).
    :param max_replays: bulk replays skip records replayed this many times (loop guard).
    :param redactor: the masked fields (``Settings.redactor()``). With fields masked, a
        search never looks into payloads and matches error messages *as shown* (with the
        payload's masked values scrubbed out), so it cannot confirm a masked value; group
        sample messages and plan samples come out scrubbed.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        hooks: Sequence[Hook] = (),
        actor: str | None = None,
        max_replays: int = 5,
        redactor: Redactor | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.hooks = Hooks(hooks)
        self.actor = actor or _os_user()
        self.max_replays = max_replays
        self.redactor = redactor or Redactor()

    def masked(self, redactor: Redactor) -> DeadLetterQueue:
        """This service with ``redactor`` (on the same store): what a surface with its
        own ``redact`` settings uses."""
        other = copy.copy(self)
        other.redactor = redactor
        return other

    # -- reads -------------------------------------------------------------------------
    def list(
        self,
        where: Filter | None = None,
        /,
        *,
        limit: int = 50,
        cursor: str | None = None,
        sort: str = DEFAULT_SORT,
        **criteria: Any,
    ) -> Page:
        """A page of records, newest first unless ``sort`` says otherwise (one of
        ``SORTS``: ``created``, ``dead``, ``attempts``, ``-`` in front for descending).
        Criteria are ``Filter`` fields, plus ``status``; an unknown sort, or a cursor of
        another sort, is ``InvalidInput``.

        With masked fields and a search, a page may come back short with a ``next_cursor``
        (it looked through ``SEARCH_SCAN`` records): follow the cursor."""
        where = make_filter(where, **criteria)
        _check_criteria(where)
        check_sort(sort)
        if cursor is not None:
            check_text(cursor, "cursor")
        if self.redactor and where.search:
            return self._search_page(where.replace(search_payload=False), limit, cursor, sort)
        return self.store.find(where, limit=limit, cursor=cursor, sort=sort)

    def _shows(self, record: DeadLetter, text: str) -> bool:
        """Whether ``text`` is in the record's error message as shown (scrubbed)."""
        return text.casefold() in self.redactor.message_of(record).casefold()

    def _search_page(self, where: Filter, limit: int, cursor: str | None, sort: str) -> Page:
        kept: builtins.list[DeadLetter] = []
        scanned = 0
        while True:
            size = min(max(limit, 100), 1000)
            page = self.store.find(where, limit=size, cursor=cursor, sort=sort)
            for index, record in enumerate(page.items):
                if self._shows(record, where.search or ""):
                    kept.append(record)
                if len(kept) == limit:
                    more = index + 1 < len(page.items) or page.next_cursor is not None
                    return Page(kept, cursor_of(record, sort) if more else None)
            scanned += len(page.items)
            if page.next_cursor is None:
                return Page(kept, None)
            cursor = page.next_cursor
            if scanned >= SEARCH_SCAN:
                return Page(kept, cursor)

    def searchable(self, where: Filter) -> Filter:
        """``where`` as the store can run it: with masked fields, a search becomes the ids
        of the records whose scrubbed error message holds the text (at most
        ``SEARCH_LIMIT``, else ``InvalidInput``); without, it is ``where`` itself.

        Text no store can compare (a NUL, a lone surrogate) is refused here, before the
        store is asked, with ``InvalidInput`` naming the criterion."""
        _check_criteria(where)
        if not (self.redactor and where.search):
            return where
        text, raw = where.search, where.replace(search_payload=False)
        found: builtins.list[str] = []
        cursor: str | None = None
        while True:
            page = self.store.find(raw, limit=1000, cursor=cursor)
            found += [record.id for record in page.items if self._shows(record, text)]
            if len(found) > SEARCH_LIMIT:
                raise InvalidInput(
                    f"search: with masked fields a search may select at most "
                    f"{SEARCH_LIMIT:,} records here; narrow it with other filters"
                )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if not found:  # an empty ids filter would mean "every record": match none instead
            return where.replace(search=None, max_id="")
        return where.replace(search=None, ids=tuple(found))

    def get(self, record_id: str) -> DeadLetter:
        """The record with that id; raises ``NotFound``."""
        check_text(record_id, "the id")
        record = self.store.get(record_id)
        if record is None:
            raise NotFound(f"no dead letter with id {record_id!r}")
        return record

    def count(self, where: Filter | None = None, /, **criteria: Any) -> int:
        """How many records match."""
        return self.store.count(self.searchable(make_filter(where, **criteria)))

    def stats(self) -> Stats:
        """Counts by topic and status, oldest dead letter per topic, new dead letters."""
        return self.store.stats(self.clock.now())

    def groups(
        self, where: Filter | None = None, /, *, limit: int = 50, **criteria: Any
    ) -> builtins.list[Group]:
        """Error groups (one per fingerprint), biggest first; dead letters by default.

        Each group's sample is a record that exists and matches: stores keep group counts
        by triggers, and a kept sample may have been deleted or changed since.
        """
        criteria.setdefault("status", Status.DEAD)
        where = self.searchable(make_filter(where, **criteria))
        return self.shown_groups(self.store.groups(where, limit=limit), where)

    def shown_groups(self, groups: Sequence[Group], where: Filter) -> builtins.list[Group]:
        """``groups`` with live samples (re-sampled where the kept one is gone or no
        longer matches) and sample messages scrubbed of their sample's masked values."""
        samples = tuple(group.sample_id for group in groups)
        live: dict[str, DeadLetter] = {}
        if samples:
            found = self.store.find(where.replace(ids=samples), limit=len(samples)).items
            live = {record.id: record for record in found}
        shown = []
        for group in groups:
            sample = live.get(group.sample_id) or self._newest(group, where)
            if sample is None:  # no record left to scrub with: show nothing of it
                message = MASK if self.redactor else group.sample_message
                shown.append(dataclasses.replace(group, sample_message=message))
            else:
                message = self.redactor.message_of(sample)
                shown.append(
                    dataclasses.replace(group, sample_id=sample.id, sample_message=message)
                )
        return shown

    def _newest(self, group: Group, where: Filter) -> DeadLetter | None:
        newest = self.store.find(where.replace(fingerprint=group.fingerprint), limit=1).items
        return newest[0] if newest else None

    def timeline(
        self, since: timedelta, *, topic: str | None = None
    ) -> builtins.list[tuple[datetime, str, int]]:
        """Records that became dead per minute over the last ``since``."""
        return self.store.dead_timeline(self.clock.now() - since, topic=topic)

    def workers(self) -> builtins.list[dict[str, Any]]:
        """The schedulers that write a heartbeat (apps, ``redrive worker``, the outbox
        dispatcher), newest first, each with ``live``."""
        from redrive.core.presence import workers

        return workers(self.store, self.clock.now())

    def live_handlers(self) -> set[str]:
        """The ``topic/handler`` names some live scheduler runs now."""
        from redrive.core.presence import live_handlers

        return live_handlers(self.workers())

    def stalled(self, older_than: timedelta = STALLED_AFTER) -> builtins.list[Stalled]:
        """Handlers whose scheduled records are overdue by ``older_than`` while no live
        worker runs them."""
        from redrive.core.presence import stalled

        return stalled(self.store, self.clock.now(), older_than=older_than)

    def iter_ids(self, where: Filter, *, batch: int = BATCH) -> Iterator[builtins.list[str]]:
        """Matching ids in ascending batches: bounded memory over any number of records."""
        return selection.iter_ids(self.store, self.searchable(where), batch=batch)

    def iter_records(self, where: Filter, *, batch: int = BATCH) -> Iterator[DeadLetter]:
        """Matching records, oldest first, loaded a batch at a time."""
        return selection.iter_records(self.store, self.searchable(where), batch=batch)

    def snapshot(self, where: Filter) -> Filter:
        """``where`` bounded to the records as they are now (see ``selection.snapshot``);
        a search over masked fields is resolved first (see :meth:`searchable`)."""
        return selection.snapshot(self.store, self.clock, self.searchable(where))

    # -- changes -----------------------------------------------------------------------
    def retry(
        self,
        ids: Iterable[str] | None = None,
        /,
        *,
        where: Filter | None = None,
        delay: timedelta = timedelta(0),
        force: bool = False,
        actor: str | None = None,
        note: str | None = None,
    ) -> Result:
        """Schedule dead letters for replay ``delay`` from now (idempotent: records that are
        not dead are skipped and counted).

        :param where: replay by filter instead of ids. Bulk replays skip records already
            replayed ``max_replays`` times unless ``force``.

        To change payloads first, use :meth:`replay` with a ``patch``: it keeps each
        original payload in the history and the audit trail.
        """
        now = self.clock.now()
        if where is not None and not force:
            where = where.replace(max_replays=self.max_replays)
        entry = Attempt(kind="replay", at=now, detail=_detail(actor or self.actor, note))
        change = Change(
            to=Status.SCHEDULED,
            from_statuses=REPLAYABLE,
            now=now,
            next_attempt_at=now + delay,
            entry=entry,
            replay=True,
        )
        return self._apply("retry", ids, where, change, actor, note)

    def resolve(
        self,
        ids: Iterable[str] | None = None,
        /,
        *,
        where: Filter | None = None,
        actor: str | None = None,
        note: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Mark records as handled by hand (dead or scheduled ones).

        ``progress`` (on every bulk change) is called with the records done per batch."""
        return self._set_final("resolve", Status.RESOLVED, ids, where, actor, note, progress)

    def discard(
        self,
        ids: Iterable[str] | None = None,
        /,
        *,
        where: Filter | None = None,
        actor: str | None = None,
        note: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Mark records as not to be processed (dead or scheduled ones)."""
        return self._set_final("discard", Status.DISCARDED, ids, where, actor, note, progress)

    def delete(
        self,
        ids: Iterable[str] | None = None,
        /,
        *,
        where: Filter | None = None,
        actor: str | None = None,
        note: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Delete records for good, whatever their status."""
        tally = _Tally()

        def deleted_ids(result: Result) -> dict[str, JSON]:
            # The one change that cannot be undone names what it deleted, even by filter.
            return {"ids": list(result.ids[:AUDIT_IDS]), "deleted": result.changed}

        with self._audited("delete", tally, where, None, actor, note, extra=deleted_ids):
            for batch, missing in self._batches(ids, where, progress):
                deleted = self.store.delete(batch)
                tally.result += Result(
                    len(batch), deleted, len(batch) - deleted, missing, tuple(batch)
                )
        return tally.result

    def purge(
        self,
        older_than: timedelta,
        *,
        statuses: Sequence[Status] = (Status.RESOLVED, Status.DISCARDED),
        topic: str | None = None,
        actor: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Delete records in ``statuses`` last updated more than ``older_than`` ago."""
        where = Filter(
            statuses=tuple(statuses), topic=topic, updated_before=self.clock.now() - older_than
        )
        tally = _Tally()
        with self._audited("purge", tally, where, None, actor, None):
            for batch, _ in self._batches(None, where, progress):
                deleted = self.store.delete(batch)
                tally.result += Result(len(batch), deleted, len(batch) - deleted)
        return tally.result

    def audit(self, *, limit: int = 50, cursor: str | None = None) -> builtins.list[AuditEntry]:
        """The audit trail, newest first."""
        return self.store.list_audit(limit=limit, cursor=cursor)

    def audit_page(
        self, query: AuditQuery, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[AuditEntry], str | None]:
        """Audit entries matching ``query`` (action, actor, time), newest first, and the
        cursor of the next page (None at the end)."""
        from redrive.service.audit import audit_page

        return audit_page(self, query, limit=limit, cursor=cursor)

    def apply_retention(
        self, retention: Mapping[str, timedelta], *, actor: str | None = None
    ) -> dict[str, Result]:
        """Purge, per topic, records in a final status (dead, resolved, discarded) last
        updated longer ago than the topic's retention (the config's ``topics.T.retention``)."""
        final = (Status.DEAD, Status.RESOLVED, Status.DISCARDED)
        results = {
            topic: self.purge(age, statuses=final, topic=topic, actor=actor)
            for topic, age in retention.items()
        }
        self.store.prune_timeline(self.clock.now() - TIMELINE_KEPT)
        return results

    # -- safe replay -------------------------------------------------------------------
    def replay_filter(self, where: Filter, *, force: bool = False) -> Filter:
        """The dead letters a replay of ``where`` selects, bounded to those that exist now;
        unless ``force`` or ids are given, the loop guard (``max_replays``) applies."""
        bounded = self.snapshot(where.replace(statuses=REPLAYABLE))
        if force or where.ids:
            return bounded
        return bounded.replace(max_replays=self.max_replays)

    def plan(
        self, where: Filter | None = None, /, *, force: bool = False, samples: int = 3
    ) -> ReplayPlan:
        """What a replay of ``where`` would do, changing nothing (a dry run): the count,
        by topic and by error group, and a few samples. Pass ``plan.where`` to ``replay``
        and it changes at most ``plan.count`` records."""
        bounded = self.replay_filter(where or Filter(), force=force)
        plan = plan_replay(self.store, bounded, samples=samples)
        return dataclasses.replace(  # what operators see of it: scrubbed, masked
            plan,
            groups=tuple(self.shown_groups(plan.groups, bounded)),
            samples=tuple(self.redactor.mask(record) for record in plan.samples),
        )

    def replay(
        self,
        ids: Iterable[str] | None = None,
        /,
        *,
        where: Filter | None = None,
        options: ReplayOptions | None = None,
        patch: JSON = None,
        force: bool = False,
        delay: timedelta = timedelta(0),
        actor: str | None = None,
        note: str | None = None,
        progress: Progress | None = None,
        watch: ReplayWatch | None = None,
    ) -> ReplayReport:
        """Schedule dead letters for replay, safely, and record one audit entry.

        :param options: pacing (``rate``), a ``canary`` and an ``abort_on_failure_rate``;
            see ``ReplayOptions``. Watching outcomes needs a scheduler running the handlers.
        :param patch: an RFC 7386 JSON merge patch applied to each payload first; each
            record's history keeps the patch and its original payload.
        :param progress: called with the number of records handled after each wave.
        :param watch: told of each wave, and asked whether to stop (a replay run kept in
            the store: ``redrive.service.runs``).
        """
        actor = actor or self.actor
        wanted = None if ids is None else builtins.list(dict.fromkeys(ids))
        for record_id in wanted or ():
            check_text(record_id, "an id")
        if wanted is None:
            where = self.replay_filter(where or Filter(), force=force)
        if patch is not None:
            patch = keep_masked(patch)  # a masked value sent back means "keep it"
        run = ReplayRun(
            self.store, self.clock, wanted, where, patch=patch, delay=delay, actor=actor, note=note
        )
        try:
            report = run.execute(options or ReplayOptions(), progress, watch)
        except BaseException as exc:
            if run.tally.matched or run.tally.missing:
                self._audit_failure("retry", run.tally, where, wanted, actor, note, exc)
            raise
        self._audit("retry", run.tally, where, wanted, actor, note, run.audit_detail(report))
        return report

    # -- files -------------------------------------------------------------------------
    def export(
        self,
        out: IO[str],
        *,
        where: Filter | None = None,
        fmt: str = "jsonl",
        redactor: Redactor | None = None,
        actor: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Write matching records, oldest first, to ``out`` as ``json``, ``jsonl`` or
        ``csv``, with ``redactor`` masking sensitive fields; return how many."""
        selected = self.searchable(where or Filter())
        count = formats.export(self.store, self.clock, out, selected, fmt, redactor, progress)
        self._audit("export", Result(count, count, 0), where, None, actor, None, {"format": fmt})
        return count

    def export_stream(
        self,
        *,
        where: Filter | None = None,
        fmt: str = "jsonl",
        redactor: Redactor | None = None,
        actor: str | None = None,
    ) -> Iterator[str]:
        """The export document in chunks, for an HTTP response: the same formats as
        ``export``. Everything that can be refused (the filter, the format, a search over
        masked fields) is checked when this is called, before the first byte; the audit
        entry (who exported what, how many records) is written then too, so a client
        that goes away cannot leave an export unaudited."""
        bounded = self.snapshot(where or Filter())
        stream = formats.ExportStream(self.store, self.clock, bounded, fmt, redactor)
        matched = self.store.count(bounded)
        extra: dict[str, JSON] = {"format": fmt, "streamed": True}
        self._audit("export", Result(matched, matched, 0), where, None, actor, None, extra)
        return iter(stream)

    def import_(
        self,
        path: str | Path,
        *,
        actor: str | None = None,
        note: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Restore the records of an archive or a json/jsonl export, ids kept; records
        already present are skipped (``Result.skipped``). The whole file is checked
        first, so a corrupt line (``FormatError``) imports nothing."""
        checked, added = formats.import_file(self.store, Path(path), progress)
        result = Result(checked, added, checked - added)
        self._audit("import", result, None, None, actor, note, {"file": Path(path).name})
        return result

    def archive(
        self,
        path: str | Path,
        *,
        where: Filter | None = None,
        batch: int = BATCH,
        actor: str | None = None,
        note: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Move matching records to a jsonl (or ``.jsonl.gz``) file: each batch is written
        and fsynced before it is deleted from the store, so a crash loses nothing, and
        running the same command again finishes the job."""
        bounded = self.snapshot(where or Filter())
        moved, deleted = archives.archive(self.store, Path(path), bounded, batch, progress)
        result = Result(moved, deleted, moved - deleted)
        self._audit("archive", result, where, None, actor, note, {"file": Path(path).name})
        return result

    # -- internals ---------------------------------------------------------------------
    def _set_final(
        self,
        action: str,
        status: Status,
        ids: Iterable[str] | None,
        where: Filter | None,
        actor: str | None,
        note: str | None,
        progress: Progress | None,
    ) -> Result:
        now = self.clock.now()
        entry = Attempt(kind=action, at=now, detail=_detail(actor or self.actor, note))
        change = Change(to=status, from_statuses=RESOLVABLE, now=now, entry=entry)
        return self._apply(action, ids, where, change, actor, note, progress=progress)

    def _apply(
        self,
        action: str,
        ids: Iterable[str] | None,
        where: Filter | None,
        change: Change,
        actor: str | None,
        note: str | None,
        *,
        progress: Progress | None = None,
    ) -> Result:
        tally = _Tally()
        with self._audited(action, tally, where, ids, actor, note):
            for batch, missing in self._batches(ids, where, progress):
                changed = self.store.transition(batch, change)
                tally.result += Result(
                    len(batch), len(changed), len(batch) - len(changed), missing, tuple(changed)
                )
        return tally.result

    @contextlib.contextmanager
    def _audited(
        self,
        action: str,
        tally: _Tally,
        where: Filter | None,
        ids: Iterable[str] | None,
        actor: str | None,
        note: str | None,
        *,
        extra: Callable[[Result], Mapping[str, JSON]] | None = None,
    ) -> Iterator[None]:
        """Audit a bulk change when it ends, also when a later batch fails (or the operator
        interrupts it): the entry then counts what did change and says why it stopped.
        Nothing is changed, or audited, when the request is refused up front. ``extra``
        adds to the entry of a change that ended."""
        try:
            yield
        except BaseException as exc:
            if tally.result.matched or tally.result.missing:
                self._audit_failure(action, tally.result, where, ids, actor, note, exc)
            raise
        more = extra(tally.result) if extra is not None else None
        self._audit(action, tally.result, where, ids, actor, note, more)

    def _audit_failure(
        self,
        action: str,
        result: Result,
        where: Filter | None,
        ids: Iterable[str] | None,
        actor: str | None,
        note: str | None,
        error: BaseException,
    ) -> None:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else type(error).__name__
        try:
            self._audit(action, result, where, ids, actor, note, {"stopped": reason})
        except Exception:  # the store itself failed: the original error says why
            logger.warning("could not audit the partial %s of %d records", action, result.changed)

    def _batches(
        self, ids: Iterable[str] | None, where: Filter | None, progress: Progress | None = None
    ) -> Iterator[tuple[builtins.list[str], int]]:
        """(existing ids, how many asked-for ids were missing) in batches."""
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            for record_id in wanted:
                check_text(record_id, "an id")
            for chunk in chunks(wanted, BATCH):
                found = self.store.ids(Filter(ids=tuple(chunk)), limit=len(chunk))
                yield found, len(chunk) - len(found)
                if progress is not None:
                    progress(len(chunk))
            return
        snapshot = self.snapshot(where or Filter())
        for batch in self.iter_ids(snapshot):
            yield batch, 0
            if progress is not None:
                progress(len(batch))

    def record(
        self,
        action: str,
        *,
        detail: Mapping[str, JSON] | None = None,
        count: int = 1,
        actor: str | None = None,
    ) -> None:
        """Add an audit entry for an action that changes no record (tokens, settings)."""
        actor = actor or self.actor
        entry = AuditEntry(
            id=new_id(),
            at=self.clock.now(),
            actor=actor,
            action=action,
            count=count,
            detail=dict(detail or {}),
        )
        self.store.add_audit(entry)
        if self.hooks:
            self.hooks.on_change(action, count, actor)

    def _audit(
        self,
        action: str,
        result: Result,
        where: Filter | None,
        ids: Iterable[str] | None,
        actor: str | None,
        note: str | None,
        extra: Mapping[str, JSON] | None = None,
    ) -> None:
        actor = actor or self.actor
        detail: dict[str, JSON] = {"matched": result.matched, "skipped": result.skipped}
        if result.missing:
            detail["missing"] = result.missing
        detail.update(extra or {})
        if where is not None:
            detail["filter"] = filter_to_dict(where)
        if ids is not None and result.matched <= AUDIT_IDS:
            detail["ids"] = list(result.ids) if result.ids else None
        if note:
            detail["note"] = note
        self.record(action, detail=detail, count=result.changed, actor=actor)


@dataclasses.dataclass
class _Tally:
    """What a bulk change has done so far (read by its audit, also after a failure)."""

    result: Result = dataclasses.field(default_factory=lambda: Result(0, 0, 0))


def _check_criteria(where: Filter) -> None:
    for field in dataclasses.fields(where):
        value = getattr(where, field.name)
        texts = value if isinstance(value, tuple) else (value,)
        for text in texts:
            if isinstance(text, str):
                check_text(text, f"filter {field.name}")


def _detail(actor: str, note: str | None) -> dict[str, JSON]:
    return {"actor": actor, "note": note} if note else {"actor": actor}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: say so rather than fail
        return "unknown"
