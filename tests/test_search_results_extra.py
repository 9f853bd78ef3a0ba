"""tlcore.search.results on hand-built studies: best so far over time, diverged trials, rungs.

Every study here is an in-memory Optuna study whose trials are made with
``optuna.trial.create_trial`` (start and completion times set by hand), so nothing
trains and the expected rows are exact.
"""

from __future__ import annotations

import datetime as dt

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tlcore.errors import ConfigError
from tlcore.search.results import (
    BEST_SO_FAR_COLUMNS,
    DIVERGED,
    best_so_far,
    diverged_reason,
    fraction_text,
    outcome,
    rung_path,
    trial_outcomes,
    trial_rungs,
    trial_summary,
    with_outcomes,
)
from tlcore.search.study import DIVERGED_ATTR, RUNGS_ATTR

T0 = dt.datetime(2025, 3, 1, 9, 0, 0)
LR = {"learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}
REASON = ("validation accuracy 0.087 after epoch 1 is at chance (majority class 0.100; "
          "needs more than 0.128)")


def _trial(state=TrialState.COMPLETE, value=None, start=0.0, end=None, lr=1e-3, **user_attrs):
    """A trial that started ``start`` seconds after T0 and ended ``end`` seconds after it (None: not yet)."""
    t = create_trial(state=state, value=value, params={"learning_rate": lr}, distributions=LR,
                     user_attrs=user_attrs or None)
    t.datetime_start = T0 + dt.timedelta(seconds=start)
    t.datetime_complete = None if end is None else T0 + dt.timedelta(seconds=end)
    return t


def _study(direction: str, trials) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for t in trials:
        study.add_trial(t)
    return study


def _hist(*stages):
    """History records: (epoch, rung or None, fraction)."""
    return [{"epoch": e, "rung": r, "train_fraction": f, "val_accuracy": 0.5, "val_loss": 1.0}
            for e, r, f in stages]


# -------------------------------------------------------------- best so far
def test_best_so_far_is_monotone_in_completion_order_and_skips_what_did_not_complete():
    study = _study("maximize", [
        _trial(value=0.40, start=5, end=65),                       # 0: the quick first trial
        _trial(value=0.70, start=10, end=250),                     # 1: completes last
        _trial(state=TrialState.PRUNED, start=0, end=30),          # 2: earliest start; pruned: no row
        _trial(value=0.55, start=70, end=130),                     # 3
        _trial(value=0.50, start=130, end=200),                    # 4: worse: best stays trial 3
        _trial(state=TrialState.FAIL, start=200, end=210),         # 5: no row
        _trial(state=TrialState.RUNNING, start=210),               # 6: no row
    ])
    df = best_so_far(study)
    assert list(df.columns) == list(BEST_SO_FAR_COLUMNS)
    assert df.to_dict("records") == [
        {"seconds": 65.0, "value": 0.40, "number": 0},
        {"seconds": 130.0, "value": 0.55, "number": 3},
        {"seconds": 200.0, "value": 0.55, "number": 3},
        {"seconds": 250.0, "value": 0.70, "number": 1},
    ]
    assert df["value"].is_monotonic_increasing and df["seconds"].is_monotonic_increasing
    assert df["number"].dtype.kind == "i" and df["seconds"].dtype.kind == "f"


def test_best_so_far_follows_the_direction_and_keeps_the_earlier_trial_on_a_tie():
    trials = [_trial(value=0.9, start=0, end=10), _trial(value=0.5, start=0, end=20),
              _trial(value=0.5, start=0, end=30), _trial(value=0.7, start=0, end=40)]
    study = _study("minimize", trials)
    assert best_so_far(study).to_dict("records") == [
        {"seconds": 10.0, "value": 0.9, "number": 0},
        {"seconds": 20.0, "value": 0.5, "number": 1},
        {"seconds": 30.0, "value": 0.5, "number": 1},
        {"seconds": 40.0, "value": 0.5, "number": 1},
    ]
    frozen = study.get_trials()
    assert best_so_far(frozen, "minimize").equals(best_so_far(study))
    assert best_so_far(frozen)["value"].tolist() == [0.9, 0.9, 0.9, 0.9]  # bare trials: maximize
    assert best_so_far(study, "maximize")["number"].tolist() == [0, 0, 0, 0]  # an explicit direction wins
    with pytest.raises(ConfigError, match="maximize or minimize"):
        best_so_far(frozen, "sideways")


def test_best_so_far_is_an_empty_table_with_its_columns_until_a_trial_completes():
    for trials in ([], [_trial(state=TrialState.PRUNED, start=0, end=5), _trial(state=TrialState.RUNNING, start=1)]):
        df = best_so_far(_study("maximize", trials))
        assert df.empty and list(df.columns) == ["seconds", "value", "number"]


# ---------------------------------------------------------------- diverged
def test_a_diverged_trial_says_so_with_its_reason():
    diverged = _trial(state=TrialState.PRUNED, start=0, end=9, **{DIVERGED_ATTR: REASON})
    pruned = _trial(state=TrialState.PRUNED, start=0, end=9)
    done = _trial(value=0.8, start=0, end=9)
    study = _study("maximize", [diverged, pruned, done])
    t_div, t_pruned, t_done = study.get_trials()
    assert diverged_reason(t_div) == REASON and outcome(t_div) == DIVERGED == "DIVERGED"
    assert diverged_reason(t_pruned) is None and outcome(t_pruned) == "PRUNED"
    assert diverged_reason(t_done) is None and outcome(t_done) == "COMPLETE"
    summary = trial_summary(t_div)
    assert summary["state"] == "PRUNED" and summary["diverged"] == REASON and summary["rungs"] == []
    assert trial_summary(t_done)["diverged"] is None


# ------------------------------------------------------------------- rungs
RUNG0 = {"rung": 0, "fraction": 0.111, "epoch": 1, "value": 0.61, "promoted": True}
RUNG1 = {"rung": 1, "fraction": 0.333, "epoch": 2, "value": 0.74, "promoted": True}


def test_rungs_are_read_and_described_stage_by_stage():
    study = _study("maximize", [
        # 0: promoted twice, then full-data epochs, complete
        _trial(value=0.9, start=0, end=100, tl_history=_hist((1, 0, 0.111), (2, 1, 0.333), (3, None, 1.0)),
               **{RUNGS_ATTR: [RUNG0, RUNG1]}),
        # 1: pruned at rung 0
        _trial(state=TrialState.PRUNED, start=0, end=10, tl_history=_hist((1, 0, 0.111)),
               **{RUNGS_ATTR: [{**RUNG0, "value": 0.2, "promoted": False}]}),
        # 2: running, rung 1 being judged
        _trial(state=TrialState.RUNNING, start=0, tl_history=_hist((1, 0, 0.111), (2, 1, 0.333)),
               **{RUNGS_ATTR: [RUNG0, {k: v for k, v in RUNG1.items() if k != "promoted"}]}),
        # 3: promoted at rung 0, diverged during rung 1 (its rung epoch was never judged)
        _trial(state=TrialState.PRUNED, start=0, end=20, tl_history=_hist((1, 0, 0.111), (2, 1, 0.333)),
               **{RUNGS_ATTR: [RUNG0], DIVERGED_ATTR: REASON}),
        # 4: feature extraction: no rungs, full data only
        _trial(value=0.5, start=0, end=5, tl_history=_hist((1, None, 1.0))),
        # 5: two_phase: a full-data head epoch before the rungs does not count as "full"
        _trial(state=TrialState.PRUNED, start=0, end=30, tl_history=_hist((1, None, 1.0), (2, 0, 0.111)),
               **{RUNGS_ATTR: [{**RUNG0, "epoch": 2, "promoted": False}]}),
        # 6: a storage written by other code: not a list
        _trial(value=0.1, start=0, end=5, **{RUNGS_ATTR: "junk"}),
        # 7: the scout's seed, last at both rungs and kept, complete
        _trial(value=0.8, start=0, end=100, tl_history=_hist((1, 0, 0.111), (2, 1, 0.333), (3, None, 1.0)),
               **{RUNGS_ATTR: [{**RUNG0, "value": 0.1}, {**RUNG1, "value": 0.2}], "tl_seeded": "scout"}),
    ])
    t = study.get_trials()
    assert trial_rungs(t[0]) == [RUNG0, RUNG1]
    assert trial_rungs(t[4]) == [] and trial_rungs(t[6]) == []
    assert [rung_path(x) for x in t] == [
        "11 % → 33 % → full",
        "11 % (pruned)",
        "11 % → 33 %",
        "11 % → 33 % (diverged)",
        "",
        "11 % (pruned)",
        "",
        "11 % → 33 % → full (scout seed)",
    ]
    assert trial_summary(t[1])["rungs"] == [{**RUNG0, "value": 0.2, "promoted": False}]
    assert (fraction_text(0.111), fraction_text(0.333), fraction_text(0.005), fraction_text(1.0)) == \
        ("11 %", "33 %", "0.5 %", "full")


def test_with_outcomes_adds_diverged_and_rung_columns_to_a_trial_table():
    study = _study("maximize", [
        _trial(value=0.9, start=0, end=100, tl_history=_hist((1, 0, 0.111), (2, None, 1.0)), **{RUNGS_ATTR: [RUNG0]}),
        _trial(state=TrialState.PRUNED, start=0, end=9, **{DIVERGED_ATTR: REASON}),
    ])
    trials = study.get_trials()
    frame = pd.DataFrame({"number": [1, 0], "state": ["PRUNED", "COMPLETE"], "value": [None, 0.9]})
    out = with_outcomes(frame, trials)
    assert list(out.columns) == ["number", "state", "value", "diverged", "rungs", "rung_path"]
    assert out.loc[0, ["number", "diverged", "rungs", "rung_path"]].tolist() == [1, REASON, 0, ""]
    assert out.loc[1, ["diverged", "rungs", "rung_path"]].tolist() == [None, 1, "11 % → full"]
    assert list(frame.columns) == ["number", "state", "value"]  # the input is left alone
    again = with_outcomes(out, trials)  # idempotent: columns it has already are replaced in place
    assert list(again.columns) == list(out.columns) and again.equals(out)
    table = trial_outcomes(trials)
    assert table["outcome"].tolist() == ["COMPLETE", "DIVERGED"]
    empty = with_outcomes(pd.DataFrame(columns=["number", "state", "value"]), trials)
    assert empty.empty and {"diverged", "rungs", "rung_path"} <= set(empty.columns)
