"""Models built by hand, for prediction tests that need a model without training one.

``channel_model`` is a real Keras model that averages each colour channel and puts the
class of the brightest channel first (class k <- channel k mod 3): on ``write_tinted_tree``
images (class k tinted in channel k) it is right every time, so an accuracy can be
checked exactly. ``mirror_sensitive_model`` gives different answers for an image and its
mirror image (for test-time augmentation). ``write_model_folder`` saves a model as a run
folder (``model.keras``, ``labels.txt``, ``spec.yaml``) that ``list_models`` lists and
``load_model`` loads; ``write_export_folder`` adds a model card, as an export.
``upload_trial_run`` puts a run folder's files in a workspace's artifact store, for hand
trials that saved a model (``tl_artifacts``).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tlcore.predict import LoadedModel
from tlcore.runfolder import RUN_FILES
from tlcore.workspace import Workspace

__all__ = ["channel_model", "mirror_sensitive_model", "loaded", "write_model_folder", "write_export_folder",
           "upload_trial_run", "zip_tree"]


def channel_model(num_classes: int = 3, size: int = 8):
    """Input S×S×3 (0-255) -> mean per channel -> softmax; class k scores channel k mod 3.

    Its head has the workbench's layer names ('pool', a linear 'classifier', then the softmax),
    so the pages' Grad-CAM accepts it (the input itself is the feature map it explains).
    """
    import keras

    inp = keras.Input((size, size, 3))
    fmap = keras.layers.Rescaling(1.0, name="features")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(fmap)
    dense = keras.layers.Dense(num_classes, name="classifier")
    out = keras.layers.Activation("softmax", name="probabilities")(dense(x))
    kernel = np.zeros((3, num_classes), np.float32)
    for k in range(num_classes):
        kernel[k % 3, k] = 0.1
    dense.set_weights([kernel, np.zeros(num_classes, np.float32)])
    return keras.Model(inp, out)


def mirror_sensitive_model(num_classes: int = 2, size: int = 4, seed: int = 0):
    """Flatten -> Dense softmax with seeded random weights: the left and right halves weigh differently."""
    import keras

    inp = keras.Input((size, size, 3))
    dense = keras.layers.Dense(num_classes, activation="softmax")
    out = dense(keras.layers.Flatten()(inp))
    rng = np.random.default_rng(seed)
    dense.set_weights([rng.normal(0, 0.02, (size * size * 3, num_classes)).astype(np.float32),
                       np.zeros(num_classes, np.float32)])
    return keras.Model(inp, out)


def loaded(model, class_names: Sequence[str], resize_mode: str = "stretch") -> LoadedModel:
    """A ``LoadedModel`` around a model in hand (no folder)."""
    size = int(model.inputs[0].shape[1])
    return LoadedModel(model=model, class_names=list(class_names), image_size=size, resize_mode=resize_mode,
                       spec={}, run_dir=None, metrics={}, model_path=Path("hand.keras"))


def write_model_folder(folder: Path, model, class_names: Sequence[str], *,
                       spec: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None) -> Path:
    """Save ``model`` as a run folder ``list_models`` lists (model, labels, spec, metrics)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "labels.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")
    size = int(model.inputs[0].shape[1])
    base = {"dataset": "hand", "backbone": "hand", "method": "feature_extraction", "image_size": size,
            "resize_mode": "stretch"}
    (folder / "spec.yaml").write_text(yaml.safe_dump({**base, **(spec or {})}), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({"best_val_accuracy": 0.5, **(metrics or {})}), encoding="utf-8")
    return folder


def write_export_folder(folder: Path, model, class_names: Sequence[str], *, val: float = 0.75) -> Path:
    """An export folder as ``tlcore.export`` writes one (model, labels, model card)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "labels.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")
    size = int(model.inputs[0].shape[1])
    card = {"card_version": 1, "name": folder.name, "exported_at": "2026-01-02T03:04:05+00:00",
            "input": {"image_size": size, "resize_mode": "stretch"}, "classes": list(class_names),
            "training": {"dataset": "hand", "backbone": "hand", "method": "feature_extraction"},
            "dataset": {"name": "hand"}, "metrics": {"best_val_accuracy": val, "test_accuracy": val - 0.05}}
    (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def upload_trial_run(ws: Workspace, run: Path, prefix: str) -> dict[str, str]:
    """Copy the run folder's ``RUN_FILES`` into the workspace's artifact store; {file name: artifact id}."""
    from tlcore.search import artifact_store

    store = artifact_store(ws)
    ids = {}
    for name in RUN_FILES:
        path = run / name
        if path.is_file():
            ids[name] = f"{prefix}-{name}"
            with open(path, "rb") as fh:
                store.write(ids[name], fh)
    return ids


def zip_tree(root: Path, out: Path, *, top: str | None = None, extra: Mapping[str, bytes] | None = None) -> Path:
    """Zip every file under ``root`` (under folder ``top`` in the archive when given), plus ``extra`` entries."""
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                rel = p.relative_to(root).as_posix()
                zf.write(p, f"{top}/{rel}" if top else rel)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out
