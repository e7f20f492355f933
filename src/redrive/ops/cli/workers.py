"""``redrive workers``: the schedulers that are running (apps, workers, the outbox
dispatcher), from their heartbeats in the store, and what is stalled without one."""

from __future__ import annotations

import typer

from redrive.ops.cli._common import JsonOpt, echo_json, handle_errors, reader, wants_json


def register(app: typer.Typer) -> None:
    """Add ``workers`` to ``app``."""
    app.command("workers")(workers)


@handle_errors
def workers(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Is anything consuming? Each scheduler's host, pid, version, handlers, last claim
    and records run; then the handlers whose scheduled records wait with no live worker.

    Example: redrive workers
    """
    from redrive.models import parse_time, utcnow
    from redrive.ops.cli._render import age, console, table

    dlq = reader(ctx)
    found, stalled = dlq.workers(), dlq.stalled()
    if wants_json(ctx, json_output):
        from redrive.ops.api.workers import stalled_dict

        echo_json(
            {"items": found, "next_cursor": None, "stalled": [stalled_dict(s) for s in stalled]}
        )
        return
    out, now = console(), utcnow()
    if not found:
        out.print("no workers: no app, `redrive worker` or outbox dispatcher is running")
    else:
        grid = table("HOST", "PID>", "KIND", "LIVE", "HANDLERS", "LAST CLAIM>", "RAN>", "UP>")
        for w in found:
            grid.add_row(
                str(w.get("host")),
                str(w.get("pid")),
                str(w.get("kind")),
                "yes" if w.get("live") else "no (stale)",
                ", ".join(w.get("handlers") or []) or "-",
                age(parse_time(w.get("last_claim_at")), now),
                f"{w.get('records_run', 0):,}",
                age(parse_time(w.get("started_at")), now),
            )
        out.print(grid)
    for item in stalled:
        out.print(
            f"stalled: {item.count:,} scheduled records of {item.topic}/{item.handler}, "
            f"due {age(item.oldest_due_at, now)} ago, and no live worker runs that handler"
        )
