"""The scout against the truth: how well each score ranks the freeze depths that fine-tuning then gives.

Per dataset:

1. **Scout time**: ``tlcore.scout.scout`` of EfficientNet-Lite0 (and every other backbone
   whose ImageNet weights are available offline) over all depths, ``--scout-images``
   stratified training images at ``--size`` px, cold (its feature cache emptied first),
   then warm (features from the cache). Target: < 60 s cold on a 2-core CPU.
2. **Depth sweep**: each scored depth (``--depths``, default all) fine-tuned with the same
   short budget (``--epochs`` epochs at ``--lr``, the search's defaults otherwise: linear-probe
   head, BatchNorm on batch statistics), once per seed of ``--sweep-seeds`` (default 0). The
   truth of a depth is the mean over the seeds of its model's accuracy on Fashion-MNIST's 2,000
   held-out test images (the best epoch's model; 438 validation images are too few: one is 0.23
   points), or of its best validation accuracy on the other dataset. The tau between the seeds'
   own accuracies is reported too: how reproducible the truth is.
3. **Kendall's tau** of each score (and of the combined rank) against those accuracies.
   Target: the best score's tau >= 0.6 on Fashion-MNIST.

Datasets (``--dataset``):

- ``fmnist``: ``--images`` images of Fashion-MNIST's train file (``bench/_fmnist.py``, as
  ``bench_search.py`` uses), grayscale clothing.
- ``shapes``: a different kind, generated here: six classes of drawn shapes (circle, square,
  triangle, star, ring, cross), small (10-22 % of the side), in a colour close to the
  background's, at random positions and rotations, over random colour gradients with strong
  pixel noise (``--images`` in all, 96 × 96 PNG). Colour, synthetic, and far from both
  ImageNet and Fashion-MNIST; the low contrast keeps it from being solved at every depth.

With ``--search``, instead: **a scout-seeded search against an unseeded one**, side by side
(the same dataset, seed and budget, both started at once, each pinned to its own core with
``taskset`` and one TensorFlow thread, each in its own cold workspace): the project's default
``StudySpec`` with ``scout=None`` against the same with ``scout={"images": --scout-images,
"seed_trials": --seed-trials, "max_seconds": None}``. Reported per seed: each side's wall
time, best validation accuracy, and the time each needs to reach the unseeded side's final best
(its first COMPLETE trial at or above it); target: seeded <= half the unseeded time.
``--no-recipe``: both sides without the recipe trial (``recipe_trial: false``), so the unseeded
side's fine-tuning trials are all the sampler's draws and the seeded side's first ones the
scout's: what the scout is worth where no hand-made recipe seeds the search.

Usage:
    python bench/bench_scout.py [--dataset fmnist|shapes|both] [--images 3000] [--size 96]
        [--scout-images 2000] [--depths all|1,4,8,...|none] [--epochs 2] [--lr 1e-3] [--sweep-seeds 0,1]
        [--workspace DIR] [--out FILE] [--quick]
    python bench/bench_scout.py --merge A.json B.json [--out FILE]   (scores from A: with A a
        --depths none run, the scores of the current code against sweeps run before)
    python bench/bench_scout.py --search [--dataset fmnist] [--seeds 0] [--trials 12] [--epochs 3]
        [--seed-trials 3] [--no-recipe] [--out FILE]

``--quick``: 600 images, 48 px, depths 6,12,18, 1 epoch. Results: bench/results/bench_scout.json
(quick: bench_scout_quick.json). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")


def make_shapes(root: Path, images: int, size: int = 96, seed: int = 0) -> Path:
    """Write ``images`` PNGs, ``root/<shape>/<i>.png``, six classes of drawn shapes (see the module docstring)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    per = max(2, images // len(SHAPES))
    yy, xx = np.mgrid[0:size, 0:size] / size
    for shape in SHAPES:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per):
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            t = (np.cos(rng.uniform(0, np.pi)) * xx + np.sin(rng.uniform(0, np.pi)) * yy)[..., None]
            bg = (a * (1 - t) + b * t).clip(0, 255)
            img = Image.fromarray(bg.astype(np.uint8))
            d = ImageDraw.Draw(img)
            r = rng.uniform(0.10, 0.22) * size
            cx, cy = rng.uniform(r, size - r, 2)
            # low contrast: the shape's colour is the background's there, shifted by 25-60 per channel
            here = bg[int(cy), int(cx)]
            col = tuple(int(c) for c in (here + rng.choice([-1, 1], 3) * rng.uniform(25, 60, 3)).clip(0, 255))
            rot = rng.uniform(0, 2 * np.pi)

            def poly(n: int, inner: float | None = None, r=r, rot=rot, cx=cx, cy=cy) -> list[tuple[float, float]]:
                pts = []
                for j in range(n * (2 if inner else 1)):
                    rr = r if not inner or j % 2 == 0 else r * inner
                    ang = rot + j * np.pi * 2 / (n * (2 if inner else 1))
                    pts.append((cx + rr * np.cos(ang), cy + rr * np.sin(ang)))
                return pts

            if shape == "circle":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
            elif shape == "square":
                d.polygon(poly(4), fill=col)
            elif shape == "triangle":
                d.polygon(poly(3), fill=col)
            elif shape == "star":
                d.polygon(poly(5, inner=0.45), fill=col)
            elif shape == "ring":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=col, width=max(2, int(r / 3)))
            else:
                w = r / 3
                for ang in (rot, rot + np.pi / 2):
                    dx, dy = np.cos(ang), np.sin(ang)
                    d.polygon([(cx - r * dx - w * dy, cy - r * dy + w * dx), (cx + r * dx - w * dy, cy + r * dy + w * dx),
                               (cx + r * dx + w * dy, cy + r * dy - w * dx), (cx - r * dx + w * dy, cy - r * dy - w * dx)],
                              fill=col)
            noisy = np.asarray(img, dtype=np.float64) + rng.normal(0, 28, (size, size, 3))
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    return root


def prepare(ws, kind: str, images: int) -> str:
    from tlcore.datasets import add_dataset

    if kind == "fmnist":
        from _fmnist import add_train_subset

        name = f"fmnist{images}-trainonly"
        add_train_subset(ws, name, images)
        return name
    name = f"shapes{images}"
    if not ws.has_dataset(name):
        root = ws.data_dir / name
        if not root.exists():
            make_shapes(root, images)
        add_dataset(ws, name, root)
    return name


def clear_scout_features(ws) -> None:
    from tlcore.cache import ArrayCache

    cache = ArrayCache(ws.cache_dir / "features")
    for entry in cache.entries():
        parts = entry.get("parts", entry)
        if isinstance(parts, dict) and parts.get("kind") == "scout_features":
            key = entry.get("key")
            if key:
                cache._drop(key)  # noqa: SLF001 - a benchmark resetting its own cache


def _heldout(kind: str, size: int) -> tuple[np.ndarray, list[str]] | None:
    """Fashion-MNIST's 2,000 held-out images (t10k, 200 a class), or None for another dataset."""
    if kind != "fmnist":
        return None
    from _fmnist import heldout_test_set

    return heldout_test_set(2000, size)


def sweep(ws, name: str, kind: str, args: argparse.Namespace, depths: list[int], log) -> list[dict[str, Any]]:
    """Each depth fine-tuned once per seed of ``--sweep-seeds``: its best validation accuracy and,
    on Fashion-MNIST, the held-out accuracy of its best epoch's model."""
    from tlcore.config import TrainSpec
    from tlcore.predict import load_model, predict_arrays
    from tlcore.trainer import train

    held = _heldout(kind, args.size)
    out = []
    for seed in args.sweep_seeds:
        for d in depths:
            spec = TrainSpec(dataset=name, image_size=args.size, method="fine_tune", freeze_depth=d,
                             learning_rate=args.lr, epochs=args.epochs, seed=seed)
            t0 = time.perf_counter()
            res = train(spec, ws, run_dir=Path(tempfile.mkdtemp(dir=ws.root)) / f"depth{d}-seed{seed}")
            row = {"depth": d, "seed": seed, "best_val_accuracy": max(h["val_accuracy"] for h in res.history),
                   "seconds": time.perf_counter() - t0}
            if held is not None:
                loaded = load_model(res.run_dir)
                pred = np.asarray(loaded.class_names)[predict_arrays(loaded, held[0], batch_size=64).argmax(axis=1)]
                row["heldout_accuracy"] = float(np.mean(pred == np.asarray(held[1])))
            out.append(row)
            log(f"  seed {seed} depth {d:2d}: best val accuracy {row['best_val_accuracy']:.4f}"
                + (f", held-out {row['heldout_accuracy']:.4f}" if "heldout_accuracy" in row else "")
                + f" ({row['seconds']:.0f}s)")
    return out


def truth_and_taus(scores: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The truth per depth (the mean over seeds of the held-out accuracy where measured, else of the
    best validation accuracy), each score's Kendall tau against it, and how reproducible the truth is:
    tau between the seeds' own accuracies (the most any score could expect against one seed)."""
    from tlcore.scout import SCORES, kendall_tau

    metric = "heldout_accuracy" if all("heldout_accuracy" in r for r in rows) else "best_val_accuracy"
    depths = sorted({r["depth"] for r in rows})
    seeds = sorted({r.get("seed", 0) for r in rows})
    by = {(r["depth"], r.get("seed", 0)): r[metric] for r in rows}
    truth = {d: float(np.mean([by[(d, s)] for s in seeds if (d, s) in by])) for d in depths}
    score_rows = {int(r["depth"]): r for r in scores}
    taus = {}
    for score in (*SCORES, "combined_rank"):
        xs = [score_rows[d].get(score) for d in depths]
        xs = [None if x is None or (isinstance(x, float) and not math.isfinite(x)) else
              (-float(x) if score == "combined_rank" else float(x)) for x in xs]
        taus["combined" if score == "combined_rank" else score] = kendall_tau(xs, [truth[d] for d in depths])
    between = {f"{a}-{b}": kendall_tau([by.get((d, a)) for d in depths], [by.get((d, b)) for d in depths])
               for i, a in enumerate(seeds) for b in seeds[i + 1:]}
    best = max((v for v in taus.values() if v is not None), default=None)
    return {"truth_metric": metric, "seeds": seeds, "truth": {str(d): v for d, v in truth.items()},
            "kendall_tau": taus, "best_tau": best, "tau_between_seeds": between}


def run_dataset(ws, kind: str, args: argparse.Namespace, log) -> dict[str, Any]:
    from tlcore import backbones as bb
    from tlcore.scout import scout

    name = prepare(ws, kind, args.images)
    names = [b for b in bb.list_backbones() if bb.imagenet_weights_available(b)]
    log(f"{kind}: dataset {name}, backbones with offline weights: {names}")
    clear_scout_features(ws)
    cold = scout(ws, name, backbones=names, image_size=args.size, images=args.scout_images)
    warm = scout(ws, name, backbones=names, image_size=args.size, images=args.scout_images)
    log(f"  scout: cold {cold.seconds:.1f}s (features {cold.feature_seconds:.1f}s), warm {warm.seconds:.1f}s, "
        f"{cold.images} images")
    lite = cold.table[cold.table["backbone"] == "efficientnet_lite0"].sort_values("depth")
    all_depths = lite["depth"].astype(int).tolist()
    depths = all_depths if args.depths == "all" else [] if args.depths == "none" else \
        [int(x) for x in args.depths.split(",")]
    scores = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
              for r in lite.to_dict("records")]
    rows = sweep(ws, name, kind, args, depths, log)
    judged = truth_and_taus(scores, rows)
    log("  Kendall tau vs fine-tuned accuracy: " + ", ".join(
        f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in judged["kendall_tau"].items()))
    return {"dataset": name, "kind": kind, "backbones": names, "scout_images": cold.images,
            "scout_cold_seconds": cold.seconds, "scout_feature_seconds": cold.feature_seconds,
            "scout_warm_seconds": warm.seconds, "notes": cold.notes, "scores": scores, "sweep": rows, **judged}


def merge(paths: list[str], out: Path) -> None:
    """Results of runs with different ``--sweep-seeds`` (the same dataset, scores from the first) as one."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    merged = []
    for i, first in enumerate(runs[0]["datasets"]):
        rows = [r for run in runs for r in run["datasets"][i]["sweep"]]
        merged.append({**first, "sweep": rows, **truth_and_taus(first["scores"], rows),
                       "merged_from": paths})
    report = {**runs[0], "when": time.strftime("%Y-%m-%d %H:%M:%S"), "datasets": merged}
    out.write_text(json.dumps(report, indent=1, default=float))
    for r in merged:
        print(f"{r['kind']}: truth {r['truth_metric']} over seeds {r['seeds']}; tau between seeds "
              f"{ {k: None if v is None else round(v, 3) for k, v in r['tau_between_seeds'].items()} }; "
              f"scores { {k: None if v is None else round(v, 3) for k, v in r['kendall_tau'].items()} }")
    print(f"results: {out}")


# ------------------------------------------------------------------ seeded against unseeded
def search_child(args: argparse.Namespace) -> None:
    """One side of ``--search``: its own workspace, a barrier, then the timed search."""
    from tlcore.runtime import configure
    from tlcore.search import StudySpec, attrs, create_study, load_study, run_worker
    from tlcore.workspace import Workspace

    configure()
    ws = Workspace(args.workspace)
    name = prepare(ws, args.dataset, args.images)
    scout_opt = None if args.role == "unseeded" else {"images": args.scout_images, "seed_trials": args.seed_trials,
                                                      "max_seconds": None}
    study = f"{args.role}-s{args.seed}-{time.strftime('%H%M%S')}"
    spec = StudySpec(name=study, dataset=name, image_size=args.size, n_trials=args.trials, epochs=args.epochs,
                     seed=args.seed, scout=scout_opt, recipe_trial=not args.no_recipe)
    from tlcore import backbones as bb

    bb.build("efficientnet_lite0", input_shape=(args.size, args.size, 3), cache_dir=ws.cache_dir)  # weights, untimed
    sync = Path(args.sync_dir)
    (sync / f"{args.role}.ready").write_text("ready")
    while not (sync / "go").exists():
        time.sleep(0.02)
    t0 = time.time()
    create_study(ws, spec)
    run_worker(ws, study, log=lambda line: print(f"{time.time() - t0:7.1f}s {line}", flush=True))
    wall = time.time() - t0
    trials = []
    for t in load_study(ws, study).get_trials(deepcopy=False):
        done = t.datetime_complete.timestamp() - t0 if t.datetime_complete else None
        trials.append({"number": t.number, "state": t.state.name, "params": dict(t.params),
                       "value": t.value, "finished_at_s": done})
    attr = attrs.scout_record(load_study(ws, study).user_attrs)
    Path(args.result).write_text(json.dumps({"role": args.role, "wall_seconds": wall, "trials": trials,
                                             "scout": {k: v for k, v in (attr or {}).items() if k != "rows"}},
                                            default=str))


def _reach(trials: list[dict[str, Any]], threshold: float) -> float:
    times = [t["finished_at_s"] for t in trials if t["state"] == "COMPLETE" and t["value"] is not None
             and t["finished_at_s"] is not None and t["value"] >= threshold - 1e-9]
    return min(times) if times else math.inf


def run_search(args: argparse.Namespace) -> None:
    import subprocess

    seeds = [int(x) for x in (args.seeds or "0").split(",")]
    base = Path(args.workspace or tempfile.mkdtemp(prefix="bench-scout-search-"))
    pin = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset")
    report = []
    for seed in seeds:
        run = base / f"seed{seed}-{time.strftime('%H%M%S')}"
        sync = run / "sync"
        sync.mkdir(parents=True)
        procs, results = {}, {}
        for core, role in enumerate(("unseeded", "seeded")):
            results[role] = run / f"{role}.json"
            cmd = [*(["taskset", "-c", str(core)] if pin else []), sys.executable, str(Path(__file__).resolve()),
                   "--role", role, "--workspace", str(run / f"ws-{role}"), "--dataset", args.dataset,
                   "--images", str(args.images), "--size", str(args.size), "--trials", str(args.trials),
                   "--epochs", str(args.epochs), "--seed", str(seed), "--scout-images", str(args.scout_images),
                   "--seed-trials", str(args.seed_trials), "--sync-dir", str(sync), "--result", str(results[role]),
                   *(["--no-recipe"] if args.no_recipe else [])]
            log = open(run / f"{role}.log", "w")
            procs[role] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           env={**os.environ, "TLCORE_CPU_THREADS": "1"})
        while not all((sync / f"{r}.ready").exists() for r in procs):
            if any(p.poll() is not None for p in procs.values()):
                raise SystemExit(f"a child failed before the start; logs in {run}")
            time.sleep(0.05)
        (sync / "go").write_text("go")
        for p in procs.values():
            p.wait()
        res = {r: json.loads(results[r].read_text()) for r in procs}
        best = max(t["value"] for t in res["unseeded"]["trials"] if t["state"] == "COMPLETE" and t["value"] is not None)
        t_un, t_se = _reach(res["unseeded"]["trials"], best), _reach(res["seeded"]["trials"], best)
        row = {"seed": seed, "unseeded_best": best, "unseeded_wall_s": res["unseeded"]["wall_seconds"],
               "seeded_wall_s": res["seeded"]["wall_seconds"],
               "seeded_best": max((t["value"] for t in res["seeded"]["trials"]
                                   if t["state"] == "COMPLETE" and t["value"] is not None), default=None),
               "unseeded_time_to_best_s": t_un, "seeded_time_to_unseeded_best_s": t_se,
               "ratio": t_se / t_un if math.isfinite(t_se) else math.inf, "scout": res["seeded"]["scout"],
               "logs": str(run), "pinned": bool(pin)}
        print(json.dumps(row, default=str), flush=True)
        report.append(row)
    ratios = sorted(r["ratio"] for r in report)
    median = ratios[len(ratios) // 2]
    out = Path(args.out or HERE / "results" / "bench_scout_search.json")
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "config": vars(args), "seeds": report,
                               "median_ratio": median}, indent=1, default=str))
    print(f"seeded time to the unseeded best / unseeded time: median {median:.3f} "
          f"({'MET' if median <= 0.5 else 'NOT MET'} <= 0.5); results: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=("fmnist", "shapes", "both"), default="both")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--scout-images", dest="scout_images", type=int, default=2000)
    ap.add_argument("--depths", default=None, help="'all', comma-separated depths, or 'none' (the scout only: "
                    "its time and scores, to --merge with sweeps run before)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sweep-seeds", dest="sweep_seeds", default="0",
                    help="comma-separated fine-tuning seeds of the depth sweep; the truth is their mean")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="combine runs made with different --sweep-seeds")
    ap.add_argument("--workspace", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--search", action="store_true", help="a scout-seeded search against an unseeded one")
    ap.add_argument("--seeds", default=None, help="--search: comma-separated seeds (default 0)")
    ap.add_argument("--trials", type=int, default=12, help="--search: trials per search")
    ap.add_argument("--seed-trials", dest="seed_trials", type=int, default=3, help="--search: seeded trials")
    ap.add_argument("--no-recipe", dest="no_recipe", action="store_true",
                    help="--search: both searches without the recipe trial (the sampler's draws against the scout's)")
    ap.add_argument("--role", choices=("driver", "seeded", "unseeded"), default="driver", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--sync-dir", dest="sync_dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    q = args.quick
    args.images = args.images or (600 if q else 3000)
    args.size = args.size or (48 if q else 96)
    args.depths = args.depths or ("6,12,18" if q else "all")
    args.epochs = args.epochs or (1 if q else 2)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args.sweep_seeds = [int(x) for x in str(args.sweep_seeds).split(",")]
    if args.merge:
        return merge(args.merge, Path(args.out or HERE / "results" / "bench_scout.json"))
    if args.search or args.role != "driver":
        if args.dataset == "both":
            args.dataset = "fmnist"
        if not args.quick and args.epochs == 2 and "--epochs" not in sys.argv:
            args.epochs = 3  # the search's default epochs per trial
        return search_child(args) if args.role != "driver" else run_search(args)
    from tlcore.workspace import Workspace

    tmp = None
    if args.workspace is None:
        tmp = tempfile.mkdtemp(prefix="bench-scout-")
    ws = Workspace(args.workspace or tmp)
    t0 = time.perf_counter()

    def log(line: str) -> None:
        print(f"{time.perf_counter() - t0:7.1f}s {line}", flush=True)

    kinds = ("fmnist", "shapes") if args.dataset == "both" else (args.dataset,)
    results = [run_dataset(ws, k, args, log) for k in kinds]
    out = Path(args.out or HERE / "results" / ("bench_scout_quick.json" if q else "bench_scout.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": {"cpus": os.cpu_count(),
              "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
              "python": platform.python_version()},
              "config": {k: getattr(args, k) for k in ("images", "size", "scout_images", "depths", "epochs", "lr",
                                                       "sweep_seeds")},
              "targets": {"scout_cold_seconds": "< 60", "best_tau_fmnist": ">= 0.6"}, "datasets": results}
    out.write_text(json.dumps(report, indent=1, default=float))
    for r in results:
        ok_time = r["scout_cold_seconds"] < 60
        ok_tau = r["best_tau"] is not None and r["best_tau"] >= 0.6
        print(f"{r['kind']}: scout {r['scout_cold_seconds']:.1f}s cold ({'MET' if ok_time else 'NOT MET'} < 60 s); "
              f"best tau {r['best_tau'] if r['best_tau'] is None else round(r['best_tau'], 3)} "
              f"({'MET' if ok_tau else 'NOT MET'} >= 0.6{'' if r['kind'] == 'fmnist' else ', reported only'})")
    print(f"results: {out}")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
