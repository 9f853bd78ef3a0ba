"""GPU check on the JAX backend: training throughput (float32 vs mixed_float16) and Fashion-MNIST accuracy.

Meant for a CUDA machine with JAX (jax[cuda]) and NO TensorFlow. The Keras
backend defaults to JAX here, and TensorFlow imports are blocked (as if it were
not installed) unless --allow-tensorflow is given, so the check also proves that
the training path does not need TensorFlow.

1. Imports Fashion-MNIST (Debian's /usr/share/datasets/fashion-mnist, or --idx-dir)
   into --workspace: the full set, and the 5,000-image "fmnist5k" subset of
   bench/bench_train.py for the throughput runs.
2. Throughput: EfficientNet-Lite0 (ImageNet weights), method fine_tune at --depth
   (default 0: the whole backbone trains), no feature cache, --tp-epochs epochs on
   the subset, twice: policy float32 and mixed_float16. Training images/s comes
   from the on_batch hook's timestamps over the full batches of every epoch after
   the first (so tracing/compilation is excluded); an epoch-time figure (which also
   holds the validation pass) is given alongside.
3. Accuracy: one full run (two_phase, 96 px, depth 8, 10 epochs, batch 128,
   mixed precision) on the 60,000 training images (validation carved from them)
   and the test accuracy on the 10,000 test images; target >= 0.93.
4. Prints a JSON summary.

The mixed precision policy is forced per run: tlcore.trainer.train() calls
runtime.configure() without arguments, which sets the global policy itself
(mixed_float16 whenever a GPU is seen, float32 otherwise), so this script wraps
the trainer's configure() for the duration of each run.

--quick: a tiny subset (300 train+val images, 32 px, 2 epochs per run) that checks the
script end to end on a CPU in a few minutes. Its figures are NOT the benchmark.

On a GPU machine without TensorFlow, Keras or a network: ``bench/gpu_prepare.sh`` (run here)
gets the wheels it lacks and the IDX files, and prints the commands to run there.

Measured on an H200 (2026-12-04, BENCHMARKS.md "GPU"): the run was cut at its time limit
before the mixed precision and accuracy parts; most of its time went to inference run op by
op on JAX, since compiled (``tlcore.runtime.forward_batches``).

Usage:
    python bench/gpu_check.py [--workspace DIR] [--idx-dir DIR] [--size 96] [--depth 0]
        [--skip-throughput] [--skip-accuracy] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

TARGET_ACCURACY = 0.93
QUICK_NOTE = ("QUICK MODE: a tiny subset at a tiny image size, usually on a CPU. These figures only show that the "
              "script runs end to end; they are NOT the GPU benchmark.")


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Make ``import tensorflow`` fail as it does where TensorFlow is not installed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "tensorflow" or fullname.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by bench/gpu_check.py; "
                                      "pass --allow-tensorflow to allow it)", name=fullname)
        return None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default="/tmp/tlcore-gpu-ws")
    ap.add_argument("--idx-dir", default=None,
                    help="folder with the four Fashion-MNIST IDX files (default: Debian's /usr/share/datasets/fashion-mnist)")
    ap.add_argument("--quick", action="store_true", help="tiny CPU smoke run; figures are not the benchmark")
    ap.add_argument("--allow-cpu", action="store_true", help="run the full check even where JAX sees no GPU")
    ap.add_argument("--allow-tensorflow", action="store_true", help="do not block TensorFlow imports")
    ap.add_argument("--xla-on-cpu", action=argparse.BooleanOptionalAction, default=None,
                    help="compile the train step with XLA where no GPU is seen, as the GPU run does "
                    "(default: on with --quick, off otherwise; the trainer alone runs JAX eagerly on a CPU)")
    ap.add_argument("--json-out", default=None,
                    help="also write the summary to this file, rewritten after each stage (a run cut short keeps "
                    "what it measured)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    g = ap.add_argument_group("throughput (fine_tune, no feature cache, float32 vs mixed_float16)")
    g.add_argument("--size", type=int, default=None, help="image size (default 96; quick: 32)")
    g.add_argument("--depth", type=int, default=0, help="frozen blocks (default 0: everything trains)")
    g.add_argument("--tp-batch-size", type=int, default=None, help="default 128; quick: 32")
    g.add_argument("--tp-epochs", type=int, default=None, help="default 3 (the first is not timed); quick: 2")
    g = ap.add_argument_group("accuracy (full Fashion-MNIST, mixed_float16)")
    g.add_argument("--acc-method", default="two_phase")
    g.add_argument("--acc-size", type=int, default=None, help="default 96; quick: 32")
    g.add_argument("--acc-depth", type=int, default=8)
    g.add_argument("--acc-epochs", type=int, default=None, help="default 10; quick: 2")
    g.add_argument("--acc-head-epochs", type=int, default=None, help="default 3; quick: 1")
    g.add_argument("--acc-batch-size", type=int, default=None, help="default 128; quick: 32")
    g.add_argument("--acc-lr", type=float, default=1e-3)
    g.add_argument("--acc-factor", type=float, default=0.3)
    g.add_argument("--acc-label-smoothing", type=float, default=0.1)
    g.add_argument("--acc-no-feature-cache", action="store_true", help="train the accuracy run without the feature cache")
    args = ap.parse_args()
    q = args.quick
    if args.xla_on_cpu is None:
        args.xla_on_cpu = q
    for name, full, quick in [("size", 96, 32), ("tp_batch_size", 128, 32), ("tp_epochs", 3, 2),
                              ("acc_size", 96, 32), ("acc_epochs", 10, 2), ("acc_head_epochs", 3, 1),
                              ("acc_batch_size", 128, 32)]:
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    return args


def device_info() -> dict:
    import keras

    from tlcore.runtime import has_gpu

    info: dict = {"keras_backend": keras.backend.backend(), "keras_version": keras.__version__, "gpu": has_gpu()}
    try:
        import jax

        info["jax_version"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
        info["jax_device_kinds"] = sorted({getattr(d, "device_kind", d.platform) for d in jax.devices()})
    except Exception as exc:  # not the JAX backend, or a broken install
        info["jax_devices"] = f"unavailable: {exc}"
    return info


@contextlib.contextmanager
def forced_policy(policy: str, *, xla_on_cpu: bool = False):
    """Run train() under ``policy``: wrap the configure() that tlcore.trainer calls.

    train() calls runtime.configure() with no arguments, and configure() sets the
    global dtype policy every time (mixed_float16 on a GPU, float32 on a CPU), so
    setting the policy before train() would be overwritten.

    ``xla_on_cpu``: the trainer compiles with ``jit_compile="auto"`` only when
    configure() reports a GPU, else ``jit_compile=False``. Under JAX that means
    op-by-op eager execution (487 images at 32 px on a loaded 2-core CPU: epochs
    of 302 s and 73 s eagerly, 58 s and 20 s with XLA), and it would not exercise
    the jitted path the GPU run takes. So the
    quick mode reports ``gpu=True`` to the trainer (its only use there is that
    choice); the run's metrics.json then says ``"gpu": true`` with
    ``"xla_on_cpu_forced": true`` beside it.
    """
    import keras

    import tlcore.trainer as trainer_mod

    real = trainer_mod.configure

    def configure(**kw):
        info = dict(real(mixed_precision=policy == "mixed_float16"))
        keras.mixed_precision.set_global_policy(policy)  # configure() refuses mixed precision without a GPU
        info["mixed_precision"] = policy == "mixed_float16"
        info["policy"] = policy
        if xla_on_cpu and not info.get("gpu"):
            info["gpu"] = True
            info["xla_on_cpu_forced"] = True
        return info

    trainer_mod.configure = configure
    try:
        yield
    finally:
        trainer_mod.configure = real


class Progress:
    """Status/epoch printing plus the timestamps of every training batch."""

    def __init__(self, label: str):
        import keras

        self.keras = keras
        self.label = label
        self.start = time.perf_counter()
        self.batches: list[tuple[int, int, int, float]] = []  # (epoch, batch, num_batches, time)
        self.policy_seen: str | None = None

    def hooks(self):
        from tlcore.trainer import ProgressHooks

        return ProgressHooks(on_batch=self.on_batch, on_epoch=self.on_epoch, on_status=self.on_status)

    def _print(self, text: str) -> None:
        print(f"[{self.label} {time.perf_counter() - self.start:7.1f}s] {text}", flush=True)

    def on_batch(self, epoch: int, batch: int, num_batches: int, logs: dict) -> None:
        self.batches.append((epoch, batch, num_batches, time.perf_counter()))

    def on_status(self, text: str) -> None:
        if text.startswith("Training"):  # the model is built by now, under the policy in force
            self.policy_seen = self.keras.mixed_precision.global_policy().name
        if not text.startswith("Caching") or text.endswith("copy 1/1)") or ":" not in text:
            self._print(text)

    def on_epoch(self, rec: dict) -> None:
        self._print(f"epoch {rec['epoch']} {rec['phase']} depth {rec['freeze_depth']}: loss {rec['train_loss']:.4f} "
                    f"acc {rec['train_accuracy']:.4f} val_loss {rec['val_loss']:.4f} val_acc {rec['val_accuracy']:.4f} "
                    f"({rec['epoch_seconds']:.1f}s)")

    def images_per_second(self, num_train: int, batch_size: int, warmup: int = 5) -> dict:
        """Training images/s over full batches, epochs after the first (or after ``warmup`` batches of a single epoch)."""
        full = num_train // batch_size
        by_epoch: dict[int, dict[int, float]] = {}
        for e, b, _, t in self.batches:
            by_epoch.setdefault(e, {})[b] = t
        epochs = sorted(by_epoch)
        first = warmup if len(epochs) == 1 else 1
        used = epochs if len(epochs) == 1 else epochs[1:]
        images, seconds = 0, 0.0
        for e in used:
            ts = by_epoch[e]
            if first in ts and full in ts and full > first:
                images += (full - first) * batch_size
                seconds += ts[full] - ts[first]
        return {"images_per_s": round(images / seconds, 1) if seconds > 0 else None,
                "timed_images": images, "timed_seconds": round(seconds, 3),
                "timed": f"full batches {first + 1}-{full} of epoch(s) {[e + 1 for e in used]}"}


def ensure_dataset(ws, name: str, per_class: dict | None) -> float:
    from tlcore.datasets import add_fashion_mnist

    t0 = time.perf_counter()
    if not ws.has_dataset(name):
        print(f"Importing Fashion-MNIST as {name!r} ...", flush=True)
        if name == "fmnist5k":
            from bench_train import prepare  # the 5,000-image subset of bench/bench_train.py

            prepare(ws, name)
        else:
            add_fashion_mnist(ws, name, per_class=per_class)
    return time.perf_counter() - t0


def throughput_run(ws, args, dataset: str, policy: str) -> dict:
    from tlcore.config import TrainSpec
    from tlcore.trainer import train

    # The divergence guard is off: these runs measure speed, and a whole-backbone run at the default
    # rate on a small split can sit at chance after its first epoch (the quick mode's 300 images at
    # 32 px did), which would end the run before anything is timed. Its accuracy is reported as is.
    spec = TrainSpec(dataset=dataset, image_size=args.size, method="fine_tune", freeze_depth=args.depth,
                     epochs=args.tp_epochs, batch_size=args.tp_batch_size, feature_cache=False, seed=0,
                     divergence_guard=False)
    prog = Progress(f"tp {policy}")
    run_dir = Path(tempfile.mkdtemp(prefix="tlcore-gpu-tp-")) / "run"
    t0 = time.perf_counter()
    try:
        with forced_policy(policy, xla_on_cpu=args.xla_on_cpu):
            result = train(spec, ws, run_dir=run_dir, hooks=prog.hooks())
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    wall = time.perf_counter() - t0
    m = result.metrics
    n = m["num_train"]
    ep = [h["epoch_seconds"] for h in result.history]
    later = ep[1:] or ep
    out = {
        "policy": policy,
        "policy_seen_by_model": prog.policy_seen,
        **prog.images_per_second(n, spec.batch_size),
        "images_per_s_epoch_based": round(n / statistics.median(later), 1),
        "epoch_seconds": [round(s, 3) for s in ep],
        "num_train": n,
        "run_wall_seconds": round(wall, 1),
        "val_accuracy_last": round(result.history[-1]["val_accuracy"], 4),
    }
    print(f"[tp {policy}] {out['images_per_s']} images/s (batch timing), {out['images_per_s_epoch_based']} "
          f"images/s (epoch time incl. validation)", flush=True)
    return out


def accuracy_run(ws, args, dataset: str) -> dict:
    from tlcore.config import TrainSpec
    from tlcore.errors import TrainingDiverged
    from tlcore.trainer import train

    two = args.acc_method == "two_phase"
    spec = TrainSpec(
        dataset=dataset, image_size=args.acc_size, method=args.acc_method,
        freeze_depth=None if args.acc_method == "feature_extraction" else args.acc_depth,
        epochs=args.acc_epochs, head_epochs=args.acc_head_epochs if two else None,
        learning_rate=args.acc_lr, fine_tune_factor=args.acc_factor, batch_size=args.acc_batch_size,
        label_smoothing=args.acc_label_smoothing, feature_cache=not args.acc_no_feature_cache, seed=0,
    )
    prog = Progress("acc")
    t0 = time.perf_counter()
    try:
        with forced_policy("mixed_float16", xla_on_cpu=args.xla_on_cpu):
            result = train(spec, ws, hooks=prog.hooks())
    except TrainingDiverged as exc:  # a measured outcome, reported as such (the throughput figures stay)
        return {"spec": spec.to_dict(), "policy_seen_by_model": prog.policy_seen, "diverged": str(exc),
                "history": [{k: h.get(k) for k in ("epoch", "phase", "val_accuracy", "train_loss", "epoch_seconds")}
                            for h in exc.history],
                "test_accuracy": None, "target": TARGET_ACCURACY, "target_met": False,
                "run_wall_seconds": round(time.perf_counter() - t0, 1)}
    wall = time.perf_counter() - t0
    m = result.metrics
    acc = m.get("test_accuracy")
    return {
        "spec": spec.to_dict(),
        "policy_seen_by_model": prog.policy_seen,
        "num_train": m["num_train"], "num_val": m["num_val"], "num_test": m["num_test"],
        "best_epoch": m["best_epoch"], "best_val_accuracy": round(m["best_val_accuracy"], 4),
        "test_accuracy": None if acc is None else round(acc, 4),
        "target": TARGET_ACCURACY,
        "target_met": acc is not None and acc >= TARGET_ACCURACY,
        "epoch_seconds_total": round(m["train_seconds"], 1),
        "epoch_seconds": [round(h["epoch_seconds"], 2) for h in result.history],
        "run_wall_seconds": round(wall, 1),
        "run_dir": str(result.run_dir),
    }


def main() -> None:
    args = parse_args()
    t_start = time.perf_counter()
    if not args.allow_tensorflow:
        sys.meta_path.insert(0, _NoTensorFlow())
    if args.idx_dir:
        os.environ["TLCORE_FASHION_MNIST"] = str(Path(args.idx_dir).resolve())
    if args.quick:
        print("=" * 100 + f"\n{QUICK_NOTE}\n" + "=" * 100, flush=True)

    from tlcore.workspace import Workspace

    dev = device_info()
    print(f"device: {json.dumps(dev)}", flush=True)
    if dev["keras_backend"] != "jax":
        print(f"WARNING: KERAS_BACKEND is {dev['keras_backend']!r}; this check is meant for 'jax'.", flush=True)
    if not dev["gpu"] and not (args.quick or args.allow_cpu):
        raise SystemExit("No GPU is visible to the backend (see the device line above). Run with --quick for a CPU "
                         "smoke test, or --allow-cpu to run the full check on the CPU anyway (hours).")

    ws = Workspace(args.workspace)
    wall: dict[str, float] = {}
    if args.quick:
        tp_ds = acc_ds = "fmnist-quick300"  # 30 train + 10 test images per class: 300 + 100 files
        wall["import_seconds"] = round(ensure_dataset(ws, tp_ds, {"train": 30, "test": 10}), 1)
    else:
        tp_ds, acc_ds = "fmnist5k", "fashion-mnist"
        t = ensure_dataset(ws, tp_ds, None) if not args.skip_throughput else 0.0
        t += ensure_dataset(ws, acc_ds, None) if not args.skip_accuracy else 0.0
        wall["import_seconds"] = round(t, 1)

    summary: dict = {"quick_mode": args.quick}

    def save() -> None:
        if args.json_out:
            tmp = Path(args.json_out).with_suffix(".tmp")
            tmp.write_text(json.dumps({**summary, "wall": wall}, indent=2))
            tmp.replace(args.json_out)

    if args.quick:
        summary["NOTE"] = QUICK_NOTE
    summary["device"] = dev
    summary["xla_on_cpu_forced"] = bool(args.xla_on_cpu and not dev["gpu"])
    save()

    if not args.skip_throughput:
        t0 = time.perf_counter()
        runs: dict[str, dict] = {}
        summary["throughput"] = {
            "dataset": tp_ds, "image_size": args.size, "freeze_depth": args.depth, "method": "fine_tune",
            "feature_cache": False, "batch_size": args.tp_batch_size, "epochs": args.tp_epochs, "runs": runs,
        }
        for policy in ("float32", "mixed_float16"):
            runs[policy] = throughput_run(ws, args, tp_ds, policy)
            save()  # each policy's figures as soon as they are measured
        wall["throughput_seconds"] = round(time.perf_counter() - t0, 1)
        f32, mp = runs["float32"]["images_per_s"], runs["mixed_float16"]["images_per_s"]
        summary["throughput"].update({"images_per_s_float32": f32, "images_per_s_mixed": mp,
                                      "speedup_mixed_vs_float32": round(mp / f32, 2) if f32 and mp else None})
        save()
    if not args.skip_accuracy:
        t0 = time.perf_counter()
        summary["accuracy"] = accuracy_run(ws, args, acc_ds)
        wall["accuracy_seconds"] = round(time.perf_counter() - t0, 1)
        res = summary["accuracy"]
        if "diverged" in res:
            print(f"accuracy run stopped: {res['diverged']} (target >= {TARGET_ACCURACY}: NOT MET)", flush=True)
        else:
            print(f"test accuracy {res['test_accuracy']} on {res['num_test']} test images; target >= {TARGET_ACCURACY}: "
                  f"{'MET' if res['target_met'] else 'NOT MET'}", flush=True)
        save()

    wall["total_seconds"] = round(time.perf_counter() - t_start, 1)
    summary["wall"] = wall
    summary["tensorflow_imported"] = "tensorflow" in sys.modules
    summary["workspace"] = str(ws.root)
    save()
    print(json.dumps(summary, indent=2))
    if args.quick:
        print("=" * 100 + f"\n{QUICK_NOTE}\n" + "=" * 100, flush=True)


if __name__ == "__main__":
    main()
