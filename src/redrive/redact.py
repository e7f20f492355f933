"""Masking of sensitive payload fields in what operators see (API, console, exports).

The store keeps the original, so a replay still gets the real payload. Patterns come from
the config's ``redact`` list:

- ``password``       the key ``password`` at any depth;
- ``card.number``    that exact path from the top of the payload;
- ``*.secret``       ``secret`` one level below any top-level key (``*`` is one segment).

Matching ignores case. Headers are masked by the same patterns (by header name), and so
are the payloads that history entries and audit details keep (a patched replay's original
payload and its patch).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"


class Redactor:
    """Masks values whose key path matches one of ``patterns``.

    .. versionadded:: 0.1
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._anywhere: set[str] = set()
        self._paths: list[tuple[str, ...]] = []
        for pattern in patterns:
            parts = tuple(part.lower() for part in pattern.split(".") if part)
            if len(parts) == 1:
                self._anywhere.add(parts[0])
            elif parts:
                self._paths.append(parts)

    def __bool__(self) -> bool:
        return bool(self._anywhere or self._paths)

    def payload(self, value: Any) -> Any:
        """A copy of ``value`` with matching fields masked (the input is not changed)."""
        return self._walk(value, ()) if self else value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``headers`` with matching names masked."""
        return {k: MASK if self._matches((k.lower(),)) else v for k, v in headers.items()}

    def record(self, data: dict[str, Any]) -> dict[str, Any]:
        """Mask a record's JSON shape (``to_dict()``): payload, headers, and the payloads
        its history keeps."""
        if not self:
            return data
        masked = dict(data)
        masked["payload"] = self.payload(data.get("payload"))
        masked["headers"] = self.headers(data.get("headers") or {})
        masked["history"] = [
            {**entry, "detail": self.detail(entry["detail"])} if entry.get("detail") else entry
            for entry in data.get("history") or ()
        ]
        return masked

    def detail(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """Mask the payloads a history entry or an audit detail keeps: any key naming a
        payload (``original_payload``), ``patch``, and ``original_payloads`` by id."""
        if not self:
            return dict(detail)
        masked: dict[str, Any] = {}
        for key, value in detail.items():
            if key == "original_payloads" and isinstance(value, Mapping):
                masked[key] = {k: self.payload(v) for k, v in value.items()}
            elif key == "patch" or "payload" in key:
                masked[key] = self.payload(value)
            else:
                masked[key] = value
        return masked

    def _walk(self, value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, Mapping):
            result = {}
            for key, item in value.items():
                here = (*path, str(key).lower())
                result[key] = MASK if self._matches(here) else self._walk(item, here)
            return result
        if isinstance(value, list):
            return [self._walk(item, path) for item in value]
        return value

    def _matches(self, path: tuple[str, ...]) -> bool:
        if path[-1] in self._anywhere:
            return True
        return any(
            len(pattern) == len(path) and all(map(fnmatch.fnmatchcase, path, pattern))
            for pattern in self._paths
        )
