"""Connecting to NATS with one-line errors that never show a password."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import nats

from redrive.exceptions import TransportError

logger = logging.getLogger("redrive.nats")

_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return _PASSWORD.sub(r"\1:***@", url)


async def connect(servers: Sequence[str], *, name: str, reconnect: bool = True) -> Any:
    """A client connected to ``servers``; ``TransportError`` if none answers.

    ``reconnect`` (consumers) keeps reconnecting forever after the first connection;
    one-off commands give up instead.
    """

    level = logging.WARNING if reconnect else logging.DEBUG  # commands report it once

    async def quiet(error: Exception) -> None:  # one line, not the client's traceback
        logger.log(level, "NATS: %s", error or type(error).__name__)

    try:
        return await nats.connect(
            servers=list(servers),
            name=name,
            connect_timeout=3,
            error_cb=quiet,
            allow_reconnect=reconnect,
            max_reconnect_attempts=-1 if reconnect else 1,
        )
    except Exception as exc:
        shown = ", ".join(mask(url) for url in servers)
        raise TransportError(
            f"cannot connect to NATS at {shown}: {exc or type(exc).__name__}"
        ) from exc
