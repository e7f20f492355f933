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


CODE_NOTE = (
    "note: policies set in code (EventBus(policy=...), @bus.handler(policy=...)) are not "
    "visible here; a config entry for the handler or topic overrides them field by field"
)


@handle_errors
def show(
    ctx: typer.Context,
    topic: Annotated[
        str | None, typer.Argument(help="The topic (leave out to list every configured one).")
    ] = None,
    handler: Annotated[
        str, typer.Option("--handler", help="A handler name, if the config sets one apart.")
    ] = "",
    json_output: JsonOpt = False,
) -> None:
    """The policy a topic's handlers run under (from the config), with the retry timeline
    and where each value comes from (topic config, default config or built-in).

    Handlers can also set a policy in code, which the config does not see.

    \b
    Example: redrive policy show orders.created
    Example: redrive policy show   (the default and every configured topic)
    """
    settings = state_of(ctx).settings
    if topic is None:
        _show_all(ctx, settings, json_output)
        return
    policy = settings.policy_for(topic, handler)
    sources = settings.policy_sources(topic, handler)
    rows = policy.timeline()
    warnings = traps(settings, topic, policy)
    if topic not in settings.topics:
        configured = ", ".join(sorted(settings.topics)) or "none"
        warnings.insert(
            0,
            f"topic {topic!r} is not in the config (configured: {configured}); "
            "showing the default policy",
        )
    if wants_json(ctx, json_output):
        echo_json(
            {
                "topic": topic,
                "policy": _policy_dict(policy),
                "sources": sources,
                "warnings": warnings,
                "timeline": [{"retry": n, "delay": d, "cumulative": c} for n, d, c in rows],
            }
        )
        return
    from redrive.ops.cli._render import console, table

    out = console()
    out.print(f"topic {topic}" + (f", handler {handler}" if handler else ""))
    for key, value in _policy_text(policy).items():
        out.print(f"  {key}: {value}  ({sources[key]})")
    grid = table("ATTEMPT>", "WAIT BEFORE (MAX)>", "CUMULATIVE (MAX)>")
    grid.add_row("1", "-", "0s")
    for number, delay, total in rows:
        grid.add_row(str(number + 1), _seconds(delay), _seconds(total))
    out.print(grid)
    for warning in warnings:
        out.print(f"warning: {warning}")
    out.print(CODE_NOTE)


def _show_all(ctx: typer.Context, settings: Settings, json_output: bool) -> None:
    """The default policy and every configured topic's, one line each."""
    names = [None, *sorted(settings.topics)]
    rows = [(name, settings.policy_for(name or "", "")) for name in names]
    if wants_json(ctx, json_output):
        echo_json(
            {
                "default": _policy_dict(rows[0][1]),
                "topics": {name: _policy_dict(policy) for name, policy in rows[1:]},
            }
        )
        return
    from redrive.ops.cli._render import console, table

    grid = table("TOPIC", "MAX ATTEMPTS>", "INITIAL DELAY>", "MULTIPLIER>", "MAX DELAY>", "JITTER")
    for name, policy in rows:
        text = _policy_text(policy)
        grid.add_row(
            name or "(default)",
            text["max_attempts"],
            text["initial_delay"],
            text["multiplier"],
            text["max_delay"],
            text["jitter"],
        )
    out = console()
    out.print(grid)
    if len(rows) == 1:
        out.print("no topic has a policy of its own in the config")
    out.print(CODE_NOTE)


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
            f"retries can take {_seconds(total)}, longer than the retention "
            f"({_seconds(retention.total_seconds())}): "
            "records may be purged before they go dead"
        )
    ack_wait = _ack_wait(settings)
    if ack_wait is not None and longest > ack_wait.total_seconds():
        found.append(
            f"the longest backoff ({_seconds(longest)}) exceeds the NATS ack wait "
            f"({_seconds(ack_wait.total_seconds())}): JetStream would redeliver while redrive "
            "still waits"
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


def _policy_text(policy: RetryPolicy) -> dict[str, str]:
    """The policy's fields as a person reads them: durations with units."""
    data = _policy_dict(policy)
    text = {key: str(value) for key, value in data.items()}
    text["initial_delay"] = _seconds(policy.initial_delay)
    text["max_delay"] = _seconds(policy.max_delay)
    text["multiplier"] = f"{policy.multiplier:g}"
    text["retry_on"] = ", ".join(data["retry_on"]) or "-"
    text["dead_on"] = ", ".join(data["dead_on"]) or "-"
    return text


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    if 0 < value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"
