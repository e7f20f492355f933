"""``redrive nats`` options beyond the basics: provision from an app's policies and as JSON,
import as JSON and of a stream that is not there, and the refusals of bad options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_support import Cli
from tests.nats.names import Names
from tests.nats.support import make_stream
from tests.nats.test_cli import run_cli

pytestmark = pytest.mark.nats


@pytest.fixture
def cli(tmp_path: Path, nats_url: str, names: Names) -> Cli:
    """``redrive`` on a fresh SQLite file, with a redrive.toml naming the test's stream."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "redrive.toml").write_text(
        f'[nats]\nservers = ["{nats_url}"]\nstream = "{names.stream}"\n'
        f'durable = "{names.durable}"\n'
    )
    return Cli(db=tmp_path / "redrive.db", workdir=work)


async def test_provision_json_lists_each_change_with_its_fields(
    nc: Any, names: Names, cli: Cli
) -> None:
    """--json gives one object per stream or consumer: its kind, name and action, and the
    fields it sets as [before, after] strings."""
    await make_stream(nc.jetstream(), names)
    result = await run_cli(cli, "--json", "nats", "provision", "--dry-run")
    assert result.exit_code == 0, result.output
    changes = {(c["kind"], c["name"]): c for c in json.loads(result.output)}
    dlq = changes[("stream", f"{names.stream}_DLQ")]
    assert dlq["action"] == "create"
    durable = changes[("consumer", f"{names.stream}/{names.durable}")]
    assert durable["fields"]["max_deliver"][1] == "6"  # the default 3 attempts + 3
    # --dry-run made nothing: the streams are as before.
    streams = [info.config.name for info in await nc.jetstream().streams_info()]
    assert names.stream in streams and f"{names.stream}_DLQ" not in streams


async def test_provision_with_an_app_takes_max_deliver_from_its_policies(
    nc: Any, names: Names, cli: Cli
) -> None:
    """With --app, max_deliver is the app's handlers' attempts (run_app: 2) + 3."""
    await make_stream(nc.jetstream(), names)
    result = await run_cli(
        cli, "nats", "provision", "--app", "tests.nats.run_app:make", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "max_deliver=5" in result.output


async def test_provision_without_stream_or_durable_says_which_options(
    tmp_path: Path, nats_url: str
) -> None:
    """No --stream/--durable and none in [nats]: exit 2 naming both options."""
    work = tmp_path / "bare"
    work.mkdir()
    (work / "redrive.toml").write_text(f'[nats]\nservers = ["{nats_url}"]\n')
    cli = Cli(db=tmp_path / "bare.db", workdir=work)
    result = await run_cli(cli, "nats", "provision")
    assert result.exit_code == 2
    assert "provision: give --stream and --durable (or set them in [nats])" in result.output


async def test_run_refuses_an_app_that_is_no_consumer(cli: Cli) -> None:
    """--app naming something that is not a JetStreamConsumer is a one-line usage error."""
    (cli.workdir / "nats_cli_notaconsumer.py").write_text("consumer = 'not one'\n")
    result = await run_cli(cli, "nats", "run", "--app", "nats_cli_notaconsumer:consumer")
    assert result.exit_code == 2
    expected = "--app: nats_cli_notaconsumer:consumer is not a JetStreamConsumer"
    assert f"{expected} (or a function returning one)" in result.output


async def test_import_json_counts_and_an_unknown_stream(nc: Any, names: Names, cli: Cli) -> None:
    """--json import gives the stream and its counts; a stream that is not on the server
    is exit 2 naming it."""
    js = nc.jetstream()
    legacy = f"{names.stream}OLD_DLQ"
    await js.add_stream(name=legacy, subjects=[f"old{names.subject}.dlq.>"])
    await js.publish(
        f"old{names.subject}.dlq.orders.created",
        b'{"order": 1}',
        headers={"X-Original-Subject": "orders.created", "X-Error-Type": "KeyError"},
    )
    result = await run_cli(
        cli, "--json", "nats", "import", legacy, "--prefix", f"old{names.subject}.dlq"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"stream": legacy, "read": 1, "added": 1, "skipped": 0}
    missing = await run_cli(cli, "nats", "import", f"{names.stream}NOPE")
    assert missing.exit_code == 2
    assert f"import: no stream '{names.stream}NOPE' on the server" in missing.output
