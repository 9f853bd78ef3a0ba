"""Synthetic images for the audit tests: photo-like pictures, their near-duplicates, poor photos.

- ``photo(seed, size)``: smooth colour blobs over a gradient with fine texture, each seed a
  different picture (what near-duplicate and quality checks need: edges, detail, no two alike);
- ``resized`` / ``reencoded`` / ``cropped``: the copies a near-duplicate check must find;
- ``blurred`` / ``darkened`` / ``brightened`` / ``uniform``: what the quality flags must find;
- ``photo_tree(root, classes)``: a folder-per-class tree of photos, PNG, distinct;
- ``save(path, rgb)``: write an array (format from the extension).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["photo", "resized", "reencoded", "cropped", "blurred", "darkened", "brightened", "uniform",
           "photo_tree", "save"]


def photo(seed: int, size: tuple[int, int] = (96, 72)) -> np.ndarray:
    """A distinct photo-like RGB uint8 image of ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img += rng.uniform(40, 160, 3) + (xx / w)[..., None] * rng.uniform(-60, 60, 3) + (yy / h)[..., None] * rng.uniform(-60, 60, 3)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.08, 0.3) * min(w, h)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r ** 2
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, (h, w, 1))  # fine texture (sensor-like noise)
    return np.clip(img, 0, 255).astype(np.uint8)


def resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((max(4, round(w * scale)), max(4, round(h * scale))),
                                                  Image.Resampling.BICUBIC))


def reencoded(rgb: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def cropped(rgb: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[top:h - bottom, left:w - right])


def blurred(rgb: np.ndarray, radius: float = 4.0) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius)))


def darkened(rgb: np.ndarray, factor: float = 0.08) -> np.ndarray:
    return (rgb.astype(np.float64) * factor).astype(np.uint8)


def brightened(rgb: np.ndarray, floor: int = 240) -> np.ndarray:
    return (floor + rgb.astype(np.float64) * (255 - floor) / 255).astype(np.uint8)


def uniform(size: tuple[int, int] = (96, 72), grey: int = 128, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(seed)
    return np.clip(grey + rng.normal(0, noise, (h, w, 1)).repeat(3, axis=2), 0, 255).astype(np.uint8)


def save(path: str | Path, rgb: np.ndarray, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kw)
    return path


def photo_tree(root: str | Path, classes: Mapping[str, int], *, size: tuple[int, int] = (96, 72),
               seed: int = 0) -> Path:
    """``root/<class>/<class>_<i>.png`` photos; ``classes`` maps class -> count."""
    root = Path(root)
    k = seed * 100_000
    for name, count in classes.items():
        for i in range(count):
            k += 1
            save(root / name / f"{name}_{i:03d}.png", photo(k, size))
    return root
