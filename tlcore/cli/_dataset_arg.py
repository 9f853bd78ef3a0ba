"""The dataset a command is given, as the commands that take one share it.

``dataset_name(ws, data)``: ``--data`` of ``train`` and ``scout`` (and a spec file's
dataset): a registered name, or a folder, registered once under a name derived from it.
``demo_if_named(ws, name)``: the commands that take a registered name only (``datasets
rescan | audit | relabel | exclude | keep | overrides``, ``datasets inspect`` given a name)
find the built-in demo on a fresh workspace, as the dashboard's pages do, without
registering it for any other name.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from tlcore.cli._progress import ProgressBar
from tlcore.errors import NotFoundError
from tlcore.workspace import Workspace

__all__ = ["dataset_name", "demo_if_named"]


def demo_if_named(ws: Workspace, name: str) -> None:
    """Register the built-in demo when ``name`` is its name and it is not registered yet (unless the
    user removed it from this workspace: ``datasets restore-demo`` brings it back)."""
    from tlcore.datasets import DEMO_NAME, ensure_demo

    if name == DEMO_NAME and not ws.has_dataset(name):
        ensure_demo(ws)


def dataset_name(ws: Workspace, data: str) -> str:
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
