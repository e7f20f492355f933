"""Locked batches of the PostgreSQL outbox: the row locks, not a lease, protect a batch.

A dispatcher selects a batch with ``FOR UPDATE SKIP LOCKED`` in a transaction on a pooled
connection it keeps, delivers it while the transaction stays open, and writes the
outcomes in the same transaction. Each row is written once (its outcome), and a
dispatcher that dies mid-batch loses its connection, so PostgreSQL rolls the transaction
back and the rows are free at once. A batch that takes longer than the outbox's ``hold``
is converted: its unfinished rows get a lease (``locked_by``, ``locked_until``) and the
transaction commits, so no transaction stays open much longer than ``hold``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from redrive.exceptions import StoreError, StoreUnavailable
from redrive.outbox.model import COLUMNS, OutboxEvent, Outcome
from redrive.stores.postgres.connector import Connector, describe

if TYPE_CHECKING:
    from redrive.outbox.pg import Conn

DONE = (
    "UPDATE redrive_outbox SET status = 'done', processed_at = %s, attempts = attempts + 1, "
    "locked_by = NULL, locked_until = NULL WHERE id = ANY(%s)"
)
LEASE = "UPDATE redrive_outbox SET locked_by = %s, locked_until = %s WHERE id = ANY(%s)"


def lock_sql(ready: str, first_of_key: str) -> str:
    """Select (and lock) due rows that no other transaction holds, in id order.

    The first parameter ends the transaction if it stays idle longer (ms, this transaction
    only): a dispatcher whose event loop is stuck holds its rows no longer than a lease.
    Set in the same statement, it costs no round trip.
    """
    return (
        "WITH t AS MATERIALIZED (SELECT set_config('idle_in_transaction_session_timeout', "
        f"%s, true)) SELECT {', '.join(f'o.{c}' for c in COLUMNS)} FROM redrive_outbox AS o, "
        f"t WHERE {ready}{first_of_key} ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED"
    )


class PgBatch:
    """Rows locked by one open transaction; :meth:`commit` or :meth:`release` ends it."""

    def __init__(self, connector: Connector, conn: Conn, rows: list[OutboxEvent]) -> None:
        self.rows = rows
        self._connector = connector  # ``conn`` is borrowed from its pool
        self._conn: Conn | None = conn

    def commit(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        leased: Sequence[int] = (),
        lease_until: datetime | None = None,
        owner: str = "",
    ) -> None:
        """Write ``outcomes``, put the rows in ``leased`` under a lease, and commit.

        If the connection broke, nothing is written: the server has released the rows
        and they are delivered again (at least once).
        """
        from redrive.outbox.pg import failed_params, failed_sql

        conn = self._end()
        done = [o.id for o in outcomes if o.error is None]
        statements: list[tuple[str, Sequence[Any]]] = []
        if done:
            statements.append((DONE, (now, done)))
        for status, dead in (("pending", False), ("dead", True)):
            failed = [o for o in outcomes if o.error is not None and o.dead is dead]
            if failed:
                statements.append((failed_sql(status, owned=False), failed_params(failed, now)))
        if leased:
            statements.append((LEASE, (owner, lease_until, list(leased))))
        try:
            if len(statements) > 1:
                with conn.pipeline():  # one round trip for every kind of outcome
                    for query, params in statements:
                        conn.execute(query, params)
            elif statements:
                conn.execute(*statements[0])
            conn.commit()
        except psycopg.Error as exc:
            conn.close()  # the pool replaces it
            lost = f"{self._connector.url}: outbox batch lost: {describe(exc)}"
            raise StoreUnavailable(lost) from exc
        finally:
            self._connector.give_back(conn)

    def release(self) -> None:
        """Write nothing: roll back, so the rows are free for any dispatcher at once."""
        conn = self._end()
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        self._connector.give_back(conn)

    def _end(self) -> Conn:
        conn, self._conn = self._conn, None
        if conn is None:
            raise StoreError("this outbox batch is already committed or released")
        return conn
