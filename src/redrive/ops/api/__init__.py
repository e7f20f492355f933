"""The REST API and web console: ``create_app`` builds the ASGI app (``pip install
"redrive[server]"``); ``redrive serve`` runs it."""

from __future__ import annotations

from redrive.ops.api.app import create_app

__all__ = ["create_app"]
