"""``redrive retry``: selection, idempotence, plans, the loop guard, patches and pacing."""

from __future__ import annotations

import json

from redrive.models import Status
from tests.cli.cli_support import Cli


def test_retry_by_id_schedules_and_skips_non_dead(cli: Cli) -> None:
    """Dead records are scheduled; records in other statuses are skipped and counted."""
    (dead,) = cli.seed(1)
    (resolved,) = cli.seed(1, status=Status.RESOLVED)
    result = cli("retry", dead.id, resolved.id)
    assert result.exit_code == 0, result.output
    assert "scheduled 1 record for replay; 1 skipped" in result.stdout
    assert cli.statuses([dead, resolved]) == ["scheduled", "resolved"]


def test_retry_is_idempotent(cli: Cli) -> None:
    """Retrying the same id twice schedules it once."""
    (record,) = cli.seed(1)
    cli("retry", record.id)
    second = json.loads(cli("retry", record.id, "--json").stdout)
    assert (second["scheduled"], second["skipped"]) == (0, 1)


def test_retry_counts_replays_and_keeps_history(cli: Cli) -> None:
    """A replay increments the replay count and adds a replay entry to the history."""
    (record,) = cli.seed(1)
    cli("retry", record.id, "--actor", "bob")
    after = cli.get(record.id)
    assert after is not None
    assert after.replays == 1
    assert (after.history[-1].kind, after.history[-1].detail["actor"]) == ("replay", "bob")


def test_unknown_ids_exit_3_after_the_rest(cli: Cli) -> None:
    """Ids that do not exist are reported (exit 3); the others are still replayed."""
    (record,) = cli.seed(1)
    result = cli("retry", record.id, "missing-id")
    assert result.exit_code == 3
    assert "1 not found" in result.stdout
    assert cli.statuses([record]) == ["scheduled"]


def test_bulk_needs_a_selection(cli: Cli) -> None:
    """retry with neither ids, --all nor --group is a usage error that changes nothing."""
    records = cli.seed(2)
    result = cli("retry", "--topic", "orders.created")
    assert result.exit_code == 2
    assert "--all" in result.stderr
    assert cli.statuses(records) == ["dead", "dead"]


def test_bulk_without_terminal_needs_yes(cli: Cli) -> None:
    """Off a terminal, a bulk replay refuses without --yes and changes nothing."""
    records = cli.seed(2)
    result = cli("retry", "--all")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert cli.statuses(records) == ["dead", "dead"]


def test_dry_run_plan_matches_the_real_run(cli: Cli) -> None:
    """The plan's count is exactly what a run bounded by the plan's --upto replays."""
    cli.seed(3, topic="a")
    cli.seed(2, topic="b")
    cli.seed(4, topic="c")
    plan = json.loads(cli("retry", "--all", "--topic", "a", "--dry-run", "--json").stdout)
    assert (plan["count"], plan["by_topic"]) == (3, {"a": 3})
    cli.seed(2, topic="a")  # arrives after the plan, before the run: the run may not exceed it
    run = cli("retry", "--all", "--topic", "a", "--upto", plan["upto"], "--yes", "--json")
    assert json.loads(run.stdout)["scheduled"] == 3


def test_dry_run_changes_nothing(cli: Cli) -> None:
    """--dry-run prints the plan and leaves every record dead."""
    records = cli.seed(3, fingerprint="fp1")
    result = cli("retry", "--group", "fp1", "--dry-run")
    assert "would replay 3 dead letters" in result.stdout
    assert cli.statuses(records) == ["dead"] * 3


def test_group_replays_one_cause(cli: Cli) -> None:
    """--group replays the records of that fingerprint only."""
    chosen = cli.seed(2, fingerprint="fp1")
    other = cli.seed(1, fingerprint="fp2")
    cli("retry", "--group", "fp1", "--yes")
    assert cli.statuses(chosen + other) == ["scheduled", "scheduled", "dead"]


def test_version_selects_a_release(cli: Cli) -> None:
    """--all --version replays what failed on that release only."""
    bad = cli.seed(2, version="1.4.0")
    good = cli.seed(1, version="1.3.9")
    cli("retry", "--all", "--version", "1.4.0", "--yes")
    assert cli.statuses(bad + good) == ["scheduled", "scheduled", "dead"]


def test_loop_guard_skips_often_replayed_records(cli: Cli) -> None:
    """Bulk replays leave out records replayed max_replays times, unless --force."""
    (fresh,) = cli.seed(1)
    (looping,) = cli.seed(1, replays=5)
    plan = json.loads(cli("retry", "--all", "--dry-run", "--json").stdout)
    assert (plan["count"], plan["left_out"]) == (1, 1)
    cli("retry", "--all", "--yes")
    assert cli.statuses([fresh, looping]) == ["scheduled", "dead"]
    cli("retry", "--all", "--yes", "--force")
    assert cli.statuses([looping]) == ["scheduled"]


def test_patch_merges_and_keeps_the_original(cli: Cli) -> None:
    """--patch applies a JSON merge patch; the history keeps the original payload."""
    (record,) = cli.seed(1, payload={"amount": "twelve", "note": "x", "keep": 1})
    result = cli("retry", record.id, "--patch", '{"amount": 12, "note": null}')
    assert result.exit_code == 0, result.output
    after = cli.get(record.id)
    assert after is not None
    assert after.payload == {"amount": 12, "keep": 1}
    assert after.history[-1].detail["original_payload"] == {
        "amount": "twelve",
        "note": "x",
        "keep": 1,
    }


def test_patch_is_in_the_audit_trail(cli: Cli) -> None:
    """The audit entry of a patched replay has the patch and the original payloads."""
    (record,) = cli.seed(1, payload={"amount": "x"})
    cli("retry", record.id, "--patch", '{"amount": 1}')
    detail = json.loads(cli("audit", "--json").stdout)["items"][0]["detail"]
    assert detail["patch"] == {"amount": 1}
    assert detail["original_payloads"] == {record.id: {"amount": "x"}}


def test_patch_from_a_file(cli: Cli) -> None:
    """--patch @FILE reads the merge patch from a file."""
    (record,) = cli.seed(1, payload={"a": 1})
    (cli.workdir / "fix.json").write_text('{"b": 2}')
    cli("retry", record.id, "--patch", "@fix.json")
    after = cli.get(record.id)
    assert after is not None and after.payload == {"a": 1, "b": 2}


def test_bad_patch_is_a_usage_error(cli: Cli) -> None:
    """A patch that is not JSON is one line, exit code 2, and nothing changes."""
    (record,) = cli.seed(1)
    result = cli("retry", record.id, "--patch", "{amount: 12}")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --patch: not valid JSON")
    assert cli.statuses([record]) == ["dead"]


def test_rate_still_replays_everything(cli: Cli) -> None:
    """--rate paces the replay but schedules every selected record."""
    records = cli.seed(4)
    report = json.loads(cli("retry", "--all", "--rate", "1000", "--yes", "--json").stdout)
    assert report["scheduled"] == 4
    assert cli.statuses(records) == ["scheduled"] * 4


def test_canary_without_a_worker_stops_and_keeps_the_rest_dead(cli: Cli) -> None:
    """With no scheduler running, the canary never settles: the rest stay dead (exit 1)."""
    records = cli.seed(5)
    result = cli("retry", "--all", "--canary", "2", "--wait", "0.2s", "--yes")
    assert result.exit_code == 1
    assert "did not settle" in result.stdout
    assert sorted(cli.statuses(records)) == ["dead"] * 3 + ["scheduled"] * 2


def test_audit_masks_redacted_original_payloads(cli: Cli) -> None:
    """The audit trail's original payloads go through the config's redact patterns."""
    (record,) = cli.seed(1, payload={"password": "hunter2", "amount": "x"})
    config = cli.workdir / "redrive.toml"
    config.write_text('redact = ["password"]\n')
    cli("--config", str(config), "retry", record.id, "--patch", '{"amount": 1}')
    detail = json.loads(cli("--config", str(config), "audit", "--json").stdout)["items"][0][
        "detail"
    ]
    assert detail["original_payloads"][record.id] == {"password": "***", "amount": "x"}


def test_show_masks_the_original_payload_in_the_history(cli: Cli) -> None:
    """show --json masks redacted fields in the original payload a patch kept."""
    (record,) = cli.seed(1, payload={"password": "hunter2", "amount": "x"})
    config = cli.workdir / "redrive.toml"
    config.write_text('redact = ["password"]\n')
    cli("retry", record.id, "--patch", '{"amount": 1}')
    shown = json.loads(cli("--config", str(config), "show", record.id, "--json").stdout)
    assert shown["history"][-1]["detail"]["original_payload"]["password"] == "***"
    assert "hunter2" not in cli("--config", str(config), "show", record.id).stdout
