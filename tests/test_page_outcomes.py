"""Diverged trials, successive-halving rungs and the best-so-far chart on the Search and
Results pages (AppTest), on studies built by hand (tests/helpers/handstudy.py): nothing trains.

The study ``outcomes`` (see ``handstudy.outcomes_trials``): trial 0 a quick complete
feature-extraction trial, 1 diverged, 2 pruned at rung 0, 3 promoted through both rungs
and complete (the best), 4 running its rung-1 epoch.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
from optuna.trial import TrialState
from streamlit.testing.v1 import AppTest

from tests.helpers.handstudy import REASON, RUNG0, RUNG1, hand_study, hand_trial, outcomes_trials
from tests.helpers.pagetest import assert_ok, shown_text
from tlcore.search import load_study
from tlcore.search.storage import study_local_dir

NAME = "outcomes"
SEARCH, RESULTS = "pages/4_Search.py", "pages/5_Results.py"


def _page(page: str, study: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    if study:
        at.query_params["study"] = study
    at.switch_page(page)
    return at.run()


def _frame(at: AppTest, *columns: str):
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _best_chart(at: AppTest) -> dict | None:
    return next((f for f in _figures(at) if "Best so far" in json.dumps(f["layout"].get("title"))), None)


@pytest.fixture
def t0() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0) - dt.timedelta(minutes=10)


@pytest.fixture
def outcomes_ws(workspace, t0):
    hand_study(workspace, NAME, outcomes_trials(t0), n_trials=10)
    return workspace


@pytest.fixture
def rung_worker(outcomes_ws):
    """A live stand-in for a local worker (a sleeping process) whose state file says it is
    training trial 4 on rung 1, a third of the data."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore-fake-worker"])
    wdir = study_local_dir(outcomes_ws, NAME) / "workers"
    wdir.mkdir(parents=True, exist_ok=True)
    (wdir / "w-rung.json").write_text(json.dumps({
        "worker_id": "w-rung", "pid": proc.pid, "host": socket.gethostname(), "state": "training",
        "started": time.time(), "trial": 4, "epoch": 2, "epochs": 5, "batch": 3, "batches": 10,
        "status": "training", "rung": 1, "train_fraction": 0.333}))
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ Search
def test_search_page_counts_and_lists_diverged_trials_and_shows_the_rung_a_worker_is_on(outcomes_ws, rung_worker):
    at = _page(SEARCH, NAME)
    assert_ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pruned · diverged"] == "1 · 1"  # trial 2 pruned, trial 1 diverged (both PRUNED in Optuna)
    assert metrics["Finished"] == "4/10"

    table = _frame(at, "number", "state", "rungs")
    by_number = table.set_index("number")
    assert by_number.loc[1, "state"] == "DIVERGED" and by_number.loc[2, "state"] == "PRUNED"
    assert by_number.loc[3, "rungs"] == "11 % → 33 % → full"
    assert by_number.loc[2, "rungs"] == "11 % (pruned)" and by_number.loc[0, "rungs"] == ""

    assert "**Diverged trials** (1)" in shown_text(at.markdown)
    diverged = _frame(at, "trial", "reason")
    assert diverged["trial"].tolist() == [1] and diverged["reason"].tolist() == [REASON]
    assert diverged["learning_rate"].tolist() == [0.09]

    progress = [p.proto.text.replace("\\", "") for p in at.get("progress")]
    assert "Trial 4 · rung 1 · 33 % of the data · epoch 2/5 · batch 3/10" in progress


def test_search_page_draws_best_so_far_from_the_first_complete_trial(workspace, t0):
    study = hand_study(workspace, NAME)
    at = _page(SEARCH, NAME)
    assert_ok(at)
    assert _best_chart(at) is None and "No trial has completed yet" in shown_text(at.caption)

    trials = outcomes_trials(t0)
    study.add_trial(trials[0])  # the quick first trial: the chart shows at once
    at.run()
    assert_ok(at)
    fig = _best_chart(at)
    assert fig is not None
    assert fig["data"][0]["x"] == [40.0] and fig["data"][0]["y"] == [0.62] and fig["data"][0]["customdata"] == [0]

    for t in trials[1:]:
        study.add_trial(t)
    at.run()
    assert_ok(at)
    trace = _best_chart(at)["data"][0]
    assert trace["x"] == [40.0, 170.0] and trace["y"] == [0.62, 0.86] and trace["customdata"] == [0, 3]
    assert trace["line"]["shape"] == "hv"
    assert "seconds since the first trial started" in json.dumps(_best_chart(at)["layout"]["xaxis"])
    assert "Best trial 3" in shown_text(at.markdown)


# ----------------------------------------------------------------- Results
def test_results_page_says_diverged_with_the_reason(outcomes_ws):
    at = _page(RESULTS, NAME)
    assert_ok(at)
    assert "1 of the pruned trials diverged" in shown_text(at.caption)
    table = _frame(at, "number", "state", "diverged").set_index("number")
    assert table.loc[1, "state"] == "DIVERGED" and table.loc[1, "diverged"] == REASON
    assert table.loc[2, "state"] == "PRUNED" and pd.isna(table.loc[2, "diverged"])
    assert "diverged" in at.multiselect(key="rs_states").options  # the state filter has the word

    at.selectbox(key="rs_eval").set_value(f"{NAME}/1").run()
    assert_ok(at)
    info = shown_text(at.info)
    assert f"Trial 1 diverged after 1 epoch(s): {REASON}." in info
    assert "Trial 1 was pruned" not in info
    assert "trial 1 · diverged" in at.selectbox(key="rs_eval").options  # the trial menus' label

    at.selectbox(key="rs_cmp_a").set_value(f"{NAME}/3")
    at.selectbox(key="rs_cmp_b").set_value(f"{NAME}/1").run()
    assert_ok(at)
    facts = _frame(at, "").set_index("")
    assert facts.loc["state"].tolist() == ["complete", "diverged"]


def test_results_page_shows_a_trials_rungs(outcomes_ws):
    at = _page(RESULTS, NAME)
    assert_ok(at)
    table = _frame(at, "number", "state", "rungs").set_index("number")
    assert table.loc[3, "rungs"] == "11 % → 33 % → full"
    assert table.loc[2, "rungs"] == "11 % (pruned)"
    assert table.loc[0, "rungs"] == ""  # feature extraction: no rungs
    assert list(table.columns).index("rungs") == list(table.columns).index("epochs") + 1

    assert at.selectbox(key="rs_eval").value == f"{NAME}/3"  # the best trial, with its rungs
    rungs = _frame(at, "rung", "data", "outcome")
    assert rungs.to_dict("records") == [
        {"rung": 0, "data": "11 %", "epoch": 1, "value": RUNG0["value"], "outcome": "promoted"},
        {"rung": 1, "data": "33 %", "epoch": 2, "value": RUNG1["value"], "outcome": "promoted"},
    ]
    assert "Successive halving: 11 % → 33 % → full" in shown_text(at.caption)

    at.selectbox(key="rs_eval").set_value(f"{NAME}/2").run()
    assert_ok(at)
    assert _frame(at, "rung", "data", "outcome")["outcome"].tolist() == ["pruned"]
    assert "Trial 2 was pruned at rung 0 (11 % of the data, value 0.41)" in shown_text(at.info)

    at.selectbox(key="rs_cmp_a").set_value(f"{NAME}/3")
    at.selectbox(key="rs_cmp_b").set_value(f"{NAME}/2").run()
    assert_ok(at)
    facts = _frame(at, "").set_index("")
    assert facts.loc["rungs"].tolist() == ["11 % → 33 % → full", "11 % (pruned)"]
    assert facts.loc["rung 0 (11 %)"].tolist() == ["0.71 · promoted", "0.41 · pruned"]
    assert facts.loc["rung 1 (33 %)"].tolist()[0] == "0.78 · promoted"


def test_the_hand_built_study_is_what_the_pages_read(outcomes_ws, t0):
    """The fixture's trials keep their times and attributes on the journal storage."""
    trials = load_study(outcomes_ws, NAME).get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert trials[3].datetime_complete - trials[0].datetime_start == dt.timedelta(seconds=170)
    assert trials[3].user_attrs["tl_rungs"] == [RUNG0, RUNG1]
    assert hand_trial(t0, 0, None, state=TrialState.RUNNING).datetime_complete is None
