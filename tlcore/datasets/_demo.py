"""The built-in demo dataset, so the dashboard is never empty.

A class-balanced subset of Fashion-MNIST (50 training images of each of its 10
classes, 28×28 grayscale PNG) ships in ``demo_data/fashion-mnist-demo/`` with
its MIT licence notice: at a checkout's root, or under the environment's
``share/tlcore-workbench/app/`` once installed (``tlcore.appfiles`` finds it). ``ensure_demo`` registers it under the name ``demo`` when
the dashboard, ``datasets list``, ``train`` or ``search create`` opens a workspace
where it is missing; a user who removed it keeps it removed (``workspace.yaml``'s
``demo_removed``) until ``datasets restore-demo``.
"""

from __future__ import annotations

from tlcore.datasets._ops import add_dataset
from tlcore.workspace import DEMO_DATA_DIR, DatasetRecord, Workspace

__all__ = ["DEMO_NAME", "DEMO_PATH", "ensure_demo"]

DEMO_NAME = "demo"
DEMO_PATH = DEMO_DATA_DIR / "fashion-mnist-demo"


def ensure_demo(ws: Workspace, *, force: bool = False) -> DatasetRecord | None:
    """Register the demo dataset if it is not registered (or moved); return its record.

    Returns None when the demo folder is missing (a trimmed install), or when the
    user removed the demo from this workspace (unless ``force``, which brings it
    back); the rest of the workbench works without it.
    """
    if not DEMO_PATH.is_dir():
        return None
    if force:  # brought back: whatever demo_removed held, it goes
        if "demo_removed" in ws.settings():
            ws.save_settings({k: v for k, v in ws.settings().items() if k != "demo_removed"})
    elif ws.demo_removed():
        return None
    if ws.has_dataset(DEMO_NAME):
        rec = ws.get_dataset(DEMO_NAME)
        if rec.source != "demo" or rec.path == str(DEMO_PATH):
            return rec
    add_dataset(ws, DEMO_NAME, DEMO_PATH, source="demo", overwrite=True)
    return ws.get_dataset(DEMO_NAME)
