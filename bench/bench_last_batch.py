"""What a short last batch costs where the training step is compiled (JAX; XLA on a GPU).

A training split that the batch size does not divide ends each epoch on a short batch: a
second input shape, which XLA compiles a second time. ``tlcore.trainer._Batches`` with
``full_batches=True`` (what the trainer uses wherever the step is compiled) fills that batch
up with the first rows of the epoch's order instead.

Trains EfficientNet-Lite0 (random weights, 10 classes, whole backbone) on ``--rows`` random
images of ``--size`` px in batches of ``--batch`` for two epochs through the trainer's feed,
and prints each epoch's time: the first holds the compilations.

Usage (both at once, one core each, a few seeds):
    KERAS_BACKEND=jax taskset -c 0 python bench/bench_last_batch.py --mode short --seed 0 &
    KERAS_BACKEND=jax taskset -c 1 python bench/bench_last_batch.py --mode filled --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["short", "filled"], required=True,
                    help="short: Keras' default last batch; filled: the trainer's full_batches")
    ap.add_argument("--rows", type=int, default=264)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import keras
    import numpy as np

    from tlcore.model import Classifier
    from tlcore.trainer import _Batches

    keras.utils.set_random_seed(args.seed)
    clf = Classifier.build("efficientnet_lite0", num_classes=10, image_size=args.size, weights=None)
    clf.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"],
                      jit_compile="auto")
    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 256, (args.rows, args.size, args.size, 3)).astype(np.uint8)
    y = rng.integers(0, 10, args.rows)
    feed = _Batches([x], y, 10, args.batch, args.seed, full_batches=args.mode == "filled")
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(round(time.perf_counter() - self.t0, 2))

    clf.model.fit(feed, epochs=2, verbose=0, callbacks=[Timer()])
    print(json.dumps({"mode": args.mode, "backend": keras.backend.backend(), "rows": args.rows, "size": args.size,
                      "batch": args.batch, "seed": args.seed, "last_batch_rows": len(feed[len(feed) - 1][0]),
                      "epoch_seconds": times}), flush=True)


if __name__ == "__main__":
    main()
