"""Zip archives the way users make them, with what goes wrong in them."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path


def zip_with_a_link_and_an_empty_class(tree: Path) -> io.BytesIO:
    """``tree`` (a folder of class folders holding .png files) zipped under its own name, plus an
    empty class folder ``owl/`` and a symbolic link ``cat/link.png``: what the extraction skips
    and reports."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(tree.rglob("*.png")):
            zf.write(f, f.relative_to(tree.parent).as_posix())
        zf.writestr(zipfile.ZipInfo(f"{tree.name}/owl/"), b"")
        link = zipfile.ZipInfo(f"{tree.name}/cat/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, b"../dog/dog_000.png")
    buf.seek(0)
    return buf
