"""The maintained counts, error groups and dead-letter timeline of the SQLite store.

``stats()``, ``groups()`` and the timeline read a few rows of ``redrive_counts``,
``redrive_groups`` and ``redrive_dead_timeline`` instead of scanning the records. Until
schema 6 per-row triggers kept them; SQLite has no statement-level triggers, so three
trigger statements ran for every record written, and they cost most of a write. Now every
statement that changes records says which rows it changed (their tally columns before and
after), a :class:`Tallies` adds up the deltas of the whole transaction in Python, and
``apply`` writes them with one statement per table, in the same transaction as the rows:
they stay exactly as consistent as the triggers kept them, and a crash loses both or
neither.

The rules are the triggers' rules:

- counts per (topic, status): a row counts where it is; a change of status or topic moves it.
- groups per (fingerprint, status): the same with fingerprint; a row that enters a group sets
  its ``last_seen``/sample and lowers its ``first_seen``; one that leaves only decrements.
- timeline per (minute of ``dead_at``, topic): a row that becomes dead (inserted dead, or
  changed to dead from another status) counts once, as ``n`` on its first death and as
  ``redead`` after a replay. An imported record did not die now and is not counted.

Every writer of ``redrive_dead_letters`` in :mod:`redrive.stores.sqlite` goes through this
module; a migration that changes records must keep the tables right itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from redrive._batch import chunks
from redrive.stores.sql import COLUMNS

TALLY = (
    "id",
    "topic",
    "status",
    "fingerprint",
    "handler",
    "error_type",
    "error_message",
    "created_at",
    "updated_at",
    "dead_at",
    "replays",
)
TALLY_LIST = ", ".join(TALLY)
"""The columns a change needs for its deltas, in this order (``RETURNING``/``SELECT``)."""

of_row = itemgetter(*(COLUMNS.index(column) for column in TALLY))
"""The tally of a full row (``COLUMNS`` order), such as ``record_to_row`` makes."""

Tally = Sequence[Any]

_ID, _TOPIC, _STATUS, _FP, _HANDLER, _ERROR_TYPE, _MESSAGE, _CREATED, _UPDATED, _DEAD, _REPLAYS = (
    range(len(TALLY))
)

_COUNTS = (
    "INSERT INTO redrive_counts (topic, status, n) VALUES (?, ?, ?) "
    "ON CONFLICT (topic, status) DO UPDATE SET n = n + excluded.n"
)
_GROUPS_ENTER = (
    "INSERT INTO redrive_groups (fingerprint, status, topic, handler, error_type, n, "
    "first_seen, last_seen, sample_id, sample_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (fingerprint, status) DO UPDATE SET n = n + excluded.n, "
    "first_seen = MIN(first_seen, excluded.first_seen), "
    "last_seen = MAX(last_seen, excluded.last_seen), "
    "sample_id = excluded.sample_id, sample_message = excluded.sample_message"
)
_GROUPS_LEAVE = "UPDATE redrive_groups SET n = n + ? WHERE fingerprint = ? AND status = ?"
_TIMELINE = (
    "INSERT INTO redrive_dead_timeline (topic, minute, n, redead) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (minute, topic) DO UPDATE SET n = n + excluded.n, "
    "redead = redead + excluded.redead"
)


class Tallies:
    """The deltas of one transaction's changes to the records."""

    __slots__ = ("_counts", "_entered", "_groups", "_timeline")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._groups: dict[tuple[str, str], int] = {}
        # (fingerprint, status) -> [topic, handler, error_type, first, last, sample, message]
        self._entered: dict[tuple[str, str], list[Any]] = {}
        self._timeline: dict[tuple[str, str], list[int]] = {}

    # -- what changed --------------------------------------------------------------------
    def came(self, new: Tally, *, died_now: bool = True) -> None:
        """A row was inserted (``died_now=False``: imported, not a new death)."""
        self._count(new, 1)
        self._enter(new)
        if died_now and new[_STATUS] == "dead":
            self._died(new)

    def gone(self, old: Tally) -> None:
        """A row was deleted."""
        self._count(old, -1)
        key = (old[_FP], old[_STATUS])
        self._groups[key] = self._groups.get(key, 0) - 1

    def changed(self, old: Tally, new: Tally) -> None:
        """A row was updated from ``old`` to ``new``."""
        status_changed = old[_STATUS] != new[_STATUS]
        if status_changed or old[_TOPIC] != new[_TOPIC]:
            self._count(old, -1)
            self._count(new, 1)
        if status_changed or old[_FP] != new[_FP]:
            key = (old[_FP], old[_STATUS])
            self._groups[key] = self._groups.get(key, 0) - 1
            self._enter(new)
        if status_changed and new[_STATUS] == "dead":
            self._died(new)

    def _count(self, row: Tally, n: int) -> None:
        key = (row[_TOPIC], row[_STATUS])
        self._counts[key] = self._counts.get(key, 0) + n

    def _enter(self, row: Tally) -> None:
        key = (row[_FP], row[_STATUS])
        self._groups[key] = self._groups.get(key, 0) + 1
        entered = self._entered.get(key)
        if entered is None:
            self._entered[key] = [
                row[_TOPIC],
                row[_HANDLER],
                row[_ERROR_TYPE],
                row[_CREATED],
                row[_UPDATED],
                row[_ID],
                row[_MESSAGE],
            ]
            return
        entered[3] = min(entered[3], row[_CREATED])
        entered[4] = max(entered[4], row[_UPDATED])
        entered[5], entered[6] = row[_ID], row[_MESSAGE]  # the last one in, as the trigger

    def _died(self, row: Tally) -> None:
        dead_at = row[_DEAD]
        if dead_at is None:
            return
        key = (dead_at[:16], row[_TOPIC])
        slot = self._timeline.get(key)
        if slot is None:
            slot = self._timeline[key] = [0, 0]
        slot[1 if row[_REPLAYS] else 0] += 1

    # -- writing them --------------------------------------------------------------------
    def apply(self, conn: sqlite3.Connection) -> None:
        """Write the deltas, in the transaction that changed the rows."""
        counts = [(topic, status, n) for (topic, status), n in self._counts.items() if n]
        if counts:
            conn.executemany(_COUNTS, counts)
        entering, leaving = [], []
        for key, n in self._groups.items():
            entered = self._entered.get(key)
            if entered is not None:
                topic, handler, error_type, first, last, sample, message = entered
                entering.append((*key, topic, handler, error_type, n, first, last, sample, message))
            elif n:
                leaving.append((n, *key))
        if entering:
            conn.executemany(_GROUPS_ENTER, entering)
        if leaving:
            conn.executemany(_GROUPS_LEAVE, leaving)
        if self._timeline:
            conn.executemany(
                _TIMELINE,
                [(topic, minute, n, r) for (minute, topic), (n, r) in self._timeline.items()],
            )


def tallies_of(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Tally]:
    """id -> tally of these records (those there), read inside the writing transaction."""
    found: dict[str, Tally] = {}
    for chunk in chunks(ids, 500):
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT {TALLY_LIST} FROM redrive_dead_letters WHERE id IN ({marks})"
        found.update((row[_ID], row) for row in conn.execute(sql, chunk))
    return found
