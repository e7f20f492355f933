"""``redrive export`` with redact patterns: a secret of the payload never reaches the file,
not in the payload, nor quoted by the error message, the traceback or a history entry, and
a payload that keeps its secrets inside a list is masked there too."""

from __future__ import annotations

import dataclasses
import json

from redrive.models import Attempt, utcnow
from redrive.redact import MASK
from tests.cli.cli_support import Cli
from tests.factories import make_record

SECRET = "hunter2-secret"


def test_export_scrubs_the_payload_secrets_from_every_text(cli: Cli) -> None:
    """The password in a list of users is masked in the payload and scrubbed from the error
    message, the traceback and each history message; other text stays as it was."""
    record = make_record(
        payload={"users": [{"name": "ana", "password": SECRET}]},
        error_message=f"login failed for ana with {SECRET}",
    )
    record = dataclasses.replace(
        record,
        traceback=f"Traceback ...\nValueError: bad password {SECRET}",
        history=(
            Attempt(
                kind="attempt",
                at=utcnow(),
                error_type="ValueError",
                error_message=f"first try: {SECRET} refused",
            ),
        ),
    )
    cli.add(record)
    (cli.workdir / "redrive.toml").write_text('redact = ["password"]\n')
    out = cli.workdir / "out.jsonl"
    result = cli("export", "--output", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert SECRET not in text
    [exported] = [json.loads(line) for line in text.splitlines()]
    assert exported["payload"] == {"users": [{"name": "ana", "password": MASK}]}
    assert exported["error_message"] == f"login failed for ana with {MASK}"
    assert exported["traceback"].endswith(f"bad password {MASK}")
    [entry] = exported["history"]
    assert entry["error_message"] == f"first try: {MASK} refused"


def test_redacted_masks_a_records_json_shape_as_mask_masks_the_record() -> None:
    """``redrive.service.redacted`` (for code that holds a record's ``to_dict()``): the
    payload and headers masked, the secrets scrubbed from the error, the traceback and the
    history messages, and the original payload a patch kept masked too."""
    from redrive.redact import Redactor
    from redrive.service import redacted

    record = make_record(payload={"users": [{"password": SECRET}]}, error_message=f"bad {SECRET}")
    record = dataclasses.replace(
        record,
        traceback=f"ValueError: {SECRET}",
        history=(
            Attempt(
                kind="patch",
                at=utcnow(),
                error_message=f"was {SECRET}",
                detail={"original_payload": {"password": SECRET}},
            ),
        ),
    )
    data = record.to_dict()
    masked = redacted(data, Redactor(["password"]))
    assert SECRET not in json.dumps(masked)
    assert masked["payload"] == {"users": [{"password": MASK}]}
    assert masked["error_message"] == f"bad {MASK}"
    assert masked["history"][0]["detail"] == {"original_payload": {"password": MASK}}
    assert redacted(data, None) is data
