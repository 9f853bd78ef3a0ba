"""Removing a dataset with its files never deletes images another registered dataset uses: when another
dataset's folder is the same folder, lies inside it or holds it, the removal is refused and nothing is
removed (neither the registry entry nor a file). The CLI and the Datasets page both remove through
``remove_dataset``, so both refuse. Removing without deleting files works as before."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.idx import write_idx
from tlcore.cli import main
from tlcore.datasets import add_dataset, add_idx_dataset, add_zip_dataset, remove_dataset
from tlcore.errors import DatasetError
from tlcore.workspace import DatasetRecord, Workspace


def _images(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))


@pytest.fixture
def digits(workspace, tmp_path) -> Path:
    """An IDX import (made by the workbench, so removable with its files) registered as 'digits'."""
    images = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 4, dtype=np.uint8)
    add_idx_dataset(workspace, "digits", write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", labels),
                    class_names=["zero", "one", "two"])
    return Path(workspace.get_dataset("digits").path)


def _check_refused(ws: Workspace, folder: Path, others: list[str]) -> None:
    files, entry = _images(folder), ws.get_dataset("digits").to_dict()
    index = (ws.dataset_dir("digits", create=False) / "index.parquet").read_bytes()
    with pytest.raises(DatasetError) as exc:
        remove_dataset(ws, "digits", delete_files=True)
    text = str(exc.value)
    assert all(repr(name) in text for name in others), text
    assert "Nothing was removed" in text and "--delete-files" in text and "remove" in text
    assert ws.get_dataset("digits").to_dict() == entry
    assert (ws.dataset_dir("digits", create=False) / "index.parquet").read_bytes() == index
    assert _images(folder) == files and len(files) == 12


@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_remove_with_files_is_refused_while_another_dataset_uses_them(workspace, digits, where,
                                                                    make_image_tree):
    other = {"same": digits, "inside": digits / "zero", "holds": workspace.data_dir}[where]
    if where == "holds":  # the data folder as a dataset: its class folders are digits/ and more/
        make_image_tree(workspace.data_dir / "more", {"x": 2})
    if where == "inside":  # a folder of class folders inside the import
        (other / "a").mkdir()
        for p in sorted(other.glob("*.png"))[:2]:
            p.rename(other / "a" / p.name)
        (other / "b").mkdir()
        for p in sorted(other.glob("*.png"))[:2]:
            p.rename(other / "b" / p.name)
    add_dataset(workspace, "alias", other)
    _check_refused(workspace, digits, ["alias"])
    assert workspace.has_dataset("alias")

    remove_dataset(workspace, "alias")  # the other one gone, the files may go
    remove_dataset(workspace, "digits", delete_files=True)
    assert not workspace.has_dataset("digits") and not digits.exists()


def test_a_same_folder_reached_through_a_link_counts(workspace, digits):
    link = workspace.root / "link-to-digits"
    link.symlink_to(digits)
    add_dataset(workspace, "alias", link)  # registered as the folder the link leads to; an older entry kept the link
    workspace.put_dataset(DatasetRecord.from_dict({**workspace.get_dataset("alias").to_dict(), "path": str(link)}))
    _check_refused(workspace, digits, ["alias"])


@pytest.mark.parametrize("what", ["class folder", "image", "whole folder"])
def test_a_link_in_another_datasets_folder_to_these_files_counts(workspace, digits, make_image_tree, what):
    """Another dataset built of links (a class folder, one image, or all of it) into the import: the scan
    follows them, so deleting the import would leave that dataset's images broken."""
    mine = make_image_tree(workspace.root / "mine", {"cat": 2, "dog": 2})
    assert (digits / "zero").is_dir()
    if what == "class folder":
        (mine / "zero").symlink_to(digits / "zero")
    elif what == "image":
        (mine / "cat" / "borrowed.png").symlink_to(sorted(digits.rglob("*.png"))[0])
    else:
        (mine / "all").symlink_to(digits.parent)
    add_dataset(workspace, "mine", mine)
    _check_refused(workspace, digits, ["mine"])
    assert "a link in its folder to these files" in str(pytest.raises(
        DatasetError, remove_dataset, workspace, "digits", delete_files=True).value)


def test_a_link_elsewhere_does_not_count(workspace, digits, make_image_tree):
    """A link to files outside the import (here, to another class folder of its own dataset) does not
    hold the removal up."""
    mine = make_image_tree(workspace.root / "mine", {"cat": 2, "dog": 2})
    (mine / "kitten").symlink_to(mine / "cat")
    add_dataset(workspace, "mine", mine)
    remove_dataset(workspace, "digits", delete_files=True)
    assert not digits.exists() and workspace.has_dataset("mine")


def test_every_dataset_using_the_files_is_named(workspace, digits):
    add_dataset(workspace, "alias", digits)
    add_dataset(workspace, "again", digits)
    _check_refused(workspace, digits, ["alias", "again"])


def test_remove_without_deleting_files_still_works_and_keeps_them(workspace, digits):
    add_dataset(workspace, "alias", digits)
    remove_dataset(workspace, "digits")
    assert not workspace.has_dataset("digits") and workspace.has_dataset("alias")
    assert len(_images(digits)) == 12


def test_a_sibling_folder_with_a_longer_name_is_not_inside(workspace, digits, make_image_tree):
    """data/digits2 is not inside data/digits: removing digits with its files goes ahead."""
    add_dataset(workspace, "digits2", make_image_tree(workspace.data_dir / "digits2", {"a": 2, "b": 2}))
    remove_dataset(workspace, "digits", delete_files=True)
    assert not digits.exists() and (workspace.data_dir / "digits2").is_dir()


def test_cli_remove_with_files_is_refused_and_names_the_other_dataset(workspace, digits, capsys):
    add_dataset(workspace, "alias", digits)
    code = main(["--workspace", str(workspace.root), "datasets", "remove", "digits", "--delete-files", "--yes"])
    out, err = capsys.readouterr()
    assert code == 2 and "Removed" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: The files of dataset 'digits' are used by"), err
    assert "'alias' (the same folder)" in err and "'python -m tlcore datasets remove alias'" in err
    assert workspace.has_dataset("digits") and len(_images(digits)) == 12
    code = main(["--workspace", str(workspace.root), "datasets", "remove", "digits", "--yes"])
    assert code == 0 and not workspace.has_dataset("digits") and len(_images(digits)) == 12


def test_the_datasets_page_remove_with_files_is_refused_with_the_reason(workspace, tmp_path, make_image_tree):
    folder = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, Path("pets") / f.relative_to(folder))
    add_zip_dataset(workspace, "pets", buf)
    extracted = Path(workspace.get_dataset("pets").path)
    add_dataset(workspace, "alias", extracted)
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = "pets"
    at.run()
    at.checkbox(key="ds_rm_confirm::pets").check()
    at.checkbox(key="ds_rm_files::pets").check()
    at.run()
    at.button(key="ds_rm_btn").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in at.error).replace("\\", "")
    assert "used by another registered dataset" in shown and "'alias'" in shown
    assert workspace.has_dataset("pets") and workspace.has_dataset("alias")
    assert len(_images(extracted)) == 6
