"""``python -m tlcore datasets audit | relabel | exclude | keep | overrides``: output, exit codes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import auditgen as ag
from tlcore.cli import main
from tlcore.datasets import add_dataset, current_overrides, dataset_splits, load_overrides, overrides_path

FAST = ["--weights", "none", "--image-size", "32", "--folds", "3"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pets(workspace):
    root = ag.photo_tree(workspace.root / "pets", {"cat": 7, "dog": 7}, size=(40, 32))
    add_dataset(workspace, "pets", root)
    return workspace


def ws_args(ws):
    return ["--workspace", str(ws.root)]


def test_audit_json_list_and_show(pets, capsys):
    code, out, err = run(capsys, *ws_args(pets), "datasets", "audit", "pets", *FAST, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["dataset"] == "pets" and payload["saved"]
    assert {"label_issues", "confused_pairs", "near_duplicates", "quality_issues"} <= set(payload)
    assert payload["labels"]["audited"] == payload["images"]["total"] - payload["images"]["by_split"].get("test", 0)
    code, out, _ = run(capsys, *ws_args(pets), "datasets", "audit", "pets", "--list")
    assert code == 0 and payload["id"] in out
    code, out, _ = run(capsys, *ws_args(pets), "datasets", "audit", "pets", "--show")
    assert code == 0 and f"Audit {payload['id']}" in out and "Labels (" in out and "Photo quality" in out


def test_audit_text_report(pets, capsys):
    code, out, err = run(capsys, *ws_args(pets), "datasets", "audit", "pets", *FAST, "--limit", "3")
    assert code == 0, err
    assert "suspected label errors" in out and "Near-duplicates" in out and "saved:" in out


def test_audit_refuses_too_few_images_in_one_line(workspace, make_image_tree, capsys):
    add_dataset(workspace, "few", make_image_tree(workspace.root / "few", {"a": 9, "b": 2}))
    code, out, err = run(capsys, *ws_args(workspace), "datasets", "audit", "few", *FAST)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:") and "b (1) in the train and val splits" in lines[0] and "fold" in lines[0]


def test_audit_unknown_dataset(workspace, capsys):
    code, _, err = run(capsys, *ws_args(workspace), "datasets", "audit", "nope", *FAST)
    assert code == 2 and err.startswith("error:")


def test_relabel_exclude_keep_list_undo(pets, capsys):
    w = ws_args(pets)
    code, out, err = run(capsys, *w, "datasets", "relabel", "pets", "cat/cat_000.png", "--to", "dog")
    assert code == 0, err
    assert "relabelled as 'dog'" in out
    assert run(capsys, *w, "datasets", "exclude", "pets", "dog/dog_001.png", "--note", "two dogs")[0] == 0
    assert run(capsys, *w, "datasets", "keep", "pets", "dog/dog_002.png", "--flag", "blurry")[0] == 0
    splits = dataset_splits(pets, "pets").set_index("relpath")
    assert splits.loc["cat/cat_000.png", "label"] == "dog" and "dog/dog_001.png" not in splits.index
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets")
    assert code == 0 and "#1" in out and "relabel" in out and "[two dogs]" in out
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets", "--json")
    assert [d["action"] for d in json.loads(out)] == ["relabel", "exclude", "keep"]
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets", "--undo", "dog/dog_001.png")
    assert code == 0 and "undone: #2 exclude dog/dog_001.png" in out
    assert "dog/dog_001.png" in set(dataset_splits(pets, "pets")["relpath"])
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets", "--undo-last")
    assert "undone: #3 keep" in out


def test_export_import_and_bad_input(pets, capsys, tmp_path):
    w = ws_args(pets)
    run(capsys, *w, "datasets", "exclude", "pets", "cat/cat_001.png", "cat/cat_002.png")
    out_file = tmp_path / "decisions.csv"
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets", "--export", str(out_file))
    assert code == 0 and "Exported 2 decisions" in out
    assert out_file.read_text().startswith("seq,relpath,action")
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets", "--export", "-")
    assert out == out_file.read_text()
    code, out, _ = run(capsys, *w, "datasets", "overrides", "pets", "--import", str(out_file), "--replace")
    assert code == 0 and "Imported 2 decisions" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("relpath,action,label\ncat/cat_003.png,relabel,horse\n")
    code, _, err = run(capsys, *w, "datasets", "overrides", "pets", "--import", str(bad))
    assert code == 2 and "Line 2 of the imported CSV" in err
    # Unknown class, unknown image: one line each, nothing recorded.
    code, _, err = run(capsys, *w, "datasets", "relabel", "pets", "cat/cat_004.png", "--to", "horse")
    assert code == 2 and "cat, dog" in err
    code, _, err = run(capsys, *w, "datasets", "exclude", "pets", "cat/missing.png")
    assert code == 2 and "not in the dataset's index" in err
    assert len(load_overrides(pets, "pets")) == 2


def test_corrupt_manifest_is_named_by_line(pets, capsys):
    w = ws_args(pets)
    run(capsys, *w, "datasets", "exclude", "pets", "cat/cat_001.png")
    path = overrides_path(pets, "pets")
    path.write_text(path.read_text() + "{oops\n")
    code, _, err = run(capsys, *w, "datasets", "overrides", "pets")
    assert code == 2 and "Line 2 of the override manifest" in err
    code, _, err = run(capsys, *w, "datasets", "keep", "pets", "cat/cat_002.png")
    assert code == 2 and "Line 2" in err


def test_exclude_from_the_latest_audit(pets, capsys):
    from PIL import Image

    from tlcore.datasets import rescan_dataset

    root = pets.root / "pets"
    original = Image.open(root / "cat" / "cat_003.png").convert("RGB")
    ag.save(root / "cat" / "cat_003_big.png", ag.resized(np.asarray(original), 1.5))
    rescan_dataset(pets, "pets")
    w = ws_args(pets)
    assert run(capsys, *w, "datasets", "audit", "pets", *FAST, "--json")[0] == 0
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    decisions = load_overrides(pets, "pets")
    assert [d.relpath for d in decisions] == ["cat/cat_003_big.png"] and decisions[0].flag == "near_duplicate"


# ------------------------------------------------------- careless-user rounds
@pytest.fixture
def pets_with_copy(workspace):
    """``pets`` with one near-duplicate: cat_003 enlarged."""
    root = ag.photo_tree(workspace.root / "pets", {"cat": 7, "dog": 7}, size=(40, 32))
    original = Image.open(root / "cat" / "cat_003.png").convert("RGB")
    ag.save(root / "cat" / "cat_003_big.png", ag.resized(np.asarray(original), 1.5))
    add_dataset(workspace, "pets", root)
    return workspace


def test_exclude_from_audit_twice_adds_no_second_decision(pets_with_copy, capsys):
    """A second 'exclude --from-audit duplicates' (a repeated command) finds nothing undecided."""
    pets = pets_with_copy
    w = ws_args(pets)
    assert run(capsys, *w, "datasets", "audit", "pets", *FAST, "--json")[0] == 0
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    assert len(load_overrides(pets, "pets")) == 1
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    assert "Nothing to exclude" in out
    assert len(load_overrides(pets, "pets")) == 1


def test_exclude_from_audit_duplicates_keeps_one_of_each_group(pets_with_copy, capsys):
    """When the user already excluded the first image of a group, the rule 'all but the first' must not
    exclude the others too: one image of each group stays in the dataset."""
    pets = pets_with_copy
    w = ws_args(pets)
    assert run(capsys, *w, "datasets", "audit", "pets", *FAST, "--json")[0] == 0
    assert run(capsys, *w, "datasets", "exclude", "pets", "cat/cat_003.png")[0] == 0
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    current = current_overrides(load_overrides(pets, "pets"))
    excluded = {r for r, d in current.items() if d.action == "exclude"}
    assert not {"cat/cat_003.png", "cat/cat_003_big.png"} <= excluded


def test_a_split_spelled_validation_is_named_with_its_spelling(pets_with_copy, capsys):
    """'--splits train,validation' said 'splits must name at least one of train, val, test', though train was
    there: the message must name the split that is wrong and how it is written."""
    code, out, err = run(capsys, *ws_args(pets_with_copy), "datasets", "audit", "pets", *FAST,
                         "--splits", "train,validation")
    assert code == 2
    assert "'validation'" in err and "'val'" in err and "at least one" not in err
