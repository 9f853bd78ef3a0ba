"""Trials of one study that trained on different versions of its dataset are told apart: each trial
records the fingerprint of the data it trained on (``attrs.DATA``), and ``search status``, the Search
page and the Results page say when a study's trials span more than one version.

Before: an image relabelled (or excluded, or the split changed) between two trials of a study left
no trace; the two trials' validation accuracies, measured on different images, were ranked together."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.clirun import cli
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.datasets import add_overrides, dataset_splits
from tlcore.search import attrs, create_study, list_studies, run_worker
from tlcore.search.study import _numbers_text, raise_budget


def _trial(number: int, digest: str | None, images: int = 36):
    return SimpleNamespace(number=number, user_attrs={} if digest is None else
                           {attrs.DATA: {"digest": digest, "images": images}})


def test_the_versions_are_listed_in_the_order_they_first_appear():
    trials = [_trial(3, "b", 35), _trial(0, "a"), _trial(1, "a"), _trial(2, None), _trial(4, "a"),
              SimpleNamespace(number=5, user_attrs={attrs.DATA: "garbage"})]
    assert attrs.data_versions(trials) == [{"digest": "a", "images": 36, "trials": [0, 1, 4]},
                                           {"digest": "b", "images": 35, "trials": [3]}]
    assert attrs.data_versions([_trial(0, None)]) == []


def test_trial_numbers_read_as_ranges():
    assert _numbers_text([0, 1, 2, 3, 7, 9, 10]) == "0-3, 7, 9, 10"
    assert _numbers_text([5]) == "5" and _numbers_text([]) == ""


@pytest.mark.slow
def test_a_relabel_between_trials_is_shown_where_the_trials_are_compared(workspace, capsys, monkeypatch):
    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("s", n_trials=1, epochs=1))
    run_worker(workspace, "s", log=lambda s: None)
    [s] = list_studies(workspace)
    assert len(s.data_versions) == 1 and s.data_note is None  # one version: nothing to say

    moved = dataset_splits(workspace, "tiny").query("label == 'cat'")["relpath"].iloc[0]
    add_overrides(workspace, "tiny", [moved], "relabel", label="dog")
    raise_budget(workspace, "s", n_trials=2)
    run_worker(workspace, "s", log=lambda s: None)
    [s] = list_studies(workspace)
    assert [v["trials"] for v in s.data_versions] == [[0], [1]], s.data_versions
    assert s.data_note.startswith("The trials trained on 2 versions of the dataset 'tiny'")
    assert "trial 0 (36 images); trial 1 (36 images)" in s.data_note

    code, out, err = cli(capsys, workspace.root, "search", "status", "--study", "s")
    assert code == 0 and "trained on 2 versions of the dataset" in out, (out, err)

    monkeypatch.setenv("TLCORE_HOME", str(workspace.root))
    at = AppTest.from_file("../streamlit_app.py", default_timeout=300)
    at.query_params["study"] = ["s"]
    at.switch_page("pages/5_Results.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("2 versions of the dataset" in w.value for w in at.warning), [w.value for w in at.warning]
