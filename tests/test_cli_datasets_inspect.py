"""Careless-user checks of ``python -m tlcore datasets inspect | add`` (helper B)."""

from __future__ import annotations

import json

from tlcore.cli import main
from tlcore.datasets import add_dataset


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_of_a_registered_name_keeps_links_inside_the_data_roots(workspace, make_image_tree, tmp_path, capsys):
    """'inspect NAME' reports what the registered dataset holds: a link leading out of the data roots is
    refused there, so inspect must not follow it either (it read the outside folder as part of the class)."""
    root = make_image_tree(workspace.root / "pets", {"cat": 4, "dog": 4})
    outside = make_image_tree(tmp_path / "elsewhere", {"x": 3})
    (root / "dog" / "link").symlink_to(outside / "x")
    add_dataset(workspace, "pets", root)
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "inspect", "pets", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["summary"]["class_counts"]["dog"] == 4
    assert any(p["kind"] == "symlink_escape" for p in payload["problems"])


def test_inspect_of_a_registered_dataset_whose_folder_moved_says_so(workspace, make_image_tree, capsys):
    """The dataset is registered: 'no dataset registered under that name' (listing that very name) misled."""
    root = make_image_tree(workspace.root / "pets", {"cat": 3, "dog": 3})
    add_dataset(workspace, "pets", root)
    root.rename(workspace.root / "pets_moved")
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "inspect", "pets")
    assert code == 2
    assert "no dataset registered" not in err
    assert "folder of dataset 'pets' is missing" in err and "--overwrite" in err


def test_inspect_of_a_zip_file_says_how_to_check_a_zip(workspace, make_image_tree, tmp_path, capsys):
    """'datasets add' takes a .zip, so users try 'inspect' on it first: 'a file, not a folder' left them stuck."""
    import zipfile

    root = make_image_tree(tmp_path / "pets", {"cat": 2, "dog": 2})
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f.relative_to(tmp_path))
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "inspect", str(archive))
    assert code == 2
    assert "zip" in err and "datasets add NAME" in err and "unzip" in err.lower()


def test_inspect_counts_read_right_for_one(workspace, tmp_path, capsys):
    """A one-image, one-class folder printed "1 usable of 1 image files, 1 classes"."""
    from tests.helpers.imagegen import make_tree
    from tlcore.cli import main

    folder = make_tree(tmp_path / "one", {"cat": 1})
    main(["--workspace", str(workspace.root), "datasets", "inspect", str(folder)])
    out = capsys.readouterr().out
    assert "Images:  1 usable of 1 image file, 1 class" in out, out

