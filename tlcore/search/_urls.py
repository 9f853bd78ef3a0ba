"""Passwords out of storage URLs and out of the messages that quote them.

A study storage URL (``postgresql://user:password@host/db``) may hold a password, in
its user info or as a ``?password=`` query parameter. Nothing the workbench shows
or logs may contain it:

- ``redact_url(url)``: the URL for people to read, ``user:***@host`` and
  ``?password=***`` (``storage.describe_storage`` and the ``received=`` of storage
  errors);
- ``without_password(url)``: the URL with no password at all, for a command people copy
  (``optuna-dashboard``), whose client then reads ``~/.pgpass`` or ``PGPASSWORD``;
- ``scrub_secrets(text, url)``: any text (a driver's error message, a log line) with
  every occurrence of a password of ``url`` replaced by ``***``, as written and URL-decoded.

An occurrence is the password standing whole, not glued to letters or digits around it
(``'s3cret'``, ``:s3cret@``, ``password=s3cret&``, ``s3cret`` between spaces): the
letters "a" inside "password" are not the password "a". A password shorter than
``SHORT_SECRET`` characters (one that ordinary words contain, such as "a" or "db") is
hidden only where it stands as a value: in quotes, or after ``=`` or ``:`` up to a
space, quote, ``@``, ``&``, ``#``, ``/`` or the end. There a driver would print a
password; the word "a" in a sentence stays. The host or database named like the
password is hidden too (``at "db"`` when the password is "db"): the text cannot tell
the two apart, and hiding too much is the safe side.

Users: ``tlcore.search.storage`` (``describe_storage``, ``open_storage``'s errors).

Example:

>>> redact_url("postgresql://tl:s3cret@db:5432/studies?sslmode=require")
'postgresql://tl:***@db:5432/studies?sslmode=require'
>>> scrub_secrets("FATAL: password 's3cret' refused", "postgresql://tl:s3cret@db/studies")
"FATAL: password '***' refused"
>>> scrub_secrets("FATAL: password authentication failed for user 'tl': 'a'", "postgresql://tl:a@db/x")
"FATAL: password authentication failed for user 'tl': '***'"
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["redact_url", "scrub_secrets", "without_password", "SHORT_SECRET"]

SHORT_SECRET = 4  # a password shorter than this is hidden only where it stands as a value (see above)
_VALUE_BEFORE = "'\"=:"  # what a password written as a value follows...
_VALUE_AFTER = "'\"@&#/ \t\r\n"  # ...and what ends it (or the end of the text)

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


def without_password(url: str) -> str:
    """The URL with its password left out (``user@host``, no ``password=`` parameter): one that a command
    shown to people can hold, whose client (libpq) then reads the password from ``~/.pgpass`` or
    ``PGPASSWORD``, where ``redact_url``'s ``***`` would be sent as the password."""
    out = url
    parts = _credentials(url)
    if parts:
        scheme, user, _, _, host = parts
        out = f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    out = re.sub(r"([?&])(?:password|passwd|pwd)=[^&#]*&?", r"\1", out, flags=re.IGNORECASE)
    return re.sub(r"[?&](?=#|$)", "", out)


def _passwords(url: str) -> list[str]:
    """The secrets in ``url``, as written and URL-decoded, longest first."""
    parts = _credentials(url)
    found = [parts[3]] if parts and parts[3] else []
    found += [m.group(2) for m in _PASSWORD_PARAM.finditer(url) if m.group(2)]
    found += [unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def _occurrence(secret: str) -> re.Pattern[str]:
    """Where ``secret`` stands whole in a text: not glued to a letter or digit on an edge where it has
    one itself; a short secret only as a value (after a quote, ``=`` or ``:``, before a quote, a
    separator, a space or the end)."""
    body = re.escape(secret)
    if len(secret) < SHORT_SECRET:
        return re.compile(f"(?<=[{re.escape(_VALUE_BEFORE)}]){body}(?=[{re.escape(_VALUE_AFTER)}]|$)")
    left = r"(?<![^\W_])" if secret[0].isalnum() else ""
    right = r"(?![^\W_])" if secret[-1].isalnum() else ""
    return re.compile(left + body + right)


def scrub_secrets(text: str, url: str | None) -> str:
    """``text`` (an error message, a log line) with every occurrence of a password of ``url`` replaced
    by ``***`` (an occurrence: the password standing whole; see the module docstring)."""
    for secret in _passwords(url or ""):
        text = _occurrence(secret).sub("***", text)
    return text
