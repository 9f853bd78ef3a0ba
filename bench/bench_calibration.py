"""Calibration (issue 14): expected calibration error before and after temperature scaling.

Data: the search benchmark's (``bench/bench_search.py``) 3,000-image subset of
Fashion-MNIST's TRAIN file, registered without a test part (``_fmnist.add_train_subset``:
the project's split carves the validation split out of it), and 2,000 held-out images
of Fashion-MNIST's own t10k TEST file (200 per class, ``_fmnist.heldout_test_set``,
decoded and resized as the project decodes its training images), never in the
workspace, never used to train, select or calibrate.

Model: one run of the search's recipe trial: EfficientNet-Lite0 with ImageNet weights,
``fine_tune`` from depth 12, learning rate 6.8e-4, 3 epochs, 96 px, the default
``TrainSpec`` otherwise (``tlcore.trainer.train``, which fits the temperature on the
run's validation split and stores it in ``metrics.json``).

Measured: the temperature; on the held-out images, accuracy, negative log-likelihood
(NLL) and ECE (15 equal-width confidence bins) of the raw softmax and of the calibrated
probabilities (``tlcore.calibration.evaluate_temperature``), with the reliability bins;
the run's own ``calibration`` block (the subset has no test split, so its figures are
the validation split's: the split the temperature was fitted on, hence optimistic).
The held-out probabilities are the model's raw output
(``predict_arrays(..., calibrated=False)``); the calibrated ones are checked to be
what ``predict_arrays`` returns.

Target: ECE after < ECE before on the held-out images, with the accuracy unchanged
(raw figures, never rounded; printed MET / NOT MET).

Usage (pinned to one core, one TensorFlow thread):
    taskset -c 0 env TLCORE_CPU_THREADS=1 KERAS_BACKEND=tensorflow \\
        .venv/bin/python bench/bench_calibration.py [--images 3000] [--size 96] [--test-images 2000]
                                                    [--workspace DIR] [--out FILE]

Default output: ``bench/results/bench_calibration.json``; the workspace is a new
temporary folder unless ``--workspace`` names one.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import _fmnist  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402

BACKBONE = "efficientnet_lite0"
RECIPE = {"method": "fine_tune", "freeze_depth": 12, "learning_rate": 6.8e-4, "epochs": 3}
RESIZE_MODE = "pad"
DEFAULTS = {"images": 3000, "size": 96, "test_images": 2000}


def _dataset_name(images: int) -> str:
    return f"fmnist{images}-trainonly"  # bench_search.dataset_name: the same registered subset


def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{100.0 * v:.{digits}f} %"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import keras

    from tlcore.calibration import apply_temperature, evaluate_temperature
    from tlcore.config import TrainSpec
    from tlcore.predict import load_model, predict_arrays
    from tlcore.runtime import configure
    from tlcore.trainer import ProgressHooks, train

    runtime = configure()
    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-calibration-"))
    started = _dt.datetime.now()
    t0 = time.perf_counter()
    name = _dataset_name(args.images)
    _fmnist.add_train_subset(ws, name, args.images)
    x_test, y_names = _fmnist.heldout_test_set(args.test_images, args.size, RESIZE_MODE)
    prep_s = time.perf_counter() - t0
    print(f"workspace {ws.root}; dataset {name}; held-out {len(y_names)} t10k images ({prep_s:.1f}s)", flush=True)

    spec = TrainSpec(dataset=name, backbone=BACKBONE, image_size=args.size, resize_mode=RESIZE_MODE, **RECIPE)
    t1 = time.perf_counter()
    result = train(spec, ws, hooks=ProgressHooks(
        on_epoch=lambda r: print(f"  epoch {r['epoch']}: val_acc {r['val_accuracy']:.4f} "
                                 f"val_loss {r['val_loss']:.4f} ({r['epoch_seconds']:.1f}s)", flush=True),
        on_status=lambda s: None))
    train_s = time.perf_counter() - t1
    own = result.metrics["calibration"]
    print(f"trained in {train_s:.1f}s -> {result.run_dir}; temperature {own['temperature']:.4f}", flush=True)

    t2 = time.perf_counter()
    loaded = load_model(result.run_dir)
    if loaded.temperature != own["temperature"]:
        raise SystemExit(f"load_model read temperature {loaded.temperature}, the run stored {own['temperature']}")
    lookup = {c: i for i, c in enumerate(loaded.class_names)}
    y = np.array([lookup[c] for c in y_names], dtype=np.int64)
    raw = predict_arrays(loaded, x_test, batch_size=64, calibrated=False)
    calibrated = apply_temperature(raw, loaded.temperature)
    check = predict_arrays(loaded, x_test[:64], batch_size=64)
    if not np.allclose(check, calibrated[:64], atol=1e-6):
        raise SystemExit("predict_arrays' calibrated output differs from apply_temperature of the raw output")
    heldout = evaluate_temperature(raw, y, loaded.temperature)
    heldout["accuracy_after"] = float(np.mean(calibrated.argmax(axis=1) == y))
    predict_s = time.perf_counter() - t2

    met_ece = heldout["ece_after"] < heldout["ece_before"]
    met_acc = heldout["accuracy_after"] == heldout["accuracy"]
    return {
        "benchmark": "bench_calibration",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t0,
        "seconds": {"prepare": prep_s, "train": train_s, "heldout_predict": predict_s},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "cpu_threads_env": os.environ.get("TLCORE_CPU_THREADS"),
                    "backend": keras.backend.backend(), "runtime": runtime},
        "workspace": str(ws.root),
        "dataset": {"name": name, "images": args.images, "num_train": result.metrics["num_train"],
                    "num_val": result.metrics["num_val"], "num_test": result.metrics["num_test"],
                    "heldout_images": int(len(y))},
        "spec": spec.to_dict(),
        "run_dir": str(result.run_dir),
        "best_epoch": result.metrics.get("best_epoch"),
        "best_val_accuracy": result.metrics.get("best_val_accuracy"),
        "temperature": loaded.temperature,
        "heldout": heldout,
        "run_calibration": own,
        "targets": {"ece_after_below_before_on_heldout": bool(met_ece),
                    "accuracy_unchanged_on_heldout": bool(met_acc)},
    }


def report(res: dict[str, Any]) -> None:
    h, own = res["heldout"], res["run_calibration"]
    print()
    print(f"temperature {res['temperature']:.4f} (fitted on the run's {res['dataset']['num_val']} validation images)")
    print(f"{'':28s} {'ECE before':>11s} {'ECE after':>10s} {'NLL before':>11s} {'NLL after':>10s} {'accuracy':>9s}")
    print(f"{'held-out t10k (' + str(h['num_samples']) + ')':28s} {_pct(h['ece_before']):>11s} "
          f"{_pct(h['ece_after']):>10s} {h['nll_before']:>11.4f} {h['nll_after']:>10.4f} {_pct(h['accuracy']):>9s}")
    split = own["split"]
    print(f"{'run ' + split + ' (' + str(own['num_samples']) + ', fitted here)':28s} {_pct(own['ece_before']):>11s} "
          f"{_pct(own['ece_after']):>10s} {own['nll_before']:>11.4f} {own['nll_after']:>10.4f} "
          f"{_pct(own['accuracy']):>9s}")
    t = res["targets"]
    print(f"target ECE after < before on the held-out images: {'MET' if t['ece_after_below_before_on_heldout'] else 'NOT MET'}")
    print(f"accuracy unchanged ({_pct(h['accuracy'])} -> {_pct(h['accuracy_after'])}): "
          f"{'MET' if t['accuracy_unchanged_on_heldout'] else 'NOT MET'}")
    print(f"wall {res['wall_seconds']:.1f}s (train {res['seconds']['train']:.1f}s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=DEFAULTS["images"])
    ap.add_argument("--size", type=int, default=DEFAULTS["size"])
    ap.add_argument("--test-images", type=int, default=DEFAULTS["test_images"])
    ap.add_argument("--workspace", default=None, help="reuse a workspace (default: a new temporary one)")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_calibration.json"))
    args = ap.parse_args()
    res = run(args)
    report(res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, allow_nan=False) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
