"""Masking of sensitive payload fields in what operators see (API, console, exports).

The store keeps the original payload, so a replay still gets the real values. Patterns
come from the config's ``redact`` list:

- ``password``       the key ``password`` at any depth;
- ``card.number``    that exact path from the top of the payload;
- ``*.secret``       ``secret`` one level below any top-level key (``*`` is one segment).

Matching ignores case. Headers are masked by the same patterns (by header name), and so
are the payloads that history entries and audit details keep (a patched replay's original
payload and its patch).

Error text is free text: a validation error may quote the very value it rejects. So the
*values* found at masked paths are also scrubbed out of error messages and tracebacks,
both when the engine records a failure (they never reach the store) and when a record is
shown, whatever wrote it (a bus without the redact settings, an import, another app).
:meth:`Redactor.mask` is the one function every way out calls (API, console, CLI,
exports): payload, headers, error message, traceback, and every history entry's message
and kept payloads. Group sample messages are scrubbed with the sample record's payload
(``DeadLetterQueue.groups``). In a patch, a masked value means "keep what is there": an
operator can send an edited payload back without knowing (or overwriting) the secrets in
it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from redrive.exceptions import MaskInList
from redrive.models import Attempt, DeadLetter

MASK = "***"
_MIN_SECRET = 4  # shorter values are not scrubbed from text: "1" would mask every digit


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

    # -- payloads and headers ------------------------------------------------------------
    def payload(self, value: Any) -> Any:
        """A copy of ``value`` with matching fields masked (the input is not changed)."""
        return self._walk(value, ()) if self else value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``headers`` with matching names masked."""
        return {k: MASK if self._matches((k.lower(),)) else v for k, v in headers.items()}

    def secrets(self, payload: Any) -> list[str]:
        """The text of every value at a masked path (long enough to scrub), longest first."""
        found: set[str] = set()
        if self:
            self._collect(payload, (), found, inside=False)
        return sorted(found, key=len, reverse=True)

    def text_secrets(self, payload: Any, history: Iterable[Mapping[str, Any]] = ()) -> list[str]:
        """The secrets error text may quote: those of the payload and of every payload a
        history entry keeps (the original of a patched replay), longest first."""
        found = set(self.secrets(payload))
        for detail in history:
            for key, value in detail.items():
                if "payload" in key:
                    found.update(self.secrets(value))
        return sorted(found, key=len, reverse=True)

    def scrub(self, text: str, secrets: Iterable[str]) -> str:
        """``text`` with every occurrence of each secret replaced by the mask."""
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    # -- records -----------------------------------------------------------------------
    def mask(self, record: DeadLetter) -> DeadLetter:
        """The record as operators may see it: payload and headers masked, the payloads its
        history keeps masked, and the payload's secrets scrubbed out of the error message,
        the traceback and every history message. Every surface shows records through this.

        .. versionadded:: 0.2
        """
        if not self:
            return record
        secrets = self.text_secrets(record.payload, (entry.detail for entry in record.history))
        event = dataclasses.replace(
            record.event,
            payload=self.payload(record.payload),
            headers=self.headers(record.event.headers),
        )
        return record.replace(
            event=event,
            error_message=self.scrub(record.error_message, secrets),
            traceback=self.scrub(record.traceback, secrets),
            history=tuple(self._attempt(entry, secrets) for entry in record.history),
        )

    def message_of(self, record: DeadLetter) -> str:
        """The record's error message as shown (its payload's secrets scrubbed)."""
        if not self:
            return record.error_message
        secrets = self.text_secrets(record.payload, (entry.detail for entry in record.history))
        return self.scrub(record.error_message, secrets)

    def _attempt(self, entry: Attempt, secrets: list[str]) -> Attempt:
        message = entry.error_message
        return dataclasses.replace(
            entry,
            error_message=None if message is None else self.scrub(message, secrets),
            detail=self.detail(entry.detail) if entry.detail else entry.detail,
        )

    def record(self, data: dict[str, Any]) -> dict[str, Any]:
        """Mask a record's JSON shape (``to_dict()``) as :meth:`mask` masks the record."""
        if not self:
            return data
        history = data.get("history") or ()
        details = (e.get("detail") or {} for e in history if isinstance(e, Mapping))
        secrets = self.text_secrets(data.get("payload"), details)
        masked = dict(data)
        masked["payload"] = self.payload(data.get("payload"))
        masked["headers"] = self.headers(data.get("headers") or {})
        for field in ("error_message", "traceback"):
            if isinstance(data.get(field), str):
                masked[field] = self.scrub(data[field], secrets)
        masked["history"] = [self._entry(entry, secrets) for entry in history]
        return masked

    def _entry(self, entry: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
        entry = dict(entry)
        if entry.get("detail"):
            entry["detail"] = self.detail(entry["detail"])
        if isinstance(entry.get("error_message"), str):
            entry["error_message"] = self.scrub(entry["error_message"], secrets)
        return entry

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

    # -- walking -----------------------------------------------------------------------
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

    def _collect(self, value: Any, path: tuple[str, ...], found: set[str], inside: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                here = (*path, str(key).lower())
                self._collect(item, here, found, inside or self._matches(here))
        elif isinstance(value, list):
            for item in value:
                self._collect(item, path, found, inside)
        elif inside and value is not None and not isinstance(value, bool):
            text = str(value)
            if len(text) >= _MIN_SECRET:
                found.add(text)

    def _matches(self, path: tuple[str, ...]) -> bool:
        if path[-1] in self._anywhere:
            return True
        return any(
            len(pattern) == len(path) and all(map(fnmatch.fnmatchcase, path, pattern))
            for pattern in self._paths
        )


def keep_masked(patch: Any, path: str = "") -> Any:
    """A JSON merge patch with every masked value taken out, so that it means "keep the
    value that is there" (merge patches leave absent keys as they are).

    Raises ``MaskInList`` for a masked value inside a list: a merge patch replaces a list
    whole, so its masked items could not be restored.
    """
    if isinstance(patch, Mapping):
        return {
            key: keep_masked(value, f"{path}.{key}" if path else str(key))
            for key, value in patch.items()
            if value != MASK
        }
    if isinstance(patch, list):
        if _contains_mask(patch):
            raise MaskInList(
                f"the patch keeps a masked value ({MASK}) inside the list at "
                f"{path or 'the top'}: a list is replaced whole, so send its real values"
            )
        return patch
    return patch


def _contains_mask(value: Any) -> bool:
    if value == MASK:
        return True
    if isinstance(value, Mapping):
        return any(_contains_mask(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_mask(item) for item in value)
    return False
