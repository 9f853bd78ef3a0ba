"""A careless user's round 20: advice that lost data, run-on error sentences, datasets odds and ends,
and the Results page's refusal of a journal outside the data roots.

- A name already registered: the advice offers ``add NAME PATH --overwrite`` first (it keeps the
  dataset's decisions, split settings and audits); ``datasets remove`` says what goes with it.
- ``TLCoreError`` puts a full stop between a message without one and "Received: ...".
- "1 of these images is", relabel to the label an image has and exclude twice record nothing (and
  say so), ``datasets list`` marks a dataset whose folder is gone, an absolute path inside the
  dataset's folder names an image.
- ``check_storage_location`` says why the page refuses, the folder to allow, that the CLI is not
  limited, and which file a relative path named.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tlcore.cli import main
from tlcore.config import SplitSpec
from tlcore.datasets import (
    add_dataset,
    add_overrides,
    load_overrides,
    overrides_path,
    save_split_spec,
    undo_overrides,
)
from tlcore.errors import ConfigError, NotFoundError, PathNotAllowedError, TLCoreError
from tlcore.search import check_storage_location


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pets(workspace, make_image_tree):
    root = make_image_tree(workspace.root / "pets", {"cat": 4, "dog": 4}, size=(16, 12))
    add_dataset(workspace, "pets", root)
    return root


def _with_history(workspace) -> None:
    """Two decisions, split settings and one saved audit: what a removal loses."""
    add_overrides(workspace, "pets", ["cat/cat_000.png"], "relabel", label="dog")
    add_overrides(workspace, "pets", ["dog/dog_001.png"], "exclude")
    save_split_spec(workspace, "pets", SplitSpec(val_fraction=0.25, test_fraction=0.25, seed=7))
    audit = workspace.dataset_dir("pets") / "audits" / "20260101-000000-abcd"
    audit.mkdir(parents=True)
    (audit / "summary.json").write_text(json.dumps({"id": audit.name}))


# ------------------------------------------------------------- 1. advice that lost data
def test_a_taken_name_offers_overwrite_first_and_following_it_keeps_the_decisions(workspace, pets, tmp_path,
                                                                                   make_image_tree, capsys):
    _with_history(workspace)
    moved = make_image_tree(tmp_path / "moved", {"cat": 4, "dog": 4}, size=(16, 12))
    code, _, err = run(capsys, "datasets", "add", "pets", moved, "--allow-root")
    assert code == 2
    text = " ".join(err.split())
    assert f"'python -m tlcore datasets add pets {moved} --overwrite --allow-root'" in text
    assert text.index("--overwrite") < text.index("datasets remove pets")  # the way that keeps them comes first
    assert "2 keep/relabel/exclude decisions, split settings and 1 saved audit stay" in text
    assert "which also deletes its 2 keep/relabel/exclude decisions" in text
    assert str(moved) not in [str(r) for r in workspace.data_roots]  # the refused add kept no root

    code, out, _ = run(capsys, "datasets", "add", "pets", moved, "--overwrite", "--allow-root")  # the advice
    assert code == 0 and "Registered 'pets'" in out
    assert workspace.get_dataset("pets").path == str(moved.resolve())
    assert len(load_overrides(workspace, "pets")) == 2
    assert (workspace.dataset_dir("pets") / "split.yaml").is_file()


def test_a_taken_name_inside_the_roots_needs_no_allow_root_and_a_bare_dataset_names_nothing_kept(
        workspace, pets, capsys):
    code, _, err = run(capsys, "datasets", "add", "pets", pets)
    text = " ".join(err.split())
    assert code == 2 and f"'python -m tlcore datasets add pets {pets} --overwrite'" in text
    assert "--allow-root" not in text and "decision" not in text and "also deletes" not in text


def test_remove_says_what_it_deletes_with_the_dataset(workspace, pets, capsys, monkeypatch):
    _with_history(workspace)
    asked = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    code, out, _ = run(capsys, "datasets", "remove", "pets")
    assert code == 1 and workspace.has_dataset("pets")
    assert "with its 2 keep/relabel/exclude decisions, split settings and 1 saved audit?" in asked[0]
    assert "datasets add pets NEW_PATH --overwrite" in out  # the way to keep them, before the question

    code, out, _ = run(capsys, "datasets", "remove", "pets", "--yes")
    assert code == 0 and not workspace.has_dataset("pets")
    assert out.strip() == "Removed 'pets', with its 2 keep/relabel/exclude decisions, split settings and 1 saved " \
                          "audit."


def test_remove_of_a_dataset_without_decisions_says_only_removed(workspace, pets, capsys):
    code, out, _ = run(capsys, "datasets", "remove", "pets", "--yes")
    assert code == 0 and out.strip() == "Removed 'pets'."


# ------------------------------------------------------------- 2. run-on error sentences
@pytest.mark.parametrize(("message", "shown"), [
    ("Connection refused", "Connection refused. Received: x. Fix it."),
    ("Cannot open the study storage: connection refused", "Cannot open the study storage: connection refused. "
                                                          "Received: x. Fix it."),
    ("It failed.", "It failed. Received: x. Fix it."),
    ("Why?", "Why? Received: x. Fix it."),
    ("Stop!", "Stop! Received: x. Fix it."),
    ("The storage:", "The storage: Received: x. Fix it."),
    ("Bad value (see the log.)", "Bad value (see the log.) Received: x. Fix it."),
    ("Use 'a' (or 'b')", "Use 'a' (or 'b'). Received: x. Fix it."),
    ("Trailing space  ", "Trailing space. Received: x. Fix it."),
])
def test_a_message_without_a_full_stop_gets_one_before_what_follows(message, shown):
    assert str(TLCoreError(message, received="x", fix="Fix it.")) == shown
    assert str(NotFoundError(message, received="x", fix="Fix it.")) == shown


def test_a_message_alone_or_with_a_fix_only_is_left_as_written():
    assert str(TLCoreError("No stop here")) == "No stop here"
    assert str(ConfigError("No stop here", fix="Do this.")) == "No stop here. Do this."


# ------------------------------------------------------------- 3. datasets odds and ends
def test_one_unknown_image_is_named_in_the_singular(workspace, pets):
    with pytest.raises(ConfigError) as one:
        add_overrides(workspace, "pets", ["cat/cat_000.png", "cat/nope.png"], "exclude")
    assert "1 of these images is not in the dataset's index." in str(one.value)
    with pytest.raises(ConfigError) as two:
        add_overrides(workspace, "pets", ["cat/cat_000.png", "cat/nope.png", "dog/nope.png"], "exclude")
    assert "2 of these images are not in the dataset's index." in str(two.value)
    with pytest.raises(ConfigError) as alone:
        add_overrides(workspace, "pets", ["cat/nope.png"], "exclude")
    assert str(alone.value).startswith("This image is not in the dataset's index.")
    assert load_overrides(workspace, "pets") == []


def test_relabel_to_the_label_an_image_has_records_nothing(workspace, pets, capsys):
    code, out, _ = run(capsys, "datasets", "relabel", "pets", "cat/cat_000.png", "--to", "cat")
    assert code == 0 and "cat/cat_000.png already has the label 'cat'; skipped." in out
    assert "Nothing recorded in 'pets'" in out
    assert not overrides_path(workspace, "pets").exists()
    with pytest.raises(ConfigError, match=r"Nothing was recorded: cat/cat_000\.png already has the label 'cat'"):
        add_overrides(workspace, "pets", ["cat/cat_000.png"], "relabel", label="cat")

    add_overrides(workspace, "pets", ["cat/cat_000.png"], "relabel", label="dog")
    code, out, _ = run(capsys, "datasets", "relabel", "pets", "cat/cat_000.png", "--to", "dog")
    assert code == 0 and "is already relabelled as 'dog'; skipped." in out
    assert len(load_overrides(workspace, "pets")) == 1
    # back to its own label, or out of an exclusion, is a change: recorded
    assert len(add_overrides(workspace, "pets", ["cat/cat_000.png"], "relabel", label="cat")) == 1
    add_overrides(workspace, "pets", ["cat/cat_001.png"], "exclude")
    assert len(add_overrides(workspace, "pets", ["cat/cat_001.png"], "relabel", label="cat")) == 1


def test_excluding_an_excluded_image_again_records_nothing(workspace, pets, capsys):
    code, out, _ = run(capsys, "datasets", "exclude", "pets", "cat/cat_000.png")
    assert code == 0 and "1 image excluded" in out
    code, out, _ = run(capsys, "datasets", "exclude", "pets", "cat/cat_000.png")
    assert code == 0 and "cat/cat_000.png is already excluded; skipped." in out and "Nothing recorded" in out
    assert len(load_overrides(workspace, "pets")) == 1
    code, out, _ = run(capsys, "datasets", "exclude", "pets", "cat/cat_000.png", "dog/dog_000.png")
    assert code == 0 and "cat/cat_000.png is already excluded; skipped." in out and "1 image excluded" in out
    assert [d.relpath for d in load_overrides(workspace, "pets")] == ["cat/cat_000.png", "dog/dog_000.png"]
    # the library skips it too (the Datasets page's buttons go through it)
    assert [d.relpath for d in add_overrides(workspace, "pets", ["cat/cat_000.png", "cat/cat_001.png"],
                                             "exclude")] == ["cat/cat_001.png"]
    with pytest.raises(ConfigError, match="Nothing was recorded: cat/cat_000.png is already excluded"):
        add_overrides(workspace, "pets", ["cat/cat_000.png"], "exclude")


def test_list_marks_a_dataset_whose_folder_is_gone(workspace, pets, capsys):
    code, out, _ = run(capsys, "datasets", "list")
    assert code == 0 and "folder missing" not in out
    shutil.rmtree(pets)
    code, out, _ = run(capsys, "datasets", "list")
    line = next(x for x in out.splitlines() if x.startswith("pets "))
    assert code == 0 and line.endswith(f"{pets}  [folder missing]")
    assert "The folder of dataset 'pets' is not there" in out and "datasets add pets NEW_PATH --overwrite" in out
    code, out, _ = run(capsys, "datasets", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["pets"]["folder_problem"] == "folder missing"


def test_an_absolute_path_inside_the_dataset_folder_names_the_image(workspace, pets, tmp_path, capsys):
    code, out, _ = run(capsys, "datasets", "exclude", "pets", pets / "cat" / "cat_000.png")
    assert code == 0 and "1 image excluded" in out
    assert [d.relpath for d in load_overrides(workspace, "pets")] == ["cat/cat_000.png"]
    code, out, _ = run(capsys, "datasets", "relabel", "pets", pets / "dog" / ".." / "dog" / "dog_000.png",
                       "--to", "cat")
    assert code == 0 and load_overrides(workspace, "pets")[-1].relpath == "dog/dog_000.png"
    alias = tmp_path / "alias"
    alias.symlink_to(pets)  # the same folder by another way: its links followed
    add_overrides(workspace, "pets", [str(alias / "cat" / "cat_001.png")], "exclude")
    assert load_overrides(workspace, "pets")[-1].relpath == "cat/cat_001.png"
    assert [d.relpath for d in undo_overrides(workspace, "pets", relpaths=[str(pets / "cat" / "cat_001.png")])] \
        == ["cat/cat_001.png"]

    before = overrides_path(workspace, "pets").read_text()
    outside = tmp_path / "elsewhere" / "cat_000.png"
    code, _, err = run(capsys, "datasets", "exclude", "pets", outside)
    assert code == 2 and "This image is not inside the folder of dataset 'pets'" in err and str(outside) in err
    code, _, err = run(capsys, "datasets", "exclude", "pets", pets)  # the folder itself is no image
    assert code == 2 and "not inside the folder" in err
    assert overrides_path(workspace, "pets").read_text() == before


# ------------------------------------------------------------- 4. the Results page's journal path
def test_a_journal_outside_the_roots_is_refused_with_why_and_the_folder_to_allow(workspace, tmp_path):
    target = tmp_path / "journals" / "studies.log"
    target.parent.mkdir()
    with pytest.raises(PathNotAllowedError) as info:
        check_storage_location(workspace, str(target))
    text = str(info.value)
    assert "outside the allowed data roots" in text and "visitor" in text
    assert f"'python -m tlcore datasets allow-root {target.parent}'" in text
    assert f"'python -m tlcore search list --storage {target}'" in text and "not limited" in text
    assert "Put the journal under" not in text and "create the folder" not in text
    # following it: the page accepts the journal
    assert main(["datasets", "allow-root", str(target.parent)]) == 0
    assert check_storage_location(type(workspace)(workspace.root), str(target)) == str(target)


def test_a_journal_in_a_missing_folder_says_to_create_it_first(workspace, tmp_path):
    target = tmp_path / "new" / "studies.log"
    with pytest.raises(PathNotAllowedError) as info:
        check_storage_location(workspace, str(target))
    assert f"allow-root {target.parent}' (create the folder {target.parent} first)" in str(info.value)


def test_a_relative_journal_path_is_read_from_the_current_folder_and_the_message_says_so(workspace, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)  # as the CLI's --storage reads a relative path
    with pytest.raises(PathNotAllowedError) as info:
        check_storage_location(workspace, "studies.log")
    text = str(info.value)
    real = os.path.realpath(tmp_path / "studies.log")
    assert f"studies.log (a relative path, read from the current folder {os.getcwd()}: {real})" in text
    assert f"allow-root {os.path.dirname(real)}'" in text
    monkeypatch.chdir(workspace.root)
    assert check_storage_location(workspace, "studies.log") == "studies.log"  # inside the roots from here
