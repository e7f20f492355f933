"""Records in files: ``export``, ``import`` and ``archive``."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer

from redrive.ops.cli._common import (
    ActorOpt,
    BadInput,
    CorrelationOpt,
    ErrorTypeOpt,
    GroupOpt,
    HandlerOpt,
    JsonOpt,
    NoteOpt,
    SearchOpt,
    SinceOpt,
    StatusOpt,
    TenantOpt,
    TopicOpt,
    UntilOpt,
    VersionOpt,
    YesOpt,
    build_filter,
    confirm,
    echo_json,
    handle_errors,
    parse_age,
    plural,
    progress_bar,
    reader,
    redactor,
    service,
    wants_json,
)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="json, jsonl or csv.")]


def register(app: typer.Typer) -> None:
    """Add the file commands to ``app``."""
    app.command("export")(export)
    app.command("import")(import_file)
    app.command("archive")(archive)


@handle_errors
def export(
    ctx: typer.Context,
    fmt: FormatOpt = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    status: StatusOpt = None,
    topic: TopicOpt = None,
    handler: HandlerOpt = None,
    error_type: ErrorTypeOpt = None,
    group: GroupOpt = None,
    tenant: TenantOpt = None,
    correlation_id: CorrelationOpt = None,
    version: VersionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    search: SearchOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Export records (dead ones by default) as json, jsonl or csv; the config's redact
    patterns mask sensitive fields. CSV keeps the payload as a JSON column.

    Example: redrive export --format csv --topic orders.created -o orders.csv
    """
    if fmt not in ("json", "jsonl", "csv"):
        raise BadInput(f"--format: expected json, jsonl or csv, got {fmt!r}")
    where = build_filter(
        status=status,
        topic=topic,
        handler=handler,
        error_type=error_type,
        group=group,
        tenant=tenant,
        correlation_id=correlation_id,
        version=version,
        since=since,
        until=until,
        search=search,
    )
    reader(ctx)  # refuses a SQLite store that does not exist
    dlq, mask = service(ctx, actor), redactor(ctx)
    where = dlq.snapshot(where)
    total = dlq.count(where) if sys.stderr.isatty() else 0  # counted only for the bar
    with _target(output) as out, progress_bar(total, "export") as advance:
        count = dlq.export(out, where=where, fmt=fmt, redactor=mask, progress=advance)
    if output is not None:
        typer.echo(f"exported {plural(count, 'record')} to {output}", err=True)


@contextlib.contextmanager
def _target(output: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temporary file beside ``output`` renamed into place when complete,
    so an interrupted export never leaves a half-written file under the real name."""
    if output is None:
        yield sys.stdout
        return
    if not output.parent.is_dir():
        raise BadInput(f"--output: no directory {output.parent}")
    if output.is_dir():
        raise BadInput(f"--output: {output} is a directory; name a file in it")
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    partial = Path(name)
    try:
        with _open_for_writing(partial, gz=output.suffix == ".gz") as stream:
            yield stream
        try:
            partial.replace(output)
        except OSError as exc:
            raise BadInput(f"--output: cannot write {output}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)


def _open_for_writing(path: Path, *, gz: bool) -> IO[str]:
    if gz:
        import gzip

        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")


@handle_errors
def import_file(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="An archive or a json/jsonl export.")
    ],
    actor: ActorOpt = None,
    note: NoteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Restore records from an archive or an export: ids kept, duplicates skipped.

    The whole file is checked first: a corrupt line imports nothing.

    Example: redrive import archive-2026-10.jsonl.gz
    """
    result = service(ctx, actor).import_(path, note=note)
    if wants_json(ctx, json_output):
        echo_json({"read": result.matched, "imported": result.changed, "skipped": result.skipped})
        return
    typer.echo(
        f"imported {plural(result.changed, 'record')}; "
        f"{result.skipped:,} skipped (already in the store)"
    )


@handle_errors
def archive(
    ctx: typer.Context,
    to: Annotated[Path, typer.Option("--to", help="FILE.jsonl or FILE.jsonl.gz (appended to).")],
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Last changed longer ago: 30d, 12h.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="dead,resolved,discarded (default), a list, or all."),
    ] = None,
    topic: TopicOpt = None,
    handler: HandlerOpt = None,
    error_type: ErrorTypeOpt = None,
    group: GroupOpt = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Records per fsync.")
    ] = 1000,
    yes: YesOpt = False,
    actor: ActorOpt = None,
    note: NoteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Move old records to a file, then delete them from the store.

    Each batch is fsynced before it is deleted, so a crash loses nothing; run the same
    command again to finish. Restore with: redrive import FILE

    Example: redrive archive --older-than 30d --to archive-2026-10.jsonl.gz
    """
    if not to.name.endswith((".jsonl", ".jsonl.gz")):
        raise BadInput(f"--to: expected a .jsonl or .jsonl.gz file name, got {to.name!r}")
    if not to.parent.is_dir():
        raise BadInput(f"--to: no directory {to.parent}")
    dlq = service(ctx, actor)
    where = build_filter(
        status=status,
        topic=topic,
        handler=handler,
        error_type=error_type,
        group=group,
        default_status=("dead", "resolved", "discarded"),
    )
    if older_than is not None:
        where = where.replace(
            updated_before=dlq.clock.now() - parse_age(older_than, "--older-than")
        )
    where = dlq.snapshot(where)
    total = dlq.count(where)
    confirm(f"Archive {plural(total, 'record')} to {to} and delete them from the store?", yes)
    with progress_bar(total, "archive") as advance:
        result = dlq.archive(to, where=where, batch=batch_size, note=note, progress=advance)
    if wants_json(ctx, json_output):
        echo_json({"archived": result.matched, "deleted": result.changed, "file": str(to)})
        return
    typer.echo(f"archived {plural(result.matched, 'record')} to {to}")
