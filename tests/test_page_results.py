"""The Results page (pages/5_Results.py), run headlessly with AppTest.

The module works on a private copy of the session's tiny study (3 complete trials,
see tests/helpers/searchfix.py), to which the fixture adds a pruned and a failed trial, a
second study (its trials copied from the first with other values, so no training
runs here) and a study without trials.
"""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState, create_trial
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import assert_ok, shown_text
from tests.helpers.searchfix import STUDY, copy_workspace, tiny_spec, tiny_study
from tlcore.search import create_study, load_study

# Shares the session's tiny study (tests/helpers/searchfix.py): one pytest-xdist worker runs it once.
pytestmark = pytest.mark.xdist_group("tiny-study")

PAGE = "pages/5_Results.py"
SECOND = "second"
EMPTY = "empty"
VIEWS = 7


@pytest.fixture(scope="module")
def results_ws(tmp_path_factory):
    """A copy of the tiny study's workspace, with TLCORE_HOME pointing at it for the module.

    Trials of the tiny study: 0-2 complete (the best is trial 1), 3 pruned after one epoch,
    4 failed. Study "second": two complete trials copied from trials 0 and 1 with lower
    values. Study "empty": no trials.
    """
    ws = copy_workspace(tiny_study(tmp_path_factory), tmp_path_factory.mktemp("results") / "ws")
    study = load_study(ws, STUDY)
    done = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    first = done[0]
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params=first.params, distributions=first.distributions,
        intermediate_values={1: 0.1}, user_attrs={"tl_history": first.user_attrs["tl_history"][:1]},
    ))
    study.add_trial(create_trial(
        state=TrialState.FAIL, params=first.params, distributions=first.distributions,
        user_attrs={"tl_error": "ResourceExhaustedError: out of memory [try a smaller *batch*]"},
    ))
    second = create_study(ws, tiny_spec(name=SECOND, n_trials=2))
    for t, scale in zip(done[:2], (0.5, 0.9)):
        second.add_trial(create_trial(
            value=t.value * scale, params=t.params, distributions=t.distributions,
            intermediate_values={k: v * scale for k, v in t.intermediate_values.items()}, user_attrs=t.user_attrs,
        ))
    create_study(ws, tiny_spec(name=EMPTY))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLCORE_HOME", str(ws.root))
        mp.delenv("TLCORE_DATA_ROOTS", raising=False)
        yield ws


def _page(*studies: str) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=300)
    if studies:
        at.query_params["study"] = list(studies)
    at.switch_page(PAGE)
    return at.run()


def _spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def _labels(at: AppTest) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


def _trial_table(at: AppTest):
    return next(d.value for d in at.dataframe if "state" in d.value.columns)


# ----------------------------------------------------------------- no study
def test_no_studies_explains_and_points_to_search(workspace):
    at = _page()
    assert_ok(at)
    assert "No studies in this workspace" in shown_text(at.info)
    assert any("tlcore search create" in c.value for c in at.code)
    # One link in the page itself, to the Search page; the sidebar's are the menu's.
    links = at.main.get("page_link")
    assert len(links) == 1 and links[0].proto.label == "Go to the Search page"


def test_a_link_to_a_deleted_study_says_so_once(workspace):
    at = _page("upone")
    assert not at.exception
    assert "There is no study named upone in this workspace" in shown_text(at.warning)
    assert "study" not in at.query_params
    at.run()
    assert "There is no study named" not in shown_text(at.warning)


# ------------------------------------------------------------------- views
def test_every_view_renders_as_a_chart_or_an_explanation(results_ws):
    at = _page(STUDY)
    assert_ok(at)
    assert at.multiselect(key="rs_studies").value == [STUDY]
    assert at.query_params["study"] in (STUDY, [STUDY])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Complete"] == "3" and metrics["Pruned · failed · interrupted"] == "1 · 1 · 0"
    assert len(at.tabs) == VIEWS
    drawn = 0
    for tab in at.tabs:
        charts, infos = list(tab.get("plotly_chart")), list(tab.info)
        assert len(charts) + len(infos) == 1, tab.label
        drawn += len(charts)
    assert drawn >= 5  # 3 complete trials over 2 varied parameters: all but perhaps one view draw
    history = _spec(at.tabs[0].get("plotly_chart")[0])
    assert "Optimization History" in json.dumps(history["layout"].get("title"))
    assert any("optuna-dashboard" in c.value and "journal.log" in c.value for c in at.code)


def test_a_study_without_trials_explains_every_section(results_ws):
    at = _page(EMPTY)
    assert_ok(at)
    assert len(at.tabs) == VIEWS
    assert all(len(list(tab.info)) == 1 for tab in at.tabs)
    infos = shown_text(at.info)
    assert "No trial has finished an epoch yet" in infos and "Comparing needs two trials" in infos
    assert "no trials yet" in infos


# ------------------------------------------------------------------- table
def test_trial_table_filters_and_downloads_as_csv(results_ws):
    at = _page(STUDY)
    assert_ok(at)
    table = _trial_table(at)
    assert len(table) == 5 and "study" not in table.columns
    assert table["number"].tolist()[0] == 1  # best first
    assert {"params_freeze_depth", "params_learning_rate", "test_accuracy"} <= set(table.columns)
    assert "Download the table (CSV)" in _labels(at)

    at.multiselect(key="rs_states").set_value(["COMPLETE"]).run()
    assert_ok(at)
    assert set(_trial_table(at)["state"]) == {"COMPLETE"} and len(_trial_table(at)) == 3
    best = _trial_table(at)["value"].max()
    at.number_input(key="rs_min_value").set_value(best - 1e-6).run()
    assert_ok(at)
    assert _trial_table(at)["number"].tolist() == [1]
    assert "1 of 5 trials shown" in shown_text(at.caption)


# ------------------------------------------------------------------ curves
def test_learning_curves_of_the_chosen_trials(results_ws):
    at = _page(STUDY)
    assert_ok(at)
    assert at.multiselect(key="rs_curves").value[0] == f"{STUDY}/1"  # the best first
    at.multiselect(key="rs_curves").set_value([f"{STUDY}/0", f"{STUDY}/3"]).run()  # a complete and a pruned trial
    assert_ok(at)
    curves = [_spec(c) for c in at.get("plotly_chart") if "Loss" in json.dumps(_spec(c)["layout"].get("annotations"))]
    fig = curves[0]  # the curves section's; the comparison's comes after it
    traces = fig["data"]
    assert {t["legendgroup"] for t in traces} == {f"{STUDY}/0", f"{STUDY}/3"}
    assert {t["line"]["dash"] for t in traces} == {"solid", "dash"}
    assert len(traces) == 8  # 2 trials × train/val × loss/accuracy
    assert len({t["line"]["color"] for t in traces}) == 2


# ------------------------------------------------------------- comparison
def test_compare_two_trials_side_by_side(results_ws):
    at = _page(STUDY)
    assert_ok(at)
    assert at.selectbox(key="rs_cmp_a").value == f"{STUDY}/1"
    b = at.selectbox(key="rs_cmp_b").value
    assert b != f"{STUDY}/1" and b.startswith(STUDY)
    heatmaps = [c for c in at.get("plotly_chart") if _spec(c)["data"] and _spec(c)["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) >= 2  # the two trials' confusion matrices (and the best trial's stored one)
    assert _spec(heatmaps[0])["data"][0]["x"] == ["bird", "cat", "dog"]
    per_class = [d.value for d in at.dataframe if "recall" in d.value.columns]
    assert len(per_class) >= 2 and set(per_class[0]["class"]) == {"bird", "cat", "dog"}
    params = next(d.value for d in at.dataframe if "" in d.value.columns)
    assert {"freeze depth", "learning rate", "test accuracy"} <= set(params[""])

    at.selectbox(key="rs_cmp_b").set_value(f"{STUDY}/3").run()
    assert_ok(at)
    assert "pruned after 1 epoch" in shown_text(at.info)


# -------------------------------------------------------------- evaluation
def test_best_trial_evaluates_on_the_test_split_with_top_losses_and_gradcam(results_ws):
    at = _page(STUDY)
    assert_ok(at)
    assert at.selectbox(key="rs_eval").value == f"{STUDY}/1"
    labels = _labels(at)
    assert "Download model.keras" in labels and "labels.txt" in labels
    assert not at.get("image")

    at.button(key="rs_eval_btn").click().run()
    assert_ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test images"] == "8"
    # The trial's calibration: temperature, ECE before → after, and the reliability diagram.
    assert float(metrics["Temperature"]) > 0 and metrics["ECE (test)"].endswith(" %")
    assert "This evaluation's expected calibration error" in shown_text(at.caption)
    assert any("perfectly calibrated" in json.dumps(_spec(c)["data"]) for c in at.get("plotly_chart"))
    accuracy = float(metrics["Test accuracy"].split()[0])
    images = list(at.get("image"))
    captions = [img.proto.imgs[0].caption.replace("\\", "") for img in images]
    if accuracy < 100:
        assert any("true" in c and "predicted" in c for c in captions)
        cams = [c for c in captions if c.startswith("Grad-CAM")]
        assert cams and len(cams) == len(images) // 2
        at.toggle(key="rs_cam").set_value(False).run()
        assert_ok(at)
        assert len(at.get("image")) == len(images) // 2
        assert not any(img.proto.imgs[0].caption.startswith("Grad-CAM") for img in at.get("image"))
    else:  # pragma: no cover - a perfect tiny model
        assert "No mistakes" in shown_text(at.success)
    assert "Download model.keras" in _labels(at)


def test_export_offers_a_zip_and_the_model_card(results_ws):
    at = _page(STUDY)
    at.multiselect(key="rs_formats").set_value(["keras"]).run()
    at.button(key="rs_export_btn").click().run()
    assert_ok(at)
    labels = _labels(at)
    assert "Download the export (.zip)" in labels and "model_card.json" in labels
    files = next(d.value for d in at.dataframe if "file" in d.value.columns)
    assert {"model.keras", "labels.txt"} <= set(files["file"])
    # Saved in the workspace too, where the Predict page lists it; another export never replaces it.
    from tlcore.catalog import list_exports

    exports = list_exports(results_ws)
    assert len(exports) == 1 and (exports[0].path / "model.keras").is_file()
    assert "Saved in" in " ".join(c.value for c in at.caption)
    from tlui.results_widgets import claim_export_dir

    taken = exports[0].path.name
    first, second = (claim_export_dir(results_ws.exports_dir, taken) for _ in range(2))  # two tabs at once
    assert (first.name, second.name) == (f"{taken}-2", f"{taken}-3") and first.is_dir() and second.is_dir()
    # Another press exports anew (the cache is per press): a new folder, the first one kept.
    at.button(key="rs_export_btn").click().run()
    assert_ok(at)
    assert sorted(e.path.name for e in list_exports(results_ws)) == sorted([taken, f"{taken}-4"])


@pytest.mark.parametrize("number, words", [(3, "was pruned"), (4, "failed (ResourceExhaustedError")])
def test_a_trial_without_a_model_is_explained_not_an_error(results_ws, number, words):
    at = _page(STUDY)
    at.selectbox(key="rs_eval").set_value(f"{STUDY}/{number}").run()
    assert_ok(at)
    assert words in shown_text(at.info)
    assert all(b.key != "rs_eval_btn" for b in at.button)
    assert "Download model.keras" not in _labels(at)


# ------------------------------------------------------------ two studies
def test_two_studies_compare_their_histories_and_stack_their_trials(results_ws):
    at = _page(STUDY, SECOND)
    assert_ok(at)
    assert at.multiselect(key="rs_studies").value == [STUDY, SECOND]
    assert at.selectbox(key="rs_focus").value == STUDY
    history = _spec(at.tabs[0].get("plotly_chart")[0])
    names = " ".join(str(t.get("name")) for t in history["data"])
    assert STUDY in names and SECOND in names
    table = _trial_table(at)
    assert list(table.columns)[0] == "study" and set(table["study"]) == {STUDY, SECOND} and len(table) == 7
    assert at.selectbox(key="rs_eval").value == f"{STUDY}/1"  # the best across both (same objective)
    assert {STUDY, SECOND} <= {r["study"] for r in at.dataframe[0].value.to_dict("records")}

    at.selectbox(key="rs_eval").set_value(f"{SECOND}/1").run()  # a trial whose files are the first study's
    assert_ok(at)
    assert "Download model.keras" in _labels(at)


def test_a_bad_storage_is_an_error_box_not_a_traceback(results_ws):
    at = _page(STUDY)
    at.text_input(key="rs_storage").set_value("ftp://nowhere/studies").run()
    assert not at.exception
    assert "Unknown storage URL" in shown_text(at.error)
    at.text_input(key="rs_storage").set_value("").run()
    assert_ok(at)
    assert at.multiselect(key="rs_studies").value == [STUDY]
