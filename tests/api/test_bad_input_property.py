"""Generated bad input thrown at the API (every endpoint, every role), the CLI and
``publish()``: no 5xx, no traceback, and nothing changes when the input is refused.

Example counts are bounded so the file runs in well under a minute."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redrive import DeadLetterQueue, EventBus
from redrive._json import NotJSON
from redrive.config import Settings
from redrive.ops.api import create_app
from redrive.ops.auth import Tokens
from redrive.stores.base import Store
from redrive.stores.sqlite import SQLiteStore
from tests.api.server import Server
from tests.cli.cli_support import Cli
from tests.factories import make_record

QUICK = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

# -- what is thrown ---------------------------------------------------------------------
every_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
"""Any code point, lone surrogates and NUL included (hypothesis leaves those out by default)."""
nasty_text = st.text(every_char, max_size=20) | st.sampled_from(
    ["\ud800", "\udfff", "a\x00b", "\x00", "\u202e", "***", "../../etc/passwd", "%00", "' OR 1=1"]
)


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


json_texts = st.one_of(
    st.sampled_from(["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 500]),
    st.integers(101, 700).map(_deep),
    st.integers(101, 700).map(lambda n: "[" * n + "]" * n),
    nasty_text.map(json.dumps),  # ensure_ascii: lone surrogates become \udXXX escapes
    st.sampled_from(["null", "true", "[]", "{}", "0", "-1", '""', "1.5"]),
)
"""Raw JSON text of a value (json.dumps cannot write NaN, 1e999 or deep nesting on purpose)."""


# -- the API ----------------------------------------------------------------------------
ROUTES = [
    ("POST", "/api/v1/dead-letters/{id}/retry", ['{{"patch": {{"a": {v}}}}}', '{{"note": {v}}}']),
    ("POST", "/api/v1/dead-letters/{id}/resolve", ['{{"note": {v}}}']),
    ("POST", "/api/v1/dead-letters/{id}/discard", ['{{"note": {v}}}']),
    (
        "POST",
        "/api/v1/dead-letters/retry",
        [
            '{{"ids": [{v}]}}',
            '{{"ids": [{rid}], "patch": {{"a": {v}}}}}',
            '{{"ids": [{rid}], "rate": {v}}}',
            '{{"ids": [{rid}], "delay_seconds": {v}}}',
            '{{"filter": {{"q": {v}}}}}',
            '{{"filter": {{"since": {v}}}, "dry_run": true}}',
        ],
    ),
    (
        "POST",
        "/api/v1/dead-letters/resolve",
        ['{{"ids": [{v}]}}', '{{"filter": {{"topic": {v}}}}}'],
    ),
    ("POST", "/api/v1/dead-letters/discard", ['{{"ids": [{rid}], "note": {v}}}']),
    ("POST", "/api/v1/purge", ['{{"older_than": {v}}}', '{{"older_than": "1d", "topic": {v}}}']),
    ("POST", "/api/v1/tokens", ['{{"name": {v}}}', '{{"name": "t", "role": {v}}}']),
    ("POST", "/api/v1/archive", ['{{"file": {v}, "filter": {{"topic": "x"}}}}']),
    ("POST", "/api/v1/import", ['{{"file": {v}}}']),
]
GETS = [
    "/api/v1/dead-letters/{p}",
    "/api/v1/dead-letters?q={p}",
    "/api/v1/dead-letters?since={p}",
    "/api/v1/dead-letters?cursor={p}&limit=5",
    "/api/v1/groups?topic={p}",
    "/api/v1/timeline?since={p}",
    "/api/v1/audit?cursor={p}",
    "/api/v1/export?handler={p}",
    "/dead-letters?q={p}",
    "/dead-letters/{p}",
    "DELETE /api/v1/dead-letters/{p}",
    "DELETE /api/v1/tokens/{p}",
]
ROLES = ["viewer", "operator", "admin", "anonymous"]
PYTHON_TRACEBACK = 'Traceback (most recent call last):\n  File "'
"""What an uncaught error prints (a record's own traceback field is not one)."""


@dataclasses.dataclass
class Target:
    """A served app: API clients and signed-in console clients (with their CSRF value)
    per role, the store behind it, and a record id."""

    clients: dict[str, httpx.Client]
    consoles: dict[str, tuple[httpx.Client, str]]
    store: Store
    record_id: str


def _console(url: str, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    form = re.search(r'name="csrf" value="([^"]+)"', client.get("/signin").text)
    assert form
    assert client.post("/signin", data={"token": token, "csrf": form[1]}).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert csrf
    return client, csrf[1]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """A served app over a seeded SQLite store, clients per role, and a record id."""
    store = SQLiteStore(tmp_path / "fuzz.db")
    records = [make_record(payload={"password": "pa55word", "n": i}) for i in range(3)]
    store.add(records)
    service = DeadLetterQueue(store, actor="fuzz")
    tokens = {role: Tokens(service).create(f"{role}-t", role)[0] for role in ROLES[:3]}
    config = Settings(
        redact=("password",), sections={"api": {"archive_dir": str(tmp_path / "archive")}}
    )
    with Server(create_app(service, config)) as url:
        clients = {
            role: httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
            )
            for role, token in tokens.items()
        }
        clients["anonymous"] = httpx.Client(base_url=url, timeout=30)
        consoles = {role: _console(url, token) for role, token in tokens.items()}
        try:
            yield Target(clients, consoles, store, records[0].id)
        finally:
            for client in [*clients.values(), *(c for c, _ in consoles.values())]:
                client.close()
    store.close()


def _state(store: Store) -> tuple[Any, ...]:
    dlq = DeadLetterQueue(store)
    records = [r.to_dict() for r in dlq.list(limit=100, status=None).items]
    return records, [e.id for e in dlq.audit(limit=100)], store.meta_list("tokens")


def _assert_sound(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if response.status_code >= 400:  # (a record's own traceback field is fine in a 200)
        assert PYTHON_TRACEBACK not in response.text, what


@QUICK
@given(
    route=st.sampled_from([(m, p, t) for m, p, ts in ROUTES for t in ts]),
    value=json_texts,
    role=st.sampled_from(ROLES),
)
def test_api_bodies(target: Target, route: tuple[str, str, str], value: str, role: str) -> None:
    """Any bad value in any body field, from any role: no 5xx, and a refusal changes nothing."""
    clients, store, record_id = target.clients, target.store, target.record_id
    method, path, template = route
    body = template.format(v=value, rid=json.dumps(record_id))
    before = _state(store)
    response = clients[role].request(
        method,
        path.format(id=record_id),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    _assert_sound(response, (path, body[:80]))
    if response.status_code >= 400:
        records, audit, tokens = _state(store)
        assert (records, tokens) == (before[0], before[2]), (path, body[:80])
        if response.status_code != 409:  # a 409 audits the attempt (0 changed)
            assert audit == before[1], (path, body[:80], response.status_code)


@QUICK
@given(
    path=st.sampled_from(GETS),
    text=nasty_text | st.binary(max_size=8).map(lambda b: b.decode("latin-1")),
    role=st.sampled_from(ROLES),
)
def test_api_paths_and_queries(target: Target, path: str, text: str, role: str) -> None:
    """Any text, percent-encoded as raw bytes (not always UTF-8), in an id or a query."""
    clients, store = target.clients, target.store
    raw = (
        text.encode("utf-8", "surrogatepass")
        if text.isascii()
        else text.encode("latin-1", "ignore")
    )
    encoded = quote(raw, safe="")
    before = _state(store)
    method, _, where = path.rpartition(" ")
    response = clients[role].request(method or "GET", where.format(p=encoded or "x"))
    _assert_sound(response, (path, encoded))
    after = _state(store)
    if not method or response.status_code >= 400:  # reads and refusals change no record
        assert (after[0], after[2]) == (before[0], before[2]), (path, encoded)
    if response.status_code >= 400:  # (a 200 export is audited: that is the point)
        assert after[1] == before[1], (path, encoded)


CONSOLE_FORMS = [
    ("/dead-letters/{id}/action", {"action": "retry", "payload": "{v}"}),
    ("/dead-letters/{id}/action", {"action": "resolve", "note": "{t}"}),
    ("/dead-letters/{t}/action", {"action": "discard"}),
    ("/bulk", {"action": "resolve", "ids": "{t}"}),
    ("/groups/retry", {"fingerprint": "{t}"}),
]


@QUICK
@given(
    form=st.sampled_from(CONSOLE_FORMS),
    value=json_texts.map(lambda v: f'{{"a": {v}}}'),
    text=nasty_text,
    role=st.sampled_from(ROLES[:3]),
)
def test_console_forms(
    target: Target, form: tuple[str, dict[str, str]], value: str, text: str, role: str
) -> None:
    """The console's forms (payload editor, notes, selections, group replay) from every
    role: no 5xx, no traceback, and a refusal changes no record."""
    client, csrf = target.consoles[role]
    path, fields = form
    data = {k: v.format(v=value, t=text) for k, v in {**fields, "csrf": csrf}.items()}
    body = "&".join(
        f"{k}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in data.items()
    )
    target_path = path.format(
        id=target.record_id, t=quote(text.encode("utf-8", "surrogatepass"), safe="") or "x"
    )
    before = _state(target.store)
    response = client.post(
        target_path,
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    _assert_sound(response, (path, data))
    if response.status_code >= 400:
        assert _state(target.store)[0] == before[0], (path, data, response.status_code)


# -- the CLI ----------------------------------------------------------------------------
@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Cli, str]:
    """The CLI on a SQLite file with one dead record."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    cli = Cli(db=tmp_path / "cli.db", workdir=work)
    [record] = cli.seed(1)
    return cli, record.id


CLI_COMMANDS = [
    ("retry", "{id}", "--patch", "{v}"),
    ("retry", "--all", "--search", "{t}", "--yes"),
    ("list", "--topic", "{t}"),
    ("list", "--since", "{t}"),
    ("groups", "--handler", "{t}"),
    ("show", "{t}"),
    ("resolve", "{t}", "--yes"),
    ("export", "--search", "{t}"),
]


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    command=st.sampled_from(CLI_COMMANDS),
    value=json_texts.map(lambda v: f'{{"a": {v}}}') | nasty_text,
    text=nasty_text,
)
def test_cli(seeded: tuple[Cli, str], command: tuple[str, ...], value: str, text: str) -> None:
    """Bad --patch texts and filter values: an exit code, never a traceback; a usage error
    (exit 2) or a not-found (exit 3) changes nothing."""
    cli, record_id = seeded
    args = [part.format(id=record_id, v=value, t=text) for part in command]
    store = cli.store()
    try:
        before = _state(store)
        result = cli(*args)
        assert result.exit_code in (0, 1, 2, 3), (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            repr(result.exception),
        )
        assert PYTHON_TRACEBACK not in result.output, args
        if result.exit_code in (2, 3):
            after = _state(store)
            assert (after[0], after[2]) == (before[0], before[2]), args
            if result.exit_code == 2:  # (ids not found are audited as missing: exit 3)
                assert after[1] == before[1], args
    finally:
        store.close()


# -- publish() --------------------------------------------------------------------------
class _Odd:
    pass


python_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.binary(max_size=3),
        st.decimals(allow_nan=False, allow_infinity=False, places=2),
        st.datetimes(),
        st.builds(_Odd),
        st.frozensets(st.integers(), max_size=2),
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)
    ),
    max_leaves=8,
)


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    payload=python_values,
    headers=st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(), max_size=2),
)
async def test_publish(sqlite_store: Store, payload: Any, headers: dict[str, Any]) -> None:
    """Plain JSON with string headers is recorded exactly; anything else is ``NotJSON``,
    before any handler runs, and records nothing."""
    bus = EventBus(sqlite_store)
    ran: list[Any] = []

    @bus.handler("t", name="h")
    def fail(event: Any) -> None:
        ran.append(event)
        raise RuntimeError("always")

    dlq = DeadLetterQueue(sqlite_store)
    before = dlq.count(status=None)
    plain = _plain(payload) and all(isinstance(v, str) for v in headers.values())
    try:
        if plain:
            event = await bus.publish("t", payload, headers=headers)
            [record] = dlq.list(limit=1, status=None).items
            assert record.event.id == event.id and record.payload == payload
        else:
            with pytest.raises(NotJSON) as info:
                await bus.publish("t", payload, headers=headers)
            assert "\n" not in str(info.value)
            assert ran == []
            assert dlq.count(status=None) == before
    finally:
        await bus.stop()
