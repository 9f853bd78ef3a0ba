"""Why fine-tuning trials collapse: BatchNorm mode x head initialisation, at one large learning rate.

Trains EfficientNet-Lite0 (ImageNet weights) with ``method=fine_tune`` from one
freeze depth at one learning rate on a Fashion-MNIST subset, once per variant:

- ``batchnorm``: "frozen" (unfrozen blocks' BatchNorm pinned to its moving
  statistics, the old behaviour) or "train" (batch statistics while training);
- ``head_init``: "random" or "linear_probe".

The divergence guard is off, so a collapsed run shows its whole curve. It prints
one JSON line per variant: each epoch's validation accuracy and training loss,
the probe's validation accuracy, the test accuracy and the time.

Usage:
    python bench/bench_collapse.py [--images 1000] [--size 96] [--depth 7] [--lr 5e-3] [--epochs 2]
        [--variants frozen:random,frozen:linear_probe,train:random,train:linear_probe] [--workspace DIR]

Compare two variants side by side, each on its own core:
    taskset -c 0 python bench/bench_collapse.py --variants frozen:linear_probe --workspace W &
    taskset -c 1 python bench/bench_collapse.py --variants train:linear_probe --workspace W
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_search import prepare_dataset  # noqa: E402
from tlcore.config import TrainSpec  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--depth", type=int, default=7)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="frozen:random,frozen:linear_probe,train:random,train:linear_probe")
    ap.add_argument("--workspace", default=None)
    ap.add_argument("--out", default=None, help="append one JSON line per variant to this file")
    args = ap.parse_args()

    from tlcore.trainer import train

    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-collapse-"))
    name = prepare_dataset(ws, args.images)
    for variant in args.variants.split(","):
        bn, head = variant.split(":")
        spec = TrainSpec(dataset=name, image_size=args.size, method="fine_tune", freeze_depth=args.depth,
                         learning_rate=args.lr, epochs=args.epochs, batchnorm=bn, head_init=head,
                         divergence_guard=False, seed=args.seed)
        t0 = time.perf_counter()
        res = train(spec, ws, run_dir=Path(tempfile.mkdtemp(prefix="collapse-", dir=ws.cache_dir)) / "run")
        curve = [round(h["val_accuracy"], 4) for h in res.history]
        probe = res.metrics.get("linear_probe") or {}
        row = {"batchnorm": bn, "head_init": head, "depth": args.depth, "lr": args.lr, "seed": args.seed,
               "images": args.images, "size": args.size, "probe_val_accuracy": probe.get("val_accuracy"),
               "val_accuracy_per_epoch": curve, "train_loss_per_epoch": [round(h["train_loss"], 4) for h in res.history],
               "test_accuracy": res.metrics.get("test_accuracy"), "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
