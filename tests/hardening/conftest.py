"""The hardening tests reuse the API's and the CLI's fixtures (real uvicorn, real stores)."""

from __future__ import annotations

from tests.acceptance.conftest import cli
from tests.api.conftest import api, api_settings, api_store

__all__ = ["api", "api_settings", "api_store", "cli"]
