"""The input pipeline: decoded-image arrays, dataset fingerprints, the resize rule.

Where the speed comes from:

1. Every image is decoded and resized once per (dataset content, image size,
   resize rule) into a uint8 array cached on disk (``ArrayCache``):
   ``load_image_array`` here, decoding on a thread pool.
2. The frozen part of the backbone is a fixed function of its input, so its
   output at the freeze boundary is computed once per (dataset content, backbone,
   weights, image size, resize rule, depth) and cached as float16. Without
   augmentation one copy serves every epoch of every trial at that depth; with
   augmentation, K augmented copies are cached and epochs cycle through them.
   That cache is filled by ``tlcore.trainer.train`` (it needs the model); this
   module gives it the key's dataset part, ``dataset_fingerprint``.

Resize rule (``resize_mode``): "pad" keeps the aspect ratio and letterboxes the
image, centred, on black; "crop" scales the short side to the target and takes
the centre square; "stretch" ignores the aspect ratio. Decoding and resizing are
``tlcore.datasets.load_rgb`` and ``resize_to``; ``tlcore.predict`` prepares new
photos with the same two calls, so inference sees the pixels training saw.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlcore.cache import ArrayCache
from tlcore.datasets import load_rgb, resize_to
from tlcore.errors import ImageDecodeError

__all__ = [
    "dataset_fingerprint",
    "decode_resized",
    "load_image_array",
    "default_workers",
    "IMAGE_CACHE_VERSION",
    "nested_subset",
]

IMAGE_CACHE_VERSION = 1
Progress = Callable[[int, int], None]


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def dataset_fingerprint(rows: pd.DataFrame) -> str:
    """A hash of the images' content and order (``sha1`` column, else ``relpath``)."""
    keys = rows["sha1"].astype(str) if "sha1" in rows else rows["relpath"].astype(str)
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


def decode_resized(path: str | os.PathLike[str], image_size: int, resize_mode: str = "pad") -> np.ndarray:
    """Decode one image to RGB uint8 and make it ``image_size`` square by ``resize_mode``."""
    return resize_to(load_rgb(path), image_size, mode=resize_mode)


def load_image_array(
    rows: pd.DataFrame,
    image_size: int,
    resize_mode: str = "pad",
    *,
    cache: ArrayCache | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """All images of ``rows`` (columns ``path``, ``sha1``) as one N×S×S×3 uint8 array.

    Args:
        rows: the images, in the order wanted.
        image_size: the side S.
        resize_mode: "pad", "crop" or "stretch". Defaults to "pad".
        cache: where to keep the decoded array. Defaults to None (decode every time).
        workers: decoding threads. Defaults to the number of CPUs (at most 8).
        progress: ``progress(done, total)`` while decoding.

    Raises:
        ImageDecodeError: an image cannot be decoded (the scan should have flagged it;
            rescan the dataset).
    """
    parts: dict[str, Any] = {
        "kind": "images",
        "version": IMAGE_CACHE_VERSION,
        "fingerprint": dataset_fingerprint(rows),
        "size": int(image_size),
        "resize": resize_mode,
    }
    if cache is not None:
        hit = cache.get(parts)
        if hit is not None:
            return hit
    paths: Sequence[str] = list(rows["path"].astype(str))
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)

    def work(i: int) -> None:
        try:
            out[i] = decode_resized(paths[i], image_size, resize_mode)
        except ImageDecodeError:
            raise
        except OSError as exc:
            raise ImageDecodeError(
                f"Cannot read {Path(paths[i]).name}: {exc.strerror or exc}.",
                received=paths[i],
                fix="The file changed since the last scan: rescan the dataset.",
            ) from exc

    done = 0
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for _ in pool.map(work, range(len(paths))):
            done += 1
            if progress is not None and (done % 256 == 0 or done == len(paths)):
                progress(done, len(paths))
    if cache is not None:
        return cache.put(parts, out)
    return out


def nested_subset(rows: pd.DataFrame, y: np.ndarray, fraction: float) -> np.ndarray | None:
    """The row positions of a stratified ``fraction`` of ``rows``, nested across fractions.

    Each image gets a fixed rank inside its class from the hash of its content
    (``sha1``, else ``relpath``), and a fraction takes the first ``ceil(fraction * n)``
    of each class (at least one): the subset for a larger fraction always contains
    the subset for a smaller one, so a trial promoted to more data only gains images.

    Returns:
        Sorted positions, or None for ``fraction >= 1`` (all rows).
    """
    if fraction >= 1.0:
        return None
    keys = rows["sha1"].astype(str) if "sha1" in rows else rows["relpath"].astype(str)
    rank = np.array([int(hashlib.sha256(f"subset:{k}".encode()).hexdigest()[:12], 16) for k in keys])
    y = np.asarray(y)
    out = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        take = max(1, math.ceil(fraction * len(members)))
        out.append(members[np.argsort(rank[members], kind="stable")[:take]])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)
