"""Every page keeps the user's choices after a visit to another page (AppTest).

Streamlit forgets the value of a keyed widget that a run does not draw, so going to Home through
the sidebar's menu and coming back put a page's filters, sliders, toggles, selectboxes and text
fields back at their defaults. The pages draw them with ``persist_state="session"`` now. What the
URL carries (the dataset, the studies, the runs, the job, the pipeline: ``tlui.place.keep_in_url``)
is not kept that way, so that a link naming another one still wins; and a confirmation ("I
understand", "Overwrite", "Replace the current decisions") is asked again.

Each test sets a page's choices, goes to Home and comes back as the sidebar's menu does (its link
carries the page's URL), and finds them as left. Nothing trains: models are hand-made
(``tests.helpers.handmodel``), studies too (``tests.helpers.handstudy``); the audit uses random
weights at 32 px.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import auditgen as ag
from tests.helpers.handmodel import channel_model, write_model_folder, zip_tree
from tests.helpers.handstudy import hand_study, outcomes_trials
from tests.helpers.idx import write_idx
from tests.helpers.imagegen import image_bytes
from tests.helpers.pagetest import assert_ok, open_page, shown_text
from tests.helpers.runs import write_tinted_tree
from tlcore import augment as au
from tlcore import train_jobs as tj
from tlcore.audit import AuditSpec, audit_dataset, list_audits
from tlcore.config import TrainSpec
from tlcore.datasets import add_dataset, remove_dataset, rescan_dataset
from tlcore.workspace import Workspace

HOME = "pages/0_Home.py"
DATASETS = "pages/1_Datasets.py"
AUGMENTATIONS = "pages/2_Augmentations.py"
TRAIN = "pages/3_Train.py"
SEARCH = "pages/4_Search.py"
RESULTS = "pages/5_Results.py"
TITLES = {DATASETS: "Datasets", AUGMENTATIONS: "Augmentations", TRAIN: "Train", SEARCH: "Search", RESULTS: "Results"}


def _go(at: AppTest, script: str, **link) -> AppTest:
    """Go to ``script`` as the sidebar's menu does (its link carries the page's URL as last left), or,
    given ``link``, through a link with those query parameters (another page's)."""
    if not link:
        menu = next(p.proto for p in at.sidebar.get("page_link") if p.proto.label == TITLES[script])
        link = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(menu.query_string).items()}
    at.query_params.clear()
    for k, v in link.items():
        at.query_params[k] = v
    return at.switch_page(script).run()


def _home(at: AppTest) -> AppTest:
    at.query_params.clear()  # the browser's URL for Home
    at.switch_page(HOME).run()
    assert_ok(at)
    return at


def _away_and_back(at: AppTest, script: str, **link) -> AppTest:
    """Visit Home, then come back to ``script`` (``_go``)."""
    return _go(_home(at), script, **link)


# ------------------------------------------------------------------ Datasets
@pytest.fixture
def datasets_ws(workspace, tmp_path, monkeypatch):
    """'tiny' (bird, cat, dog; one damaged file, so the Problems tab has filters) and 'other', both
    registered; a small Fashion-MNIST for the import tab."""
    photos = write_tinted_tree(workspace.root / "photos", per_class=4, size=(24, 20))
    (photos / "bird" / "broken.png").write_bytes(b"not a png")
    add_dataset(workspace, "tiny", photos)
    add_dataset(workspace, "other", write_tinted_tree(workspace.root / "other", per_class=3, size=(24, 20)))
    fm = tmp_path / "fmnist"
    fm.mkdir()
    for images, labels, n in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 20),
                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10)):
        write_idx(fm / images, np.zeros((n, 28, 28), np.uint8))
        write_idx(fm / labels, (np.arange(n) % 10).astype(np.uint8))
    monkeypatch.setenv("TLCORE_FASHION_MNIST", str(fm))
    return workspace


def test_datasets_keeps_its_choices_after_another_page(datasets_ws):
    at = open_page(DATASETS, dataset="tiny")
    assert_ok(at)
    at.text_input(key="ds_add_name").set_value("pets")
    at.text_input(key="ds_add_path").set_value(str(datasets_ws.root / "pets"))
    at.text_input(key="ds_zip_name").set_value("from-zip")
    at.text_input(key="ds_fm_name").set_value("fm-small")
    at.number_input(key="ds_fm_train").set_value(300)
    at.number_input(key="ds_fm_test").set_value(50)
    at.multiselect(key="ds_classes::tiny").set_value(["cat", "dog"])
    at.slider(key="ds_n_samples").set_value(12)
    at.multiselect(key="ds_prob_sev::tiny").set_value(at.multiselect(key="ds_prob_sev::tiny").options[:1])
    at.text_input(key="ds_prob_text::tiny").set_value("broken")
    at.number_input(key="ds_split_val::tiny").set_value(0.3)
    at.number_input(key="ds_split_test::tiny").set_value(0.2)
    at.number_input(key="ds_split_seed::tiny").set_value(7)
    at.checkbox(key="ds_rm_confirm::tiny").check()
    at.run()
    assert_ok(at)
    severity = at.multiselect(key="ds_prob_sev::tiny").value
    assert len(severity) == 1
    at = _away_and_back(at, DATASETS)
    assert_ok(at)
    assert at.selectbox(key="ds_selected").value == "tiny"
    assert at.text_input(key="ds_add_name").value == "pets"
    assert at.text_input(key="ds_add_path").value == str(datasets_ws.root / "pets")
    assert at.text_input(key="ds_zip_name").value == "from-zip"
    assert at.text_input(key="ds_fm_name").value == "fm-small"
    assert (at.number_input(key="ds_fm_train").value, at.number_input(key="ds_fm_test").value) == (300, 50)
    assert at.multiselect(key="ds_classes::tiny").value == ["cat", "dog"]
    assert at.slider(key="ds_n_samples").value == 12
    assert at.multiselect(key="ds_prob_sev::tiny").value == severity
    assert at.text_input(key="ds_prob_text::tiny").value == "broken"
    assert at.number_input(key="ds_split_val::tiny").value == pytest.approx(0.3)
    assert at.number_input(key="ds_split_test::tiny").value == pytest.approx(0.2)
    assert at.number_input(key="ds_split_seed::tiny").value == 7
    assert "Not saved" in shown_text(at.caption)  # the split preview still says the fields differ from the saved
    assert at.checkbox(key="ds_rm_confirm::tiny").value is False  # a confirmation is asked again


def test_a_link_to_another_dataset_still_wins_and_each_keeps_its_choices(datasets_ws):
    at = open_page(DATASETS, dataset="tiny")
    at.multiselect(key="ds_classes::tiny").set_value(["dog"]).run()
    at = _away_and_back(at, DATASETS, dataset="other")  # a link naming another dataset
    assert_ok(at)
    assert at.selectbox(key="ds_selected").value == "other"
    at.selectbox(key="ds_selected").set_value("tiny").run()
    assert at.multiselect(key="ds_classes::tiny").value == ["dog"]


def test_a_dataset_removed_and_added_again_starts_afresh(datasets_ws):
    at = open_page(DATASETS, dataset="tiny")
    at.multiselect(key="ds_classes::tiny").set_value(["dog"])
    at.number_input(key="ds_split_val::tiny").set_value(0.3)
    at.run()
    at.checkbox(key="ds_rm_confirm::tiny").check().run()
    at.button(key="ds_rm_btn").click().run()
    assert_ok(at)
    assert "tiny" not in at.selectbox(key="ds_selected").options
    add_dataset(datasets_ws, "tiny", datasets_ws.root / "other")  # another folder under the same name
    at = _away_and_back(at, DATASETS, dataset="tiny")
    assert_ok(at)
    assert at.multiselect(key="ds_classes::tiny").value == ["bird", "cat", "dog"]
    assert at.number_input(key="ds_split_val::tiny").value == pytest.approx(0.15)  # its saved settings


def test_a_remembered_class_that_a_rescan_dropped_is_no_crash(datasets_ws):
    at = open_page(DATASETS, dataset="tiny")
    at.multiselect(key="ds_classes::tiny").set_value(["cat", "dog"]).run()
    at = _go(at, AUGMENTATIONS)
    at.selectbox(key="aug_ds").set_value("tiny").run()
    at.selectbox(key="aug_cls::tiny").set_value("cat").run()
    assert_ok(at)
    at = _home(at)
    shutil.rmtree(datasets_ws.root / "photos" / "cat")
    rescan_dataset(datasets_ws, "tiny")
    at = _go(at, AUGMENTATIONS)
    assert_ok(at)
    assert at.selectbox(key="aug_ds").value == "tiny"
    assert at.selectbox(key="aug_cls::tiny").options[0] == "(all classes)" and "cat" not in at.selectbox(
        key="aug_cls::tiny").options
    assert at.selectbox(key="aug_cls::tiny").value == "(all classes)"  # Streamlit's reset: the first option
    at = _go(at, DATASETS)
    assert_ok(at)
    assert at.multiselect(key="ds_classes::tiny").value == ["dog"]


# --------------------------------------------------------------- Audit tab
@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A workspace with 'photos' (cat, dog, owl; resized copies of two owls, a blurred and a dark photo)
    and two saved audits of it."""
    ws = Workspace(tmp_path_factory.mktemp("keep-audited") / "ws")
    root = ag.photo_tree(ws.root / "photos", {"cat": 6, "dog": 6, "owl": 6}, size=(48, 40))
    for i in range(2):
        owl = ag.photo(100 + i, (48, 40))
        ag.save(root / "owl" / f"pair_{i}.png", owl)
        ag.save(root / "owl" / f"pair_{i}_big.png", ag.resized(owl, 1.25))
    ag.save(root / "cat" / "blurry.png", ag.blurred(ag.photo(901, (48, 40)), 6.0))
    ag.save(root / "dog" / "dark.png", ag.darkened(ag.photo(902, (48, 40))))
    add_dataset(ws, "photos", root)
    spec = AuditSpec(weights=None, image_size=32, folds=3, batch_size=16)
    audit_dataset(ws, "photos", spec)
    audit_dataset(ws, "photos", spec)
    return ws.root


def test_the_audit_tab_keeps_its_choices_after_another_page(audited, tmp_path, monkeypatch):
    ws = Workspace(shutil.copytree(audited, tmp_path / "ws"))
    monkeypatch.setenv("TLCORE_HOME", str(ws.root))
    older = list_audits(ws, "photos")[1]["id"]
    at = open_page(DATASETS, dataset="photos")
    assert_ok(at)
    at.number_input(key="aud_form_size::photos").set_value(64)
    at.number_input(key="aud_form_folds::photos").set_value(4)
    at.multiselect(key="aud_splits::photos").set_value(["train"])
    at.selectbox(key="aud_id::photos").set_value(older)
    at.run()
    sim = f"aud_sim::photos::{older}"
    at.checkbox(key="aud_hide::photos").check()
    at.slider(key=sim).set_value(round(at.slider(key=sim).value - 0.01, 3))
    at.multiselect(key="aud_lab_cls::photos").set_value(["owl"])
    at.multiselect(key="aud_q_cls::photos").set_value(["cat", "dog"])
    at.multiselect(key="aud_q_kind::photos").set_value(at.multiselect(key="aud_q_kind::photos").options[:1])
    at.multiselect(key="aud_dup_cls::photos").set_value(["owl"])
    relabel = next(s for s in at.selectbox if s.key.startswith("aud_to::"))
    other = next(o for o in relabel.options if o != relabel.value)
    relabel.set_value(other)
    at.run()
    assert_ok(at)
    before = {w.key: w.value for kind in ("number_input", "multiselect", "selectbox", "slider", "checkbox")
              for w in at.get(kind) if w.key and (w.key.startswith("aud_") and not w.key.startswith("aud_import"))}
    assert before[relabel.key] == other and before[sim] < 1.0 and before["aud_hide::photos"] is True
    at = _away_and_back(at, DATASETS)
    assert_ok(at)
    after = {w.key: w.value for kind in ("number_input", "multiselect", "selectbox", "slider", "checkbox")
             for w in at.get(kind) if w.key in before}
    assert after == before


# ------------------------------------------------------------ Augmentations
def test_augmentations_keeps_its_choices_after_another_page(datasets_ws):
    at = open_page(AUGMENTATIONS)
    assert_ok(at)
    third = list(au.CATALOGUE)[3]
    at.select_slider(key="aug_size").set_value(128)
    at.selectbox(key="aug_mode").set_value("crop")
    at.slider(key="aug_n").set_value(12)
    at.number_input(key="aug_seed").set_value(42)
    at.selectbox(key="aug_add_choice").set_value(third)
    at.selectbox(key="aug_ds").set_value("tiny")
    at.run()
    at.selectbox(key="aug_cls::tiny").set_value("cat").run()
    at.selectbox(key="aug_img::tiny::cat").set_value("cat/cat_002.png").run()
    at.slider(key="aug_w::0::p").set_value(0.9).run()  # the editor's draft: kept by the editor itself
    at.text_input(key="aug_save_name").set_value("mine")
    at.checkbox(key="aug_save_overwrite").check()
    next(b for b in at.button if b.proto.label == "Save").click().run()  # the form's values count once submitted
    assert_ok(at)
    assert "Saved the pipeline mine" in shown_text(at.success)
    at = _away_and_back(at, AUGMENTATIONS)
    assert_ok(at)
    assert at.select_slider(key="aug_size").value == 128
    assert at.selectbox(key="aug_mode").value == "crop"
    assert at.slider(key="aug_n").value == 12
    assert at.number_input(key="aug_seed").value == 42
    assert at.selectbox(key="aug_add_choice").value == third
    assert at.selectbox(key="aug_ds").value == "tiny"
    assert at.selectbox(key="aug_cls::tiny").value == "cat"
    assert at.selectbox(key="aug_img::tiny::cat").value == "cat/cat_002.png"
    assert at.slider(key="aug_w::0::p").value == pytest.approx(0.9)
    assert at.selectbox(key="aug_source").value == "mine"  # from the URL (?pipeline=mine)
    assert at.text_input(key="aug_save_name").value == "mine"
    assert at.checkbox(key="aug_save_overwrite").value is False  # a confirmation is asked again
    # The upload source is a choice too.
    at.radio(key="aug_img_src").set_value("Upload an image").run()
    at = _away_and_back(at, AUGMENTATIONS)
    assert_ok(at)
    assert at.radio(key="aug_img_src").value == "Upload an image"


# ------------------------------------------------------------------ uploads
# The browser drops an uploader's files when the page is left; tlui.place.uploader keeps a copy.
def test_an_uploaded_preview_image_is_still_previewed_after_another_page(datasets_ws):
    at = open_page(AUGMENTATIONS)
    at.radio(key="aug_img_src").set_value("Upload an image").run()
    at.file_uploader(key="aug_upload").set_value(("my photo.png", image_bytes((40, 60), seed=3), "image/png")).run()
    assert_ok(at)
    shown = len(at.get("image"))
    assert shown == 1 + 8  # the photo and eight augmented versions
    at = _away_and_back(at, AUGMENTATIONS)
    assert_ok(at)
    assert len(at.get("image")) == shown
    assert "my photo.png" in shown_text(at.caption).replace("\\", "")
    at.button(key="aug_upload::forget").click().run()
    assert_ok(at)
    assert not at.get("image") and "Upload a photo" in shown_text(at.info)


def test_an_uploaded_zip_can_still_be_added_after_another_page(datasets_ws, tmp_path):
    archive = zip_tree(write_tinted_tree(tmp_path / "pets", per_class=3, size=(24, 20)), tmp_path / "pets.zip")
    at = open_page(DATASETS)
    at.file_uploader(key="ds_zip_file").set_value(("pets.zip", archive.read_bytes(), "application/zip")).run()
    at.text_input(key="ds_zip_name").set_value("pets").run()
    at = _away_and_back(at, DATASETS)
    assert_ok(at)
    assert at.button(key="ds_zip_btn").disabled is False
    at.button(key="ds_zip_btn").click().run()
    assert_ok(at)
    rec = datasets_ws.get_dataset("pets")
    assert (rec.source, rec.num_classes) == ("upload", 3)


# -------------------------------------------------------------------- Train
def test_train_keeps_its_form_after_another_page(datasets_ws):
    au.save_pipeline(datasets_ws, "mypipe", au.preset_spec("light"))
    at = open_page(TRAIN)
    assert_ok(at)
    chosen = {"tr_dataset": "tiny", "tr_augment": "mypipe", "tr_method": "two_phase", "tr_resize": "stretch",
              "tr_schedule": "cosine", "tr_weights": "none", "tr_bn": "frozen", "tr_head_init": "random"}
    numbers = {"tr_size": 96, "tr_lr": 0.01, "tr_epochs": 7, "tr_bs": 16, "tr_warmup": 1.5, "tr_ftf": 0.2,
               "tr_dropout": 0.3, "tr_smoothing": 0.1, "tr_copies": 2, "tr_es": 3, "tr_seed": 5,
               "tr_head_epochs": 2, "tr_val": 0.25, "tr_test": 0.1, "tr_split_seed": 9}
    ticks = {"tr_head_on": True, "tr_fcache": False, "tr_cw": True, "tr_guard": False, "tr_split_on": True}
    for key in ("tr_dataset", "tr_augment", "tr_resize", "tr_schedule", "tr_bn", "tr_head_init"):
        at.selectbox(key=key).set_value(chosen[key])
    for key in ("tr_method", "tr_weights"):
        at.radio(key=key).set_value(chosen[key])
    for key, value in ticks.items():
        at.checkbox(key=key).set_value(value)
    at.run()
    for key, value in numbers.items():
        at.number_input(key=key).set_value(value)
    at.select_slider(key="tr_depth").set_value(5)
    at.run()
    assert_ok(at)
    at = _away_and_back(at, TRAIN)
    assert_ok(at)
    assert {k: (at.radio(key=k) if k in ("tr_method", "tr_weights") else at.selectbox(key=k)).value
            for k in chosen} == chosen
    assert {k: at.number_input(key=k).value for k in numbers} == pytest.approx(numbers)
    whole = {k: at.number_input(key=k).value for k in ("tr_epochs", "tr_bs", "tr_seed", "tr_head_epochs")}
    assert all(type(v) is int for v in whole.values()), whole  # shown as "7", not "7.00"
    assert {k: at.checkbox(key=k).value for k in ticks} == ticks
    assert at.select_slider(key="tr_depth").value == 5


def test_train_says_a_remembered_dataset_removed_meanwhile(datasets_ws):
    at = open_page(TRAIN)
    at.selectbox(key="tr_dataset").set_value("other").run()
    at.query_params.clear()
    at.switch_page(HOME).run()
    remove_dataset(datasets_ws, "other")  # on the Datasets page, say
    at.switch_page(TRAIN).run()
    assert_ok(at)
    assert at.selectbox(key="tr_dataset").value == "demo"
    assert "The dataset 'other' is no longer there" in shown_text(at.warning)


def test_a_link_to_another_job_still_wins(workspace):
    jobs = []
    for _ in range(2):
        job = tj.register_job(workspace, TrainSpec(dataset="demo"), source="page")
        rep = tj.JobReporter(job)
        rep.start()
        rep.crashed("ValueError: stopped for the test")
        jobs.append(job.id)
    at = open_page(TRAIN, job=jobs[0])
    assert at.selectbox(key="tr_job").value == jobs[0]
    at.number_input(key="tr_epochs").set_value(9).run()
    at = _away_and_back(at, TRAIN, job=jobs[1])  # the Train page's link from elsewhere
    assert not at.exception
    assert at.selectbox(key="tr_job").value == jobs[1]
    assert at.number_input(key="tr_epochs").value == 9


# ------------------------------------------------------------------ Results
def _misnamed_run(root: Path, name: str) -> None:
    """A hand-made run over 'tiny' whose labels are rotated, so that all of its 9 test images are
    mistakes (its top losses and their slider show)."""
    folder = write_model_folder(root / "models" / name, channel_model(3, 8), ["cat", "dog", "bird"],
                                spec={"dataset": "tiny", "resize_mode": "stretch"})
    test = [f"{c}/{c}_{i:03d}.png" for c in ("bird", "cat", "dog") for i in range(3)]
    (folder / "data.json").write_text(json.dumps({"dataset": "tiny", "image_size": 8, "resize_mode": "stretch",
                                                  "test_files": test}), encoding="utf-8")


@pytest.fixture
def results_ws(workspace):
    """Studies 'outcomes' (trials 0-4, the best 3) and 'other' (2 trials), runs run-a and run-b."""
    t0 = dt.datetime.now().replace(microsecond=0) - dt.timedelta(minutes=10)
    hand_study(workspace, "outcomes", outcomes_trials(t0), n_trials=10)
    hand_study(workspace, "other", outcomes_trials(t0)[:2], n_trials=10)
    _misnamed_run(workspace.root, "run-a")
    _misnamed_run(workspace.root, "run-b")
    return workspace


def test_results_keeps_its_choices_after_another_page(results_ws):
    at = open_page(RESULTS, study="outcomes")
    assert_ok(at)
    at.multiselect(key="rs_studies").set_value(["outcomes", "other"]).run()
    at.selectbox(key="rs_focus").set_value("other")
    at.multiselect(key="rs_states").set_value(["COMPLETE", "PRUNED"])
    at.number_input(key="rs_min_value").set_value(0.5)
    at.multiselect(key="rs_curves").set_value(["outcomes/0"])
    at.selectbox(key="rs_cmp_a").set_value("outcomes/0")
    at.selectbox(key="rs_cmp_b").set_value("other/1")
    at.selectbox(key="rs_eval").set_value("outcomes/2")
    at.run()
    assert_ok(at)
    at = _away_and_back(at, RESULTS)
    assert_ok(at)
    assert at.multiselect(key="rs_studies").value == ["outcomes", "other"]  # from the URL
    assert at.selectbox(key="rs_focus").value == "other"
    assert at.multiselect(key="rs_states").value == ["COMPLETE", "PRUNED"]
    assert at.number_input(key="rs_min_value").value == pytest.approx(0.5)
    assert at.multiselect(key="rs_curves").value == ["outcomes/0"]
    assert (at.selectbox(key="rs_cmp_a").value, at.selectbox(key="rs_cmp_b").value) == ("outcomes/0", "other/1")
    assert at.selectbox(key="rs_eval").value == "outcomes/2"

    # The trained runs: the run evaluated, its top losses and the export's formats.
    at.radio(key="rs_source").set_value("Trained runs").run()
    at.multiselect(key="rs_runs").set_value(["run-a", "run-b"]).run()
    at.selectbox(key="rs_run_eval").set_value("run-b").run()
    at.button(key="rs_eval_btn").click().run()
    assert_ok(at)
    at.toggle(key="rs_cam").set_value(False)
    at.slider(key="rs_top_n").set_value(3)
    at.multiselect(key="rs_formats").set_value(["keras"])
    at.run()
    assert_ok(at)
    at = _away_and_back(at, RESULTS)
    assert_ok(at)
    assert at.radio(key="rs_source").value == "Trained runs"  # from the URL (?run=)
    assert at.multiselect(key="rs_runs").value == ["run-a", "run-b"]
    assert at.selectbox(key="rs_run_eval").value == "run-b"
    assert at.toggle(key="rs_cam").value is False
    assert at.slider(key="rs_top_n").value == 3
    assert at.multiselect(key="rs_formats").value == ["keras"]


def test_results_keeps_the_study_storage_after_another_page(results_ws):
    journal = str(results_ws.root / "elsewhere" / "studies.log")
    at = open_page(RESULTS)
    at.text_input(key="rs_storage").set_value(journal).run()
    assert_ok(at)
    assert "No studies in this storage yet" in shown_text(at.info)
    at = _away_and_back(at, RESULTS)
    assert_ok(at)
    assert at.text_input(key="rs_storage").value == journal
    # A URL without ?run= opens the trained runs when the storage holds no study (the view follows the URL).
    at.radio(key="rs_source").set_value("Searches").run()
    assert "No studies in this storage yet" in shown_text(at.info)


def test_a_link_to_another_study_or_run_still_wins(results_ws):
    at = open_page(RESULTS, study="outcomes")
    at.selectbox(key="rs_eval").set_value("outcomes/2").run()
    at = _away_and_back(at, RESULTS, study="other")  # the Search page's link
    assert_ok(at)
    assert at.multiselect(key="rs_studies").value == ["other"]
    assert at.selectbox(key="rs_eval").value.startswith("other/")  # the remembered trial is not offered
    at.radio(key="rs_source").set_value("Trained runs").run()
    at.multiselect(key="rs_runs").set_value(["run-a"]).run()
    at = _away_and_back(at, RESULTS, run="run-b")  # the Train page's link
    assert_ok(at)
    assert at.radio(key="rs_source").value == "Trained runs"
    assert at.multiselect(key="rs_runs").value == ["run-b"]
    assert at.selectbox(key="rs_run_eval").value == "run-b"
    at = _away_and_back(at, RESULTS, study="outcomes")  # back to the searches by a link
    assert_ok(at)
    assert at.radio(key="rs_source").value == "Searches"
    assert at.multiselect(key="rs_studies").value == ["outcomes"]


def test_search_keeps_its_new_study_form_and_settings_after_another_page(results_ws):
    at = open_page(SEARCH, study="outcomes")
    assert_ok(at)
    at.text_input(key="se_new_name").set_value("my-study")
    at.number_input(key="se_new_epochs").set_value(7)
    at.number_input(key="se_new_trials").set_value(21)
    at.checkbox(key="se_new_cw").check()
    at.toggle(key="se_auto").set_value(False)
    at.run()
    assert_ok(at)
    at = _away_and_back(at, SEARCH)
    assert_ok(at)
    assert at.text_input(key="se_new_name").value == "my-study"
    assert (at.number_input(key="se_new_epochs").value, at.number_input(key="se_new_trials").value) == (7, 21)
    assert at.checkbox(key="se_new_cw").value is True
    assert at.toggle(key="se_auto").value is False
