"""``python -m tlcore datasets ...``: inspect, add, list, rescan, remove, import datasets.

Thin over ``tlcore.datasets`` (the same operations as the Datasets page):
``inspect`` scans a folder or a registered dataset and prints the report without
registering anything (exit status 1 when unusable); ``add`` / ``rescan`` /
``remove`` change the workspace registry (``remove`` refuses, before asking, while a training
job, search worker, scout or audit uses the dataset: ``tlcore.dataset_users``; ``--force``
removes anyway); ``import-idx`` and
``import-fashion-mnist`` write a folder-per-class tree under
``<workspace>/data/``; ``allow-root`` adds a data root to ``workspace.yaml``;
``restore-demo`` registers the demo dataset again. Zip uploads are the
Datasets page's alone. ``audit``, ``relabel``, ``exclude``, ``keep`` and ``overrides``
(trust the data: ``tlcore.audit`` and the override manifest) are ``cli._audit``'s.

What a dataset holds besides its images (decisions, split settings, saved audits:
``kept_with_dataset``) is named where it matters: ``add`` with a taken name offers ``--overwrite``
first (it keeps them), ``remove`` says they go with it, before asking and after. ``list`` marks a
dataset whose folder is gone ("[folder missing]"; ``folder_problem`` in ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlcore._usertext import counted
from tlcore.cli._dataset_arg import demo_if_named
from tlcore.cli._progress import ProgressBar
from tlcore.errors import DatasetError, PathNotAllowedError


def _ws(args: argparse.Namespace):
    from tlcore.cli import workspace_from

    return workspace_from(args)


def _print_report(result, summary, *, out=None) -> None:
    w = (out or sys.stdout).write
    w(f"Dataset: {result.root}  (layout: {result.layout})\n")
    w(f"Images:  {summary['num_images']} usable of {counted(summary['num_files'], 'image file')}, "
      f"{len(result.classes)} class{'' if len(result.classes) == 1 else 'es'}\n")
    counts = summary["class_counts"]
    if counts:
        width = max(len(c) for c in counts)
        top = max(counts.values())
        w("Classes:\n")
        for cls, n in counts.items():
            bar = "#" * max(1, round(30 * n / top)) if n else ""
            w(f"  {cls:<{width}}  {n:>7}  {bar}\n")
        if summary.get("imbalance_ratio") and summary["imbalance_ratio"] >= 3:
            w(f"  warning: the largest class is {summary['imbalance_ratio']:.1f}x the smallest; "
              "consider class weights or more data for small classes.\n")
    if summary.get("num_images"):
        wr, hr = summary["width_range"], summary["height_range"]
        w(f"Sizes:   width {wr[0]}-{wr[1]} (median {summary['width_median']:.0f}), "
          f"height {hr[0]}-{hr[1]} (median {summary['height_median']:.0f}), "
          f"median aspect {summary['aspect_median']:.2f}\n")
        w("Modes:   " + ", ".join(f"{k} {v}" for k, v in summary["modes"].items()) + "\n")
        w("Formats: " + ", ".join(f"{k} {v}" for k, v in summary["formats"].items()) + "\n")
    stats = result.stats
    w(f"Scan:    {stats.get('files_seen', 0)} files in {stats.get('seconds', 0):.2f}s "
      f"({stats.get('files_read', 0)} read, {stats.get('files_reused', 0)} reused)\n")
    probs = result.problems
    if len(probs):
        n_err = int((probs["severity"] == "error").sum())
        w(f"Problems: {len(probs)} ({n_err} errors, {len(probs) - n_err} warnings)\n")
        for row in probs.itertuples(index=False):
            where = f"{row.relpath}: " if row.relpath else ""
            w(f"  {row.severity:<7} {row.kind:<20} {where}{row.message}\n")
            if row.fix:
                w(f"  {'':<7} {'':<20} -> {row.fix}\n")
    else:
        w("Problems: none\n")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tlcore.datasets import ScanOptions, dataset_summary, folder_missing, scan_dataset

    path = Path(args.path).expanduser()
    roots = None  # a folder named here is read whole; a registered dataset as its registration reads it
    if not path.exists():
        ws = _ws(args)
        demo_if_named(ws, args.path)
        if ws.has_dataset(args.path):
            rec = ws.get_dataset(args.path)
            path = Path(rec.path)
            gone = folder_missing(rec)  # "no dataset registered under that name" would be wrong: it is
            if gone is not None:
                raise gone
            try:  # links out of the data roots are refused (symlink_escape), as in 'add'; a folder no longer
                ws.check_data_path(path)  # under them is still inspected whole ('rescan' refuses it, and says why)
                roots = ws.data_roots
            except PathNotAllowedError:
                pass
    if not path.is_dir():  # a report of 0 images and "Problems: none" told nothing
        from tlcore.errors import NotFoundError

        known = ", ".join(r.name for r in _ws(args).list_datasets()) or "none yet"
        if path.is_file() and path.suffix.lower() == ".zip":
            raise DatasetError("inspect reads a folder, not a zip file.", received=str(path),
                               fix=f"Unzip it and inspect the folder, or add it ('python -m tlcore datasets add NAME "
                               f"{path}': it is extracted into the workspace and checked) and inspect NAME.")
        raise NotFoundError("No folder there, and no dataset registered under that name." if not path.exists()
                            else "That is a file, not a folder of images.", received=str(path),
                            fix=f"Give a folder of class folders, or a registered dataset's name (registered: {known}).")
    opts = ScanOptions(min_side=args.min_side, max_aspect=args.max_aspect)
    bar = ProgressBar("Scanning")
    result = scan_dataset(path, options=opts, progress=bar, allowed_roots=roots)
    bar.close()
    summary = dataset_summary(result.index)
    if args.json:
        payload = {
            "root": str(result.root),
            "layout": result.layout,
            "usable": result.usable,
            "reason": result.reason,
            "classes": list(result.classes),
            "summary": summary,
            "stats": result.stats,
            "problems": result.problems.to_dict(orient="records"),
        }
        print(json.dumps(payload, indent=2, default=str))
    else:
        _print_report(result, summary)
    if not result.usable:
        print(f"error: not usable as a dataset: {result.reason}", file=sys.stderr)
        return 1
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tlcore.datasets import add_dataset, add_zip_dataset, check_name_free, dataset_summary, problems_advice
    from tlcore.errors import ConfigError

    ws = _ws(args)
    archive = Path(args.path).suffix.lower() == ".zip" and Path(args.path).is_file()
    if archive and (args.overwrite or args.allow_root):
        raise ConfigError("--overwrite and --allow-root apply to folders, not to a zip file, which is extracted "
                          "into the workspace's data folder.", received=args.path,
                          fix="Remove the flag. To replace a registered dataset by a zip file, remove it first "
                              "('datasets remove NAME'), which also deletes its decisions, split settings and "
                              "saved audits.")
    if not (archive or args.overwrite):  # before --allow-root adds a root, so the advice names the flag it needs
        check_name_free(ws, args.name, args.path)
    new_root = None
    if args.allow_root:
        allowed = set(ws.data_roots)
        new_root = ws.add_data_root(args.path)
        new_root = None if new_root in allowed else new_root
    bar = ProgressBar("Scanning")
    try:
        if archive:  # as the Datasets page's upload: extracted safely into <workspace>/data/NAME
            result = add_zip_dataset(ws, args.name, args.path, progress=bar)
        else:
            result = add_dataset(ws, args.name, args.path, overwrite=args.overwrite, progress=bar)
    except BaseException:  # refused or interrupted: the data root it was to be under is not kept either
        if new_root is not None:
            ws.remove_data_root(new_root)
        raise
    finally:
        bar.close()
    s = dataset_summary(result.index)
    advice = problems_advice(result, "upload" if archive else "folder", cli_name=args.name)
    where = f" (extracted into {ws.get_dataset(args.name).path})" if archive else ""
    print(f"Registered {args.name!r}{where}: {s['num_images']} images in {len(result.classes)} classes, "
          f"{len(result.problems)} problems" + ("." if advice else
                                                   f" (see 'python -m tlcore datasets inspect {args.name}')."))
    if advice:
        print(advice)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from tlcore.datasets import ensure_demo, folder_problem

    ws = _ws(args)
    ensure_demo(ws)
    recs = ws.list_datasets()
    problems = {r.name: folder_problem(r) for r in recs}  # as the Datasets page warns: not a dataset like the others
    if args.json:
        print(json.dumps([{**r.to_dict(), "folder_problem": problems[r.name]} for r in recs], indent=2))
        return 0
    if not recs:
        print("No datasets registered. Add one with: python -m tlcore datasets add NAME PATH")
        return 0
    width = max(len(r.name) for r in recs)
    for r in recs:
        mark = f"  [{problems[r.name]}]" if problems[r.name] else ""
        print(f"{r.name:<{width}}  {r.num_images:>7} images  {r.num_classes:>4} classes  "
              f"{r.num_problems:>5} problems  {r.source:<6}  {r.path}{mark}")
    gone = [r.name for r in recs if problems[r.name]]
    if gone:
        one = len(gone) == 1
        print(f"The folder of {'dataset' if one else 'datasets'} {', '.join(repr(n) for n in gone)} is not there "
              f"(marked above): the numbers shown are from the last scan, and nothing can train on "
              f"{'it' if one else 'them'} now. "
              f"'python -m tlcore datasets inspect {gone[0]}' says why and the ways out (put the folder back, or "
              f"register a moved one with 'python -m tlcore datasets add {gone[0]} NEW_PATH --overwrite').")
    return 0


def _cmd_rescan(args: argparse.Namespace) -> int:
    from tlcore.datasets import rescan_dataset

    ws = _ws(args)
    demo_if_named(ws, args.name)
    bar = ProgressBar("Rescanning")
    result = rescan_dataset(ws, args.name, progress=bar)
    bar.close()
    st = result.stats
    print(f"Rescanned {args.name!r}: {st.get('files_read', 0)} files read, {st.get('files_reused', 0)} unchanged, "
          f"{len(result.problems)} problems, {st.get('seconds', 0):.2f}s.")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from tlcore.dataset_users import in_use_error, remove_if_unused
    from tlcore.datasets import kept_with_dataset

    ws = _ws(args)
    ws.get_dataset(args.name)
    kept = kept_with_dataset(ws, args.name)  # deleted with it: say so before, and after
    if not (args.force or args.yes):  # before asking: a removal that will be refused is not worth a confirmation
        busy = in_use_error(ws, args.name)
        if busy is not None:
            raise busy
    if not args.yes:
        if not sys.stdin.isatty():
            raise DatasetError("Refusing to remove without confirmation.", received=args.name,
                               fix="Add --yes to confirm.")
        if kept:
            print(f"Removing {args.name!r} also deletes its {kept}. To point it at another folder instead and keep "
                  f"them: 'python -m tlcore datasets add {args.name} NEW_PATH --overwrite'.")
        answer = input(f"Remove dataset {args.name!r}{' and its files' if args.delete_files else ''}"
                       f"{', with its ' + kept if kept else ''}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Cancelled.")
            return 1
    remove_if_unused(ws, args.name, delete_files=args.delete_files, force=args.force)
    print(f"Removed {args.name!r}" + (f", with its {kept}." if kept else "."))
    return 0


def _cmd_import_idx(args: argparse.Namespace) -> int:
    from tlcore.datasets import add_idx_dataset

    names = [c.strip() for c in args.classes.split(",")] if args.classes else None
    result = add_idx_dataset(_ws(args), args.name, args.images, args.labels, class_names=names,
                             per_class=args.per_class)
    print(f"Imported {len(result.index)} images in {len(result.classes)} classes as {args.name!r} ({result.root}).")
    return 0


def _cmd_import_fmnist(args: argparse.Namespace) -> int:
    from tlcore.datasets import add_fashion_mnist

    per_class = None
    if args.train_per_class is not None or args.test_per_class is not None:
        per_class = {"train": args.train_per_class, "test": args.test_per_class}  # None: every image of that split
    result = add_fashion_mnist(_ws(args), args.name, per_class=per_class)
    print(f"Imported Fashion-MNIST as {args.name!r}: {len(result.index)} images ({result.root}).")
    return 0


def _cmd_restore_demo(args: argparse.Namespace) -> int:
    from tlcore.appfiles import search_dirs
    from tlcore.datasets import DEMO_PATH, ensure_demo

    rec = ensure_demo(_ws(args), force=True)
    if rec is None:  # tlcore.appfiles found no demo_data/ with the demo in it
        where = ", ".join(str(d) for d in search_dirs())
        print(f"error: the demo folder ({DEMO_PATH.parent.name}/{DEMO_PATH.name}) is not installed; looked in "
              f"{where}. Reinstall the package from a checkout (pip install .).", file=sys.stderr)
        return 1
    print(f"The demo dataset is registered as {rec.name!r} ({rec.num_images} images, {rec.path}).")
    return 0


def _cmd_allow_root(args: argparse.Namespace) -> int:
    root = _ws(args).add_data_root(args.path)
    print(f"Datasets under {root} may now be added.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="inspect, register and import datasets")
    g = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = g.add_parser("inspect", help="class counts, image statistics and the problem report of a folder")
    c.add_argument("path", help="a folder with one sub-folder per class (or a registered dataset name)")
    c.add_argument("--json", action="store_true", help="print machine-readable JSON")
    c.add_argument("--min-side", type=int, default=16, help="flag images with a smaller side (default 16)")
    c.add_argument("--max-aspect", type=float, default=5.0, help="flag images more elongated than this (default 5)")
    c.set_defaults(handler=_cmd_inspect)

    c = g.add_parser("add", help="scan a folder (or extract a .zip file) and register it under a name")
    c.add_argument("name")
    c.add_argument("path", help="a folder of class folders, or a .zip file of one (extracted safely into the "
                   "workspace's data folder; links and unsafe entries are skipped and reported)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing registration")
    c.add_argument("--allow-root", action="store_true", help="also add PATH to the allowed data roots")
    c.set_defaults(handler=_cmd_add)

    c = g.add_parser("list", help="the registered datasets")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=_cmd_list)

    c = g.add_parser("rescan", help="scan a registered dataset again (only changed files are read)")
    c.add_argument("name")
    c.set_defaults(handler=_cmd_rescan)

    c = g.add_parser("remove", help="unregister a dataset",
                     description="Unregister a dataset. Refused (exit status 2) while a training job, search "
                     "workers, a scout or an audit on this machine use it: the message names them and how to "
                     "stop them.")
    c.add_argument("name")
    c.add_argument("--delete-files", action="store_true", help="also delete images the workbench created (uploads, imports)")
    c.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    c.add_argument("--force", action="store_true",
                   help="remove even while a training job, search worker, scout or audit on this machine uses the "
                   "dataset (they will fail); for a record whose process number now belongs to another tlcore process")
    c.set_defaults(handler=_cmd_remove)

    c = g.add_parser("import-idx", help="import an IDX (MNIST-format) image/label pair as a dataset")
    c.add_argument("name")
    c.add_argument("--images", required=True, help="IDX images file (.gz or not)")
    c.add_argument("--labels", required=True, help="IDX labels file (.gz or not)")
    c.add_argument("--classes", help="comma-separated class names in label order (default: the label numbers)")
    c.add_argument("--per-class", type=int, help="keep at most this many images per class")
    c.set_defaults(handler=_cmd_import_idx)

    c = g.add_parser("import-fashion-mnist", help="import Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    c.add_argument("name", nargs="?", default="fashion-mnist")
    c.add_argument("--train-per-class", type=int, help="keep at most this many training images per class "
                   "(default: all 6,000)")
    c.add_argument("--test-per-class", type=int, help="keep at most this many test images per class (default: all "
                   "1,000; 0: none, and the validation and test images come from the training ones)")
    c.set_defaults(handler=_cmd_import_fmnist)

    c = g.add_parser("restore-demo", help="register the built-in demo dataset again after removing it")
    c.set_defaults(handler=_cmd_restore_demo)

    c = g.add_parser("allow-root", help="allow datasets under another folder (stored in workspace.yaml)")
    c.add_argument("path")
    c.set_defaults(handler=_cmd_allow_root)

    from tlcore.cli._audit import register as register_audit

    register_audit(g)  # audit, relabel, exclude, keep, overrides
