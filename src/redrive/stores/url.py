"""Store URLs: masking their secrets for messages, and splitting redrive's own options off.

Used by ``bootstrap`` and by the backends, so no backend imports ``bootstrap`` back.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

OPTIONS = ("schema", "retry_timeout", "pool_size")
"""redrive's own query parameters of a PostgreSQL URL (libpq never sees them)."""

_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|sslpassword|token|secret)=([^&\s]*)")
_USER_PASSWORD = re.compile(r"(://[^:/@\s]*):(\S*)@")  # greedy: an unescaped @ in a password


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: in the user part, in query
    parameters (``?password=``), and in keyword DSNs (``host=db password=...``). Safe for
    logs and error messages, even for a URL too broken to parse."""
    masked = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", url)
    return _USER_PASSWORD.sub(r"\1:***@", masked)


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without redrive's own query parameters, and those parameters."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OPTIONS}
    rest = [(k, v) for k, v in query if k not in OPTIONS]
    return parts._replace(query=urlencode(rest)).geturl(), ours
