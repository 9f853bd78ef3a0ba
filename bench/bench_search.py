"""Hyperparameter search, side by side: this project's default search against a plain Keras TPE search.

What is compared (per seed, both searches at the same time):

- plain (``--role plain``): a plain Keras TPE search written the Keras-guide way.
  An in-memory ``optuna.create_study(direction="maximize",
  sampler=TPESampler(seed=seed))``, no pruner; each trial suggests ``freeze_depth``
  (int, 0..18: EfficientNet-Lite0's 18 blocks, 18 = everything frozen) and
  ``learning_rate`` (log, 1e-4..1e-2), builds the backbone
  (``tlcore.backbones.build("efficientnet_lite0", include_top=False,
  weights="imagenet", pooling=None)``), freezes blocks [0, depth)
  (``tlcore.backbones.freeze_blocks``) and adds the guide's head
  (``base(inputs, training=False)``, GlobalAveragePooling2D, Dropout(0.2),
  Dense(10, softmax)); Adam(lr), categorical cross-entropy, accuracy, Keras'
  default compile; one ``model.fit`` of ``--epochs`` epochs, batch 32, on a
  ``keras.utils.PyDataset`` that decodes every image file every epoch (PIL,
  RGB, the project's "pad" resize; the validation files too). In Keras 3 the
  outer ``training=True`` of ``fit`` overrides the nested ``training=False``, so
  the unfrozen BatchNorm layers run in training mode: that is how users' loops
  behave, and it is kept. Each trial clears the Keras session and seeds with
  ``tlcore.runtime.set_seed(seed)``, as the project's trainer does. Objective =
  the best validation accuracy over the trial's epochs. The best trial's model
  stays in memory.
- project (``--role project``): the project's DEFAULT search, i.e.
  ``StudySpec(name, dataset, image_size, n_trials, epochs, seed)`` with nothing
  else set (whatever ``tlcore.search``'s defaults are when this runs is what is
  measured), ``create_study`` then ``run_worker`` in the process. Its best model is
  the best COMPLETE trial's run folder (``fetch_trial_run``, ``predict.load_model``).

Fairness:

- Same data: ``--images`` train+val images from Fashion-MNIST's TRAIN file,
  registered once as a dataset without a test part (``bench/_fmnist.py``); both
  sides use the project's own train/val split of it (``dataset_splits`` +
  ``load_split_spec``, ordered by relpath as ``trainer.prepare_data`` does), and
  the driver checks both decodes give the same pixels.
- Same trial budget (``--trials``, ``--epochs``) and the same seed.
- Same time and machine noise: the driver starts both children together
  (``subprocess.Popen``), each pinned to its own core (``taskset -c``) with
  ``TLCORE_CPU_THREADS=1`` (one TensorFlow thread; ``tlcore.runtime``). Each child
  imports and prepares, then waits at a barrier so both timers start at once.
  Without ``taskset`` or with fewer than 2 usable CPUs they run unpinned (said in
  the output and the JSON).
- Before any timer: the dataset is registered and the ImageNet weights converted
  (kept in ``<workspace>/cache/weights``). Before each seed, everything else under
  ``<workspace>/cache`` (image and feature caches, probes, trial folders) is
  deleted, so each project search starts cold.
- One held-out test set for both: ``--test-images`` images (default 2,000: 200 per
  class) from Fashion-MNIST's own t10k TEST file, never in the workspace, never
  used for training or selection. Each child evaluates its best model on it after
  its search timer stops.

Measured per seed and side: the whole search's wall time; each finished trial's
time since its side's start; the best validation accuracy; the time each side
needs to reach the plain search's final best validation accuracy within 0.5
points (the first finished trial whose value >= plain best - 0.005; only COMPLETE
trials count); the best model's held-out test accuracy; collapsed trials (a
finished trial whose best validation accuracy is <= 0.15, or that the project
marked diverged, user attribute ``tl_diverged``). Seeds default to 0,1,2; the
summary reports each seed and the medians.

Targets (checked on the raw medians, never rounded up; printed MET / NOT MET):

1. project's time to reach plain's final best <= 1/10 of plain's whole wall time
   (required: <= 1/5), with the project's best model's held-out test accuracy >=
   plain's - 0.5 points;
2. whole search at the same trial budget: plain wall / project wall >= 3;
3. collapsed project trials: 0 in every seed.

Usage:
    python bench/bench_search.py [--seeds 0,1,2] [--images 3000] [--size 96] [--trials 12] [--epochs 3]
                                 [--test-images 2000] [--workspace DIR] [--out FILE] [--quick]
    python bench/bench_search.py --merge SEED0.json SEED12.json [--out FILE]   # one report over runs
                                                                              # made a few seeds at a time

``--quick`` (smoke test) means 300 images, 48 px, 3 trials, 1 epoch, 200 test
images, seed 0 unless given. Default output: bench/results/bench_search.json
(quick: bench_search_quick.json; a time that was never reached is null there);
each child's full log is written under
``<workspace>/bench-logs/`` (paths printed). ``--role plain|project`` is how the
driver starts its children; it is not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import _fmnist  # noqa: E402
from tlcore.config import TrainSpec  # noqa: E402
from tlcore.datasets import dataset_splits, load_split_spec, resize_to  # noqa: E402
from tlcore.search import attrs  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402

# ------------------------------------------------------------------ the search
BACKBONE = "efficientnet_lite0"
WEIGHTS = "imagenet"
DROPOUT = 0.2
RESIZE_MODE = "pad"
BATCH_SIZE = 32  # plain: train and validation batches
DEPTH_LO, DEPTH_HI = 0, 18  # EfficientNet-Lite0's 18 blocks; 18 = everything frozen
LR_LO, LR_HI = 1e-4, 1e-2  # log scale
COLLAPSE_ACC = 0.15  # <= this best val accuracy (10 classes) = collapsed
REACH_TOLERANCE = 0.005  # "reached plain's final best" = within 0.5 points
HELDOUT_TOLERANCE = 0.005  # project's held-out test accuracy >= plain's - 0.5 points
EPS = 1e-9  # float round-off only: an exact tie (e.g. 0.8100 - 0.8150 = -0.5000000000000004 points) is a tie

TARGET_REACH_FRACTION = 0.10  # of plain's whole wall time
REQUIRED_REACH_FRACTION = 0.20
TARGET_SPEEDUP = 3.0
TARGET_COLLAPSED = 0

DEFAULTS = {"images": 3000, "size": 96, "trials": 12, "epochs": 3, "test_images": 2000, "seeds": "0,1,2"}
QUICK = {"images": 300, "size": 48, "trials": 3, "epochs": 1, "test_images": 200, "seeds": "0"}
ROLES = ("plain", "project")
_NOISE = re.compile(r"^([IW]\d{4} |WARNING: All log messages before absl)")  # TF/absl start-up chatter


def dataset_name(images: int) -> str:
    return f"fmnist{images}-trainonly"


def prepare_dataset(ws: Workspace, images: int) -> str:
    """The previous version's dataset, kept for ``bench/bench_collapse.py`` (not used here).

    ``fmnist<images>``: ``images / 10`` per class from the train file and a fifth of
    that per class from the test file, as a pre-split dataset WITH a test part.
    """
    from tlcore.datasets import add_fashion_mnist

    name = f"fmnist{images}"
    if not ws.has_dataset(name):
        per_class = max(2, images // 10)
        add_fashion_mnist(ws, name, per_class={"train": per_class, "test": max(1, per_class // 5)})
    return name


def split_rows(ws: Workspace, name: str, size: int) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """Class names and the train/val rows, exactly as ``trainer.prepare_data`` makes them."""
    spec = TrainSpec(dataset=name, image_size=size)
    index = dataset_splits(ws, name, spec.split_spec(load_split_spec(ws, name)))
    index = index[index["split"] != ""].sort_values("relpath", kind="stable").reset_index(drop=True)
    if (index["split"] == "test").any():
        raise SystemExit(f"dataset {name!r} has a test split; this benchmark registers its datasets without one")
    class_names = sorted(index["label"].unique().tolist())
    rows = {s: index[index["split"] == s].reset_index(drop=True) for s in ("train", "val")}
    return class_names, rows


def decode_file(path: str, size: int) -> np.ndarray:
    """The plain decode: PIL open, convert to RGB, the project's per-image resize."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return resize_to(rgb, size, mode=RESIZE_MODE)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _now() -> _dt.datetime:
    return _dt.datetime.now()


# ------------------------------------------------------------------ child plumbing
def wait_for_go(sync_dir: Path, role: str) -> None:
    """Tell the driver this child is ready, then wait until it says go (both timers start together)."""
    (sync_dir / f"{role}.ready").write_text(str(os.getpid()))
    while not (sync_dir / "go").exists():
        time.sleep(0.02)


def placement_info() -> dict[str, Any]:
    """Where this child runs: its CPU affinity and TensorFlow's thread settings (after ``configure``)."""
    info: dict[str, Any] = {"pid": os.getpid(), "cpu_threads_env": os.environ.get("TLCORE_CPU_THREADS")}
    if hasattr(os, "sched_getaffinity"):
        info["affinity"] = sorted(os.sched_getaffinity(0))
    try:
        import tensorflow as tf

        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    except Exception:  # another backend
        pass
    return info


def heldout_accuracy(probs: np.ndarray, class_names: list[str], labels: list[str]) -> float:
    pred = np.asarray(class_names)[np.argmax(probs, axis=1)]
    return float(np.mean(pred == np.asarray(labels)))


def load_heldout(path: Path) -> tuple[np.ndarray, list[str]]:
    with np.load(path, allow_pickle=False) as z:
        return z["x"], [str(v) for v in z["y"]]


# ------------------------------------------------------------------ plain Keras
def _plain_feed_class():
    import keras

    class DecodingBatches(keras.utils.PyDataset):
        """Batches decoded from the image files on every call (nothing cached); reshuffled each epoch."""

        def __init__(self, paths: list[str], y: np.ndarray, num_classes: int, size: int, batch_size: int,
                     seed: int, shuffle: bool):
            super().__init__()
            self.paths, self.y, self.num_classes, self.size = paths, y, num_classes, size
            self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
            self.epoch = 0
            self.decode_seconds = 0.0
            self._order = self._make_order()

        def _make_order(self) -> np.ndarray:
            if not self.shuffle:
                return np.arange(len(self.y))
            return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.y))

        def __len__(self) -> int:
            return math.ceil(len(self.y) / self.batch_size)

        def __getitem__(self, i: int):
            idx = np.sort(self._order[i * self.batch_size : (i + 1) * self.batch_size])
            t0 = time.perf_counter()
            xb = np.stack([decode_file(self.paths[j], self.size) for j in idx]).astype(np.float32)
            self.decode_seconds += time.perf_counter() - t0
            return xb, keras.utils.to_categorical(self.y[idx], self.num_classes)

        def on_epoch_end(self) -> None:
            if self.shuffle:
                self.epoch += 1
                self._order = self._make_order()

    return DecodingBatches


def child_plain(args: argparse.Namespace, ws: Workspace, sync_dir: Path) -> dict[str, Any]:
    """The plain Keras TPE search; its best model evaluated on the held-out array after the timer."""
    import keras
    import optuna

    from tlcore import backbones as bb
    from tlcore.runtime import configure, set_seed

    runtime = configure()  # TLCORE_CPU_THREADS=1: one TensorFlow thread, like the project side
    placement = placement_info()
    print(f"placement: {placement}", flush=True)
    size, epochs, seed = args.size, args.epochs, args.seed
    class_names, rows = split_rows(ws, args.dataset, size)
    lookup = {c: i for i, c in enumerate(class_names)}
    paths = {s: rows[s]["path"].astype(str).tolist() for s in rows}
    ys = {s: rows[s]["label"].map(lookup).to_numpy(dtype=np.int64) for s in rows}
    info = bb.get(BACKBONE)
    Feed = _plain_feed_class()
    per_trial: list[dict[str, Any]] = []
    best: dict[str, Any] = {"value": -1.0, "model": None, "number": None}
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.t = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t)

    wait_for_go(sync_dir, "plain")
    t0, t0_dt = time.perf_counter(), _now()

    def objective(trial: optuna.Trial) -> float:
        t_trial = time.perf_counter()
        depth = trial.suggest_int("freeze_depth", DEPTH_LO, DEPTH_HI)
        lr = trial.suggest_float("learning_rate", LR_LO, LR_HI, log=True)
        keras.backend.clear_session()
        set_seed(seed)
        base = bb.build(BACKBONE, input_shape=(size, size, 3), include_top=False, weights=WEIGHTS,
                        cache_dir=ws.cache_dir, pooling=None)
        bb.freeze_blocks(base, info, depth)
        inputs = keras.Input((size, size, 3))
        x = base(inputs, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(DROPOUT)(x)
        outputs = keras.layers.Dense(len(class_names), activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                      loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
        train_feed = Feed(paths["train"], ys["train"], len(class_names), size, BATCH_SIZE, seed, shuffle=True)
        val_feed = Feed(paths["val"], ys["val"], len(class_names), size, BATCH_SIZE, seed, shuffle=False)
        timer = EpochTimer()
        hist = model.fit(train_feed, validation_data=val_feed, epochs=epochs, verbose=0, callbacks=[timer])
        accs = [float(v) for v in hist.history["val_accuracy"]]
        value = max(accs)
        if value > best["value"]:
            best.update(value=value, model=model, number=trial.number)
        rec = {"number": trial.number, "state": "COMPLETE", "params": {"freeze_depth": depth, "learning_rate": lr},
               "value": value, "best_val_accuracy": value, "val_accuracy_per_epoch": accs,
               "epoch_seconds": timer.seconds, "seconds": time.perf_counter() - t_trial,
               "finished_at_s": time.perf_counter() - t0,
               "decode_seconds": train_feed.decode_seconds + val_feed.decode_seconds,
               "diverged": False, "collapsed": value <= COLLAPSE_ACC}
        per_trial.append(rec)
        print(f"trial {trial.number:2d} done at {rec['finished_at_s']:7.1f}s: depth {depth:2d} lr {lr:.2e} "
              f"val_acc {value:.4f} per epoch [{', '.join(f'{a:.3f}' for a in accs)}] ({rec['seconds']:.1f}s)",
              flush=True)
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=args.trials)
    wall = time.perf_counter() - t0
    print(f"search done: wall {wall:.1f}s, best val acc {study.best_value:.4f} (trial {study.best_trial.number})",
          flush=True)

    # ---- outside the timer: the best model on the held-out test array
    x_test, y_test = load_heldout(Path(args.heldout))
    model = best["model"]
    probs = np.concatenate([keras.ops.convert_to_numpy(model(x_test[i : i + 64].astype(np.float32), training=False))
                            for i in range(0, len(x_test), 64)])
    test_acc = heldout_accuracy(probs, class_names, y_test)
    print(f"best model (trial {best['number']}) held-out test accuracy {test_acc:.4f} on {len(y_test)} images",
          flush=True)
    return {
        "role": "plain", "seed": seed, "started": t0_dt.isoformat(timespec="seconds"), "wall_seconds": wall,
        "best_val_accuracy": float(study.best_value), "best_trial": best["number"],
        "best_params": dict(study.best_params), "heldout_test_accuracy": test_acc, "heldout_images": len(y_test),
        "completed": len(per_trial), "pruned": 0, "failed": len(study.trials) - len(per_trial),
        "collapsed": sum(t["collapsed"] for t in per_trial),
        "num_train": len(ys["train"]), "num_val": len(ys["val"]), "runtime": runtime,
        "placement": placement,
        "decode_seconds": sum(t["decode_seconds"] for t in per_trial), "trials": per_trial,
    }


# ------------------------------------------------------------------ the project
def _trial_best_val(t) -> float | None:
    best = attrs.best_val_accuracy(t)
    if best is not None:
        return float(best)
    if t.value is not None:
        return float(t.value)
    return max(t.intermediate_values.values()) if t.intermediate_values else None


def child_project(args: argparse.Namespace, ws: Workspace, sync_dir: Path) -> dict[str, Any]:
    """The project's default search; its best complete trial's model on the held-out array after the timer."""
    from optuna.trial import TrialState

    from tlcore.predict import load_model, predict_arrays
    from tlcore.runtime import configure
    from tlcore.search import StudySpec, best_trial, create_study, fetch_trial_run, load_study, run_worker

    runtime = configure()
    placement = placement_info()
    print(f"placement: {placement}", flush=True)
    name = args.study
    spec = StudySpec(name=name, dataset=args.dataset, image_size=args.size, n_trials=args.trials,
                     epochs=args.epochs, seed=args.seed)
    caches_at_start = {p.name: dir_bytes(p) for p in ws.cache_dir.iterdir() if p.name != "weights"} \
        if ws.cache_dir.exists() else {}
    if any(caches_at_start.values()):
        print(f"warning: the workspace cache is not cold at the start: {caches_at_start} bytes", flush=True)

    wait_for_go(sync_dir, "project")
    t0, t0_dt = time.perf_counter(), _now()

    def log(line: str) -> None:
        print(f"{time.perf_counter() - t0:7.1f}s {line}", flush=True)

    create_study(ws, spec)
    worker = run_worker(ws, name, log=log)
    wall = time.perf_counter() - t0

    # ---- outside the timer
    study = load_study(ws, name)
    per_trial = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        done = t.datetime_complete
        best_val = _trial_best_val(t)
        diverged = attrs.diverged(t)
        finished = t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        per_trial.append({
            "number": t.number, "state": t.state.name, "params": dict(t.params),
            "value": None if t.value is None else float(t.value), "best_val_accuracy": best_val,
            "epochs": attrs.epochs(t),
            "seconds": (done - t.datetime_start).total_seconds() if done and t.datetime_start else None,
            "finished_at_s": (done - t0_dt).total_seconds() if done else None,
            "diverged": diverged or False, "rungs": attrs.rungs(t) or None,
            "error": attrs.error(t),
            "collapsed": bool(diverged) or (finished and best_val is not None and best_val <= COLLAPSE_ACC),
        })
    complete = [t for t in per_trial if t["state"] == "COMPLETE" and t["value"] is not None]
    print(f"search done: wall {wall:.1f}s, {len(complete)} complete, "
          f"{sum(t['state'] == 'PRUNED' for t in per_trial)} pruned, {sum(t['state'] == 'FAIL' for t in per_trial)} "
          f"failed; worker: {worker.reason}", flush=True)
    for t in per_trial:
        print(f"trial {t['number']:2d} {t['state']:8s} at {_fmt(t['finished_at_s'], '7.1f')}s: {t['params']} "
              f"value {_fmt(t['value'], '.4f')} best val {_fmt(t['best_val_accuracy'], '.4f')} "
              f"epochs {t['epochs']}{' DIVERGED' if t['diverged'] else ''}", flush=True)

    test_acc = best_number = best_value = None
    x_test, y_test = load_heldout(Path(args.heldout))
    if complete:
        bt = best_trial(study)
        best_number, best_value = bt.number, float(bt.value)
        loaded = load_model(fetch_trial_run(ws, name, bt.number))
        if loaded.image_size != args.size or loaded.resize_mode != RESIZE_MODE:
            raise SystemExit(f"trial {bt.number}'s model takes {loaded.image_size} px '{loaded.resize_mode}', "
                             f"the held-out array is {args.size} px '{RESIZE_MODE}'")
        probs = predict_arrays(loaded, x_test, batch_size=64)
        test_acc = heldout_accuracy(probs, loaded.class_names, y_test)
        print(f"best model (trial {best_number}) held-out test accuracy {test_acc:.4f} on {len(y_test)} images",
              flush=True)
    return {
        "role": "project", "seed": args.seed, "study": name, "spec": spec.to_dict(),
        "started": t0_dt.isoformat(timespec="seconds"), "wall_seconds": wall,
        "best_val_accuracy": best_value, "best_trial": best_number,
        "best_params": next((t["params"] for t in per_trial if t["number"] == best_number), None),
        "heldout_test_accuracy": test_acc, "heldout_images": len(y_test),
        "completed": len(complete), "pruned": sum(t["state"] == "PRUNED" for t in per_trial),
        "failed": sum(t["state"] == "FAIL" for t in per_trial),
        "collapsed": sum(t["collapsed"] for t in per_trial),
        "worker_reason": worker.reason, "runtime": runtime, "placement": placement,
        "caches_at_start_bytes": caches_at_start,
        "caches_at_end_bytes": {p.name: dir_bytes(p) for p in ws.cache_dir.iterdir()},
        "trials": per_trial,
    }


def run_child(args: argparse.Namespace) -> None:
    ws = Workspace(args.workspace)
    sync_dir = Path(args.sync_dir)
    fn = child_plain if args.role == "plain" else child_project
    res = fn(args, ws, sync_dir)
    Path(args.result).write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ driver
def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _trunc(v: float | None, nd: int) -> str:
    """v with nd decimals, cut (never rounded up), so a printed value never looks better than it is."""
    if v is None:
        return "-"
    if math.isinf(v):
        return "never" if v > 0 else "-inf"
    q = 10 ** nd
    return f"{math.floor(v * q + 1e-9) / q:.{nd}f}"  # 1e-9: 0.85 stored as 0.8499999... still shows 0.85


def _secs(v: float | None) -> str:
    s = _trunc(v, 1)
    return s if s in ("-", "never") else f"{s}s"


def _jsonable(v: Any) -> Any:
    """JSON-ready: infinite times ("never reached") become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _met(ok: bool | None) -> str:
    return "not evaluated" if ok is None else ("MET" if ok else "NOT MET")


def prepare_workspace(args: argparse.Namespace, ws: Workspace) -> dict[str, Any]:
    """Dataset, converted weights and the held-out array: everything before any timer."""
    import keras

    from tlcore import backbones as bb
    from tlcore.pipeline import decode_resized

    t0 = time.perf_counter()
    _fmnist.add_train_subset(ws, args.dataset, args.images)
    class_names, rows = split_rows(ws, args.dataset, args.size)
    for path in rows["train"]["path"].astype(str).head(16):  # the plain decode gives the project's pixels
        if not np.array_equal(decode_file(path, args.size), decode_resized(path, args.size, RESIZE_MODE)):
            raise SystemExit(f"plain and project decode differ on {path}")
    _fmnist.check_idx_decode_matches(rows["train"], args.size, RESIZE_MODE)
    bb.build(BACKBONE, input_shape=(args.size, args.size, 3), include_top=False, weights=WEIGHTS,
             cache_dir=ws.cache_dir, pooling=None)  # converts the ImageNet weights once, into cache/weights
    keras.backend.clear_session()
    x, y = _fmnist.heldout_test_set(args.test_images, args.size, RESIZE_MODE)
    if sorted(set(y)) != class_names:
        raise SystemExit(f"held-out classes {sorted(set(y))} differ from the dataset's {class_names}")
    heldout = ws.root / "bench" / f"heldout-{args.test_images}-{args.size}px.npz"
    heldout.parent.mkdir(parents=True, exist_ok=True)
    np.savez(heldout, x=x, y=np.asarray(y))
    print(f"dataset {args.dataset}: {len(rows['train'])} train / {len(rows['val'])} val images (Fashion-MNIST "
          f"train file, no test part); held-out: {len(y)} images of the t10k test file -> {heldout} "
          f"({time.perf_counter() - t0:.1f}s)", flush=True)
    return {"heldout": str(heldout), "num_train": len(rows["train"]), "num_val": len(rows["val"]),
            "num_heldout": len(y), "class_names": class_names}


def cold_caches(ws: Workspace) -> None:
    """Delete everything under the workspace cache except the converted weights."""
    if not ws.cache_dir.exists():
        return
    for p in ws.cache_dir.iterdir():
        if p.name == "weights":
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def pinning() -> tuple[dict[str, list[str]], str]:
    """The command prefix per role and a sentence saying how the children are placed."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    taskset = shutil.which("taskset")
    if taskset and len(cpus) >= 2:
        a, b = cpus[0], cpus[1]
        return ({"plain": [taskset, "-c", str(a)], "project": [taskset, "-c", str(b)]},
                f"pinned with taskset: plain on CPU {a}, project on CPU {b}")
    why = "taskset not found" if not taskset else f"only {len(cpus)} usable CPU(s)"
    return {"plain": [], "project": []}, f"NOT pinned ({why}): both children share the CPUs"


def _stream(proc: subprocess.Popen, prefix: str, log_path: Path) -> None:
    with open(log_path, "w", encoding="utf-8") as log:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if not _NOISE.match(line):
                print(f"{prefix} {line.rstrip()}", flush=True)


def run_seed(args: argparse.Namespace, ws: Workspace, seed: int, prep: dict[str, Any],
             prefixes: dict[str, list[str]]) -> dict[str, Any]:
    cold_caches(ws)
    stamp = _now().strftime("%Y%m%d-%H%M%S")
    run_dir = ws.root / "bench-logs" / f"{stamp}-seed{seed}"
    sync_dir = run_dir / "sync"
    sync_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TLCORE_CPU_THREADS": "1"}
    common = ["--workspace", str(ws.root), "--dataset", args.dataset, "--size", str(args.size),
              "--trials", str(args.trials), "--epochs", str(args.epochs), "--seed", str(seed),
              "--heldout", prep["heldout"], "--sync-dir", str(sync_dir)]
    procs, threads, results, logs = {}, [], {}, {}
    for role in ROLES:
        results[role] = run_dir / f"{role}.json"
        logs[role] = run_dir / f"{role}.log"
        cmd = [*prefixes[role], sys.executable, str(Path(__file__).resolve()), "--role", role, *common,
               "--result", str(results[role])]
        if role == "project":
            cmd += ["--study", f"bench-search-s{seed}-{stamp}"]
        procs[role] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                       bufsize=1)
        th = threading.Thread(target=_stream, args=(procs[role], f"[{role:7s} s{seed}]", logs[role]), daemon=True)
        th.start()
        threads.append(th)
    print(f"seed {seed}: logs {logs['plain']} and {logs['project']}", flush=True)
    # The barrier: both children import and prepare, then start their timers together.
    go = sync_dir / "go"
    while not go.exists():
        ready = [(sync_dir / f"{r}.ready").exists() for r in ROLES]
        exited = [procs[r].poll() is not None for r in ROLES]
        if all(ready) or any(e and not r for e, r in zip(exited, ready)):
            go.write_text("go")
            if not all(ready):
                print(f"seed {seed}: a child exited before it was ready; the other runs alone", flush=True)
        else:
            time.sleep(0.02)
    for role in ROLES:
        procs[role].wait()
    for th in threads:
        th.join()
    out: dict[str, Any] = {"seed": seed, "logs": {r: str(logs[r]) for r in ROLES}}
    for role in ROLES:
        rc = procs[role].returncode
        if rc == 0 and results[role].exists():
            out[role] = json.loads(results[role].read_text(encoding="utf-8"))
        else:
            tail = logs[role].read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
            print(f"seed {seed}: the {role} child FAILED (exit {rc}); its log's tail:\n" + "\n".join(tail), flush=True)
            out[role] = None
            out[f"{role}_error"] = {"returncode": rc, "log_tail": tail}
    out["metrics"] = seed_metrics(out.get("plain"), out.get("project"))
    return out


def time_to_reach(res: dict[str, Any], threshold: float) -> float:
    """Seconds since the side's start until its first COMPLETE trial with value >= threshold (inf: never)."""
    times = [t["finished_at_s"] for t in res["trials"]
             if t["state"] == "COMPLETE" and t["value"] is not None and t["finished_at_s"] is not None
             and t["value"] >= threshold - EPS]
    return min(times) if times else math.inf


def seed_metrics(plain: dict | None, project: dict | None) -> dict[str, Any] | None:
    if not plain or not project:
        return None
    thr = plain["best_val_accuracy"] - REACH_TOLERANCE
    p_ttr, q_ttr = time_to_reach(plain, thr), time_to_reach(project, thr)
    pt, qt = plain["heldout_test_accuracy"], project["heldout_test_accuracy"]
    return {
        "plain_wall_s": plain["wall_seconds"], "project_wall_s": project["wall_seconds"],
        "speedup": plain["wall_seconds"] / project["wall_seconds"],
        "plain_best_val": plain["best_val_accuracy"], "project_best_val": project["best_val_accuracy"],
        "reach_threshold": thr,
        "plain_time_to_reach_s": p_ttr, "project_time_to_reach_s": q_ttr,
        "project_reach_fraction_of_plain_wall": q_ttr / plain["wall_seconds"],
        "plain_heldout_test_acc": pt, "project_heldout_test_acc": qt,
        # no project model to test (no complete trial) counts as -inf: NOT MET, never "not evaluated"
        "heldout_diff_points": None if pt is None else (-math.inf if qt is None else (qt - pt) * 100.0),
        "plain_collapsed": plain["collapsed"], "project_collapsed": project["collapsed"],
        "project_completed": project["completed"], "project_pruned": project["pruned"],
        "project_failed": project["failed"],
    }


def _median(vals: list[float | None], *, none_is_never: bool = False) -> float | None:
    """The median, None-free values only; with ``none_is_never`` a None (a time never reached) counts as
    infinitely late, so a seed that never got there pulls the median up, and a median that falls on such
    a seed is None (never)."""
    if none_is_never:
        ranked = sorted(vals, key=lambda v: math.inf if v is None else v)
        if not ranked:
            return None
        mid = len(ranked) // 2
        pair = ranked[mid:mid + 1] if len(ranked) % 2 else ranked[mid - 1:mid + 1]
        return None if any(v is None for v in pair) else statistics.mean(pair)
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarize(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    ms = [s["metrics"] for s in seeds if s.get("metrics")]
    complete = len(ms) == len(seeds) and ms
    keys = ("plain_wall_s", "project_wall_s", "speedup", "plain_best_val", "project_best_val",
            "plain_time_to_reach_s", "project_time_to_reach_s", "project_reach_fraction_of_plain_wall",
            "plain_heldout_test_acc", "project_heldout_test_acc", "heldout_diff_points")
    never_keys = ("plain_time_to_reach_s", "project_time_to_reach_s", "project_reach_fraction_of_plain_wall")
    med = {k: _median([m[k] for m in ms], none_is_never=k in never_keys) for k in keys}
    frac, diff, speedup = med["project_reach_fraction_of_plain_wall"], med["heldout_diff_points"], med["speedup"]
    heldout_ok = bool(complete) and diff is not None and diff >= -HELDOUT_TOLERANCE * 100.0 - EPS
    reach_target = heldout_ok and frac is not None and frac <= TARGET_REACH_FRACTION
    reach_required = heldout_ok and frac is not None and frac <= REQUIRED_REACH_FRACTION
    collapsed = [m["project_collapsed"] for m in ms]
    targets = {
        "reach_target_met": reach_target,
        "reach_required_met": reach_required,
        "heldout_accuracy_met": heldout_ok,
        "speedup_met": bool(complete) and speedup is not None and speedup >= TARGET_SPEEDUP,
        "collapsed_met": bool(complete) and all(c <= TARGET_COLLAPSED for c in collapsed),
    }
    targets["all_met"] = all(bool(targets[k]) for k in ("reach_target_met", "speedup_met", "collapsed_met"))
    return {"seeds_complete": len(ms), "seeds_run": len(seeds), "medians": med, "targets": targets,
            "project_collapsed_per_seed": collapsed, "plain_collapsed_per_seed": [m["plain_collapsed"] for m in ms]}


def table(seeds: list[dict[str, Any]]) -> list[str]:
    lines = ["| seed | plain wall (s) | project wall (s) | speed-up | plain best val | project best val "
             "| project time to plain's best (s) | of plain wall | held-out test acc plain / project "
             "| collapsed plain / project |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in seeds:
        m = s.get("metrics")
        if not m:
            failed = [r for r in ROLES if not s.get(r)]
            lines.append(f"| {s['seed']} | failed: {', '.join(failed)} |  |  |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| {s['seed']} | {_trunc(m['plain_wall_s'], 1)} | {_trunc(m['project_wall_s'], 1)} "
            f"| {_trunc(m['speedup'], 2)}x | {_trunc(m['plain_best_val'], 4)} | {_trunc(m['project_best_val'], 4)} "
            f"| {_trunc(m['project_time_to_reach_s'], 1)} | {_trunc(m['project_reach_fraction_of_plain_wall'], 3)} "
            f"| {_trunc(m['plain_heldout_test_acc'], 4)} / {_trunc(m['project_heldout_test_acc'], 4)} "
            f"| {m['plain_collapsed']} / {m['project_collapsed']} |")
    return lines


def print_report(args: argparse.Namespace, seeds: list[dict[str, Any]], summary: dict[str, Any],
                 placement: str) -> None:
    print()
    print(f"Search: {args.trials} trials x {args.epochs} epochs, {BACKBONE} ({WEIGHTS}), {args.size} px, "
          f"dataset {args.dataset} ({args.images} train+val images), held-out {args.test_images} t10k test images, "
          f"seeds {args.seeds}; {placement}")
    for s in seeds:
        for role in ROLES:
            r = s.get(role)
            if not r:
                print(f"  seed {s['seed']} {role:7s}: FAILED (log {s['logs'][role]})")
                continue
            print(f"  seed {s['seed']} {role:7s}: wall {_trunc(r['wall_seconds'], 1)}s, best val "
                  f"{_trunc(r['best_val_accuracy'], 4)} (trial {r['best_trial']}), held-out test "
                  f"{_trunc(r['heldout_test_accuracy'], 4)}, completed {r['completed']}, pruned {r['pruned']}, "
                  f"failed {r['failed']}, collapsed {r['collapsed']}")
        m = s.get("metrics")
        if m:
            print(f"  seed {s['seed']}: plain's final best {_trunc(m['plain_best_val'], 4)} -> threshold "
                  f"{_trunc(m['reach_threshold'], 4)}; reached by plain at {_secs(m['plain_time_to_reach_s'])}, "
                  f"by project at {_secs(m['project_time_to_reach_s'])}")
    print()
    print("\n".join(table(seeds)))
    med, t = summary["medians"], summary["targets"]
    print()
    print(f"Medians over {summary['seeds_complete']} of {summary['seeds_run']} seed(s): plain wall "
          f"{_trunc(med['plain_wall_s'], 1)}s, project wall {_trunc(med['project_wall_s'], 1)}s, speed-up "
          f"{_trunc(med['speedup'], 2)}x; best val plain {_trunc(med['plain_best_val'], 4)} / project "
          f"{_trunc(med['project_best_val'], 4)}; project time to plain's best "
          f"{_secs(med['project_time_to_reach_s'])} "
          f"= {_trunc(med['project_reach_fraction_of_plain_wall'], 3)} of plain's wall; held-out test acc plain "
          f"{_trunc(med['plain_heldout_test_acc'], 4)} / project {_trunc(med['project_heldout_test_acc'], 4)} "
          f"(project - plain {_trunc(med['heldout_diff_points'], 2)} points)")
    frac = med["project_reach_fraction_of_plain_wall"]
    print(f"- time to reach plain's final best (within {REACH_TOLERANCE * 100:g} pt) <= {TARGET_REACH_FRACTION:g} of "
          f"plain's wall, with held-out test acc >= plain's - {HELDOUT_TOLERANCE * 100:g} pt: "
          f"{_met(t['reach_target_met'])}  (fraction {_trunc(frac, 3)}; held-out "
          f"{_met(t['heldout_accuracy_met'])})")
    print(f"- required: the same with <= {REQUIRED_REACH_FRACTION:g} of plain's wall: {_met(t['reach_required_met'])}")
    print(f"- whole search at the same trial budget >= {TARGET_SPEEDUP:g}x less wall time: {_met(t['speedup_met'])}"
          f"  (median speed-up {_trunc(med['speedup'], 2)}x)")
    print(f"- collapsed project trials 0 in every seed: {_met(t['collapsed_met'])}  "
          f"(per seed {summary['project_collapsed_per_seed']}; plain {summary['plain_collapsed_per_seed']})")
    if summary["seeds_complete"] < summary["seeds_run"]:
        print("  (some seeds failed: the targets count as NOT MET)")


def run_driver(args: argparse.Namespace) -> None:
    for k, v in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.out is None:
        args.out = str(HERE / "results" / ("bench_search_quick.json" if args.quick else "bench_search.json"))
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    args.dataset = dataset_name(args.images)
    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-search-"))

    import keras

    prefixes, placement = pinning()
    print(f"backend={keras.backend.backend()} cpus={os.cpu_count()} workspace={ws.root} images={args.images} "
          f"size={args.size} trials={args.trials} epochs={args.epochs} test_images={args.test_images} "
          f"seeds={seeds}; {placement}; TLCORE_CPU_THREADS=1 in each child", flush=True)
    prep = prepare_workspace(args, ws)
    load_start = os.getloadavg()
    runs = []
    for seed in seeds:
        print(f"\n=== seed {seed}: plain and project start together ===", flush=True)
        runs.append(run_seed(args, ws, seed, prep, prefixes))
    summary = summarize(runs)
    print_report(args, runs, summary, placement)

    result = {
        "when": _now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "placement": placement,
                    "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg()},
        "config": {"images": args.images, "size": args.size, "trials": args.trials, "epochs": args.epochs,
                   "test_images": args.test_images, "seeds": seeds, "quick": args.quick, "dataset": args.dataset,
                   "workspace": str(ws.root), "backbone": BACKBONE, "weights": WEIGHTS,
                   "plain": {"freeze_depth": [DEPTH_LO, DEPTH_HI], "learning_rate": [LR_LO, LR_HI],
                             "batch_size": BATCH_SIZE, "dropout": DROPOUT, "resize_mode": RESIZE_MODE},
                   "project": "StudySpec defaults (each seed's spec is in seeds[i].project.spec)",
                   **{k: prep[k] for k in ("num_train", "num_val", "num_heldout")}},
        "targets": {"reach_fraction_of_plain_wall_at_most": TARGET_REACH_FRACTION,
                    "reach_fraction_required_at_most": REQUIRED_REACH_FRACTION,
                    "reach_tolerance_points": REACH_TOLERANCE * 100,
                    "heldout_max_drop_points": HELDOUT_TOLERANCE * 100, "speedup_at_least": TARGET_SPEEDUP,
                    "collapsed_at_most": TARGET_COLLAPSED, "collapse_val_accuracy_at_most": COLLAPSE_ACC},
        "summary": summary,
        "table_markdown": table(runs),
        "seeds": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(result), indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


def merge_results(paths: list[str], out: str | None) -> None:
    """One report (medians over every seed) from result files of runs made one seed at a time."""
    results = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    runs = [seed for r in results for seed in r["seeds"]]
    first = results[0]
    cfg = first["config"]
    for r in results[1:]:  # the same benchmark, or the medians mean nothing
        for k in ("images", "size", "trials", "epochs", "test_images", "dataset"):
            if r["config"][k] != cfg[k]:
                raise SystemExit(f"cannot merge: {k} differs ({cfg[k]!r} vs {r['config'][k]!r})")
    args = argparse.Namespace(**{k: cfg[k] for k in ("images", "size", "trials", "epochs", "test_images", "dataset")},
                              seeds=",".join(str(s["seed"]) for s in runs))
    summary = summarize(runs)
    print_report(args, runs, summary, first["machine"]["placement"])
    merged = {**first, "when": _now().isoformat(timespec="seconds"), "merged_from": paths,
              "config": {**cfg, "seeds": [s["seed"] for s in runs]}, "summary": summary,
              "table_markdown": table(runs), "seeds": runs}
    target = Path(out or HERE / "results" / "bench_search.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_jsonable(merged), indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; quick 0)")
    ap.add_argument("--images", type=int, default=None, help="train+val images (default 3000; quick 300)")
    ap.add_argument("--size", type=int, default=None, help="image side in px (default 96; quick 48)")
    ap.add_argument("--trials", type=int, default=None, help="trials per search (default 12; quick 3)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 3; quick 1)")
    ap.add_argument("--test-images", dest="test_images", type=int, default=None,
                    help="held-out t10k test images, a tenth per class (default 2000; quick 200)")
    ap.add_argument("--workspace", default=None, help="reuse a workspace (default: a new temporary one)")
    ap.add_argument("--out", default=None,
                    help="JSON summary (default bench/results/bench_search.json; with --quick bench_search_quick.json)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 300 images, 48 px, 3 trials, 1 epoch, seed 0")
    ap.add_argument("--merge", nargs="+", metavar="RESULT.json",
                    help="report the medians over the seeds of these result files (runs made a seed at a time)")
    # the driver's children
    ap.add_argument("--role", choices=("driver", *ROLES), default="driver", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--heldout", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sync-dir", dest="sync_dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--study", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.merge:
        merge_results(args.merge, args.out)
    elif args.role == "driver":
        run_driver(args)
    else:
        run_child(args)


if __name__ == "__main__":
    main()
