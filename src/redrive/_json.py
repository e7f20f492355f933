"""The one rule for JSON values redrive takes in: payloads, headers, patches, filters.

A value is stored as JSON and given back to handlers on a replay, so it must come back as
it went in. ``check_json`` refuses (with ``NotJSON``, naming the path) anything that would
not: a ``datetime``, ``Decimal``, ``set``, ``bytes`` or ``tuple`` (which an encoder would
silently turn into a string or a list), a non-string key, NaN or an infinity. ``strict``
(what operators send: patches, filters, notes, ids) also refuses text that no store can
keep (a NUL character, PostgreSQL cannot; a lone surrogate, UTF-8 cannot) and nesting
deeper than ``MAX_DEPTH``. The walk is iterative, so no depth makes it recurse.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from redrive.exceptions import InvalidInput

MAX_DEPTH = 100
"""The deepest nesting an operator's JSON (a patch, an edited payload) may have."""

_OPTIONS: dict[str, Any] = {
    # allow_nan=False: NaN and Infinity are not JSON, and PostgreSQL refuses them.
    "separators": (",", ":"),
    "ensure_ascii": False,
    "default": str,
    "allow_nan": False,
}
_encoder = json.JSONEncoder(**_OPTIONS)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_str = json.encoder.encode_basestring
# The C encoder that ``JSONEncoder.encode`` builds on every call, built once: without the
# circular-reference check (markers=None) it keeps no state between calls. A cycle then
# ends in RecursionError, as too deep a nesting does. ``json.dumps`` with these options
# builds a new JSONEncoder on every call, and ``encode`` a new C encoder: together that
# was half the cost of encoding a 20-item payload.
_iterencode: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, str, _encode_str, None, ":", ",", False, False, False)
)


def _encode(value: Any) -> str:
    if _iterencode is None:  # no C accelerator (another Python): the stdlib path
        return _encoder.encode(value)
    if type(value) is str:
        return str(_encode_str(value))
    return "".join(_iterencode(value, 0))


def dumps(value: Any) -> str:
    """The compact JSON text a store keeps for ``value`` (a non-JSON value as its ``str``);
    ``ValueError`` for NaN or an infinity, ``UnicodeEncodeError`` for a lone surrogate,
    ``TypeError`` for a key that is not a string, a number or None, ``RecursionError``
    for a value nested too deeply (or containing itself)."""
    text = _encode(value)
    if not text.isascii():
        text.encode("utf-8")  # UnicodeEncodeError for a lone surrogate: no store keeps one
    return text


# The C scanner json.loads ends in: a JSONDecoder sets it on itself (untyped in typeshed).
_scan_once: Any = vars(json.JSONDecoder())["scan_once"]


def parse(data: str | bytes | bytearray) -> Any:
    """``json.loads(data)``: the same value, or the same error, at about a third of the
    cost for a small document (a Kafka or NATS message's value).

    ``json.loads`` of bytes detects their encoding and matches the whitespace around the
    value in Python before and after the C scanner runs; most values are UTF-8 with none,
    so the scanner is called directly, and only what it does not take whole (whitespace
    around the value, a BOM, UTF-16 or UTF-32, invalid JSON) goes through ``json.loads``.
    """
    try:  # bytes, the common case, by one type() comparison; bytearray fails over below
        text = data.decode() if type(data) is bytes else data
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return json.loads(data)
    if end != len(text):
        return json.loads(data)
    return value


class NotJSON(InvalidInput):
    """The value is not plain JSON (the message says where and why)."""


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the store cannot keep"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        return f"contains a lone surrogate (\\u{bad:04x}), which UTF-8 cannot encode"
    return None


def check_text(text: str, what: str) -> None:
    """Raise ``NotJSON`` naming ``what`` if ``text`` cannot be stored."""
    problem = text_problem(text)
    if problem is not None:
        raise NotJSON(f"{what}: {problem}")


def check_json(
    value: Any, what: str = "the payload", *, strict: bool = False, max_depth: int | None = None
) -> None:
    """Raise ``NotJSON`` unless ``value`` is plain JSON that comes back as it went in.

    :param what: how the error names the value (``"the payload of 'orders'"``).
    :param strict: also refuse unstorable text and nesting deeper than ``max_depth``
        (``MAX_DEPTH`` when not given).
    """
    limit = (max_depth or MAX_DEPTH) if strict else max_depth
    if not strict:
        try:
            if _plain(value, 0, limit):  # the common case, on publish's hot path: no paths
                return
        except RecursionError:  # deeper than the stack: the walk below says where
            pass
    # Depth first, with the ids of the containers on the current path in ``inside`` (a bare
    # id on the stack marks leaving one): a value that contains itself is refused, not
    # walked for ever.
    stack: list[tuple[Any, str, int] | int] = [(value, "", 0)]
    inside: set[int] = set()
    while stack:
        entry = stack.pop()
        if isinstance(entry, int):
            inside.discard(entry)
            continue
        item, path, depth = entry
        problem = _problem(item, strict)
        if problem is None and isinstance(item, dict | list):
            if limit is not None and depth >= limit:
                problem = f"is nested more than {limit} levels deep"
            elif id(item) in inside:
                problem = "contains itself (JSON cannot hold a cycle)"
            else:
                inside.add(id(item))
                stack.append(id(item))
                stack.extend(_children(item, path, depth, strict, what))
        if problem is not None:
            where = f"{what} at {path}" if path else what
            raise NotJSON(f"{where} {problem}")


def _plain(value: Any, depth: int, limit: int | None) -> bool:
    """Whether ``value`` is plain JSON (exact built-in types only), without building the
    paths an error message needs: anything else goes to the walk that names the problem."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is not dict and kind is not list:
        return False
    if limit is not None and depth >= limit:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            # Scalars inline (a payload is mostly scalars): a call per value cost a third of
            # publish's check. A float goes to the call, for its NaN test.
            inner = type(item)
            if inner is str or inner is int or inner is bool or item is None:
                continue
            if not _plain(item, depth + 1, limit):
                return False
        return True
    for item in value:
        inner = type(item)
        if inner is str or inner is int or inner is bool or item is None:
            continue
        if not _plain(item, depth + 1, limit):
            return False
    return True


def _children(
    item: Any, path: str, depth: int, strict: bool, what: str
) -> list[tuple[Any, str, int]]:
    if isinstance(item, list):
        return [(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item)]
    children = []
    for key, child in item.items():
        if not isinstance(key, str):
            where = f"{what} at {path}" if path else what
            raise NotJSON(
                f"{where}: key {key!r} is a {type(key).__name__}; JSON keys are strings "
                "(it would come back as a string)"
            )
        if strict and (problem := text_problem(key)) is not None:
            where = f"{what} at {path}" if path else what
            raise NotJSON(f"{where}: a key {problem}")
        children.append((child, f"{path}.{key}" if path else key, depth + 1))
    return children


def _problem(item: Any, strict: bool) -> str | None:
    if item is None or isinstance(item, bool | int | dict | list):
        return None
    if isinstance(item, str):
        return text_problem(item) if strict else None
    if isinstance(item, float):
        return None if math.isfinite(item) else f"is {item}, which JSON cannot hold"
    if isinstance(item, Mapping):
        return f"is a {type(item).__name__}; use a dict"
    hint = {"tuple": "; use a list", "set": "; use a sorted list", "datetime": "; use isoformat()"}
    name = type(item).__name__
    return (
        f"is a {name}, which is not JSON (it would come back as something else){hint.get(name, '')}"
    )


def check_event(topic: Any, payload: Any, headers: Mapping[Any, Any] | None, **fields: Any) -> None:
    """The rule every source applies before an event runs or is stored (``EventBus.publish``
    and ``Outbox.add`` share it): a non-empty topic, a payload that is plain JSON
    (``check_json``), headers that map strings to strings, and ``fields`` (``key``,
    ``correlation_id``, ...) that are strings or None. Refused with ``NotJSON``."""
    if not isinstance(topic, str) or not topic:
        raise NotJSON(f"an event needs a non-empty topic, got {topic!r}")
    try:
        plain = _plain(payload, 0, None)
    except RecursionError:  # deeper than the stack: the walk below has no recursion
        plain = False
    if not plain:  # the walk names the problem (or allows a subclass)
        check_json(payload, f"the payload of {topic!r}")
    for name, value in (headers or {}).items():
        if not (isinstance(name, str) and isinstance(value, str)):
            raise NotJSON(
                f"the headers of {topic!r} must map strings to strings; {name!r} is "
                f"{type(value).__name__} {value!r:.40} (use str() if you mean the text)"
            )
    if fields:
        check_fields(topic, **fields)


def check_fields(topic: str, **fields: Any) -> None:
    """Raise ``NotJSON`` unless each of ``fields`` (``key``, ``correlation_id``, ...) is a
    string or None."""
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise NotJSON(f"{name} of {topic!r} must be a string or None, got {value!r:.40}")


def loads(text: str, what: str) -> Any:
    """Parse operator-given JSON text strictly: no NaN or Infinity, no number too large for
    a float, no unstorable text, no nesting deeper than ``MAX_DEPTH``."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise NotJSON(f"{what}: not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise NotJSON(f"{what}: is nested more than {MAX_DEPTH} levels deep") from None
    except _NotFinite as exc:
        raise NotJSON(f"{what}: {exc}") from None
    check_json(value, what, strict=True)
    return value


class _NotFinite(ValueError):
    pass


def _constant(text: str) -> Any:
    raise _NotFinite(f"{text} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(f"the number {text[:40]} is too large")
    return number
