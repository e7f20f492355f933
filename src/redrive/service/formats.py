"""File formats for exports, imports and archives: writing them, and reading them back.

- ``jsonl``: one record (``DeadLetter.to_dict()``) per line; archives use it, ``.gz`` too.
- ``json``: an array with one record per line, so it streams both ways.
- ``csv``: the fields operators sort by, with the payload as a JSON column (not importable).

Exports and imports take the store and a clock, never the service: ``DeadLetterQueue``
calls them and writes the audit entry. Archives (written and then deleted) are in
``service.archive``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from redrive._clock import Clock
from redrive.exceptions import FormatError
from redrive.models import JSON, DeadLetter, Status
from redrive.service.selection import iter_records, snapshot
from redrive.stores.base import Filter, Store

if TYPE_CHECKING:
    from redrive.redact import Redactor

FORMATS = ("json", "jsonl", "csv")

CSV_COLUMNS = (
    "id",
    "topic",
    "handler",
    "status",
    "error_type",
    "error_message",
    "attempts",
    "max_attempts",
    "replays",
    "fingerprint",
    "tenant_id",
    "correlation_id",
    "version",
    "created_at",
    "updated_at",
    "dead_at",
    "resolved_at",
    "next_attempt_at",
    "event_id",
    "key",
    "payload",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def dumps(data: JSON) -> str:
    """One compact JSON line (non-ASCII kept as is)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


# -- writing exports --------------------------------------------------------------------
class ExportWriter:
    """Writes records to a text stream in one of ``FORMATS``; ``close`` ends the document."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        if fmt not in FORMATS:
            raise FormatError(f"unknown format {fmt!r}: use json, jsonl or csv")
        self.out, self.fmt, self.count = out, fmt, 0
        self._csv: Any = None
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(CSV_COLUMNS)
        elif fmt == "json":
            out.write("[")

    def write(self, record: dict[str, JSON]) -> None:
        """Write one record's JSON shape."""
        if self.fmt == "jsonl":
            self.out.write(dumps(record) + "\n")
        elif self.fmt == "json":
            self.out.write(("\n" if self.count == 0 else ",\n") + dumps(record))
        else:
            self._csv.writerow(csv_row(record))
        self.count += 1

    def close(self) -> None:
        """Finish the document (the closing bracket of a JSON array)."""
        if self.fmt == "json":
            self.out.write("\n]\n" if self.count else "]\n")
        self.out.flush()


def csv_row(record: dict[str, JSON]) -> list[Any]:
    """The CSV cells of a record; text that a spreadsheet would run as a formula is quoted."""
    version = (record.get("consumer") or {}).get("version")
    cells = {**record, "version": version, "payload": dumps(record.get("payload"))}
    return [_safe_cell(cells.get(column)) for column in CSV_COLUMNS]


def _safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


# -- reading exports and archives -------------------------------------------------------
def open_text(path: Path, mode: str = "r") -> IO[str]:
    """Open a text file, through gzip when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8", newline="")


def read_records(path: Path) -> Iterator[DeadLetter]:
    """The records of a ``jsonl`` or ``json`` export or archive, streamed.

    Raises ``FormatError`` naming the line for anything that is not a valid record.
    """
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    if path.name.endswith((".csv", ".csv.gz")):
        raise FormatError(f"{path}: CSV exports cannot be imported; export as jsonl instead")
    try:
        with open_text(path) as stream:
            yield from _records(path, stream)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: cannot read: {exc}") from exc


def _records(path: Path, stream: IO[str]) -> Iterator[DeadLetter]:
    first = _first_char(stream)
    if first == "[":
        yield from _json_array(path, stream)
        return
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield parse_record(line, f"{path}:{number}")


def _first_char(stream: IO[str]) -> str:
    """The first non-blank character, leaving the stream at the start of the file."""
    head = stream.read(4096).lstrip()
    stream.seek(0)
    return head[:1]


def _json_array(path: Path, stream: IO[str]) -> Iterator[DeadLetter]:
    """Records of a JSON array: line by line when written by ``ExportWriter`` (bounded
    memory), else the whole document at once (a hand-edited or pretty-printed file)."""
    if _one_record_per_line(stream):
        for number, raw in enumerate(stream, start=1):
            line = raw.strip().rstrip(",")
            if line not in ("[", "]", "[]", ""):
                yield parse_record(line, f"{path}:{number}")
        return
    try:
        data = _loads(stream.read())
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except _NotFinite as exc:
        raise FormatError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON array of records")
    for index, item in enumerate(data):
        yield _record(item, f"{path}: item {index + 1}")


def _one_record_per_line(stream: IO[str]) -> bool:
    """True when the array's first item sits on one line of its own (our layout)."""
    lines = [stream.readline() for _ in range(2)]
    stream.seek(0)
    first, second = (line.strip() for line in lines)
    if first == "[]":
        return True
    return first == "[" and second.startswith("{") and second.rstrip(",").endswith("}")


def parse_record(line: str, where: str) -> DeadLetter:
    """One record from a JSON line; ``where`` names it in errors."""
    try:
        data = _loads(line)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where}: not valid JSON: {exc.msg}") from None
    except _NotFinite as exc:
        raise FormatError(f"{where}: not valid JSON: {exc}") from None
    return _record(data, where)


class _NotFinite(ValueError):
    """``NaN``, ``Infinity`` or a number too large for a float: not JSON, not storable."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(f"number {text[:40]} is out of range")
    return number


def _constant(text: str) -> Any:
    raise _NotFinite(f"{text} is not a JSON value")


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_finite, parse_constant=_constant)


_RECORD_ID = re.compile(r"[^\x00-\x20\x7f-\x9f/]{1,64}")
"""A plausible record id: 1 to 64 characters, no blanks, control characters or slashes
(what the API's ``/dead-letters/{id}`` routes accept)."""
MAX_COUNT = 2**63 - 1
"""The largest count a store's integer column holds."""


def _record(data: Any, where: str) -> DeadLetter:
    if not isinstance(data, dict):
        raise FormatError(f"{where}: expected a JSON object (a dead letter)")
    problem = _malformed(data)
    if problem is not None:
        raise FormatError(f"{where}: invalid record: {problem}")
    try:
        record = DeadLetter.from_dict(data)
    except KeyError as exc:
        raise FormatError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        # OverflowError: a time out of range once in UTC (0001-01-01T00:00+01:00).
        raise FormatError(f"{where}: invalid record: {exc}") from None
    problem = _unstorable(record)
    if problem is not None:
        raise FormatError(f"{where}: invalid record: {problem}")
    return record


_TIMES = ("created_at", "updated_at", "occurred_at", "next_attempt_at", "dead_at", "resolved_at")


def _malformed(data: dict[str, Any]) -> str | None:
    """Why ``data`` cannot be parsed (the JSON types ``DeadLetter.from_dict`` relies on),
    or None."""
    if "id" in data and not (isinstance(data["id"], str) and _RECORD_ID.fullmatch(data["id"])):
        return f"id: expected 1 to 64 characters without blanks or slashes, got {data['id']!r:.80}"
    for name in _TIMES:
        if not isinstance(data.get(name), str | None):
            return f"{name}: expected an ISO-8601 time (a string)"
    for name in ("headers", "origin", "consumer"):
        if data.get(name) and not isinstance(data[name], dict):
            return f"{name}: expected an object"
    history = data.get("history")
    if not isinstance(history, list | None):
        return "history: expected a list of entries"
    for number, entry in enumerate(history or (), start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("at", ""), str):
            return f"history entry {number}: expected an object with an ISO-8601 time 'at'"
        if entry.get("detail") and not isinstance(entry["detail"], dict):
            return f"history entry {number}: detail: expected an object"
    return None


def _unstorable(record: DeadLetter) -> str | None:
    """Why a parsed record still cannot be stored and served, or None: the fields
    ``DeadLetter.from_dict`` passes through unconverted must have their JSON types."""
    event = record.event
    for name in ("key", "correlation_id", "source", "tenant_id"):
        if not isinstance(getattr(event, name), str | None):
            return f"{name}: expected a string or null"
    if not all(isinstance(value, str) for value in event.headers.values()):
        return "headers: expected an object of strings"
    for name in ("attempts", "max_attempts", "replays"):
        if not 0 <= getattr(record, name) <= MAX_COUNT:
            return f"{name}: expected a count from 0 to {MAX_COUNT}"
    for number, entry in enumerate(record.history, start=1):
        texts = (entry.error_type, entry.error_message)
        if not all(isinstance(text, str | None) for text in texts):
            return f"history entry {number}: error_type and error_message must be strings"
        duration = entry.duration
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float)
        ):
            return f"history entry {number}: duration must be a number"
    return None


def redacted(data: dict[str, JSON], redactor: Redactor | None) -> dict[str, JSON]:
    """A record's JSON shape as operators may see it (see ``Redactor.mask``)."""
    return redactor.record(data) if redactor else data


# -- the service's file operations ------------------------------------------------------
class ExportStream:
    """The text of an export of ``where`` (bounded to the records that exist now), oldest
    first, in chunks of ``CHUNK`` records or about ``CHUNK_CHARS`` characters, whichever
    comes first: bounded memory whatever the number or size of records. ``count`` is how
    many records were produced so far, ``done`` whether the document is complete."""

    CHUNK = 1000
    CHUNK_CHARS = 1 << 20

    def __init__(
        self,
        store: Store,
        clock: Clock,
        where: Filter,
        fmt: str,
        redactor: Redactor | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._store, self._clock, self._where = store, clock, where
        self._redactor, self._progress = redactor, progress
        self.fmt = fmt
        self.count = 0
        self.done = False
        ExportWriter(io.StringIO(), fmt)  # refuse an unknown format now, not mid-stream

    def __iter__(self) -> Iterator[str]:
        buffer = io.StringIO()
        writer = ExportWriter(buffer, self.fmt)
        bounded = snapshot(self._store, self._clock, self._where)
        for record in iter_records(self._store, bounded):
            shown = self._redactor.mask(record) if self._redactor else record
            writer.write(shown.to_dict())
            if writer.count % self.CHUNK == 0 or buffer.tell() >= self.CHUNK_CHARS:
                yield self._chunk(buffer, writer.count)
        writer.close()
        self.done = True
        yield self._chunk(buffer, writer.count)

    def _chunk(self, buffer: io.StringIO, count: int) -> str:
        if self._progress is not None and count > self.count:
            self._progress(count - self.count)
        self.count = count
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text


def export(
    store: Store,
    clock: Clock,
    out: IO[str],
    where: Filter,
    fmt: str,
    redactor: Redactor | None,
    progress: Callable[[int], None] | None,
) -> int:
    """Write the records of ``where`` to ``out``; return how many."""
    stream = ExportStream(store, clock, where, fmt, redactor, progress)
    for chunk in stream:
        out.write(chunk)
    out.flush()
    return stream.count


def import_file(
    store: Store, path: Path, progress: Callable[[int], None] | None
) -> tuple[int, int]:
    """(records in the file, records added): a first pass checks every line."""
    checked = sum(1 for _ in read_records(path))

    def records() -> Iterator[DeadLetter]:
        for number, record in enumerate(read_records(path), start=1):
            if progress is not None and number % 1000 == 0:
                progress(1000)
            yield _importable(record)

    return checked, store.import_records(records())


def _importable(record: DeadLetter) -> DeadLetter:
    """A record as it is restored: one that was mid-retry (its lease is not exported)
    comes back scheduled, so a scheduler picks it up instead of it waiting forever."""
    if record.status != Status.RETRYING:
        return record
    due = record.next_attempt_at or record.updated_at
    return record.replace(status=Status.SCHEDULED, next_attempt_at=due)
