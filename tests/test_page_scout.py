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
from pathlib import Path

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
UNASKED, OUT_OF_RANGE, NO_ROOM = "unseeded", "seeds-out-of-range", "seeds-over-budget"
SEEDS = {"images": 100, "seed_trials": 2, "max_seconds": None}
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


def _hand_saved_scout(ws: Workspace) -> None:
    """A finished scout of tiny at 32 px (random weights), as ``save_result`` writes it, made by hand."""
    from tlcore.scout import SCORES

    rows = [{"backbone": "efficientnet_lite0", "depth": d, "width": 16, **{k: 0.1 * d for k in SCORES},
             "combined": float(19 - d), "combined_rank": 19 - d} for d in range(1, 19)]
    folder = ws.root / "scouts" / "tiny"
    (folder / "20260101-000000-32px-15-efficientnet_lite0.json").write_text(json.dumps(
        {"dataset": "tiny", "image_size": 32, "images": 15, "seconds": 1.0, "feature_seconds": 0.5, "cached": [],
         "notes": [], "weights": None, "resize_mode": "pad", "rows": rows}))


def test_a_scout_started_elsewhere_shows_after_a_reload_and_no_second_one_starts(workspace, stand_in_spawn):
    """A reload or a second tab knew the running scout only from another session's state: it said "No
    scout ... yet" with Run scout on, and a press started a second identical scout. It is found from
    its record on disk now, shown with its progress, and a press from a tab drawn before it started
    follows it instead of starting another."""
    from tlcore.scout import launch_scout

    add_tiny_dataset(workspace)
    early = _on_tiny(_search())  # a second tab, drawn before the scout starts: Run scout is on there
    assert early.button(key="se_scout_go").disabled is False

    run = launch_scout(workspace, "tiny", backbones=["efficientnet_lite0"], image_size=32, images=2000,
                       weights=None, resize_mode="pad")  # what the first tab's Run scout does
    status = Path(run["status"])
    status.write_text(json.dumps({"state": "running", "started": run["started"], "done": 6, "total": 12,
                                  "text": "EfficientNet-Lite0: features at every depth"}))

    reloaded = _on_tiny(_search())  # a reload: a new session, the form back at its defaults, set again
    assert_ok(reloaded)
    bars = [p.proto for p in reloaded.get("progress")]
    assert len(bars) == 1 and bars[0].value == 50 and "6 of 12 images" in bars[0].text
    assert reloaded.button(key="se_scout_go").disabled
    captions = shown_text(reloaded.caption)
    assert "No scout of tiny at 32 px" not in captions
    assert "Scouting tiny at 32 px on 2000 images" in captions
    assert f"This scout was started at {time.strftime('%H:%M:%S', time.localtime(run['started']))}" in captions
    assert "Run scout is off until it ends" in captions
    assert _search(_app()).button(key="se_scout_go").disabled is False  # other settings (demo, 128 px): free

    early.button(key="se_scout_go").click().run()  # the second tab's press: refused, it follows the first
    assert not early.exception
    assert len(stand_in_spawn) == 1
    assert "A scout of these settings was already running" in shown_text(early.info)
    assert early.session_state["se_scout_run"]["pid"] == run["pid"]
    assert [p.proto.value for p in early.get("progress")] == [50]
    assert early.button(key="se_scout_go").disabled

    # It finishes: each tab shows the result, and so does a reload.
    _hand_saved_scout(workspace)
    status.write_text(json.dumps({"state": "finished", "started": run["started"], "done": 1, "total": 1,
                                  "result": "r.json", "seconds": 4.0}))
    stand_in_spawn[0].kill()
    stand_in_spawn[0].wait()
    for at in (reloaded.run(), _on_tiny(_search())):
        assert_ok(at)
        assert not at.get("progress")
        assert _ranked(at) is not None
        assert at.button(key="se_scout_go").disabled is False
    assert "Scout finished in 4.0 s" in shown_text(reloaded.success)


def test_a_scout_whose_process_died_does_not_block_the_page(workspace, stand_in_spawn):
    from tlcore.scout import launch_scout

    add_tiny_dataset(workspace)
    run = launch_scout(workspace, "tiny", backbones=["efficientnet_lite0"], image_size=32, images=2000,
                       weights=None, resize_mode="pad")
    Path(run["status"]).write_text(json.dumps({"state": "running", "started": run["started"], "done": 1,
                                               "total": 12, "text": "features"}))
    stand_in_spawn[0].kill()  # killed, out of memory: no final state written
    stand_in_spawn[0].wait()
    at = _on_tiny(_search())
    assert_ok(at)
    assert not at.get("progress")
    assert at.button(key="se_scout_go").disabled is False
    assert "No scout of tiny at 32 px with these backbones yet: press Run scout" in shown_text(at.caption)


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
    skipped, one whose scout failed and one without a scout; and three whose scout (its record copied
    from the first, by hand) seeded nothing: not asked to (``seed_trials`` 0), no scored depth within
    the study's range, no room left in the trial budget."""
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
    unseeded = {**load_study(ws, SCOUTED).user_attrs[SCOUT_ATTR], "seeded": []}
    for name, kw, why in ((UNASKED, {"scout": {**SEEDS, "seed_trials": 0}}, "not_asked"),
                          (OUT_OF_RANGE, {"scout": SEEDS, "freeze_depth": [18, 18]}, "no_depth_in_range"),
                          (NO_ROOM, {"scout": SEEDS, "freeze_depth": [10, 18]}, "no_room")):
        create_study(ws, tiny_spec(name, **kw)).set_user_attr(SCOUT_ATTR, {**unseeded, "unseeded": why})
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


def test_results_page_gives_the_true_reason_a_scout_seeded_no_trial(results_ws):
    """A study created without "Start the study with the top K configurations" was told its scout found
    "no scored depth within the study's ranges", though it was never asked to seed (seed_trials 0)."""
    at = _results(UNASKED, OUT_OF_RANGE, NO_ROOM)
    assert_ok(at)
    assert at.selectbox(key="re_scout_study").value == UNASKED
    assert _agreement(at) is not None  # the scores are compared all the same
    captions = shown_text(at.caption)
    assert "The scout seeded no trial: seeding was not asked for (the study's `scout.seed_trials` is 0" in captions
    assert "Start the study with the top K configurations" in captions
    assert "within the study's" not in captions

    at.selectbox(key="re_scout_study").set_value(OUT_OF_RANGE).run()
    assert_ok(at)
    assert ("The scout seeded no trial, though the study asked for 2: no scored depth lies within the study's "
            "freeze-depth ranges (below the full depth).") in shown_text(at.caption)

    at.selectbox(key="re_scout_study").set_value(NO_ROOM).run()
    assert_ok(at)
    captions = shown_text(at.caption)
    assert "The scout seeded no trial, though the study asked for 2: its trial budget (3) had no trial left" in captions
    assert "not asked for" not in captions and "no scored depth" not in captions


@pytest.mark.parametrize("kw, why, text", [
    ({"scout": {**SEEDS, "seed_trials": 0}}, "not_asked", "not asked for"),
    ({"methods": ["feature_extraction"]}, "feature_extraction_only", "feature extraction only"),
    ({"freeze_depth": [18, 18]}, "no_depth_in_range", "no scored depth"),
    ({"freeze_depth": [12, 12], "learning_rate": [1e-3, 1e-3]}, "nothing_searched", "a seed would fix nothing"),
    ({"n_trials": 3, "busy": 3}, "no_room", "trial budget (3)"),
])
def test_a_scout_that_seeds_nothing_records_why_and_results_says_it(tmp_path, monkeypatch, kw, why, text):
    """The Results page used to re-derive the reason from the spec, apart from the decision; the scout
    now records it (``unseeded``) where it decides, and the page says what it recorded."""
    import pandas as pd

    import tlcore.scout
    from tlcore.scout import ScoutResult
    from tlcore.search.seeding import maybe_scout
    from tlui.scout_widgets import unseeded_text

    ws = Workspace(tmp_path / "ws")
    add_tiny_dataset(ws)
    table = pd.DataFrame([{"backbone": "efficientnet_lite0", "depth": d, "width": 8, "logme_stack": d / 10,
                           "combined_rank": 19 - d} for d in range(1, 19)]).sort_values("combined_rank")
    monkeypatch.setattr(tlcore.scout, "scout", lambda *a, **k: ScoutResult(
        dataset="tiny", image_size=32, images=10, table=table, notes=[], seconds=0.1, feature_seconds=0.1,
        cached=[], weights=None))
    busy = kw.pop("busy", 0)
    spec = tiny_spec("s", **{"scout": SEEDS, **kw})
    study = create_study(ws, spec)
    for _ in range(busy):
        study.ask()  # trials running: the budget has no room left
    maybe_scout(ws, study, spec, study._storage, log=lambda s: None)
    record = load_study(ws, "s").user_attrs[SCOUT_ATTR]
    assert record["seeded"] == [] and record["unseeded"] == why
    assert text in unseeded_text(record, spec)
    assert "does not say why" in unseeded_text({**record, "unseeded": None}, tiny_spec(scout=SEEDS))
    seeded_spec = tiny_spec("t", scout=SEEDS)  # the same scout, asked and with room: it seeds
    seeded = create_study(ws, seeded_spec)
    maybe_scout(ws, seeded, seeded_spec, seeded._storage, log=lambda s: None)
    assert len(load_study(ws, "t").user_attrs[SCOUT_ATTR]["seeded"]) == 2
    assert "unseeded" not in load_study(ws, "t").user_attrs[SCOUT_ATTR]
