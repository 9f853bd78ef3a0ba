"""``python -m tlcore train | export | models``: one run, its export, the models.

- ``train``    one transfer-learning run from flags or a spec file; prints one line per epoch.
- ``export``   write Keras / SavedModel / TFLite / ONNX files, labels and a model card (by default
               into ``<workspace>/exports/<name>``, where the Predict page lists exports), and
               print each format's check (``cli._export``); exit 1 when one failed.
- ``models``   list every model of the workspace (``cli._predict.cmd_models_list``:
               runs, search trials, exports); re-evaluate one on its test split
               (``--tta``: with and without test-time augmentation).
  (``predict`` is ``cli._predict``.)

``train`` builds a ``TrainSpec`` (``tlcore.config``) from ``--spec`` and the flags (each flag,
``--data`` too, over the file's field; the file may leave the dataset to ``--data``),
registers a ``--data`` folder on first use, refuses what ``train_jobs.check_spec`` refuses
and an existing ``--out`` folder before any image is decoded, and calls ``tlcore.trainer.train`` with
terminal progress hooks and a training job's (``tlcore.train_jobs``: the one ``--job``
names, which the Train page started, or one registered for this run, so the page shows
a terminal's run too, with its epochs; its stop request ends the run early);
``models`` uses ``tlcore.predict`` and ``tlcore.catalog``;
``export`` uses ``tlcore.export``. A model is named by a key from ``models list``
(``run:NAME``, ``trial:STUDY:N``, ``export:NAME``), a path (run folder, search trial
folder, export folder, ``.keras`` file) or a run name under ``<workspace>/models``
(``tlcore.catalog.resolve``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from tlcore._fsutil import check_new_folder
from tlcore._usertext import counted
from tlcore.cli._dataset_arg import dataset_name
from tlcore.cli._files import read_text
from tlcore.cli._progress import ProgressBar
from tlcore.errors import ConfigError
from tlcore.startup import start_backend_quietly

# TensorFlow's C++ start-up chatter (CUDA probing, absl) is noise for a terminal user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_PROGRESS_STATUS = re.compile(r"^(?P<label>.*): (?P<done>\d+)/(?P<total>\d+)$")


def _ws(args: argparse.Namespace):
    from tlcore.cli import workspace_from

    return workspace_from(args)


def _pct(value: Any) -> str:
    return f"{100.0 * value:.1f} %" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _calibration_line(cal: Any) -> str:
    """A run's stored calibration in words: the temperature and the ECE before → after (or "not calibrated")."""
    if not isinstance(cal, dict) or not isinstance(cal.get("temperature"), (int, float)):
        return "not calibrated (a run from before temperature scaling: raw softmax, temperature 1)"

    def ece(v: Any) -> str:
        return f"{100.0 * v:.2f} %" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

    split = cal.get("split") or "test"
    return (f"temperature {cal['temperature']:.3f} (fitted on the validation split), ECE {ece(cal.get('ece_before'))}"
            f" -> {ece(cal.get('ece_after'))} on the {split} split ({cal.get('num_samples', '?')} images)")


# ------------------------------------------------------------------- train
def _spec_from_args(args: argparse.Namespace, dataset: str | None):
    from tlcore.config import TrainSpec

    base: dict[str, Any] = {}
    if args.spec:  # its fields, validated once the flags are in: --data may give the dataset it leaves out
        text = read_text(args.spec, "the spec file", "Give a TrainSpec as YAML (e.g. 'dataset: demo').")
        base = TrainSpec.fields_from_yaml(text)
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
    if base.get("dataset") in (None, ""):
        raise ConfigError("No dataset to train on" + (": the spec file names none." if args.spec else "."),
                          received=f"--spec {args.spec}" if args.spec else None,
                          fix="Give --data NAME_OR_FOLDER (or a --spec file with 'dataset: NAME').")
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
        _say(f"epoch {rec['epoch']}/{self.epochs}  loss {rec['train_loss']:.3f}  acc {rec['train_accuracy']:.3f}  "
             f"val_loss {rec['val_loss']:.3f}  val_acc {rec['val_accuracy']:.3f}  {rec['epoch_seconds']:.1f}s",
             self.out)

    def on_status(self, text: str) -> None:
        m = _PROGRESS_STATUS.match(text)
        if m:
            self._bar(m["label"])(int(m["done"]), int(m["total"]))
            return
        self.close_bar()
        _say(text, sys.stderr)


def _say(text: str, stream) -> None:
    """Print a progress line; a reader that went away (``train ... | head``) stops the output, not the
    training (it crashed the run with a BrokenPipeError, and nothing was saved)."""
    from tlcore.cli import _drop_stdout

    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        if stream is sys.stdout:
            _drop_stdout()


def _both(*fns):
    """One hook that calls each of ``fns`` in turn."""
    def call(*a):
        for fn in fns:
            fn(*a)
    return call


@contextlib.contextmanager
def _ctrl_c_stops(reporter):
    """While it trains, a first Ctrl-C stops the run as the Train page's Stop does (after this batch,
    the best epoch so far evaluated and saved; nothing before the first epoch ends); a second one
    interrupts at once and saves nothing."""
    def ask(signum, frame):
        if reporter.stop_asked:
            raise KeyboardInterrupt
        reporter.stop_asked = "Ctrl-C"
        print("\nStopping after this batch: the best epoch so far is evaluated and saved. Press Ctrl-C again to "
              "stop at once without saving.", file=sys.stderr, flush=True)

    try:
        previous = signal.signal(signal.SIGINT, ask)
    except ValueError:  # not the main thread (an embedding program): Ctrl-C keeps its own meaning
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _reporting(reporter):
    """Tell the job (``tlcore.train_jobs.JobReporter``; None: no job) how the block ended, if not well."""
    from tlcore import train_jobs
    from tlcore.errors import TLCoreError

    if reporter is None:
        yield
        return
    try:
        yield
    except train_jobs.JobStopped:
        reporter.stopped_before_training()
        raise
    except KeyboardInterrupt:
        reporter.interrupted()
        raise
    except BaseException as exc:
        reporter.crashed(str(exc) if isinstance(exc, TLCoreError) else f"{type(exc).__name__}: {exc}")
        raise


def _train_spec(args: argparse.Namespace, ws, job=None):
    """The run's ``TrainSpec``: the --spec file's fields, the flags over them (--data too), checked
    (``train_jobs.check_spec``) before any image is decoded. Its dataset, a name or a folder, is
    registered first if need be. With it, the copy of its saved augmentation pipeline that ``job``
    (the Train page's) keeps, or None: that copy is used, not looked up in the workspace."""
    from tlcore import train_jobs
    from tlcore.config import TrainSpec

    spec = _spec_from_args(args, args.data)
    name = dataset_name(ws, spec.dataset)  # a name (the demo too), or a folder to register
    if name != spec.dataset:
        spec = TrainSpec.from_dict({**spec.to_dict(), "dataset": name})
    augmentation = job.read_augmentation(spec.augment) if job is not None else None
    train_jobs.check_spec(ws, spec, augmentation=augmentation)
    return spec, augmentation


def _new_run_dir(args: argparse.Namespace) -> Path | None:
    """The folder --out names, refused at once when it cannot be made (``RunFolder.write`` would
    refuse it too, but only after the training)."""
    if not args.out:
        return None
    return check_new_folder(Path(args.out).expanduser(),
                            fix="Choose another --out folder, or remove the existing one first.")


def _cmd_train(args: argparse.Namespace) -> int:
    from tlcore import train_jobs

    ws = _ws(args)
    # A job: the Train page's (--job, started by train_jobs.launch_training), else one registered here
    # for a terminal's run, so that the page shows it too. The job hears how the run went.
    reporter = train_jobs.JobReporter(train_jobs.open_job(ws, args.job)) if args.job else None
    try:
        with _reporting(reporter):
            if reporter is not None:
                reporter.start()
            run_dir = _new_run_dir(args)
            # the Train page's job keeps a copy of a saved pipeline (train_jobs): used, not looked up
            spec, augmentation = _train_spec(args, ws, reporter.job if reporter is not None else None)
        start_backend_quietly()  # after the spec, so bad flags fail at once; without the CPU-only noise
        from tlcore.trainer import ProgressHooks, train

        if reporter is None:
            reporter = train_jobs.JobReporter(train_jobs.register_job(ws, spec, source="cli"))
            reporter.start()
            # the job's copy of a saved pipeline: a change to the saved one from now on changes nothing here
            augmentation = reporter.job.read_augmentation(spec.augment)
        term = _TerminalHooks(spec.epochs, sys.stderr if args.json else sys.stdout)
        hooks = ProgressHooks(on_batch=_both(term.on_batch, reporter.on_batch),
                              on_epoch=_both(term.on_epoch, reporter.on_epoch),
                              on_status=_both(reporter.on_status, term.on_status),
                              should_stop=reporter.should_stop, on_save=reporter.saving)
        print(f"Training {spec.backbone} ({spec.method}) on {spec.dataset!r} at {spec.image_size}px "
              f"for {spec.epochs} epochs (job {reporter.job.id})", file=sys.stderr, flush=True)
        with _reporting(reporter), _ctrl_c_stops(reporter):
            try:
                result = train(spec, ws, run_dir=run_dir, hooks=hooks, augmentation=augmentation)
            finally:
                term.close_bar()
    except train_jobs.JobStopped:
        print("Stopped on request before the first epoch ended: nothing was saved.", file=sys.stderr)
        # Ctrl-C: the status of an interrupted command (a shell script's `set -e` stops), not of a finished one
        return 130 if reporter is not None and reporter.stop_asked == "Ctrl-C" else 0
    if reporter.finished(result.run_dir, result.metrics) == "stopped":
        print(f"Stopped on request after {len(result.history)} epoch(s); the best epoch was saved.",
              file=sys.stderr)
    m = result.metrics
    if args.json:
        payload = {
            "run_dir": str(result.run_dir),
            "job": reporter.job.id,
            "best_epoch": m.get("best_epoch"),
            "best_val_accuracy": m.get("best_val_accuracy"),
            "test_accuracy": m.get("test_accuracy"),
            "epochs_run": m.get("epochs_run"),
            "stopped_early": m.get("stopped_early"),
            "train_seconds": m.get("train_seconds"),
            "calibration": {k: v for k, v in (m.get("calibration") or {}).items() if k != "bins"} or None,
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
    print(f"Calibration:       {_calibration_line(m.get('calibration'))}")
    print(f"Caches:            images {hits('images')}, features {hits('features')}")
    run = shlex.quote(str(result.run_dir))  # a path with spaces still pastes as one argument
    print(f"Next: python -m tlcore predict {run} IMAGE...   |   python -m tlcore export {run} --out DIR")
    return 0


# ------------------------------------------------------------------ export
def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _cmd_export(args: argparse.Namespace) -> int:
    from tlcore.catalog import export_name, resolve
    from tlcore.export import DEFAULT_FORMATS, check_formats, export_model

    ws = _ws(args)
    path = resolve(ws, args.model, storage=args.storage)
    formats = DEFAULT_FORMATS if args.format is None else check_formats(args.format)
    start_backend_quietly()
    out = args.out or ws.exports_dir / export_name(args.model, path)  # where the Predict page lists exports
    result = export_model(path, out, formats, overwrite=args.overwrite, workspace=ws,
                          int8_rounding=args.int8_rounding, on_status=lambda text: print(text + "…", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"out_dir": str(result.out_dir), "formats": list(result.formats), "files": result.files,
                          "checks": result.checks, "warnings": list(result.warnings)},
                         indent=2))
        return 1 if result.warnings else 0
    print(f"Exported {', '.join(result.formats)} to {result.out_dir}")
    top: dict[str, int] = {}
    for rel, info in result.files.items():
        head = rel.split("/", 1)[0]
        top[head] = top.get(head, 0) + int(info["bytes"])
    width = max(len(k) for k in top)
    for name, size in top.items():
        print(f"  {name + ('/' if (result.out_dir / name).is_dir() else ''):<{width + 1}}  {_human(size):>9}")
    print(f"  {'model_card.json':<{width + 1}}  (input spec, metrics, checks, sha256 of every file)")
    from tlcore.cli._export import print_checks

    print_checks(result)  # the checks of every format; failed ones in red, and exit status 1
    return 1 if result.warnings else 0


# ------------------------------------------------------------------ models
def _cmd_models_evaluate(args: argparse.Namespace) -> int:
    from tlcore.calibration import expected_calibration_error
    from tlcore.cli._predict import load_named_model
    from tlcore.predict import evaluate_run

    ws = _ws(args)
    loaded = load_named_model(args)
    bar = ProgressBar("Decoding test images")
    res = evaluate_run(loaded, ws, progress=bar)
    bar.close()
    plain = res["report"]["accuracy"]
    if args.tta:  # the flip average (tlcore.tta); the images come from the cache this time
        res = evaluate_run(loaded, ws, tta=True)
    rep = res["report"]
    ece_now = expected_calibration_error(res["probabilities"], res["y_true"])
    if args.json:
        print(json.dumps({"dataset": res["dataset"], "report": rep, "missing": res["missing"],
                          "same_test_set": res["same_test_set"], "temperature": loaded.temperature,
                          "ece": ece_now, "tta": bool(args.tta),
                          **({"accuracy_without_tta": plain} if args.tta else {})}, indent=2))
        return 0
    tta = f" with test-time augmentation ({_pct(plain)} without)" if args.tta else ""
    print(f"{loaded.name} on the test split of {res['dataset']!r}: accuracy {_pct(rep['accuracy'])}{tta}, "
          f"macro F1 {_pct(rep['macro_f1'])}, {rep['num_samples']} images")
    print(f"  ECE {100.0 * ece_now:.2f} % with temperature {loaded.temperature:.3f} applied; at training: "
          f"{_calibration_line(loaded.metrics.get('calibration'))}")
    if res["missing"]:
        n = len(res["missing"])
        print(f"  {counted(n, 'test image')} {'is' if n == 1 else 'are'} gone, excluded by a decision or "
              "unusable now, and skipped.")
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
    p.add_argument("--freeze-depth", type=int, metavar="K",
                   help="backbone blocks kept frozen (default: all for feature_extraction; for fine_tune and "
                   "two_phase the classic recipe's, the last third of the blocks trained: 12 of 18)")
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
    p.add_argument("--job", metavar="ID", help="report to this training job (the Train page starts runs so); "
                   "without it a job is registered for the run")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("export", help="export a trained model (Keras, SavedModel, TFLite, ONNX), check every "
                       "format against it, write a model card",
                       description="Export, then run every format in its own runtime on the run's test split: "
                       "a table of size, accuracy, agreement with the Keras model and latency. Exits 1 when a "
                       "format agrees significantly less than its threshold (the files are still written).")
    p.add_argument("model", help="a run folder, a run name, a key from 'models list' or a .keras file")
    p.add_argument("--format", default=None,
                   help="comma-separated: keras, savedmodel, tflite, tflite_dynamic, tflite_float16, tflite_int8 "
                   "(uint8 in, calibrated on the run's training images), onnx "
                   "(default: keras,savedmodel,tflite,tflite_dynamic)")
    p.add_argument("--out", metavar="DIR",
                   help="the export folder to create (default: <workspace>/exports/<model name>)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    from tlcore.quantize import INT8_ROUNDING  # numpy only: the parser stays quick to build

    p.add_argument("--int8-rounding", dest="int8_rounding", choices=INT8_ROUNDING, default=INT8_ROUNDING[0],
                   help="tflite_int8: round the weights on training images before conversion (data_aware, the "
                   "default) or leave TFLite's nearest rounding")
    p.add_argument("--json", action="store_true")
    from tlcore.cli._predict import add_storage_flag, cmd_models_list

    add_storage_flag(p)  # trial:STUDY:N of a study in a database, as predict and models list read it
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("models", help="the models of the workspace: runs, search trials, exports")
    g = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    c = g.add_parser("list", help="every model with its key: trained runs, search trials, exports")
    c.add_argument("--json", action="store_true")
    add_storage_flag(c)
    c.set_defaults(handler=cmd_models_list)
    c = g.add_parser("evaluate", help="evaluate a run again on the test images it was trained with")
    c.add_argument("model", help="a run folder, a run name or a key (run:NAME, trial:STUDY:N)")
    c.add_argument("--tta", action="store_true",
                   help="also with test-time augmentation (each image averaged with its mirror image)")
    c.add_argument("--json", action="store_true")
    add_storage_flag(c)
    c.set_defaults(handler=_cmd_models_evaluate)
