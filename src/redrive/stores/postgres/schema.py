"""Versioned migrations of the PostgreSQL store, applied under an advisory lock.

Migrations are ``migrations/postgres/NNNN_name.sql``, run in order, each in the store's
schema (``search_path``) and in one transaction with its version row, so a failed
migration leaves nothing half-applied. Several processes starting at once take turns on
an advisory lock keyed by the schema name; the later ones find nothing left to do.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from redrive.exceptions import StoreError


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of each migration, in order."""
    folder = resources.files("redrive.stores") / "migrations" / "postgres"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            version, _, name = item.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, item.read_text("utf-8")))
    return sorted(found)


def latest_version() -> int:
    """The version the code expects."""
    return max(version for version, _, _ in migrations())


def current_version(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    """The schema's applied version (0 when nothing is installed yet)."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{_quoted(schema)}.redrive_schema_version",)
    ).fetchone()
    if not row or not row[0]:
        return 0
    query = sql.SQL("SELECT coalesce(max(version), 0) FROM {}.redrive_schema_version").format(
        sql.Identifier(schema)
    )
    found = conn.execute(query).fetchone()
    return int(found[0]) if found else 0


def migrate(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    """Apply every pending migration to ``schema``; return the version reached.

    ``conn`` must be in autocommit mode: each migration runs in its own transaction.
    """
    ident = sql.Identifier(schema)
    with conn.transaction():
        # Lock first: two processes racing to create the schema would otherwise collide.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"redrive:{schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.redrive_schema_version ("
                "version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
    version = current_version(conn, schema)
    for number, name, script in migrations():
        if number <= version:
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"redrive:{schema}",))
            if current_version(conn, schema) >= number:  # another process got there first
                continue
            conn.execute(
                sql.SQL("SET LOCAL search_path TO {}, {}, public").format(
                    ident, sql.Identifier(_extension_schema(conn))
                )
            )
            try:
                conn.execute(script.encode("utf-8"))
            except psycopg.Error as exc:
                raise StoreError(f"migration {number:04d}_{name} failed: {exc}") from exc
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.redrive_schema_version (version, name) VALUES (%s, %s)"
                ).format(ident),
                (number, name),
            )
        version = number
    return version


def _quoted(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


def _extension_schema(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    """Where pg_trgm lives (a database has it once, in one schema): its operator classes
    must be on the search path of every redrive schema's migrations, not only the first
    schema's, which is where older releases created it."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n "
        "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
    ).fetchone()
    return str(row[0]) if row else "public"
