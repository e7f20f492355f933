"""redrive: a complete dead-letter queue for event-driven Python services.

Failed events are captured with their full context, retried by policy, and kept as dead
letters that operators can inspect, group, replay and clean up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load lazily, so `redrive --help` starts fast
    from redrive.bootstrap import open_store
    from redrive.bus import EventBus
    from redrive.config import Settings
    from redrive.core.engine import HandlerSpec
    from redrive.exceptions import (
        ConfigError,
        InvalidTransition,
        NonRetriableError,
        NotFound,
        PolicyError,
        RedriveError,
        RetryAfter,
        StoreError,
        StoreUnavailable,
        TransportError,
    )
    from redrive.hooks import Hook
    from redrive.models import Attempt, DeadLetter, Event, Status
    from redrive.policy import Decision, RetryPolicy
    from redrive.service import DeadLetterQueue, Result
    from redrive.stores.base import Filter, Group, Page, Stats, Store

_LOCATIONS = {
    "Attempt": "models",
    "DeadLetter": "models",
    "Event": "models",
    "Status": "models",
    "ConfigError": "exceptions",
    "InvalidTransition": "exceptions",
    "NonRetriableError": "exceptions",
    "NotFound": "exceptions",
    "PolicyError": "exceptions",
    "RedriveError": "exceptions",
    "RetryAfter": "exceptions",
    "StoreError": "exceptions",
    "StoreUnavailable": "exceptions",
    "TransportError": "exceptions",
    "DeadLetterQueue": "service",
    "Result": "service",
    "Decision": "policy",
    "RetryPolicy": "policy",
    "EventBus": "bus",
    "HandlerSpec": "core.engine",
    "Hook": "hooks",
    "Settings": "config",
    "Filter": "stores.base",
    "Group": "stores.base",
    "Page": "stores.base",
    "Stats": "stores.base",
    "Store": "stores.base",
    "open_store": "bootstrap",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'redrive' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"redrive.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "ConfigError",
    "DeadLetter",
    "DeadLetterQueue",
    "Decision",
    "Event",
    "EventBus",
    "Filter",
    "Group",
    "HandlerSpec",
    "Hook",
    "InvalidTransition",
    "NonRetriableError",
    "NotFound",
    "Page",
    "PolicyError",
    "RedriveError",
    "Result",
    "RetryAfter",
    "RetryPolicy",
    "Settings",
    "Stats",
    "Status",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TransportError",
    "open_store",
]
