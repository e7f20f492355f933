"""Bulk changes check the whole request before changing anything, and audit what they did
change even when a later batch fails."""

from __future__ import annotations

import pytest

from redrive.exceptions import InvalidInput
from redrive.models import Status
from redrive.service import DeadLetterQueue
from redrive.stores.base import Filter, Store
from tests.api.conftest import Api, problem
from tests.factories import make_record


def _seed(store: Store, count: int) -> list[str]:
    records = [make_record() for _ in range(count)]
    store.add(records)
    return [record.id for record in records]


@pytest.mark.parametrize("action", ["retry", "resolve", "discard", "delete", "replay"])
def test_an_invalid_last_id_changes_nothing(sqlite_store: Store, action: str) -> None:
    """1,001 ids whose last one no store can look up: refused, no record changed, no audit."""
    ids = _seed(sqlite_store, 1000)
    dlq = DeadLetterQueue(sqlite_store)
    with pytest.raises(InvalidInput, match="lone surrogate"):
        getattr(dlq, action)([*ids, "\ud800"])
    assert dlq.count(status=Status.DEAD) == 1000
    assert dlq.audit() == []


def test_a_batch_that_fails_later_is_audited(sqlite_store: Store) -> None:
    """Interrupted after its first batch, a bulk resolve leaves an audit entry that counts
    the 1,000 records it did change and says it stopped."""
    ids = _seed(sqlite_store, 1500)
    dlq = DeadLetterQueue(sqlite_store)

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dlq.resolve(ids, progress=interrupt)
    [entry] = dlq.audit()
    assert entry.action == "resolve"
    assert entry.count == 1000 == dlq.count(status=Status.RESOLVED)
    assert entry.detail["stopped"] == "interrupted"


def test_a_replay_that_fails_later_is_audited(sqlite_store: Store) -> None:
    """A replay by filter stopped after its first wave is audited with what it scheduled."""
    _seed(sqlite_store, 1500)
    dlq = DeadLetterQueue(sqlite_store)

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dlq.replay(where=Filter(topic="orders.created"), progress=interrupt)
    [entry] = dlq.audit()
    assert entry.count == 1000 == dlq.count(status=Status.SCHEDULED)
    assert entry.detail["stopped"] == "interrupted"


def test_api_bulk_with_an_invalid_last_id_changes_nothing(api: Api) -> None:
    """Over the API too: 422 naming the id, nothing replayed, nothing audited."""
    ids = [record.id for record in api.add(49)]
    for path in ("retry", "resolve", "discard"):
        body = problem(
            api.operator.post(f"/api/v1/dead-letters/{path}", json={"ids": [*ids, "a\x00"]}),
            422,
        )
        assert "ids[49]" in body["detail"]
    assert api.service.count(status=Status.DEAD) == 49
    changes = [e for e in api.service.audit() if e.action in ("retry", "resolve", "discard")]
    assert changes == []
