"""Paced bulk replays: out-of-range rates are refused before any record changes."""

from __future__ import annotations

import itertools

import pytest

from redrive.models import Status
from redrive.ops.api import bulk
from tests.api.conftest import Api, due_times, problem


@pytest.mark.parametrize("rate", [1e-12, 1e-300, 0.0009, 2e6])
def test_out_of_range_rate_is_422_and_changes_nothing(api: Api, rate: float) -> None:
    """A rate outside 0.001..1e6 per second is a 422 and every record stays dead."""
    records = api.add(3)
    request = {"ids": [r.id for r in records], "rate": rate}
    body = problem(api.operator.post("/api/v1/dead-letters/retry", json=request), 422)
    assert body["detail"].startswith("rate:")
    assert [api.service.get(r.id).status for r in records] == [Status.DEAD] * 3
    actions = {entry["action"] for entry in api.viewer.get("/api/v1/audit").json()["items"]}
    assert actions == {"token.create"}


def test_pacing_beyond_the_limit_is_422_and_changes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay whose last slice would be due past the limit (an hour here) is refused."""
    monkeypatch.setattr(bulk, "MAX_PACED_SECONDS", 3600.0)
    records = api.add(3)
    request = {"filter": {"topic": "orders.created"}, "rate": 0.001, "delay_seconds": 1700}
    body = problem(api.operator.post("/api/v1/dead-letters/retry", json=request), 422)
    assert "higher rate" in body["detail"]
    assert [api.service.get(r.id).status for r in records] == [Status.DEAD] * 3


def test_slowest_rate_within_a_year_is_paced(api: Api) -> None:
    """At the lowest rate, three records are scheduled 1000 seconds apart."""
    records = api.add(3)
    request = {"ids": [r.id for r in records], "rate": 0.001}
    body = api.operator.post("/api/v1/dead-letters/retry", json=request).json()
    assert body["changed"] == 3
    due = due_times(api, records)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(due)]
    assert [round(gap) for gap in gaps] == [1000, 1000]
