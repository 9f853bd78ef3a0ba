"""``python -m tlcore predict``, and what ``models list`` prints: use the models of the workspace.

- ``predict``  classify image files (or folders of them), or a whole folder or zip as a batch
               (``--folder`` / ``--zip``: a table with a true-label column and the accuracy
               when the images sit in one sub-folder per class; ``--csv`` writes it);
               ``--tta`` averages each image with its mirror image (``tlcore.tta``). A file beside
               the model that cannot be read (``LoadedModel.notes``: no calibration, an unknown
               resize rule) is said once on stderr as ``note: ...`` (and in ``--json``'s "notes").
- ``load_named_model``: the model a command's ``MODEL`` names, loaded, its notes on stderr
               (``predict``, ``models evaluate``).
- ``cmd_models_list``: ``models list`` (registered with the ``models`` group in ``_train``):
               every model (trained runs, search trials with a saved model, exports) with
               the key that names it (``tlcore.catalog``).

A model is named by a key from ``models list`` (``run:NAME``, ``trial:STUDY:N``,
``export:NAME``), a path (run folder, trial folder, export folder, ``.keras`` file) or a
run name under ``<workspace>/models`` (``tlcore.catalog.resolve``); a trial's run folder is
fetched from the artifact store on first use. Batches go through ``tlcore.batch_predict``,
one image through ``tlcore.predict``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tlcore.cli._progress import ProgressBar
from tlcore.config import DEFAULT_TOP_K
from tlcore.errors import ConfigError, NotFoundError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _ws(args: argparse.Namespace):
    from tlcore.cli import workspace_from

    return workspace_from(args)


def _pct(value: Any) -> str:
    return f"{100.0 * value:.1f} %" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def load_named_model(args: argparse.Namespace):
    """The model ``args.model`` names (``args.storage``: a trial's study storage), loaded, with each
    of its ``LoadedModel.notes`` said once on stderr as ``note: ...``."""
    from tlcore.catalog import resolve
    from tlcore.predict import load_model
    from tlcore.startup import start_backend_quietly

    path = resolve(_ws(args), args.model, storage=args.storage)
    start_backend_quietly()  # Keras starts here: without the CPU-only "failed call to cuInit" lines
    loaded = load_model(path)
    for note in loaded.notes:  # a damaged file beside the model: loaded, but never silently
        print(f"note: {note}", file=sys.stderr)
    return loaded


# ----------------------------------------------------------------- predict
def _expand_images(items: list[str]) -> list[str]:
    """Image arguments, with folders replaced by the image files under them (sorted)."""
    from tlcore.datasets import IMAGE_EXTENSIONS

    out: list[str] = []
    for item in items:
        if not item.strip():  # Path("") is the current folder: every image under it would be predicted
            raise ConfigError("An image argument is empty.", received=repr(item),
                              fix="Give image files or folders; in a script, check the variable that held the path.")
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


def _row_line(row) -> str:
    line = f"{row.file}: " + ", ".join(str(p) for p in row.predictions)
    if row.correct is not None:
        line += f"  [true: {row.true_label}, {'correct' if row.correct else 'wrong'}]"
    return line


def _cmd_predict(args: argparse.Namespace) -> int:
    from tlcore.batch_predict import open_files, open_folder, open_zip, predict_batch, summary_line

    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k must be at least 1.", received=f"--top-k {args.top_k}")
    batch = args.folder is not None or args.zip is not None
    if batch and args.images:
        raise ConfigError("Give image files, or --folder, or --zip; not several.",
                          received=" ".join(args.images[:3]), fix="Run one command per source.")
    if not batch and not args.images:
        raise ConfigError("No images to classify.",
                          fix="Give image files or folders, or --folder DIR, or --zip FILE.")
    source = (open_folder(args.folder) if args.folder is not None else open_zip(args.zip) if args.zip is not None
              else open_files(_expand_images(args.images)))
    with source:
        loaded = load_named_model(args)
        if args.top_k is not None and not 1 <= args.top_k <= loaded.num_classes:
            raise ConfigError(f"--top-k must be between 1 and the number of classes ({loaded.num_classes}).",
                              received=f"--top-k {args.top_k}")
        bar = ProgressBar("Classifying") if batch else None
        try:
            result = predict_batch(loaded, source, top_k=args.top_k, tta=args.tta, progress=bar)
        finally:
            if bar is not None:
                bar.close()
    if args.csv:
        from tlcore._fsutil import atomic_write_bytes

        out = Path(args.csv).expanduser()
        if out.is_dir():
            raise ConfigError("The CSV file's path is a folder.", received=str(out),
                              fix="Give a file name, e.g. --csv predictions.csv.")
        # atomically: a crash while writing leaves the previous file (a rerun to the same name), never half a table
        atomic_write_bytes(out, result.to_csv())
    if args.json:
        payload: list[dict[str, Any]] = [
            {"file": r.file, "predictions": [p.to_dict() for p in r.predictions],
             **({"true_label": r.true_label, "correct": r.correct} if r.true_label is not None else {})}
            for r in result.rows if r.error is None]
        payload += [{"file": r.file, "error": r.error} for r in result.failed]
        doc: dict[str, Any] = {"model": str(loaded.run_dir or loaded.model_path), "tta": result.tta,
                               "notes": list(loaded.notes), "results": payload}
        if batch:
            doc.update(source=source.description, num_images=len(result.rows), failed=len(result.failed),
                       skipped=result.skipped, accuracy=result.accuracy, seconds=round(result.seconds, 3))
        print(json.dumps(doc, indent=2))
    elif args.csv:
        print(f"Wrote {len(result.rows)} rows to {args.csv}. {summary_line(result)}")
    else:
        for r in result.rows:
            if r.error is None:
                print(_row_line(r))
    if not args.json:
        for r in result.failed:
            print(f"error: {r.file}: {r.error}", file=sys.stderr)
        if batch and not args.csv:
            print(summary_line(result), file=sys.stderr)
    # A batch reports unreadable files as rows; images named one by one must all be readable.
    return 2 if result.failed and not batch else 0


# ------------------------------------------------------------------ models
def _table(rows: list[tuple[str, ...]], head: tuple[str, ...], left: int) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) if i < left or i == len(head) - 1 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())


def cmd_models_list(args: argparse.Namespace) -> int:
    from tlcore.catalog import list_catalog
    from tlcore.predict import list_models

    ws = _ws(args)
    cat = list_catalog(ws, storage=args.storage)
    for note in cat.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        runs = {m.name: m.to_dict() for m in list_models(ws)}
        out = [{**(runs.get(e.name, {}) if e.kind == "run" else e.to_dict()), "key": e.key, "kind": e.kind,
                "label": e.label} for e in cat.entries]
        print(json.dumps(out, indent=2))
        return 0
    if not cat.entries:
        print("No trained models yet. Train one with: python -m tlcore train --data demo --epochs 5")
        return 0
    runs = list_models(ws)
    if runs:
        _table([(m.name, m.dataset or "-", m.backbone or "-", m.method or "-", str(m.image_size or "-"),
                 _pct(m.best_val_accuracy), _pct(m.test_accuracy), m.created.replace("T", " ")) for m in runs],
               ("NAME", "DATASET", "BACKBONE", "METHOD", "SIZE", "VAL ACC", "TEST ACC", "CREATED"), 4)
    printed = bool(runs)
    for kind, title in (("trial", "Search trials with a saved model"), ("export", "Exports")):
        entries = [e for e in cat.entries if e.kind == kind]
        if not entries:
            continue
        print(("\n" if printed else "") + f"{title} (give the KEY as the model):")
        _table([(e.key + (" (best)" if e.best else ""), e.dataset or "-", e.backbone or "-", e.method or "-",
                 str(e.image_size or "-"), _pct(e.val_accuracy), _pct(e.test_accuracy),
                 e.created.replace("T", " ")) for e in entries],
               ("KEY", "DATASET", "BACKBONE", "METHOD", "SIZE", "VAL ACC", "TEST ACC", "SAVED"), 4)
        printed = True
    return 0


# ---------------------------------------------------------------- register
def add_storage_flag(p: argparse.ArgumentParser) -> None:
    # As the search commands: the default comes from $TLCORE_STORAGE (no password on the command line).
    p.add_argument("--storage", metavar="URL", default=os.environ.get("TLCORE_STORAGE") or None,
                   help="the study storage search trials are read from (default: $TLCORE_STORAGE, else the "
                        "workspace's journal)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="classify images, a folder or a zip with a trained model",
        description="Print the top classes of each image: 'file: label (93.1 %), ...'. With --folder or --zip, "
                    "every image under it (a zip is read in memory); an image whose folder is named after one of "
                    "the model's classes gets that true label, and the accuracy is reported. Unreadable files "
                    "of a batch are reported, not fatal.")
    p.add_argument("model", help="a key from 'models list' (run:NAME, trial:STUDY:N, export:NAME), a run folder, "
                                 "a run name, an export folder or a .keras file")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, or folders of them")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--folder", metavar="DIR", help="classify every image under DIR (a batch)")
    src.add_argument("--zip", metavar="FILE", help="classify every image in a zip archive (read in memory)")
    p.add_argument("--csv", metavar="OUT", help="write the table (file, top-k, true label, correct, error) as CSV")
    p.add_argument("--top-k", type=int, default=None, metavar="N",
                   help=f"classes shown per image (default {DEFAULT_TOP_K}, or every class of a model with fewer)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average each image's probabilities with its mirror image's")
    p.add_argument("--json", action="store_true")
    add_storage_flag(p)
    p.set_defaults(handler=_cmd_predict)
