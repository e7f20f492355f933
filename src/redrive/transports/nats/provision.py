"""Create or update what the transport needs on the server, and say what changed.

- the DLQ stream (``<STREAM>_DLQ``, subjects ``dlq.<each source subject>``),
- the advisory stream capturing ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>``, and the
  durable consumer that reads one (stream, consumer)'s advisories from it,
- the durable pull consumer itself: explicit acks, a fixed ``ack_wait``, no ``backoff``
  (it distorts ``nak(delay)``), ``max_deliver`` above the policy's attempts.

``update_stream`` replaces the whole config (an omitted field goes back to its default), so
each update starts from the current config and changes only the fields redrive owns. A
second run finds nothing to change and says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError

from redrive.exceptions import ConfigError
from redrive.transports.nats.options import ADVISORY_SUBJECTS, NatsOptions


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What provisioning did (or, in a dry run, would do) to one stream or consumer."""

    kind: str  # "stream" or "consumer"
    name: str
    action: str  # "create", "update" or "unchanged"
    fields: dict[str, tuple[Any, Any]]  # field -> (current, wanted)

    def describe(self) -> str:
        """One line per change, such as ``update stream ORDERS_DLQ: max_msgs -1 -> 100000``."""
        head = f"{self.action} {self.kind} {self.name}"
        if not self.fields or self.action == "unchanged":
            return head
        parts = [
            f"{name} {_show(old)} -> {_show(new)}"
            if self.action == "update"
            else f"{name}={_show(new)}"
            for name, (old, new) in sorted(self.fields.items())
        ]
        return f"{head}: {', '.join(parts)}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value.value if hasattr(value, "value") else value)


async def provision(
    js: Any, options: NatsOptions, *, max_attempts: int, dry_run: bool = False
) -> list[Change]:
    """Bring the DLQ stream, the advisory stream and consumer, and the durable consumer in
    line with ``options``; return what changed (everything, ``unchanged`` included)."""
    source = await _stream_info(js, options.stream)
    changes: list[Change] = []
    if options.dlq.enabled:
        changes.append(await _stream(js, dlq_stream(options, source.config), dry_run))
    if options.advisories.enabled:
        changes.append(await _stream(js, advisory_stream(options), dry_run))
        changes.append(
            await _consumer(js, options.advisories.stream, advisory_consumer(options), dry_run)
        )
    changes.append(
        await _consumer(js, options.stream, work_consumer(options, max_attempts), dry_run)
    )
    return changes


async def _stream_info(js: Any, name: str) -> Any:
    try:
        return await js.stream_info(name)
    except NotFoundError:
        raise ConfigError(
            f"no stream {name!r} on the server: create the source stream first", key="nats.stream"
        ) from None


def dlq_stream(options: NatsOptions, source: Any) -> dict[str, Any]:
    """The DLQ stream's wanted fields: the source's subjects under the DLQ prefix."""
    subjects = [options.dlq.subject_for(s) for s in (source.subjects or [])]
    return {
        "name": options.dlq.stream_for(options.stream),
        "subjects": subjects,
        "max_age": options.dlq.max_age,
        "max_msgs": options.dlq.max_msgs,
        "num_replicas": options.dlq.replicas,
        "allow_direct": True,  # read back with direct gets: headers come back intact
        "_create": {"retention": api.RetentionPolicy.LIMITS, "storage": api.StorageType.FILE},
    }


def advisory_stream(options: NatsOptions) -> dict[str, Any]:
    """The advisory stream's wanted fields."""
    return {
        "name": options.advisories.stream,
        "subjects": [ADVISORY_SUBJECTS],
        "max_age": options.advisories.max_age,
        "num_replicas": options.advisories.replicas,
        "_create": {"retention": api.RetentionPolicy.LIMITS, "storage": api.StorageType.FILE},
    }


def work_consumer(options: NatsOptions, max_attempts: int) -> dict[str, Any]:
    """The durable pull consumer's wanted fields."""
    limit = options.deliver_limit(max_attempts)
    if limit <= max_attempts:
        raise ConfigError(
            f"max_deliver {limit} must be above the policies' {max_attempts} attempts, or "
            "crash loops are never told apart from failures",
            key="nats.max_deliver",
        )
    return {
        "durable_name": options.durable,
        "ack_policy": api.AckPolicy.EXPLICIT,
        "ack_wait": options.ack_wait,
        "max_deliver": limit,
        "max_ack_pending": options.max_ack_pending,
        "backoff": None,  # never with nak(delay): the server adds it to the delay
        "filter_subject": options.filter_subject,
        "_create": {"deliver_policy": api.DeliverPolicy.ALL},
    }


def advisory_consumer(options: NatsOptions) -> dict[str, Any]:
    """The durable consumer reading this consumer's MAX_DELIVERIES advisories."""
    adv = options.advisories
    return {
        "durable_name": adv.durable_for(options.stream, options.durable),
        "filter_subject": adv.subject_for(options.stream, options.durable),
        "ack_policy": api.AckPolicy.EXPLICIT,
        "ack_wait": 30.0,
        "max_deliver": -1,
        "_create": {"deliver_policy": api.DeliverPolicy.ALL},
    }


def _diff(current: Any, wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    fields = {}
    for name, value in wanted.items():
        if name.startswith("_"):
            continue
        old = getattr(current, name, None) if current is not None else None
        if _norm(old) != _norm(value):
            fields[name] = (old, value)
    return fields


def _norm(value: Any) -> Any:
    if value in (None, [], ""):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


async def _stream(js: Any, wanted: dict[str, Any], dry_run: bool) -> Change:
    name = wanted["name"]
    fields = {k: v for k, v in wanted.items() if not k.startswith("_")}
    try:
        current = (await js.stream_info(name)).config
    except NotFoundError:
        current = None
    if current is None:
        change = Change("stream", name, "create", _diff(None, wanted))
        if not dry_run:
            await _guard(js.add_stream(api.StreamConfig(**fields, **wanted["_create"])), name)
        return change
    diff = _diff(current, wanted)
    if not diff:
        return Change("stream", name, "unchanged", {})
    if not dry_run:  # update_stream replaces everything: start from the current config
        await _guard(js.update_stream(dataclasses.replace(current, **fields)), name)
    return Change("stream", name, "update", diff)


async def _consumer(js: Any, stream: str, wanted: dict[str, Any], dry_run: bool) -> Change:
    name = wanted["durable_name"]
    fields = {k: v for k, v in wanted.items() if not k.startswith("_")}
    try:
        current = (await js.consumer_info(stream, name)).config
    except NotFoundError:
        current = None
    if current is None:
        change = Change("consumer", f"{stream}/{name}", "create", _diff(None, wanted))
        config = api.ConsumerConfig(**fields, **wanted["_create"])
    else:
        diff = _diff(current, wanted)
        if not diff:
            return Change("consumer", f"{stream}/{name}", "unchanged", {})
        change = Change("consumer", f"{stream}/{name}", "update", diff)
        config = dataclasses.replace(current, **fields)
    if not dry_run:  # add_consumer creates or updates (pull_subscribe would ignore config)
        await _guard(js.add_consumer(stream, config=config), f"{stream}/{name}")
    return change


async def _guard(call: Any, name: str) -> Any:
    try:
        return await call
    except BadRequestError as exc:
        raise ConfigError(f"the server refused {name}: {exc.description}", key="nats") from exc
