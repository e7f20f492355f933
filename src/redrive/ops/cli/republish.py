"""``redrive retry --republish``: dead letters sent back to the broker they came from.

The records are read through the service, published by ``redrive.transports.republish``
(each by its own transport), then resolved with a note, and the republish is audited. A
batch is resolved only once all of it was published; a failure stops the command with what
was done so far.
"""

from __future__ import annotations

from typing import Any

import typer

from redrive.ops.cli._common import confirm, echo_json, plural, progress_bar, state_of
from redrive.ops.cli._state import EXIT_NOT_FOUND

BATCH = 100
"""Records published (then resolved) at a time."""


def republish(
    ctx: typer.Context,
    dlq: Any,
    ids: list[str] | None,
    bulk: Any,
    *,
    force: bool,
    dry_run: bool,
    yes: bool,
    note: str | None,
    as_json: bool,
) -> None:
    """Select dead letters (ids or a filter), publish them again, resolve them."""
    from redrive.service import Filter

    where = bulk if bulk is not None else Filter(ids=tuple(dict.fromkeys(ids or [])))
    plan = dlq.plan(where, force=force)
    missing = len(set(ids or [])) - dlq.count(Filter(ids=tuple(set(ids or [])))) if ids else 0
    if dry_run:
        _echo(
            as_json,
            {"republish": plan.count, "by_topic": dict(plan.by_topic)},
            f"would republish {plural(plan.count, 'dead letter')}",
        )
        return
    if plan.count and bulk is not None:
        confirm(f"Republish {plan.count:,} dead letters to their brokers?", yes)
    sent = _send(ctx, dlq, plan.where, plan.count, note)
    _echo(
        as_json,
        {"republished": sent, "skipped": plan.guarded, "missing": missing},
        f"republished {plural(sent, 'dead letter')}"
        + (f"; {missing:,} not found" if missing else ""),
    )
    if missing:
        raise typer.Exit(EXIT_NOT_FOUND)


def _send(ctx: typer.Context, dlq: Any, where: Any, total: int, note: str | None) -> int:
    import asyncio

    from redrive.transports import republish as to_brokers

    settings = state_of(ctx).settings
    sent = 0
    with progress_bar(total, "republishing") as advance:
        batch: list[Any] = []
        for record in dlq.iter_records(where):
            batch.append(record)
            if len(batch) == BATCH:
                sent += _batch(dlq, batch, settings, to_brokers, asyncio, note)
                advance(len(batch))
                batch = []
        if batch:
            sent += _batch(dlq, batch, settings, to_brokers, asyncio, note)
    return sent


def _batch(
    dlq: Any, batch: list[Any], settings: Any, send: Any, asyncio: Any, note: str | None
) -> int:
    count = int(asyncio.run(send(batch, settings, actor=dlq.actor)))
    ids = [record.id for record in batch]
    dlq.record(
        "republish",
        count=count,
        detail={
            "ids": ids if len(ids) <= 100 else None,
            "note": note,
            "subjects": sorted({str(r.origin.get("subject") or r.topic) for r in batch}),
        },
    )
    dlq.resolve(ids, note="republished to the broker" + (f": {note}" if note else ""))
    return count


def _echo(as_json: bool, data: dict[str, Any], line: str) -> None:
    if as_json:
        echo_json(data)
    else:
        typer.echo(line)
