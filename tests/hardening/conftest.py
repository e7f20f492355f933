"""The hardening tests reuse the API's and the CLI's fixtures (real uvicorn, real stores)."""

from __future__ import annotations

from tests.api.conftest import api, api_settings, api_store
from tests.cli.conftest import cli

__all__ = ["api", "api_settings", "api_store", "cli"]
