"""Archives: dead letters moved to a jsonl (or ``.jsonl.gz``) file, crash-safe.

An archive is written a batch at a time: the batch is appended and fsynced, and only then
are its records deleted from the store. A kill at any point leaves every record in the
file, in the store, or both; ``ArchiveFile.recover`` cuts a torn tail and reports the ids
of the last complete lines, which the next run deletes from the store before going on. A
corrupt ``.gz`` member is never cut (the members after it hold records the store no
longer has): the run stops with a ``FormatError`` and changes nothing.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import io
import json
import mmap
import os
import zlib
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import IO

from redrive._batch import chunks
from redrive.exceptions import FormatError
from redrive.models import DeadLetter, format_time
from redrive.service.formats import dumps, parse_record
from redrive.service.selection import iter_ids
from redrive.stores.base import Filter, Store

Archived = tuple[str, str | None]
"""(id, updated_at) of a record in an archive: the version of it that the file holds."""

TAIL_IDS = 10_000
"""Ids of the last lines of an archive that a resumed run checks (more than any batch)."""


class ArchiveFile:
    """An archive being written: ``append`` returns only when the batch is on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gz = path.suffix == ".gz"

    def recover(self) -> list[Archived]:
        """Cut a torn tail left by a killed run; return the ids of the last complete lines
        (at most ``TAIL_IDS``): the only records a kill can leave in both places."""
        if not self.path.exists():
            return []
        try:
            valid, tail = (_gz_prefix if self.gz else _plain_prefix)(self.path)
        except OSError as exc:
            raise FormatError(f"{self.path}: cannot resume this archive: {exc}") from exc
        if valid < self.path.stat().st_size:
            with self.path.open("r+b") as raw:
                raw.truncate(valid)
                _fsync(raw)
        return tail

    def append(self, records: Iterable[DeadLetter]) -> int:
        """Append records, flush and fsync; return how many were written.

        Each line is first read back through the importer's validation (``parse_record``):
        a record that ``import`` would refuse (another writer stored a number as a header
        value, say) raises ``FormatError`` and nothing of the batch is written, so nothing
        of it is deleted from the store."""
        lines = []
        for record in records:
            line = dumps(record.to_dict())
            try:
                parse_record(line, f"record {record.id}")
            except FormatError as exc:
                raise FormatError(
                    f"{self.path}: {exc}; import could not restore it, so it was not archived "
                    "(it and the records after it stay in the store)"
                ) from None
            lines.append(line + "\n")
        text = "".join(lines)
        if not text:
            return 0
        created = not self.path.exists()
        data = text.encode("utf-8")
        if self.gz:  # one gzip member per batch: every fsynced prefix is a valid file
            data = gzip.compress(data, compresslevel=6)
        with self.path.open("ab") as raw:
            raw.write(data)
            _fsync(raw)
        if created:
            _fsync_dir(self.path.parent)
        return text.count("\n")


def _fsync(raw: IO[bytes]) -> None:
    raw.flush()
    os.fsync(raw.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; skipped where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _plain_prefix(path: Path) -> tuple[int, list[Archived]]:
    """(bytes up to the last newline, ids of the last complete lines)."""
    tail: collections.deque[bytes] = collections.deque(maxlen=TAIL_IDS)
    valid = 0
    with path.open("rb") as raw:
        for line in raw:
            if not line.endswith(b"\n"):
                break
            valid += len(line)
            tail.append(line)
    return valid, _ids(tail)


def _gz_prefix(path: Path) -> tuple[int, list[Archived]]:
    """(bytes up to the end of the last complete gzip member, ids of its last lines).

    Only a torn tail is cut: a last member that ends early (a kill during the write). A
    member that does not decompress, or one that ends early with complete members after
    it, is corruption, not a tear: cutting there would delete the members after it, whose
    records are already gone from the store, so it is a ``FormatError`` and the file is
    left as it is."""
    tail: collections.deque[bytes] = collections.deque(maxlen=TAIL_IDS)
    valid = consumed = 0
    member = io.BytesIO()
    inflate = zlib.decompressobj(31)
    with path.open("rb") as raw:
        while chunk := raw.read(_PIECE):
            consumed += len(chunk)
            while chunk:
                try:
                    member.write(inflate.decompress(chunk))
                except zlib.error as exc:
                    raise _corrupt(path, valid, str(exc)) from None
                if not inflate.eof:
                    break
                chunk = inflate.unused_data
                valid = consumed - len(chunk)
                tail.extend(line for line in member.getvalue().splitlines(keepends=True))
                member, inflate = io.BytesIO(), zlib.decompressobj(31)
    if valid < consumed and _member_after(path, valid):
        raise _corrupt(path, valid, "a member ends early, and complete members follow it")
    return valid, _ids(tail)


_PIECE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b\x08"


def _corrupt(path: Path, offset: int, reason: str) -> FormatError:
    return FormatError(
        f"archive {path} is corrupt at byte {offset} ({reason}); it was left unchanged: "
        "move it aside, or archive to another file"
    )


def _member_after(path: Path, start: int) -> bool:
    """Whether a complete gzip member starts after the member at ``start`` begins."""
    with path.open("rb") as raw, mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as data:
        offset = data.find(_GZIP_MAGIC, start + 1)
        while offset != -1:
            if _whole_member(data, offset):
                return True
            offset = data.find(_GZIP_MAGIC, offset + 1)
    return False


def _whole_member(data: mmap.mmap, offset: int) -> bool:
    """Whether a gzip member starting at ``offset`` decompresses to its end (memory
    bounded: a piece of input and of output at a time)."""
    inflate = zlib.decompressobj(31)
    try:
        for start in range(offset, len(data), _PIECE):
            piece = data[start : start + _PIECE]
            while piece and not inflate.eof:
                inflate.decompress(piece, _PIECE)
                piece = inflate.unconsumed_tail
            if inflate.eof:
                return True
    except zlib.error:
        return False
    return False


def _ids(lines: Iterable[bytes]) -> list[Archived]:
    ids: list[Archived] = []
    for line in lines:
        with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
            data = json.loads(line)
            ids.append((str(data["id"]), data.get("updated_at")))
    return ids


def archive(
    store: Store,
    path: Path,
    where: Filter,
    batch: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """(records archived, records deleted): first finish what a killed run left, then
    move ``where`` a batch at a time, each batch fsynced before it is deleted."""
    file = ArchiveFile(path)
    moved, deleted = _finish(store, file.recover())
    for ids in iter_ids(store, where, batch=batch):
        records = store.find(Filter(ids=tuple(ids)), limit=len(ids)).items
        file.append(reversed(records))
        moved += len(records)
        # Only records still matching the selection: one replayed or retried meanwhile has
        # moved on, and stays in the store (the file's copy of it is only a copy).
        deleted += store.delete([record.id for record in records], where=where)
        if progress is not None:
            progress(len(ids))
    return moved, deleted


def _finish(store: Store, archived: list[Archived]) -> tuple[int, int]:
    """Delete the records a killed run had written (and fsynced) but not yet deleted: only
    those still as the file holds them (same ``updated_at``). A record that changed since
    (replayed, retried) stays in the store; the file's older copy is only a copy."""
    moved = deleted = 0
    for part in chunks(archived, 500):
        versions = dict(part)
        present = store.find(Filter(ids=tuple(versions)), limit=len(versions)).items
        same = [r for r in present if format_time(r.updated_at) == versions.get(r.id)]
        if same:
            newest = max(r.updated_at for r in same) + timedelta(microseconds=1)
            moved += len(same)
            deleted += store.delete([r.id for r in same], where=Filter(updated_before=newest))
    return moved, deleted
