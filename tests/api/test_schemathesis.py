"""Property-based run of schemathesis against /openapi.json: no 500s, no response that
violates the schema, whatever the input. Bounded in examples so it stays quick."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from redrive.config import Settings
from redrive.ops.api import create_app
from redrive.ops.auth import Tokens
from redrive.service import DeadLetterQueue
from redrive.stores.sqlite import SQLiteStore
from tests.api.server import Server
from tests.factories import make_record

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A served app over a seeded SQLite store; yields its URL and an admin token."""
    store = SQLiteStore(tmp_path / "fuzz.db")
    store.add([make_record(payload={"password": "x", "n": i}) for i in range(5)])
    service = DeadLetterQueue(store)
    token, _ = Tokens(service).create("fuzzer", "admin")
    settings_ = Settings(
        redact=("password",), sections={"api": {"archive_dir": str(tmp_path / "archive")}}
    )
    with Server(create_app(service, settings_)) as url:
        yield url, token
    store.close()


def _spec() -> dict[str, Any]:
    """The app's OpenAPI document, from an app that is not served (settings do not change it)."""
    from redrive.testing import MemoryStore

    with contextlib.closing(MemoryStore()) as store:
        return create_app(DeadLetterQueue(store), Settings()).openapi()


@pytest.fixture(scope="module")
def schema() -> BaseSchema:
    """The schema, parsed once for every operation (parsing takes most of a second)."""
    return schemathesis.openapi.from_dict(_spec())


# Hypothesis warns when the global random state changes while it draws a case; a replay
# that POST /replays started goes on in the server's thread meanwhile, and its retry jitter
# uses random: that is the server's, not the strategy's (seen as a flaky failure).
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize(
    ("method", "path"),
    [(method.upper(), path) for path, item in _spec()["paths"].items() for method in item],
)
def test_api_honours_its_schema(
    fuzz_target: tuple[str, str], schema: BaseSchema, method: str, path: str
) -> None:
    """Every operation answers generated requests without a 5xx and as documented."""
    url, token = fuzz_target
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

    run()
