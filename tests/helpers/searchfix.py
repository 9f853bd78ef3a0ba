"""A tiny real study for search, page and CLI tests.

``tiny_spec`` is a StudySpec over the tinted "tiny" dataset with a randomly
initialised EfficientNet-Lite0 at 32 px: a trial trains in a few seconds on a
CPU. A random backbone is at chance by design, so the divergence guard is off, and
the trials are numbered as sampled (no probe trial queued first), each from its own random head
(a probe on random features would give every trial the same start), and BatchNorm pinned as
before the search's defaults changed, no depth-aware learning-rate ceiling and no scout: the page tests
were written against these trials' outcomes (which trial is best, which is pruned). ``tiny_study``
runs one (3 trials × 2 epochs) once per test session and returns its workspace root; tests copy
it when they change it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.runs import write_tinted_tree
from tlcore.datasets import add_dataset
from tlcore.search import StudySpec, create_study, run_worker
from tlcore.workspace import Workspace

STUDY = "tiny-study"


def tiny_spec(name: str = STUDY, **kw) -> StudySpec:
    base = dict(name=name, dataset="tiny", weights=None, image_size=32, batch_size=8, epochs=2, n_trials=3,
                freeze_depth=[12, 18], learning_rate=[1e-3, 1e-2], pruner="none", seed=0,
                divergence_guard=False, probe_first=False, head_init="random", batchnorm="frozen",
                lr_ceiling_at_depth0=None, scout=None, lr_schedule="constant", recipe_trial=False)
    base.update(kw)
    return StudySpec(**base)


def add_tiny_dataset(ws: Workspace) -> None:
    if not ws.has_dataset("tiny"):
        add_dataset(ws, "tiny", write_tinted_tree(ws.root / "photos"))


def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's finished tiny study (run on first use); returns its workspace root."""
    root = tmp_path_factory.getbasetemp() / "tiny-study-workspace"
    if (root / "studies" / ".done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace(root)
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec())
    run_worker(ws, STUDY, log=lambda s: None)
    (root / "studies" / ".done").touch()
    return root


def copy_workspace(src: Path, dst: Path) -> Workspace:
    """A private copy of a fixture workspace (its dataset index still names the original images)."""
    shutil.copytree(src, dst)
    return Workspace(dst)
