"""Careless-user checks of ``python -m tlcore augment preview`` (helper B)."""

from __future__ import annotations

from tlcore.cli import main
from tlcore.datasets import add_dataset, rescan_dataset


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_preview_refuses_to_write_into_a_registered_dataset(workspace, make_image_tree, capsys):
    """Previews written into a class folder became training images of that class (near-copies of the
    original, across the split) at the next rescan."""
    root = make_image_tree(workspace.root / "pets", {"cat": 3, "dog": 3})
    add_dataset(workspace, "pets", root)
    image = sorted((root / "cat").iterdir())[0]
    before = sorted(p.name for p in (root / "cat").iterdir())
    code, out, err = run(capsys, "--workspace", str(workspace.root), "augment", "preview", "light",
                         "--image", str(image), "--n", "2", "--out", str(root / "cat"))
    assert code == 2
    assert "pets" in err and "--out" in err
    assert sorted(p.name for p in (root / "cat").iterdir()) == before
    assert len(rescan_dataset(workspace, "pets").index) == 6


def test_preview_out_naming_a_file_says_so(workspace, make_image_tree, tmp_path, capsys):
    root = make_image_tree(tmp_path / "photos", {"cat": 1})
    image = sorted((root / "cat").iterdir())[0]
    code, out, err = run(capsys, "--workspace", str(workspace.root), "augment", "preview", "light",
                         "--image", str(image), "--n", "1", "--out", str(image))
    assert code == 2
    assert "names a file" in err and "folder" in err
    assert "permissions" not in err
