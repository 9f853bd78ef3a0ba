"""``python -m tlcore scout``: rank backbones and freeze depths on a dataset before any training.

Thin over ``tlcore.scout``: one forward pass per backbone over up to ``--images``
stratified training images, the four scores at every depth, a ranked table (or
``--json``). The result is saved under ``<workspace>/scouts/<dataset>/`` where the
Search page and ``search create`` find it. ``--status-file`` (used by the Search
page's background scout) receives the progress and the outcome as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from tlcore.cli._progress import ProgressBar
from tlcore.errors import TLCoreError

# The table's columns: (the result table's column, its header here)
COLUMNS = (("backbone", "backbone"), ("depth", "depth"), ("width", "width"), ("logme_stack", "stacked"),
           ("logme", "LogME"), ("transrate", "TransRate"), ("leep", "LEEP"), ("nce", "NCE"), ("combined_rank", "rank"))


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def print_table(result, *, out=None, limit: int | None = None) -> None:
    """The ranked table, one line per (backbone, depth), best first."""
    w = (out or sys.stdout).write
    rows = [[_fmt(int(r[c]) if c in ("depth", "width", "combined_rank") and r[c] == r[c] else r[c])
             for c, _ in COLUMNS] for r in result.table.to_dict("records")[:limit]]
    header = [h for _, h in COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    w("  ".join(h.ljust(n) for h, n in zip(header, widths)).rstrip() + "\n")
    for r in rows:
        w("  ".join(v.ljust(n) for v, n in zip(r, widths)).rstrip() + "\n")
    combined = result.table.attrs.get("combined_from") or []
    w(f"\n{result.images} training images at {result.image_size}px in {result.seconds:.1f}s "
      f"(features {result.feature_seconds:.1f}s{', from the cache' if result.cached else ''}); "
      f"rank = mean rank under {', '.join(combined) or 'no score'}. stacked = LogME of the blocks from the "
      "depth to the top (what a trial at that depth trains); LogME and TransRate score the frozen features at "
      "the depth alone.\n")
    for note in result.notes:
        w(f"note: {note}\n")


def cmd_scout(args: argparse.Namespace) -> int:
    from tlcore._fsutil import atomic_write_json
    from tlcore.cli import workspace_from
    from tlcore.cli._dataset_arg import dataset_name
    from tlcore.scout import claim_terminal_scout, save_result, scout

    ws = workspace_from(args)
    status = args.status_file  # the backend starts without its CPU-only noise (tlcore.runtime.configure)
    started = time.time()
    bar = ProgressBar("Scouting")
    last = [0.0]

    def progress(text: str, done: int, total: int) -> None:
        bar(done, total)
        if status and (time.time() - last[0] > 0.5 or done == total):
            last[0] = time.time()
            atomic_write_json(status, {"state": "running", "started": started, "done": done, "total": total,
                                       "text": text})

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()] if args.backbones else ["efficientnet_lite0"]
    weights = None if args.weights == "none" else args.weights
    try:
        data = dataset_name(ws, args.data)
        if not status:  # run in a terminal: recorded, so the Search page follows it and starts no second one
            status = claim_terminal_scout(ws, data, backbones=backbones, image_size=args.image_size,
                                          images=args.images, weights=weights, resize_mode=args.resize)["status"]
        result = scout(ws, data, backbones=backbones, image_size=args.image_size, images=args.images,
                       weights=weights, resize_mode=args.resize, progress=progress)
    except TLCoreError as exc:
        if status:
            atomic_write_json(status, {"state": "failed", "started": started, "error": str(exc)})
        raise
    except KeyboardInterrupt:
        if status:
            atomic_write_json(status, {"state": "failed", "started": started,
                                       "error": "The scout was stopped (Ctrl-C) before it had a result."})
        raise
    finally:
        bar.close()
    path = save_result(ws, result)
    if status:
        atomic_write_json(status, {"state": "finished", "started": started, "done": 1, "total": 1,
                                   "result": str(path), "seconds": result.seconds})
    if args.json:
        json.dump({**result.to_dict(), "saved": str(path)}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_table(result)
        print(f"saved: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from tlcore.config import RESIZE_MODES

    p = sub.add_parser(
        "scout", help="rank backbones and freeze depths on a dataset in seconds, before any training",
        description="One forward pass per backbone over up to --images stratified training images; LogME and "
        "TransRate at every block boundary, LEEP and NCE from the ImageNet head where it is available offline. "
        "Prints the ranked table and saves it under <workspace>/scouts/<dataset>/.",
    )
    p.add_argument("--data", required=True, metavar="NAME_OR_PATH",
                   help="a registered dataset, or a folder (registered on first use, as train does)")
    p.add_argument("--backbones", metavar="A,B", help="comma-separated backbones (default efficientnet_lite0)")
    p.add_argument("--image-size", type=int, default=128, metavar="S", help="input side in pixels (default 128)")
    p.add_argument("--images", type=int, default=2000, metavar="N",
                   help="about this many training images, stratified by class: each class its share, rounded up, "
                   "at least one (default 2000; a split with fewer: all of it)")
    p.add_argument("--resize", choices=RESIZE_MODES, default="pad", help="how images become square (default pad)")
    p.add_argument("--weights", default="imagenet", metavar="imagenet|none|PATH",
                   help="backbone weights (default imagenet; none = random, for tests)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--status-file", metavar="FILE", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_scout)
