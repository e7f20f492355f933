"""The stored JSON text: ``redrive._json.dumps`` (a C encoder built once) writes what the
standard library's encoder with the same options writes, and refuses what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from redrive._json import _plain, dumps

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
