"""The exceptions redrive raises, and the ones handlers raise to steer retries.

Everything redrive raises derives from one root::

    RedriveError
    ├── ConfigError            a bad config file or environment variable
    ├── PolicyError            an impossible retry policy
    ├── NotFound               no dead letter (or other record) with that id
    ├── InvalidTransition      the record is not in a status that allows the change
    ├── InvalidInput           an operator's input cannot be used (e.g. a payload patch)
    │   └── MaskInList         a patch keeps a masked value inside a list
    ├── FormatError            a file is not a valid export or archive (names file and line)
    ├── StoreError             the store failed; the driver's error is the __cause__
    │   └── StoreUnavailable   the store could not be reached within the timeout
    └── TransportError         a broker failed; the driver's error is the __cause__

Handlers raise these to steer their own retries (they are not ``RedriveError``\\ s)::

    NonRetriableError          the event can never succeed: dead at once
    RetryAfter(seconds)        retry, but not before ``seconds``

``WorkerLost`` is what redrive records when attempts ended with their worker (a crash, a
kill, out of memory) until the policy's attempts ran out.

Each class's docstring is its default message.
"""

from __future__ import annotations


class RedriveError(Exception):
    """redrive failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(RedriveError):
    """The configuration is invalid."""

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.source = source
        self.key = key
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class PolicyError(RedriveError):
    """The retry policy is invalid."""


class NotFound(RedriveError):
    """No record with that id."""


class InvalidTransition(RedriveError):
    """The record's status does not allow this change."""


class InvalidInput(RedriveError):
    """The input cannot be used."""


class MaskInList(InvalidInput):
    """A patch keeps a masked value inside a list, where it cannot be restored."""


class FormatError(RedriveError):
    """A file is not a valid export or archive; the message names the file and line."""


class StoreError(RedriveError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store could not be reached; the failure record was not written."""


class TransportError(RedriveError):
    """The transport failed."""


class NonRetriableError(Exception):
    """Raise from a handler when the event can never succeed: it goes dead at once."""


class WorkerLost(Exception):
    """The worker running the attempt stopped before it finished (crash, kill, OOM)."""


class RetryAfter(Exception):
    """Raise from a handler to retry no sooner than ``seconds`` from now.

    The attempt still counts towards ``max_attempts``.
    """

    def __init__(self, seconds: float, message: str = "") -> None:
        if not seconds >= 0:  # also refuses NaN
            raise PolicyError("RetryAfter needs a delay of zero seconds or more")
        self.seconds = float(seconds)
        super().__init__(message or f"retry after {self.seconds:g}s")
