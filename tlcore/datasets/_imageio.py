"""Decode images correctly: any supported file to an RGB ``uint8`` array.

"Correctly" means the cases naive ``Image.open(p).convert("RGB")`` gets wrong:

- 16-bit grayscale (PNG ``I;16``, ``I``) is *scaled* from 0..65535 to 0..255,
  not clipped; float images (``F``) are scaled from 0..1 (or 0..255);
- transparency (``RGBA``, ``LA``, palette or grayscale with ``tRNS``) is
  composited on a background colour instead of being dropped, so transparent
  pixels do not show whatever colour the encoder left under them;
- the EXIF orientation is applied, so a portrait phone photo stays portrait;
- CMYK JPEGs (including Adobe's inverted CMYK) become RGB;
- animated GIF/WebP give their first frame.

Safety: only the formats of ``IMAGE_EXTENSIONS`` are tried (never EPS, which
would start Ghostscript); an image whose header claims more than
``MAX_IMAGE_PIXELS`` pixels is refused *before* any pixel is decoded (Pillow's
own guard stays on as well); truncated files are refused rather than padded
with grey; files are read into memory and closed at once, so no handle is left
open. Every refusal is an ``ImageDecodeError`` naming the file, the problem and
the fix.

Resizing (``resize_to``, ``thumbnail``) always uses Pillow's bilinear filter,
which Pillow widens when shrinking (so downscaling is antialiased, an area
average in effect) and which is the same in training, caching and inference.

Used by the scanner (its header and damage probes), ``tlcore.pipeline``
(training arrays), ``tlcore.predict`` (new photos) and the pages (``thumbnail``).

Example:

>>> arr = load_rgb("photos/cat/1.jpg")            # HxWx3 uint8
>>> x = resize_to(arr, 224, mode="pad")          # 224x224x3 uint8, letterboxed
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tlcore.config import RESIZE_MODES
from tlcore.errors import ImageDecodeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "ImageHeader",
    "load_rgb",
    "read_header",
    "resize_to",
    "thumbnail",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
"""Lower-case file extensions accepted as images (compare ``suffix.lower()``)."""

MAX_IMAGE_PIXELS: int = 89_478_485
"""Images whose header claims more pixels than this are refused undecoded (Pillow's default limit)."""

# The Pillow plugins behind IMAGE_EXTENSIONS. Restricting Image.open to them means
# a renamed file in another format (EPS, PSD, ...) is refused, never handed to a
# plugin nobody asked for. (Multi-picture camera JPEGs open as MPO through "JPEG".)
_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")

# Magic numbers of those formats: data that starts like an image but that Pillow
# cannot identify is a damaged image ("corrupt"), not "not an image".
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

_RESAMPLE = Image.Resampling.BILINEAR
_ORIENTATION = 0x0112  # the EXIF tag
_Source = str | os.PathLike[str] | bytes | bytearray | memoryview


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding any pixel.

    Args:
        width: pixels across (before any EXIF rotation).
        height: pixels down (before any EXIF rotation).
        mode: Pillow's mode, e.g. "RGB", "L", "P", "I;16", "CMYK".
        format: Pillow's format name, e.g. "JPEG", "PNG".
        n_frames: number of frames (more than 1 for animations).
    """

    width: int
    height: int
    mode: str
    format: str
    n_frames: int = 1


# ----------------------------------------------------------------- failures
class _BadImage(Exception):
    """Internal: why some bytes are not a usable image (``kind`` as in the scan report)."""

    def __init__(self, kind: str, detail: str, header: ImageHeader | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.header = header


# kind -> (what is wrong, what to do); the first part completes "<file> ...".
_FAILURE_TEXT: dict[str, tuple[str, str]] = {
    "unreadable": ("cannot be read", "Check that the file exists and is readable by the user running the workbench."),
    "empty_file": ("is empty (0 bytes)", "Copy the original again or delete the file."),
    "not_an_image": (
        "is not an image in a supported format",
        "Delete it, or convert it to JPEG or PNG (supported: JPEG, PNG, GIF, BMP, WebP, TIFF).",
    ),
    "corrupt": ("is damaged and cannot be decoded", "Export or download the image again, or delete it."),
    "truncated": (
        "is truncated: its data ends early",
        "Copy or download it again (the transfer was probably interrupted), or delete it.",
    ),
    "decompression_bomb": (
        "was not decoded: its header claims {detail}, more than the limit of "
        f"{MAX_IMAGE_PIXELS:,} (a possible decompression bomb)",
        "If the image is genuine, downscale it with an image editor first; otherwise delete it.",
    ),
}


def _failure_text(kind: str, detail: str) -> tuple[str, str]:
    """``(what, fix)`` for a per-file failure kind; ``what`` completes "<file> ..."."""
    what, fix = _FAILURE_TEXT[kind]
    if "{detail}" in what:
        return what.replace("{detail}", detail or "too many pixels"), fix
    return (f"{what} ({detail})" if detail else what), fix


def _sniff(data: bytes) -> str:
    """A few words on what non-image bytes look like, for the error message."""
    head = data[:512]
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (or an Office document)"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "it is an HTML page, perhaps a download error page"
    if head.lstrip().startswith(b"<svg") or b"<svg" in head:
        return "it is an SVG drawing, which is not supported"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised content starting with {head[:8].hex(' ')}"
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return "it contains text"
    return f"unrecognised content starting with {head[:8].hex(' ')}"


def _magic_format(data: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _classify_decode_error(exc: BaseException) -> _BadImage:
    """Map an exception raised while opening or decoding to truncated / corrupt / bomb."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        # Pillow says "Image size (N pixels) exceeds limit of M pixels, ..."; keep N.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return _BadImage("decompression_bomb", f"{int(found.group(1)):,} pixels" if found else "")
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text.lower():
        return _BadImage("truncated", text)
    return _BadImage("corrupt", text)


# --------------------------------------------------------------- open/check
def _os_error(name: str, exc: OSError) -> ImageDecodeError:
    """The ImageDecodeError for a file that cannot be opened at all."""
    if isinstance(exc, FileNotFoundError):
        return ImageDecodeError(
            "The image file does not exist.", received=name, fix="Check the path; rescan the dataset if files moved."
        )
    if isinstance(exc, IsADirectoryError):
        return ImageDecodeError("The path is a folder, not an image file.", received=name, fix="Give an image file.")
    what, fix = _failure_text("unreadable", exc.strerror or str(exc))
    return ImageDecodeError(f"The file {what}.", received=name, fix=fix)


def _read_bytes(source: _Source) -> tuple[bytes, str]:
    """The whole file (closed at once) and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<image bytes>"
    name = os.fspath(source)
    try:
        with open(name, "rb") as fh:
            return fh.read(), name
    except OSError as exc:
        raise _os_error(name, exc) from exc


def _header_of(im: Image.Image) -> ImageHeader:
    return ImageHeader(
        width=int(im.width),
        height=int(im.height),
        mode=str(im.mode),
        format=str(im.format or ""),
        n_frames=int(getattr(im, "n_frames", 1) or 1),
    )


def _open_checked(fp: IO[bytes]) -> tuple[Image.Image, ImageHeader]:
    """Open an image file object (header only) or raise ``_BadImage``; refuses bombs before decoding.

    The caller must close the returned image (which does not close ``fp``).
    """
    head = fp.read(512)
    fp.seek(0)
    if not head:
        raise _BadImage("empty_file", "")
    try:
        im = Image.open(fp, formats=_FORMATS)
    except UnidentifiedImageError:
        fmt = _magic_format(head)
        if fmt is None:
            raise _BadImage("not_an_image", _sniff(head)) from None
        raise _BadImage("corrupt", f"it starts like a {fmt} file but its header is damaged or incomplete") from None
    except Exception as exc:  # bombs, and plugins' OSError, SyntaxError, ValueError, struct.error, ...
        raise _classify_decode_error(exc) from None
    try:
        header = _header_of(im)  # counting frames walks a GIF/TIFF, which can fail on damaged files
    except Exception as exc:
        im.close()
        raise _classify_decode_error(exc) from None
    pixels = header.width * header.height
    if pixels > MAX_IMAGE_PIXELS:
        im.close()
        raise _BadImage("decompression_bomb", f"{header.width}x{header.height} = {pixels:,} pixels", header)
    if header.width <= 0 or header.height <= 0:
        im.close()
        raise _BadImage("corrupt", f"its header gives a size of {header.width}x{header.height}", header)
    return im, header


def _load(im: Image.Image, header: ImageHeader, draft_size: tuple[int, int] | None = None) -> None:
    """Decode the pixels (of the current frame), mapping failures to ``_BadImage``.

    With ``draft_size``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8)
    that still gives at least that size.
    """
    try:
        if draft_size is not None and header.format in ("JPEG", "MPO"):
            im.draft(None, draft_size)
        im.load()
    except Exception as exc:
        bad = _classify_decode_error(exc)
        bad.header = header
        raise bad from None


def _png_complete(data: bytes) -> bool:
    """True when a PNG ends with its IEND chunk (a little trailing junk is tolerated)."""
    return data.rfind(b"IEND", max(0, len(data) - 1024)) >= 0


class _Probe(NamedTuple):
    """Internal result of ``_probe_bytes``.

    ``header``: as read (None when unreadable); ``kind``/``detail``: the failure,
    if any; ``transposed``: the EXIF orientation swaps width and height.
    """

    header: ImageHeader | None
    kind: str | None
    detail: str
    transposed: bool = False


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored; 2-8 = flipped and/or turned), 1 if absent or damaged."""
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # damaged EXIF: ignore it rather than lose the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _swaps_axes(im: Image.Image) -> bool:
    """True when the EXIF orientation (5-8) turns the picture by 90 degrees."""
    return _orientation(im) in (5, 6, 7, 8)


def _probe_bytes(data: bytes) -> _Probe:
    """Check that ``data`` is a complete, decodable image, as cheaply as possible.

    Used by the dataset scan. Reads the header, refuses bombs from it, checks that
    a PNG ends with IEND, then decodes: JPEGs at 1/8 scale (libjpeg's DCT scaling
    still walks all the entropy-coded data, so truncation is still caught, at a
    fraction of the cost), other formats fully (first frame only).
    """
    try:
        im, header = _open_checked(io.BytesIO(data))
    except _BadImage as bad:
        return _Probe(bad.header, bad.kind, bad.detail)
    with im:
        try:
            _load(im, header, (max(1, header.width // 8), max(1, header.height // 8)))
        except _BadImage as bad:
            return _Probe(header, bad.kind, bad.detail)
        transposed = _swaps_axes(im)
    if header.format == "PNG" and not _png_complete(data):
        return _Probe(header, "truncated", "the PNG has no IEND end chunk", transposed)
    return _Probe(header, None, "", transposed)


def _probe_header(fp: IO[bytes]) -> _Probe:
    """Like ``_probe_bytes`` but from an open file and from the header alone (nothing decoded).

    Used by ``read_header``, and by the scan to refuse a huge bomb before reading all of it.
    """
    try:
        im, header = _open_checked(fp)
    except _BadImage as bad:
        return _Probe(bad.header, bad.kind, bad.detail)
    im.close()
    return _Probe(header, None, "")


@contextmanager
def _decoded(source: _Source, *, draft_size: tuple[int, int] | None = None) -> Iterator[Image.Image]:
    """Yield a fully decoded (first-frame) image, or raise ``ImageDecodeError``."""
    data, name = _read_bytes(source)
    try:
        im, header = _open_checked(io.BytesIO(data))
    except _BadImage as bad:
        raise _decode_error(name, bad) from None
    with im:
        try:
            _load(im, header, draft_size)
        except _BadImage as bad:
            raise _decode_error(name, bad) from None
        yield im


def _decode_error(name: str, bad: _BadImage) -> ImageDecodeError:
    what, fix = _failure_text(bad.kind, bad.detail)
    return ImageDecodeError(f"The file {what}.", received=name, fix=fix)


# ------------------------------------------------------------------ to RGB
def _gray_to_u8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16-bit, 32-bit integer or float grayscale array to uint8 0..255.

    - ``I;16*``: 0..65535 -> 0..255 with rounding.
    - ``I``: the same when the values lie in 0..65535 (what 16-bit PNG/TIFF give);
      otherwise the actual range is stretched to 0..255.
    - ``F``: 0..1 -> 0..255 when the values lie in [0, 1], kept as is when they lie
      in [0, 255], otherwise the actual range is stretched. NaN becomes 0.
    """
    if mode.startswith("I;16"):
        a = arr.astype(np.uint32)
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    if mode == "I":
        a = arr.astype(np.int64)
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 65535:
            return ((a * 255 + 32767) // 65535).astype(np.uint8)
        return _stretch(a.astype(np.float64), lo, hi)
    f = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo_f, hi_f = float(f.min()), float(f.max())
    if lo_f >= 0.0 and hi_f <= 1.0:
        return np.rint(f * 255.0).astype(np.uint8)
    if lo_f >= 0.0 and hi_f <= 255.0:
        return np.rint(f).astype(np.uint8)
    return _stretch(f, lo_f, hi_f)


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Alpha-blend an RGBA uint8 array over a solid colour, rounding to nearest."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    bg = np.asarray(background, dtype=np.uint32).reshape(1, 1, 3)
    return ((rgb * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)


def _check_background(background: object) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in background)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"background must be three integers in 0..255 (R, G, B). Received: background={background!r}")
    return values  # type: ignore[return-value]


def _to_rgb(im: Image.Image, background: tuple[int, int, int], name: str) -> np.ndarray:
    """A decoded image (any mode) to an HxWx3 uint8 array, EXIF orientation applied."""
    if _orientation(im) != 1:
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception:  # a damaged EXIF block must not cost the picture: keep it unrotated
            pass
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        gray = _gray_to_u8(np.asarray(im), mode)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info
    try:
        if has_alpha:
            return _composite(np.asarray(im.convert("RGBA")), background)
        if mode == "RGB":
            return np.array(im, dtype=np.uint8)
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except ValueError as exc:  # e.g. LAB, which Pillow cannot convert to RGB
        raise ImageDecodeError(
            f"The image uses the colour mode {mode!r}, which cannot be converted to RGB ({exc}).",
            received=name,
            fix="Convert it to an RGB JPEG or PNG with an image editor.",
        ) from exc


# ------------------------------------------------------------------ public
def load_rgb(path_or_bytes: _Source, *, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Decode an image file (or its bytes) to an RGB ``uint8`` array of shape (H, W, 3).

    Handles 16-bit and float grayscale (scaled, not clipped), transparency
    (composited on ``background``), palette images, CMYK JPEGs, EXIF orientation
    (applied, so H and W are as the photo should be viewed) and animations
    (first frame). Truncated files are refused, not padded.

    Args:
        path_or_bytes: a file path, or the file's content as bytes.
        background: the RGB colour transparent pixels are blended onto.
            Defaults to white, ``(255, 255, 255)``.

    Returns:
        An ``(H, W, 3)`` ``uint8`` array.

    Raises:
        ImageDecodeError: the file is missing, unreadable, empty, not an image,
            damaged, truncated, or claims more than ``MAX_IMAGE_PIXELS`` pixels.

    Example:

    >>> load_rgb("cat.png", background=(0, 0, 0)).shape
    (480, 640, 3)
    """
    bg = _check_background(background)
    name = "<image bytes>" if isinstance(path_or_bytes, (bytes, bytearray, memoryview)) else os.fspath(path_or_bytes)
    with _decoded(path_or_bytes) as im:
        return _to_rgb(im, bg, name)


def read_header(path: str | os.PathLike[str]) -> ImageHeader:
    """Read an image's size, mode, format and frame count without decoding pixels.

    Only the first few kilobytes are read (Pillow parses the header lazily), and the
    file is closed before returning.

    Args:
        path: the image file.

    Returns:
        An ``ImageHeader``.

    Raises:
        ImageDecodeError: the file is missing, unreadable, empty, not an image in a
            supported format, has a damaged header, or claims more than
            ``MAX_IMAGE_PIXELS`` pixels.
    """
    name = os.fspath(path)
    try:
        fh = open(name, "rb")
    except OSError as exc:
        raise _os_error(name, exc) from exc
    with fh:
        probe = _probe_header(fh)
    if probe.kind or probe.header is None:
        raise _decode_error(name, _BadImage(probe.kind or "corrupt", probe.detail))
    return probe.header


def _check_size(size: object, what: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) < 1:
        raise ValueError(f"{what} must be a positive integer number of pixels. Received: {what}={size!r}")
    return int(size)


def _as_image(arr: np.ndarray) -> Image.Image:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        got = f"{type(arr).__name__} {getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}".strip()
        raise ValueError(f"Expected a uint8 array of shape (H, W) or (H, W, 3). Received: {got}")
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"Expected 1, 3 or 4 channels. Received: shape={arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"Cannot resize an empty image. Received: shape={arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(arr))


def resize_to(
    arr: np.ndarray, size: int, *, mode: str = "pad", pad_value: int | tuple[int, ...] = 0
) -> np.ndarray:
    """Resize an image array to ``size`` x ``size``.

    Resampling is Pillow's bilinear filter, antialiased when shrinking (the
    filter support grows with the reduction, averaging over the source area).

    Args:
        arr: a ``uint8`` array, (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
        size: the side of the square output, in pixels.
        mode: how to reach a square, one of ``tlcore.config.RESIZE_MODES``. Defaults to "pad".
            - "pad": keep the aspect ratio, fit the longer side, centre it on a
              ``pad_value`` canvas (letterbox). Nothing is cut off.
            - "crop": keep the aspect ratio, fit the shorter side, cut the centre square.
            - "stretch": ignore the aspect ratio.
        pad_value: the canvas colour for "pad": one value for all channels or one
            per channel. Defaults to 0 (black).

    Returns:
        A ``uint8`` array of shape (size, size) or (size, size, C), C as in ``arr``
        (a (H, W, 1) input gives (size, size, 1)).

    Example:

    >>> resize_to(np.zeros((300, 400, 3), np.uint8), 224).shape
    (224, 224, 3)
    """
    size = _check_size(size)
    if mode not in RESIZE_MODES:
        allowed = ", ".join(repr(m) for m in RESIZE_MODES[:-1]) + f" or {RESIZE_MODES[-1]!r}"
        raise ValueError(f"mode must be {allowed}. Received: mode={mode!r}")
    single_channel = isinstance(arr, np.ndarray) and arr.ndim == 3 and arr.shape[2] == 1
    im = _as_image(arr)
    w, h = im.size
    channels = len(im.getbands())
    fill = _pad_fill(pad_value, channels) if mode == "pad" else None
    if mode == "stretch" or (w == h):
        out = im if (w, h) == (size, size) else im.resize((size, size), _RESAMPLE)
        result = np.array(out, dtype=np.uint8)
    elif mode == "crop":
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        resized = im if (nw, nh) == (w, h) else im.resize((nw, nh), _RESAMPLE)
        left, top = (nw - size) // 2, (nh - size) // 2
        result = np.array(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
    else:  # pad
        scale = size / max(w, h)
        nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
        resized = im if (nw, nh) == (w, h) else im.resize((nw, nh), _RESAMPLE)
        canvas = np.empty((size, size, channels) if channels > 1 else (size, size), dtype=np.uint8)
        canvas[...] = fill
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top : top + nh, left : left + nw] = np.asarray(resized, dtype=np.uint8)
        result = canvas
    return result[:, :, None] if single_channel else result


def _pad_fill(pad_value: int | tuple[int, ...], channels: int) -> np.ndarray:
    values = np.atleast_1d(np.asarray(pad_value))
    if values.ndim != 1 or values.size not in (1, channels) or not np.all((values >= 0) & (values <= 255)):
        raise ValueError(
            f"pad_value must be one value in 0..255 or one per channel ({channels}). Received: pad_value={pad_value!r}"
        )
    return values.astype(np.uint8) if values.size == channels and channels > 1 else np.uint8(values[0])


def thumbnail(path: str | os.PathLike[str] | bytes, size: int = 128, *, box: bool = False) -> np.ndarray:
    """A small RGB preview whose longer side is ``size`` pixels, aspect ratio kept.

    Large JPEGs are decoded at a reduced scale (``Image.draft``: libjpeg decodes at
    1/2, 1/4 or 1/8 size directly), which is many times faster than a full decode.
    Images smaller than ``size`` are enlarged so that previews line up in a grid.

    Args:
        path: the image file (or its bytes).
        size: the longer side of the result, in pixels. Defaults to 128.
        box: centre the preview in a ``size`` × ``size`` RGBA square whose bars are
            transparent (letter-boxed), so the page's background shows through them in a
            light or a dark theme. Pages show boxed thumbnails: a page that scales every
            preview to one width would otherwise draw a 4 × 3,000 px image thousands of
            pixels tall. Defaults to False.

    Returns:
        An ``(h, w, 3)`` RGB ``uint8`` array with ``max(h, w) == size``; boxed, a
        ``(size, size, 4)`` RGBA one, opaque where the image is.

    Raises:
        ImageDecodeError: as ``load_rgb``.
    """
    size = _check_size(size)
    name = "<image bytes>" if isinstance(path, (bytes, bytearray, memoryview)) else os.fspath(path)
    # draft() picks the smallest DCT scale that still gives at least this size.
    with _decoded(path, draft_size=(size, size)) as im:
        rgb = _to_rgb(im, (255, 255, 255), name)
    h, w = rgb.shape[:2]
    scale = size / max(w, h)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    if (nw, nh) != (w, h):
        rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), _RESAMPLE), dtype=np.uint8).copy()
    if not box:
        return rgb
    out = np.zeros((size, size, 4), dtype=np.uint8)  # transparent bars
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw, :3] = rgb
    out[top:top + nh, left:left + nw, 3] = 255
    return out
