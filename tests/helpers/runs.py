"""The session's tiny trained run, shared by the predict, Grad-CAM, export, CLI and page tests.

``tiny_run`` trains one tiny model (random weights, 64 px, one epoch on a generated
three-class tree) on first use in a test session and returns its run folder; later calls
reuse it. Test modules that use it share the pytest-xdist group ``"tiny-run"``, so one
xdist worker trains it once. ``write_tinted_tree`` writes the images it trains on
(also the "tiny" dataset of ``tests/helpers/searchfix.py``'s studies).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcore.datasets import add_dataset
from tlcore.workspace import Workspace

__all__ = ["TINY_CLASSES", "write_tinted_tree", "tiny_run"]

TINY_CLASSES = ("bird", "cat", "dog")


def write_tinted_tree(root: Path, per_class: int = 12, size: tuple[int, int] = (40, 30)) -> Path:
    """Seeded noise images, each class tinted in its own channel (so classes differ)."""
    rng = np.random.default_rng(0)
    w, h = size
    for k, cls in enumerate(TINY_CLASSES):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 156, size=(h, w, 3), dtype=np.uint8)
            arr[..., k] += 100
            Image.fromarray(arr).save(root / cls / f"{cls}_{i:03d}.png")
    return root


def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny trained run (trained on first use; later calls reuse the folder).

    Its workspace is the run folder's grandparent; the dataset is registered there as "tiny".
    """
    from tlcore.config import TrainSpec
    from tlcore.trainer import train

    root = tmp_path_factory.getbasetemp() / "tiny-run-workspace"
    run = root / "models" / "tiny-run"
    if (run / "model.keras").is_file():
        return run
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace(root)
    add_dataset(ws, "tiny", write_tinted_tree(root / "photos"))
    spec = TrainSpec(dataset="tiny", weights=None, image_size=64, epochs=1, batch_size=8)
    train(spec, ws, run_dir=run)
    return run
