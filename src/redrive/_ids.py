"""Time-sortable ids (UUIDv7, RFC 9562) so that newest-first is simply id order."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
import uuid
from datetime import datetime

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# random reseeds itself in a forked child (os.register_at_fork), so two processes never
# share a sequence; ids need uniqueness, not secrecy, and getrandbits is ~10x cheaper
# than os.urandom.
_bits = random.getrandbits


def new_id() -> str:
    """Return a new UUIDv7 string; ids made in one process are strictly increasing.

    Within one millisecond the 12-bit ``rand_a`` field is a counter (RFC 9562, method 1),
    so a burst of ids keeps its order; the remaining 62 bits are random.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, _bits(8)
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | _bits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def owner_id() -> str:
    """``host:pid:random`` naming one scheduler, dispatcher or monitor: the holder of leases
    and locks, unique even for two of them in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def derived_id(at: datetime, key: str) -> str:
    """A UUIDv7-shaped id fixed by ``key`` (the same on every call) and ordered by ``at``: for
    records imported from a broker's DLQ, so a second import finds the first one's ids."""
    ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=10).digest(), "big")
    rand_a, rand_b = (digest >> 62) & 0xFFF, digest & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
