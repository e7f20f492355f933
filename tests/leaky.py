"""A record as a bus without the redact settings writes it: the secret in the payload is
quoted, raw, by the error message, the traceback and the history."""

from __future__ import annotations

from redrive.models import Attempt, DeadLetter, utcnow
from tests.factories import make_record

SECRET = "hunter2-secret"


def leaky_record(fingerprint: str = "a" * 16) -> DeadLetter:
    """A dead record whose error text quotes the masked ``password`` of its payload."""
    record = make_record(
        payload={"password": SECRET, "n": 1},
        error_message=f"bad password '{SECRET}'",
        fingerprint=fingerprint,
    )
    entry = Attempt(
        kind="attempt",
        at=utcnow(),
        error_type="ValueError",
        error_message=f"rejected {SECRET}",
        duration=0.01,
    )
    return record.replace(
        traceback=f"Traceback (most recent call last):\nValueError: bad password {SECRET!r}\n",
        history=(entry,),
    )
