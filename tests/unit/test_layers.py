"""The one-way data flow of DESIGN.md (sources -> core -> store <- service <- surfaces),
checked on the imports of every module. docs/architecture.md states these same rules:

- The core (everything outside ``redrive.ops`` and the concrete backends) imports no web
  framework, CLI toolkit, broker or database driver, and no ``redrive.ops`` module.
- The write path (``redrive.core``) imports no service, source or surface module.
- Operator surfaces (``redrive.ops``) import from redrive only ``OPS_MAY_IMPORT``: never a
  concrete store or SQL; they change records through ``DeadLetterQueue``.
- No import cycle, counting imports inside functions and under ``TYPE_CHECKING``.
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
    "confluent_kafka",
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
WRITE_PATH = [p for p in MODULES if is_under(module_name(p), ("redrive.core",))]
OPS_MAY_IMPORT = (
    "redrive.ops",
    "redrive.service",
    "redrive.config",
    "redrive.bootstrap",
    "redrive.models",
    "redrive.hooks",
    "redrive.redact",
    "redrive.exceptions",
    "redrive.policy",
    "redrive._clock",
    "redrive._batch",
    "redrive._ids",
    "redrive._json",  # the one rule for JSON input (payloads, patches, filters)
    "redrive.stores.base",
    # `redrive outbox ...`, `redrive nats ...`, `redrive kafka ...` run those sources.
    "redrive.outbox",
    "redrive.transports",
)


@pytest.mark.parametrize("path", CORE, ids=module_name)
def test_core_imports_nothing_heavy(path: Path) -> None:
    """A core module imports no server, CLI, broker or driver library, and no ops module."""
    bad = {name for name in imports_of(path) if is_under(name, (*HEAVY, "redrive.ops"))}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", OPS, ids=module_name)
def test_ops_use_the_service_not_the_store(path: Path) -> None:
    """An operator surface never imports a concrete backend or sqlite3, and imports from
    redrive only the service and the shared kernel (``OPS_MAY_IMPORT``)."""
    bad = {name for name in imports_of(path) if is_under(name, BACKENDS)}
    bad |= {name for name in all_imports_of(path) if not is_under(name, OPS_MAY_IMPORT)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", WRITE_PATH, ids=module_name)
def test_the_write_path_knows_no_service_source_or_surface(path: Path) -> None:
    """``redrive.core`` imports no service, outbox, transport or ops module: data flows one
    way, from sources through the core to the store."""
    above = (
        "redrive.service",
        "redrive.outbox",
        "redrive.transports",
        "redrive.ops",
        "redrive.bus",
    )
    bad = {name for name in all_imports_of(path) if is_under(name, above)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


def all_imports_of(path: Path) -> set[str]:
    """Every redrive module ``path`` imports: at module level, inside functions and under
    ``TYPE_CHECKING``, with ``from package import module`` resolved to the module."""
    found: set[str] = set()
    known = {module_name(p) for p in MODULES}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            if submodules <= known:  # ``from package import module``: the module is meant
                found.update(submodules)
            else:
                found.add(node.module)
    return {name for name in found if name in known and name != "redrive"}


def import_cycles() -> list[list[str]]:
    """Every cycle in the graph of redrive's own imports (Tarjan's strongly connected
    components of more than one module, or a module importing itself)."""
    graph = {module_name(p): all_imports_of(p) for p in MODULES}
    # A package's __init__ runs when one of its modules is imported: not an edge of ours.
    # A package importing its own modules (``from redrive.service import selection`` in
    # ``redrive/service/__init__.py``) does not import itself either.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    """No two redrive modules import each other, directly or round a loop, counting imports
    inside functions and under TYPE_CHECKING (a cycle is a design tangle, lazy or not)."""
    assert import_cycles() == []
