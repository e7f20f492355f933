"""``redrive policy show TOPIC``: the effective retry policy, its timeline and its traps."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import JsonOpt, echo_json, handle_errors, state_of, wants_json

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.policy import RetryPolicy


def register(app: typer.Typer) -> None:
    """Add the ``policy`` command group to ``app``."""
    group = typer.Typer(name="policy", help="Inspect retry policies.", no_args_is_help=True)
    group.command("show")(show)
    app.add_typer(group, name="policy")


@handle_errors
def show(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The topic.")],
    handler: Annotated[
        str, typer.Option("--handler", help="A handler name, if the config sets one apart.")
    ] = "",
    json_output: JsonOpt = False,
) -> None:
    """The policy a topic's handlers run under (from the config), with the retry timeline.

    Handlers can also set a policy in code, which the config does not see.

    Example: redrive policy show orders.created
    """
    settings = state_of(ctx).settings
    policy = settings.policy_for(topic, handler)
    rows = policy.timeline()
    warnings = traps(settings, topic, policy)
    if wants_json(ctx, json_output):
        echo_json(
            {
                "topic": topic,
                "policy": _policy_dict(policy),
                "warnings": warnings,
                "timeline": [{"retry": n, "delay": d, "cumulative": c} for n, d, c in rows],
            }
        )
        return
    from redrive.ops.cli._render import console, table

    out = console()
    out.print(f"topic {topic}" + (f", handler {handler}" if handler else ""))
    for key, value in _policy_dict(policy).items():
        out.print(f"  {key}: {value}")
    grid = table("ATTEMPT>", "WAIT BEFORE (MAX)>", "CUMULATIVE (MAX)>")
    grid.add_row("1", "-", "0s")
    for number, delay, total in rows:
        grid.add_row(str(number + 1), _seconds(delay), _seconds(total))
    out.print(grid)
    for warning in warnings:
        out.print(f"warning: {warning}")


def traps(settings: Settings, topic: str, policy: RetryPolicy) -> list[str]:
    """Settings that defeat each other: retention shorter than the retries, an ack wait
    shorter than a backoff (the broker would redeliver while redrive still waits)."""
    found = []
    rows = policy.timeline()
    total = rows[-1][2] if rows else 0.0
    longest = max((delay for _, delay, _ in rows), default=0.0)
    retention = settings.retention(topic)
    if retention is not None and total > retention.total_seconds():
        found.append(
            f"retries can take {_seconds(total)}, longer than the retention ({retention}): "
            "records may be purged before they go dead"
        )
    ack_wait = _ack_wait(settings)
    if ack_wait is not None and longest > ack_wait.total_seconds():
        found.append(
            f"the longest backoff ({_seconds(longest)}) exceeds the NATS ack wait "
            f"({ack_wait}): JetStream would redeliver while redrive still waits"
        )
    if policy.max_attempts == 1:
        found.append("max_attempts = 1: failures go dead at once, with no automatic retry")
    return found


def _ack_wait(settings: Settings) -> timedelta | None:
    from redrive.config import parse_duration

    nats = settings.sections.get("nats")
    value = nats.get("ack_wait") if isinstance(nats, dict) else None
    try:
        return None if value is None else parse_duration(value)
    except ValueError:
        return None


def _policy_dict(policy: RetryPolicy) -> dict[str, Any]:
    return {
        "max_attempts": policy.max_attempts,
        "initial_delay": policy.initial_delay,
        "multiplier": policy.multiplier,
        "max_delay": policy.max_delay,
        "jitter": policy.jitter,
        "retry_on": [c.__name__ for c in policy.retry_on],
        "dead_on": [c.__name__ for c in policy.dead_on],
    }


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    return f"{value:g}s"
