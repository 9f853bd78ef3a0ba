"""The Search page (pages/4_Search.py), run headlessly with AppTest.

The live section is an ``st.fragment`` on a timer; AppTest cannot drive timers, so
these tests rerun the whole page, which draws the fragment in full each time.
One test starts a real background worker (a subprocess that imports TensorFlow)
and is marked slow; every worker a test starts is stopped and killed at teardown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from streamlit.testing.v1 import AppTest

from tests.helpers.handstudy import hand_study, hand_trial
from tests.helpers.pagetest import expander_path, is_open, tab_path
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tests.helpers.yamlbombs import alias_bomb
from tlcore.config import RESIZE_RULES
from tlcore.search import (
    StudySpec,
    create_study,
    list_studies,
    list_workers,
    load_spec,
    load_study,
    open_storage,
    stop_requested,
    stop_workers,
)
from tlcore.search.storage import study_local_dir
from tlui import search_state as state
from tlui.search_widgets import poll_study

PAGE = "pages/4_Search.py"


def _page(at: AppTest | None = None, timeout: float = 180) -> AppTest:
    if at is None:  # (an AppTest that has not run yet is falsy)
        at = AppTest.from_file("../streamlit_app.py", default_timeout=timeout)
    at.switch_page(PAGE)
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _text(elements) -> str:
    return " ".join(e.value for e in elements).replace("\\", "")


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _trial_table(at: AppTest):
    return next(df.value for df in at.dataframe if "state" in df.value.columns and "number" in df.value.columns)


@contextlib.contextmanager
def _no_workers_left(ws, name_getter):
    """Stop and kill every local worker of the studies named by ``name_getter()`` at exit."""
    try:
        yield
    finally:
        for name in name_getter():
            with contextlib.suppress(Exception):
                stop_workers(ws, name, wait=10)
            for w in list_workers(ws, name):
                if w.alive:
                    with contextlib.suppress(OSError):
                        os.kill(w.pid, signal.SIGKILL)


@pytest.fixture
def tiny_ws(workspace):
    add_tiny_dataset(workspace)
    return workspace


# ------------------------------------------------------------------- tests
def test_no_studies_explains_how_to_create_one(workspace):
    at = _page()
    _ok(at)
    assert not at.error
    assert "No studies yet" in _text(at.info)
    assert any("tlcore search create" in c.value for c in at.code)
    assert at.text_input(key="se_new_name").value == "search-1"
    assert at.selectbox(key="se_new_dataset").value == "demo"
    assert at.multiselect(key="se_new_backbones").value == ["efficientnet_lite0"]
    assert at.slider(key="se_new_depth").value == (0, 18)
    assert "study" not in at.query_params


def test_invalid_widget_values_are_explained(tiny_ws):
    at = _page()
    at.text_input(key="se_new_name").set_value("").run()
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert "A study needs a name." in _text(at.error)
    assert "Type one in 'Study name'" in _text(at.error) and "'name: my-study'" not in _text(at.error)  # not the YAML words

    at.text_input(key="se_new_name").set_value("ok")
    at.number_input(key="se_new_lr_lo").set_value(0.1)
    at.number_input(key="se_new_lr_hi").set_value(0.01)
    at.button(key="se_new_create").click().run()
    _ok(at)
    errors = _text(at.error)
    assert "Nothing was created. Learning rate: 'from' (1.0e-01) is above 'to' (1.0e-02); swap them." in errors

    at.number_input(key="se_new_lr_lo").set_value(1e-4)
    at.multiselect(key="se_new_backbones").set_value([])
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert "Nothing was created. Choose at least one backbone." in _text(at.error)
    at.multiselect(key="se_new_backbones").set_value(["efficientnet_lite0"])
    at.multiselect(key="se_new_methods").set_value([])
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert "Nothing was created. Choose at least one method." in _text(at.error)
    assert list_studies(tiny_ws) == []


def test_a_dataset_removed_on_another_tab_creates_nothing(tiny_ws):
    """Create pressed on the rerun that finds the chosen dataset gone: no study on the fallback."""
    from tlcore.datasets import remove_dataset

    at = _page()
    at.selectbox(key="se_new_dataset").set_value("tiny").run()
    at.checkbox(key="se_new_start").uncheck()
    remove_dataset(tiny_ws, "tiny")  # on another tab
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert ("Nothing was created. The dataset 'tiny' is no longer there (removed, perhaps on another tab): the "
            "form now shows 'demo'.") in _text(at.error)
    assert list_studies(tiny_ws) == []
    assert at.selectbox(key="se_new_dataset").value == "demo"


def test_an_out_of_range_number_blocks_create_and_says_why(tiny_ws):
    """Trials = 0 was refused by the browser, which kept the old value, and Create used it: now the
    typed value reaches the page, the field says what is allowed and nothing is created."""
    at = _page()
    at.text_input(key="se_new_name").set_value("zero")
    at.number_input(key="se_new_trials").set_value(0).run()
    _ok(at)
    assert at.number_input(key="se_new_trials").value == 0  # what the user typed, not the old value
    assert "Trials must be between 1 and 100,000 (it is 0)." in _text(at.error)
    at.checkbox(key="se_new_start").uncheck()
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert "Nothing was created. Fix the fields first: Trials must be between 1 and 100,000 (it is 0)." in _text(at.error)
    assert list_studies(tiny_ws) == []
    at.number_input(key="se_new_trials").set_value(2)
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert not at.error
    assert [(s.name, s.n_trials) for s in list_studies(tiny_ws)] == [("zero", 2)]


@pytest.mark.parametrize("body, words", [
    (b"name: x\ndataset: [", "not valid YAML"),
    (b"- 1\n- 2\n", "must be a mapping"),
    (b"just some words", "must be a mapping"),
    (b"name: x\ndataset: tiny\nfreeze_depths: [1, 2]\n", "Unknown StudySpec field(s): freeze_depths"),
    (b"name: x\ndataset: tiny\nlearning_rate: [0.1, 0.001]\n", "low end is above the high end"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (alias_bomb("backbones").encode(), "aliases (*a0) are not allowed"),
], ids=["bad-yaml", "a-list", "plain-text", "unknown-field", "lr-low-above-high", "not-utf8", "alias-bomb"])
def test_bad_spec_uploads_are_explained(tiny_ws, body, words):
    at = _page()
    at.file_uploader(key="se_spec_file").set_value(("study.yaml", body, "application/x-yaml")).run()
    _ok(at)
    assert words in _text(at.error)
    assert list_studies(tiny_ws) == []


def test_a_spec_upload_creates_a_study_without_workers(tiny_ws):
    spec = tiny_spec("from-upload", n_trials=2)
    at = _page()
    at.file_uploader(key="se_spec_file").set_value(("s.yaml", spec.to_yaml().encode(), "application/x-yaml")).run()
    _ok(at)
    assert not at.error
    assert any("from-upload" in c.value and "learning_rate" in c.value for c in at.code)
    at.checkbox(key="se_up_start").uncheck()
    at.button(key="se_up_create").click().run()
    _ok(at)
    assert not at.error
    assert "Created study from-upload" in _text(at.success)
    assert at.selectbox(key="se_study").value == "from-upload"
    assert at.query_params["study"] == "from-upload"
    assert list_workers(tiny_ws, "from-upload") == []
    assert "Idle" in _text(at.info)
    assert _metrics(at)["Finished"] == "0/2"

    at.file_uploader(key="se_spec_file").set_value(("s.yaml", spec.to_yaml().encode(), "application/x-yaml")).run()
    at.button(key="se_up_create").click().run()  # the same name again
    _ok(at)
    assert "already exists" in _text(at.error)


@pytest.mark.slow
def test_create_and_launch_a_two_trial_study_and_see_it_finish(tiny_ws):
    at = _page()
    with _no_workers_left(tiny_ws, lambda: [s.name for s in list_studies(tiny_ws)]):
        at.text_input(key="se_new_name").set_value("page-study")
        at.selectbox(key="se_new_dataset").set_value("tiny")
        at.radio(key="se_new_weights").set_value("none")
        at.number_input(key="se_new_size").set_value(32)
        at.slider(key="se_new_depth").set_value((12, 18))
        at.number_input(key="se_new_epochs").set_value(2)
        at.number_input(key="se_new_trials").set_value(2)
        at.number_input(key="se_new_workers").set_value(1)
        at.run()
        at.button(key="se_new_create").click().run()
        _ok(at)
        assert not at.error, _text(at.error)
        assert "Started 1 worker(s)" in _text(at.success)
        assert at.selectbox(key="se_study").value == "page-study"
        assert at.query_params["study"] == "page-study"
        assert len(list_workers(tiny_ws, "page-study")) == 1

        start, seen_progress, finished = time.time(), False, None
        while time.time() - start < 300:
            time.sleep(3)
            at.run()
            _ok(at)
            seen_progress |= any("epoch" in p.proto.text for p in at.get("progress"))
            finished = _metrics(at).get("Finished")
            if finished == "2/2" and not list_workers(tiny_ws, "page-study")[0].alive:
                break
        took = time.time() - start
        assert finished == "2/2", f"after {took:.0f}s: {finished}; log: {list_workers(tiny_ws, 'page-study')}"
        print(f"\ntwo trials finished {took:.0f}s after launch; saw a running trial's progress: {seen_progress}")

        at.run()  # the last poll may have rendered the worker just before it logged its exit
        _ok(at)
        assert not at.error, _text(at.error)
        table = _trial_table(at)
        assert list(table["state"]) == ["COMPLETE", "COMPLETE"]
        assert set(table["params_freeze_depth"]) <= set(range(12, 19))
        assert "Best trial" in _text(at.markdown)
        assert _metrics(at)["Best val_accuracy"] != "–"
        assert "Finished: 2 of 2 trials" in _text(at.success)
        figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        figs = [f for f in figs if "Each score against" not in json.dumps(f["layout"].get("title"))]  # the scout's
        titles = [json.dumps(f["layout"].get("title")) for f in figs]
        assert len(figs) == 2 and "Best so far" in titles[0]  # the best so far, then the per-epoch curves
        assert len(figs[0]["data"][0]["x"]) == 2  # a point per complete trial
        fig = next(f for f, t in zip(figs, titles) if "after each epoch" in t)
        # Trial 0 is the default study's linear-probe trial (feature extraction until early stopping, at least
        # 4 epochs); trial 1 fine-tunes for the 2 epochs asked.
        assert len(fig["data"]) == 2 and sorted(len(tr["x"]) for tr in fig["data"])[0] == 2
        assert sorted(len(tr["x"]) for tr in fig["data"])[1] >= 4
        logs = [c.value for c in at.code if "worker" in c.value and "budget met" in c.value]
        assert logs, "the worker's log tail is shown"
        workers = next(df.value for df in at.dataframe if "worker" in df.value.columns and "pid" in df.value.columns)
        assert list(workers["state"]) == ["finished"]


def test_the_study_in_the_query_params_is_shown_again(tiny_ws):
    create_study(tiny_ws, tiny_spec("first"))
    time.sleep(1.1)  # list_studies sorts by creation time, to the second
    create_study(tiny_ws, tiny_spec("second"))

    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.query_params["study"] = "first"
    _page(at)
    _ok(at)
    assert at.selectbox(key="se_study").value == "first"
    assert _metrics(at)["Finished"] == "0/3"
    assert any("name: first" in c.value for c in at.code)  # the spec shown is first's

    at = _page()  # no query param: the newest
    _ok(at)
    assert at.selectbox(key="se_study").value == "second"
    assert at.query_params["study"] == "second"
    at.selectbox(key="se_study").set_value("first").run()
    assert at.query_params["study"] == "first"

    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.query_params["study"] = "gone"
    _page(at)
    _ok(at)
    assert "no study named gone" in _text(at.warning)
    assert at.selectbox(key="se_study").value == "second"


def test_a_banner_moves_nothing_and_the_new_study_form_stays_open(tiny_ws):
    create_study(tiny_ws, tiny_spec("kept"))
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.query_params["study"] = "gone"
    _page(at)
    _ok(at)
    assert "no study named gone" in _text(at.warning)
    labels = ("New study", "Delete this study")
    where = {label: expander_path(at, label) for label in labels}
    upload = tab_path(at, "Upload a spec (YAML)")
    assert None not in where.values() and upload is not None
    at.run()  # the next interaction
    assert "no study named" not in _text(at.warning)  # a banner shows once
    assert {label: expander_path(at, label) for label in labels} == where  # and moved nothing
    assert tab_path(at, "Upload a spec (YAML)") == upload

    at.session_state["se_new_open"] = True  # what opening the form leaves (tlui.place)
    at.run()
    at.text_input(key="se_new_name").set_value("next").run()
    assert is_open(at, "New study")
    at.checkbox(key="se_new_start").uncheck()
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert "Created study next" in _text(at.success)
    assert not is_open(at, "New study")  # closed: the new study is below
    at.run()
    assert "Created study" not in _text(at.success)


def test_a_finished_study_has_nothing_to_stop(tiny_ws):
    t0 = dt.datetime(2026, 1, 5, 9, 0, 0)
    hand_study(tiny_ws, "done", [hand_trial(t0, 10 * i, 10 * i + 9, value=0.5, freeze_depth=14) for i in range(3)])
    at = _page()
    _ok(at)
    stop = at.button(key="se_stop")
    assert stop.disabled and "finished its trials" in stop.help


def test_stop_resume_fail_and_delete_buttons(tiny_ws):
    name = "buttons"
    create_study(tiny_ws, tiny_spec(name))
    at = _page()
    _ok(at)
    assert at.button(key="se_add").disabled is False

    at.button(key="se_stop").click().run()
    _ok(at)
    assert stop_requested(tiny_ws, name)
    assert "Stop requested; 0 local worker(s) signalled" in _text(at.success)
    assert "Stopped" in _text(at.warning)
    assert at.button(key="se_add").disabled  # resume first

    # A typed number out of range blocks Resume and says why: never the previous value.
    too_many = state.MAX_WORKERS + 1
    at.number_input(key="se_workers").set_value(too_many).run()
    at.button(key="se_resume").click().run()
    assert not at.exception
    assert stop_requested(tiny_ws, name)
    assert f"Nothing was resumed. Workers to start must be between 0 and {state.MAX_WORKERS} (it is {too_many})" \
        in _text(at.error)
    assert list_workers(tiny_ws, name) == []

    at.number_input(key="se_workers").set_value(0)
    at.button(key="se_resume").click().run()
    _ok(at)
    assert not stop_requested(tiny_ws, name)
    assert "0 interrupted trial(s) queued again; no worker started" in _text(at.success)
    assert list_workers(tiny_ws, name) == []
    assert at.button(key="se_add").disabled  # 0 workers to start

    # A running trial (asked for through the API, as a worker would) can be marked failed.
    study = load_study(tiny_ws, name)
    trial = study.ask()
    at.run()
    _ok(at)
    assert _metrics(at)["Running"] == "1"
    assert at.selectbox(key=f"se_fail_pick::{name}").value == trial.number
    assert at.button(key="se_fail").disabled
    at.checkbox(key=f"se_fail_ok::{name}").check().run()
    at.button(key="se_fail").click().run()
    _ok(at)
    assert study.get_trials()[0].state == TrialState.FAIL
    assert f"Trial {trial.number} marked failed" in _text(at.success)
    assert _metrics(at)["Failed · interrupted"] == "1 · 0"

    # Deleting is refused while a local worker of the study is alive.
    wdir = study_local_dir(tiny_ws, name) / "workers"
    wdir.mkdir(parents=True, exist_ok=True)
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore-fake-worker"])
    try:
        (wdir / "fake.json").write_text(json.dumps({
            "worker_id": "fake", "pid": fake.pid, "host": socket.gethostname(), "state": "waiting",
            "started": time.time()}))
        at.run()
        assert at.button(key="se_delete").disabled
        at.text_input(key=f"se_del_name::{name}").set_value(name).run()
        at.button(key="se_delete").click().run()
        _ok(at)
        assert "still has 1 running worker" in _text(at.error)
        assert [s.name for s in list_studies(tiny_ws)] == [name]
    finally:
        fake.kill()
        fake.wait()

    at.run()
    at.text_input(key=f"se_del_name::{name}").set_value(name).run()
    at.button(key="se_delete").click().run()
    _ok(at)
    assert list_studies(tiny_ws) == []
    assert "Deleted study buttons" in _text(at.success)
    assert "No studies yet" in _text(at.info)
    assert "study" not in at.query_params
    assert not at.warning


def test_a_poll_is_cheap(tiny_ws):
    """One refresh of the live section reads the storage a few times; all of it in well under a second."""
    create_study(tiny_ws, tiny_spec("cheap", n_trials=50))
    study = optuna.load_study(study_name="cheap", storage=open_storage(tiny_ws))
    for i in range(30):
        t = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
        for epoch in (1, 2):
            t.report(0.5 + i / 100, epoch)
        study.tell(t, 0.5 + i / 100)
    poll_study(tiny_ws, "cheap")  # the first read replays the journal
    times = []
    for _ in range(5):
        snap = poll_study(tiny_ws, "cheap")
        times.append(snap.seconds)
    assert snap.summary.finished == 30 and len(snap.frame) == 30 and len(snap.curves) == 30
    print(f"\npoll of a 30-trial study: median {1000 * sorted(times)[2]:.1f} ms")
    assert sorted(times)[2] < 0.5


def test_a_crashed_worker_is_shown_with_the_end_of_its_log(tiny_ws):
    name = "crashy"
    create_study(tiny_ws, tiny_spec(name))
    assert load_study(tiny_ws, name).ask().number == 0  # the trial the worker took, RUNNING when it died
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process
    wdir = study_local_dir(tiny_ws, name) / "workers"
    wdir.mkdir(parents=True)
    (wdir / "w1.json").write_text(json.dumps({
        "worker_id": "w1", "pid": gone.pid, "host": socket.gethostname(), "state": "training", "trial": 0,
        "started": time.time()}))
    (wdir / "w1.log").write_text("trial 0: {'learning_rate': '1.00e-03'}\n"
                                 + "".join(f"  line {i} of a traceback\n" for i in range(30))
                                 + "MemoryError: the *last* line <b>\n")
    at = _page()
    _ok(at)
    warning = next(w.value for w in at.warning if "crashed" in w.value)
    assert "w1" in warning and "MemoryError: the *last* line <b>" in warning.replace("\\", "")
    assert "\\*last\\*" in warning  # Markdown-escaped: shown as typed
    assert "Add workers" in warning  # what to do
    tail = next(c.value for c in at.code if "MemoryError" in c.value)
    assert tail.splitlines()[-1] == "MemoryError: the *last* line <b>" and "line 29 of" in tail
    assert "line 0 of" not in tail  # only the end of the log
    workers = next(df.value for df in at.dataframe if "pid" in df.value.columns)
    assert list(workers["state"]) == ["crashed"] and list(workers["alive"]) == [False]

    at.button(key="se_stop").click().run()  # the page keeps working
    _ok(at)
    assert stop_requested(tiny_ws, name)


def test_the_untouched_form_creates_the_spec_defaults(tiny_ws):
    """The New-study form starts from StudySpec's defaults (the page restates none): a study created
    without touching it is the default spec with the form's name, dataset and the backbone's depth range."""
    at = _page()
    _ok(at)
    assert at.selectbox(key="se_new_resize").help == "; ".join(f"{m}: {r}" for m, r in RESIZE_RULES.items()) + "."
    at.checkbox(key="se_new_start").uncheck()
    at.button(key="se_new_create").click().run()
    _ok(at)
    assert not at.error, _text(at.error)
    assert load_spec(tiny_ws, "search-1") == StudySpec(name="search-1", dataset="demo", freeze_depth=[0, 18])
    assert at.text_input(key="se_new_name").value == "search-2"  # the form is ready for the next


def test_the_best_trial_shows_an_integer_parameter_as_an_integer_after_a_resume(tiny_ws):
    """A waiting (re-queued) trial has no parameters yet, which turns the frame's freeze_depth column
    float: the best trial's line must still say "freeze_depth 15", not "15.0000"."""
    from tlcore.search import StudySummary
    from tlui.search_widgets import best_trial_text

    spec = tiny_spec(n_trials=2)
    create_study(tiny_ws, spec)
    study = load_study(tiny_ws, spec.name)
    dists = {"freeze_depth": optuna.distributions.IntDistribution(12, 18),
             "learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"freeze_depth": 15, "learning_rate": 2.5e-3},
                                              distributions=dists, value=0.9))
    study.enqueue_trial({"freeze_depth": 15, "learning_rate": 2.5e-3})
    frame = study.trials_dataframe()
    assert frame["params_freeze_depth"].dtype.kind == "f"  # the case: NaN for the waiting trial
    summary = next(s for s in list_studies(tiny_ws) if s.name == spec.name)
    assert isinstance(summary, StudySummary) and summary.best_trial == 0
    text = best_trial_text(summary, frame)
    assert text.endswith(r"freeze\_depth 15 · learning\_rate 2\.50e\-03"), text


def test_a_worker_whose_trial_has_just_ended_shows_no_progress_bar():
    """Under "Finished: 2/2" the page drew "Trial 1 · epoch 4/20 · saving the trial's files": the worker had
    told the trial's result and not yet written its own new state."""
    from pathlib import Path

    import pandas as pd

    from tlcore.search.worker_state import WorkerInfo, WorkerRecord, WorkerState
    from tlui.search_widgets import Snapshot

    def worker(wid: str, trial: int) -> WorkerInfo:
        rec = WorkerRecord.from_dict({"worker_id": wid, "pid": 1, "state": "training", "trial": trial,
                                      "status": "saving the trial's files"})
        return WorkerInfo(worker_id=wid, pid=1, host="here", state=WorkerState.TRAINING, alive=True, trial=trial,
                          data=rec.to_dict(), log_path=Path("x.log"), record=rec)

    frame = pd.DataFrame({"number": [0, 1, 2], "state": ["COMPLETE", "COMPLETE", "RUNNING"]})
    snap = Snapshot(name="s", summary=None, frame=frame, workers=[worker("a", 1), worker("b", 2)])
    assert [w.worker_id for w in snap.training_workers] == ["b"]


def test_workers_started_on_changed_data_say_what_changed(tiny_ws, monkeypatch):
    """The study's dataset relabelled in its own workspace since it was created: Add workers starts them,
    in a warning that names the changed classes (it had said only "Started 1 worker(s).")."""
    from tlcore.datasets import add_overrides, dataset_splits
    from tlcore.search.study import check_dataset_here

    name = "relabelled"
    create_study(tiny_ws, tiny_spec(name))
    moved = dataset_splits(tiny_ws, "tiny").query("label == 'cat'")["relpath"].iloc[0]
    add_overrides(tiny_ws, "tiny", [moved], "relabel", label="dog")

    def launch_nothing(ws, study, n, storage=None, *, warn=None, **kw):  # the check, no process
        check_dataset_here(ws, study, storage, warn=warn)
        return [f"w{i}" for i in range(n)]

    monkeypatch.setattr(state, "launch_workers", launch_nothing)
    at = _page()
    _ok(at)
    at.button(key="se_add").click().run()
    _ok(at)
    warning = _text(at.warning)
    assert "Started 1 worker(s)." in warning and "/cat: " in warning and "/dog: " in warning, warning
    assert "Started 1 worker(s)." not in _text(at.success)
