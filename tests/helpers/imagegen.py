"""Small image files for tests, made on the fly with Pillow and numpy.

Every generator writes into a folder the test owns (``tmp_path``), creates the
parent folders, and returns the path, so a test reads like the tree it builds:

>>> make_image(tmp_path / "cat" / "1.jpg", color=(200, 30, 30))
>>> make_tree(tmp_path, {"cat": 3, "dog": 3})
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "make_image",
    "image_bytes",
    "make_tree",
    "make_gradient16_png",
    "make_cmyk_jpeg",
    "make_exif_jpeg",
    "make_animated_gif",
    "make_palette_png",
    "png_header_bytes",
    "make_png_bomb",
    "truncate_file",
    "corrupt_file",
    "write_bytes",
]

Color = int | tuple[int, ...]


def _pixels(size: tuple[int, int], color: Color, mode: str, seed: int | None) -> Image.Image:
    """A solid (or, with ``seed``, noisy) image of ``size`` = (width, height) in ``mode``."""
    w, h = size
    if seed is None:
        return Image.new(mode, (w, h), color)
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return rgb.convert(mode)


def image_bytes(
    size: tuple[int, int] = (32, 32),
    color: Color = (200, 30, 30),
    mode: str = "RGB",
    fmt: str = "PNG",
    *,
    seed: int | None = None,
    **save_kwargs: Any,
) -> bytes:
    """The encoded bytes of a solid (or, with ``seed``, random) image.

    Args:
        size: (width, height). Defaults to (32, 32).
        color: the fill colour, in ``mode``'s terms. Defaults to red-ish.
        mode: the Pillow mode. Defaults to "RGB".
        fmt: the Pillow format name. Defaults to "PNG".
        seed: when given, random pixels instead of a solid colour (distinct content
            per seed, so files are not duplicates).
        save_kwargs: passed to ``Image.save`` (quality, exif, ...).
    """
    buf = io.BytesIO()
    _pixels(size, color, mode, seed).save(buf, fmt, **save_kwargs)
    return buf.getvalue()


_EXT_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def make_image(
    path: str | os.PathLike[str],
    size: tuple[int, int] = (32, 32),
    color: Color = (200, 30, 30),
    mode: str = "RGB",
    fmt: str | None = None,
    *,
    seed: int | None = None,
    **save_kwargs: Any,
) -> Path:
    """Write an image file; the format follows the extension unless ``fmt`` is given.

    Args:
        path: where to write (parent folders are created).
        size: (width, height). Defaults to (32, 32).
        color: the fill colour. Defaults to red-ish.
        mode: the Pillow mode. Defaults to "RGB".
        fmt: the Pillow format. Defaults to the one the extension implies.
        seed: random pixels instead of a solid colour (distinct content per seed).
        save_kwargs: passed to ``Image.save``.
    """
    path = Path(path)
    fmt = fmt or _EXT_FORMAT[path.suffix.lower()]
    return write_bytes(path, image_bytes(size, color, mode, fmt, seed=seed, **save_kwargs))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write raw bytes (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_tree(root: str | os.PathLike[str], classes: Mapping[str, int], *, ext: str = ".png", size=(32, 32)) -> Path:
    """A folder-per-class dataset: ``classes`` maps class name to image count.

    Every image has distinct content (seeded noise), so there are no duplicates.
    """
    root = Path(root)
    for name, n in classes.items():
        for i in range(n):
            make_image(root / name / f"{i}{ext}", size=size, seed=zlib.crc32(f"{name}/{i}".encode()))
    return root


def make_gradient16_png(path: str | os.PathLike[str], values: Sequence[int] | np.ndarray) -> Path:
    """A 16-bit grayscale PNG (Pillow mode I;16) with one row holding ``values``."""
    arr = np.asarray(values, dtype=np.uint16).reshape(1, -1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return write_bytes(path, buf.getvalue())


def make_cmyk_jpeg(path: str | os.PathLike[str], cmyk: tuple[int, int, int, int], size=(16, 16)) -> Path:
    """A CMYK JPEG. Pillow writes it the Adobe way (inverted CMYK plus an APP14 marker)."""
    return make_image(path, size=size, color=cmyk, mode="CMYK", fmt="JPEG", quality=100)


def make_exif_jpeg(path: str | os.PathLike[str], orientation: int, size=(40, 20)) -> Path:
    """A JPEG (width x height = ``size``) whose top-left quarter is red, the rest blue,
    tagged with EXIF ``orientation``."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = (0, 0, 255)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=100, exif=exif)
    return write_bytes(path, buf.getvalue())


def make_animated_gif(path: str | os.PathLike[str], colors: Sequence[tuple[int, int, int]], size=(16, 16)) -> Path:
    """An animated GIF with one solid frame per colour."""
    frames = [Image.new("RGB", size, c) for c in colors]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return write_bytes(path, buf.getvalue())


def make_palette_png(path: str | os.PathLike[str], size=(8, 8)) -> Path:
    """A palette PNG: left half index 0 (red, fully transparent), right half index 1 (green, opaque)."""
    w, h = size
    im = Image.new("P", size, 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    im.paste(1, (w // 2, 0, w, h))
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=0)
    return write_bytes(path, buf.getvalue())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_bytes(width: int, height: int) -> bytes:
    """A valid-looking PNG that claims ``width`` x ``height`` (8-bit RGB) but holds a
    tiny IDAT: a decompression bomb that costs nothing to make (CRCs are correct)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def make_png_bomb(path: str | os.PathLike[str], width: int = 100_000, height: int = 100_000) -> Path:
    """Write ``png_header_bytes(width, height)`` to ``path``."""
    return write_bytes(path, png_header_bytes(width, height))


def truncate_file(path: str | os.PathLike[str], keep: float | int = 0.5) -> Path:
    """Cut a file: keep a fraction (float) or a number of bytes (int, negative = drop that many)."""
    path = Path(path)
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    path.write_bytes(data[:n])
    return path


def corrupt_file(path: str | os.PathLike[str], at: float = 0.5, length: int = 64) -> Path:
    """Overwrite ``length`` bytes at fraction ``at`` of a file with a fixed garbage pattern."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + length] = bytes((i * 97) & 0xFF for i in range(length))[: len(data) - start]
    path.write_bytes(bytes(data))
    return path
