"""The one place that picks concrete backends: a store URL becomes a store."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redrive.config import DEFAULT_STORE_URL
from redrive.exceptions import ConfigError
from redrive.stores.base import Store
from redrive.stores.url import mask_url

__all__ = ["mask_url", "open_store"]


def open_store(url: str = DEFAULT_STORE_URL, **options: Any) -> Store:
    """Open the store at ``url``.

    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``
    - ``postgresql://user:password@host:5432/db`` (``pip install "redrive[postgres]"``)

    Options go to the store's constructor (``migrate=False``, ``schema="redrive"``, ...).

    .. versionadded:: 0.1
    """
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:  # e.g. an unclosed [IPv6 bracket
        raise ConfigError(f"not a store URL: {mask_url(url)!r} ({exc})", key="store_url") from exc
    if scheme == "sqlite":
        from redrive.stores.sqlite import SQLiteStore

        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ConfigError(f"expected sqlite:///PATH, got {mask_url(url)!r}", key="store_url")
        return SQLiteStore(url[len(prefix) :], **options)
    if scheme in ("postgresql", "postgres"):
        try:
            from redrive.stores.postgres import PostgresStore
        except ImportError as exc:
            raise ConfigError(
                'the PostgreSQL store needs its extra: pip install "redrive[postgres]"',
                key="store_url",
            ) from exc
        return PostgresStore(url, **options)
    raise ConfigError(
        f"unsupported store URL {mask_url(url)!r}: use sqlite:///PATH or postgresql://...",
        key="store_url",
    )
