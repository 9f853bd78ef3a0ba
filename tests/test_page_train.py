"""The Train page (pages/3_Train.py) and the Results page's "Trained runs", run headlessly with AppTest.

No training runs here: the jobs the page shows are written through ``tlcore.train_jobs``'s
own writer (``JobReporter``) from the session's tiny run (tests/helpers/runs.py), and the
Train button's launch is replaced by a recorder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import assert_ok, shown_text
from tests.helpers.runs import tiny_run
from tlcore import background
from tlcore import train_jobs as tj
from tlcore.config import TrainSpec
from tlcore.runfolder import RunFolder
from tlcore.workspace import Workspace

# Shares the session's tiny trained run: one pytest-xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")

PAGE = "pages/3_Train.py"
RESULTS = "pages/5_Results.py"


def _page(job: str | None = None, page: str = PAGE, **params) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    if job:
        at.query_params["job"] = job
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(page)
    return at.run()


@pytest.fixture
def run_ws(tmp_path_factory, tmp_path, monkeypatch) -> Workspace:
    """A private copy of the tiny run's workspace (its dataset "tiny" registered), TLCORE_HOME at it."""
    src = tiny_run(tmp_path_factory).parent.parent
    ws = Workspace(shutil.copytree(src, tmp_path / "ws"))
    monkeypatch.setenv("TLCORE_HOME", str(ws.root))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    return ws


def finished_job(ws: Workspace) -> tj.TrainJob:
    """A job that trained the tiny run, written as a training process writes it."""
    run = ws.models_dir / "tiny-run"
    spec = TrainSpec.from_dict(RunFolder(run).read_spec())
    rep = tj.JobReporter(tj.register_job(ws, spec, source="page"))
    rep.start()
    for rec in RunFolder(run).read_history():
        rep.on_epoch(rec)
    rep.finished(run, RunFolder(run).read_metrics())
    return rep.job


def test_the_form_starts_at_trainspecs_defaults_and_explains_a_bad_value(workspace):
    at = _page()
    assert_ok(at)
    assert at.title[0].value == "Train"
    assert at.selectbox(key="tr_dataset").value == "demo"
    assert at.radio(key="tr_method").value == "feature_extraction"
    assert at.number_input(key="tr_size").value == TrainSpec.image_size
    assert at.number_input(key="tr_epochs").value == TrainSpec.epochs
    assert at.select_slider(key="tr_depth").disabled  # feature extraction freezes every block
    assert "No training runs yet" in shown_text(at.info)
    at.radio(key="tr_method").set_value("two_phase").run()
    assert not at.select_slider(key="tr_depth").disabled
    at.number_input(key="tr_epochs").set_value(1).run()
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert "two_phase needs at least 2 epochs" in shown_text(at.error)  # TrainSpec's own message
    assert tj.list_jobs(workspace) == []


def test_an_out_of_range_number_blocks_train_and_says_why(workspace):
    """Epochs = 0 reaches the page as typed (the browser no longer swaps in the old value): the field
    says what is allowed and Train starts nothing until it is fixed."""
    at = _page()
    at.number_input(key="tr_epochs").set_value(0).run()
    assert not at.exception
    assert at.number_input(key="tr_epochs").value == 0
    assert shown_text(at.error) == "Epochs must be between 1 and 1,000 (it is 0)."
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert "Nothing was started. Fix the fields first: Epochs must be between 1 and 1,000 (it is 0)." in \
        shown_text(at.error)
    assert tj.list_jobs(workspace) == []


def test_a_dataset_or_pipeline_removed_on_another_tab_starts_nothing(workspace, monkeypatch):
    """The rerun that finds the chosen dataset (or saved pipeline) gone must not train on the one the
    form falls back to: it says what changed and starts nothing; the next press trains what is shown."""
    from tests.helpers.runs import write_tinted_tree
    from tlcore import augment as au
    from tlcore.datasets import add_dataset, remove_dataset

    launched: list[TrainSpec] = []
    monkeypatch.setattr(tj, "launch_training", lambda ws, spec: launched.append(spec) or tj.register_job(ws, spec))
    add_dataset(workspace, "my_set", write_tinted_tree(workspace.root / "my_set", per_class=3))
    au.save_pipeline(workspace, "mypipe", au.preset_spec("light"))
    at = _page()
    at.selectbox(key="tr_dataset").set_value("my_set").run()
    at.selectbox(key="tr_augment").set_value("mypipe").run()
    remove_dataset(workspace, "my_set")  # on another tab
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert launched == [] and tj.list_jobs(workspace) == []
    assert ("Nothing was started. The dataset 'my_set' is no longer there (removed, perhaps on another tab): the "
            "form now shows 'demo'.") in shown_text(at.error)
    assert "my\\_set" in at.error[0].value  # escaped: the underscore does not start italics
    assert at.selectbox(key="tr_dataset").value == "demo"

    au.delete_pipeline(workspace, "mypipe")  # on another tab
    at.run()  # a rerun without a press: the change is said once, as a warning
    assert "The augmentation pipeline 'mypipe' is no longer there" in shown_text(at.warning)
    at.run()
    assert "no longer there" not in shown_text(at.warning)
    at.button(key="tr_start").click().run()
    assert_ok(at)
    [spec] = launched
    assert (spec.dataset, spec.augment) == ("demo", None)


def test_train_launches_the_forms_spec_as_a_job_and_selects_it(workspace, monkeypatch):
    launched: list[TrainSpec] = []

    def launch(ws, spec):  # the job without its process
        launched.append(spec)
        return tj.register_job(ws, spec, source="page")

    monkeypatch.setattr(tj, "launch_training", launch)
    at = _page()
    at.radio(key="tr_method").set_value("fine_tune").run()
    at.select_slider(key="tr_depth").set_value(10).run()
    at.number_input(key="tr_size").set_value(64).run()
    at.number_input(key="tr_epochs").set_value(3).run()
    at.button(key="tr_start").click().run()
    assert_ok(at)
    [spec] = launched
    assert (spec.dataset, spec.method, spec.freeze_depth, spec.image_size, spec.epochs) == ("demo", "fine_tune", 10,
                                                                                          64, 3)
    [job] = tj.list_jobs(workspace)
    assert at.query_params["job"] in (job.id, [job.id])
    assert f"Started job {job.id}" in shown_text(at.success)
    assert "Queued" in shown_text(at.info)
    assert any(b.key == "tr_stop" for b in at.button)


def test_a_finished_job_shows_its_epochs_curves_report_and_links(run_ws):
    job = finished_job(run_ws)
    at = _page(job.id)
    assert_ok(at)
    assert at.selectbox(key="tr_job").value == job.id
    assert "Finished" in shown_text(at.success)
    epochs = next(d.value for d in at.dataframe if "epoch_seconds" in d.value.columns)
    history = RunFolder(run_ws.models_dir / "tiny-run").read_history()
    assert list(epochs["epoch"]) == [h["epoch"] for h in history]
    assert at.get("plotly_chart")  # the curves (and the confusion matrix)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"].endswith("%")
    links = {link.proto.label: link.proto for link in at.main.get("page_link")}
    assert set(links) == {"Open in Results", "Try it on Predict"}
    assert not any(b.key == "tr_stop" for b in at.button)


def test_a_crashed_job_shows_its_error_and_the_end_of_its_log(workspace):
    job = tj.register_job(workspace, TrainSpec(dataset="demo"), source="page")
    job.log_file.write_text("loading\nTraceback (most recent call last):\nValueError: the *bad* thing\n")
    rep = tj.JobReporter(job)
    rep.start()
    rep.crashed("ValueError: the *bad* thing")
    at = _page(job.id)
    assert not at.exception
    assert "Crashed: ValueError: the *bad* thing" in shown_text(at.error)
    assert any(c.value.endswith("ValueError: the *bad* thing") for c in at.code)


def test_a_running_job_can_be_stopped_from_the_page(workspace):
    job = tj.register_job(workspace, TrainSpec(dataset="demo"), source="page")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore"], start_new_session=True)
    background.track_child(proc)
    try:
        tj.JobReporter(job).on_epoch({"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.1,
                                      "val_accuracy": 0.4, "epoch_seconds": 2.0})
        state = {**job.read_state(), "status": "running", "pid": proc.pid}
        job.state_file.write_text(json.dumps(state))  # as its process writes it (tlcore.train_jobs)
        at = _page(job.id)
        assert_ok(at)
        assert "Running: 1 of 5 epochs done" in shown_text(at.info)
        at.button(key="tr_stop").click().run()
        assert_ok(at)
        assert job.stop_file.is_file()
        assert "Stop requested" in shown_text(at.success)
        assert at.button(key="tr_stop").disabled
    finally:
        proc.kill()


def test_results_opens_a_trained_run_like_a_trial(run_ws):
    at = _page(page=RESULTS, run="tiny-run")
    assert_ok(at)
    assert at.radio(key="rs_source").value == "Trained runs"
    assert at.multiselect(key="rs_runs").value == ["tiny-run"]
    assert at.get("plotly_chart")
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Download model.keras" in labels
    assert at.multiselect(key="rs_formats").value  # the export, as for a trial
    at.button(key="rs_eval_btn").click().run()
    assert_ok(at)
    test_files = RunFolder(run_ws.models_dir / "tiny-run").read_data()["test_files"]
    assert {m.label: m.value for m in at.metric}["Test images"] == str(len(test_files))
    at.radio(key="rs_source").set_value("Searches").run()
    assert_ok(at)
    assert "No studies in this workspace" in shown_text(at.info)


def test_results_says_why_a_damaged_run_is_not_listed(run_ws):
    broken = run_ws.models_dir / "broken-run"
    shutil.copytree(run_ws.models_dir / "tiny-run", broken)
    (broken / "labels.txt").write_bytes("caf\xe9\n".encode("latin-1"))  # saved by an editor in Latin-1
    at = _page(page=RESULTS)
    assert_ok(at)
    assert "Run 'broken-run' is not listed: its labels.txt is not UTF-8 text" in shown_text(at.warning)
    assert at.radio(key="rs_source").value == "Trained runs"
    assert at.multiselect(key="rs_runs").options == ["tiny-run"]
