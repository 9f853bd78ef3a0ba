"""Fashion-MNIST helpers for the benchmarks: a train-only subset and a held-out test array.

- ``add_train_subset(ws, name, images)``: registers ``images`` images from
  Fashion-MNIST's TRAIN file (the first ``images / 10`` of each class, in file
  order) as a pre-split dataset with no test part, so validation is carved out of
  it by the dataset's split (``tlcore.datasets``' stable hash rule) and a trainer
  evaluates no test split. Files are ``train/<class>/<index in the IDX file>.png``.
- ``heldout_test_set(n, size)``: the first ``n / 10`` images of each class of
  Fashion-MNIST's own TEST file (t10k), decoded and resized ("pad") exactly as the
  project decodes its training images, as one N x S x S x 3 uint8 array and their
  class names. They are never written to a workspace, so no search can train or
  select on them.
- ``check_idx_decode_matches(rows, size)``: the IDX-to-array path above gives the
  same pixels as decoding the registered PNG files (``pipeline.decode_resized``).

The IDX files come from Debian's ``dataset-fashion-mnist`` package (or
``$TLCORE_FASHION_MNIST``), found by ``tlcore.datasets.find_fashion_mnist``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tlcore.datasets import add_fashion_mnist, read_idx, resize_to
from tlcore.datasets._idx import FASHION_MNIST_CLASSES, find_fashion_mnist
from tlcore.workspace import Workspace

__all__ = ["add_train_subset", "heldout_test_set", "check_idx_decode_matches", "CLASSES"]

CLASSES = FASHION_MNIST_CLASSES


def _files() -> dict[str, tuple[Path, Path]]:
    found = find_fashion_mnist()
    if found is None:
        raise SystemExit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or set TLCORE_FASHION_MNIST")
    return found


def add_train_subset(ws: Workspace, name: str, images: int) -> None:
    """Register ``images`` train+val images (``images / 10`` per class) from the TRAIN file, no test part."""
    if ws.has_dataset(name):
        return
    per_class = max(2, images // 10)
    add_fashion_mnist(ws, name, per_class={"train": per_class, "test": 0})


def _to_rgb(gray: np.ndarray) -> np.ndarray:
    """An H x W grayscale IDX image as H x W x 3 uint8: what PIL's convert("RGB") gives for an L-mode PNG."""
    return np.repeat(np.ascontiguousarray(gray, dtype=np.uint8)[:, :, None], 3, axis=2)


def heldout_test_set(n: int, size: int, resize_mode: str = "pad") -> tuple[np.ndarray, list[str]]:
    """``n`` images (``n / 10`` per class, first in file order) of the t10k TEST file, resized, and their classes."""
    img_path, lab_path = _files()["test"]
    images, labels = read_idx(img_path), read_idx(lab_path)
    per_class = n // len(CLASSES)
    counts = dict.fromkeys(range(len(CLASSES)), 0)
    picked: list[int] = []
    for i, lab in enumerate(labels.tolist()):
        if counts[lab] < per_class:
            counts[lab] += 1
            picked.append(i)
            if len(picked) == per_class * len(CLASSES):
                break
    x = np.stack([resize_to(_to_rgb(images[i]), size, mode=resize_mode) for i in picked])
    return x, [CLASSES[int(labels[i])] for i in picked]


def check_idx_decode_matches(rows: pd.DataFrame, size: int, resize_mode: str = "pad", n: int = 16) -> None:
    """The held-out arrays are made like the training inputs: compare on registered TRAIN files."""
    from tlcore.pipeline import decode_resized

    images = read_idx(_files()["train"][0])
    for path in rows["path"].astype(str).head(n):
        i = int(Path(path).stem)  # import_idx names each file by its index in the IDX file
        if not np.array_equal(resize_to(_to_rgb(images[i]), size, mode=resize_mode),
                              decode_resized(path, size, resize_mode)):
            raise SystemExit(f"the held-out decode (IDX array) differs from the project's decode of {path}")
