"""``python -m tlcore train | predict | export | models``: one run, its use and its export.

- ``train``    one transfer-learning run from flags or a spec file; prints one line per epoch.
- ``predict``  classify image files (or folders of them) with a trained model.
- ``export``   write Keras / SavedModel / TFLite files, labels and a model card.
- ``models``   list the trained runs of the workspace; re-evaluate one on its test split.

``train`` builds a ``TrainSpec`` (``tlcore.config``) from ``--spec`` and the flags,
registers a ``--data`` folder on first use, and calls ``tlcore.trainer.train`` with
terminal progress hooks; ``predict`` and ``models`` use ``tlcore.predict``;
``export`` uses ``tlcore.export``. A model is named by a path (run folder, search
trial folder, export folder, ``.keras`` file) or by a run name under
``<workspace>/models``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from tlcore.cli._progress import ProgressBar
from tlcore.errors import ConfigError, NotFoundError

# TensorFlow's C++ start-up chatter (CUDA probing, absl) is noise for a terminal user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_PROGRESS_STATUS = re.compile(r"^(?P<label>.*): (?P<done>\d+)/(?P<total>\d+)$")


def _ws(args: argparse.Namespace):
    from tlcore.cli import workspace_from

    return workspace_from(args)


def _pct(value: Any) -> str:
    return f"{100.0 * value:.1f} %" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


# ------------------------------------------------------------------- train
def _dataset_name(ws, data: str) -> str:
    """A registered name for ``--data``: the name itself, or a folder registered (once) under a derived name."""
    from tlcore.datasets import add_dataset, ensure_demo

    ensure_demo(ws)
    if ws.has_dataset(data):
        return data
    folder = Path(data).expanduser()
    if not folder.is_dir():
        known = ", ".join(r.name for r in ws.list_datasets()) or "none yet"
        raise NotFoundError(
            "--data is neither a registered dataset nor a folder.",
            received=data,
            fix=f"Registered datasets: {known}. Or give a folder with one sub-folder per class.",
        )
    real = os.path.realpath(folder)
    for rec in ws.list_datasets():
        if os.path.realpath(rec.path) == real:
            print(f"Using the registered dataset {rec.name!r} ({rec.path}).", file=sys.stderr)
            return rec.name
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(real).name).strip("-._")[:60] or "dataset"
    name, n = base, 2
    while ws.has_dataset(name):
        name, n = f"{base}-{n}", n + 1
    bar = ProgressBar(f"Scanning {folder}")
    result = add_dataset(ws, name, folder, progress=bar)
    bar.close()
    usable = int(result.index["usable"].sum()) if len(result.index) else 0
    print(f"Registered {folder} as dataset {name!r}: {usable} images in {len(result.classes)} classes, "
          f"{len(result.problems)} problems (see 'python -m tlcore datasets inspect {name}').", file=sys.stderr)
    return name


def _spec_from_args(args: argparse.Namespace, dataset: str | None):
    from tlcore.config import TrainSpec

    base: dict[str, Any] = {}
    if args.spec:
        try:
            text = Path(args.spec).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise NotFoundError("Cannot read the spec file.", received=args.spec,
                                fix=f"Check the path ({exc.strerror or exc}).") from exc
        base = TrainSpec.from_yaml(text).to_dict()
    overrides = {
        "dataset": dataset,
        "backbone": args.backbone,
        "method": args.method,
        "freeze_depth": args.freeze_depth,
        "learning_rate": args.lr,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "dropout": args.dropout,
        "fine_tune_factor": args.fine_tune_factor,
        "lr_schedule": args.lr_schedule,
        "head_epochs": args.head_epochs,
        "label_smoothing": args.label_smoothing,
        "early_stopping": args.early_stopping,
        "aug_copies": args.aug_copies,
        "seed": args.seed,
        "resize_mode": args.resize,
        "head_init": args.head_init,
        "batchnorm": args.batchnorm,
        "warmup_epochs": args.warmup_epochs,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    if args.augment is not None:
        base["augment"] = None if args.augment.lower() == "none" else args.augment
    if args.weights is not None:
        base["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.class_weights:
        base["class_weights"] = True
    if args.no_feature_cache:
        base["feature_cache"] = False
    return TrainSpec.from_dict(base)


class _TerminalHooks:
    """Progress for a terminal: a batch bar per epoch (stderr, only on a tty), one line per epoch."""

    def __init__(self, epochs: int, out):
        self.epochs = epochs
        self.out = out
        self.bar: ProgressBar | None = None
        self.bar_label = ""

    def _bar(self, label: str) -> ProgressBar:
        if self.bar is None or self.bar_label != label:
            self.close_bar()
            self.bar, self.bar_label = ProgressBar(label), label
        return self.bar

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_batch(self, epoch: int, batch: int, num_batches: int, logs: dict[str, float]) -> None:
        loss = logs.get("loss")
        suffix = f"loss {loss:.3f}" if isinstance(loss, float) else ""
        self._bar(f"epoch {epoch + 1}/{self.epochs}")(batch, num_batches, suffix)

    def on_epoch(self, rec: dict[str, Any]) -> None:
        self.close_bar()
        print(
            f"epoch {rec['epoch']}/{self.epochs}  loss {rec['train_loss']:.3f}  acc {rec['train_accuracy']:.3f}  "
            f"val_loss {rec['val_loss']:.3f}  val_acc {rec['val_accuracy']:.3f}  {rec['epoch_seconds']:.1f}s",
            file=self.out, flush=True,
        )

    def on_status(self, text: str) -> None:
        m = _PROGRESS_STATUS.match(text)
        if m:
            self._bar(m["label"])(int(m["done"]), int(m["total"]))
            return
        self.close_bar()
        print(text, file=sys.stderr, flush=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from tlcore.config import TrainSpec
    from tlcore.trainer import ProgressHooks, train

    ws = _ws(args)
    if args.data is None and not args.spec:
        raise ConfigError("No dataset to train on.", fix="Give --data NAME_OR_FOLDER (or a --spec file naming one).")
    dataset = _dataset_name(ws, args.data) if args.data is not None else None
    spec = _spec_from_args(args, dataset)
    if dataset is None:  # the spec file's dataset: a name (the demo too) or a folder to register
        name = _dataset_name(ws, spec.dataset)
        if name != spec.dataset:
            spec = TrainSpec.from_dict({**spec.to_dict(), "dataset": name})
    term = _TerminalHooks(spec.epochs, sys.stderr if args.json else sys.stdout)
    hooks = ProgressHooks(on_batch=term.on_batch, on_epoch=term.on_epoch, on_status=term.on_status)
    print(f"Training {spec.backbone} ({spec.method}) on {spec.dataset!r} at {spec.image_size}px "
          f"for {spec.epochs} epochs", file=sys.stderr, flush=True)
    try:
        result = train(spec, ws, run_dir=Path(args.out).expanduser() if args.out else None, hooks=hooks)
    finally:
        term.close_bar()
    m = result.metrics
    if args.json:
        payload = {
            "run_dir": str(result.run_dir),
            "best_epoch": m.get("best_epoch"),
            "best_val_accuracy": m.get("best_val_accuracy"),
            "test_accuracy": m.get("test_accuracy"),
            "epochs_run": m.get("epochs_run"),
            "stopped_early": m.get("stopped_early"),
            "train_seconds": m.get("train_seconds"),
            "cache": result.cache,
            "spec": spec.to_dict(),
            "history": result.history,
        }
        print(json.dumps(payload, indent=2, default=str))
        return 0
    cache = result.cache or {}

    def hits(part: str) -> str:
        s = cache.get(part) or {}
        return f"{s.get('hits', 0)} hits / {s.get('misses', 0)} misses"

    print(f"Run folder:        {result.run_dir}")
    print(f"Best val accuracy: {_pct(m.get('best_val_accuracy'))} (epoch {m.get('best_epoch')})")
    print(f"Test accuracy:     {_pct(m.get('test_accuracy'))} ({m.get('num_test', 0)} images)")
    if m.get("linear_probe"):
        probe = m["linear_probe"]
        print(f"Head started from: the linear probe, val accuracy {_pct(probe.get('val_accuracy'))} "
              f"({'fitted now' if probe.get('fitted_here') else 'shared, from the cache'})")
    print(f"Caches:            images {hits('images')}, features {hits('features')}")
    print(f"Next: python -m tlcore predict {result.run_dir} IMAGE...   |   "
          f"python -m tlcore export {result.run_dir} --out DIR")
    return 0


# ----------------------------------------------------------------- predict
def _expand_images(items: list[str]) -> list[str]:
    """Image arguments, with folders replaced by the image files under them (sorted)."""
    from tlcore.datasets import IMAGE_EXTENSIONS

    out: list[str] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise NotFoundError("The folder holds no image files.", received=item,
                                    fix="Give image files (JPEG, PNG, GIF, BMP, WebP, TIFF) or folders of them.")
            out.extend(found)
        else:
            out.append(item)
    return out


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from tlcore.errors import TLCoreError
    from tlcore.predict import load_model, predict_arrays, prepare_image, resolve_model_path, top_predictions

    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1.", received=f"--top-k {args.top_k}")
    images = _expand_images(args.images)
    loaded = load_model(resolve_model_path(_ws(args), args.model))
    if not 1 <= args.top_k <= loaded.num_classes:
        raise ConfigError(f"--top-k must be between 1 and the number of classes ({loaded.num_classes}).",
                          received=f"--top-k {args.top_k}")
    prepared: list[tuple[str, np.ndarray]] = []
    failed: list[tuple[str, str]] = []
    for item in images:
        try:
            prepared.append((item, prepare_image(loaded, item)))
        except TLCoreError as exc:
            failed.append((item, str(exc)))
    results: list[dict[str, Any]] = []
    if prepared:
        probs = predict_arrays(loaded, np.stack([x for _, x in prepared]))
        for (item, _), p in zip(prepared, probs):
            results.append({"file": item, "predictions": top_predictions(p, loaded.class_names, args.top_k)})
    if args.json:
        payload = [{"file": r["file"], "predictions": [p.to_dict() for p in r["predictions"]]} for r in results]
        payload += [{"file": f, "error": e} for f, e in failed]
        print(json.dumps({"model": str(loaded.run_dir or loaded.model_path), "results": payload}, indent=2))
    else:
        for r in results:
            print(f"{r['file']}: " + ", ".join(str(p) for p in r["predictions"]))
    for _, err in failed:
        print(f"error: {err}", file=sys.stderr)
    return 2 if failed else 0


# ------------------------------------------------------------------ export
def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _cmd_export(args: argparse.Namespace) -> int:
    from tlcore.export import export_model
    from tlcore.predict import resolve_model_path

    path = resolve_model_path(_ws(args), args.model)
    result = export_model(path, args.out, args.format, overwrite=args.overwrite,
                          on_status=lambda text: print(text + "…", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"out_dir": str(result.out_dir), "formats": list(result.formats), "files": result.files},
                         indent=2))
        return 0
    print(f"Exported {', '.join(result.formats)} to {result.out_dir}")
    top: dict[str, int] = {}
    for rel, info in result.files.items():
        head = rel.split("/", 1)[0]
        top[head] = top.get(head, 0) + int(info["bytes"])
    width = max(len(k) for k in top)
    for name, size in top.items():
        print(f"  {name + ('/' if (result.out_dir / name).is_dir() else ''):<{width + 1}}  {_human(size):>9}")
    print(f"  {'model_card.json':<{width + 1}}  (input spec, metrics, sha256 of every file)")
    return 0


# ------------------------------------------------------------------ models
def _cmd_models_list(args: argparse.Namespace) -> int:
    from tlcore.predict import list_models

    models = list_models(_ws(args))
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return 0
    if not models:
        print("No trained models yet. Train one with: python -m tlcore train --data demo --epochs 5")
        return 0
    rows = [(m.name, m.dataset or "-", m.backbone or "-", m.method or "-", str(m.image_size or "-"),
             _pct(m.best_val_accuracy), _pct(m.test_accuracy), m.created.replace("T", " ")) for m in models]
    head = ("NAME", "DATASET", "BACKBONE", "METHOD", "SIZE", "VAL ACC", "TEST ACC", "CREATED")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) if i < 4 or i == 7 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0


def _cmd_models_evaluate(args: argparse.Namespace) -> int:
    from tlcore.predict import evaluate_run, load_model, resolve_model_path

    ws = _ws(args)
    loaded = load_model(resolve_model_path(ws, args.model))
    bar = ProgressBar("Decoding test images")
    res = evaluate_run(loaded, ws, progress=bar)
    bar.close()
    rep = res["report"]
    if args.json:
        print(json.dumps({"dataset": res["dataset"], "report": rep, "missing": res["missing"],
                          "same_test_set": res["same_test_set"]}, indent=2))
        return 0
    print(f"{loaded.name} on the test split of {res['dataset']!r}: accuracy {_pct(rep['accuracy'])}, "
          f"macro F1 {_pct(rep['macro_f1'])}, {rep['num_samples']} images")
    if res["missing"]:
        print(f"  {len(res['missing'])} test images are gone or unusable now and were skipped.")
    elif not res["same_test_set"]:
        print("  The test images changed since training.")
    width = max(len(c) for c in res["class_names"])
    for r in rep["per_class"]:
        print(f"  {r['class']:<{width}}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
              f"F1 {r['f1']:.3f}  ({r['support']} images)")
    return 0


# ---------------------------------------------------------------- register
def register(sub: argparse._SubParsersAction) -> None:
    from tlcore.config import BATCHNORM_MODES, HEAD_INITS, METHODS, RESIZE_MODES

    p = sub.add_parser(
        "train", help="train one model on a dataset (a registered name or a folder)",
        description="Train one transfer-learning run. Flags override the --spec file; the rest take "
        "TrainSpec's defaults. The run is saved under <workspace>/models (or --out).",
    )
    p.add_argument("--data", metavar="NAME_OR_PATH",
                   help="a registered dataset, or a folder with one sub-folder per class (registered on first use)")
    p.add_argument("--backbone", help="e.g. efficientnet_lite0 (default), mobilenet_v2, resnet50")
    p.add_argument("--method", choices=METHODS, help="default feature_extraction")
    p.add_argument("--freeze-depth", type=int, metavar="K", help="backbone blocks kept frozen (default: all)")
    p.add_argument("--lr", type=float, metavar="X", help="learning rate (default 1e-3)")
    p.add_argument("--epochs", type=int, metavar="N", help="default 5")
    p.add_argument("--image-size", type=int, metavar="S", help="input side in pixels (default 224)")
    p.add_argument("--augment", metavar="NAME", help="an augmentation preset or saved pipeline ('none' for none)")
    p.add_argument("--batch-size", type=int, metavar="B")
    p.add_argument("--dropout", type=float, metavar="D")
    p.add_argument("--fine-tune-factor", type=float, metavar="F", help="two_phase: phase-2 lr = lr × F")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="cosine: each phase decays the rate to 0 over its epochs (default constant)")
    p.add_argument("--head-epochs", type=int, metavar="E", help="two_phase: epochs of the head-only phase")
    p.add_argument("--label-smoothing", type=float, metavar="L")
    p.add_argument("--class-weights", action="store_true", help="weight classes inversely to their size")
    p.add_argument("--early-stopping", type=int, metavar="P", help="stop after P epochs without improvement")
    p.add_argument("--no-feature-cache", action="store_true", help="do not cache the frozen part's output")
    p.add_argument("--aug-copies", type=int, metavar="K", help="augmented copies cached per image")
    p.add_argument("--seed", type=int)
    p.add_argument("--weights", metavar="imagenet|none|PATH", help="backbone weights (default imagenet)")
    p.add_argument("--resize", choices=RESIZE_MODES, help="how images become square (default pad)")
    p.add_argument("--head-init", choices=HEAD_INITS,
                   help="start the head from the shared linear probe (default) or at random")
    p.add_argument("--batchnorm", choices=BATCHNORM_MODES,
                   help="BatchNorm in unfrozen blocks: train on batch statistics (default) or keep them frozen")
    p.add_argument("--warmup-epochs", type=float, metavar="E",
                   help="learning-rate warm-up at the start of a phase that unfreezes blocks (default 0)")
    p.add_argument("--out", metavar="DIR", help="the run folder to create (default: <workspace>/models/<name>)")
    p.add_argument("--spec", metavar="FILE.yaml", help="a TrainSpec YAML file; flags override it")
    p.add_argument("--json", action="store_true", help="print the result as JSON (epoch lines go to stderr)")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("predict", help="classify images with a trained model",
                       description="Print the top classes of each image: 'file: label (93.1 %), ...'.")
    p.add_argument("model", help="a run folder, a run name (see 'models list'), an export folder or a .keras file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    p.add_argument("--top-k", type=int, default=3, metavar="N", help="classes shown per image (default 3)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("export", help="export a trained model (Keras, SavedModel, TFLite) with a model card")
    p.add_argument("model", help="a run folder, a run name or a .keras file")
    p.add_argument("--format", default="keras,savedmodel,tflite,tflite_dynamic",
                   help="comma-separated: keras, savedmodel, tflite, tflite_dynamic (default: all)")
    p.add_argument("--out", required=True, metavar="DIR", help="the export folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("models", help="the trained models of the workspace")
    g = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    c = g.add_parser("list", help="trained runs, newest first")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=_cmd_models_list)
    c = g.add_parser("evaluate", help="evaluate a run again on the test images it was trained with")
    c.add_argument("model", help="a run folder or run name")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=_cmd_models_evaluate)
