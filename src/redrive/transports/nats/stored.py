"""Reading one stored message back by stream sequence, headers intact."""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime
from typing import Any

from nats.js.errors import NotFoundError

_SERVER_HEADERS = {
    "nats-subject",
    "nats-sequence",
    "nats-time-stamp",
    "nats-stream",
    "nats-last-sequence",
    "nats-num-pending",
}


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the stream keeps it."""

    stream: str
    sequence: int
    subject: str
    data: bytes
    headers: dict[str, str]
    time: datetime | None


async def get_stored(js: Any, stream: str, sequence: int, *, direct: bool) -> StoredMessage | None:
    """The message at ``sequence``, or None if the stream no longer has it.

    The default (non-direct) get parses headers with the e-mail parser, which garbles
    non-ASCII values; the raw header block is parsed here instead.
    """
    try:
        raw = await js.get_msg(stream, sequence, direct=direct)
    except NotFoundError:
        return None
    if raw.hdrs:
        headers = parse_headers(base64.b64decode(raw.hdrs))
    else:
        headers = {k: str(v) for k, v in (raw.headers or {}).items()}
    headers = {k: v for k, v in headers.items() if k.lower() not in _SERVER_HEADERS}
    return StoredMessage(
        stream, int(raw.seq or sequence), str(raw.subject), raw.data or b"", headers, raw.time
    )


def parse_headers(block: bytes) -> dict[str, str]:
    """``NATS/1.0`` header block -> dict (the first value of a repeated name wins)."""
    lines = block.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.setdefault(name.strip(), value.strip())
    return headers
