"""Damaged run files and forgotten choices: the careless user's round on Predict and Results.

- A run folder whose ``metrics.json``, ``data.json`` or ``spec.yaml`` exists but cannot be read
  still loads (the model is fine), but never silently: ``LoadedModel.notes`` (``read_run_files``)
  says which file, what that changes (no calibration; the resize rule is unknown and "pad" is
  used) and how to fix it; the CLI prints each note once on stderr, the Predict and Results pages
  show them as warnings, and the calibration view no longer claims such a run predates calibration.
- The Predict page keeps its choices across a visit to another page.
- The Results page says a chosen run that was deleted on disk, and a model file deleted before its
  Download was pressed, instead of swapping runs silently or failing with a generic error.

Models are hand-made (``tests.helpers.handmodel``): nothing is trained here.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.handmodel import channel_model, upload_trial_run, write_export_folder, write_model_folder
from tests.helpers.handstudy import epoch_record, hand_study, hand_trial
from tests.helpers.imagegen import image_bytes
from tests.helpers.pagetest import assert_ok, open_page, shown_text
from tests.helpers.runs import TINY_CLASSES, write_tinted_tree
from tlcore.cli import main
from tlcore.datasets import add_dataset
from tlcore.errors import ConfigError, NotFoundError
from tlcore.predict import load_model
from tlui.calibration_widgets import NOT_CALIBRATED

PREDICT = "pages/6_Predict.py"
RESULTS = "pages/5_Results.py"
HOME = "pages/0_Home.py"
GARBAGE = b"\x00\xff\xfe garbage {"


def _run(root, name: str, *, resize: str = "crop", temperature: float | None = 2.0):
    """A hand-made run folder as the trainer writes one: model, labels, spec, metrics (calibrated) and data.json."""
    metrics = {"calibration": {"temperature": temperature, "split": "validation", "ece_before": 0.2,
                               "ece_after": 0.1}} if temperature is not None else {}
    folder = write_model_folder(root / "models" / name, channel_model(3, 8), TINY_CLASSES,
                                spec={"dataset": "tiny", "resize_mode": resize}, metrics=metrics)
    (folder / "data.json").write_text(json.dumps({"dataset": "tiny", "image_size": 8, "resize_mode": resize,
                                                  "test_files": []}), encoding="utf-8")
    return folder


@pytest.fixture
def ws(workspace):
    """The workspace with runs run-a and run-b (crop, temperature 2) and the tiny dataset registered."""
    _run(workspace.root, "run-a")
    _run(workspace.root, "run-b")
    add_dataset(workspace, "tiny", write_tinted_tree(workspace.root / "photos", per_class=3))
    return workspace


# ------------------------------------------------------- damaged run files
@pytest.mark.parametrize("content", [GARBAGE, b"[1, 2, 3]"], ids=["garbage", "wrong-shape"])
def test_a_damaged_metrics_json_loads_uncalibrated_and_says_so(ws, content):
    run = ws.models_dir / "run-a"
    assert load_model(run).temperature == 2.0 and not load_model(run).notes
    (run / "metrics.json").write_bytes(content)
    loaded = load_model(run)  # the model is fine: it still loads
    assert loaded.temperature == 1.0 and loaded.resize_mode == "crop"
    [note] = loaded.notes
    assert "metrics.json" in note and "not calibrated" in note and str(run) in note
    assert "Restore it from a copy" in note and "train the model again" in note
    from tlcore.predict import read_run_files  # what the Results page reads without loading the model

    files = read_run_files(run)
    assert files.notes == loaded.notes and files.calibration_unknown


def test_a_run_from_before_calibration_or_without_the_file_has_no_note(ws):
    run = ws.models_dir / "run-a"
    (run / "metrics.json").write_text('{"best_val_accuracy": 0.5}')  # written before calibration existed
    loaded = load_model(run)
    assert loaded.temperature == 1.0 and loaded.notes == ()
    from tlcore.predict import read_run_files

    assert not read_run_files(run).calibration_unknown
    (run / "metrics.json").unlink()  # missing is not damaged
    (run / "data.json").unlink()
    assert load_model(run).notes == () and load_model(run).resize_mode == "crop"  # from spec.yaml


def test_a_calibration_entry_without_a_valid_temperature_is_said(ws):
    run = ws.models_dir / "run-a"
    (run / "metrics.json").write_text(json.dumps({"calibration": {"temperature": "warm"}}))
    loaded = load_model(run)
    assert loaded.temperature == 1.0
    assert any("calibration in its metrics.json holds no valid temperature" in n for n in loaded.notes)
    from tlcore.predict import read_run_files

    assert read_run_files(run).calibration_unknown


def test_damaged_data_json_and_spec_yaml_lose_the_resize_rule_and_say_so(ws):
    run = ws.models_dir / "run-a"
    (run / "data.json").write_bytes(GARBAGE)
    loaded = load_model(run)  # spec.yaml still names the rule: nothing lost but the test images
    assert loaded.resize_mode == "crop"
    assert len(loaded.notes) == 1 and "data.json" in loaded.notes[0] and "test images are unknown" in loaded.notes[0]
    (run / "spec.yaml").write_text("- a list\n- not the run's settings\n")
    loaded = load_model(run)
    assert loaded.resize_mode == "pad" and loaded.temperature == 2.0
    resize = [n for n in loaded.notes if "resize rule is unknown" in n]
    assert len(resize) == 1 and "'pad' is used" in resize[0]
    assert "data.json and spec.yaml cannot be read" in resize[0] and "Restore data.json and spec.yaml" in resize[0]
    assert any(n.startswith(f"Model folder {run}: its spec.yaml is not a YAML mapping") for n in loaded.notes)
    # Re-evaluation says what to restore rather than "load it from its run folder" (which it was).
    from tlcore.predict import evaluate_run

    with pytest.raises(ConfigError, match="data.json cannot be used: restore it"):
        evaluate_run(loaded, ws)


def test_an_unknown_resize_rule_is_said(ws):
    run = ws.models_dir / "run-a"
    (run / "data.json").write_text(json.dumps({"dataset": "tiny", "resize_mode": "zoom", "test_files": []}))
    (run / "spec.yaml").write_text("dataset: tiny\n")
    loaded = load_model(run)
    assert loaded.resize_mode == "pad"
    [note] = loaded.notes
    assert "its data.json names 'zoom', which is none of pad, crop, stretch" in note and "'pad' is used" in note


def test_a_damaged_model_card_of_an_export(ws):
    folder = write_export_folder(ws.exports_dir / "exp", channel_model(3, 8), TINY_CLASSES)
    assert load_model(folder).resize_mode == "stretch" and not load_model(folder).notes
    (folder / "model_card.json").write_bytes(GARBAGE)
    loaded = load_model(folder)
    assert loaded.resize_mode == "pad"
    assert any("model_card.json is not a JSON object" in n and "export the model again" in n for n in loaded.notes)
    assert any("resize rule is unknown (model_card.json cannot be read)" in n for n in loaded.notes)


def test_the_cli_prints_each_note_once_on_stderr(ws, capsys, tmp_path):
    (ws.models_dir / "run-a" / "metrics.json").write_bytes(GARBAGE)
    image = tmp_path / "a.png"
    image.write_bytes(image_bytes((20, 10), seed=1))
    code = main(["--workspace", str(ws.root), "predict", "run:run-a", str(image)])
    out, err = capsys.readouterr()
    assert code == 0 and "a.png: " in out
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "metrics.json" in notes[0] and "not calibrated" in notes[0]
    code = main(["--workspace", str(ws.root), "predict", "run:run-a", str(image), "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and len(json.loads(out)["notes"]) == 1 and err.count("note: ") == 1
    code = main(["--workspace", str(ws.root), "predict", "run:run-b", str(image)])
    assert code == 0 and "note:" not in capsys.readouterr().err  # a sound run: no note


def test_the_predict_page_warns_about_a_damaged_run(ws):
    (ws.models_dir / "run-a" / "metrics.json").write_bytes(GARBAGE)
    at = open_page(PREDICT, model="run:run-a")
    assert_ok(at)
    assert at.selectbox(key="pr_model").value == "run:run-a"
    warnings = shown_text(at.warning)
    assert f"Model folder {ws.models_dir / 'run-a'}: its metrics.json is not a JSON object" in warnings
    assert "its predictions are not calibrated" in warnings
    at.selectbox(key="pr_model").set_value("run:run-b").run()
    assert_ok(at)
    assert "Model folder" not in shown_text(at.warning)


def test_results_says_a_damaged_metrics_json_rather_than_before_calibration(ws):
    (ws.models_dir / "run-a" / "metrics.json").write_bytes(GARBAGE)
    (ws.models_dir / "run-b" / "metrics.json").write_text('{"best_val_accuracy": 0.5}')  # before calibration
    at = open_page(RESULTS, run="run-a")
    assert_ok(at)
    assert at.selectbox(key="rs_run_eval").value == "run-a"
    assert "its metrics.json is not a JSON object, so its predictions are not calibrated" in shown_text(at.warning)
    captions = shown_text(at.caption)
    assert "the calibration this run stored cannot be read" in captions and NOT_CALIBRATED not in captions
    at.multiselect(key="rs_runs").set_value(["run-b"]).run()
    assert_ok(at)
    assert NOT_CALIBRATED in shown_text(at.caption) and "Model folder" not in shown_text(at.warning)


def test_results_shows_the_calibration_a_run_stored(ws):
    """The stored calibration comes from the run's files as read once for the page (``read_run_files``)."""
    at = open_page(RESULTS, run="run-a")
    assert_ok(at)
    temperature = [m for m in at.metric if m.label == "Temperature"]
    assert temperature and temperature[0].value.startswith("2.0")
    assert NOT_CALIBRATED not in shown_text(at.caption) and not shown_text(at.warning)


# -------------------------------------------------- Predict keeps its choices
def _away_and_back(at: AppTest) -> AppTest:
    """Visit Home, then come back to Predict as the sidebar's menu does (its link carries Predict's URL)."""
    at.query_params.clear()  # the browser's URL for Home
    at.switch_page(HOME).run()
    assert_ok(at)
    link = next(p.proto for p in at.sidebar.get("page_link") if p.proto.label == "Predict")
    for k, v in parse_qs(link.query_string).items():
        at.query_params[k] = v[0]
    return at.switch_page(PREDICT).run()


def test_predict_keeps_its_choices_after_another_page(ws):
    at = open_page(PREDICT)
    at.selectbox(key="pr_model").set_value("run:run-a").run()
    at.radio(key="pr_source").set_value("Pick from a dataset").run()
    at.selectbox(key="pr_cls::tiny").set_value("dog").run()
    at.selectbox(key="pr_file::tiny::dog").set_value("dog/dog_002.png").run()
    at.slider(key="pr_top_k").set_value(2).run()
    at.toggle(key="pr_tta").set_value(True).run()
    at.checkbox(key="pr_gradcam").uncheck().run()
    assert_ok(at)
    at = _away_and_back(at)
    assert_ok(at)
    assert at.selectbox(key="pr_model").value == "run:run-a"
    assert at.radio(key="pr_source").value == "Pick from a dataset"
    assert at.selectbox(key="pr_ds").value == "tiny"
    assert at.selectbox(key="pr_cls::tiny").value == "dog"
    assert at.selectbox(key="pr_file::tiny::dog").value == "dog/dog_002.png"
    assert at.slider(key="pr_top_k").value == 2
    assert at.toggle(key="pr_tta").value is True
    assert at.checkbox(key="pr_gradcam").value is False
    # The batch source's choices too.
    at.radio(key="pr_source").set_value("Batch: a folder or a zip").run()
    at.radio(key="pr_batch_kind").set_value("A folder on the server").run()
    at.text_input(key="pr_batch_folder").set_value(str(ws.root / "photos")).run()
    at = _away_and_back(at)
    assert_ok(at)
    assert at.radio(key="pr_batch_kind").value == "A folder on the server"
    assert at.text_input(key="pr_batch_folder").value == str(ws.root / "photos")


def test_a_link_to_another_model_still_wins_after_coming_back(ws):
    at = open_page(PREDICT)
    at.selectbox(key="pr_model").set_value("run:run-a").run()
    at.query_params.clear()
    at.switch_page(HOME).run()
    at.query_params["model"] = "run:run-b"  # e.g. Results' "Try it on Predict" link
    at.switch_page(PREDICT).run()
    assert_ok(at)
    assert at.selectbox(key="pr_model").value == "run:run-b"


# ------------------------------------------------ Results: a run deleted under it
def test_results_says_a_chosen_run_deleted_on_disk(ws):
    at = open_page(RESULTS, run="run-b")
    at.multiselect(key="rs_runs").set_value(["run-a", "run-b"]).run()
    at.selectbox(key="rs_run_eval").set_value("run-b").run()
    assert_ok(at)
    shutil.rmtree(ws.models_dir / "run-b")  # another tab, a terminal
    at.run()
    assert_ok(at)
    assert at.multiselect(key="rs_runs").value == ["run-a"] and at.selectbox(key="rs_run_eval").value == "run-a"
    assert "The run run-b is no longer there (deleted, or its files cannot be read): showing run-a instead" in \
        shown_text(at.warning)
    at.run()  # said once
    assert "no longer there" not in shown_text(at.warning)


def test_results_says_a_linked_run_that_is_not_there(ws):
    at = open_page(RESULTS, run="gone-run")
    assert_ok(at)
    assert at.multiselect(key="rs_runs").value and "gone-run" not in at.multiselect(key="rs_runs").value
    shown = at.multiselect(key="rs_runs").value[0]
    assert f"The run gone-run is no longer there (deleted, or its files cannot be read): showing {shown} instead" \
        in shown_text(at.warning)


# ------------------------------------------- Results: model.keras deleted, then Download
@pytest.fixture
def deferred(monkeypatch):
    """The callables of deferred downloads, by the file id the page's buttons carry."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    found: dict[str, object] = {}
    original = MediaFileManager.add_deferred

    def record(self, callable_, *args, **kwargs):
        file_id = original(self, callable_, *args, **kwargs)
        found[file_id] = callable_
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return found


def _model_download(at: AppTest):
    return next((b for b in at.get("download_button") if b.proto.label == "Download model.keras"), None)


def test_results_says_a_model_file_deleted_before_its_download(ws, deferred):
    at = open_page(RESULTS, run="run-a")
    at.multiselect(key="rs_runs").set_value(["run-a", "run-b"]).run()
    assert_ok(at)
    button = _model_download(at)
    assert button is not None and not button.proto.ignore_rerun  # a press reruns the page, which can say it
    data = deferred[button.proto.deferred_file_id]
    assert data()[:2] == b"PK"  # the model file's bytes (a zip)
    (ws.models_dir / "run-a" / "model.keras").unlink()
    with pytest.raises(NotFoundError, match="The model file can no longer be read"):
        data()
    button.click().run()
    assert not at.exception
    warnings = shown_text(at.warning)
    assert "The run run-a is no longer there" in warnings
    assert "Run 'run-a' is not listed: its model.keras is missing" in warnings  # and what to do
    assert at.selectbox(key="rs_run_eval").value == "run-b"


def test_a_trial_model_deleted_before_its_download_is_fetched_again(ws, deferred):
    ids = upload_trial_run(ws, ws.models_dir / "run-a", "t")
    t0 = dt.datetime(2026, 1, 1)
    hand_study(ws, "hs", [hand_trial(t0, 0, 5, value=0.8, history=[epoch_record(1, 0.8)], tl_artifacts=ids)])
    shutil.rmtree(ws.models_dir)  # the Searches view, alone
    at = open_page(RESULTS, study="hs")
    assert not at.exception
    button = _model_download(at)
    assert button is not None
    trial_model = ws.root / "studies" / "local" / "hs" / "trials" / "0" / "model.keras"
    trial_model.unlink()
    with pytest.raises(NotFoundError):
        deferred[button.proto.deferred_file_id]()
    button.click().run()
    assert not at.exception
    assert trial_model.is_file() and _model_download(at) is not None  # fetched again from the artifact store
    assert "could not be read when Download was pressed, so nothing was downloaded" in shown_text(at.info)
    at.run()
    assert "when Download was pressed" not in shown_text(at.info)


def test_an_export_of_a_run_with_a_damaged_file_names_it_in_its_warnings(ws, tmp_path):
    from tlcore.export import export_model

    (ws.models_dir / "run-a" / "metrics.json").write_bytes(GARBAGE)
    result = export_model(ws.models_dir / "run-a", tmp_path / "out", ["keras"], workspace=ws)
    assert any("metrics.json" in w and "not calibrated" in w for w in result.warnings)
    card = json.loads((tmp_path / "out" / "model_card.json").read_text(encoding="utf-8"))
    assert card["warnings"] == list(result.warnings)
