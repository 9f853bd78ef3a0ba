"""Near-duplicate images: candidates from features and hashes, confirmed by the pixels; groups.

Measured while building this (3,000 Fashion-MNIST images at 96 px, 300 synthetic copies),
neither signal alone separates copies from look-alikes: resized, re-encoded and cropped
copies of an image reach a cosine similarity of their pooled EfficientNet features of only
0.85 at 90 % recall, where 4,840 pairs of *different* garments (two plain trousers) already
do; a 64-bit pHash within 6 bits finds 60 % of the copies and 1,569 pairs of different
garments. Both are excellent at *proposing* the copy, though: an image's copy is among its
10 nearest neighbours by feature cosine in 100 % of cases. So (``bench/bench_audit.py``:
recall 0.98 of the copies, no false pair):

1. **Candidates**: each image's ``neighbors`` nearest neighbours by cosine similarity of
   the pooled features, by a 16 × 16 grayscale descriptor, and every pair whose pHash differs
   in at most ``hamming`` bits.
2. **Confirmation** by the pixels, ``pixel_similarity``: the normalised cross-correlation of
   the two grayscale thumbnails (at most 96 px, never enlarged) brought to a common size and
   then shrunk by a quarter (which evens out different resampling filters and JPEG noise),
   or, when one image is a crop of the other (smaller at the same pixel scale), the best
   correlation of the smaller one slid over the larger (``cv2.matchTemplate``; when the
   thumbnails were shrunk from their originals, both are blurred a little first so that the
   two different resamplings do not count). 1 means the same pixels. A pair is a near-duplicate from ``DEFAULT_SIMILARITY`` (0.995).

``dhash`` and ``phash`` are written here in numpy and SciPy (no extra dependency):
difference hash (the sign of each horizontal step of a 9 × 8 area-averaged thumbnail) and
perceptual hash (the 8 × 8 lowest frequencies of the 2-D DCT of a 32 × 32 thumbnail against
their median, the DC term left out), 64 bits each, compared by Hamming distance.

``near_duplicate_pairs`` returns every confirmed pair down to a floor, so a user can move
the threshold afterwards (``filter_pairs``); ``group_pairs`` joins pairs into groups
(union–find); ``tlcore.audit._run`` marks the pairs across splits as leakage.

Example:

>>> rng = np.random.default_rng(0)
>>> a = rng.integers(0, 256, (28, 28)).astype(np.uint8)
>>> thumbs = [small_gray(a), small_gray(a[2:, 1:]), small_gray(255 - a)]  # a crop of a, and a negative
>>> pairs = near_duplicate_pairs(thumbs, [1.0, 1.0, 1.0])
>>> pairs[["i", "j"]].values.tolist()
[[0, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["dhash", "phash", "hamming_matrix", "small_gray", "descriptor", "pixel_similarity", "candidate_pairs",
           "near_duplicate_pairs", "filter_pairs", "group_pairs", "DEFAULT_SIMILARITY", "DEFAULT_NEIGHBORS",
           "THUMB_SIDE"]

DEFAULT_SIMILARITY = 0.995
DEFAULT_NEIGHBORS = 10
DEFAULT_HAMMING = 4
THUMB_SIDE = 96  # the grayscale thumbnail the pixels are compared on (9 KB an image)
DESCRIPTOR_SIDE = 16
SHRINK = 0.75  # full-frame comparisons at three quarters of the common size
CONTAIN_BLUR = 2.0  # Gaussian sigma (px) before sliding a crop over its original: evens out resampling
MIN_CONTAINED = 0.5  # a crop covers at least half of the larger image
_BLOCK = 2048  # rows of a similarity matrix computed at once


# ------------------------------------------------------------------ hashes
def _area_resize(gray: np.ndarray, h: int, w: int) -> np.ndarray:
    """``gray`` resized to h × w by area averaging (PIL's BOX filter, float)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(gray, dtype=np.float32), mode="F")
    return np.asarray(img.resize((w, h), Image.Resampling.BOX), dtype=np.float64)


def _pack(bits: np.ndarray) -> np.uint64:
    """Up to 64 booleans as one unsigned integer, the first bit the most significant."""
    flat = np.asarray(bits, dtype=bool).ravel()
    return np.uint64(int.from_bytes(np.packbits(flat).tobytes(), "big") >> (8 * ((len(flat) + 7) // 8) - len(flat)))


def dhash(gray: np.ndarray, hash_size: int = 8) -> np.uint64:
    """Difference hash of a 2-D grayscale image: ``hash_size`` rows of ``hash_size`` bits, each
    "is the next pixel to the right brighter" on a (hash_size + 1) × hash_size thumbnail."""
    small = _area_resize(gray, hash_size, hash_size + 1)
    return _pack(small[:, 1:] > small[:, :-1])


def phash(gray: np.ndarray, hash_size: int = 8, highfreq_factor: int = 4) -> np.uint64:
    """Perceptual hash of a 2-D grayscale image: the 2-D DCT-II of a 32 × 32 thumbnail, its
    ``hash_size`` × ``hash_size`` lowest frequencies, each bit "above the median of the others"
    (the DC term is left out of the median)."""
    from scipy.fft import dctn

    side = hash_size * highfreq_factor
    small = _area_resize(gray, side, side)
    low = dctn(small, type=2, norm="ortho")[:hash_size, :hash_size]
    med = np.median(low.ravel()[1:])
    return _pack(low > med)


def hamming_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Bits that differ between every hash of ``a`` and every hash of ``b`` (default ``a``)."""
    a = np.asarray(a, dtype=np.uint64)
    b = a if b is None else np.asarray(b, dtype=np.uint64)
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int16)


# ------------------------------------------------------------------ pixels
def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    img = np.asarray(img, dtype=np.float32)
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    down = w < img.shape[1] or h < img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR)


def small_gray(gray: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A uint8 grayscale thumbnail of at most ``side`` px on its longer side (never enlarged)."""
    g = np.asarray(gray, dtype=np.float32)
    h, w = g.shape
    s = min(1.0, side / max(h, w))
    if s < 1.0:
        g = _resize(g, max(1, round(w * s)), max(1, round(h * s)))
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-6 or nb < 1e-6:
        return 1.0 if na < 1e-6 and nb < 1e-6 else 0.0  # two flat images of one grey are the same
    return float(a @ b / (na * nb))


def descriptor(thumb: np.ndarray, side: int = DESCRIPTOR_SIDE) -> np.ndarray:
    """A ``side`` × ``side`` full-frame grayscale descriptor, centred and of unit length (zero when flat)."""
    d = _resize(thumb, side, side).astype(np.float64).ravel()
    d -= d.mean()
    n = np.linalg.norm(d)
    return (d / n if n > 1e-6 else d).astype(np.float32)


def _contained(big: np.ndarray, s_big: float, small: np.ndarray, s_small: float) -> float:
    """The best correlation of ``small`` slid over ``big`` at the same native pixel scale, or -1 when
    ``small`` is not a crop-sized part of ``big``."""
    import cv2

    f = s_big / s_small
    h, w = small.shape
    nw, nh = round(w * f), round(h * f)
    bh, bw = big.shape
    if nw < 4 or nh < 4 or nw > bw or nh > bh or (nw == bw and nh == bh) or nw * nh < MIN_CONTAINED * bw * bh:
        return -1.0
    # Both thumbnails at their originals' own pixels and the same scale: a crop matches exactly, and a
    # blur would only help look-alikes. Otherwise blur both, so that resampling does not count.
    exact = abs(f - 1.0) < 1e-9 and s_big >= 1.0 and s_small >= 1.0
    part = _resize(small, nw, nh)
    whole = np.asarray(big, dtype=np.float32)
    if not exact:
        part = cv2.GaussianBlur(part, (0, 0), CONTAIN_BLUR)
        whole = cv2.GaussianBlur(whole, (0, 0), CONTAIN_BLUR)
        m = int(np.ceil(2 * CONTAIN_BLUR))  # the blur's border band differs from the original's: left out
        if nw > 2 * m + 4 and nh > 2 * m + 4:
            part = part[m:-m, m:-m]
    if float(part.std()) < 1e-3:
        return -1.0
    r = cv2.matchTemplate(whole, part, cv2.TM_CCOEFF_NORMED)
    return float(np.nanmax(r)) if np.isfinite(r).any() else -1.0


def pixel_similarity(a: np.ndarray, b: np.ndarray, scale_a: float = 1.0, scale_b: float = 1.0) -> float:
    """How alike two grayscale thumbnails are, in [-1, 1] (1: the same pixels).

    Args:
        a, b: uint8 thumbnails (``small_gray``).
        scale_a, scale_b: thumbnail pixels per original pixel of each (1.0 when not shrunk), so
            that a crop can be recognised at the original's pixel scale.
    """
    w = max(2, round(min(a.shape[1], b.shape[1]) * SHRINK))
    h = max(2, round(min(a.shape[0], b.shape[0]) * SHRINK))
    full = _ncc(_resize(a, w, h), _resize(b, w, h))
    return max(full, _contained(a, scale_a, b, scale_b), _contained(b, scale_b, a, scale_a))


# ------------------------------------------------------------------ pairs
def _normalised(x: np.ndarray) -> np.ndarray:
    f = np.asarray(x, dtype=np.float32)
    f = np.where(np.isfinite(f), f, 0.0)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def _neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most cosine-similar other rows, as (i, j) pairs."""
    n = len(x)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ii, jj = [], []
    for start in range(0, n, _BLOCK):
        sim = x[start:start + _BLOCK] @ x.T
        rows = np.arange(start, min(n, start + _BLOCK))
        sim[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        ii.append(np.repeat(rows, k))
        jj.append(top.ravel())
    return np.concatenate(ii), np.concatenate(jj)


def candidate_pairs(n: int, *, features: np.ndarray | None = None, descriptors: np.ndarray | None = None,
                    hashes: np.ndarray | None = None, neighbors: int = DEFAULT_NEIGHBORS,
                    hamming: int = DEFAULT_HAMMING) -> np.ndarray:
    """The pairs worth comparing pixel by pixel, as an m × 2 array with i < j (see the module docstring)."""
    found = []
    for x in (features, descriptors):
        if x is not None and neighbors > 0:
            i, j = _neighbours(_normalised(x), neighbors)
            found.append(np.stack([i, j], axis=1))
    if hashes is not None and hamming >= 0:
        h = np.asarray(hashes, dtype=np.uint64)
        for start in range(0, n, _BLOCK):
            d = hamming_matrix(h[start:start + _BLOCK], h)
            i, j = np.nonzero(d <= hamming)
            found.append(np.stack([i + start, j], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def near_duplicate_pairs(thumbs: Sequence[np.ndarray], scales: Sequence[float], *, features: np.ndarray | None = None,
                         hashes: np.ndarray | None = None, neighbors: int = DEFAULT_NEIGHBORS,
                         hamming: int = DEFAULT_HAMMING, floor: float = 0.98) -> pd.DataFrame:
    """Every pair of images whose pixel similarity reaches ``floor``.

    Args:
        thumbs: one uint8 grayscale thumbnail per image (``small_gray``).
        scales: thumbnail pixels per original pixel, per image.
        features: n × D features for the candidates (None: thumbnails and hashes only).
        hashes: n 64-bit perceptual hashes for the candidates (None: not used).
        neighbors: nearest neighbours per image and signal taken as candidates. Defaults to 10.
        hamming: hash distance up to which a pair is a candidate. Defaults to 4.
        floor: the lowest pixel similarity returned. Defaults to 0.98.

    Returns:
        A DataFrame with columns ``i``, ``j`` (i < j), ``similarity`` (pixels), ``cosine`` (features,
        NaN without them) and ``hamming`` (-1 without hashes), most similar first.
    """
    n = len(thumbs)
    desc = np.stack([descriptor(t) for t in thumbs]) if n else np.zeros((0, DESCRIPTOR_SIDE ** 2), np.float32)
    cand = candidate_pairs(n, features=features, descriptors=desc, hashes=hashes, neighbors=neighbors, hamming=hamming)
    sim = np.array([pixel_similarity(thumbs[a], thumbs[b], float(scales[a]), float(scales[b])) for a, b in cand],
                   dtype=np.float64)
    keep = sim >= floor
    cand, sim = cand[keep], sim[keep]
    i, j = cand[:, 0], cand[:, 1]
    if features is not None and len(cand):
        f = _normalised(features)
        cos = np.einsum("nd,nd->n", f[i], f[j]).astype(np.float64)
    else:
        cos = np.full(len(cand), np.nan)
    if hashes is not None and len(cand):
        h = np.asarray(hashes, dtype=np.uint64)
        ham = np.bitwise_count(h[i] ^ h[j]).astype(np.int64)
    else:
        ham = np.full(len(cand), -1, dtype=np.int64)
    out = pd.DataFrame({"i": i.astype(np.int64), "j": j.astype(np.int64), "similarity": sim, "cosine": cos,
                        "hamming": ham})
    return out.sort_values(["similarity", "i", "j"], ascending=[False, True, True], kind="stable").reset_index(drop=True)


def filter_pairs(pairs: pd.DataFrame, *, similarity: float = DEFAULT_SIMILARITY) -> pd.DataFrame:
    """The pairs from ``similarity`` up: a threshold moved over a saved list (which holds the pairs down
    to its own, lower, floor)."""
    if pairs.empty:
        return pairs.reset_index(drop=True)
    return pairs[pairs["similarity"] >= similarity].reset_index(drop=True)


def group_pairs(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """A group number per image (union–find over the pairs' ``i`` and ``j``); an image in no pair is its
    own group. Groups are numbered by their smallest member."""
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(pairs["i"].to_numpy(), pairs["j"].to_numpy()):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(a) for a in range(n)], dtype=np.int64)
