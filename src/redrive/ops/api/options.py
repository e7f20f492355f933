"""The server's own settings: the ``[api]`` table and the ``redact`` list of the config.

```toml
redact = ["password", "card_number", "*.secret"]

[api]
max_body_bytes = 1048576   # larger requests get 413
max_page = 500             # the largest ``limit`` a listing accepts
max_bulk_ids = 10000       # ids one bulk request may name
session_hours = 12         # console sign-in lifetime
metrics_auth = false       # true: /metrics needs a viewer token too
archive_dir = "redrive-archive"  # where POST /archive writes and POST /import reads
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from redrive.config import Settings
from redrive.exceptions import ConfigError
from redrive.redact import Redactor

_INTS = {"max_body_bytes": 1024, "max_page": 1, "max_bulk_ids": 1, "session_hours": 1}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ApiOptions:
    """Limits and switches of the REST API and console.

    .. versionadded:: 0.1
    """

    max_body_bytes: int = 1024 * 1024
    max_page: int = 500
    max_bulk_ids: int = 10_000
    session_hours: int = 12
    metrics_auth: bool = False
    archive_dir: str = "redrive-archive"
    redact: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiOptions:
        """Read and validate ``settings.sections['api']`` and ``['redact']``."""
        source = settings.source
        table = settings.sections.get("api", {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"expected a table, got {table!r}", source=source, key="api")
        values: dict[str, Any] = {}
        for key, value in table.items():
            values[key] = _value(key, value, source)
        return cls(**values, redact=settings.redact)

    def redactor(self) -> Redactor:
        """The masker for payloads and headers in responses, pages and exports."""
        return Redactor(self.redact)


def _value(key: str, value: Any, source: str) -> Any:
    if key == "metrics_auth":
        if not isinstance(value, bool):
            raise ConfigError(
                f"expected true or false, got {value!r}", source=source, key=f"api.{key}"
            )
        return value
    if key == "archive_dir":
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"expected a directory path, got {value!r}", source=source, key=f"api.{key}"
            )
        return value
    if key not in _INTS:
        known = ", ".join(sorted([*_INTS, "archive_dir", "metrics_auth"]))
        raise ConfigError(
            f"expected one of {known}, got an unknown key", source=source, key=f"api.{key}"
        )
    minimum = _INTS[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"expected an integer >= {minimum}, got {value!r}", source=source, key=f"api.{key}"
        )
    return value
