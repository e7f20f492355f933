"""Masking of sensitive fields."""

from __future__ import annotations

from typing import Any

from redrive.redact import MASK, Redactor


def test_masks_by_name_path_and_wildcard() -> None:
    """Bare names match at any depth, dotted paths exactly, * one segment."""
    redactor = Redactor(["password", "card.number", "*.secret"])
    payload: dict[str, Any] = {
        "user": {"Password": "p", "secret": "s", "name": "ana"},
        "card": {"number": "4111", "brand": "visa"},
        "items": [{"password": "x"}],
        "secret": "top-level stays",
    }
    assert redactor.payload(payload) == {
        "user": {"Password": MASK, "secret": MASK, "name": "ana"},
        "card": {"number": MASK, "brand": "visa"},
        "items": [{"password": MASK}],
        "secret": "top-level stays",
    }
    assert payload["user"]["Password"] == "p"  # the original is untouched


def test_headers_and_records() -> None:
    """Headers and a record's JSON shape are masked; no patterns means no change."""
    redactor = Redactor(["authorization"])
    record = {"payload": {"a": 1}, "headers": {"Authorization": "Bearer x", "trace": "t"}}
    assert redactor.record(record)["headers"] == {"Authorization": MASK, "trace": "t"}
    assert Redactor().record(record) is record
