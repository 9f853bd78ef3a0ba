"""A saved audit read in a moved or copied workspace shows and acts on that workspace's images.

An audit's tables stored each image's absolute ``path`` as it was when the audit ran: after
``cp -a ws ws2`` the copy's audit showed the ORIGINAL's images (its thumbnails, its near-duplicate
groups), and once the original was moved or deleted every thumbnail of the Audit tab read "cannot
be read (changed or gone since the scan; rescan the dataset)". The tables now hold the ``relpath``
only; ``load_audit`` joins it to the dataset's folder now (``ws.get_dataset(name).path``), for audits
an older version saved (with a ``path`` column) too, and after the dataset is registered again at
another folder (``datasets add NAME NEWPATH --overwrite``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.helpers import auditgen as ag
from tlcore.audit import AuditSpec, audit_dataset, load_audit
from tlcore.audit._run import audits_dir
from tlcore.cli import main
from tlcore.datasets import add_dataset, thumbnail
from tlcore.workspace import Workspace
from tlui import audit_widgets as aw

NAME = "photos"
FAST = AuditSpec(weights=None, image_size=32, folds=3, batch_size=16)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A workspace holding 'photos' (inside it: registered relative to its root), a cat's copy filed under
    dog (a near-duplicate group), its features already cached by a first audit."""
    ws = Workspace(tmp_path_factory.mktemp("prepared") / "ws")
    root = ag.photo_tree(ws.data_dir / NAME, {"cat": 6, "dog": 6}, size=(40, 32))
    cat = np.asarray(Image.open(root / "cat" / "cat_001.png").convert("RGB"))
    ag.save(root / "dog" / "copy_of_cat_001.png", cat)
    add_dataset(ws, NAME, root)
    audit_dataset(ws, NAME, FAST, save=False)  # the feature and image caches only
    return ws.root


@pytest.fixture
def original(prepared, tmp_path, monkeypatch) -> Workspace:
    """A private copy of ``prepared`` with a saved audit written where it is (the workspace copied or moved
    afterwards)."""
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    ws = Workspace(shutil.copytree(prepared, tmp_path / "orig" / "ws", symlinks=True))
    audit_dataset(ws, NAME, FAST)
    return ws


def _copy(ws: Workspace, to: Path, *, keep_old: bool) -> Workspace:
    """``cp -a ws to``; then the original renamed away unless ``keep_old``. The workspace at ``to``."""
    shutil.copytree(ws.root, to, symlinks=True)
    if not keep_old:
        ws.root.rename(ws.root.with_name(ws.root.name + "-gone"))
    return Workspace(to)


def _as_older_version_saved(ws: Workspace, folder: Path) -> None:
    """Give the newest audit of ``ws`` the ``path`` column an older version wrote: absolute, into ``folder``."""
    audit = sorted(p for p in audits_dir(ws, NAME).iterdir() if p.is_dir() and p.name != "jobs")[-1]
    for table in ("labels", "quality"):
        df = pd.read_parquet(audit / f"{table}.parquet")
        paths = str(folder) + "/" + df["relpath"].astype(str)
        if "path" in df:
            df["path"] = paths
        else:
            df.insert(1, "path", paths)
        df.to_parquet(audit / f"{table}.parquet", index=False)


def _paths(result) -> list[str]:
    return [*result.labels["path"].astype(str), *result.quality["path"].astype(str)]


def _assert_reads_here(result, folder: Path) -> None:
    """Every image of ``result`` named by its place under ``folder``, each one there and decodable."""
    paths = _paths(result)
    assert paths and all(Path(p).parent.parent == folder for p in paths), paths[:3]
    assert all(Path(p).is_file() for p in paths)
    assert list(result.labels["path"]) == [f"{folder}/{r}" for r in result.labels["relpath"]]
    assert list(result.quality["path"]) == [f"{folder}/{r}" for r in result.quality["relpath"]]
    assert thumbnail(result.labels["path"].iloc[0], size=16).shape[2] == 3


# ------------------------------------------------------------------ the library
@pytest.mark.parametrize("older", [False, True], ids=["saved-now", "saved-by-an-older-version"])
def test_a_copy_whose_original_is_gone_reads_the_audits_images_in_its_own_folder(original, tmp_path, older):
    if older:
        _as_older_version_saved(original, original.root / "data" / NAME)
    ws2 = _copy(original, tmp_path / "elsewhere" / "ws2", keep_old=False)
    result = load_audit(ws2, NAME)
    _assert_reads_here(result, ws2.root / "data" / NAME)
    groups = aw.duplicate_groups(result.near_duplicates(), result.quality)
    members = [p for g in groups for p in g["members"]["path"]]
    assert members and all(Path(p).is_file() and Path(p).is_relative_to(ws2.root) for p in members)


@pytest.mark.parametrize("older", [False, True], ids=["saved-now", "saved-by-an-older-version"])
def test_a_copy_whose_original_still_exists_reads_its_own_images(original, tmp_path, older):
    if older:
        _as_older_version_saved(original, original.root / "data" / NAME)
    ws2 = _copy(original, tmp_path / "ws2", keep_old=True)
    first = load_audit(ws2, NAME).labels.iloc[0]
    # The copy's image is changed: the copy's audit must show the copy's pixels, not the original's.
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(ws2.root / "data" / NAME / first["relpath"])
    result = load_audit(ws2, NAME)
    _assert_reads_here(result, ws2.root / "data" / NAME)
    assert not any(Path(p).is_relative_to(original.root) for p in _paths(result))
    assert thumbnail(result.labels["path"].iloc[0], size=16).max() == 0
    assert thumbnail(load_audit(original, NAME).labels["path"].iloc[0], size=16).max() > 0  # the original's own


def test_new_audits_store_no_absolute_path(original):
    audit = audits_dir(original, NAME) / load_audit(original, NAME).id
    for table in ("labels", "pairs", "quality"):
        df = pd.read_parquet(audit / f"{table}.parquet")
        assert "path" not in df
        text = df.astype(str).to_numpy().ravel()
        assert not any(str(original.root) in t for t in text)
    assert str(original.root) not in (audit / "summary.json").read_text()


@pytest.mark.parametrize("older", [False, True], ids=["saved-now", "saved-by-an-older-version"])
def test_a_dataset_registered_again_at_another_folder_is_read_there(original, tmp_path, monkeypatch, capsys, older):
    if older:
        _as_older_version_saved(original, original.root / "data" / NAME)
    moved = tmp_path / "my-photos" / NAME
    shutil.copytree(original.root / "data" / NAME, moved)
    shutil.rmtree(original.root / "data" / NAME)
    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(moved.parent))
    assert main(["--workspace", str(original.root), "datasets", "add", NAME, str(moved), "--overwrite"]) == 0
    capsys.readouterr()
    _assert_reads_here(load_audit(original, NAME), moved)
    # the page's cached read follows the folder too, within one server process
    st.cache_data.clear()
    shutil.copytree(moved, tmp_path / "again" / NAME)
    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(tmp_path / "again"))
    assert aw.saved_audit(str(original.root), NAME, load_audit(original, NAME).id).labels["path"].iloc[0].startswith(
        str(moved) + "/")
    add_dataset(original, NAME, tmp_path / "again" / NAME, overwrite=True)
    again = aw.saved_audit(str(original.root), NAME, load_audit(original, NAME).id)
    _assert_reads_here(again, tmp_path / "again" / NAME)
    st.cache_data.clear()


# ------------------------------------------------------------------ the CLI and the page
def test_the_cli_shows_the_moved_workspaces_images(original, tmp_path, capsys):
    _as_older_version_saved(original, original.root / "data" / NAME)
    ws2 = _copy(original, tmp_path / "moved" / "ws", keep_old=False)
    assert main(["--workspace", str(ws2.root), "datasets", "audit", NAME, "--show", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    paths = [r["path"] for r in payload["label_issues"]] + [r["path"] for r in payload["quality_issues"]]
    assert paths and all(Path(p).is_file() and Path(p).is_relative_to(ws2.root) for p in paths)


def test_the_audit_tab_of_a_moved_workspace_shows_every_thumbnail(original, tmp_path, monkeypatch):
    ws2 = _copy(original, tmp_path / "moved" / "ws", keep_old=False)
    monkeypatch.setenv("TLCORE_HOME", str(ws2.root))
    at = AppTest.from_file("../streamlit_app.py", default_timeout=90)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = NAME
    at.session_state["ds_tab"] = 4  # Overview, Samples, Problems, Split, Audit
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    unreadable = [c.value for c in at.caption if "cannot be read" in c.value]
    assert not unreadable, unreadable[:3]
    labels = next(t for t in at.tabs if t.label.startswith("Labels"))
    assert [i.caption for img in labels.get("image") for i in img.proto.imgs], "the flagged images are drawn"
    dups = next(t for t in at.tabs if t.label.startswith("Near-duplicates"))
    shown = [i.caption.replace("\\", "") for img in dups.get("image") for i in img.proto.imgs]
    assert {"cat/cat_001.png", "dog/copy_of_cat_001.png"} <= set(shown)
