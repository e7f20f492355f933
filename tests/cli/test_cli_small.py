"""Small CLI behaviours: help layout, an unknown group, token listing, alert wording."""

from __future__ import annotations

import json

from tests.cli.cli_support import Cli


def test_help_examples_keep_their_lines(cli: Cli) -> None:
    """retry, purge and serve print each example on its own line."""
    for command, first, second in (
        ("retry", "--dry-run", "redrive retry --all"),
        ("purge", "--older-than 30d", "redrive purge --apply-retention"),
    ):
        lines = cli(command, "--help", COLUMNS="200").stdout.splitlines()
        example = next(i for i, line in enumerate(lines) if "Example:" in line)
        assert lines[example].rstrip().endswith(first), lines[example]
        assert lines[example + 1].strip().startswith(second), lines[example + 1]


def test_retry_of_an_unknown_group_says_nothing_matched(cli: Cli) -> None:
    """retry --group with no dead letters in it exits 3 and says so."""
    cli.seed(1)
    result = cli("retry", "--group", "nosuchgroup", "--yes")
    assert result.exit_code == 3
    assert "nothing matched: no dead letters in group nosuchgroup" in result.stderr


def test_token_list_has_a_header_and_last_use(cli: Cli) -> None:
    """token list prints a header row with LAST USED, and JSON has last_used_at."""
    assert cli("token", "create", "me", "--role", "viewer").exit_code == 0
    text = cli("token", "list", COLUMNS="").stdout
    assert text.splitlines()[0].split() == ["NAME", "ROLE", "ID", "CREATED", "LAST", "USED"]
    assert "never" in text
    [info] = json.loads(cli("--json", "token", "list").stdout)
    assert info["last_used_at"] is None


def test_alerts_status_prints_ages_with_units(cli: Cli) -> None:
    """The max_age rule's value and threshold read as durations, not raw seconds."""
    cli.seed(1)
    text = cli("alerts", "status", COLUMNS="").stdout
    row = next(line for line in text.splitlines() if "max_age" in line)
    assert "1d" in row and "86400" not in row


def test_alert_messages_count_in_words() -> None:
    """One dead letter is "1 dead letter", not "1 dead letters"."""
    from redrive.ops.alerts.rules import _letters

    assert (_letters(1), _letters(2, "new ")) == ("1 dead letter", "2 new dead letters")


def test_audit_filters_and_pages_like_every_list(cli: Cli) -> None:
    """audit --action/--by filter the trail, and --json has {items, next_cursor}."""
    records = cli.seed(3)
    cli("resolve", records[0].id, "--actor", "alice")
    cli("discard", records[1].id, "--actor", "bob")
    cli("delete", records[2].id, "--yes", "--actor", "alice")
    data = json.loads(cli("audit", "--json", "--by", "alice").stdout)
    assert [e["action"] for e in data["items"]] == ["delete", "resolve"]
    assert data["next_cursor"] is None
    deletes = json.loads(cli("audit", "--json", "--action", "delete", "--since", "1h").stdout)
    assert [e["detail"]["ids"] for e in deletes["items"]] == [[records[2].id]]
    first = json.loads(cli("audit", "--json", "--limit", "1").stdout)
    assert len(first["items"]) == 1 and first["next_cursor"]
