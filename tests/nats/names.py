"""Per-test names of streams, subjects and consumers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    """Stream, subject and consumer names no other test uses."""

    stream: str
    subject: str  # the stream captures subject + ".>"
    durable: str

    def of(self, suffix: str) -> str:
        """A subject under this test's root."""
        return f"{self.subject}.{suffix}"
