"""Hooks: how metrics, alerts and logs watch the core without the core knowing them.

A hook is any object with some of the ``on_*`` methods of :class:`Hook`; subclass it and
override what you need (the rest do nothing). Hooks run in the event loop of the bus or the
scheduler; they must be quick and must not raise (an error in a hook is logged and ignored,
so a broken metrics exporter never loses an event).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redrive.models import DeadLetter, Event

logger = logging.getLogger("redrive.hooks")


class Hook:
    """Base class of hooks: every method does nothing.

    .. versionadded:: 0.1
    """

    def on_success(
        self, event: Event, handler: str, duration: float, record: DeadLetter | None
    ) -> None:
        """A handler succeeded; ``record`` is the dead letter it resolved, if it was a retry."""

    def on_failure(self, record: DeadLetter, error: BaseException, duration: float) -> None:
        """A handler failed; ``record`` is written and says what follows
        (``scheduled`` for a retry, ``dead``)."""

    def on_dead(self, record: DeadLetter) -> None:
        """A record became dead (retries exhausted or non-retriable)."""

    def on_replay(self, records: Sequence[DeadLetter], actor: str) -> None:
        """Replayed ``records`` start running again, in the process that owns their
        handler (the first attempt after ``actor`` replayed them)."""

    def on_change(self, action: str, count: int, actor: str) -> None:
        """An operator changed ``count`` records (resolve, discard, delete, purge, ...)."""


class Hooks(Hook):
    """Calls each of several hooks in turn, logging and swallowing their errors."""

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        self._hooks = tuple(hooks)

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def _call(self, name: str, *args: object) -> None:
        for hook in self._hooks:
            method = getattr(hook, name, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:
                logger.exception("hook %r failed in %s", hook, name)

    def on_success(
        self, event: Event, handler: str, duration: float, record: DeadLetter | None
    ) -> None:
        self._call("on_success", event, handler, duration, record)

    def on_failure(self, record: DeadLetter, error: BaseException, duration: float) -> None:
        self._call("on_failure", record, error, duration)

    def on_dead(self, record: DeadLetter) -> None:
        self._call("on_dead", record)

    def on_replay(self, records: Sequence[DeadLetter], actor: str) -> None:
        self._call("on_replay", records, actor)

    def on_change(self, action: str, count: int, actor: str) -> None:
        self._call("on_change", action, count, actor)
