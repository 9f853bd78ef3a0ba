"""One transfer-learning run from a ``TrainSpec``: data, caches, phases, history, artifacts.

The three methods of the classic recipe:

- ``feature_extraction``: the whole backbone frozen; only the head trains.
- ``fine_tune``: blocks ``[0, freeze_depth)`` frozen; the rest trains with the head.
- ``two_phase``: the head trains with everything frozen for ``head_epochs``, then
  blocks down to ``freeze_depth`` are unfrozen and training continues at
  ``learning_rate * fine_tune_factor``; epochs are numbered continuously, so the
  two phases make one learning curve.

Adam with (label-smoothed) cross-entropy. With ``feature_cache`` on, each phase
trains only the part after its freeze boundary (``model.Classifier.split``) on the
frozen prefix's output, computed once and kept in an ``ArrayCache`` under
``<workspace>/cache/features`` keyed by the dataset fingerprint, backbone, weights,
size, resize rule, depth and augmentation copy (a missing depth is computed from
the nearest shallower one cached, ``_FeatureStore``); the numbers are those of the
full model, because the two share their layers. The best epoch (highest validation
accuracy, then lowest validation loss) is kept and saved.

What the defaults add (``TrainSpec``): the head starts from the linear probe
(``head_init``, ``tlcore.probe``; fitted once per data and backbone, kept in the
feature cache under a cross-process lock); BatchNorm in the unfrozen blocks trains
on batch statistics (``batchnorm``); ``_DivergenceGuard`` raises
``TrainingDiverged`` when the loss is not finite or validation accuracy is at
chance. A search adds ``subset_rungs``: before its full-data epochs the last phase
trains one epoch on each nested data subset (``pipeline.nested_subset``), and the
worker lets the pruner judge each; ``warmup_epochs`` ramps the learning rate up.

Entry points: ``train(spec, ws, run_dir=..., hooks=ProgressHooks(...))`` returns a
``TrainResult``; ``prepare_data`` (split + decode, via ``datasets`` and ``pipeline``)
and ``phases_for`` are its parts. Callers: ``python -m tlcore train``
(``cli._train``) and the search worker (``search.worker``), which passes hooks for
progress and pruning. The backend is set up by ``runtime.configure`` at the start;
XLA (``jit_compile``) is used on GPUs and on non-TensorFlow backends, not for
TensorFlow on a CPU.

A run writes its folder atomically (a temporary folder renamed when complete;
``runfolder.RunFolder.write``, which owns the file names):
``model.keras``, ``history.json``, ``spec.yaml``, ``metrics.json`` (``evaluate``'s
report on the test split, best epoch, runtime, cache hits, and ``calibration``: the
temperature fitted on the validation split with the ECE and NLL before and after,
``tlcore.calibration.calibration_report``; ``predict`` applies it), ``labels.txt`` and
``data.json`` (dataset, fingerprints, image size, resize rule, test files), which
``predict`` and ``export`` read.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from tlcore._fsutil import check_new_folder
from tlcore._usertext import counted
from tlcore.backbones import weights_identity
from tlcore.cache import ArrayCache
from tlcore.calibration import calibration_report
from tlcore.config import TrainSpec, recipe_depth
from tlcore.datasets import dataset_splits, folder_missing, load_split_spec
from tlcore.errors import ConfigError, DatasetError, TLCoreError, TrainingDiverged
from tlcore.evaluate import classification_report
from tlcore.model import Classifier
from tlcore.pipeline import dataset_fingerprint, load_image_array, nested_subset
from tlcore.probe import PROBE_VERSION, ProbeFit, fit_softmax_regression
from tlcore.runfolder import RunFolder
from tlcore.runtime import configure, forward_batches, set_seed
from tlcore.workspace import Workspace

__all__ = ["train", "TrainResult", "TrainingData", "prepare_data", "ProgressHooks", "phases_for"]

DEFAULT_CACHE_BUDGET = 20 * 1024**3


@dataclass
class ProgressHooks:
    """Callbacks for pages, terminals and the search.

    on_batch(epoch, batch, num_batches, logs) after each training batch;
    on_epoch(record) after each epoch with its history record (raise
    ``optuna.TrialPruned`` there to stop a trial); on_status(text) for
    stage messages ("decoding images", "caching features", ...);
    on_stage(stage) before each fit: ``{"rung": r or None, "fraction": f,
    "start": e0, "end": e1}`` (a successive-halving rung, or the full data);
    should_stop() after each batch and epoch and before each fit: True ends
    training there, as early stopping does (the best weights so far are kept,
    evaluated and saved; a train job's stop request, ``tlcore.train_jobs``);
    on_save(folder) just before the run folder is written there (a train job
    records it, so a process killed once it is written still links it).
    """

    on_batch: Callable[[int, int, int, dict[str, float]], None] | None = None
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    on_status: Callable[[str], None] | None = None
    on_stage: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_save: Callable[[Path], None] | None = None

    def status(self, text: str) -> None:
        if self.on_status is not None:
            self.on_status(text)

    def stop_requested(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())


@dataclass
class TrainingData:
    """Decoded, resized images of each split with their labels."""

    class_names: list[str]
    x: dict[str, np.ndarray]  # split -> N×S×S×3 uint8
    y: dict[str, np.ndarray]  # split -> N int labels
    rows: dict[str, pd.DataFrame]  # split -> index rows (relpath, path, label, ...)
    fingerprint: dict[str, str]  # split -> content fingerprint


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    class_names: list[str]
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return RunFolder(self.run_dir).model_file


def phases_for(spec: TrainSpec, num_blocks: int) -> list[dict[str, Any]]:
    """The training phases: freeze depth, epoch range and learning rate of each (a fine_tune or
    two_phase spec without a depth: ``config.recipe_depth``)."""
    depth = spec.freeze_depth
    if depth is None:
        depth = num_blocks if spec.method == "feature_extraction" else recipe_depth(num_blocks)
    if not 0 <= depth <= num_blocks:
        raise ConfigError(
            f"freeze_depth must be between 0 and {num_blocks} for {spec.backbone}.",
            received=f"freeze_depth={spec.freeze_depth}",
            fix=f"Use {num_blocks} for feature extraction and 0 to fine-tune every block.",
        )
    if spec.method == "feature_extraction":
        return [{"name": "head", "depth": num_blocks, "start": 0, "end": spec.epochs, "lr": spec.learning_rate}]
    if spec.method == "fine_tune":
        return [{"name": "fine_tune", "depth": depth, "start": 0, "end": spec.epochs, "lr": spec.learning_rate}]
    e1 = spec.phase1_epochs
    return [
        {"name": "head", "depth": num_blocks, "start": 0, "end": e1, "lr": spec.learning_rate},
        {"name": "fine_tune", "depth": depth, "start": e1, "end": spec.epochs,
         "lr": spec.learning_rate * spec.fine_tune_factor},
    ]


def prepare_data(ws: Workspace, spec: TrainSpec, *, hooks: ProgressHooks | None = None,
                 cache: ArrayCache | None = None) -> TrainingData:
    """Split the dataset and decode each split once (cached per image size and resize rule)."""
    hooks = hooks or ProgressHooks()
    index = dataset_splits(ws, spec.dataset, spec.split_spec(load_split_spec(ws, spec.dataset)))
    index = index[index["split"] != ""].sort_values("relpath", kind="stable").reset_index(drop=True)
    class_names = sorted(index["label"].unique().tolist())
    if len(class_names) < 2:
        raise DatasetError("Training needs at least two classes with usable images.",
                           received=f"dataset {spec.dataset!r} with classes {class_names}",
                           fix="Add images for more classes, or fix the problems the Datasets page reports.")
    _check_every_class_trains(spec.dataset, index)
    _check_files_present(ws, spec.dataset, index)
    lookup = {c: i for i, c in enumerate(class_names)}
    x, y, rows, fp = {}, {}, {}, {}
    for split in ("train", "val", "test"):
        part = index[index["split"] == split].reset_index(drop=True)
        if split in ("train", "val") and len(part) == 0:
            raise DatasetError(f"The {split} split is empty.", received=f"dataset {spec.dataset!r}",
                               fix=_empty_split_fix(ws, spec.dataset, index))
        hooks.status(f"Decoding {split} images ({len(part)})")
        x[split] = load_image_array(part, spec.image_size, spec.resize_mode, cache=cache)
        y[split] = part["label"].map(lookup).to_numpy(dtype=np.int64)
        rows[split] = part
        fp[split] = dataset_fingerprint(part)
    return TrainingData(class_names=class_names, x=x, y=y, rows=rows, fingerprint=fp)


def _check_every_class_trains(dataset: str, index: pd.DataFrame) -> None:
    """Refuse a class with images in the validation or test split and none in train (a pre-split
    dataset whose train/ lacks it, a misspelled class folder): the model would have an output it
    never learns, and each of its images would count as an error, without a word.

    Raises:
        DatasetError: naming the classes, their images elsewhere, and the ways out.
    """
    in_train = set(index.loc[index["split"] == "train", "label"])
    if not in_train:
        return  # no train split at all: prepare_data says so, and where the images are missing
    elsewhere = index[~index["label"].isin(in_train)].groupby("label")["split"].value_counts()
    if elsewhere.empty:
        return
    by_class: dict[str, list[str]] = {}
    for (label, split), n in elsewhere.items():
        by_class.setdefault(str(label), []).append(f"{n} in {'validation' if split == 'val' else split}")
    one = len(by_class) == 1
    raise DatasetError(
        f"{'Class' if one else 'Classes'} {', '.join(map(repr, by_class))} {'has' if one else 'have'} no image in "
        f"the train split: the model could not learn {'it' if one else 'them'}, and each of {'its' if one else 'their'} "
        "validation and test images would count as an error.",
        received=f"dataset {dataset!r}: " + "; ".join(f"{c}: {', '.join(v)}" for c, v in by_class.items()),
        fix=f"Add training images of {'it' if one else 'each'} (in a dataset split into folders: under train/), or "
            f"leave {'its' if one else 'their'} images out (Exclude on the Datasets page, or 'python -m tlcore datasets "
            f"exclude {dataset} RELPATH...'); if {'it' if one else 'one'} is another class spelled differently, move "
            "its images into that class's folders and rescan.")


def _check_files_present(ws: Workspace, dataset: str, index: pd.DataFrame) -> None:
    """Refuse to train on images deleted since the dataset's last scan: the image cache still holds
    them, so training would go on with photos the user removed, without a word (one ``stat`` per
    image: 0.15-0.19 s for 60,000 files on this project's 2-core test machine, page cache warm).

    Raises:
        DatasetError: the dataset's folder is gone (``folder_missing``), or which images are, and
            to rescan.
    """
    gone = [str(r) for r, p in zip(index["relpath"], index["path"]) if not os.path.isfile(p)]
    if not gone:
        return
    folder = folder_missing(ws.get_dataset(dataset), then="Its images cannot be trained on.")
    if folder is not None:
        raise folder
    raise DatasetError(
        f"{counted(len(gone), 'image')} of dataset {dataset!r} {'is' if len(gone) == 1 else 'are'} gone since its "
        "last scan (deleted or moved); training would use the copies cached from before.",
        received=", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else ""),
        fix=f"Rescan the dataset (Rescan on the Datasets page, or 'python -m tlcore datasets rescan {dataset}'), "
            "then train again.")


def _empty_split_fix(ws: Workspace, dataset: str, index: pd.DataFrame) -> str:
    """What to do about an empty train or validation split: the split fractions, unless the dataset
    comes split into folders and its train folder holds no usable image (fractions cannot help then)."""
    from tlcore.datasets import load_index

    try:
        folders = set(load_index(ws, dataset)["split"].astype(str))
    except TLCoreError:
        folders = set()
    if "test" in folders and not (index["split"] == "train").any():
        return ("It comes split into train/ and test/ folders, and its training and validation images come from "
                "train/ only, which holds no usable image: add images there and rescan (an import: import "
                "training images too, e.g. --train-per-class 500).")
    return "Add more images or change the split fractions on the Datasets page."


# ------------------------------------------------------------------ data feeds
class _Batches(keras.utils.PyDataset):
    """Shuffled batches from cached arrays; epoch e reads copy ``e % K`` of the inputs.

    ``full_batches``: the epoch's short last batch is filled up with the first rows of the
    epoch's order, so every batch has one shape. Where the step is compiled (JAX, XLA on a
    GPU) a second shape is a second compilation: on one core under JAX, the first epoch of
    EfficientNet-Lite0 at 32 px on 264 images in batches of 32 took 35.5-38.3 s with a last
    batch of 8 and 20.2-25.0 s filled (``bench/bench_last_batch.py``, three seeds). Every
    row is still seen each epoch; a few twice.
    """

    def __init__(self, copies: list[np.ndarray], y: np.ndarray, num_classes: int, batch_size: int, seed: int,
                 sample_weight: np.ndarray | None = None, start_epoch: int = 0, shuffle: bool = True,
                 subset: np.ndarray | None = None, full_batches: bool = False):
        super().__init__(workers=1, use_multiprocessing=False)
        self.copies, self.y, self.num_classes = copies, y, num_classes
        self.batch_size, self.seed, self.sw = batch_size, seed, sample_weight
        self.shuffle, self.full_batches = shuffle, full_batches
        # The rows this feed reads (a nested training subset for the early rungs), else all.
        self.subset = np.arange(len(y)) if subset is None else np.asarray(subset, dtype=np.int64)
        self.epoch = start_epoch
        self._order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        if not self.shuffle:
            return self.subset
        return self.subset[np.random.default_rng((self.seed, self.epoch)).permutation(len(self.subset))]

    def __len__(self) -> int:
        return math.ceil(len(self.subset) / self.batch_size)

    def _rows(self, i: int) -> np.ndarray:
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        short = self.batch_size - len(idx)
        if self.full_batches and 0 < short and len(self._order) >= self.batch_size:
            idx = np.concatenate([idx, self._order[:short]])
        return np.sort(idx)

    def __getitem__(self, i: int):
        idx = self._rows(i)
        src = self.copies[self.epoch % len(self.copies)]
        xb = np.asarray(src[idx], dtype=np.float32)
        yb = keras.utils.to_categorical(self.y[idx], self.num_classes)
        if self.sw is None:
            return xb, yb
        return xb, yb, self.sw[self.y[idx]].astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._shuffle()


class _AugmentedBatches(_Batches):
    """Raw images augmented on the fly (exact augmentation through the frozen part).

    Each batch is cut into one chunk per CPU, augmented in parallel threads
    (OpenCV releases the GIL), each chunk by a pipeline seeded from
    (seed, epoch, batch, chunk): reproducible whatever the thread timing.
    """

    def __init__(self, images: np.ndarray, pipeline_factory: Callable[[int], Any], **kw: Any):
        super().__init__([images], **kw)
        self._factory = pipeline_factory
        self._threads = max(1, min(8, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=self._threads)

    def _augment_chunk(self, args: tuple[int, int, np.ndarray]) -> np.ndarray:
        i, c, idx = args
        pipe = self._factory(int(np.random.SeedSequence((self.seed, self.epoch, i, c)).generate_state(1)[0] & 0x7FFFFFFF))
        return np.stack([pipe(image=np.asarray(self.copies[0][j]))["image"] for j in idx])

    def __getitem__(self, i: int):
        idx = self._rows(i)
        chunks = [(i, c, part) for c, part in enumerate(np.array_split(idx, self._threads)) if len(part)]
        xb = np.concatenate(list(self._pool.map(self._augment_chunk, chunks))).astype(np.float32)
        yb = keras.utils.to_categorical(self.y[idx], self.num_classes)
        if self.sw is None:
            return xb, yb
        return xb, yb, self.sw[self.y[idx]].astype(np.float32)


class _Recorder(keras.callbacks.Callback):
    """Per-epoch history (with epoch time), best-weights tracking and progress hooks."""

    def __init__(self, clf: Classifier, phase: dict[str, Any], history: list[dict[str, Any]],
                 best: dict[str, Any], hooks: ProgressHooks, num_batches: int, *,
                 stage: dict[str, Any] | None = None, guard: _DivergenceGuard | None = None):
        super().__init__()
        self.clf, self.phase, self.history, self.best, self.hooks = clf, phase, history, best, hooks
        self.num_batches = num_batches
        self.stage = stage or {"rung": None, "fraction": 1.0}
        self.guard = guard
        self._t0 = 0.0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        rec = {
            "epoch": epoch + 1,
            "phase": self.phase["name"],
            "freeze_depth": self.phase["depth"],
            "learning_rate": self.phase["lr"],
            "train_loss": float(logs.get("loss", float("nan"))),
            "train_accuracy": float(logs.get("accuracy", float("nan"))),
            "val_loss": float(logs.get("val_loss", float("nan"))),
            "val_accuracy": float(logs.get("val_accuracy", float("nan"))),
            "epoch_seconds": time.perf_counter() - self._t0,
            "train_fraction": self.stage["fraction"],
            "rung": self.stage["rung"],
        }
        self.history.append(rec)
        key = (rec["val_accuracy"], -rec["val_loss"])
        finite = math.isfinite(rec["train_loss"]) and math.isfinite(rec["val_loss"])
        if finite and (self.best.get("key") is None or key > self.best["key"]):
            self.best.update(key=key, epoch=rec["epoch"], weights=self.clf.model.get_weights())
        if self.guard is not None:  # before the hook: a diverged epoch is named so, not merely pruned
            self.guard.check(self.history)
        if self.hooks.on_epoch is not None:
            self.hooks.on_epoch(rec)
        if self.hooks.stop_requested():
            self.model.stop_training = True


class _BatchRecorder(_Recorder):
    """With a per-batch hook (or a stop check). A separate class because any batch-level callback makes
    Keras wait for every step's result (no asynchronous dispatch), which costs time when nobody listens."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.hooks.on_batch is not None:
            # With steps_per_execution > 1 Keras reports the last step of each call, which for the
            # epoch's last call can lie past the end of a feed whose length it does not divide.
            self.hooks.on_batch(self._epoch, min(batch + 1, self.num_batches), self.num_batches,
                                {k: float(v) for k, v in (logs or {}).items()})
        if self.hooks.stop_requested():
            self.model.stop_training = True


class _DivergenceGuard:
    """Stops a run that diverged: a non-finite loss, or validation accuracy at chance.

    A run whose head starts from the linear probe starts far above chance, so
    any epoch at chance is a collapse; a run from a random head is judged on its
    first epoch over the whole training split. "At chance" means not significantly
    above the majority class's share of the validation split: at most that share
    plus two binomial standard deviations of
    an accuracy measured on that many images (with 10 balanced classes and 450
    validation images: 0.128). Collapsed runs sit at 0.08-0.11 there; a healthy
    one is far above after one epoch, all the more from a linear-probe head.
    With fewer than ``MIN_VAL_FOR_CHANCE`` validation images chance cannot be told
    from learning, and only a non-finite loss stops the run.
    """

    MIN_VAL_FOR_CHANCE = 30

    def __init__(self, y_val: np.ndarray, num_classes: int, *, from_probe: bool):
        self.from_probe = from_probe
        counts = np.bincount(y_val, minlength=num_classes)
        n = max(1, int(counts.sum()))
        self.can_judge = n >= self.MIN_VAL_FOR_CHANCE
        self.chance = float(counts.max() / n) if counts.sum() else 1.0 / num_classes
        self.threshold = self.chance + 2.0 * math.sqrt(self.chance * (1.0 - self.chance) / n)

    def check(self, history: list[dict[str, Any]]) -> None:
        rec = history[-1]
        bad = [k for k in ("train_loss", "val_loss") if not math.isfinite(rec[k])]
        if bad:
            raise TrainingDiverged(f"{' and '.join(b.replace('_', ' ') for b in bad)} not finite at epoch "
                                   f"{rec['epoch']}", history=history)
        full = [h for h in history if h.get("train_fraction", 1.0) >= 1.0]
        judged = self.can_judge and (self.from_probe or (rec.get("train_fraction", 1.0) >= 1.0 and len(full) == 1))
        if judged and rec["val_accuracy"] <= self.threshold:
            raise TrainingDiverged(
                f"validation accuracy {rec['val_accuracy']:.3f} after epoch {rec['epoch']} is at chance "
                f"(majority class {self.chance:.3f}; needs more than {self.threshold:.3f})", history=history)


@keras.saving.register_keras_serializable(package="tlcore")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that rises linearly over ``warmup_steps``, then stays or decays along a half cosine."""

    def __init__(self, learning_rate: float, warmup_steps: int = 0, decay_steps: int = 0):
        self.learning_rate, self.warmup_steps, self.decay_steps = float(learning_rate), int(warmup_steps), int(decay_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = keras.ops.convert_to_tensor(self.learning_rate, "float32")
        if self.warmup_steps > 0:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        if self.decay_steps > 0:
            t = keras.ops.minimum(step, float(self.decay_steps)) / float(self.decay_steps)
            lr = lr * 0.5 * (1.0 + keras.ops.cos(math.pi * t))
        return lr

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps}


# ------------------------------------------------------------------ training
def _aug_factory(ws: Workspace, spec: TrainSpec,
                 augmentation: Any = None) -> tuple[Callable[[int], Any] | None, str | None]:
    if not spec.augment or spec.augment == "none":
        return None, None
    from tlcore import augment

    aug_spec = augmentation if augmentation is not None else augment.get_spec(ws, spec.augment)
    aug_id = json.dumps(augment.spec_to_albu_dict(aug_spec, image_size=(spec.image_size, spec.image_size)),
                        sort_keys=True, default=str)

    def factory(seed: int):
        return augment.build_pipeline(aug_spec, image_size=(spec.image_size, spec.image_size), seed=seed)

    return factory, aug_id


def _predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return forward_batches(model, x, batch_size) if len(x) else np.zeros((0,))


def _features(prefix: keras.Model, images: np.ndarray, batch_size: int, hooks: ProgressHooks, label: str) -> np.ndarray:
    """The prefix's output for every image, as float16."""
    chunks = []
    for i in range(0, len(images), 16 * batch_size):  # float16 per chunk: float32 is never whole in memory
        chunks.append(np.asarray(forward_batches(prefix, images[i : i + 16 * batch_size], batch_size,
                                                 on_batch=lambda done, _, i=i: hooks.status(
                                                     f"{label}: {i + done}/{len(images)}")), dtype=np.float16))
    return np.concatenate(chunks)


def _augment_all(images: np.ndarray, factory: Callable[[int], Any], seed: int) -> np.ndarray:
    pipe = factory(seed)
    return np.stack([pipe(image=np.asarray(img))["image"] for img in images])


def train(
    spec: TrainSpec,
    ws: Workspace | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    hooks: ProgressHooks | None = None,
    data: TrainingData | None = None,
    cache_budget_bytes: int = DEFAULT_CACHE_BUDGET,
    augmentation: Any = None,
) -> TrainResult:
    """Train one model from ``spec`` and save it with its history and metrics.

    Args:
        spec: what to train.
        ws: the workspace. Defaults to ``Workspace()``.
        run_dir: where to save the run. Defaults to ``<workspace>/models/<dataset>-<backbone>-<time>``.
        hooks: progress callbacks.
        data: already prepared data (the search passes it to avoid re-splitting).
        cache_budget_bytes: disk budget of the image and feature caches. Defaults to 20 GiB.
        augmentation: the ``AugmentSpec`` of ``spec.augment`` when the caller holds its own copy (a
            study's, ``attrs.AUGMENT``); None looks the name up among the presets and the
            workspace's saved pipelines.

    Returns:
        A ``TrainResult``: the run folder, the per-epoch history and the metrics.

    Raises:
        WorkspaceError: ``run_dir`` exists already or lies below a file (before any image is decoded).
    """
    if run_dir:
        check_new_folder(run_dir, fix="Choose another run folder, or remove the existing one first.")
    ws = ws or Workspace()
    hooks = hooks or ProgressHooks()
    runtime = configure()
    # Steps compiled by XLA: JAX's always, TensorFlow's on a GPU (on a CPU XLA slows its depthwise convolutions).
    compiled = bool(runtime["gpu"]) or runtime["backend"] != "tensorflow"
    set_seed(spec.seed)
    img_cache = ArrayCache(ws.cache_dir / "images", budget_bytes=cache_budget_bytes)
    feat_cache = ArrayCache(ws.cache_dir / "features", budget_bytes=cache_budget_bytes)
    data = data or prepare_data(ws, spec, hooks=hooks, cache=img_cache)
    n_classes = len(data.class_names)

    hooks.status(f"Building {spec.backbone} at {spec.image_size}px")
    clf = Classifier.build(spec.backbone, class_names=data.class_names, image_size=spec.image_size,
                           weights=spec.weights, dropout=spec.dropout, cache_dir=ws.cache_dir)
    phases = phases_for(spec, clf.num_blocks)
    if spec.freeze_depth != (None if spec.method == "feature_extraction" else phases[-1]["depth"]):
        # the run's spec says the depth it trained at: the recipe's when it named none, and "all"
        # (None) for feature extraction, which freezes every block whatever depth it named
        spec = TrainSpec.from_dict({**spec.to_dict(),
                                    "freeze_depth": None if spec.method == "feature_extraction" else phases[-1]["depth"]})
    factory, aug_id = _aug_factory(ws, spec, augmentation)
    sw = None
    if spec.class_weights:
        counts = np.bincount(data.y["train"], minlength=n_classes).astype(float)
        sw = np.where(counts > 0, len(data.y["train"]) / (n_classes * np.maximum(counts, 1)), 0.0)
    features = _FeatureStore(clf, spec, data, feat_cache, hooks)

    probe: dict[str, Any] | None = None
    if spec.head_init == "linear_probe":
        probe = _init_head_from_probe(clf, spec, data, features, sw)
        if spec.method == "two_phase":  # the probe is the head phase: all epochs fine-tune
            phases = [{**phases[-1], "start": 0}]

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    stopped_early = False
    guard = _DivergenceGuard(data.y["val"], n_classes, from_probe=probe is not None) if spec.divergence_guard else None
    for phase in phases:
        depth = phase["depth"]
        clf.set_freeze_depth(depth, batchnorm=spec.batchnorm)
        use_cache = spec.feature_cache and depth > 0 and not (factory is not None and spec.aug_copies == 0)
        trainable = clf.split(depth)[1] if use_cache else clf.model
        stages = _stages(spec, phase, last=phase is phases[-1])
        feed_kw = dict(y=data.y["train"], num_classes=n_classes, batch_size=spec.batch_size, seed=spec.seed,
                       sample_weight=sw, start_epoch=phase["start"], full_batches=compiled)
        subsets = [nested_subset(data.rows["train"], data.y["train"], st["fraction"]) for st in stages]
        if use_cache:
            features.row_sets = sorted((r for r in subsets if r is not None), key=len, reverse=True)
            val_x = features.get(depth, "val")

            def make_feed(subset, start, depth=depth, feed_kw=feed_kw):
                # Without augmentation the features come for the subset's rows only, in order.
                copies, pos = features.train_copies(depth, factory, aug_id, rows=subset)
                y = data.y["train"] if pos is not None or subset is None else data.y["train"][subset]
                return _Batches(copies, **{**feed_kw, "y": y, "start_epoch": start}, subset=pos)
        else:
            val_x = data.x["val"]

            def make_feed(subset, start, feed_kw=feed_kw):
                kw = {**feed_kw, "start_epoch": start}
                return (_AugmentedBatches(data.x["train"], factory, **kw, subset=subset) if factory is not None
                        else _Batches([data.x["train"]], **kw, subset=subset))

        sizes = [len(data.y["train"]) if sub is None else len(sub) for sub in subsets]
        steps = [math.ceil(n / spec.batch_size) * (st["end"] - st["start"]) for n, st in zip(sizes, stages)]
        per_epoch = math.ceil(len(data.y["train"]) / spec.batch_size)
        warmup = round(spec.warmup_epochs * per_epoch) if depth < clf.num_blocks else 0
        lr = phase["lr"]
        if warmup or spec.lr_schedule == "cosine":
            lr = WarmupSchedule(phase["lr"], warmup_steps=warmup,
                                decay_steps=sum(steps) if spec.lr_schedule == "cosine" else 0)
        trainable.compile(
            optimizer=keras.optimizers.Adam(learning_rate=lr),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=spec.label_smoothing),
            metrics=["accuracy"],
            # TensorFlow on a CPU runs depthwise convolutions ~10x slower under XLA, so it is off there;
            # JAX compiles every step with XLA anyway (jit_compile=False would run it op by op).
            jit_compile="auto" if compiled else False,
            # Small cached inputs make Python's per-step overhead dominate: run several steps per call.
            steps_per_execution=_steps_per_execution(math.ceil(min(sizes) / spec.batch_size)) if use_cache else 1,
        )
        val_feed = _Batches([val_x], data.y["val"], n_classes, max(spec.batch_size, 64), spec.seed, shuffle=False)
        if runtime["backend"] == "tensorflow":  # JAX builds them symbolically in fit (an eager call runs op by op)
            _build_state(trainable, val_feed[0])
        recorder = _BatchRecorder if hooks.on_batch is not None or hooks.should_stop is not None else _Recorder
        for stage, subset in zip(stages, subsets):
            if hooks.stop_requested():  # asked to stop between fits: as early stopping
                stopped_early = True
                break
            feed = make_feed(subset, stage["start"])
            callbacks: list[keras.callbacks.Callback] = [
                recorder(clf, phase, history, best, hooks, len(feed), stage=stage, guard=guard)]
            final = phase is phases[-1] and stage is stages[-1]
            if spec.early_stopping and final:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=spec.early_stopping))
            what = "full data" if stage["rung"] is None else f"rung {stage['rung']}, {stage['fraction']:.0%} of the data"
            hooks.status(f"Training {phase['name']} (epochs {stage['start'] + 1}-{stage['end']}, depth {depth}, {what})")
            if hooks.on_stage is not None:
                hooks.on_stage(stage)
            trainable.fit(feed, validation_data=val_feed, initial_epoch=stage["start"], epochs=stage["end"],
                          callbacks=callbacks, verbose=0)
            if history and history[-1]["epoch"] < stage["end"]:
                stopped_early = True
                break
        if stopped_early:
            break

    if best.get("weights") is not None:
        clf.model.set_weights(best["weights"])
    clf.set_freeze_depth(clf.num_blocks)  # saved model: inference only, all frozen
    hooks.status("Evaluating on the test split")
    metrics: dict[str, Any] = {
        "best_epoch": best.get("epoch"),
        "best_val_accuracy": best["key"][0] if best else None,
        "best_val_loss": -best["key"][1] if best else None,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "train_seconds": float(sum(h["epoch_seconds"] for h in history)),
        "runtime": runtime,
        "num_train": int(len(data.y["train"])),
        "num_val": int(len(data.y["val"])),
        "num_test": int(len(data.y["test"])),
        "head_init": spec.head_init,
    }
    if probe is not None:
        metrics["linear_probe"] = probe
    test_probs = None
    if len(data.y["test"]):
        test_probs = _predict(clf.model, data.x["test"], 64)
        report = classification_report(data.y["test"], test_probs, data.class_names)
        metrics["test"] = report
        metrics["test_accuracy"] = report["accuracy"]
    # Temperature scaling on the validation split, from the last phase's own validation inputs (its
    # cached features: the suffix alone runs) and the test predictions above, so no extra pass.
    hooks.status("Calibrating the confidences (temperature scaling on the validation split)")
    metrics["calibration"] = calibration_report(_predict(trainable, val_x, 64), data.y["val"],
                                                test_probs, data.y["test"] if test_probs is not None else None)
    cache_info = {"images": img_cache.stats.as_dict(), "features": feat_cache.stats.as_dict(),
                  "features_from_shallower": features.incremental, "feature_rows_computed": features.rows_computed}
    metrics["cache"] = cache_info

    out = Path(run_dir) if run_dir else ws.models_dir / _run_name(spec)
    if hooks.on_save is not None:
        hooks.on_save(out)
    _save_run(out, clf, spec, history, metrics, data)
    return TrainResult(run_dir=out, history=history, metrics=metrics, class_names=data.class_names, cache=cache_info)


def _stages(spec: TrainSpec, phase: dict[str, Any], *, last: bool) -> list[dict[str, Any]]:
    """The fits of one phase: in the last phase, one epoch on each nested subset of ``spec.subset_rungs``
    (the successive-halving rungs), then the phase's epochs on all the data."""
    rungs = list(spec.subset_rungs or []) if last else []
    out = [{"rung": i, "fraction": float(f), "start": phase["start"] + i, "end": phase["start"] + i + 1}
           for i, f in enumerate(rungs)]
    out.append({"rung": None, "fraction": 1.0, "start": phase["start"] + len(rungs), "end": phase["end"] + len(rungs)})
    return out


class _FeatureStore:
    """The frozen prefix's output per (depth, split, augmentation copy), through the feature cache.

    A missing depth is computed from the nearest shallower depth already cached
    (``Classifier.segment``), not from the images again; ``incremental`` counts those.

    A successive-halving rung needs only its nested subset of the training split
    (``rows``). Without augmentation only those rows are computed, and cached under
    the subset's own key, so a trial pruned at its first rung pays for 11 % of the
    images rather than all of them; a larger subset, and then the whole split,
    compute only the rows the smaller one lacks. ``rows_computed`` counts the rows
    this store pushed through the network.
    """

    def __init__(self, clf: Classifier, spec: TrainSpec, data: TrainingData, cache: ArrayCache,
                 hooks: ProgressHooks):
        self.clf, self.spec, self.data, self.cache, self.hooks = clf, spec, data, cache, hooks
        self.base = {"kind": "features", "backbone": spec.backbone,
                     "weights": weights_identity(spec.weights, spec.seed), "size": spec.image_size,
                     "resize": spec.resize_mode}
        self.incremental = 0
        self.rows_computed = 0
        # The nested training subsets of the phase being trained, largest first (``train`` sets them):
        # where a subset's rows may already be cached.
        self.row_sets: list[np.ndarray] = []

    def _parts(self, depth: int, split: str, rows: np.ndarray | None, extra: dict[str, Any]) -> dict[str, Any]:
        parts = {**self.base, "depth": depth, "data": self.data.fingerprint[split], "aug": None, "copy": 0, **extra}
        if rows is not None:
            parts["rows"] = _rows_id(rows)
        return parts

    def _cached_rows(self, depth: int, split: str, rows: np.ndarray | None, extra: dict[str, Any]) -> np.ndarray | None:
        """The cached features of ``rows`` (None: all) at ``depth``, from any entry that holds them all."""
        held: list[np.ndarray | None] = [None]
        if rows is not None and split == "train" and not extra:
            held += [s for s in self.row_sets if len(s) >= len(rows)]
        for q in held:
            parts = self._parts(depth, split, q, extra)
            arr = self.cache.get(parts) if self.cache.contains(parts) else None
            if arr is None:
                continue
            if rows is None:
                return arr
            if q is None:
                return np.asarray(arr[rows])
            pos = np.searchsorted(q, rows)
            if pos.max(initial=-1) < len(q) and np.array_equal(q[pos], rows):
                return arr if len(q) == len(rows) else np.asarray(arr[pos])
        return None

    def _compute(self, depth: int, split: str, rows: np.ndarray | None, extra: dict[str, Any], label: str,
                 images: Callable[[], np.ndarray] | None) -> np.ndarray:
        """Features of ``rows`` (None: all) at ``depth``: the rows a smaller subset has cached, the rest
        from the nearest shallower depth cached or else from the images."""
        want = np.arange(len(self.data.y[split])) if rows is None else rows
        have, missing = None, want
        for smaller in ([] if extra or split != "train" else [s for s in self.row_sets if len(s) < len(want)]):
            if np.isin(smaller, want).all():
                have = self._cached_rows(depth, split, smaller, extra)
                if have is not None:
                    missing = want[~np.isin(want, smaller)]
                    break
        need = None if rows is None and have is None else missing  # None: the whole split
        part = None
        for shallower in range(depth - 1, 0, -1):
            src = self._cached_rows(shallower, split, need, extra)
            if src is not None:
                self.incremental += 1
                part = _features(self.clf.segment(shallower, depth), src, 64, self.hooks,
                                 f"{label} from depth {shallower}")
                break
        if part is None:
            source = images() if images is not None else self.data.x[split] if need is None else self.data.x[split][need]
            part = _features(self.clf.split(depth)[0], source, 64, self.hooks, label)
        self.rows_computed += len(missing)
        if have is None:
            return part
        out = np.empty((len(want), *part.shape[1:]), dtype=part.dtype)
        inside = np.isin(want, missing)
        out[inside], out[~inside] = part, have
        return out

    def get(self, depth: int, split: str, *, rows: np.ndarray | None = None,
            images: Callable[[], np.ndarray] | None = None, aug: str | None = None, copy: int = 0,
            seed: int | None = None, label: str | None = None) -> np.ndarray:
        """The features of ``split`` at ``depth``, only of ``rows`` (sorted positions) when given.

        ``images`` makes the split's input (an augmented copy, named by ``aug``, ``copy``
        and ``seed``) when it is not the decoded split itself; such copies are whole.
        """
        extra: dict[str, Any] = {} if aug is None and copy == 0 and seed is None else {"aug": aug, "copy": copy}
        if seed is not None:
            extra["seed"] = seed
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            have = self._cached_rows(depth, split, rows, extra)
            if have is not None:
                return have
        what = f"{split} features (depth {depth}" + ("" if rows is None else f", {len(rows)} images") + ")"
        label = label or f"Caching {what}"
        arr = self.cache.get_or_create(self._parts(depth, split, rows, extra),
                                       lambda: self._compute(depth, split, rows, extra, label, images))
        if rows is None and split == "train" and not extra:  # the whole split is cached: subsets only take room
            for s in self.row_sets:
                self.cache.drop(self._parts(depth, split, s, extra))
        return arr

    def train_copies(self, depth: int, factory: Callable[[int], Any] | None, aug_id: str | None,
                     rows: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The training features and the positions of ``rows`` in them (None: all of them).

        Without augmentation only ``rows`` are computed and returned. Augmented copies are
        made over the whole split in one seeded pass, so they are always whole, and ``rows``
        comes back as the positions to read.
        """
        if factory is None:
            return [self.get(depth, "train", rows=rows)], None
        n, seed, x = self.spec.aug_copies, self.spec.seed, self.data.x["train"]
        return [self.get(depth, "train", aug=aug_id, copy=c, seed=seed,
                         images=lambda c=c: _augment_all(x, factory, seed * 1000 + c),
                         label=f"Caching features (depth {depth}, copy {c + 1}/{n})")
                for c in range(n)], rows


def _rows_id(rows: np.ndarray) -> str:
    """A short, stable name for a set of row positions (a cache key part)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return f"{len(rows)}:{hashlib.sha1(rows.tobytes()).hexdigest()[:16]}"


def _init_head_from_probe(clf: Classifier, spec: TrainSpec, data: TrainingData, features: _FeatureStore,
                          class_weight: np.ndarray | None) -> dict[str, Any]:
    """Set the dense head to the linear probe of this data and backbone (fitted once, then cached)."""
    n = clf.num_blocks
    parts = {**features.base, "kind": "linear_probe", "version": PROBE_VERSION, "train": data.fingerprint["train"],
             "val": data.fingerprint["val"], "classes": data.class_names, "class_weights": spec.class_weights}
    if any("original_label" in data.rows[s] for s in ("train", "val")):
        # Relabelled images (the override manifest) keep their content fingerprint: key the labels too.
        parts["labels"] = hashlib.sha1(np.concatenate([data.y["train"], data.y["val"]]).tobytes()).hexdigest()[:16]
    t0 = time.perf_counter()
    fitted = []

    def fit() -> np.ndarray:
        features.hooks.status("Fitting the linear probe on the cached features")
        res = fit_softmax_regression(features.get(n, "train"), data.y["train"], features.get(n, "val"),
                                     data.y["val"], num_classes=len(data.class_names), class_weight=class_weight)
        fitted.append(res)
        return res.pack()

    kernel, bias = ProbeFit.unpack(features.cache.get_or_create(parts, fit, exclusive=True))
    clf._head.dense.set_weights([kernel, bias])
    logits = np.asarray(features.get(n, "val"), dtype=np.float32) @ kernel + bias
    return {"val_accuracy": float(np.mean(np.argmax(logits, axis=1) == data.y["val"])),
            "fitted_here": bool(fitted), "l2": fitted[0].l2 if fitted else None,
            "seconds": time.perf_counter() - t0}


def _build_state(model: keras.Model, batch: tuple[np.ndarray, ...]) -> None:
    """Create the optimizer's and the metrics' variables before ``fit``, from two samples of ``batch``.

    Keras on TensorFlow creates them inside the first traced training step, and a
    ``tf.function`` that creates variables is traced twice. Tracing is most of a short
    trial's time; building them first cuts it by 35-55 % (a 9-batch epoch at depth 1 on
    one core: 19.6 s with Keras's default, 13.2 s so; ``bench/bench_trace.py``).
    """
    x, y = np.asarray(batch[0][:2]), np.asarray(batch[1][:2])
    model.optimizer.build(model.trainable_variables)
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred)
    model.compute_metrics(x, y, y_pred, sample_weight=None)
    model.reset_metrics()


def _steps_per_execution(num_batches: int) -> int:
    """Batches per compiled call on the cached path (a divisor-friendly 8, fewer for tiny epochs)."""
    return max(1, min(8, num_batches))


def _run_name(spec: TrainSpec) -> str:
    # Microseconds and a random suffix: parallel search workers never collide.
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return f"{spec.dataset}-{spec.backbone}-{spec.method}-{stamp}-{os.urandom(2).hex()}"


def _save_run(out: Path, clf: Classifier, spec: TrainSpec, history: list[dict[str, Any]],
              metrics: dict[str, Any], data: TrainingData) -> None:
    """Write the run folder (``RunFolder.write``: a temporary folder renamed into place when complete)."""
    RunFolder.write(out, model=clf.model, history=history, metrics=metrics, spec=spec,
                    class_names=data.class_names, data={
                        "dataset": spec.dataset,
                        "fingerprint": data.fingerprint,
                        "image_size": spec.image_size,
                        "resize_mode": spec.resize_mode,
                        "test_files": data.rows["test"]["relpath"].tolist(),
                    })
