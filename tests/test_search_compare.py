"""tlcore.search.compare (trials of several studies: keys, one ranking, curves) and the Results
page's trial labels and tables built on it (tlui.results_widgets).

The studies are in-memory Optuna studies with hand-made trials, and their summaries are
made by hand too, so every expected order is exact.
"""

from __future__ import annotations

import datetime as dt

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tlcore.search import attrs
from tlcore.search.compare import CURVE_COLUMNS, TrialSet, parse_key, rank_trials, trial_key
from tlcore.search.study import StudySummary
from tlui import results_widgets as rw

T0 = dt.datetime(2025, 3, 1, 9, 0, 0)
DIST = {"learning_rate": FloatDistribution(1e-4, 1e-1, log=True), "freeze_depth": IntDistribution(0, 18)}


def _trial(value=None, state=TrialState.COMPLETE, lr=1e-3, depth=6, history=None, metrics=None, seconds=30):
    user_attrs = {}
    if history is not None:
        user_attrs[attrs.HISTORY] = history
    if metrics is not None:
        user_attrs[attrs.METRICS] = metrics
    t = create_trial(state=state, value=value, params={"learning_rate": lr, "freeze_depth": depth},
                     distributions=DIST, user_attrs=user_attrs or None)
    t.datetime_start = T0
    t.datetime_complete = T0 + dt.timedelta(seconds=seconds) if state != TrialState.RUNNING else None
    return t


def _study(name: str, direction: str, trials) -> optuna.Study:
    study = optuna.create_study(study_name=name, direction=direction)
    for t in trials:
        study.add_trial(t)
    return study


def _summary(name: str, direction: str = "maximize", objective: str = "val_accuracy") -> StudySummary:
    return StudySummary(name=name, dataset="tiny", direction=direction, objective=objective, n_trials=10,
                        counts={}, best_value=None, best_trial=None, created="", stop_requested=False)


def _hist(*values):
    return [{"epoch": i + 1, "train_loss": 1.0, "val_loss": 1.1, "train_accuracy": v, "val_accuracy": v}
            for i, v in enumerate(values)]


@pytest.fixture
def two_studies() -> TrialSet:
    a = _study("a", "maximize", [_trial(0.7, history=_hist(0.6, 0.7)), _trial(0.9),
                                 _trial(None, TrialState.PRUNED, history=_hist(0.3))])
    b = _study("b", "maximize", [_trial(0.8, history=_hist(0.8)), _trial(None, TrialState.RUNNING)])
    return TrialSet({"a": _summary("a"), "b": _summary("b")}, {"a": a, "b": b})


def test_a_key_names_a_study_and_a_trial_and_reads_back():
    assert trial_key("pets.v2", 12) == "pets.v2/12"
    assert parse_key("pets.v2/12") == ("pets.v2", 12)
    assert parse_key(trial_key("a-b_c", 0)) == ("a-b_c", 0)


def test_trials_of_studies_with_one_goal_are_ranked_together(two_studies):
    ts = two_studies
    assert list(ts.trials) == ["a/0", "a/1", "a/2", "b/0", "b/1"]
    assert ts.ranked() == ["a/1", "b/0", "a/0"]  # complete trials only, best first across studies
    assert ts.is_best("a/1") and not ts.is_best("b/0")
    assert ts.many
    ranked = ts.ranked()
    ranked.clear()
    assert ts.ranked()  # a copy


def test_studies_with_other_goals_are_ranked_study_by_study_in_the_order_chosen():
    acc = _study("acc", "maximize", [_trial(0.5), _trial(0.9)])
    loss = _study("loss", "minimize", [_trial(0.2), _trial(0.1)])
    summaries = {"loss": _summary("loss", "minimize", "val_loss"), "acc": _summary("acc")}
    ts = TrialSet(summaries, {"acc": acc, "loss": loss})
    assert ts.names == ["loss", "acc"]
    assert ts.ranked() == ["loss/1", "loss/0", "acc/1", "acc/0"]


def test_rank_trials_follows_the_direction_and_keeps_the_order_of_equal_values():
    trials = {"s/0": _trial(0.3), "s/1": _trial(0.1), "s/2": _trial(0.3), "s/3": _trial(None, TrialState.FAIL)}
    assert rank_trials(trials, {"s": _summary("s", "minimize", "val_loss")}) == ["s/1", "s/0", "s/2"]
    assert rank_trials(trials, {"s": _summary("s", "maximize")}) == ["s/0", "s/2", "s/1"]


def test_best_first_sorts_a_table_by_value_with_missing_values_last(two_studies):
    table = pd.DataFrame({"number": [0, 1, 2, 3], "value": [0.5, None, 0.9, 0.5]})
    assert list(two_studies.best_first(table)["number"]) == [2, 0, 3, 1]
    minimize = TrialSet({"m": _summary("m", "minimize", "val_loss")}, {"m": _study("m", "minimize", [])})
    assert list(minimize.best_first(table)["number"]) == [0, 3, 2, 1]
    assert minimize.best_first(table.iloc[0:0]).empty


def test_curves_of_trials_from_several_studies_keep_their_keys_and_order(two_studies):
    ts = two_studies
    assert ts.with_history() == ["a/0", "a/2", "b/0"]
    curves = ts.curves(["b/0", "a/0"])
    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert list(dict.fromkeys(curves["key"])) == ["b/0", "a/0"]
    a0 = curves[(curves["key"] == "a/0") & (curves["split"] == "val") & (curves["metric"] == "accuracy")]
    assert list(a0["epoch"]) == [1, 2] and list(a0["value"]) == [0.6, 0.7]
    empty = ts.curves([])
    assert empty.empty and list(empty.columns) == list(CURVE_COLUMNS)


def test_a_trial_label_names_its_study_when_several_and_stars_the_best(two_studies):
    ts = two_studies
    assert rw.trial_label(ts, "a/1") == "a #1 · 0.9000 ★"
    assert rw.trial_label(ts, "a/2") == "a #2 · pruned"
    single = TrialSet({"a": _summary("a")}, {"a": ts.studies["a"]})
    assert rw.trial_label(single, "a/0") == "trial 0 · 0.7000"


def test_two_trials_facts_side_by_side(two_studies):
    ts = two_studies
    ts.trials["a/0"].user_attrs[attrs.METRICS] = {"best_epoch": 2, "test_accuracy": 0.75}
    table = rw.facts_table(ts, "a/0", "a/2")
    facts = dict(zip(table[""], zip(table[rw.trial_label(ts, "a/0")], table[rw.trial_label(ts, "a/2")])))
    assert facts["state"] == ("complete", "pruned")
    assert facts["value"] == ("0.7", "–")
    assert facts["learning rate"] == ("0.001", "0.001") and facts["freeze depth"] == ("6", "6")
    assert facts["epochs"] == ("2", "1") and facts["best epoch"] == ("2", "–")
    assert facts["test accuracy"] == ("75.0 %", "–") and facts["duration"] == ("30 s", "30 s")


def test_shown_trials_filter_by_state_and_value_best_first(two_studies):
    table = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"],
                          "value": [0.7, 0.9, None, 0.5]})
    shown = rw.shown_trials(two_studies, table, ["COMPLETE"], None)
    assert list(shown["number"]) == [1, 0, 3]
    assert list(rw.shown_trials(two_studies, table, ["COMPLETE", "PRUNED"], 0.6)["number"]) == [1, 0]
    assert list(rw.shown_trials(two_studies, table, ["COMPLETE", "PRUNED"], None)["number"]) == [1, 0, 3, 2]
