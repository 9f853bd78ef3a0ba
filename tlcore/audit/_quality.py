"""Photo quality flags: blurry, too dark, too bright, almost uniform; each a measured value and a threshold.

Measured on the image's luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B), at most
``QUALITY_SIDE`` pixels on its longer side (never enlarged: enlarging blurs):

- ``sharpness``: the variance of the 4-neighbour Laplacian (Pech-Pacheco et al., 2000). Low
  means few edges: **blurry** below ``blur_threshold``. An almost uniform image has no edges
  either; it is flagged as uniform, not as blurry.
- ``highlights``: the 99th percentile of the luminance (0-255). **Too dark** below
  ``dark_threshold``: even the brightest parts are dark. (A garment on a black background,
  a night sky with stars, are not "too dark": their highlights are bright.)
- ``shadows``: the 1st percentile. **Too bright** above ``bright_threshold``: even the
  darkest parts are nearly white (over-exposed, blank paper).
- ``entropy``: the Shannon entropy, in bits, of the luminance's deviations from its median in
  steps of 16 grey levels (0 when every pixel is within 8 levels of the median). **Almost
  uniform** below ``entropy_threshold``. Steps of 16, not single levels: a blank page with
  sensor or JPEG noise spreads over a dozen of 256 levels (3 bits) but stays in one step, while
  a thin sandal on a black background (Fashion-MNIST) keeps more than 1 bit.

``image_measures(rgb)`` gives the four numbers (and the perceptual hashes of
``tlcore.audit._neardup``, from the same small image); ``quality_flags(measures, thresholds)``
turns a table of them into flags.

Example:

>>> m = image_measures(np.full((32, 32, 3), 128, np.uint8))
>>> m["entropy"], m["sharpness"]
(0.0, 0.0)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tlcore.audit._neardup import dhash, phash
from tlcore.errors import ConfigError

__all__ = ["QualityThresholds", "QUALITY_FLAGS", "QUALITY_SIDE", "MEASURES", "luminance", "image_measures",
           "quality_flags"]

QUALITY_SIDE = 256
QUALITY_FLAGS = ("blurry", "dark", "bright", "uniform")
# Measured per image; the hashes are stored as two exact 32-bit halves each (float64 holds them).
MEASURES = ("sharpness", "highlights", "shadows", "entropy", "brightness")
HASH_COLUMNS = ("phash_hi", "phash_lo", "dhash_hi", "dhash_lo")


@dataclasses.dataclass(frozen=True)
class QualityThresholds:
    """Where each quality flag starts.

    Args:
        blur: blurry when ``sharpness`` (variance of the Laplacian) is below this. Defaults to 50.
        dark: too dark when ``highlights`` (99th percentile, 0-255) is below this. Defaults to 40.
        bright: too bright when ``shadows`` (1st percentile, 0-255) is above this. Defaults to 225.
        entropy: almost uniform when ``entropy`` (bits, of steps of 16 grey levels) is below this.
            Defaults to 0.5.
    """

    blur: float = 50.0
    dark: float = 40.0
    bright: float = 225.0
    entropy: float = 0.5

    def __post_init__(self) -> None:
        for name, lo, hi in (("blur", 0.0, 1e9), ("dark", 0.0, 255.0), ("bright", 0.0, 255.0), ("entropy", 0.0, 8.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                raise ConfigError(f"The {name} threshold must be a number in [{lo:g}, {hi:g}].",
                                  received=f"{name}={v!r}")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """An H × W float64 luminance (0-255) of an H × W × 3 (or H × W) uint8 image."""
    a = np.asarray(rgb, dtype=np.float64)
    if a.ndim == 2:
        return a
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _laplacian_variance(g: np.ndarray) -> float:
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


ENTROPY_STEP = 16.0


def _entropy(g: np.ndarray) -> float:
    steps = np.rint((g - np.median(g)) / ENTROPY_STEP).astype(np.int64)
    hist = np.bincount((steps - steps.min()).ravel()).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


def image_measures(rgb: np.ndarray) -> dict[str, float]:
    """The quality measures of one image (see the module docstring) and its two perceptual hashes,
    each hash as two 32-bit halves (``phash_hi``, ``phash_lo``, ``dhash_hi``, ``dhash_lo``)."""
    g = luminance(rgb)
    lo, hi = np.percentile(g, [1, 99])
    out = {"sharpness": _laplacian_variance(g), "highlights": float(hi), "shadows": float(lo),
           "entropy": _entropy(g), "brightness": float(g.mean())}
    for name, h in (("phash", phash(g)), ("dhash", dhash(g))):
        out[f"{name}_hi"], out[f"{name}_lo"] = float(int(h) >> 32), float(int(h) & 0xFFFFFFFF)
    return out


def join_hash(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """The 64-bit hashes back from their stored halves."""
    return (np.asarray(hi, dtype=np.uint64) << np.uint64(32)) | np.asarray(lo, dtype=np.uint64)


def quality_flags(measures: pd.DataFrame, thresholds: QualityThresholds | None = None) -> pd.DataFrame:
    """One boolean column per flag (``blurry``, ``dark``, ``bright``, ``uniform``) and ``flags``
    (their names joined by ", "), for a table with the columns of ``MEASURES``."""
    t = thresholds or QualityThresholds()
    uniform = measures["entropy"] < t.entropy
    out = pd.DataFrame({
        "blurry": (measures["sharpness"] < t.blur) & ~uniform,
        "dark": measures["highlights"] < t.dark,
        "bright": measures["shadows"] > t.bright,
        "uniform": uniform,
    }, index=measures.index)
    names = np.array(QUALITY_FLAGS, dtype=object)
    out["flags"] = [", ".join(names[row]) for row in out[list(QUALITY_FLAGS)].to_numpy()]
    return out
