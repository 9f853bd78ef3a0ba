"""A scout variant tried and not shipped: stacked LogME on the features a trial *starts* from.

A trial frozen at depth d runs BatchNorm in the blocks after d on batch statistics
(``Classifier.set_freeze_depth(batchnorm="train")``), so the pooled features of boundaries
d+1 … N it first trains on are not the inference-mode ones the scout scores. This scores, for
each depth d, the stacked LogME (``tlcore.scout.logme_stack``) of boundaries d … N from a pass
with BatchNorm in blocks ≥ d on the statistics of shuffled batches of 32 (the trainer's batch
size), the moving statistics never updated (momentum 1), dropout off; then Kendall's tau
against the five-seed held-out truth of ``bench_scout.py`` (``--truth``).

It costs one forward pass and one stack per depth (about 10 minutes on one core, against the
shipped scout's one pass), so it could only have shipped with a tau well above the shipped
score's. Same data as ``bench_scout.py --dataset fmnist``: the 3,000-image subset at 96 px and
the scout's 2,005 stratified training images.

Usage:
    python bench/bench_scout_batchstats.py [--truth bench/results/bench_scout_fmnist_heldout5.json]
        [--workspace DIR] [--out bench/results/bench_scout_batchstats.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth", default=str(HERE / "results" / "bench_scout_fmnist_heldout5.json"))
    ap.add_argument("--workspace", default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_scout_batchstats.json"))
    args = ap.parse_args()

    from tlcore.runtime import configure, set_seed

    configure()
    import keras

    from bench_scout import prepare
    from tlcore import backbones as bb
    from tlcore.cache import ArrayCache
    from tlcore.config import TrainSpec
    from tlcore.scout import _pooled_outputs, _sample_positions, kendall_tau, logme_stack
    from tlcore.trainer import prepare_data
    from tlcore.workspace import Workspace

    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="bench-scout-bn-"))
    name = prepare(ws, "fmnist", 3000)
    spec = TrainSpec(dataset=name, image_size=96, resize_mode="pad", weights="imagenet", seed=0)
    set_seed(0)
    data = prepare_data(ws, spec, cache=ArrayCache(ws.cache_dir / "images"))
    pos = _sample_positions(data, 2000)  # the scout's own images
    x, y = data.x["train"][pos], data.y["train"][pos]

    info = bb.get("efficientnet_lite0")
    base = bb.build("efficientnet_lite0", input_shape=(96, 96, 3), include_top=False, weights="imagenet",
                    cache_dir=ws.cache_dir, pooling=None)
    model = keras.Model(base.inputs[0], _pooled_outputs(base, info))
    for layer in base.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 1.0  # batch statistics in the pass; the moving ones (the frozen prefix's) never change
    blocks_layers = bb.block_layers(base, info)
    order = np.random.default_rng(0).permutation(len(y))
    restore = np.argsort(order)
    scores: dict[int, float | None] = {}
    t0 = time.perf_counter()
    for d in range(1, info.num_blocks + 1):
        for i, layers in enumerate(blocks_layers):
            for layer in layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = i >= d  # Keras 3: batch statistics only where trainable and training=True
        parts = [[np.asarray(o, dtype=np.float64) for o in model(x[order[s:s + args.batch]], training=True)]
                 for s in range(0, len(y), args.batch)]
        blocks = [np.concatenate([p[k] for p in parts])[restore] for k in range(d - 1, info.num_blocks)]
        scores[d] = logme_stack(blocks, y)[0]
        print(f"depth {d}: {scores[d]:.5f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    truth_run = json.loads(Path(args.truth).read_text())["datasets"][0]
    truth = {int(k): v for k, v in truth_run["truth"].items()}
    shipped = {int(r["depth"]): r["logme_stack"] for r in truth_run["scores"]}
    depths = sorted(truth)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.perf_counter() - t0, 1),
        "images": int(len(y)), "batch": args.batch, "truth": os.path.relpath(args.truth, HERE.parent),
        "truth_seeds": truth_run.get("seeds"),
        "scores": {str(d): scores[d] for d in depths},
        "kendall_tau": kendall_tau([scores[d] for d in depths], [truth[d] for d in depths]),
        "kendall_tau_shipped": kendall_tau([shipped[d] for d in depths], [truth[d] for d in depths]),
    }
    print(json.dumps({k: result[k] for k in ("seconds", "kendall_tau", "kendall_tau_shipped")}))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
