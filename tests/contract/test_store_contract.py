"""The Store contract: every backend must pass every test here (see conftest.BACKENDS)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from redrive._ids import new_id
from redrive.models import Attempt, DeadLetter, Status, utcnow
from redrive.stores.base import AuditEntry, Change, Filter, Page, Store
from tests.factories import make_record


def again(record: DeadLetter, **changes: Any) -> DeadLetter:
    """Another failure of the same (event, handler): a new record id, a new attempt."""
    at = record.created_at + timedelta(seconds=5)
    entry = Attempt(kind="attempt", at=at, error_type="KeyError", error_message="again")
    return record.replace(
        id=new_id(),
        error_type="KeyError",
        error_message="again",
        history=(entry,),
        updated_at=at,
        **changes,
    )


class TestRecordingIsIdempotent:
    def test_a_redelivered_failure_joins_the_open_record(self, store: Store) -> None:
        """A second failure of an (event, handler) with an open record is merged into it."""
        first = make_record()
        assert store.add([first]) == [first.id]
        assert store.add([again(first)]) == [first.id]
        assert store.count(Filter()) == 1
        merged = store.get(first.id)
        assert merged is not None
        assert [h.error_message for h in merged.history][-1] == "again"
        assert len(merged.history) == 2
        assert merged.error_type == "KeyError"
        assert store.stats(utcnow()).total(Status.DEAD) == 1

    def test_duplicates_in_one_batch_are_one_record(self, store: Store) -> None:
        """Two failures of one pair written in one batch make one record."""
        first = make_record()
        ids = store.add([first, again(first), make_record()])
        assert ids[0] == ids[1] == first.id
        assert store.count(Filter()) == 2
        merged = store.get(first.id)
        assert merged is not None and len(merged.history) == 2

    def test_a_dead_failure_ends_a_scheduled_record(self, store: Store) -> None:
        """A redelivered failure that is final makes a scheduled record dead."""
        first = make_record(status=Status.SCHEDULED)
        store.add([first])
        store.add(
            [again(first, status=Status.DEAD, dead_at=first.created_at, next_attempt_at=None)]
        )
        merged = store.get(first.id)
        assert merged is not None
        assert merged.status == Status.DEAD
        assert merged.next_attempt_at is None and merged.dead_at is not None
        assert store.stats(utcnow()).total(Status.SCHEDULED) == 0

    def test_a_closed_record_does_not_absorb_a_new_failure(self, store: Store) -> None:
        """Once resolved, a new failure of the same pair is a record of its own."""
        first = make_record(status=Status.RESOLVED)
        store.add([first])
        second = again(first)
        assert store.add([second]) == [second.id]
        assert store.count(Filter()) == 2

    def test_other_handlers_of_the_event_get_their_own_records(self, store: Store) -> None:
        """The pair is (event, handler): another handler's failure is not merged."""
        first = make_record()
        other = again(first, handler="app.other")
        assert store.add([first, other]) == [first.id, other.id]
        assert store.count(Filter()) == 2

    def test_writing_the_same_record_twice_changes_nothing(self, store: Store) -> None:
        """Adding a record whose id is already there (a retried commit) is a no-op."""
        first = make_record()
        store.add([first])
        assert store.add([first]) == [first.id]
        assert store.get(first.id) == first

    def test_an_import_skips_a_pair_that_is_open(self, store: Store) -> None:
        """An imported record whose pair already has an open record is skipped."""
        first = make_record()
        store.add([first])
        assert store.import_records([again(first)]) == 0
        assert store.count(Filter()) == 1


class TestSaveMany:
    def test_each_outcome_is_fenced_on_its_own(self, store: Store) -> None:
        """One ``save_many`` saves the outcomes whose claims still hold and refuses the
        others, in order."""
        now = utcnow()
        store.add([make_record(status=Status.SCHEDULED, next_attempt_at=now) for _ in range(3)])
        claimed = store.claim_due(
            now=now, lease_until=now + timedelta(minutes=1), owner="w/1", limit=3
        )
        outcomes = [
            (r.replace(status=Status.RESOLVED, updated_at=now, lease_owner=None), "w/1")
            for r in claimed
        ]
        outcomes[1] = (outcomes[1][0], "someone-else")
        assert store.save_many(outcomes) == [True, False, True]
        statuses = [store.get(r.id).status for r in claimed]  # type: ignore[union-attr]
        assert statuses == [Status.RESOLVED, Status.RETRYING, Status.RESOLVED]
        assert store.save_many([]) == []

    def test_two_outcomes_of_one_record_apply_in_order(self, store: Store) -> None:
        """The first outcome ends the claim; a second one in the same batch is refused."""
        now = utcnow()
        store.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
        (claimed,) = store.claim_due(
            now=now, lease_until=now + timedelta(minutes=1), owner="w/1", limit=1
        )
        done = claimed.replace(status=Status.RESOLVED, resolved_at=now, lease_owner=None)
        dead = claimed.replace(status=Status.DEAD, dead_at=now, lease_owner=None)
        assert store.save_many([(done, "w/1"), (dead, "w/1")]) == [True, False]
        assert store.get(claimed.id).status == Status.RESOLVED  # type: ignore[union-attr]
        assert store.stats(utcnow()).total(Status.RESOLVED) == 1
        assert store.stats(utcnow()).total(Status.RETRYING) == 0


class TestDeaths:
    def test_a_replay_that_dies_again_is_a_re_death_not_a_new_dead_letter(
        self, store: Store
    ) -> None:
        """Stats count first deaths and re-deaths apart, and the oldest age stays the
        record's first failure when a replay dies again."""
        created = utcnow() - timedelta(minutes=30)
        record = make_record(created_at=created)
        store.add([record])
        now = utcnow()
        replay = Change(
            to=Status.SCHEDULED,
            from_statuses=(Status.DEAD,),
            now=now,
            next_attempt_at=now,
            replay=True,
        )
        store.transition([record.id], replay)
        (claimed,) = store.claim_due(
            now=now, lease_until=now + timedelta(minutes=1), owner="w", limit=1
        )
        died = claimed.replace(status=Status.DEAD, dead_at=now, updated_at=now, lease_owner=None)
        assert store.save(died, lease_owner="w")
        stats = store.stats(utcnow())
        assert stats.new_dead_last_hour == {record.topic: 1}
        assert stats.redead_last_hour == {record.topic: 1}
        assert stats.oldest_dead_at[record.topic] == created
        assert sum(n for _, _, n in store.dead_timeline(created)) == 1


class TestWritesAndReads:
    def test_round_trip_keeps_every_field(self, store: Store) -> None:
        """A record read back equals the record written, field for field."""
        record = make_record(payload={"nested": {"ü": [1, 2.5, None, True]}}, version="1.2.3")
        store.add([record])
        assert store.get(record.id) == record

    def test_unknown_id_is_none(self, store: Store) -> None:
        """Getting an id that does not exist returns None."""
        assert store.get("00000000-0000-7000-8000-000000000000") is None

    def test_find_is_newest_first(self, store: Store) -> None:
        """Listing returns the newest record first."""
        records = [make_record() for _ in range(5)]
        store.add(records)
        page = store.find(Filter(), limit=10)
        assert [r.id for r in page.items] == [r.id for r in reversed(records)]
        assert page.next_cursor is None

    def test_keyset_pages_cover_everything_once(self, store: Store) -> None:
        """Following next_cursor visits every matching record exactly once, in order."""
        records = [make_record() for _ in range(23)]
        store.add(records)
        seen, cursor = [], None
        while True:
            page = store.find(Filter(), limit=5, cursor=cursor)
            seen += [r.id for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [r.id for r in reversed(records)]

    def test_each_filter_selects_its_records(self, store: Store) -> None:
        """Every Filter field narrows the listing to the records it names."""
        target = make_record(
            topic="payments",
            handler="h2",
            error_type="KeyError",
            fingerprint="a" * 16,
            tenant_id="t1",
            correlation_id="c1",
            version="2.0",
        )
        store.add([target, make_record(), make_record(status=Status.RESOLVED)])
        for where in (
            Filter(topic="payments"),
            Filter(handler="h2"),
            Filter(error_type="KeyError"),
            Filter(fingerprint="a" * 16),
            Filter(tenant_id="t1"),
            Filter(correlation_id="c1"),
            Filter(version="2.0"),
            Filter(ids=(target.id,)),
        ):
            assert [r.id for r in store.find(where, limit=10).items] == [target.id], where
            assert store.count(where) == 1

    def test_status_filter_takes_several(self, store: Store) -> None:
        """A filter on statuses matches any of them."""
        store.add([make_record(status=s) for s in Status])
        assert store.count(Filter(statuses=(Status.DEAD, Status.RESOLVED))) == 2
        assert store.count(Filter()) == len(Status)

    def test_time_ranges(self, store: Store) -> None:
        """created_after/before and dead_after/before bound the listing."""
        old = make_record(created_at=utcnow() - timedelta(days=3))
        new = make_record()
        store.add([old, new])
        day_ago = utcnow() - timedelta(days=1)
        assert [r.id for r in store.find(Filter(created_after=day_ago), limit=5).items] == [new.id]
        assert [r.id for r in store.find(Filter(created_before=day_ago), limit=5).items] == [old.id]
        assert [r.id for r in store.find(Filter(dead_before=day_ago), limit=5).items] == [old.id]
        assert store.count(Filter(dead_after=day_ago)) == 1

    def test_search_looks_in_message_and_payload(self, store: Store) -> None:
        """Text search matches the error message or the payload, case-insensitively."""
        by_message = make_record(error_message="Connection refused by inventory")
        by_payload = make_record(payload={"sku": "INVENTORY-42"})
        store.add([by_message, by_payload, make_record()])
        found = {r.id for r in store.find(Filter(search="inventory"), limit=10).items}
        assert found == {by_message.id, by_payload.id}

    def test_search_can_leave_payloads_out(self, store: Store) -> None:
        """With search_payload off, only error messages are searched."""
        by_message = make_record(error_message="inventory down")
        store.add([by_message, make_record(payload={"sku": "INVENTORY-42"})])
        where = Filter(search="inventory", search_payload=False)
        assert [r.id for r in store.find(where, limit=10).items] == [by_message.id]

    def test_search_treats_wildcards_literally(self, store: Store) -> None:
        """A % or _ in the search text matches only itself."""
        store.add([make_record(error_message="100% full"), make_record(error_message="1000 full")])
        store.add([make_record(error_message="code a_b"), make_record(error_message="code axb")])
        assert store.count(Filter(search="100%")) == 1
        assert store.count(Filter(search="a_b")) == 1

    def test_limit_zero_is_an_empty_page(self, store: Store) -> None:
        """A page of zero records is empty and has no cursor."""
        store.add([make_record()])
        assert store.find(Filter(), limit=0) == Page([], None)

    def test_ids_ascend_in_batches(self, store: Store) -> None:
        """ids() returns matching ids in ascending order after a given id."""
        records = [make_record() for _ in range(7)]
        store.add(records)
        first = store.ids(Filter(), limit=4)
        rest = store.ids(Filter(), limit=4, after=first[-1])
        assert first + rest == [r.id for r in records]

    def test_max_id_bounds_a_selection(self, store: Store) -> None:
        """Filter.max_id leaves out records newer than the snapshot."""
        before = make_record()
        store.add([before])
        store.add([make_record()])
        assert store.ids(Filter(max_id=before.id), limit=10) == [before.id]


class TestStatsAndGroups:
    def test_stats_count_by_topic_and_status(self, store: Store) -> None:
        """Counts follow inserts, transitions and deletes."""
        a, b, c = make_record(), make_record(), make_record(topic="t2", status=Status.SCHEDULED)
        store.add([a, b, c])
        now = utcnow()
        store.transition([a.id], Change(to=Status.RESOLVED, from_statuses=(Status.DEAD,), now=now))
        store.delete([c.id])
        stats = store.stats(utcnow())
        assert stats.counts["orders.created"] == {Status.DEAD: 1, Status.RESOLVED: 1}
        assert stats.total(Status.SCHEDULED) == 0
        assert store.count(Filter(statuses=(Status.DEAD,))) == 1

    def test_stats_oldest_dead_and_new_dead(self, store: Store) -> None:
        """Stats give the oldest dead letter per topic and those dead in the last hour."""
        old = make_record(created_at=utcnow() - timedelta(hours=5))
        store.add([old, make_record(), make_record(topic="t2", status=Status.RESOLVED)])
        stats = store.stats(utcnow())
        assert stats.oldest_dead_at == {"orders.created": old.dead_at}
        assert stats.new_dead_last_hour == {"orders.created": 1}
        assert stats.new_dead_last_day == {"orders.created": 2}

    def test_groups_biggest_first(self, store: Store) -> None:
        """Groups count records per fingerprint, biggest first, with a sample message."""
        store.add([make_record(fingerprint="a" * 16, error_message="boom") for _ in range(3)])
        store.add([make_record(fingerprint="b" * 16)])
        groups = store.groups(Filter(statuses=(Status.DEAD,)), limit=10)
        assert [(g.fingerprint, g.count) for g in groups] == [("a" * 16, 3), ("b" * 16, 1)]
        assert groups[0].sample_message == "boom"
        assert groups[0].first_seen <= groups[0].last_seen

    def test_prune_timeline_drops_old_minutes(self, store: Store) -> None:
        """Pruning the timeline drops minutes before the bound and keeps the rest."""
        store.add([make_record(created_at=utcnow() - timedelta(days=10)), make_record()])
        assert store.prune_timeline(utcnow() - timedelta(days=8)) == 1
        rows = store.dead_timeline(utcnow() - timedelta(days=30))
        assert [n for _, _, n in rows] == [1]
        assert rows[0][0] > utcnow() - timedelta(minutes=5)

    def test_groups_follow_changes(self, store: Store) -> None:
        """Group counts follow transitions and deletes, and a topic filter narrows them."""
        records = [make_record(fingerprint="a" * 16) for _ in range(4)]
        store.add([*records, make_record(fingerprint="c" * 16, topic="t2")])
        change = Change(to=Status.RESOLVED, from_statuses=(Status.DEAD,), now=utcnow())
        store.transition([records[0].id], change)
        store.delete([records[1].id])
        dead = store.groups(Filter(statuses=(Status.DEAD,)), limit=10)
        assert [(g.fingerprint, g.count) for g in dead] == [("a" * 16, 2), ("c" * 16, 1)]
        resolved = store.groups(Filter(statuses=(Status.RESOLVED,)), limit=10)
        assert [(g.fingerprint, g.count) for g in resolved] == [("a" * 16, 1)]
        by_topic = store.groups(Filter(statuses=(Status.DEAD,), topic="t2"), limit=10)
        assert [g.fingerprint for g in by_topic] == ["c" * 16]
        narrowed = store.groups(
            Filter(statuses=(Status.DEAD,), handler="app.send_receipt"), limit=10
        )
        assert [(g.fingerprint, g.count) for g in narrowed] == [("a" * 16, 2), ("c" * 16, 1)]

    def test_dead_timeline_counts_per_minute(self, store: Store) -> None:
        """The timeline counts records that became dead, per topic."""
        store.add([make_record(), make_record(), make_record(topic="t2")])
        rows = store.dead_timeline(utcnow() - timedelta(minutes=5))
        totals: dict[str, int] = {}
        for _, topic, n in rows:
            totals[topic] = totals.get(topic, 0) + n
        assert totals == {"orders.created": 2, "t2": 1}


class TestMaintainedTallies:
    """``stats()``, ``groups()`` and the timeline answer from maintained values; after
    every kind of change they agree with the records themselves."""

    @staticmethod
    def assert_agree(store: Store, deaths: int) -> None:
        rows = store.find(Filter(), limit=10_000).items
        expected: dict[tuple[str, Status], int] = {}
        groups: dict[tuple[Status, str], int] = {}
        for r in rows:
            expected[(r.topic, r.status)] = expected.get((r.topic, r.status), 0) + 1
            groups[(r.status, r.fingerprint)] = groups.get((r.status, r.fingerprint), 0) + 1
        counts = store.stats(utcnow()).counts
        assert {(t, s): n for t, by in counts.items() for s, n in by.items() if n} == expected
        for status in Status:
            summed: dict[str, int] = {}
            for g in store.groups(Filter(statuses=(status,)), limit=1000):
                summed[g.fingerprint] = summed.get(g.fingerprint, 0) + g.count
            wanted = {fp: n for (s, fp), n in groups.items() if s == status}
            assert summed == wanted, status
        timeline = store.dead_timeline(utcnow() - timedelta(hours=1))
        assert sum(n for _, _, n in timeline) == deaths

    def test_every_change_keeps_them_exact(self, store: Store) -> None:
        now = utcnow()
        dead = [make_record(fingerprint=f"{i % 2}" * 16) for i in range(4)]
        due = [
            make_record(status=Status.SCHEDULED, next_attempt_at=now, fingerprint="s" * 16)
            for _ in range(3)
        ]
        store.add([*dead, *due, again(dead[0]), make_record(topic="t2")])
        self.assert_agree(store, deaths=5)
        # A redelivered final failure ends a scheduled record under a new fingerprint.
        store.add([again(due[2], status=Status.DEAD, dead_at=now, fingerprint="m" * 16)])
        self.assert_agree(store, deaths=6)
        claimed = store.claim_due(
            now=now, lease_until=now + timedelta(minutes=1), owner="w", limit=2
        )
        assert len(claimed) == 2
        self.assert_agree(store, deaths=6)
        store.save_many(
            [
                (claimed[0].replace(status=Status.RESOLVED, resolved_at=now), "w"),
                (
                    claimed[1].replace(
                        status=Status.DEAD, dead_at=now, fingerprint="n" * 16, next_attempt_at=None
                    ),
                    "w",
                ),
            ]
        )
        self.assert_agree(store, deaths=7)
        change = Change(to=Status.DISCARDED, from_statuses=(Status.DEAD,), now=now)
        store.transition([dead[1].id, dead[2].id], change)
        self.assert_agree(store, deaths=7)
        store.delete([dead[3].id, dead[1].id])
        self.assert_agree(store, deaths=7)
        assert store.import_records([dead[3], make_record(status=Status.RESOLVED)]) == 2
        self.assert_agree(store, deaths=7)


class TestTransitions:
    def test_compare_and_set_on_old_status(self, store: Store) -> None:
        """A change applies only to records in one of its from-statuses."""
        dead, resolved = make_record(), make_record(status=Status.RESOLVED)
        store.add([dead, resolved])
        change = Change(to=Status.DISCARDED, from_statuses=(Status.DEAD,), now=utcnow())
        assert store.transition([dead.id, resolved.id], change) == [dead.id]
        assert store.transition([dead.id], change) == []
        assert store.get(resolved.id).status == Status.RESOLVED  # type: ignore[union-attr]

    def test_replay_counts_and_records_history(self, store: Store) -> None:
        """A replay schedules the record, bumps replays, resets attempts, notes history."""
        record = make_record(attempts=3)
        store.add([record])
        now = utcnow()
        entry = Attempt(kind="replay", at=now, detail={"actor": "ops"})
        change = Change(
            to=Status.SCHEDULED,
            from_statuses=(Status.DEAD,),
            now=now,
            next_attempt_at=now,
            entry=entry,
            replay=True,
        )
        store.transition([record.id], change)
        after = store.get(record.id)
        assert after is not None
        assert (after.status, after.replays, after.attempts) == (Status.SCHEDULED, 1, 0)
        assert after.history[-1].kind == "replay"
        assert after.history[-1].detail == {"actor": "ops"}
        assert after.next_attempt_at == now

    def test_payload_patch_keeps_the_rest(self, store: Store) -> None:
        """A change with a new payload replaces it only for records that changed."""
        record, other = make_record(), make_record(status=Status.RESOLVED)
        store.add([record, other])
        change = Change(
            to=Status.SCHEDULED,
            from_statuses=(Status.DEAD,),
            now=utcnow(),
            payloads={record.id: {"fixed": True}, other.id: {"fixed": True}},
        )
        store.transition([record.id, other.id], change)
        assert store.get(record.id).payload == {"fixed": True}  # type: ignore[union-attr]
        assert store.get(other.id).payload == other.payload  # type: ignore[union-attr]

    def test_resolve_sets_resolved_at(self, store: Store) -> None:
        """Resolving stamps resolved_at."""
        record = make_record()
        store.add([record])
        now = utcnow()
        store.transition(
            [record.id], Change(to=Status.RESOLVED, from_statuses=(Status.DEAD,), now=now)
        )
        assert store.get(record.id).resolved_at == now  # type: ignore[union-attr]

    def test_delete_only_what_still_matches(self, store: Store) -> None:
        """delete(ids, where=...) leaves the records that no longer match."""
        dead, replayed = make_record(), make_record(status=Status.SCHEDULED)
        store.add([dead, replayed])
        where = Filter(statuses=(Status.DEAD,))
        assert store.delete([dead.id, replayed.id], where=where) == 1
        assert store.get(replayed.id) is not None and store.get(dead.id) is None

    def test_import_is_not_a_new_death(self, store: Store) -> None:
        """Restoring dead letters leaves the timeline of new dead letters as it was."""
        records = [make_record() for _ in range(3)]
        store.add(records)
        before = store.stats(utcnow()).new_dead_last_hour
        store.delete([r.id for r in records])
        assert store.import_records([*records, make_record(status=Status.RESOLVED)]) == 4
        assert store.stats(utcnow()).new_dead_last_hour == before == {"orders.created": 3}

    def test_delete_and_import(self, store: Store) -> None:
        """Delete removes records; import restores them and skips ids already present."""
        a, b = make_record(), make_record()
        store.add([a, b])
        assert store.delete([a.id, "missing"]) == 1
        assert store.import_records([a, b]) == 1
        assert store.get(a.id) == a
        assert store.stats(utcnow()).counts["orders.created"][Status.DEAD] == 2


def test_a_closed_store_says_so(store: Store) -> None:
    """Using a store after close() raises StoreError, not a driver error."""
    from redrive.exceptions import StoreError

    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("00000000-0000-7000-8000-000000000000")


class TestClaims:
    def test_claims_only_due_records_for_known_handlers(self, store: Store) -> None:
        """A claim takes due scheduled records of the named handlers, under a lease."""
        now = utcnow()
        due = make_record(status=Status.SCHEDULED, next_attempt_at=now - timedelta(seconds=1))
        later = make_record(status=Status.SCHEDULED, next_attempt_at=now + timedelta(minutes=1))
        other = make_record(status=Status.SCHEDULED, handler="other", next_attempt_at=now)
        store.add([due, later, other, make_record()])
        claimed = store.claim_due(
            now=now,
            lease_until=now + timedelta(minutes=5),
            owner="w1",
            limit=10,
            handlers=[("orders.created", "app.send_receipt")],
        )
        assert [r.id for r in claimed] == [due.id]
        assert claimed[0].status == Status.RETRYING
        assert claimed[0].lease_owner == "w1"
        assert store.next_due_at([("orders.created", "app.send_receipt")]) == later.next_attempt_at

    def test_expired_lease_is_claimed_again(self, store: Store) -> None:
        """A record whose lease expired (its worker died) is claimable again."""
        now = utcnow()
        store.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
        first = store.claim_due(
            now=now, lease_until=now + timedelta(seconds=30), owner="dead", limit=5
        )
        assert store.claim_due(now=now, lease_until=now, owner="w2", limit=5) == []
        later = now + timedelta(seconds=31)
        again = store.claim_due(
            now=later, lease_until=later + timedelta(seconds=30), owner="w2", limit=5
        )
        assert [r.id for r in again] == [r.id for r in first]
        assert again[0].lease_owner == "w2"

    def test_expired_leases_come_first_and_share_the_limit(self, store: Store) -> None:
        """A claim takes records whose lease expired before scheduled ones, and the limit
        counts both: two expired and a limit of three leave room for the earliest due."""
        now = utcnow()
        early, mid, late = (
            make_record(status=Status.SCHEDULED, next_attempt_at=now - timedelta(seconds=s))
            for s in (30, 20, 10)
        )
        store.add([early, mid, late])
        lapsed = store.claim_due(now=now, lease_until=now, owner="dead", limit=2)
        assert {r.id for r in lapsed} == {early.id, mid.id}
        due = [
            make_record(status=Status.SCHEDULED, next_attempt_at=now - timedelta(seconds=s))
            for s in (5, 1)
        ]
        store.add(due)
        later = now + timedelta(seconds=1)
        claimed = store.claim_due(
            now=later, lease_until=later + timedelta(minutes=1), owner="w2", limit=3
        )
        assert {r.id for r in claimed} == {early.id, mid.id, late.id}
        again = store.claim_due(
            now=later, lease_until=later + timedelta(minutes=1), owner="w3", limit=3
        )
        assert [r.id for r in again] == [due[0].id, due[1].id]
        assert store.claim_due(now=later, lease_until=later, owner="w4", limit=3) == []

    def test_save_needs_the_lease(self, store: Store) -> None:
        """Only the current lease owner can save the outcome of a retry."""
        now = utcnow()
        store.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
        (claimed,) = store.claim_due(
            now=now, lease_until=now + timedelta(seconds=30), owner="w1", limit=1
        )
        resolved = claimed.replace(status=Status.RESOLVED, resolved_at=now, lease_owner=None)
        assert store.save(resolved, lease_owner="w2") is False
        assert store.save(resolved, lease_owner="w1") is True
        assert store.get(claimed.id).status == Status.RESOLVED  # type: ignore[union-attr]
        assert store.save(resolved, lease_owner="w1") is False

    def test_extend_leases_only_for_the_owner(self, store: Store) -> None:
        """A heartbeat moves the leases its owner holds, and no others."""
        now = utcnow()
        store.add([make_record(status=Status.SCHEDULED, next_attempt_at=now) for _ in range(2)])
        mine = store.claim_due(
            now=now, lease_until=now + timedelta(seconds=30), owner="w1", limit=1
        )
        later = now + timedelta(minutes=10)
        ids = [mine[0].id, "00000000-0000-7000-8000-000000000000"]
        assert store.extend_leases(ids, owner="w2", until=later) == 0
        assert store.extend_leases(ids, owner="w1", until=later) == 1
        lease = store.get(mine[0].id).lease_expires_at  # type: ignore[union-attr]
        assert lease is not None
        assert later <= lease < later + timedelta(seconds=30)  # plus any wait for a lock
        assert store.extend_leases([], owner="w1", until=later) == 0

    def test_a_claim_never_takes_what_its_claimer_still_runs(self, store: Store) -> None:
        """Ids in ``exclude`` are not claimed, even once their lease has expired."""
        now = utcnow()
        record = make_record(status=Status.SCHEDULED, next_attempt_at=now)
        store.add([record])
        (first,) = store.claim_due(now=now, lease_until=now, owner="w1/1", limit=5)
        later = now + timedelta(seconds=5)
        assert (
            store.claim_due(now=later, lease_until=later, owner="w1/2", limit=5, exclude=[first.id])
            == []
        )
        (again,) = store.claim_due(now=later, lease_until=later, owner="w1/3", limit=5)
        assert again.id == first.id and again.attempts == first.attempts + 1

    def test_a_stale_claim_cannot_overwrite_a_newer_one(self, store: Store) -> None:
        """Each claim's token fences its save: a run whose lease lapsed and was claimed
        again (even by the same worker) has its outcome refused; the newer claim's wins."""
        now = utcnow()
        store.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
        (stale,) = store.claim_due(now=now, lease_until=now, owner="w1/1", limit=1)
        later = now + timedelta(seconds=1)
        (fresh,) = store.claim_due(
            now=later, lease_until=later + timedelta(minutes=1), owner="w1/2", limit=1
        )
        assert stale.lease_owner == "w1/1" and fresh.lease_owner == "w1/2"
        done = fresh.replace(status=Status.RESOLVED, updated_at=later, lease_owner=None)
        assert (
            store.save(stale.replace(status=Status.DEAD, lease_owner=None), lease_owner="w1/1")
            is False
        )
        assert store.save(done, lease_owner="w1/2") is True
        assert store.get(fresh.id).status == Status.RESOLVED  # type: ignore[union-attr]
        assert store.extend_leases([fresh.id], owner="w1/1", until=later) == 0

    def test_concurrent_claims_never_share_a_record(self, store: Store) -> None:
        """Claimers racing in threads each get disjoint records, and all get claimed."""
        now = utcnow()
        records = [make_record(status=Status.SCHEDULED, next_attempt_at=now) for _ in range(200)]
        store.add(records)
        claimed: list[list[str]] = [[] for _ in range(4)]
        start = threading.Barrier(4)

        def claim(slot: int) -> None:
            start.wait()
            while batch := store.claim_due(
                now=now, lease_until=now + timedelta(minutes=1), owner=f"w{slot}", limit=7
            ):
                claimed[slot] += [r.id for r in batch]

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        every = [i for ids in claimed for i in ids]
        assert sorted(every) == sorted(r.id for r in records)


class TestAuditAndMeta:
    def test_audit_newest_first_with_cursor(self, store: Store) -> None:
        """Audit entries list newest first and page by id."""
        from redrive._ids import new_id

        entries = [
            AuditEntry(
                id=new_id(), at=utcnow(), actor="ana", action="retry", count=i, detail={"i": i}
            )
            for i in range(3)
        ]
        for entry in entries:
            store.add_audit(entry)
        assert store.list_audit(limit=2) == [entries[2], entries[1]]
        assert store.list_audit(limit=2, cursor=entries[1].id) == [entries[0]]

    def test_meta_compare_and_set(self, store: Store) -> None:
        """meta_put with a version writes only over that version (0: only if absent)."""
        assert store.meta_put("locks", "monitor", {"owner": "a"}, version=0) is True
        assert store.meta_put("locks", "monitor", {"owner": "b"}, version=0) is False
        value, version = store.meta_get("locks", "monitor")  # type: ignore[misc]
        assert (value, version) == ({"owner": "a"}, 1)
        assert store.meta_put("locks", "monitor", {"owner": "b"}, version=1) is True
        assert store.meta_list("locks") == {"monitor": {"owner": "b"}}
        assert store.meta_delete("locks", "monitor") is True
        assert store.meta_get("locks", "monitor") is None


def test_a_payload_that_is_not_json_is_a_store_error(store: Store) -> None:
    """NaN or a tuple key cannot be stored: StoreError naming the record, nothing written."""
    from redrive.exceptions import StoreError

    for payload in ({"v": float("nan")}, {(1, 2): "x"}):
        bad = make_record(payload=payload)
        with pytest.raises(StoreError, match=bad.id):
            store.add([bad, make_record()])
    assert store.count(Filter()) == 0
