"""PostgresStore beyond the contract: URLs, schemas, migrations, NOTIFY, lost connections."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from redrive import EventBus, RetryPolicy
from redrive.bootstrap import open_store
from redrive.exceptions import ConfigError, StoreError, StoreUnavailable
from redrive.models import Attempt, Event, Status, utcnow
from redrive.service import DeadLetterQueue
from redrive.stores.base import Filter
from redrive.stores.postgres import PostgresStore
from redrive.stores.postgres.schema import latest_version
from tests.factories import make_record
from tests.helpers import free_port, wait_for
from tests.pg_proxy import CuttingProxy
from tests.pg_server import PgServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PostgresStore]:
    """A migrated store in the default schema of a fresh database."""
    store = PostgresStore(postgres_url)
    yield store
    store.close()


class TestOpening:
    def test_open_store_picks_postgres_and_masks_the_password(self, postgres_url: str) -> None:
        """open_store returns a PostgresStore whose url hides the password."""
        url = postgres_url.replace("postgres@", "postgres:s3cret@")
        store = open_store(url)
        try:
            assert isinstance(store, PostgresStore)
            assert "s3cret" not in store.url
            assert "***" in store.url
        finally:
            store.close()

    def test_schema_from_the_url_holds_the_tables(self, postgres_url: str) -> None:
        """?schema=NAME puts every table in that schema, even an unusual name."""
        store = PostgresStore(postgres_url + "?schema=My%20DLQ")
        try:
            store.add([make_record()])
            with psycopg.connect(postgres_url) as conn:
                row = conn.execute('SELECT count(*) FROM "My DLQ".redrive_dead_letters').fetchone()
            assert row == (1,)
        finally:
            store.close()

    @pytest.mark.parametrize("trgm_in", ["public", "first"])
    def test_two_schemas_share_one_database(self, postgres_url: str, trgm_in: str) -> None:
        """A second redrive schema migrates in a database whose pg_trgm lives in another
        schema (where releases before 0.2 created it: the first redrive schema)."""
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {trgm_in}")
            conn.execute(f"CREATE EXTENSION pg_trgm SCHEMA {trgm_in}")
        stores = [PostgresStore(postgres_url + f"?schema={name}") for name in ("first", "second")]
        try:
            for store in stores:
                store.add([make_record(error_message=f"in {store.schema}")])
                (found,) = store.find(Filter(search=f"in {store.schema}"), limit=5).items
                assert found.error_message == f"in {store.schema}"
        finally:
            for store in stores:
                store.close()

    def test_a_schema_name_that_cannot_name_a_channel_is_refused(self, postgres_url: str) -> None:
        """Non-ASCII or over-long schema names are a ConfigError when the store opens."""
        from redrive import ConfigError

        for name in ("ü" * 30, "x" * 60):
            with pytest.raises(ConfigError, match="schema name"):
                PostgresStore(postgres_url, schema=name)

    def test_migrate_false_creates_nothing(self, postgres_url: str) -> None:
        """With migrate=False the database is left untouched until migrate() is called."""
        store = PostgresStore(postgres_url, migrate=False)
        try:
            with psycopg.connect(postgres_url) as conn:
                assert conn.execute("SELECT to_regnamespace('redrive')").fetchone() == (None,)
            assert store.migrate() == latest_version()
        finally:
            store.close()

    def test_migrate_twice_is_a_no_op(self, pg: PostgresStore) -> None:
        """Running the migrations again keeps the version and the data."""
        pg.add([make_record()])
        assert pg.migrate() == latest_version()
        assert pg.count(Filter()) == 1

    def test_bad_option_is_a_one_line_config_error(self, postgres_url: str) -> None:
        """A malformed URL option is reported by name, with no traceback text."""
        with pytest.raises(ConfigError, match="retry_timeout: expected a number") as info:
            PostgresStore(postgres_url + "?retry_timeout=soon")
        assert "\n" not in str(info.value)

    def test_wrong_database_is_refused_at_once_without_the_password(
        self, postgres_url: str
    ) -> None:
        """An unknown database is a StoreError naming the masked URL, not an outage to wait
        out: with the default 30 s retry window it is raised at the first refusal (a
        StoreUnavailable would mean the window ran out)."""
        url = postgres_url.replace("postgres@", "postgres:s3cret@") + "_missing"
        with pytest.raises(StoreError) as info:
            PostgresStore(url)
        assert not isinstance(info.value, StoreUnavailable)
        assert "s3cret" not in str(info.value)
        assert "does not exist" in str(info.value)
        assert "postgres:***@" in str(info.value)

    def test_unknown_role_is_refused_at_once(self, postgres_url: str) -> None:
        """A role the server does not know is refused for good too."""
        url = postgres_url.replace("postgres@", "nobody_here@")
        with pytest.raises(StoreError, match='role "nobody_here" does not exist') as info:
            PostgresStore(url)
        assert not isinstance(info.value, StoreUnavailable)

    def test_a_server_that_is_down_is_waited_for(self) -> None:
        """No server on the port is an outage: StoreUnavailable once the window ends."""
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?retry_timeout=0.3"
        with pytest.raises(StoreUnavailable, match=r"unavailable for 0\.3s"):
            PostgresStore(url)


class TestData:
    def test_nul_characters_are_stored_not_refused(self, pg: PostgresStore) -> None:
        """Text and JSON with NUL characters are stored with U+FFFD in their place."""
        record = make_record(payload={"a\x00": "b\x00"}, error_message="bad\x00byte")
        pg.add([record])
        stored = pg.get(record.id)
        assert stored is not None
        assert stored.payload == {"a\ufffd": "b\ufffd"}
        assert stored.error_message == "bad\ufffdbyte"

    def test_search_is_case_insensitive(self, pg: PostgresStore) -> None:
        """search matches the error message regardless of case."""
        record = make_record(error_message="Connection REFUSED by upstream")
        pg.add([record, make_record(error_message="other")])
        assert [r.id for r in pg.find(Filter(search="refused"), limit=10).items] == [record.id]

    def test_counts_follow_every_change(self, pg: PostgresStore) -> None:
        """Counts stay exact through inserts, transitions and deletes."""
        dlq = DeadLetterQueue(pg)
        records = [make_record() for _ in range(5)]
        pg.add(records)
        dlq.resolve([records[0].id, records[1].id])
        dlq.delete([records[2].id])
        counts = pg.stats(utcnow()).counts["orders.created"]
        assert counts == {Status.DEAD: 2, Status.RESOLVED: 2}
        assert pg.count(Filter(statuses=(Status.DEAD,))) == 2

    def test_a_batch_is_written_whole_or_not_at_all(self, pg: PostgresStore) -> None:
        """add writes its batch in one statement (autocommit): a failing row leaves none
        of the batch, and the pooled connections still run later work in transactions."""
        kept = make_record()
        clash = make_record()
        with pytest.raises(StoreError):
            pg.add([kept, clash, dataclasses.replace(make_record(), id=clash.id)])
        assert pg.get(kept.id) is None
        assert pg.count(Filter()) == 0
        for _ in range(3):  # every pooled connection is back in transaction mode
            assert pg.connector.run(lambda conn, _: conn.autocommit) is False
        pg.add([kept])
        assert pg.get(kept.id) is not None


class TestListen:
    def test_replay_in_another_process_notifies_listeners(self, postgres_url: str) -> None:
        """Scheduling a record through one store wakes the listeners of another."""
        worker, operator = PostgresStore(postgres_url), PostgresStore(postgres_url)
        woken = threading.Event()
        stop = worker.listen(woken.set)
        try:
            record = make_record()
            operator.add([record])
            assert not woken.is_set()
            DeadLetterQueue(operator).retry([record.id])
            assert woken.wait(timeout=10)
        finally:
            stop()
            worker.close()
            operator.close()

    async def test_scheduler_runs_a_replay_without_polling(self, postgres_url: str) -> None:
        """A bus that polls once a minute runs an operator's replay as soon as it is made."""
        store, operator = PostgresStore(postgres_url), PostgresStore(postgres_url)
        bus = EventBus(store, poll_interval=60)
        ran = asyncio.Event()
        fail = [True]

        @bus.handler("orders.created", name="receipt", policy=RetryPolicy(max_attempts=1))
        async def receipt(event: Event) -> None:
            if fail[0]:
                raise RuntimeError("down")
            ran.set()

        try:
            async with bus:
                await bus.publish("orders.created", {"n": 1})
                fail[0] = False
                dead = store.find(Filter(statuses=(Status.DEAD,)), limit=1).items[0]
                await asyncio.to_thread(DeadLetterQueue(operator).retry, [dead.id])
                await asyncio.wait_for(ran.wait(), timeout=20)
            assert store.get(dead.id).status == Status.RESOLVED  # type: ignore[union-attr]
        finally:
            store.close()
            operator.close()


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgServer]:
    """A server of this module's own, which its tests stop and restart."""
    server = PgServer().start()
    yield server
    server.stop()


class TestLostConnections:
    def test_restart_mid_run_is_retried(self, own_server: PgServer) -> None:
        """After the server restarts, the next calls reconnect and succeed."""
        store = PostgresStore(own_server.create_database(), retry_timeout=30)
        try:
            store.add([make_record()])
            own_server.restart()
            store.add([make_record()])
            assert store.count(Filter()) == 2
        finally:
            store.close()

    async def test_publish_raises_store_unavailable_when_down(self, own_server: PgServer) -> None:
        """With the server gone, publish raises StoreUnavailable after the retry timeout."""
        store = PostgresStore(own_server.create_database(), retry_timeout=1)
        bus = EventBus(store, policy=RetryPolicy(initial_delay=60))

        @bus.handler("orders.created", name="receipt")
        def receipt(event: Event) -> None:
            raise RuntimeError("down")

        try:
            own_server.stop()
            with pytest.raises(StoreUnavailable, match="unavailable for 1s"):
                await bus.publish("orders.created", {"n": 1})
        finally:
            store.close()

    def test_a_save_whose_answer_was_lost_finds_its_commit(self, postgres_url: str) -> None:
        """The server commits a retry's outcome but the answer is lost (a crash right after
        COMMIT), and before the worker reconnects another worker claims the record (its
        next retry was due at once): the retried save finds its own commit and reports
        the outcome saved, not its lease lost, and leaves the later claim alone."""
        other, proxy = PostgresStore(postgres_url), CuttingProxy(postgres_url)
        # One connection: a pool that grows while its first connection is still being
        # made would be configuring a second one when the proxy is armed, and lose that.
        store = PostgresStore(proxy.url(), pool_size=1)
        try:
            now = utcnow()
            other.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
            lease = now + timedelta(seconds=30)
            [claimed] = store.claim_due(now=now, lease_until=lease, owner="w/1", limit=1)
            failed = Attempt(kind="attempt", at=utcnow(), error_type="ValueError")
            outcome = claimed.replace(
                status=Status.SCHEDULED,
                history=(*claimed.history, failed),
                updated_at=failed.at,
                next_attempt_at=failed.at,
                lease_owner=None,
                lease_expires_at=None,
            )
            later: list[str] = []

            def claimed_elsewhere() -> None:
                at = utcnow()
                taken = other.claim_due(now=at, lease_until=lease, owner="w/2", limit=1)
                later.extend(r.id for r in taken)

            proxy.lose_next_answer(claimed_elsewhere)
            assert store.save(outcome, lease_owner="w/1") is True
            assert proxy.cut.is_set() and later == [claimed.id]  # committed before the cut
            row = other.get(claimed.id)
            assert row is not None and (row.status, row.lease_owner) == (Status.RETRYING, "w/2")
            assert row.history[-1].at == failed.at
        finally:
            store.close()
            other.close()
            proxy.close()


def test_expired_lease_of_a_dead_worker_is_taken_over(pg: PostgresStore) -> None:
    """A record claimed by a worker that vanished is claimed again once its lease ends."""
    now = utcnow()
    pg.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
    first = pg.claim_due(now=now, lease_until=now + timedelta(seconds=30), owner="a", limit=10)
    later = now + timedelta(seconds=31)
    again = pg.claim_due(now=later, lease_until=later + timedelta(seconds=30), owner="b", limit=10)
    assert [r.id for r in again] == [r.id for r in first]
    assert again[0].lease_owner == "b"


def test_a_heartbeat_queued_behind_a_row_lock_runs_its_lease_from_the_lock(
    pg: PostgresStore, postgres_url: str
) -> None:
    """Another transaction holds the record's row: the extension waits for it, and the
    lease it writes counts the wait (a plain UPDATE would write the lease it computed
    before waiting, already lapsed after a lock as long as the lease)."""
    now = utcnow()
    pg.add([make_record(status=Status.SCHEDULED, next_attempt_at=now)])
    (claimed,) = pg.claim_due(now=now, lease_until=now + timedelta(seconds=30), owner="w", limit=1)
    held = timedelta(seconds=0.5)
    until = utcnow() + timedelta(seconds=30)
    extended: list[int] = []
    with (
        psycopg.connect(postgres_url) as locker,
        psycopg.connect(postgres_url, autocommit=True) as watch,  # its own snapshots
    ):
        locker.execute(
            "SELECT 1 FROM redrive.redrive_dead_letters WHERE id = %s FOR UPDATE", (claimed.id,)
        )
        beat = threading.Thread(
            target=lambda: extended.append(pg.extend_leases([claimed.id], owner="w", until=until))
        )
        beat.start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        wait_for(  # the extension waits for the row: from here on, the lock is held
            lambda: watch.execute(waiting).fetchone()[0] == 1,  # type: ignore[index]
            what="the extension waits for the lock",
        )
        time.sleep(held.total_seconds())  # the lock's length: the fault itself
    beat.join(timeout=15)
    assert extended == [1]
    lease = pg.get(claimed.id).lease_expires_at  # type: ignore[union-attr]
    assert lease is not None and lease - until >= held


def test_migrate_command_prints_the_version_without_the_password(postgres_url: str) -> None:
    """redrive migrate applies the migrations and prints the masked URL and version."""
    from typer.testing import CliRunner

    from redrive.ops.cli.app import app

    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    result = CliRunner().invoke(app, ["--store", url, "migrate", "--schema", "dlq"])
    assert result.exit_code == 0, result.output
    assert f"(schema dlq): schema at version {latest_version()}" in result.output
    assert "s3cret" not in result.output
