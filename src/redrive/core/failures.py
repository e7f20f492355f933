"""Turning an exception into what a dead letter records: traceback text and fingerprint.

Formatting a traceback with ``traceback.format_exc`` costs ~100 us per failure, mostly in
looking up and formatting source lines. Failures with one cause share their frames, so the
formatted stack (and the frame the fingerprint names) is cached by the frames' (file, line,
function) tuple: a burst of 10,000 identical failures formats one traceback.

:func:`describe` is what the engine calls once per failure: it walks the frames once and
reads the error's name and message once, and gives the four texts a record keeps. The
single-purpose functions (``format_traceback``, ``fingerprint``, ``error_message``) give the
same texts.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sysconfig
import traceback
from types import TracebackType
from typing import NamedTuple

from redrive.policy import error_name

_MESSAGE_LIMIT = 4_000
_Frame = tuple[str, int, str]

_LIBRARY_PATHS = tuple(
    {p for p in (sysconfig.get_paths().get(k) for k in ("stdlib", "purelib", "platlib")) if p}
)
_REDRIVE_DIR = __file__.rsplit("/", 1)[0]

_VOLATILE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuids
    r"|0x[0-9a-f]+|\b[0-9a-f]{16,}\b"  # addresses, hashes
    r"|\d+(?:\.\d+)?",  # numbers
    re.IGNORECASE,
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def frames_of(tb: TracebackType | None) -> tuple[_Frame, ...]:
    """The (file, line, function) of each frame of ``tb``, outermost first."""
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return tuple(frames)


@functools.lru_cache(maxsize=1024)
def _format_stack(frames: tuple[_Frame, ...]) -> str:
    """The stack part of a traceback, storable (a file name may hold a lone surrogate)."""
    summary = traceback.StackSummary.from_list(
        [traceback.FrameSummary(filename, line, name) for filename, line, name in frames]
    )
    return storable("".join(summary.format()))


@functools.lru_cache(maxsize=1024)
def _stack_of(frames: tuple[_Frame, ...]) -> tuple[str, str]:
    """The traceback's head and stack (``Traceback ...`` and its frames, storable; empty
    without frames) and the top project frame of ``frames``: one cache lookup for both."""
    head = "Traceback (most recent call last):\n" + _format_stack(frames) if frames else ""
    return head, top_project_frame(frames)


class Failure(NamedTuple):
    """What a dead letter keeps of one error: as ``error_name``, ``error_message``,
    ``format_traceback`` and ``fingerprint`` give them."""

    error_type: str
    message: str
    traceback: str
    fingerprint: str


def describe(error: BaseException, topic: str, handler: str) -> Failure:
    """The error's type name, message, traceback text and fingerprint (for ``topic`` and
    ``handler``), each the same text as the single-purpose function gives, for about a third
    of their cost together: the frames are walked once, the message read once, and the
    stack's text and top project frame come from one cache lookup."""
    frames = frames_of(error.__traceback__)
    head, top = _stack_of(frames)
    name = error_name(error)
    message = error_message(error)
    if error.__cause__ is None and (error.__suppress_context__ or error.__context__ is None):
        text = f"{head}{storable(name)}: {message}\n"  # no chain: the common case
    else:
        text = format_traceback(error)
    return Failure(name, message, text, _digest(topic, handler, name, message, top))


def format_traceback(error: BaseException) -> str:
    """The traceback text of ``error``, as ``traceback.format_exception`` would print it.

    Chained causes are included. The stack part is cached, so this is cheap for errors
    that repeat.
    """
    parts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(_format_one(current))
        cause = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if cause is not None:
            link = (
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if current.__cause__ is not None
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
            parts.append(link)
        current = cause
    return "".join(reversed(parts))  # each part is storable, so the whole is


def _format_one(error: BaseException) -> str:
    head, _top = _stack_of(frames_of(error.__traceback__))
    return f"{head}{storable(error_name(error))}: {error_message(error)}\n"


def error_message(error: BaseException) -> str:
    """The error's message, bounded in size."""
    try:
        text = str(error)
    except Exception:  # a broken __str__ must not lose the record
        text = f"<unprintable {type(error).__name__}>"
    text = text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "…"
    return storable(text)


def storable(text: str) -> str:
    """``text`` as every store can keep it: a lone surrogate (``os.fsdecode`` of a bad file
    name, say) becomes its ``\\udcXX`` escape; the rest is kept."""
    if text.isascii():  # a flag of the string: no scan, no copy
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def normalise_message(message: str) -> str:
    """The message with ids, numbers and quoted values masked, so one cause groups as one."""
    return _VOLATILE.sub("#", _QUOTED.sub("'…'", message))[:500]


@functools.lru_cache(maxsize=1024)
def top_project_frame(frames: tuple[_Frame, ...]) -> str:
    """The innermost frame that belongs to the application (not stdlib, site-packages or
    redrive), as ``file:function``; line numbers are left out so a deploy keeps the group."""
    for filename, _line, name in reversed(frames):
        if filename.startswith(_LIBRARY_PATHS) or filename.startswith(_REDRIVE_DIR):
            continue
        if filename.startswith("<"):  # <frozen ...>, <string>
            continue
        return f"{filename.rsplit('/', 1)[-1]}:{name}"
    return ""


def fingerprint(topic: str, handler: str, error: BaseException) -> str:
    """A stable hash of (topic, handler, error type, normalised message, top project frame)."""
    top = top_project_frame(frames_of(error.__traceback__))
    return _digest(topic, handler, error_name(error), error_message(error), top)


def _digest(topic: str, handler: str, name: str, message: str, top: str) -> str:
    parts = (topic, handler, name, normalise_message(message), top)
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()
