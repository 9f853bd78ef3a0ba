"""The text files a user names on the command line (``--spec``, ``--from-file``, ``--import``).

``read_text(path, what, fix)`` reads one as UTF-8. A missing or unreadable file is a
``NotFoundError`` that says why; a file that is not UTF-8 text (a binary, or a spec saved in
another encoding) is a ``ConfigError`` with ``fix``, not a ``UnicodeDecodeError`` traceback.
``-`` reads standard input where a command allows it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tlcore.errors import ConfigError, NotFoundError

__all__ = ["read_text"]


def read_text(path: str, what: str, fix: str, *, stdin: bool = False) -> str:
    """The content of the file ``path`` (``what`` names it in a message, e.g. "the spec file")."""
    try:
        if stdin and path == "-":
            return sys.stdin.read()
        return Path(path).expanduser().read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what[:1].upper()}{what[1:]} is not UTF-8 text.",
                          received=f"{path} (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})",
                          fix=fix) from exc
    except OSError as exc:
        raise NotFoundError(f"Cannot read {what}.", received=path,
                            fix=f"Check the path ({exc.strerror or exc}).") from exc
