"""Hyperparameter search: this project against a straightforward Keras implementation.

Both run the same search: Optuna's TPE sampler with the same seed, N trials of E
epochs each over the freeze depth (blocks of EfficientNet-Lite0, ImageNet weights,
frozen from the input) and the Adam learning rate (log scale), on a Fashion-MNIST
subset at S px (default: 3,000 train+val images, 96 px, 12 trials x 3 epochs).

- project (``run_project``): ``tlcore.search`` (StudySpec, create_study,
  run_worker, load_study_frame) with the median pruner: the image cache, the
  frozen-prefix feature cache and pruning.
- plain (``run_plain``): an in-memory ``optuna.create_study`` with no pruner; each
  trial builds the same ``Classifier``, and every epoch decodes every training
  image from its file (PIL open, convert to RGB, the project's "pad" resize) and
  runs the full forward pass through the frozen blocks (``model.fit``, batch 32,
  no XLA). Validation images are decoded again every epoch too (the validation
  feed is a second PyDataset). Objective = best validation accuracy over the
  epochs.

Both use the same train/val files (``dataset_splits`` with the dataset's split,
ordered as ``prepare_data`` orders them), the same runtime set-up
(``tlcore.runtime.configure``), seed (``set_seed`` per trial), loss (categorical
cross-entropy, no label smoothing), dropout (0.2) and validation batch (64).
The ImageNet weights are built once before either timer starts.

Target: the project takes at least 5x less wall time than plain, with a best
validation accuracy no more than 1 point below plain's.

Usage:
    python bench/bench_search.py [--images 3000] [--size 96] [--trials 12] [--epochs 3] [--seed 0]
                                 [--workspace DIR] [--only plain|project|both] [--out FILE] [--quick]

``--quick`` (smoke test) means 300 images, 48 px, 3 trials, 1 epoch unless given.
The dataset is a pre-split Fashion-MNIST import like bench_train.py's fmnist5k:
``images / 10`` per class in train/ (validation is carved out of it) and
``images / 50`` per class in test/ (the search does not use test; the project's
trainer evaluates it at the end of each completed trial, which counts in its time).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tlcore.config import TrainSpec  # noqa: E402
from tlcore.datasets import add_fashion_mnist, dataset_splits, load_split_spec, resize_to  # noqa: E402
from tlcore.pipeline import decode_resized  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402

# ------------------------------------------------------------------ the search, shared by both runs
BACKBONE = "efficientnet_lite0"
WEIGHTS = "imagenet"
METHOD = "fine_tune"
DROPOUT = 0.2  # TrainSpec's default
RESIZE_MODE = "pad"  # TrainSpec's default
BATCH_SIZE = 32
VAL_BATCH_SIZE = 64  # what the trainer uses for validation: max(batch_size, 64)
DEPTH_LO, DEPTH_HI = 6, 18  # of EfficientNet-Lite0's 18 blocks (18 = feature extraction)
LR_LO, LR_HI = 1e-4, 1e-2  # log scale
STUDY_NAME = "bench-search"
PRUNER = "median"

TARGET_SPEEDUP = 5.0
TARGET_MAX_ACC_DROP = 0.01  # 1 point

DEFAULTS = {"images": 3000, "size": 96, "trials": 12, "epochs": 3}
QUICK = {"images": 300, "size": 48, "trials": 3, "epochs": 1}


# ------------------------------------------------------------------ data
def dataset_name(images: int) -> str:
    return f"fmnist{images}"


def prepare_dataset(ws: Workspace, images: int) -> str:
    """Register the Fashion-MNIST subset (once per workspace) and return its name.

    Same import as bench_train.py's fmnist5k (``add_fashion_mnist`` with per-class
    limits, train:test = 5:1), sized by ``images`` = train+val images.
    """
    name = dataset_name(images)
    if not ws.has_dataset(name):
        per_class = max(2, images // 10)
        add_fashion_mnist(ws, name, per_class={"train": per_class, "test": max(1, per_class // 5)})
    return name


def split_rows(ws: Workspace, name: str, size: int) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """Class names and the train/val rows, exactly as ``trainer.prepare_data`` makes them."""
    spec = TrainSpec(dataset=name, image_size=size)
    index = dataset_splits(ws, name, spec.split_spec(load_split_spec(ws, name)))
    index = index[index["split"] != ""].sort_values("relpath", kind="stable").reset_index(drop=True)
    class_names = sorted(index["label"].unique().tolist())
    rows = {s: index[index["split"] == s].reset_index(drop=True) for s in ("train", "val")}
    return class_names, rows


def decode_file(path: str, size: int) -> np.ndarray:
    """The straightforward decode: PIL open, convert to RGB, the project's per-image resize."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return resize_to(rgb, size, mode=RESIZE_MODE)


def check_same_inputs(rows: pd.DataFrame, size: int, n: int = 16) -> None:
    """The plain decode must give the project's pixels (``pipeline.decode_resized``)."""
    for path in rows["path"].astype(str).head(n):
        if not np.array_equal(decode_file(path, size), decode_resized(path, size, RESIZE_MODE)):
            raise SystemExit(f"plain and project decode differ on {path}")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


# ------------------------------------------------------------------ plain Keras
def _plain_feed_class():
    import keras

    class DecodingBatches(keras.utils.PyDataset):
        """Batches decoded from the image files on every call (nothing cached).

        The shuffle is the trainer's: permutation seeded by (seed, epoch), each
        batch's indices sorted, so both runs see the same batches.
        """

        def __init__(self, paths: list[str], y: np.ndarray, num_classes: int, size: int, batch_size: int,
                     seed: int, shuffle: bool):
            super().__init__()
            self.paths, self.y, self.num_classes, self.size = paths, y, num_classes, size
            self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
            self.epoch = 0
            self.decode_seconds = 0.0
            self.decoded = 0
            self._order = self._make_order()

        def _make_order(self) -> np.ndarray:
            if not self.shuffle:
                return np.arange(len(self.y))
            return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.y))

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch
            self._order = self._make_order()

        def __len__(self) -> int:
            return math.ceil(len(self.y) / self.batch_size)

        def __getitem__(self, i: int):
            idx = np.sort(self._order[i * self.batch_size : (i + 1) * self.batch_size])
            t0 = time.perf_counter()
            xb = np.stack([decode_file(self.paths[j], self.size) for j in idx]).astype(np.float32)
            self.decode_seconds += time.perf_counter() - t0
            self.decoded += len(idx)
            return xb, keras.utils.to_categorical(self.y[idx], self.num_classes)

    return DecodingBatches


def search_spec(study_name: str, dataset: str, *, size: int, trials: int, epochs: int, seed: int):
    """The search both runs make: the project runs it, the plain run takes its sampler (same seed, same
    TPE settings), so both see the same first suggestions."""
    from tlcore.search import StudySpec

    return StudySpec(name=study_name, dataset=dataset, image_size=size, backbones=[BACKBONE], methods=[METHOD],
                     freeze_depth=(DEPTH_LO, DEPTH_HI), learning_rate=(LR_LO, LR_HI), epochs=epochs,
                     n_trials=trials, sampler="tpe", seed=seed, pruner=PRUNER, batch_size=BATCH_SIZE)


def run_plain(ws: Workspace, name: str, *, size: int, trials: int, epochs: int, seed: int) -> dict[str, Any]:
    """The straightforward search: decode every epoch, full forward pass, no pruning."""
    import keras
    import optuna

    from tlcore.model import Classifier
    from tlcore.runtime import configure, set_seed

    runtime = configure()
    class_names, rows = split_rows(ws, name, size)
    check_same_inputs(rows["train"], size)
    lookup = {c: i for i, c in enumerate(class_names)}
    paths = {s: rows[s]["path"].astype(str).tolist() for s in rows}
    ys = {s: rows[s]["label"].map(lookup).to_numpy(dtype=np.int64) for s in rows}
    Feed = _plain_feed_class()
    per_trial: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        t_trial = time.perf_counter()
        freeze_depth = trial.suggest_int("freeze_depth", DEPTH_LO, DEPTH_HI)
        learning_rate = trial.suggest_float("learning_rate", LR_LO, LR_HI, log=True)
        keras.backend.clear_session()
        set_seed(seed)
        clf = Classifier.build(BACKBONE, class_names=class_names, image_size=size, weights=WEIGHTS,
                               dropout=DROPOUT, cache_dir=ws.cache_dir)
        clf.set_freeze_depth(freeze_depth)
        clf.model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                          loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"], jit_compile=False)
        train_feed = Feed(paths["train"], ys["train"], len(class_names), size, BATCH_SIZE, seed, shuffle=True)
        val_feed = Feed(paths["val"], ys["val"], len(class_names), size, VAL_BATCH_SIZE, seed, shuffle=False)
        accs, epoch_s = [], []
        for epoch in range(epochs):
            train_feed.set_epoch(epoch)
            t0 = time.perf_counter()
            hist = clf.model.fit(train_feed, validation_data=val_feed, epochs=1, verbose=0)
            epoch_s.append(time.perf_counter() - t0)
            accs.append(float(hist.history["val_accuracy"][-1]))
        value = max(accs)
        rec = {"number": trial.number, "freeze_depth": freeze_depth, "learning_rate": learning_rate,
               "value": value, "state": "COMPLETE", "seconds": time.perf_counter() - t_trial,
               "val_accuracy_per_epoch": accs, "epoch_seconds": epoch_s,
               "decode_seconds": train_feed.decode_seconds + val_feed.decode_seconds,
               "images_decoded": train_feed.decoded + val_feed.decoded}
        per_trial.append(rec)
        print(f"  plain   trial {trial.number:2d}: depth {freeze_depth:2d} lr {learning_rate:.2e} "
              f"val_acc {value:.4f} ({rec['seconds']:.1f}s; epochs {', '.join(f'{s:.1f}' for s in epoch_s)}s)",
              flush=True)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    from tlcore.search.study import make_sampler

    sampler = make_sampler(search_spec("plain", name, size=size, trials=trials, epochs=epochs, seed=seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - t0
    keras.backend.clear_session()
    complete = [t for t in per_trial if t["state"] == "COMPLETE"]
    all_epochs = [s for t in per_trial for s in t["epoch_seconds"]]
    later = [s for t in per_trial for s in t["epoch_seconds"][1:]]
    return {
        "wall_seconds": wall,
        "best_val_accuracy": study.best_value if complete else None,
        "best_params": study.best_params if complete else None,
        "completed": len(complete),
        "pruned": 0,
        "failed": len(study.trials) - len(complete),
        "num_train": len(ys["train"]),
        "num_val": len(ys["val"]),
        "median_epoch_seconds": statistics.median(all_epochs) if all_epochs else None,
        "median_epoch_seconds_after_first": statistics.median(later) if later else None,
        "decode_seconds": sum(t["decode_seconds"] for t in per_trial),
        "val_decoded": "every epoch",
        "runtime": runtime,
        "trials": per_trial,
    }


# ------------------------------------------------------------------ the project
def run_project(ws: Workspace, name: str, *, size: int, trials: int, epochs: int, seed: int) -> dict[str, Any]:
    """The same search through ``tlcore.search`` (caches and the median pruner)."""
    from tlcore.search import create_study, load_study_frame, run_worker

    def make_spec(study_name: str):
        return search_spec(study_name, name, size=size, trials=trials, epochs=epochs, seed=seed)

    caches_at_start = {k: dir_bytes(ws.cache_dir / k) for k in ("images", "features")}
    if any(caches_at_start.values()):
        print(f"  warning: the workspace's caches are not empty at the start ({caches_at_start} bytes): "
              "the project run starts warm; use a fresh workspace or --clear-caches", flush=True)
    t0 = time.perf_counter()
    study_name = STUDY_NAME
    try:
        create_study(ws, make_spec(study_name))
    except Exception as exc:  # the study exists in a reused workspace: take a fresh name
        study_name = f"{STUDY_NAME}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        print(f"  create_study({STUDY_NAME!r}) failed ({type(exc).__name__}: {exc}); using {study_name!r}", flush=True)
        create_study(ws, make_spec(study_name))
    run_worker(ws, study_name)
    wall = time.perf_counter() - t0
    df = load_study_frame(ws, study_name)

    per_trial = []
    for r in df.sort_values("number").itertuples(index=False):
        value = getattr(r, "value", None)
        per_trial.append({
            "number": int(r.number),
            "freeze_depth": None if pd.isna(r.params_freeze_depth) else int(r.params_freeze_depth),
            "learning_rate": None if pd.isna(r.params_learning_rate) else float(r.params_learning_rate),
            "value": None if value is None or pd.isna(value) else float(value),
            "state": str(r.state),
            "seconds": None if pd.isna(r.duration_s) else float(r.duration_s),
        })
    for t in per_trial:
        print(f"  project trial {t['number']:2d}: depth {_fmt(t['freeze_depth'], 'd', 2)} "
              f"lr {_fmt(t['learning_rate'], '.2e')} value {_fmt(t['value'], '.4f')} {t['state']:8s} "
              f"({_fmt(t['seconds'], '.1f')}s)", flush=True)
    complete = [t for t in per_trial if t["state"] == "COMPLETE" and t["value"] is not None]
    best = max(complete, key=lambda t: t["value"]) if complete else None
    return {
        "wall_seconds": wall,
        "study": study_name,
        "best_val_accuracy": best["value"] if best else None,
        "best_params": {"freeze_depth": best["freeze_depth"], "learning_rate": best["learning_rate"]} if best else None,
        "completed": len(complete),
        "pruned": sum(t["state"] == "PRUNED" for t in per_trial),
        "failed": sum(t["state"] == "FAIL" for t in per_trial),
        "caches_at_start_bytes": caches_at_start,
        "caches_at_end_bytes": {k: dir_bytes(ws.cache_dir / k) for k in ("images", "features")},
        "trials": per_trial,
    }


# ------------------------------------------------------------------ report
def _fmt(v: Any, spec: str, width: int = 0) -> str:
    return ("-" if v is None else format(v, spec)).rjust(width)


def trial_table(label: str, trials: list[dict[str, Any]]) -> list[str]:
    lines = [f"{label} trials:", "| # | freeze depth | learning rate | best val acc | state | seconds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t in trials:
        lines.append(f"| {t['number']} | {_fmt(t['freeze_depth'], 'd')} | {_fmt(t['learning_rate'], '.2e')} | "
                     f"{_fmt(t['value'], '.4f')} | {t['state']} | {_fmt(t['seconds'], '.1f')} |")
    return lines


def summarize(plain: dict | None, project: dict | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if plain and project:
        speedup = plain["wall_seconds"] / project["wall_seconds"]
        pa, qa = plain["best_val_accuracy"], project["best_val_accuracy"]
        diff = None if pa is None or qa is None else (qa - pa) * 100.0
        out = {
            "speedup": speedup,
            "val_accuracy_diff_points": diff,  # project - plain, in percentage points
            "speedup_target_met": speedup >= TARGET_SPEEDUP,
            "accuracy_target_met": None if diff is None else diff >= -TARGET_MAX_ACC_DROP * 100.0 - 1e-9,
        }
        out["all_targets_met"] = bool(out["speedup_target_met"] and out["accuracy_target_met"])
    return out


def print_summary(args: argparse.Namespace, plain: dict | None, project: dict | None, cmp: dict) -> None:
    print()
    print(f"Search: {args.trials} trials x {args.epochs} epochs, TPE seed {args.seed}, {BACKBONE} ({WEIGHTS}), "
          f"{args.size} px, freeze depth {DEPTH_LO}..{DEPTH_HI}, lr {LR_LO:g}..{LR_HI:g} (log), "
          f"dataset {dataset_name(args.images)}")
    for label, r in (("plain  ", plain), ("project", project)):
        if r is None:
            print(f"  {label}: not run")
            continue
        acc = r["best_val_accuracy"]
        print(f"  {label}: wall {r['wall_seconds']:.1f}s, best val acc {_fmt(acc, '.4f')}, "
              f"completed {r['completed']}, pruned {r['pruned']}, failed {r['failed']}")
    if plain:
        print(f"  plain: {plain['num_train']} train / {plain['num_val']} val images; median epoch "
              f"{_fmt(plain['median_epoch_seconds'], '.2f')}s (after each trial's first: "
              f"{_fmt(plain['median_epoch_seconds_after_first'], '.2f')}s); decoding {plain['decode_seconds']:.1f}s in all")
    if cmp:
        print(f"  speed-up (plain / project): {cmp['speedup']:.2f}x  -> target >= {TARGET_SPEEDUP:g}x: "
              f"{'MET' if cmp['speedup_target_met'] else 'NOT MET'}")
        diff = cmp["val_accuracy_diff_points"]
        print(f"  best val acc, project - plain: {_fmt(diff, '+.2f')} points  -> target >= "
              f"{-TARGET_MAX_ACC_DROP * 100:g}: {'MET' if cmp['accuracy_target_met'] else 'NOT MET'}")
    else:
        print("  targets: not evaluated (needs both runs)")
    for label, r in (("plain", plain), ("project", project)):
        if r is not None:
            print()
            print("\n".join(trial_table(label, r["trials"])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=None, help="train+val images (default 3000; quick 300)")
    ap.add_argument("--size", type=int, default=None, help="image side in px (default 96; quick 48)")
    ap.add_argument("--trials", type=int, default=None, help="trials (default 12; quick 3)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    ap.add_argument("--workspace", default=None, help="reuse a workspace (default: a new temporary one)")
    ap.add_argument("--only", choices=("plain", "project", "both"), default="both")
    ap.add_argument("--out", default=None,
                    help="JSON summary (default bench/results/bench_search.json; with --quick bench_search_quick.json)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 300 images, 48 px, 3 trials, 1 epoch")
    ap.add_argument("--clear-caches", action="store_true",
                    help="empty the workspace's image and feature caches before the project run")
    args = ap.parse_args()
    for k, v in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    if args.out is None:
        results = Path(__file__).resolve().parent / "results"
        args.out = str(results / ("bench_search_quick.json" if args.quick else "bench_search.json"))

    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-search-"))
    import keras

    from tlcore.model import Classifier
    from tlcore.runtime import configure

    runtime = configure()
    print(f"backend={keras.backend.backend()} cpus={os.cpu_count()} workspace={ws.root} images={args.images} "
          f"size={args.size} trials={args.trials} epochs={args.epochs} seed={args.seed} only={args.only}", flush=True)
    t0 = time.perf_counter()
    name = prepare_dataset(ws, args.images)
    print(f"dataset {name} ready ({time.perf_counter() - t0:.1f}s)", flush=True)
    # Weights (download/conversion into the workspace cache) before either timer starts.
    Classifier.build(BACKBONE, num_classes=2, image_size=args.size, weights=WEIGHTS, cache_dir=ws.cache_dir)
    keras.backend.clear_session()

    plain = project = None
    if args.only in ("plain", "both"):
        print("plain run:", flush=True)
        plain = run_plain(ws, name, size=args.size, trials=args.trials, epochs=args.epochs, seed=args.seed)
    if args.only in ("project", "both"):
        if args.clear_caches:
            import shutil

            for k in ("images", "features"):
                shutil.rmtree(ws.cache_dir / k, ignore_errors=True)
        print("project run:", flush=True)
        project = run_project(ws, name, size=args.size, trials=args.trials, epochs=args.epochs, seed=args.seed)
    cmp = summarize(plain, project)
    print_summary(args, plain, project, cmp)

    result = {
        "when": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **runtime},
        "config": {"images": args.images, "size": args.size, "trials": args.trials, "epochs": args.epochs,
                   "seed": args.seed, "quick": args.quick, "only": args.only, "dataset": name,
                   "workspace": str(ws.root), "backbone": BACKBONE, "weights": WEIGHTS, "method": METHOD,
                   "freeze_depth": [DEPTH_LO, DEPTH_HI], "learning_rate": [LR_LO, LR_HI],
                   "batch_size": BATCH_SIZE, "dropout": DROPOUT, "resize_mode": RESIZE_MODE, "pruner": PRUNER},
        "targets": {"speedup_at_least": TARGET_SPEEDUP, "max_val_accuracy_drop_points": TARGET_MAX_ACC_DROP * 100},
        "plain": plain,
        "project": project,
        "comparison": cmp,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
