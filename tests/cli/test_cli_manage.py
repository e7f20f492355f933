"""``redrive resolve``, ``discard``, ``delete``, ``purge`` and ``policy show``."""

from __future__ import annotations

import json

from redrive.models import Status
from tests.cli.cli_support import Cli
from tests.factories import ago, make_record


def test_resolve_by_ids(cli: Cli) -> None:
    """resolve marks the named dead letters resolved without asking."""
    records = cli.seed(2)
    result = cli("resolve", *(r.id for r in records), "--note", "fixed by hand")
    assert result.exit_code == 0
    assert "resolved 2 records" in result.stdout
    assert cli.statuses(records) == ["resolved", "resolved"]


def test_discard_by_filter(cli: Cli) -> None:
    """discard --all --topic changes only that topic's dead letters."""
    chosen = cli.seed(2, topic="test.events")
    other = cli.seed(1, topic="orders.created")
    result = cli("discard", "--all", "--topic", "test.events", "--yes")
    assert result.exit_code == 0
    assert cli.statuses(chosen + other) == ["discarded", "discarded", "dead"]


def test_delete_asks_for_yes_off_a_terminal(cli: Cli) -> None:
    """delete refuses without --yes when stdin is not a terminal, and deletes nothing."""
    (record,) = cli.seed(1)
    result = cli("delete", record.id)
    assert result.exit_code == 2
    assert cli.statuses([record]) == ["dead"]


def test_delete_with_yes(cli: Cli) -> None:
    """With --yes, delete removes the record for good."""
    (record,) = cli.seed(1)
    result = cli("delete", record.id, "--yes")
    assert result.exit_code == 0
    assert cli.statuses([record]) == ["missing"]


def test_purge_defaults_to_resolved_and_discarded(cli: Cli) -> None:
    """purge --older-than removes old resolved/discarded records, never dead ones."""
    records = cli.add(
        make_record(status=Status.RESOLVED, created_at=ago(40 * 86400)),
        make_record(status=Status.DISCARDED, created_at=ago(40 * 86400)),
        make_record(status=Status.DEAD, created_at=ago(40 * 86400)),
        make_record(status=Status.RESOLVED, created_at=ago(86400)),
    )
    result = cli("purge", "--older-than", "30d", "--yes")
    assert result.exit_code == 0, result.output
    assert cli.statuses(records) == ["missing", "missing", "dead", "resolved"]


def test_purge_dead_needs_an_explicit_status(cli: Cli) -> None:
    """purge --status dead removes old dead letters when asked to."""
    (record,) = cli.add(make_record(created_at=ago(40 * 86400)))
    cli("purge", "--older-than", "30d", "--status", "dead", "--yes")
    assert cli.statuses([record]) == ["missing"]


def test_purge_without_age_is_a_usage_error(cli: Cli) -> None:
    """purge needs --older-than (or --apply-retention)."""
    result = cli("purge", "--yes")
    assert result.exit_code == 2
    assert "--older-than" in result.stderr


def test_purge_applies_topic_retention(cli: Cli) -> None:
    """--apply-retention purges each topic by its configured retention, dead ones too."""
    records = cli.add(
        make_record(topic="short", created_at=ago(3 * 86400)),
        make_record(topic="long", created_at=ago(3 * 86400)),
    )
    config = cli.workdir / "redrive.toml"
    config.write_text('[topics.short]\nretention = "2d"\n[topics.long]\nretention = "30d"\n')
    result = cli("--config", str(config), "purge", "--apply-retention", "--yes", "--json")
    assert json.loads(result.stdout) == {"short": 1, "long": 0}
    assert cli.statuses(records) == ["missing", "dead"]


def test_policy_show_prints_the_timeline(cli: Cli) -> None:
    """policy show lists one row per attempt with the cumulative wait."""
    config = cli.workdir / "redrive.toml"
    config.write_text(
        "[topics.orders.policy]\nmax_attempts = 4\ninitial_delay = 1\nmultiplier = 2\n"
    )
    data = json.loads(cli("--config", str(config), "policy", "show", "orders", "--json").stdout)
    assert [row["cumulative"] for row in data["timeline"]] == [1.0, 3.0, 7.0]


def test_policy_show_warns_about_retention(cli: Cli) -> None:
    """A retry timeline longer than the topic's retention is reported as a trap."""
    config = cli.workdir / "redrive.toml"
    config.write_text(
        '[topics.orders]\nretention = "1m"\n'
        "[topics.orders.policy]\nmax_attempts = 6\ninitial_delay = 30\nmax_delay = 600\n"
    )
    result = cli("--config", str(config), "policy", "show", "orders")
    assert result.exit_code == 0
    assert "warning: retries can take" in result.stdout
