"""Text a user hands over (a spec or CSV uploaded on a page, or named on the command line).

``decode_text(data, what, fix)`` decodes it as UTF-8 (a leading byte-order mark is dropped,
as spreadsheet programs write one); a binary file, or text in another encoding, is a
one-line ``ConfigError`` naming the first byte that is not UTF-8, never a
``UnicodeDecodeError`` traceback. The CLI's ``read_text`` (``tlcore/cli/_files.py``) and the
pages' uploads (the Search page's spec, the audit's decisions CSV) decode through it.

``counted(n, noun)`` is a count in words the product shows: "1 image", "3 images".
"""

from __future__ import annotations

from tlcore.errors import ConfigError

__all__ = ["counted", "decode_text"]


def decode_text(data: bytes, what: str, fix: str) -> str:
    """``data`` as text; ``what`` names it in the message ("the spec file"), ``fix`` says what to give instead."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what[:1].upper()}{what[1:]} is not UTF-8 text.",
                          received=f"byte {exc.start}: {data[exc.start:exc.start + 1]!r}", fix=fix) from None


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (an "s" added): ``counted(2, "image file")`` is "2 image files"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
