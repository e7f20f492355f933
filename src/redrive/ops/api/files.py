"""Routes that move records in and out: export (streamed), archive and import.

Archives live in one directory on the server (``[api] archive_dir``); requests name a
file in it, never a path, so a token cannot write or read anywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from redrive.ops.api.context import Caller, admin, viewer
from redrive.ops.api.filters import filter_query
from redrive.ops.api.problems import Problem, responses
from redrive.ops.api.schemas import BulkOut, FilterIn, _In
from redrive.service import FormatError

router = APIRouter(tags=["files"])

FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.jsonl(\.gz)?$"


class ArchiveIn(_In):
    """Move the records matching ``filter`` into ``file`` (in the archive directory)."""

    file: str = Field(pattern=FILE_NAME, description="A file name: name.jsonl or .jsonl.gz")
    filter: FilterIn
    note: str | None = Field(default=None, max_length=1000)


class ImportIn(_In):
    """Restore the records of ``file`` (in the archive directory); ids already there stay."""

    file: str = Field(pattern=FILE_NAME, description="A file name: name.jsonl or .jsonl.gz")
    note: str | None = Field(default=None, max_length=1000)


@router.get(
    "/export",
    responses={
        **responses(403),
        200: {
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            }
        },
    },
    response_class=StreamingResponse,
)
def export(
    caller: Caller = viewer,
    filters: FilterIn = Depends(filter_query),  # noqa: B008
    format: Literal["jsonl", "csv"] = Query("jsonl"),
) -> StreamingResponse:
    """Matching records, oldest first, streamed (masked; bounded memory whatever the size);
    the same formats as ``redrive export``, audited when the stream ends."""
    where = caller.ctx.where(filters)
    chunks = caller.service.export_stream(
        where=where, fmt=format, redactor=caller.ctx.redactor, actor=caller.actor
    )
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    name = f"dead-letters.{format}"
    return StreamingResponse(
        chunks, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post("/archive", response_model=BulkOut, responses=responses(403))
def archive(body: ArchiveIn, caller: Caller = admin) -> JSONResponse:
    """Move matching records to a jsonl file on the server, then delete them (crash-safe)."""
    if body.filter.is_empty():
        raise Problem(422, "filter: give a criterion (an empty filter archives everything)")
    where = caller.ctx.where(body.filter)
    path = _path(caller, body.file, create=True)
    try:
        result = caller.service.archive(path, where=where, actor=caller.actor, note=body.note)
    except FormatError as exc:  # an existing archive that cannot be resumed
        raise _unreadable(exc, path, body.file) from None
    return JSONResponse(
        {
            "matched": result.matched,
            "changed": result.changed,
            "skipped": result.skipped,
            "missing": 0,
            "dry_run": False,
        }
    )


@router.post("/import", response_model=BulkOut, responses=responses(403, 404))
def import_(body: ImportIn, caller: Caller = admin) -> JSONResponse:
    """Restore an archive (or a jsonl export of unmasked records); existing ids are skipped."""
    path = _path(caller, body.file, create=False)
    if not path.is_file():
        raise Problem(404, f"no file {body.file!r} in the archive directory")
    try:
        result = caller.service.import_(path, actor=caller.actor, note=body.note)
    except FormatError as exc:
        raise _unreadable(exc, path, body.file) from None
    return JSONResponse(
        {
            "matched": result.matched,
            "changed": result.changed,
            "skipped": result.skipped,
            "missing": 0,
            "dry_run": False,
        }
    )


def _unreadable(exc: FormatError, path: Path, name: str) -> Problem:
    """A 422 for a file that cannot be imported or resumed. It names only the file the
    request gave: the service's message has the server's path, which clients never see."""
    detail = str(exc).replace(str(path), name).replace(str(path.parent), "<archive_dir>")
    return Problem(422, detail)


def _path(caller: Caller, name: str, *, create: bool) -> Path:
    if not re.match(FILE_NAME, name) or ".." in name:
        raise Problem(422, f"file: expected a plain file name such as x.jsonl, got {name!r}")
    folder = Path(caller.ctx.options.archive_dir)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder / name
