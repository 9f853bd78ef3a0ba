"""Benchmark a study's dataset fingerprint (``tlcore.search.fingerprint``): what ``search create``
computes once and every worker computes before it starts (``study.check_dataset_here``).

Two timings, each the median of R calls:

- ``fingerprint_of`` on a synthetic split index of N images (C classes, 70/15/15 splits, a sha1
  per image, as the scan stores them): the hashing alone;
- ``dataset_fingerprint`` on the demo dataset (500 images) in a scratch workspace: the whole call,
  which reads the index and overrides and splits it (``dataset_splits``) first.

Usage::

    python bench/bench_fingerprint.py                    # 60,000 images, 10 classes, 7 calls
    python bench/bench_fingerprint.py --images 200000 --classes 100
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=60_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    import pandas as pd

    from tlcore.datasets import ensure_demo
    from tlcore.search.fingerprint import dataset_fingerprint, fingerprint_of
    from tlcore.workspace import Workspace

    n = args.images
    labels = [f"class{i % args.classes}" for i in range(n)]
    splits = ["train" if i % 20 < 14 else "val" if i % 20 < 17 else "test" for i in range(n)]
    index = pd.DataFrame({"relpath": [f"{lab}/{i:07d}.png" for i, lab in enumerate(labels)], "label": labels,
                          "split": splits, "sha1": [hashlib.sha1(str(i).encode()).hexdigest() for i in range(n)]})
    synthetic = _median_s(lambda: fingerprint_of(index), args.repeats)
    size = len(str(fingerprint_of(index)))

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws")
        ensure_demo(ws)
        dataset_fingerprint(ws, "demo")  # warm: imports, the first parquet read
        demo = _median_s(lambda: dataset_fingerprint(ws, "demo"), args.repeats)

    print(f"fingerprint_of, {n:,} images in {args.classes} classes: median {synthetic * 1000:.1f} ms "
          f"of {args.repeats}; the record is {size:,} characters")
    print(f"dataset_fingerprint, the demo (500 images): median {demo * 1000:.1f} ms of {args.repeats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
