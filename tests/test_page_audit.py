"""The Datasets page's Audit tab (tlui.audit_widgets), run headlessly with AppTest.

Most tests read a saved audit of a small synthetic dataset (made once per module by
``tlcore.audit.audit_dataset`` with random weights at 32 px, then copied per test); the
tests marked ``slow`` run the audit through the page's background job.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from tests.helpers import auditgen as ag
from tests.helpers.pagetest import assert_ok, open_tab, shown_text
from tlcore.audit import AuditSpec, audit_dataset, audit_jobs, list_audits, load_audit
from tlcore.datasets import add_dataset, add_overrides, dataset_splits, load_index, load_overrides, overrides_csv
from tlcore.workspace import Workspace
from tlui import audit_widgets as aw

PAGE = "pages/1_Datasets.py"
NAME = "photos"
FAST = AuditSpec(weights=None, image_size=32, folds=3, batch_size=16)
AUDIT_TAB = 4  # Overview, Samples, Problems, Split, Audit


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A workspace with 'photos' (cat, dog, owl; a cat's copy filed under dog, resized copies of every owl,
    a blurred and a darkened photo) and one saved audit of it."""
    ws = Workspace(tmp_path_factory.mktemp("audited") / "ws")
    root = ag.photo_tree(ws.root / "photos", {"cat": 8, "dog": 8, "owl": 8}, size=(48, 40))
    cat = np.asarray(Image.open(root / "cat" / "cat_001.png").convert("RGB"))
    ag.save(root / "dog" / "copy_of_cat_001.jpg", ag.reencoded(ag.resized(cat, 1.5), 90))
    for i in range(8):  # copies that the seeded split separates from their originals: leakage
        owl = np.asarray(Image.open(root / "owl" / f"owl_{i:03d}.png").convert("RGB"))
        ag.save(root / "owl" / f"big_owl_{i:03d}.png", ag.resized(owl, 1.25))
    ag.save(root / "cat" / "blurry.png", ag.blurred(ag.photo(901, (48, 40)), 6.0))
    ag.save(root / "dog" / "dark.png", ag.darkened(ag.photo(902, (48, 40))))
    add_dataset(ws, NAME, root)
    audit_dataset(ws, NAME, FAST)
    return ws.root


@pytest.fixture
def ws(audited, tmp_path, monkeypatch) -> Workspace:
    """A private copy of the audited workspace; TLCORE_HOME at it."""
    copy = Workspace(shutil.copytree(audited, tmp_path / "ws"))
    monkeypatch.setenv("TLCORE_HOME", str(copy.root))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    return copy


def _page(dataset: str = NAME) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=90)
    at.switch_page(PAGE)
    at.query_params["dataset"] = dataset
    at.session_state["ds_tab"] = AUDIT_TAB
    return at.run()


def _tab(at: AppTest, prefix: str):
    return next(t for t in at.tabs if t.label.startswith(prefix))


def _captions(block) -> list[str]:
    return [i.caption.replace("\\", "") for img in block.get("image") for i in img.proto.imgs]


def _text(block) -> str:
    """The Markdown of ``block`` as read: escapes and bold markers removed."""
    return " ".join(str(m.value) for m in block.get("markdown")).replace("\\", "").replace("**", "")


def _wait_for_job(at: AppTest, ws: Workspace, name: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while True:
        jobs = audit_jobs(ws, name)
        if jobs and jobs[0]["state"] in ("finished", "failed"):
            return jobs[0]
        assert time.time() < deadline, jobs
        time.sleep(1.0)


# ------------------------------------------------------------------ no audit yet; the job
def test_without_an_audit_the_run_settings_are_open(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page("tiny")
    assert_ok(at)
    assert open_tab(at, "Audit") == "Audit"
    assert "tiny has not been audited yet" in shown_text(at.info)
    assert any(e.label == "Run an audit" and e.proto.expanded for e in at.expander)
    assert at.number_input(key="aud_form_size::tiny").value == AuditSpec().image_size
    assert at.number_input(key="aud_form_folds::tiny").value == AuditSpec().folds
    assert at.multiselect(key="aud_splits::tiny").value == ["train", "val"]  # never the test split by default


@pytest.mark.slow
def test_runs_the_audit_in_a_background_job_and_shows_it(workspace, monkeypatch):
    monkeypatch.setattr(aw, "BASE_SPEC", AuditSpec(weights=None, batch_size=16))  # no ImageNet weights in a test
    add_dataset(workspace, "pets", ag.photo_tree(workspace.root / "pets", {"cat": 6, "dog": 6}, size=(40, 32)))
    at = _page("pets")
    at.number_input(key="aud_form_size::pets").set_value(32)
    at.number_input(key="aud_form_folds::pets").set_value(3)
    at.button(key="aud_run::pets").click().run()
    assert_ok(at)
    assert "Started the audit of pets in the background" in shown_text(at.info)
    assert at.button(key="aud_run::pets").disabled  # one audit at a time
    assert at.get("progress"), "the running job shows its progress"
    job = _wait_for_job(at, workspace, "pets")
    assert job["state"] == "finished", job
    at.run()
    assert_ok(at)
    assert "Audit finished in" in shown_text(at.success)
    result = load_audit(workspace, "pets", job["audit"])
    assert result.spec.image_size == 32 and result.spec.folds == 3 and result.spec.splits == ["train", "val"]
    assert at.session_state["aud_id::pets"] == job["audit"]
    assert not at.button(key="aud_run::pets").disabled
    labels = _tab(at, "Labels")
    assert labels.label == f"Labels ({len(result.label_issues())})"
    assert _captions(labels)[:3] == result.label_issues()["relpath"].head(3).tolist()


@pytest.mark.slow
def test_one_class_and_too_few_images_show_the_librarys_message_and_the_log(workspace, make_image_tree, monkeypatch):
    monkeypatch.setattr(aw, "BASE_SPEC", AuditSpec(weights=None, batch_size=16))
    add_dataset(workspace, "one", make_image_tree(workspace.root / "one", {"a": 8, "b": 3}))
    index = load_index(workspace, "one")
    add_overrides(workspace, "one", index[index["label"] == "b"]["relpath"], "exclude")  # leaves one class
    add_dataset(workspace, "few", make_image_tree(workspace.root / "few", {"a": 9, "b": 2}))
    at = _page("one")
    at.button(key="aud_run::one").click().run()
    at.selectbox(key="ds_selected").set_value("few").run()
    at.button(key="aud_run::few").click().run()
    assert not at.exception
    for name in ("one", "few"):
        assert _wait_for_job(at, workspace, name)["state"] == "failed"
    at.run()
    assert not at.exception
    few = shown_text(at.error)
    assert "The audit failed: The label audit's 5-fold cross-validation needs at least 5 images in every class" in few
    assert re.search(r"too few in b \(\d\) in the train and val splits", few)  # which class, where
    assert "Add images to those classes" in few  # what to do
    assert any("error:" in c.value for c in at.code), "the end of the job's log"
    at.selectbox(key="ds_selected").set_value("one").run()
    assert not at.exception
    one = shown_text(at.error)
    assert "needs at least two classes" in one and "Add a folder of images for at least one more class" in one
    assert not list_audits(workspace, "one")


# ------------------------------------------------------------------ a saved audit
def test_flags_are_thumbnails_sorted_by_score_with_given_and_suggested_class(ws, monkeypatch):
    monkeypatch.setattr(aw, "PER_PAGE", 4)
    result = load_audit(ws, NAME)
    issues = result.label_issues()
    at = _page()
    assert_ok(at)
    labels = _tab(at, "Labels")
    shown = _captions(labels)
    assert len(shown) == min(aw.PER_PAGE, len(issues)) and len(issues) > aw.PER_PAGE
    assert shown == issues["relpath"].head(aw.PER_PAGE).tolist()  # most suspicious first
    assert list(issues["score"].head(aw.PER_PAGE)) == sorted(issues["score"].head(aw.PER_PAGE))
    first = issues.iloc[0]
    text = _text(labels)
    assert f"given {first['label']} → suggested {first['suggested']}" in text
    assert f"confidence in its label {first['score']:.3f} · rank 1" in text
    assert [len(img.proto.imgs) for img in labels.get("image")] == [1] * aw.PER_PAGE  # a card per image
    # The relabel choice starts at the suggested class; the page number leads to the rest.
    assert at.selectbox(key=f"aud_to::lab::{NAME}::{first['relpath']}").value == first["suggested"]
    at.number_input(key=f"aud_lab_page::{NAME}").set_value(2).run()
    assert _captions(_tab(at, "Labels")) == issues["relpath"].iloc[aw.PER_PAGE:2 * aw.PER_PAGE].tolist()
    # The audit's settings: image size, the splits audited, the test split left out.
    caption = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "efficientnet_lite0 features at 32 px, 3-fold" in caption
    assert "the labels of the train and val splits" in caption and "the test split is not audited" in caption
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Suspected label errors"] == f"{len(issues):,}"


def test_the_classes_confused_as_a_whole_and_the_class_filter(ws):
    result = load_audit(ws, NAME)
    top = result.confused_pairs(min_count=2)[0]
    at = _page()
    labels = _tab(at, "Labels")
    assert top["text"] in _text(labels)  # "cat vs dog: 9 images look swapped"
    assert "look swapped" in top["text"]
    at.button(key=f"aud_confused::{NAME}::0").click().run()
    assert_ok(at)
    assert at.multiselect(key=f"aud_lab_cls::{NAME}").value == [top["a"], top["b"]]
    issues = result.label_issues().set_index("relpath")
    shown = _captions(_tab(at, "Labels"))
    pair = {top["a"], top["b"]}
    assert shown and all({issues.loc[r, "label"], issues.loc[r, "suggested"]} & pair for r in shown)
    at.multiselect(key=f"aud_lab_cls::{NAME}").set_value(["owl"]).run()
    shown = _captions(_tab(at, "Labels"))
    assert shown and all("owl" in (issues.loc[r, "label"], issues.loc[r, "suggested"]) for r in shown)
    expected = issues[(issues["label"] == "owl") | (issues["suggested"] == "owl")].index[:aw.PER_PAGE].tolist()
    assert shown == expected


def test_near_duplicates_side_by_side_with_similarity_leakage_and_a_moving_threshold(ws):
    result = load_audit(ws, NAME)
    near = result.near_duplicates()
    leak = near[near["kind"] == "leakage"]
    assert len(leak), "the fixture should hold a copy in another split than its original"
    at = _page()
    dups = _tab(at, "Near-duplicates")
    groups = aw.duplicate_groups(near, result.quality)
    assert dups.label == f"Near-duplicates ({len(groups)})"
    text = _text(dups)
    assert ":red-badge[Leakage]" in text and "pixel similarity" in text
    assert ":orange-badge[Different classes]" in text and "classes cat, dog" in text
    # A group's images side by side, each captioned by its file, class and split.
    first = groups[0]
    assert first["kind"] == "leakage"
    assert _captions(dups)[:len(first["members"])] == first["members"]["relpath"].tolist()
    assert f"{first['low']:.4f}" in text
    # Only leakage, then no threshold that nothing reaches.
    at.multiselect(key=f"aud_dup_kind::{NAME}").set_value(["leakage"]).run()
    assert_ok(at)
    shown = _captions(_tab(at, "Near-duplicates"))
    leaking = {r for g in groups if "leakage" in g["kinds"] for r in g["members"]["relpath"]}
    assert shown and set(shown) <= leaking
    at.slider(key=f"aud_sim::{NAME}::{result.id}").set_value(1.0).run()
    assert_ok(at)
    exact = aw.duplicate_groups(result.near_duplicates(similarity=1.0), result.quality)
    assert len(exact) < len(groups)
    assert _tab(at, "Near-duplicates").label == f"Near-duplicates ({len(exact)})"


def _problems_tab(dataset: str = NAME) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=90)
    at.switch_page(PAGE)
    at.query_params["dataset"] = dataset
    at.session_state["ds_tab"] = 2  # Problems
    return at.run()


def test_the_problems_tab_shows_the_newest_audits_near_duplicates_side_by_side(ws):
    result = load_audit(ws, NAME)
    groups = aw.duplicate_groups(result.near_duplicates(similarity=result.spec.similarity), result.quality)
    at = _problems_tab()
    assert_ok(at)
    problems = _tab(at, "Problems")
    text = _text(problems)
    assert "Near-duplicates in the newest audit" in text and f"{len(groups):,} groups" in text
    assert ":red-badge[Leakage]" in text
    assert set(groups[0]["members"]["relpath"].head(aw.MEMBERS_SHOWN)) <= set(_captions(problems))
    assert not list(problems.get("button"))  # deciding is the Audit tab's


def test_the_problems_tab_of_a_dataset_never_audited_says_where_near_duplicates_come_from(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _problems_tab("tiny")
    assert_ok(at)
    assert "run one on the Audit tab" in shown_text(_tab(at, "Problems").caption)


def test_quality_flags_with_measured_value_and_threshold_and_the_kind_filter(ws):
    result = load_audit(ws, NAME)
    flagged = result.quality_issues().set_index("relpath")
    assert {"cat/blurry.png", "dog/dark.png"} <= set(flagged.index)
    at = _page()
    quality = _tab(at, "Quality")
    text = _text(quality)
    t = result.summary["quality"]["thresholds"]
    assert f"blurry: sharpness {flagged.loc['cat/blurry.png', 'sharpness']:.1f} < {t['blur']:g}" in text
    assert f"dark: highlights {flagged.loc['dog/dark.png', 'highlights']:.0f} < {t['dark']:g}" in text
    at.multiselect(key=f"aud_q_kind::{NAME}").set_value(["dark"]).run()
    shown = _captions(_tab(at, "Quality"))
    assert "dog/dark.png" in shown and all(flagged.loc[r, "dark"] for r in shown)
    at.multiselect(key=f"aud_q_kind::{NAME}").set_value([])
    at.multiselect(key=f"aud_q_cls::{NAME}").set_value(["cat"]).run()
    shown = _captions(_tab(at, "Quality"))
    assert "cat/blurry.png" in shown and all(flagged.loc[r, "label"] == "cat" for r in shown)


def test_keep_relabel_exclude_write_the_manifest_and_undo_takes_them_back(ws):
    issues = load_audit(ws, NAME).label_issues()
    a, b, c = (str(issues.iloc[i]["relpath"]) for i in range(3))
    given_a = str(issues.iloc[0]["label"])
    target = next(k for k in ("cat", "dog", "owl") if k not in (given_a, issues.iloc[0]["suggested"]))
    at = _page()
    at.selectbox(key=f"aud_to::lab::{NAME}::{a}").set_value(target)
    at.button(key=f"aud_relabel::lab::{NAME}::{a}").click().run()
    assert_ok(at)
    assert f"Relabelled {a} as {target}" in shown_text(at.success)
    at.button(key=f"aud_exclude::lab::{NAME}::{b}").click().run()
    at.button(key=f"aud_keep::lab::{NAME}::{c}").click().run()
    assert_ok(at)
    decisions = load_overrides(ws, NAME)
    assert [(d.relpath, d.action, d.label, d.flag) for d in decisions] == [
        (a, "relabel", target, "label_issue"), (b, "exclude", "", "label_issue"), (c, "keep", "", "label_issue")]
    # What training reads: the new label, the excluded image gone; the files untouched.
    splits = dataset_splits(ws, NAME).set_index("relpath")
    assert splits.loc[a, "label"] == target and b not in splits.index
    assert Path(load_index(ws, NAME).set_index("relpath").loc[b, "path"]).is_file()
    # The cards say what was decided, with Undo; the Decisions tab counts them.
    text = _text(_tab(at, "Labels"))
    assert f"Relabelled to {target}" in text and "Excluded" in text and "Kept (reviewed)" in text
    assert _tab(at, "Decisions").label == "Decisions (3)"
    assert open_tab(at, "Audit") == "Audit"  # the tab kept its place across the reruns
    at.button(key=f"aud_undo::lab::{NAME}::{b}").click().run()
    assert_ok(at)
    assert [d.relpath for d in load_overrides(ws, NAME)] == [a, c]
    assert b in dataset_splits(ws, NAME)["relpath"].tolist()
    assert at.button(key=f"aud_exclude::lab::{NAME}::{b}")  # undecided again: the actions are back
    # Hiding the decided ones.
    at.checkbox(key=f"aud_hide::{NAME}").check().run()
    shown = _captions(_tab(at, "Labels"))
    assert a not in shown and c not in shown and b in shown


def test_exclude_the_copies_of_a_near_duplicate_group(ws):
    result = load_audit(ws, NAME)
    first = aw.duplicate_groups(result.near_duplicates(), result.quality)[0]
    at = _page()
    at.session_state[aw.TAB] = 1  # what opening the Near-duplicates list leaves (tlui.place)
    at.run()
    at.button(key=f"aud_dup_rest::{NAME}::0").click().run()
    assert_ok(at)
    assert open_tab(at, _tab(at, "Labels").label).startswith("Near-duplicates")  # still open after the rerun
    assert open_tab(at, "Audit") == "Audit"
    rest = first["members"]["relpath"].iloc[1:].tolist()
    assert f"Excluded {'1 copy' if len(rest) == 1 else f'{len(rest)} copies'}: {', '.join(rest)}" in \
        shown_text(at.success)
    assert [(d.relpath, d.action, d.flag) for d in load_overrides(ws, NAME)] == [(r, "exclude", "near_duplicate")
                                                                               for r in rest]


def test_the_decisions_export_as_csv_and_undo_the_last(ws, monkeypatch):
    issues = load_audit(ws, NAME).label_issues()
    add_overrides(ws, NAME, [issues.iloc[0]["relpath"]], "exclude", flag="label_issue", note="two cats")
    add_overrides(ws, NAME, [issues.iloc[1]["relpath"]], "relabel", label="owl", flag="label_issue")
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename:
            files[filename] = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = _page()
    assert_ok(at)
    table = next(df.value for df in at.dataframe if "counts" in df.value.columns)
    assert table["relpath"].tolist() == [issues.iloc[1]["relpath"], issues.iloc[0]["relpath"]]  # newest first
    csv = files[f"{NAME}-decisions.csv"].decode()
    assert csv == overrides_csv(ws, NAME)
    lines = csv.splitlines()
    assert lines[0] == "seq,relpath,action,label,flag,note,at"
    assert lines[1].startswith(f"1,{issues.iloc[0]['relpath']},exclude,,label_issue,two cats,")
    assert lines[2].startswith(f"2,{issues.iloc[1]['relpath']},relabel,owl,label_issue,,")
    at.button(key=f"aud_undo_last::{NAME}").click().run()
    assert_ok(at)
    assert [d.action for d in load_overrides(ws, NAME)] == ["exclude"]
    assert "Undid decision 2" in shown_text(at.success) and "the image is as it was before" in shown_text(at.success)


def test_a_decision_about_a_file_that_is_gone_is_reported_not_fatal(ws):
    manifest = ws.root / "datasets" / NAME / "overrides.jsonl"
    manifest.write_text(json.dumps({"seq": 1, "relpath": "cat/gone.png", "action": "exclude", "label": "",
                                    "flag": "", "note": "", "at": ""}) + "\n")
    at = _page()
    assert_ok(at)
    assert "1 decision names a file no longer in the dataset (cat/gone.png)" in shown_text(at.warning)
    with manifest.open("a") as fh:  # a second decision about the same file: counted as decisions, not files
        fh.write(json.dumps({"seq": 2, "relpath": "cat/gone.png", "action": "keep", "label": "", "flag": "",
                             "note": "", "at": ""}) + "\n")
    at.run()
    assert "2 decisions name a file no longer in the dataset (cat/gone.png)" in shown_text(at.warning)
    assert _captions(_tab(at, "Labels"))  # the audit still shows
    at.button(key=f"aud_forget::{NAME}").click().run()
    assert_ok(at)
    assert load_overrides(ws, NAME) == [] and not at.warning
