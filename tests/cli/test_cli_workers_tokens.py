"""``redrive workers`` as a person reads it, and ``redrive token`` from create to revoke."""

from __future__ import annotations

import json
from datetime import timedelta

from redrive.core.presence import Presence
from redrive.models import Status, utcnow
from redrive.testing import FakeClock
from tests.cli.cli_support import Cli
from tests.factories import ago, make_record


def _beat(cli: Cli, owner: str, *, kind: str, handlers: list[str], minutes_ago: float) -> None:
    """Write one scheduler's heartbeat as of ``minutes_ago``, as a running one would."""
    store = cli.store()
    try:
        clock = FakeClock(utcnow() - timedelta(minutes=minutes_ago))
        presence = Presence(store, clock, owner, lambda: handlers, kind=kind)
        presence.ran(3)
        presence.beat()
    finally:
        store.close()


def test_workers_without_any_says_what_would_consume(cli: Cli) -> None:
    """With no heartbeat in the store, the table is replaced by one line naming the three
    kinds of consumer."""
    result = cli("workers")
    assert result.exit_code == 0, result.output
    assert "no workers: no app, `redrive worker` or outbox dispatcher is running" in result.stdout


def test_workers_table_shows_live_and_stale_schedulers_and_stalled_handlers(cli: Cli) -> None:
    """A live worker and a stale app each get a row (handlers, records run, liveness); a
    handler whose scheduled records are overdue with no live worker is named below."""
    _beat(cli, "w-live", kind="worker", handlers=["orders.created/app.ship"], minutes_ago=0)
    _beat(cli, "w-stale", kind="app", handlers=[], minutes_ago=30)
    overdue = make_record(
        topic="emails.sent",
        handler="app.mailer",
        status=Status.SCHEDULED,
        next_attempt_at=ago(3600),
    )
    cli.add(overdue)
    result = cli("workers", COLUMNS="200")
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    live = next(row for row in rows if "worker" in row.split())
    stale = next(row for row in rows if "app" in row.split())
    assert "yes" in live and "orders.created/app.ship" in live and " 3 " in f" {live} "
    assert "no (stale)" in stale
    assert "stalled: 1 scheduled records of emails.sent/app.mailer" in result.stdout
    assert "no live worker runs that handler" in result.stdout


def test_workers_json_lists_the_same_as_the_table(cli: Cli) -> None:
    """--json gives the heartbeats with ``live`` and the stalled handlers as objects."""
    _beat(cli, "w-live", kind="worker", handlers=["orders.created/app.ship"], minutes_ago=0)
    data = json.loads(cli("workers", "--json").stdout)
    [worker] = data["items"]
    assert worker["kind"] == "worker" and worker["live"] is True
    assert worker["records_run"] == 3
    assert data["stalled"] == []


def test_token_create_json_prints_the_secret_once_with_its_info(cli: Cli) -> None:
    """--json token create prints the token and what list shows, as one object."""
    result = cli("--json", "token", "create", "ci-bot", "--role", "operator")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["name"] == "ci-bot" and created["role"] == "operator"
    assert created["token"].startswith("rdv_")
    [listed] = json.loads(cli("--json", "token", "list").stdout)
    assert listed["id"] == created["id"]
    assert "token" not in listed


def test_token_create_refuses_a_duplicate_and_a_bad_name(cli: Cli) -> None:
    """A second token of the same name, or a name with spaces, is a one-line usage error."""
    assert cli("token", "create", "me").exit_code == 0
    again = cli("token", "create", "me")
    assert again.exit_code == 2
    assert "a token named 'me' exists already; revoke it first" in again.stderr
    spaced = cli("token", "create", "two words")
    assert spaced.exit_code == 2
    assert "a token name is 1-64 letters" in spaced.stderr
    assert "Traceback" not in again.output + spaced.output


def test_token_list_when_empty_says_how_to_create_one(cli: Cli) -> None:
    """An empty token list prints the create command instead of an empty table."""
    result = cli("token", "list")
    assert result.exit_code == 0
    assert "no tokens; create one with: redrive token create NAME --role viewer" in result.stdout


def test_token_revoke_by_name_then_unknown(cli: Cli) -> None:
    """Revoking removes the token from the list; revoking it again is exit 3 (not found)."""
    assert cli("token", "create", "me").exit_code == 0
    revoked = cli("token", "revoke", "me")
    assert revoked.exit_code == 0, revoked.output
    assert "revoked token 'me'" in revoked.stdout
    assert json.loads(cli("--json", "token", "list").stdout) == []
    again = cli("token", "revoke", "me")
    assert again.exit_code == 3
    assert "me" in again.stderr and "Traceback" not in again.output


def test_token_create_refuses_an_unknown_role(cli: Cli) -> None:
    """A role other than viewer, operator or admin is a usage error naming the three."""
    result = cli("token", "create", "me", "--role", "superuser")
    assert result.exit_code == 2
    assert "role must be one of viewer, operator, admin, got 'superuser'" in result.stderr
    assert json.loads(cli("--json", "token", "list").stdout) == []
