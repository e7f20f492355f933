"""The SQLite store's audit trail and small key/value (tokens, alert state, locks)."""

from __future__ import annotations

from typing import Any

from redrive.models import JSON
from redrive.stores.base import AuditEntry
from redrive.stores.sql import Dialect, audit_from_row
from redrive.stores.sqlite.connections import SQLiteConnections


class SQLiteAuditAndMeta(SQLiteConnections):
    """Audit entries and versioned key/value rows, on the connections of the base."""

    dialect = Dialect()

    # -- audit trail -------------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO redrive_audit (id, at, actor, action, count, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    self.dialect.encode_time(entry.at),
                    entry.actor,
                    entry.action,
                    entry.count,
                    self.dialect.encode_json(dict(entry.detail)),
                ),
            )

    def list_audit(self, *, limit: int, cursor: str | None = None) -> list[AuditEntry]:
        sql = "SELECT id, at, actor, action, count, detail FROM redrive_audit"
        params: list[Any] = []
        if cursor is not None:
            sql += " WHERE id < ?"
            params.append(cursor)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [audit_from_row(row, self.dialect) for row in rows]

    # -- meta ----------------------------------------------------------------------------
    def meta_get(self, namespace: str, key: str) -> tuple[JSON, int] | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT value, version FROM redrive_meta WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
        return None if row is None else (self.dialect.decode_json(row[0]), int(row[1]))

    def meta_put(
        self, namespace: str, key: str, value: JSON, *, version: int | None = None
    ) -> bool:
        encoded = self.dialect.encode_json(value)
        with self._write() as conn:
            row = conn.execute(
                "SELECT version FROM redrive_meta WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            current = 0 if row is None else int(row[0])
            if version is not None and version != current:
                return False
            conn.execute(
                "INSERT INTO redrive_meta (namespace, key, value, version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, key) "
                "DO UPDATE SET value = excluded.value, version = excluded.version",
                (namespace, key, encoded, current + 1),
            )
            return True

    def meta_list(self, namespace: str) -> dict[str, JSON]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT key, value FROM redrive_meta WHERE namespace = ? ORDER BY key", (namespace,)
            )
            return {key: self.dialect.decode_json(value) for key, value in rows}

    def meta_delete(self, namespace: str, key: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM redrive_meta WHERE namespace = ? AND key = ?", (namespace, key)
            )
            return cursor.rowcount > 0
