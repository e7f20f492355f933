"""The one-way data flow of DESIGN.md, checked on the imports of every module.

- The core (everything outside ``redrive.ops`` and the concrete backends) imports no web
  framework, CLI toolkit, broker or database driver, and no ``redrive.ops`` module.
- Operator surfaces (``redrive.ops``) never import a concrete store or write SQL: they go
  through ``DeadLetterQueue``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "redrive"
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "typer",
    "click",
    "rich",
    "psycopg",
    "psycopg_pool",
    "nats",
    "aiokafka",
    "prometheus_client",
    "httpx",
    "jinja2",
    "sqlalchemy",
)
BACKENDS = ("redrive.stores.sqlite", "redrive.stores.postgres", "redrive.stores.sql", "sqlite3")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(SRC.rglob("*.py"))
# Backends and sources may import their driver: stores, transports, the outbox.
EDGES = ("redrive.ops", "redrive.stores", "redrive.transports", "redrive.outbox")
CORE = [p for p in MODULES if not is_under(module_name(p), EDGES)]
OPS = [p for p in MODULES if is_under(module_name(p), ("redrive.ops",))]


@pytest.mark.parametrize("path", CORE, ids=module_name)
def test_core_imports_nothing_heavy(path: Path) -> None:
    """A core module imports no server, CLI, broker or driver library, and no ops module."""
    bad = {name for name in imports_of(path) if is_under(name, (*HEAVY, "redrive.ops"))}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", OPS, ids=module_name)
def test_ops_use_the_service_not_the_store(path: Path) -> None:
    """An operator surface never imports a concrete backend or sqlite3."""
    bad = {name for name in imports_of(path) if is_under(name, BACKENDS)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"
