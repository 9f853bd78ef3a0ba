"""Careless-user checks of ``python -m tlcore datasets audit | exclude | keep`` (helper B)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.helpers import auditgen as ag
from tlcore.cli import main
from tlcore.datasets import add_dataset, current_overrides, load_overrides, rescan_dataset

FAST = ["--weights", "none", "--image-size", "32", "--folds", "3"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pets(workspace):
    root = ag.photo_tree(workspace.root / "pets", {"cat": 7, "dog": 7}, size=(40, 32))
    original = Image.open(root / "cat" / "cat_003.png").convert("RGB")
    ag.save(root / "cat" / "cat_003_big.png", ag.resized(np.asarray(original), 1.5))
    add_dataset(workspace, "pets", root)
    rescan_dataset(workspace, "pets")
    return workspace


def test_exclude_from_audit_twice_adds_no_second_decision(pets, capsys):
    """A second 'exclude --from-audit duplicates' (a repeated command) finds nothing undecided."""
    w = ["--workspace", str(pets.root)]
    assert run(capsys, *w, "datasets", "audit", "pets", *FAST, "--json")[0] == 0
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    assert len(load_overrides(pets, "pets")) == 1
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    assert "Nothing to exclude" in out
    assert len(load_overrides(pets, "pets")) == 1


def test_exclude_from_audit_duplicates_keeps_one_of_each_group(pets, capsys):
    """When the user already excluded the first image of a group, the rule 'all but the first' must not
    exclude the others too: one image of each group stays in the dataset."""
    w = ["--workspace", str(pets.root)]
    assert run(capsys, *w, "datasets", "audit", "pets", *FAST, "--json")[0] == 0
    assert run(capsys, *w, "datasets", "exclude", "pets", "cat/cat_003.png")[0] == 0
    code, out, err = run(capsys, *w, "datasets", "exclude", "pets", "--from-audit", "duplicates")
    assert code == 0, err
    current = current_overrides(load_overrides(pets, "pets"))
    excluded = {r for r, d in current.items() if d.action == "exclude"}
    assert not {"cat/cat_003.png", "cat/cat_003_big.png"} <= excluded


def test_a_split_spelled_validation_is_named_with_its_spelling(pets, capsys):
    """'--splits train,validation' said 'splits must name at least one of train, val, test', though train was
    there: the message must name the split that is wrong and how it is written."""
    code, out, err = run(capsys, "--workspace", str(pets.root), "datasets", "audit", "pets", *FAST,
                         "--splits", "train,validation")
    assert code == 2
    assert "'validation'" in err and "'val'" in err and "at least one" not in err
