"""EfficientNet-Lite0 on the full Fashion-MNIST test set, trained on this machine's CPU.

Imports Fashion-MNIST (Debian's dataset-fashion-mnist) as a pre-split dataset:
60,000 training images (15 % of them carved out for validation by the stable
hash split) and the 10,000 test images. Then trains one run and reports the
accuracy on all 10,000 test images.

Time is reported in parts: import and scan (done once per workspace), then the
training run itself: decoding the images, caching the frozen prefix's features,
the epochs, and the test evaluation. The target is the training run's wall time.

Usage:
    python bench/fashion_mnist_accuracy.py [--workspace DIR] [--method two_phase]
        [--depth 14] [--epochs 8] [--head-epochs 3] [--size 64] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tlcore.config import TrainSpec  # noqa: E402
from tlcore.datasets import add_fashion_mnist  # noqa: E402
from tlcore.trainer import ProgressHooks, train  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default="/tmp/tlcore-fmnist-ws")
    ap.add_argument("--method", default="two_phase")
    ap.add_argument("--depth", type=int, default=14)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--head-epochs", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--factor", type=float, default=0.3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--augment", default=None)
    ap.add_argument("--aug-copies", type=int, default=2)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"))
    args = ap.parse_args()

    ws = Workspace(args.workspace)
    t0 = time.perf_counter()
    if not ws.has_dataset("fashion-mnist"):
        add_fashion_mnist(ws, "fashion-mnist")
    t_import = time.perf_counter() - t0

    spec = TrainSpec(
        dataset="fashion-mnist", image_size=args.size, method=args.method,
        freeze_depth=None if args.method == "feature_extraction" else args.depth,
        epochs=args.epochs, head_epochs=args.head_epochs if args.method == "two_phase" else None,
        learning_rate=args.lr, fine_tune_factor=args.factor, batch_size=args.batch_size,
        label_smoothing=args.label_smoothing, lr_schedule=args.lr_schedule, augment=args.augment, aug_copies=args.aug_copies, seed=0,
    )
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()

    def status(text: str) -> None:
        if not text.startswith("Caching") or text.endswith("copy 1/1)") or ":" not in text:
            marks.append((text, time.perf_counter() - start))
            print(f"[{time.perf_counter() - start:7.1f}s] {text}", flush=True)

    def epoch(rec: dict) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] epoch {rec['epoch']} {rec['phase']} depth {rec['freeze_depth']}: "
              f"loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f} val_loss {rec['val_loss']:.4f} "
              f"val_acc {rec['val_accuracy']:.4f} ({rec['epoch_seconds']:.1f}s)", flush=True)

    result = train(spec, ws, hooks=ProgressHooks(on_epoch=epoch, on_status=status))
    wall = time.perf_counter() - start
    m = result.metrics
    summary = {
        "spec": spec.to_dict(),
        "import_and_scan_seconds": round(t_import, 1),
        "training_run_wall_seconds": round(wall, 1),
        "epoch_seconds_total": round(m["train_seconds"], 1),
        "num_train": m["num_train"], "num_val": m["num_val"], "num_test": m["num_test"],
        "best_epoch": m["best_epoch"], "best_val_accuracy": round(m["best_val_accuracy"], 4),
        "test_accuracy": round(m["test_accuracy"], 4),
        "run_dir": str(result.run_dir),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
