"""Passwords out of storage URLs and out of the messages that quote them.

A study storage URL (``postgresql://user:password@host/db``) may hold a password, in
its user info or as a ``?password=`` query parameter. Nothing the workbench shows
or logs may contain it:

- ``redact_url(url)``: the URL for people to read, ``user:***@host`` and
  ``?password=***`` (``storage.describe_storage`` and the ``received=`` of storage
  errors);
- ``scrub_secrets(text, url)``: any text (a driver's error message, a log line) with
  every password of ``url`` replaced by ``***``, as written and URL-decoded.

Users: ``tlcore.search.storage`` (``describe_storage``, ``open_storage``'s errors).

Example:

>>> redact_url("postgresql://tl:s3cret@db:5432/studies?sslmode=require")
'postgresql://tl:***@db:5432/studies?sslmode=require'
>>> scrub_secrets("FATAL: password 's3cret' refused", "postgresql://tl:s3cret@db/studies")
"FATAL: password '***' refused"
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["redact_url", "scrub_secrets"]

_PASSWORD_PARAM = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#]*)", re.IGNORECASE)


def _credentials(url: str) -> tuple[str, str, str, str, str] | None:
    """``scheme://user:password@host…`` as (scheme, user, ":" or "", password, host); None without user info."""
    if "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    if "@" not in rest:
        return None
    cred, host = rest.rsplit("@", 1)
    user, sep, password = cred.partition(":")
    return scheme, user, sep, password, host


def redact_url(url: str) -> str:
    """The URL without its password (``user:***@host``, ``?password=***``), for messages and pages."""
    out = url
    parts = _credentials(url)
    if parts:
        scheme, user, sep, _, host = parts
        out = f"{scheme}://{user}{':***' if sep else ''}@{host}"
    return _PASSWORD_PARAM.sub(r"\1***", out)


def _passwords(url: str) -> list[str]:
    """The secrets in ``url``, as written and URL-decoded, longest first."""
    parts = _credentials(url)
    found = [parts[3]] if parts and parts[3] else []
    found += [m.group(2) for m in _PASSWORD_PARAM.finditer(url) if m.group(2)]
    found += [unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def scrub_secrets(text: str, url: str | None) -> str:
    """``text`` (an error message, a log line) with every password of ``url`` replaced by ``***``."""
    for secret in _passwords(url or ""):
        text = text.replace(secret, "***")
    return text
