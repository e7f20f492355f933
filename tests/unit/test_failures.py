"""Traceback text and fingerprints."""

from __future__ import annotations

import traceback

from redrive.core.failures import fingerprint, format_traceback, normalise_message


def _stdlib(error: BaseException) -> str:
    """What Python prints, without the column markers (~~^^) that redrive leaves out."""
    lines = "".join(traceback.format_exception(error)).splitlines(keepends=True)
    return "".join(line for line in lines if not (set(line) <= set(" ~^\n") and "^" in line))


def _raise(message: str) -> Exception:
    try:
        raise ConnectionError(message)
    except ConnectionError as exc:
        return exc


def _chained() -> Exception:
    try:
        try:
            raise KeyError("missing")
        except KeyError as inner:
            raise RuntimeError("lookup failed") from inner
    except RuntimeError as exc:
        return exc


class TestTraceback:
    def test_matches_the_standard_library(self) -> None:
        """The cached formatter prints what traceback.format_exception prints."""
        error = _raise("down")
        assert format_traceback(error) == _stdlib(error)

    def test_keeps_chained_causes(self) -> None:
        """A chained cause is part of the text, as Python prints it."""
        error = _chained()
        text = format_traceback(error)
        assert text == _stdlib(error)
        assert "direct cause" in text and "KeyError" in text


class TestFingerprint:
    def test_same_cause_different_ids_same_group(self) -> None:
        """Messages that differ only in ids and numbers share a fingerprint."""
        a = _raise("order 1234 failed for 3f2b8c1e-8a6d-4b9e-9c1d-2f3e4a5b6c7d")
        b = _raise("order 98 failed for 00000000-1111-2222-3333-444444444444")
        assert fingerprint("t", "h", a) == fingerprint("t", "h", b)

    def test_different_handler_or_type_differ(self) -> None:
        """Topic, handler and error type are part of the fingerprint."""
        error = _raise("x")
        assert fingerprint("t", "h", error) != fingerprint("t", "h2", error)
        assert fingerprint("t", "h", error) != fingerprint("t2", "h", error)
        assert fingerprint("t", "h", error) != fingerprint("t", "h", ValueError("x"))

    def test_normalise_masks_volatile_parts(self) -> None:
        """Numbers, hex and quoted values are masked."""
        assert normalise_message("user 'bob' id 42 at 0xdeadbeef") == "user '…' id # at #"
