"""An export checked on test images that are no longer those of training says so.

The export's table shows the accuracy of every format on the run's test split. When the
dataset changed since training (re-registered with other images under the same file names,
or some test images gone), that accuracy is not the run's test accuracy any more: the card's
``checks.note``, the CLI and the Results page must say it, or a user reads "accuracy 0 %" (or a
figure on a third of the images) as a broken export.
"""

from __future__ import annotations

import shutil

import keras
import pytest

from tests.helpers.runs import TINY_CLASSES, tiny_run, write_tinted_tree
from tlcore.cli import main
from tlcore.datasets import add_dataset
from tlcore.export import export_model
from tlcore.workspace import Workspace

pytestmark = [
    pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the export's checks need TensorFlow"),
    pytest.mark.xdist_group("tiny-run"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def _swapped_workspace(tmp_path) -> Workspace:
    """A workspace whose "tiny" dataset has the run's file names, each class holding another class's images."""
    ws = Workspace(tmp_path / "ws-swapped")
    photos = write_tinted_tree(ws.root / "photos")
    shifted = TINY_CLASSES[1:] + TINY_CLASSES[:1]
    for cls in TINY_CLASSES:
        (photos / cls).rename(photos / f"_{cls}")
    for cls, other in zip(TINY_CLASSES, shifted):
        (photos / cls).mkdir()
        for f in sorted((photos / f"_{other}").iterdir()):
            shutil.copyfile(f, photos / cls / f.name.replace(other, cls))
    for cls in TINY_CLASSES:
        shutil.rmtree(photos / f"_{cls}")
    add_dataset(ws, "tiny", photos)
    return ws


def _thinned_workspace(tmp_path, run_dir) -> tuple[Workspace, int]:
    """A workspace whose "tiny" dataset lacks one of the run's test images."""
    import json

    ws = Workspace(tmp_path / "ws-thinned")
    photos = write_tinted_tree(ws.root / "photos")
    test_files = json.loads((run_dir / "data.json").read_text())["test_files"]
    (photos / test_files[0]).unlink()
    add_dataset(ws, "tiny", photos)
    return ws, len(test_files)


def test_checks_on_changed_test_images_say_so(run_dir, tmp_path, capsys):
    ws = _swapped_workspace(tmp_path)
    result = export_model(run_dir, tmp_path / "exp", ["keras"], workspace=ws)
    checks = result.checks
    assert checks["checked"] is True and checks["same_images_as_training"] is False
    assert "changed since training" in (checks.get("note") or "")
    assert "not the run's test accuracy" in checks["note"]

    code = main(["--workspace", str(ws.root), "export", str(run_dir), "--format", "keras",
                 "--out", str(tmp_path / "cli")])
    out, _ = capsys.readouterr()
    assert code == 0 and "changed since training" in out


def test_checks_with_missing_test_images_say_how_many(run_dir, tmp_path):
    ws, total = _thinned_workspace(tmp_path, run_dir)
    result = export_model(run_dir, tmp_path / "exp", ["keras"], workspace=ws)
    checks = result.checks
    assert checks["missing_images"] == 1 and checks["images"] == total - 1
    assert f"1 of the run's {total} test images" in (checks.get("note") or "")


def test_unchanged_test_images_get_no_note(run_dir, tmp_path):
    result = export_model(run_dir, tmp_path / "exp", ["keras"], workspace=Workspace(run_dir.parent.parent))
    assert result.checks["same_images_as_training"] is True and not result.checks.get("note")
