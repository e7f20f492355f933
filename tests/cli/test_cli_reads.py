"""``redrive list``, ``show``, ``stats``, ``groups``, ``audit`` and the global behaviour."""

from __future__ import annotations

import json

from redrive.models import Status
from tests.cli.cli_support import Cli
from tests.factories import ago


class TestList:
    def test_lists_dead_letters_by_default(self, cli: Cli) -> None:
        """Without --status, only dead letters are listed."""
        dead = cli.seed(2)
        cli.seed(1, status=Status.RESOLVED)
        result = cli("list", "--json")
        assert result.exit_code == 0, result.output
        ids = {item["id"] for item in json.loads(result.stdout)["items"]}
        assert ids == {record.id for record in dead}

    def test_table_fits_80_columns(self, cli: Cli) -> None:
        """At a terminal width of 80 the lines are at most 80 wide and show the full id."""
        (record,) = cli.seed(1, error_message="x" * 300, topic="a.very.long.topic.name.indeed")
        result = cli("list", COLUMNS="80")
        assert result.exit_code == 0
        assert record.id in result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) <= 80

    def test_piped_tables_print_full_values(self, cli: Cli) -> None:
        """When stdout is not a terminal (| grep), no value is cut."""
        topic = "inventory.reserved.with.a.long.name"
        cli.seed(1, error_message="y" * 200, topic=topic, handler="demo.reserve_stock")
        result = cli("list", COLUMNS="")
        assert topic in result.stdout and "y" * 200 in result.stdout
        assert "…" not in result.stdout

    def test_printed_handler_names_work_as_filters(self, cli: Cli) -> None:
        """The handler column shows what --handler accepts."""
        (record,) = cli.seed(1, handler="demo.reserve_stock")
        shown = cli("list", COLUMNS="")
        assert "demo.reserve_stock" in shown.stdout
        found = cli("list", "--handler", "demo.reserve_stock", "--json").stdout
        assert [item["id"] for item in json.loads(found)["items"]] == [record.id]

    def test_all_statuses_get_a_status_column(self, cli: Cli) -> None:
        """list --status all shows each record's status."""
        cli.seed(1)
        cli.seed(1, status=Status.RESOLVED)
        result = cli("list", "--status", "all", COLUMNS="")
        assert "STATUS" in result.stdout
        assert "resolved" in result.stdout and "dead" in result.stdout

    def test_filters_combine(self, cli: Cli) -> None:
        """Topic, error type, tenant and version filters narrow the listing together."""
        (wanted,) = cli.seed(1, topic="t1", error_type="KeyError", tenant_id="acme", version="2.0")
        cli.seed(1, topic="t1", error_type="KeyError", tenant_id="acme", version="1.0")
        cli.seed(1, topic="t2", error_type="KeyError", tenant_id="acme", version="2.0")
        result = cli(
            "list",
            "--topic",
            "t1",
            "--error-type",
            "KeyError",
            "--tenant",
            "acme",
            "--version",
            "2.0",
            "--json",
        )
        assert [item["id"] for item in json.loads(result.stdout)["items"]] == [wanted.id]

    def test_search_looks_in_payload_and_message(self, cli: Cli) -> None:
        """--search finds text in the payload as well as in the error message."""
        (in_payload,) = cli.seed(1, payload={"sku": "NEEDLE-1"})
        (in_message,) = cli.seed(1, error_message="needle broke")
        cli.seed(2)
        result = cli("list", "--search", "needle", "--json")
        ids = {item["id"] for item in json.loads(result.stdout)["items"]}
        assert ids == {in_payload.id, in_message.id}

    def test_since_takes_durations_and_iso_times(self, cli: Cli) -> None:
        """--since 2h keeps recent records; an ISO --until keeps the old ones."""
        (old,) = cli.seed(1, created_at=ago(3 * 86400))
        (new,) = cli.seed(1)
        recent = json.loads(cli("list", "--since", "2h", "--json").stdout)["items"]
        until = (ago(86400)).strftime("%Y-%m-%dT%H:%MZ")
        older = json.loads(cli("list", "--until", until, "--json").stdout)["items"]
        assert [item["id"] for item in recent] == [new.id]
        assert [item["id"] for item in older] == [old.id]

    def test_malformed_since_is_a_usage_error(self, cli: Cli) -> None:
        """A bad --since is one line on stderr and exit code 2, not a traceback."""
        result = cli("list", "--since", "yesterday-ish")
        assert result.exit_code == 2
        assert result.stderr.startswith("error: --since:")
        assert "Traceback" not in result.output

    def test_cursor_pages_through_everything(self, cli: Cli) -> None:
        """Following next_cursor visits every record once."""
        records = cli.seed(5)
        seen: list[str] = []
        cursor: list[str] = []
        while True:
            page = json.loads(cli("list", "--limit", "2", "--json", *cursor).stdout)
            seen += [item["id"] for item in page["items"]]
            if not page["next_cursor"]:
                break
            cursor = ["--cursor", page["next_cursor"]]
        assert sorted(seen) == sorted(record.id for record in records)

    def test_json_masks_redacted_fields(self, cli: Cli) -> None:
        """The config's redact list masks payload fields in JSON output."""
        cli.seed(1, payload={"card": {"number": "4242"}, "order": 1})
        config = cli.workdir / "redrive.toml"
        config.write_text('redact = ["card.number"]\n')
        result = cli("--config", str(config), "list", "--json")
        item = json.loads(result.stdout)["items"][0]
        assert item["payload"] == {"card": {"number": "***"}, "order": 1}


class TestShow:
    def test_shows_payload_traceback_and_timeline(self, cli: Cli) -> None:
        """show prints the pretty payload, the traceback and one timeline row per attempt."""
        (record,) = cli.seed(1, payload={"order_id": 42})
        result = cli("show", record.id)
        assert result.exit_code == 0
        assert '"order_id": 42' in result.stdout
        assert "Traceback (most recent call last)" in result.stdout
        assert "timeline:" in result.stdout

    def test_unknown_id_exits_3(self, cli: Cli) -> None:
        """An id that does not exist is reported with exit code 3."""
        result = cli("show", "no-such-id")
        assert result.exit_code == 3
        assert "no dead letter with id 'no-such-id'" in result.stderr


class TestStatsAndGroups:
    def test_stats_counts_by_topic_and_status(self, cli: Cli) -> None:
        """stats --json gives counts by topic x status and new dead letters in the hour."""
        cli.seed(3, topic="a")
        cli.seed(2, topic="b", status=Status.RESOLVED)
        data = json.loads(cli("stats", "--json").stdout)
        assert data["counts"] == {"a": {"dead": 3}, "b": {"resolved": 2}}
        assert data["new_dead_last_hour"] == {"a": 3}

    def test_stats_table_has_a_total_row(self, cli: Cli) -> None:
        """The stats table ends with the totals across topics."""
        cli.seed(3, topic="a")
        cli.seed(4, topic="b")
        last = cli("stats").stdout.strip().splitlines()[-1].split()
        assert last[:2] == ["all", "7"]

    def test_groups_are_biggest_first(self, cli: Cli) -> None:
        """groups lists one row per fingerprint, biggest first, with its count."""
        cli.seed(2, fingerprint="small")
        cli.seed(5, fingerprint="big")
        data = json.loads(cli("groups", "--json").stdout)
        assert [(g["fingerprint"], g["count"]) for g in data] == [("big", 5), ("small", 2)]


class TestGlobal:
    def test_help_lists_every_command(self, cli: Cli) -> None:
        """redrive --help names each operator command."""
        result = cli("--help")
        names = "list show stats groups retry resolve discard delete purge archive import"
        for name in (*names.split(), "export", "audit", "policy", "demo", "worker"):
            assert f"  {name} " in result.stdout, name

    def test_each_command_help_has_an_example(self, cli: Cli) -> None:
        """Every command's --help shows an example."""
        names = "list show stats groups retry resolve discard delete purge archive import"
        for name in (*names.split(), "export", "audit", "demo", "worker"):
            assert "Example: redrive" in cli(name, "--help").stdout, name
        assert "Example: redrive" in cli("policy", "show", "--help").stdout

    def test_unsupported_store_url_is_a_usage_error(self, cli: Cli) -> None:
        """A store URL with an unknown scheme is one line and exit code 2."""
        result = cli("--store", "mysql://db/x", "stats")
        assert result.exit_code == 2
        assert result.stderr.startswith("error: store_url: unsupported store URL")

    def test_missing_store_directory_fails_cleanly(self, cli: Cli) -> None:
        """A store in a directory that does not exist fails with exit 1 and no traceback."""
        result = cli("--store", "sqlite:////nonexistent/dir/x.db", "resolve", "some-id")
        assert result.exit_code == 1
        assert "no directory" in result.stderr
        assert "Traceback" not in result.output

    def test_read_commands_refuse_a_store_that_does_not_exist(self, cli: Cli) -> None:
        """stats on a mistyped SQLite path says there is no store and creates none."""
        for command in (["stats"], ["list"], ["groups"], ["audit"], ["show", "x"], ["serve"]):
            result = cli("--store", "sqlite:///typo.db", *command)
            assert result.exit_code == 2, command
            assert result.stderr.startswith("error: no store at typo.db"), result.stderr
        assert not (cli.workdir / "typo.db").exists()

    def test_relative_store_path_hints_at_four_slashes(self, cli: Cli) -> None:
        """A path that looks absolute but has three slashes gets the sqlite://// hint."""
        result = cli("--store", "sqlite:///srv/app/x.db", "stats")
        assert "sqlite:////srv/app/x.db" in result.stderr

    def test_real_script_reports_not_found(self, cli: Cli) -> None:
        """Through the installed script, an unknown id exits 3 with a one-line error."""
        cli.seed(1)
        result = cli.run("show", "nope")
        assert result.returncode == 3
        assert result.stderr.strip().splitlines() == ["error: no dead letter with id 'nope'"]


class TestAudit:
    def test_records_actor_and_count(self, cli: Cli) -> None:
        """A change made with --actor shows in the audit trail with its count."""
        records = cli.seed(2)
        cli("resolve", *(r.id for r in records), "--actor", "alice")
        entries = json.loads(cli("audit", "--json").stdout)["items"]
        assert (entries[0]["actor"], entries[0]["action"], entries[0]["count"]) == (
            "alice",
            "resolve",
            2,
        )

    def test_defaults_to_the_os_user(self, cli: Cli) -> None:
        """Without --actor, the audit entry names the OS user."""
        import getpass

        (record,) = cli.seed(1)
        cli("discard", record.id)
        assert json.loads(cli("audit", "--json").stdout)["items"][0]["actor"] == getpass.getuser()
