"""The public API: a sorted __all__ whose every name resolves."""

from __future__ import annotations

import redrive


def test_all_is_sorted_and_resolves() -> None:
    """__all__ is sorted, and each name in it can be imported from redrive."""
    assert redrive.__all__ == sorted(redrive.__all__)
    for name in redrive.__all__:
        assert getattr(redrive, name) is not None, name
