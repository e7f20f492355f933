"""The REST API and web console: ``create_app`` builds the ASGI app (``pip install
"redrive[server]"``); ``redrive serve`` runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redrive.ops.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so the console can import this package's modules without loading the app
    # (which installs the console): no import cycle between the two.
    if name == "create_app":
        from redrive.ops.api.app import create_app

        return create_app
    raise AttributeError(f"module 'redrive.ops.api' has no attribute {name!r}")
