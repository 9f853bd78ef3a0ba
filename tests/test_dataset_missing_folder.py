"""A registered dataset whose folder is gone (moved, deleted, an unmounted drive or network share) is never
rescanned into an empty dataset: the rescan is refused, naming the folder and the ways out, and the registry
entry and the last scan stay as they were. The CLI and the Datasets page both rescan through
``rescan_dataset``, so both refuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tlcore.cli import main
from tlcore.datasets import _ops, add_dataset, load_index, rescan_dataset
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace


def _saved(ws: Workspace, name: str) -> dict[str, object]:
    """What the workspace holds about ``name``: its registry entry and its scan files, byte for byte."""
    files = {p.name: p.read_bytes() for p in sorted(ws.dataset_dir(name, create=False).iterdir()) if p.is_file()}
    return {"record": ws.get_dataset(name).to_dict(), "files": files}


@pytest.fixture
def pets(workspace, make_image_tree) -> Path:
    """``<workspace>/pets`` (cat 3, dog 3), registered as 'pets'."""
    folder = make_image_tree(workspace.root / "pets", {"cat": 3, "dog": 3})
    add_dataset(workspace, "pets", folder)
    return folder


@pytest.mark.parametrize("how", ["moved", "a file now"])
def test_rescan_of_a_dataset_whose_folder_is_gone_is_refused_and_keeps_its_last_scan(workspace, pets, how):
    before = _saved(workspace, "pets")
    pets.rename(pets.with_name("pets-moved"))
    if how == "a file now":
        pets.write_text("not a folder")
    with pytest.raises(DatasetError) as exc:
        rescan_dataset(workspace, "pets")
    text = str(exc.value)
    assert str(pets) in text and ("is missing" in text if how == "moved" else "a file now" in text)
    assert "Put the folder back" in text and "datasets remove pets" in text and "--overwrite" in text
    assert _saved(workspace, "pets") == before
    assert workspace.get_dataset("pets").num_images == 6 and workspace.get_dataset("pets").num_classes == 2

    if how == "a file now":
        pets.unlink()
    pets.with_name("pets-moved").rename(pets)  # back again: the rescan reads nothing new
    result = rescan_dataset(workspace, "pets")
    assert result.stats["files_reused"] == 6 and result.stats["files_read"] == 0
    assert workspace.get_dataset("pets").num_images == 6


def test_a_folder_gone_during_the_scan_saves_nothing(workspace, pets, monkeypatch):
    before = _saved(workspace, "pets")
    real_scan = _ops.scan_dataset

    def scan_then_unplug(root, **kw):
        result = real_scan(root, **kw)
        shutil.move(pets, pets.with_name("unplugged"))
        return result

    monkeypatch.setattr(_ops, "scan_dataset", scan_then_unplug)
    with pytest.raises(DatasetError, match="is missing"):
        rescan_dataset(workspace, "pets")
    assert _saved(workspace, "pets") == before


def test_an_empty_folder_that_is_there_is_still_rescanned(workspace, pets):
    """Only a missing folder is refused: an existing one is scanned whatever it holds, as before."""
    for cls in ("cat", "dog"):
        shutil.rmtree(pets / cls)
    result = rescan_dataset(workspace, "pets")
    assert not result.usable and workspace.get_dataset("pets").num_images == 0
    assert len(load_index(workspace, "pets")) == 0


def test_cli_rescan_of_a_missing_folder_is_an_error_and_changes_nothing(workspace, pets, capsys):
    before = _saved(workspace, "pets")
    shutil.rmtree(pets)
    code = main(["--workspace", str(workspace.root), "datasets", "rescan", "pets"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: The folder of dataset 'pets' is missing"), err
    assert f"Received: {pets}." in err and "datasets remove pets" in err
    assert _saved(workspace, "pets") == before


def test_the_datasets_page_rescan_of_a_missing_folder_shows_the_error_and_keeps_the_dataset(workspace, pets):
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = "pets"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    before = _saved(workspace, "pets")
    shutil.rmtree(pets)
    at.button(key="ds_rescan_btn").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in at.error).replace("\\", "")
    assert "The folder of dataset 'pets' is missing" in shown and str(pets) in shown
    assert not any("Rescanned" in s.value for s in at.success)
    assert _saved(workspace, "pets") == before
