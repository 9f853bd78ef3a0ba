"""Inference over many images on JAX: Keras' plain call (op by op) against ``runtime.forward_batches``.

What the trainer pays for the linear probe's features, the test split's evaluation, the
calibration's validation pass and the scout's forward pass when Keras runs on JAX. The
plain call ``model(x, training=False)`` dispatches each operation on its own; on an H200
the probe's step (the features of 5,000 images at 96 px that way, then its fit) took 227 s and
the test split's 1,000 images 30-57 s (``bench/gpu_check.py``, 2026-12-04). ``--mode
compiled`` is ``tlcore.runtime.forward_batches``: one jitted program for the whole forward
pass, the short last batch padded to its shape.

Runs EfficientNet-Lite0 with its classifier head (random weights: the time does not depend
on them) over ``--images`` random images of ``--size`` px, ``--batch`` at a time, twice:
the first pass holds the compilation (or, eagerly, each operation's first dispatch), the
second is the steady state. Prints one JSON line.

Usage (both at once, one core each, a few seeds):
    KERAS_BACKEND=jax taskset -c 0 python bench/bench_forward.py --mode eager --seed 0 &
    KERAS_BACKEND=jax taskset -c 1 python bench/bench_forward.py --mode compiled --seed 0
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
    ap.add_argument("--mode", choices=["eager", "compiled"], required=True)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import keras
    import numpy as np

    from tlcore.model import Classifier
    from tlcore.runtime import forward_batches

    keras.utils.set_random_seed(args.seed)
    clf = Classifier.build("efficientnet_lite0", num_classes=10, image_size=args.size, weights=None)
    x = np.random.default_rng(args.seed).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)

    def eager() -> np.ndarray:
        return np.concatenate([np.asarray(clf.model(np.asarray(x[i:i + args.batch], np.float32), training=False))
                               for i in range(0, len(x), args.batch)])

    def compiled() -> np.ndarray:
        return forward_batches(clf.model, x, args.batch)

    run = eager if args.mode == "eager" else compiled
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    assert out.shape == (args.images, 10)
    print(json.dumps({"mode": args.mode, "backend": keras.backend.backend(), "images": args.images,
                      "size": args.size, "batch": args.batch, "seed": args.seed,
                      "first_pass_s": round(times[0], 2), "second_pass_s": round(times[1], 2),
                      "images_per_s_steady": round(args.images / times[1], 1)}), flush=True)


if __name__ == "__main__":
    main()
