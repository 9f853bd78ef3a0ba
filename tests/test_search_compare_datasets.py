"""Trials of studies on different datasets (or with different goals) are not ranked against each
other on the Results page: a 3-class study's accuracy is not better than a 10-class study's."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.trial import TrialState, create_trial

from tlcore.search.compare import TrialSet, comparable
from tlcore.search.study import StudySummary


def _summary(name, dataset, direction="maximize", objective="val_accuracy"):
    return StudySummary(name=name, dataset=dataset, direction=direction, objective=objective, n_trials=5,
                        counts={}, best_value=None, best_trial=None, created="", stop_requested=False)


def _study(name, direction, values):
    s = optuna.create_study(study_name=name, direction=direction)
    for v in values:
        s.add_trial(create_trial(state=TrialState.COMPLETE, value=v))
    return s


def test_studies_of_different_datasets_are_ranked_study_by_study():
    ten = _study("ten", "maximize", [0.70, 0.76])
    three = _study("three", "maximize", [0.92, 0.75])
    ts = TrialSet({"ten": _summary("ten", "demo"), "three": _summary("three", "two")},
                  {"ten": ten, "three": three})
    assert not comparable(ts.summaries)
    assert ts.ranked() == ["ten/1", "ten/0", "three/0", "three/1"]
    assert ts.is_best("ten/1") and not ts.is_best("three/0")


def test_studies_of_one_dataset_and_goal_are_still_ranked_together():
    a, b = _study("a", "maximize", [0.7]), _study("b", "maximize", [0.9])
    ts = TrialSet({"a": _summary("a", "demo"), "b": _summary("b", "demo")}, {"a": a, "b": b})
    assert comparable(ts.summaries)
    assert ts.ranked() == ["b/0", "a/0"]


def test_the_table_of_incomparable_studies_is_sorted_study_by_study_each_by_its_direction():
    acc = _study("acc", "maximize", [])
    loss = _study("loss", "minimize", [])
    ts = TrialSet({"acc": _summary("acc", "demo"), "loss": _summary("loss", "demo", "minimize", "val_loss")},
                  {"acc": acc, "loss": loss})
    table = pd.DataFrame({"study": ["acc", "acc", "acc", "loss", "loss", "loss"],
                          "number": [0, 1, 2, 0, 1, 2],
                          "value": [0.5, 0.9, None, 0.3, 0.1, 2.0]})
    out = ts.best_first(table)
    assert list(zip(out["study"], out["number"])) == [
        ("acc", 1), ("acc", 0), ("acc", 2), ("loss", 1), ("loss", 0), ("loss", 2)]
