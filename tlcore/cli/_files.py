"""The text files a user names on the command line (``--spec``, ``--from-file``, ``--import``).

``read_text(path, what, fix)`` reads one as UTF-8 text (``tlcore._usertext.decode_text``): a
missing or unreadable file is a ``NotFoundError`` that says why, a file that is not UTF-8 text
(a binary, or a spec saved in another encoding) a ``ConfigError`` with ``fix``. ``-`` reads
standard input where a command allows it (``stdin=True``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tlcore._usertext import decode_text
from tlcore.errors import NotFoundError

__all__ = ["read_text"]


def read_text(path: str, what: str, fix: str, *, stdin: bool = False) -> str:
    """The content of the file ``path`` (``what`` names it in a message, e.g. "the spec file")."""
    try:
        if stdin and path == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
        else:
            data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise NotFoundError(f"Cannot read {what}.", received=path,
                            fix=f"Check the path ({exc.strerror or exc}).") from exc
    return decode_text(data, f"{what} ({path})", fix)
