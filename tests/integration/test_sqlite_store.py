"""What only the SQLite store does: migrations of older files, errors, in-memory use."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from redrive import ConfigError, StoreUnavailable, open_store
from redrive.models import Status
from redrive.stores.base import Filter
from redrive.stores.sql import COLUMN_LIST, COLUMNS, Dialect, record_to_row
from redrive.stores.sqlite import SQLiteStore
from redrive.stores.sqlite.connections import _statements, migrations
from redrive.testing import MemoryStore
from tests.factories import make_record


def test_older_file_is_upgraded_in_place(db_path: Path) -> None:
    """A file at schema 1 with records is migrated to the latest schema, data intact."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    version, sql = migrations()[0]
    for statement in _statements(sql):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    records = [make_record(fingerprint="a" * 16) for _ in range(3)] + [
        make_record(fingerprint="b" * 16)
    ]
    marks = ", ".join("?" * len(COLUMNS))
    conn.executemany(
        f"INSERT INTO redrive_dead_letters ({COLUMN_LIST}) VALUES ({marks})",
        [record_to_row(r, Dialect()) for r in records],
    )
    conn.close()

    store = SQLiteStore(db_path)
    assert store.migrate() == migrations()[-1][0] > 1
    assert [store.get(r.id) for r in records] == records
    groups = store.groups(Filter(statuses=(Status.DEAD,)), limit=5)
    assert [(g.fingerprint, g.count) for g in groups] == [("a" * 16, 3), ("b" * 16, 1)]
    store.close()


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A store URL in a directory that does not exist fails with StoreUnavailable."""
    with pytest.raises(StoreUnavailable, match="no directory"):
        open_store(f"sqlite:///{tmp_path}/nope/redrive.db")


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not SQLite fails with a store error naming the URL, not a traceback."""
    path = tmp_path / "text.db"
    path.write_text("hello, I am not a database" * 100)
    with pytest.raises(Exception, match=r"text\.db") as caught:
        open_store(f"sqlite:///{path}")
    assert type(caught.value).__module__ == "redrive.exceptions"


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://relative", "nonsense"])
def test_unsupported_urls(url: str) -> None:
    """Unknown or malformed store URLs are ConfigErrors."""
    with pytest.raises(ConfigError):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        (
            "postgresql://app@db/x?password=s3cret&sslmode=require",
            "postgresql://app@db/x?password=***&sslmode=require",
        ),
        ("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x"),
        ("postgresql://app:s3cret@[::1/x", "postgresql://app:***@[::1/x"),
        ("postgresql://app:s3c@ret@db/x", "postgresql://app:***@db/x"),
    ],
)
def test_url_passwords_are_masked(url: str, masked: str) -> None:
    """mask_url hides passwords wherever a DSN can carry them, even in a broken URL."""
    from redrive.bootstrap import mask_url

    assert mask_url(url) == masked


def test_a_broken_url_is_a_config_error_without_its_password() -> None:
    """An unparseable store URL is a ConfigError that does not show the password."""
    with pytest.raises(ConfigError) as caught:
        open_store("postgresql://app:s3cret@[::1/x")
    assert "s3cret" not in str(caught.value)


def test_memory_store_is_shared_between_threads(memory_store: MemoryStore) -> None:
    """The in-memory store sees its own writes from any thread."""
    record = make_record()
    thread = threading.Thread(target=memory_store.add, args=([record],))
    thread.start()
    thread.join()
    assert memory_store.get(record.id) == record


def test_writes_together_commit_at_the_end_or_not_at_all(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    other = SQLiteStore(tmp_path / "a.db")
    try:
        first, second = make_record(), make_record()
        with store.together():
            store.add([first])
            store.add([second])
            seen_ids: list[object] = []
            seen = threading.Thread(target=lambda: seen_ids.append(other.get(first.id)))
            seen.start()
            seen.join(30)
            assert seen_ids == [None]  # another connection sees nothing before the end
        assert other.get(first.id) == first and other.get(second.id) == second
        third = make_record()

        def failing_batch() -> None:
            with store.together():
                store.add([third])
                raise RuntimeError("the batch fails")

        with pytest.raises(RuntimeError):
            failing_batch()
        assert other.get(third.id) is None
        with store.together():  # and the next scope is a transaction of its own again
            store.add([third])
        assert other.get(third.id) == third
    finally:
        store.close()
        other.close()
