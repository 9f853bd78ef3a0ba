"""The scout on the pages, run headlessly with AppTest: the Search page's Scout step
(pages/4_Search.py, tlui/scout_widgets.py) and the Results page's "Scout vs the trials".

The Search tests save a real scout of the tiny dataset (random weights, 32 px: a few
seconds) where the page finds it; the Results tests run a small real study that
scouts and seeds its first trials (tests/helpers/searchfix.py). One test launches a real
background scout (a subprocess that imports TensorFlow) and is marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import assert_ok, shown_text
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.scout import latest_result, save_result, scout
from tlcore.search import create_study, load_spec, load_study, run_worker
from tlcore.search.seeding import SCOUT_ATTR, scout_agreement
from tlcore.workspace import Workspace

SEARCH = "pages/4_Search.py"
RESULTS = "pages/5_Results.py"
FIG_TITLE = "Each score against the freeze depth"
SCOUTED, SKIPPED, FAILED, PLAIN = "scouted", "skipped", "scout-failed", "no-scout"
SKIP_REASON = "estimated 99 s, above its 60 s limit (scout.max_seconds)"


def _app() -> AppTest:
    return AppTest.from_file("../streamlit_app.py", default_timeout=300)


def _search(at: AppTest | None = None) -> AppTest:
    at = _app() if at is None else at
    at.switch_page(SEARCH)
    return at.run()


def _on_tiny(at: AppTest) -> AppTest:
    """Point the New-study form (and so the Scout step) at the tiny dataset at 32 px."""
    at.selectbox(key="se_new_dataset").set_value("tiny")
    at.number_input(key="se_new_size").set_value(32)
    at.radio(key="se_new_weights").set_value("none")
    return at.run()


def _scout_figure(at: AppTest) -> dict | None:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if FIG_TITLE in json.dumps(spec["layout"].get("title")):
            return spec
    return None


def _ranked(at: AppTest):
    return next((d.value for d in at.dataframe if "logme" in d.value.columns), None)


@pytest.fixture
def scouted_ws(workspace):
    add_tiny_dataset(workspace)
    save_result(workspace, scout(workspace, "tiny", image_size=32, weights=None))
    return workspace


# --------------------------------------------------------------- Search page
def test_scout_step_explains_what_to_do_without_a_result(workspace):
    add_tiny_dataset(workspace)
    at = _on_tiny(_search())
    assert_ok(at)
    captions = shown_text(at.caption)
    assert "No scout of tiny at 32 px with these backbones yet: press Run scout" in captions
    assert "A hint for the search, not its answer" in captions
    assert at.button(key="se_scout_go").disabled is False
    assert at.number_input(key="se_scout_images").value == 2000
    assert _ranked(at) is None and _scout_figure(at) is None
    assert all(b.key != "se_scout_narrow" for b in at.button)

    at.multiselect(key="se_new_backbones").set_value([]).run()
    assert_ok(at)
    assert "Choose at least one backbone in the New study form" in shown_text(at.info)


def test_scout_step_shows_the_ranking_narrows_the_range_and_seeds_the_study(scouted_ws):
    result = latest_result(scouted_ws, "tiny", image_size=32)
    at = _search()
    assert_ok(at)
    assert _ranked(at) is None  # the form starts on the demo dataset at 128 px: no scout of that
    at = _on_tiny(at)
    assert_ok(at)

    table = _ranked(at)
    assert table is not None and len(table) == 18
    assert list(table["depth"]) == list(result.table["depth"])  # best first, as the scout ranked them
    assert list(table["combined_rank"]) == sorted(table["combined_rank"])
    assert {"leep", "nce"} <= set(table.columns)
    assert table["leep"].isna().all() and table["nce"].isna().all()  # random weights: no ImageNet head
    assert "LEEP and NCE are skipped" in shown_text(at.caption)
    assert f"{result.images} training images at 32 px" in shown_text(at.caption)

    fig = _scout_figure(at)
    assert fig is not None
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles[:3] == ["stacked LogME", "LogME", "TransRate"]
    lines = [t for t in fig["data"] if t["mode"] == "lines+markers"]
    assert len(lines) == 3  # one backbone, three per-depth scores
    by_depth = result.table.set_index("depth")
    for trace, score in zip(lines, ("logme_stack", "logme", "transrate")):
        assert trace["x"] == list(range(1, 19))
        assert trace["y"] == pytest.approx([by_depth.loc[d, score] for d in range(1, 19)])

    top = result.top_configs(3, depth_range=[0, 18])
    depths = [c["freeze_depth"] for c in top]
    assert at.slider(key="se_new_depth").value == (0, 18)
    at.button(key="se_scout_narrow").click().run()
    assert_ok(at)
    assert at.slider(key="se_new_depth").value == (min(depths), max(depths)) != (0, 18)
    assert f"Freeze-depth range set to {min(depths)}–{max(depths)}" in shown_text(at.success)

    assert "will start with the scout's top" not in shown_text(at.info)
    at.number_input(key="se_scout_k").set_value(0).run()  # out of range: refused, never the old K
    at.button(key="se_scout_seed_btn").click().run()
    assert "No configuration was queued. K must be between 1 and" in shown_text(at.error)
    assert "will start with the scout's top" not in shown_text(at.info)
    at.number_input(key="se_scout_k").set_value(2).run()
    at.button(key="se_scout_seed_btn").click().run()
    assert_ok(at)
    assert "The study will start with the scout's top 2 depth(s)" in shown_text(at.info)
    at.text_input(key="se_new_name").set_value("seeded")
    at.checkbox(key="se_new_start").uncheck()
    at.button(key="se_new_create").click().run()
    assert_ok(at)
    assert "Created study seeded" in shown_text(at.success)
    spec = load_spec(scouted_ws, "seeded")
    assert spec.scout == {"images": result.images, "seed_trials": 2, "max_seconds": None}
    assert spec.freeze_depth == [min(depths), max(depths)]
    assert "will start with the scout's top" not in shown_text(at.info)  # for that one study only

    # Without the Scout step's seeds, a study gets the spec's default scout.
    at.text_input(key="se_new_name").set_value("plain")
    at.button(key="se_new_create").click().run()
    assert_ok(at)
    assert load_spec(scouted_ws, "plain").scout == {"images": 2000, "seed_trials": 0, "max_seconds": 60.0}


def test_a_running_scout_shows_its_progress_then_its_failure(workspace, tmp_path, request):
    add_tiny_dataset(workspace)
    status, log = tmp_path / "run.status.json", tmp_path / "run.log"
    status.write_text(json.dumps({"state": "running", "started": time.time(), "done": 6, "total": 12,
                                  "text": "EfficientNet-Lite0: features at every depth"}))
    log.write_text("")
    # A live stand-in for the scout process (its command line names tlcore, as a real scout's does).
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore-scout-stand-in"])
    request.addfinalizer(lambda: (stand_in.kill(), stand_in.wait()))
    at = _app()
    at.session_state["se_scout_run"] = {  # as launch_scout returns it
        "pid": stand_in.pid, "log": str(log), "status": str(status), "started": time.time(),
        "dataset": "tiny", "backbones": ["efficientnet_lite0"], "size": 32, "images": 500}
    _on_tiny(_search(at))
    assert_ok(at)
    bars = [p.proto for p in at.get("progress")]
    assert len(bars) == 1 and bars[0].value == 50
    assert "6 of 12 images" in bars[0].text
    assert at.button(key="se_scout_go").disabled
    assert "Scouting tiny at 32 px on 500 images" in shown_text(at.caption)

    status.write_text(json.dumps({"state": "failed", "started": time.time(),
                                  "error": "The scout needs at least two classes in the training split"}))
    at.run()
    assert not at.exception
    assert "The scout failed: The scout needs at least two classes" in shown_text(at.error)
    assert "Datasets page" in shown_text(at.error)  # what to do
    assert not at.get("progress")
    assert at.button(key="se_scout_go").disabled is False


@pytest.mark.slow
def test_run_scout_in_the_background_and_see_its_result(workspace):
    add_tiny_dataset(workspace)
    at = _on_tiny(_search())
    at.number_input(key="se_scout_images").set_value(100).run()
    at.button(key="se_scout_go").click().run()
    assert_ok(at)
    state = at.session_state["se_scout_run"]
    try:
        start = time.time()
        while time.time() - start < 240 and _ranked(at) is None:
            time.sleep(2)
            at.run()
            assert not at.exception
            assert not at.error, shown_text(at.error)
        assert _ranked(at) is not None, f"no result after {time.time() - start:.0f}s; log: {open(state['log']).read()}"
        assert "Scout finished in" in shown_text(at.success)
        assert len(_ranked(at)) == 18 and _scout_figure(at) is not None
        assert latest_result(workspace, "tiny", image_size=32) is not None
    finally:  # the scout this test started, if it is still running (launch_scout keeps its Popen)
        from tlcore import background

        proc = background._CHILDREN.get(int(state["pid"]))
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------- Results page
@pytest.fixture(scope="module")
def results_ws(tmp_path_factory):
    """A study that scouted and seeded its first 2 trials (3 trials of 1 epoch), one whose scout was
    skipped, one whose scout failed and one without a scout."""
    ws = Workspace(tmp_path_factory.mktemp("scout-results") / "ws")
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec(SCOUTED, scout={"images": 100, "seed_trials": 2, "max_seconds": None}, n_trials=3,
                               freeze_depth=[10, 18], epochs=1))
    run_worker(ws, SCOUTED, log=lambda s: None)
    for name, attr in ((SKIPPED, {"skipped": SKIP_REASON}), (FAILED, {"error": "DatasetError: *one* class"}),
                       (PLAIN, None)):
        study = create_study(ws, tiny_spec(name))
        if attr is not None:
            study.set_user_attr(SCOUT_ATTR, attr)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLCORE_HOME", str(ws.root))
        mp.delenv("TLCORE_DATA_ROOTS", raising=False)
        yield ws


def _results(*studies: str) -> AppTest:
    at = _app()
    at.query_params["study"] = list(studies)
    at.switch_page(RESULTS)
    return at.run()


def _agreement(at: AppTest):
    return next((d.value for d in at.dataframe if "Kendall τ" in d.value.columns), None)


def test_results_page_shows_how_well_each_score_ranked_the_trials(results_ws):
    study = load_study(results_ws, SCOUTED)
    attr = study.user_attrs[SCOUT_ATTR]
    trials = study.get_trials()
    expected = scout_agreement(trials, attr, load_spec(results_ws, SCOUTED))
    at = _results(SCOUTED)
    assert_ok(at)
    assert "Scout vs the trials" in [h.value for h in at.subheader]
    table = _agreement(at)
    assert table is not None
    assert list(table["score"]) == ["stacked LogME", "LogME", "TransRate", "LEEP", "NCE", "combined"]
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    assert complete >= 3 and list(table["trials"]) == [complete] * 6
    shown = dict(zip(table["score"], table["Kendall τ"]))
    assert shown["LEEP"] == "—" and shown["NCE"] == "—"  # random weights: no ImageNet head
    notes = dict(zip(table["score"], table["note"]))
    assert notes["LEEP"] and notes["NCE"]
    logme_tau = expected.set_index("score").loc["logme", "tau"]
    assert shown["LogME"] == ("—" if logme_tau is None else f"{logme_tau:.2f}")
    for value in table["Kendall τ"]:
        assert value == "—" or -1.0 <= float(value) <= 1.0
    captions = shown_text(at.caption)
    assert "τ = 1: the score ranked the finished trials exactly as their validation accuracy did" in captions
    seeded = attr["seeded"]
    assert len(seeded) == 2
    numbers = [t.number for t in trials if t.system_attrs.get("fixed_params") == seeded[0]]
    assert (f"Seeded from the scout: trial {numbers[0]} (freeze depth {seeded[0]['freeze_depth']}, "
            f"learning rate {seeded[0]['learning_rate']:.3g})") in captions
    assert len(next(d.value for d in at.dataframe if "combined_rank" in d.value.columns)) == 18


def test_results_page_says_when_a_study_skipped_failed_or_never_scouted(results_ws):
    at = _results(SKIPPED, FAILED, PLAIN)
    assert_ok(at)
    assert at.selectbox(key="re_scout_study").value == SKIPPED
    assert _agreement(at) is None
    assert f"Study {SKIPPED} skipped its scout: {SKIP_REASON}" in shown_text(at.info)

    at.selectbox(key="re_scout_study").set_value(FAILED).run()
    assert not at.exception
    assert f"Study {FAILED}'s scout failed: DatasetError: *one* class" in shown_text(at.warning)

    at.selectbox(key="re_scout_study").set_value(PLAIN).run()
    assert_ok(at)
    assert f"Study {PLAIN} did not scout" in shown_text(at.info)
    assert _agreement(at) is None
