"""Epoch time by freeze depth, with and without the caches.

For each dataset (the demo, and a 5,000-image Fashion-MNIST subset at 96 px) and
each freeze depth (0 = everything trains, the middle block, N = feature
extraction), it trains EfficientNet-Lite0 (ImageNet weights) for a few epochs
twice: once through the whole network ("no cache": every epoch runs the frozen
blocks) and once on the frozen prefix's cached output ("cache": warm, i.e. the
features exist before the epoch starts). The figure is the median time of the
epochs after the first (the first includes graph tracing).

Usage:
    python bench/bench_train.py [--datasets demo,fmnist5k] [--epochs 3] [--size 96] [--depths 0,middle,all]
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tlcore.config import TrainSpec  # noqa: E402
from tlcore.datasets import add_fashion_mnist, ensure_demo  # noqa: E402
from tlcore.trainer import train  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402


def prepare(ws: Workspace, name: str) -> str:
    if name == "demo":
        ensure_demo(ws)
        return "demo"
    if name == "fmnist5k":
        if not ws.has_dataset("fmnist5k"):
            # 500 per class from train (val carved out of it) and 100 per class of test: 6,000 files,
            # of which 5,000 train+val images.
            add_fashion_mnist(ws, "fmnist5k", per_class={"train": 500, "test": 100})
        return "fmnist5k"
    raise SystemExit(f"unknown dataset {name!r}")


DEPTHS = [("0", "0 (all trainable)", "fine_tune", 0), ("middle", "9 (middle)", "fine_tune", 9),
          ("all", "18 (feature extraction)", "feature_extraction", None)]


def epoch_time(history: list[dict]) -> float:
    later = [h["epoch_seconds"] for h in history[1:]] or [history[0]["epoch_seconds"]]
    return statistics.median(later)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="demo,fmnist5k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--depths", default="0,middle,all",
                    help="comma-separated subset of 0, middle, all (default: all three)")
    ap.add_argument("--workspace", default=None, help="reuse a workspace (default: a new temporary one)")
    args = ap.parse_args()
    wanted = set(args.depths.split(","))
    if not wanted <= {key for key, *_ in DEPTHS}:
        ap.error(f"--depths takes a subset of 0,middle,all, not {args.depths!r}")
    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-"))
    import keras

    print(f"backend={keras.backend.backend()} cpus={os.cpu_count()} size={args.size} epochs={args.epochs}")
    rows = []
    for ds_name in args.datasets.split(","):
        ds = prepare(ws, ds_name)
        for key, depth_label, method, depth in DEPTHS:
            if key not in wanted:
                continue
            times = {}
            for cache in (False, True):
                if depth == 0 and cache:
                    times[cache] = None  # nothing frozen: nothing to cache
                    continue
                spec = TrainSpec(dataset=ds, image_size=args.size, method=method, freeze_depth=depth,
                                 epochs=args.epochs, feature_cache=cache, batch_size=32, seed=0)
                t0 = time.perf_counter()
                r = train(spec, ws)
                times[cache] = epoch_time(r.history)
                n = r.metrics["num_train"]
                print(f"  {ds} depth={depth_label} cache={cache}: epoch {times[cache]:.2f}s "
                      f"(run {time.perf_counter() - t0:.1f}s, val_acc {r.metrics['best_val_accuracy']:.3f})",
                      flush=True)
            speedup = times[False] / times[True] if times.get(True) else None
            rows.append((ds, n, depth_label, times[False], times.get(True), speedup))
    print()
    print("| dataset | train images | freeze depth | epoch, no cache (s) | epoch, cache warm (s) | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for ds, n, d, t_no, t_c, sp in rows:
        print(f"| {ds} | {n} | {d} | {t_no:.2f} | {'-' if t_c is None else f'{t_c:.3f}'} | "
              f"{'-' if sp is None else f'{sp:.1f}x'} |")


if __name__ == "__main__":
    main()
