"""Traceback text and fingerprints."""

from __future__ import annotations

import traceback

from redrive.core.failures import (
    describe,
    error_message,
    fingerprint,
    format_traceback,
    normalise_message,
)
from redrive.policy import error_name


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


def _reference(error: BaseException) -> tuple[str, str, str]:
    """(message, traceback, fingerprint topic/handler 't'/'h') as the single-purpose
    functions compute them: what ``describe`` must give in one pass."""
    return error_message(error), format_traceback(error), fingerprint("t", "h", error)


def _with_context() -> Exception:
    try:
        try:
            raise KeyError("missing")
        except KeyError:
            raise RuntimeError("while handling") from None
    except RuntimeError as exc:
        return exc


def _implicit_context() -> Exception:
    try:
        try:
            raise KeyError("missing")
        except KeyError:
            raise RuntimeError("during")  # noqa: B904 (the implicit context is the case)
    except RuntimeError as exc:
        return exc


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


class TestDescribe:
    """``describe`` gives in one pass what the single-purpose functions give."""

    def test_same_texts_as_the_single_functions(self) -> None:
        """Plain, chained, suppressed and implicit contexts, no traceback, a long or
        unprintable or non-UTF-8 message: the same four texts."""
        cases: list[BaseException] = [
            _raise("down 42"),
            _chained(),
            _with_context(),
            _implicit_context(),
            ValueError("never raised"),
            _raise("x" * 5000),
            _raise("bad name \udcff here"),
            _Unprintable(),
        ]
        for error in cases:
            failure = describe(error, "t", "h")
            message, text, digest = _reference(error)
            assert failure.error_type == error_name(error)
            assert (failure.message, failure.traceback, failure.fingerprint) == (
                message,
                text,
                digest,
            ), error

    def test_matches_the_standard_library(self) -> None:
        """The traceback text is what Python prints (column markers aside)."""
        for error in (_raise("down"), _chained(), _implicit_context()):
            assert describe(error, "t", "h").traceback == _stdlib(error)

    def test_storable_text(self) -> None:
        """A lone surrogate in the message leaves as its escape, in message and traceback."""
        failure = describe(_raise("bad \udcff"), "t", "h")
        assert "\\udcff" in failure.message and "\\udcff" in failure.traceback
        failure.traceback.encode("utf-8")  # raises if anything unstorable were left

    def test_stack_cached_per_frames_message_per_error(self) -> None:
        """Two errors from one line share the stack text but keep their own messages."""
        a, b = _raise("first 1"), _raise("second 2")
        ta, tb = describe(a, "t", "h").traceback, describe(b, "t", "h").traceback
        assert ta.endswith("ConnectionError: first 1\n")
        assert tb.endswith("ConnectionError: second 2\n")
        assert ta.rsplit("\n", 2)[0] == tb.rsplit("\n", 2)[0]
