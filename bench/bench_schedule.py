"""Does a trial generalise better with a decaying learning rate? One trial, several training variants.

Trains fine-tuning trials the way the default search trains a promoted one (the
linear-probe head, batch-statistics BatchNorm, one epoch on each of the 11 % and
33 % nested subsets, then ``--epochs`` on all the data; the best epoch kept) on
the search benchmark's data (3,000 Fashion-MNIST training images at 96 px, the
project's split), once per variant, and scores each on the benchmark's 2,000
held-out test images (``bench_search.py``'s), which no training or selection sees.

Variants (``+``-joined): ``constant`` (the learning rate held), ``cosine`` (decayed
to 0 along a half cosine over the trial), ``ls`` (label smoothing 0.1).

Usage (two variant sets at once, one core each):
    taskset -c 0 python bench/bench_schedule.py --configs 7:1e-3,10:1.3e-3 --variants constant &
    taskset -c 1 python bench/bench_schedule.py --configs 7:1e-3,10:1.3e-3 --variants cosine
Prints one JSON line per (config, variant): validation accuracy per epoch, the
best, the held-out accuracy and the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_search import dataset_name, heldout_accuracy, load_heldout, prepare_workspace  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="7:1e-3,10:1.3e-3", help="freeze_depth:learning_rate, comma-separated")
    ap.add_argument("--variants", default="constant,cosine", help="comma-separated; each a +-joined set")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--test-images", dest="test_images", type=int, default=2000)
    ap.add_argument("--workspace", default=None, help="a workspace (bench_search.py's can be reused)")
    args = ap.parse_args()

    import numpy as np

    from tlcore.predict import load_model
    from tlcore.search.spec import StudySpec
    from tlcore.trainer import train

    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-schedule-"))
    args.dataset = dataset_name(args.images)
    prep = prepare_workspace(args, ws)
    x_test, y_test = load_heldout(Path(prep["heldout"]))
    for config in args.configs.split(","):
        depth, lr = config.split(":")
        for variant in args.variants.split(","):
            parts = set(variant.split("+"))
            unknown = parts - {"constant", "cosine", "ls"}
            if unknown:
                raise SystemExit(f"unknown variant part(s) {sorted(unknown)}: use constant, cosine, ls")
            spec = StudySpec(name="bench-schedule", dataset=args.dataset, image_size=args.size, epochs=args.epochs,
                             n_trials=12, seed=args.seed, lr_schedule="cosine" if "cosine" in parts else "constant",
                             label_smoothing=0.1 if "ls" in parts else 0.0)
            tspec = spec.train_spec({"freeze_depth": int(depth), "learning_rate": float(lr)})
            t0 = time.perf_counter()
            res = train(tspec, ws, run_dir=Path(tempfile.mkdtemp(prefix="run-", dir=ws.cache_dir)) / "run")
            loaded = load_model(res.run_dir)
            probs = np.concatenate([np.asarray(loaded.model(x_test[i : i + 128].astype(np.float32), training=False))
                                    for i in range(0, len(x_test), 128)])
            print(json.dumps({
                "freeze_depth": int(depth), "learning_rate": float(lr), "variant": variant,
                "subset_rungs": tspec.subset_rungs, "epochs": tspec.epochs,
                "val_accuracy_per_epoch": [round(h["val_accuracy"], 4) for h in res.history],
                "best_val_accuracy": res.metrics["best_val_accuracy"],
                "heldout_accuracy": heldout_accuracy(probs, loaded.class_names, y_test),
                "seconds": round(time.perf_counter() - t0, 1), "cpu_affinity": sorted(os.sched_getaffinity(0)),
            }), flush=True)


if __name__ == "__main__":
    main()
