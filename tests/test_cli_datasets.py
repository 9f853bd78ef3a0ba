"""The datasets CLI: inspect on a messy folder, add/list/rescan/remove, IDX import, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers.idx import write_idx
from tests.helpers.imagegen import corrupt_file, make_png_bomb, make_tree, truncate_file, write_bytes
from tests.helpers.zips import zip_with_a_link_and_an_empty_class
from tlcore.cli import main
from tlcore.datasets import add_zip_dataset


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def messy(workspace):
    root = make_tree(workspace.root / "messy", {"cat": 6, "dog": 5}, ext=".jpg", size=(40, 30))
    (root / "empty").mkdir()
    truncate_file(next((root / "cat").glob("*.jpg")))
    corrupt_file(sorted((root / "dog").glob("*.jpg"))[0], at=0.4, length=200)
    write_bytes(root / "dog" / "zero.jpg", b"")
    write_bytes(root / "dog" / "notes.jpg", b"this is text, not a JPEG")
    make_png_bomb(root / "cat" / "bomb.png")
    (root / "cat" / "copy.jpg").write_bytes(sorted((root / "cat").glob("*.jpg"))[-1].read_bytes())
    (root / "dog" / "clash.jpg").write_bytes(sorted((root / "cat").glob("*.jpg"))[-1].read_bytes())
    Image.new("RGB", (4, 4)).save(root / "cat" / "tiny.png")
    Image.new("RGB", (300, 20)).save(root / "dog" / "wide.png")
    write_bytes(root / "stray.png", (root / "cat" / "tiny.png").read_bytes())
    write_bytes(root / ".DS_Store", b"junk")
    (root / "cat" / "folder.jpg").mkdir()
    return root


def test_inspect_reports_every_problem_file(messy, capsys):
    code, out, err = run(capsys, "datasets", "inspect", str(messy), "--json")
    assert code == 0, err
    payload = json.loads(out)
    kinds = {(p["kind"], p["relpath"].split("/")[-1]) for p in payload["problems"]}
    for expected in ["empty_file", "not_an_image", "decompression_bomb", "tiny_image", "extreme_aspect",
                     "duplicate", "conflicting_labels", "root_file"]:
        assert any(k == expected for k, _ in kinds), (expected, kinds)
    assert any(k in ("corrupt", "truncated") for k, _ in kinds)
    assert ("empty_class", "empty") in {(p["kind"], p["relpath"]) for p in payload["problems"]}
    assert set(payload["classes"]) == {"cat", "dog"}
    assert payload["usable"] is True


def test_inspect_text_output(messy, capsys):
    code, out, _ = run(capsys, "datasets", "inspect", str(messy))
    assert code == 0
    assert "Classes:" in out and "decompression_bomb" in out and "->" in out


@pytest.mark.parametrize("case", ["missing", "no_classes", "one_class"])
def test_inspect_unusable_exits_nonzero_with_one_line_reason(tmp_path, capsys, case):
    path = tmp_path / "data"
    if case == "no_classes":
        path.mkdir()
        Image.new("RGB", (32, 32)).save(path / "a.png")
    elif case == "one_class":
        make_tree(path, {"only": 3})
    code, out, err = run(capsys, "datasets", "inspect", str(path))
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    if case == "missing":  # no empty report ("0 images", "Problems: none") before the error
        assert out == "" and code == 2 and "No folder there" in err


def test_add_list_rescan_remove(workspace, capsys):
    make_tree(workspace.root / "pets", {"cat": 4, "dog": 4})
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "pets", str(workspace.root / "pets"))
    assert code == 0, err
    code, out, _ = run(capsys, "--workspace", str(workspace.root), "datasets", "list", "--json")
    names = {d["name"] for d in json.loads(out)}
    assert {"pets", "demo"} <= names
    code, out, _ = run(capsys, "--workspace", str(workspace.root), "datasets", "rescan", "pets")
    assert code == 0 and "0 files read" in out
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "remove", "pets", "--yes")
    assert code == 0
    assert not workspace.has_dataset("pets")


def test_add_says_which_commands_show_and_mend_a_folders_problems(workspace, capsys):
    pets = make_tree(workspace.root / "pets", {"cat": 3, "dog": 3})
    (pets / "dog" / "notes.jpg").write_text("not a photo")
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "pets", str(pets))
    assert code == 0, err
    assert out.splitlines()[0] == "Registered 'pets': 6 images in 2 classes, 1 problems."
    assert ("'python -m tlcore datasets inspect pets' names each file and what to do: fix or delete those files "
            "in the folder, then 'python -m tlcore datasets rescan pets'.") in out
    assert "Problems tab" not in out and "press Rescan" not in out


def test_inspect_an_upload_lists_the_entries_its_zip_skipped_and_its_empty_classes(workspace, tmp_path, capsys):
    pets = make_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    buf = zip_with_a_link_and_an_empty_class(pets)
    add_zip_dataset(workspace, "pets", buf)
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "inspect", "pets")
    assert code == 0, err
    lines = out.splitlines()
    skipped = next(i for i, line in enumerate(lines) if "archive_skipped" in line)
    assert "cat/link.png was not extracted" in lines[skipped] and "symbolic link" in lines[skipped]
    assert "->" in lines[skipped + 1]  # what to do
    assert any("empty_class" in line and "owl" in line for line in lines)


def test_add_outside_data_roots_is_refused_with_a_way_out(workspace, tmp_path, capsys):
    outside = make_tree(tmp_path / "outside", {"a": 3, "b": 3})
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "x", str(outside))
    assert code == 2 and "outside the allowed data roots" in err and "allow-root" in err
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "x", str(outside), "--allow-root")
    assert code == 0, err


def test_a_refused_add_with_allow_root_leaves_no_new_data_root(workspace, tmp_path, capsys):
    """A one-class folder was refused, but the folder had been added to the allowed data roots all the same."""
    import os

    from tlcore.workspace import Workspace

    one = make_tree(tmp_path / "one", {"only": 3})
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "one", str(one), "--allow-root")
    assert code == 2 and "one class" in err, err
    roots = [str(r) for r in Workspace(workspace.root).data_roots]
    assert os.path.realpath(one) not in roots and not Workspace(workspace.root).has_dataset("one")
    ok = make_tree(tmp_path / "two", {"a": 3, "b": 3})  # a root added by a successful add stays
    assert run(capsys, "--workspace", str(workspace.root), "datasets", "add", "two", str(ok), "--allow-root")[0] == 0
    assert os.path.realpath(ok) in [str(r) for r in Workspace(workspace.root).data_roots]


def test_remove_demo_keeps_it_removed_until_restored(workspace, capsys):
    run(capsys, "--workspace", str(workspace.root), "datasets", "list")
    assert workspace.has_dataset("demo")
    assert run(capsys, "--workspace", str(workspace.root), "datasets", "remove", "demo", "--yes")[0] == 0
    run(capsys, "--workspace", str(workspace.root), "datasets", "list")
    assert not workspace.has_dataset("demo")
    assert run(capsys, "--workspace", str(workspace.root), "datasets", "restore-demo")[0] == 0
    assert workspace.has_dataset("demo")


def test_import_idx(workspace, tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 255, (9, 8, 8), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 3, dtype=np.uint8)
    ip, lp = write_idx(tmp_path / "i.gz", images, gz=True), write_idx(tmp_path / "l", labels)
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "import-idx", "digits",
                         "--images", str(ip), "--labels", str(lp), "--classes", "zero,one,two")
    assert code == 0, err
    assert workspace.get_dataset("digits").num_classes == 3
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "import-idx", "digits2",
                       "--images", str(ip), "--labels", str(lp), "--classes", "zero")
    assert code == 2 and "class names" in err
    assert not (workspace.data_dir / "digits2").exists()


def test_import_fashion_mnist_limits_each_split_as_asked(workspace, tmp_path, capsys, monkeypatch):
    """A limit given for one split only leaves the other whole; 0 keeps none of it; a negative one is refused."""
    fm = tmp_path / "fm"
    fm.mkdir()
    for stem, n in (("train-images-idx3-ubyte", 40), ("t10k-images-idx3-ubyte", 20)):
        write_idx(fm / stem, np.zeros((n, 28, 28), np.uint8))
        write_idx(fm / stem.replace("images-idx3", "labels-idx1"), np.arange(n, dtype=np.uint8) % 10)
    monkeypatch.setenv("TLCORE_FASHION_MNIST", str(fm))
    code, _, err = run(capsys, "datasets", "import-fashion-mnist", "small", "--train-per-class", "2")
    assert code == 0, err
    root = workspace.data_dir / "small"
    assert len(list((root / "train").rglob("*.png"))) == 20 and len(list((root / "test").rglob("*.png"))) == 20
    # 0 keeps none of that split (it once meant 'every image'): the validation and test images then come
    # from the training ones.
    code, _, err = run(capsys, "datasets", "import-fashion-mnist", "trainonly", "--train-per-class", "2",
                       "--test-per-class", "0")
    assert code == 0, err
    root = workspace.data_dir / "trainonly"
    assert len(list((root / "train").rglob("*.png"))) == 20 and not list((root / "test").rglob("*.png"))
    assert workspace.get_dataset("trainonly").num_images == 20
    code, _, err = run(capsys, "datasets", "import-fashion-mnist", "none", "--test-per-class", "-1")
    assert code == 2 and "0 or more" in err and "per_class=-1 (test)" in err
    assert not workspace.has_dataset("none") and not (workspace.data_dir / "none").exists()


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tlcore", "--workspace", str(tmp_path), "datasets", "list"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout


def test_add_takes_a_zip_file_as_the_page_upload_does(workspace, tmp_path, capsys):
    pets = make_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_with_a_link_and_an_empty_class(pets).getvalue())
    code, out, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "pets", str(archive))
    assert code == 0, err
    record = workspace.get_dataset("pets")
    assert record.source == "upload" and record.num_images == 6
    assert "extracted into" in out and "not extracted" in out  # the skipped link, said at once
    # The advice names commands, not the Datasets page's tab and buttons.
    assert "'python -m tlcore datasets inspect pets' names each file" in out
    assert "'python -m tlcore datasets remove pets'" in out and "Problems tab" not in out
    assert (workspace.data_dir / "pets" / "cat").is_dir() and archive.is_file()  # the archive is left as it was
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "again", str(archive),
                       "--overwrite")
    assert code == 2 and "not to a zip file" in err and not workspace.has_dataset("again")


@pytest.mark.parametrize("argv", [["datasets", "inspect", "demo"], ["datasets", "rescan", "demo"],
                                  ["datasets", "audit", "demo", "--list"], ["datasets", "overrides", "demo"]])
def test_commands_that_name_the_demo_find_it_on_a_fresh_workspace(workspace, capsys, argv):
    """The dashboard registers the built-in demo on its first page; the commands that name it do too
    (and only they: another name leaves the workspace as it was)."""
    code, _, err = run(capsys, "datasets", "rescan", "pets")
    assert code == 2 and "Registered datasets: none yet" in err and not workspace.has_dataset("demo")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert workspace.has_dataset("demo")


def test_a_removed_demo_stays_removed_when_a_command_names_it(workspace, capsys):
    assert run(capsys, "datasets", "list")[0] == 0
    assert run(capsys, "datasets", "remove", "demo", "--yes")[0] == 0
    code, _, err = run(capsys, "datasets", "rescan", "demo")
    assert code == 2 and "No dataset is registered under that name" in err
    assert not workspace.has_dataset("demo")


def test_a_zip_added_again_after_its_dataset_was_overwritten_says_which_folder_is_in_the_way(workspace, tmp_path,
                                                                                             capsys):
    """Re-adding a zip whose first copy a folder dataset replaced (--overwrite) said "remove the old dataset
    with its files first", which the user had done and which could not help: no dataset used the folder."""
    from tlcore.datasets import add_dataset, remove_dataset
    from tlcore.datasets._ops import _new_data_folder
    from tlcore.errors import ConfigError

    pets = make_tree(workspace.root / "photos" / "pets", {"cat": 3, "dog": 3})  # under the data roots
    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_with_a_link_and_an_empty_class(pets).getvalue())
    add_zip_dataset(workspace, "pets", archive)
    kept = workspace.data_dir / "pets"
    with pytest.raises(ConfigError) as info:  # while the upload is registered: remove it with its files
        _new_data_folder(workspace, "pets")
    assert "datasets remove pets --delete-files" in info.value.fix
    add_dataset(workspace, "pets", pets, overwrite=True)  # the name now names the original folder
    remove_dataset(workspace, "pets", delete_files=True)  # not the workbench's folder: nothing deleted
    assert kept.is_dir()
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "pets", str(archive))
    assert code == 2 and "no registered dataset uses" in err and "delete it" in err, err
    assert "an import or upload stopped before it registered the folder" in err, err
    # the way out it names for a folder an interrupted import left whole: register it as it is
    assert f"'python -m tlcore datasets add pets {kept}'" in err, err
    code, _, err = run(capsys, "--workspace", str(workspace.root), "datasets", "add", "pets", str(kept))
    assert code == 0, err
    assert workspace.get_dataset("pets").path == str(kept) and workspace.get_dataset("pets").num_images == 6
