"""The stored JSON text: ``redrive._json.dumps`` (a C encoder built once) writes what the
standard library's encoder with the same options writes, and refuses what it refuses;
``parse`` (the C scanner called directly) reads what ``json.loads`` reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from redrive._json import _plain, dumps, parse

_STDLIB = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
).encode

VALUES: list[Any] = [
    {"order_id": 7, "sku": "SKU-1", "price": 19.99, "gift": False, "coupon": None},
    [{"kind": "attempt", "at": "2026-12-02T06:00:00.000000Z", "duration": 0.000123}],
    {"nested": {"list": [1, 2.5, "three", None, True, {"deep": []}]}, "é": "ü €"},
    "just text",
    'quotes " and \\ and \n newlines',
    42,
    1e300,
    None,
    {},
    [],
    {"when": __import__("datetime").date(2026, 12, 2)},  # default=str
]


class TestDumps:
    @pytest.mark.parametrize("value", VALUES)
    def test_same_text_as_the_stdlib_encoder(self, value: Any) -> None:
        """Byte for byte what json.JSONEncoder with redrive's options writes."""
        assert dumps(value) == _STDLIB(value)

    @pytest.mark.parametrize("bad", [float("nan"), {"x": float("inf")}, [float("-inf")]])
    def test_refuses_nan_and_infinity(self, bad: Any) -> None:
        """NaN and infinities are not JSON: ValueError, as before."""
        with pytest.raises(ValueError, match="not JSON compliant"):
            dumps(bad)

    def test_refuses_a_lone_surrogate(self) -> None:
        """No store keeps a lone surrogate: UnicodeEncodeError."""
        with pytest.raises(UnicodeEncodeError):
            dumps({"name": "bad \udcff"})

    def test_a_cycle_is_an_error_not_a_hang(self) -> None:
        """Without the circular check a cycle still ends, in RecursionError."""
        cycle: list[Any] = []
        cycle.append(cycle)
        with pytest.raises(RecursionError):
            dumps(cycle)


class TestPlain:
    @pytest.mark.parametrize(
        ("value", "plain"),
        [
            ({"a": "x", "b": 1, "c": True, "d": None}, True),
            ({"a": 1.5}, True),
            ({"a": float("nan")}, False),
            ({1: "x"}, False),
            ({"a": (1, 2)}, False),
            ({"a": [1, {"b": None}]}, True),
            ({"a": [1, {"b": float("inf")}]}, False),
            ([1, "x", None, False], True),
            ([1, {2: 3}], False),
        ],
    )
    def test_the_fast_check(self, value: Any, plain: bool) -> None:
        """Scalars, nesting, floats (NaN refused), keys and tuples, as the rule says."""
        assert _plain(value, 0, None) is plain


PARSE_CASES = [
    b'{"order_id": 5, "amount": 12.5}',
    '{"text": "zażółć"}',
    b' {"a": 1}',  # whitespace around the value: json.loads takes it
    b'{"a": 1}\n',
    b"\xef\xbb\xbf[1]",  # a UTF-8 BOM in bytes: json.loads takes it
    "\ufeff[1]",  # ... but not in text
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-16-le"),
    "[1]".encode("utf-32"),
    bytearray(b"[1, 2]"),
    b"NaN",
    b"[1e400]",
    b'"\\ud800"',
    b"1,2",
    b'{"a": 1}{',
    b"",
    b"-",
    b'"\xff"',
    b'"a\x00"',
    memoryview(b"[1]"),
    None,
]


def _case_id(data: Any) -> str:
    return "memoryview" if isinstance(data, memoryview) else repr(data)[:24]


@pytest.mark.parametrize("data", PARSE_CASES, ids=_case_id)
def test_parse_gives_what_json_loads_gives(data: Any) -> None:
    """The fast path gives json.loads's value, or its error type and message, for every
    input: UTF-8 with or without whitespace, BOMs, other encodings, bad JSON, bad types."""

    def outcome(loads: Callable[[Any], Any]) -> tuple[str, str]:
        try:
            return "value", repr(loads(data))
        except Exception as exc:
            return type(exc).__name__, str(exc)

    assert outcome(parse) == outcome(json.loads)
