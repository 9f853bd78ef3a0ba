"""Anytime results: how long after Start the default search has a usable model, on the demo data.

Creates the default study (``StudySpec(name, dataset="demo", n_trials=1)``: everything else
default, so its first trial is feature extraction from the linear probe) in a fresh workspace
and runs one worker in this process, as the Search page's Start does in a subprocess. Prints the
time from the worker's start to the first complete trial, and the time spent before it (imports,
demo registration, study creation), which a launched worker pays once too.

Target (issue "The search earns its keep"): a usable model within 60 s of Start on a 2-core laptop.

Usage:
    python bench/bench_first_model.py [--workspace DIR] [--image-size 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tlcore.datasets import ensure_demo  # noqa: E402
from tlcore.search import StudySpec, create_study, load_study, run_worker  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=None, help="default: a new temporary folder (cold caches)")
    ap.add_argument("--image-size", type=int, default=StudySpec.image_size)
    args = ap.parse_args()
    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-first-"))
    ensure_demo(ws)
    name = f"first-model-{int(time.time())}"
    create_study(ws, StudySpec(name=name, dataset="demo", image_size=args.image_size, n_trials=1))
    before = time.perf_counter() - T0
    t1 = time.perf_counter()
    run_worker(ws, name, log=lambda s: print(f"{time.perf_counter() - t1:6.1f}s  {s}", flush=True))
    after = time.perf_counter() - t1
    (trial,) = load_study(ws, name).get_trials()
    print(f"\nfirst trial: {trial.state.name}, val accuracy {trial.value:.4f}, params {trial.params}")
    print(f"usable model {after:.1f}s after the worker started ({before:.1f}s of imports and set-up before it); "
          f"target <= 60 s: {'MET' if after + before <= 60 else 'NOT MET'} ({after + before:.1f}s in all)")


if __name__ == "__main__":
    main()
