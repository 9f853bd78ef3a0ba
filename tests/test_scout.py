"""The scout: each score against its paper's formula on small cases, and the scout end to end."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers.searchfix import add_tiny_dataset
from tlcore.cache import ArrayCache
from tlcore.errors import DatasetError
from tlcore.scout import (
    kendall_tau,
    latest_result,
    leep,
    logme,
    logme_stack,
    nce,
    rank_table,
    scout,
    transrate,
)


def _one_hot_features(n: int, k: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    f = np.eye(k)[y] + noise * rng.normal(size=(n, k))
    return np.hstack([f, rng.normal(size=(n, 6))]), y


# ------------------------------------------------------------------ LogME
def _log_marginal(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y; 0, I/beta + F Fᵀ/alpha): the evidence of Bayesian linear regression, written directly."""
    n = len(y)
    cov = np.eye(n) / beta + f @ f.T / alpha
    sign, logdet = np.linalg.slogdet(cov)
    return -0.5 * (logdet + y @ np.linalg.solve(cov, y) + n * math.log(2 * math.pi))


def test_logme_is_the_maximised_evidence_per_image():
    f, labels = _one_hot_features(40, 2, noise=0.5)
    f = f - 0  # no centring: LogME regresses on the features as they are
    got = logme(f, labels)
    # The evidence maximised over a grid of (alpha, beta), class by class, by the textbook formula.
    best = []
    for c in (0, 1):
        y = (labels == c).astype(float)
        grid = np.logspace(-3, 3, 61)
        best.append(max(_log_marginal(f, y, a, b) for a, b in itertools.product(grid, grid)) / len(y))
    assert got == pytest.approx(float(np.mean(best)), abs=2e-3)  # the fixed point beats the grid by a hair
    assert got >= float(np.mean(best)) - 1e-9


def test_logme_rises_with_label_feature_alignment():
    scores = [logme(*_one_hot_features(300, 5, noise)) for noise in (0.1, 0.5, 2.0)]
    rng = np.random.default_rng(1)
    random = logme(rng.normal(size=(300, 11)), np.arange(300) % 5)
    assert scores[0] > scores[1] > scores[2] > random


def test_transrate_matches_the_coding_rate_formula():
    f, y = _one_hot_features(60, 3, noise=0.3)
    z = f - f.mean(axis=0)
    z = z / math.sqrt((z ** 2).sum(axis=1).mean())

    def rate(m):
        n, d = m.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + m.T @ m / (n * 1e-4))[1]

    expected = rate(z) - np.mean([rate(z[y == c]) for c in range(3)])
    assert transrate(f, y) == pytest.approx(expected, rel=1e-9)
    assert transrate(*_one_hot_features(60, 3, noise=0.1)) > transrate(*_one_hot_features(60, 3, noise=3.0))


# ------------------------------------------------------------------ stacked LogME
def _standardized(block):
    z = (block - block.mean(axis=0)) / block.std(axis=0)
    return z / math.sqrt(block.shape[1])


def test_stacked_logme_is_logme_of_the_standardized_blocks_from_each_depth_to_the_top():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    blocks = [rng.normal(size=(60, w)) + 0.3 * k * (y[:, None] == 1) for k, w in enumerate((5, 30, 40))]
    got = logme_stack(blocks, y)
    # depth 3 alone is 40 columns (< 60 images: the covariance route), depths 2 and 1 are 70
    # and 75 (the Gram route): both must give LogME of the stacked, standardized blocks
    for i in range(3):
        expected = logme(np.concatenate([_standardized(b) for b in blocks[i:]], axis=1), y)
        assert got[i] == pytest.approx(expected, abs=1e-9)


def test_stacked_logme_weighs_blocks_equally_and_charges_for_columns_that_add_nothing():
    rng = np.random.default_rng(1)
    y = np.arange(200) % 4
    signal = rng.normal(size=(200, 8)) + np.eye(4)[y] @ rng.normal(size=(4, 8)) * 2
    noise = rng.normal(size=(200, 64))
    top = rng.normal(size=(200, 16)) + np.eye(4)[y] @ rng.normal(size=(4, 16))
    base = logme_stack([noise, signal, top], y)
    # a block's scale, offset and constant columns do not matter: each block is standardized
    scaled = logme_stack([noise * 1e3 + 5, np.c_[signal * 1e-3, np.ones(200)], top], y)
    assert scaled == pytest.approx(base, abs=1e-9)
    # an informative block raises the score of the depths that train it; pure noise lowers it
    assert base[1] > base[2]
    assert base[0] < base[1]


def test_stacked_logme_of_constant_blocks_is_none():
    y = np.arange(20) % 2
    got = logme_stack([np.zeros((20, 3)), np.ones((20, 2))], y)
    assert got == [None, None]
    one = logme_stack([np.random.default_rng(0).normal(size=(20, 3)), np.ones((20, 2))], y)
    assert one[1] is None and math.isfinite(one[0])


# ------------------------------------------------------------------ LEEP and NCE
def test_leep_is_the_log_likelihood_of_the_empirical_predictor():
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(7), size=50)  # source probabilities over 7 source classes
    y = rng.integers(0, 3, size=50)
    joint = np.zeros((3, 7))
    for i in range(50):
        joint[y[i]] += theta[i] / 50
    cond = joint / joint.sum(axis=0)  # P(y | z)
    loglik = np.mean([math.log(sum(cond[y[i], z] * theta[i, z] for z in range(7))) for i in range(50)])
    assert leep(theta, y) == pytest.approx(loglik, rel=1e-12)


def test_nce_is_minus_the_conditional_entropy():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    assert nce(y * 10 + 3, y) == pytest.approx(0.0)  # the labels are a function of the source labels
    p = np.bincount(y) / len(y)
    assert nce(np.zeros(8, int), y) == pytest.approx(float(np.sum(p * np.log(p))))  # -H(Y)
    assert nce(np.array([0, 1, 0, 1, 0, 1, 0, 1]), y) < 0


# ------------------------------------------------------------------ degenerate input, ranks
def test_degenerate_features_give_none_not_nan():
    y = np.arange(20) % 2
    assert logme(np.zeros((20, 5)), y) is None
    assert transrate(np.zeros((20, 5)), y) is None
    assert transrate(np.random.default_rng(0).normal(size=(20, 3)), np.zeros(20, int)) is None  # one class
    dup = np.repeat(np.random.default_rng(0).normal(size=(20, 1)), 4, axis=1)  # duplicate columns
    assert math.isfinite(logme(dup, y)) and math.isfinite(transrate(dup, y))
    nan_cols = np.random.default_rng(0).normal(size=(20, 3))
    nan_cols[:, 0] = np.nan
    assert math.isfinite(logme(nan_cols, y))


def test_kendall_tau_and_the_combined_rank():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 1, 1, 1], [1, 2, 3, 4]) is None  # a constant score ranks nothing
    assert kendall_tau([1, None, 3], [1, 2, 3]) is None  # fewer than three pairs
    table = rank_table([
        {"backbone": "b", "depth": 1, "logme": 0.1, "transrate": 5.0, "leep": None, "nce": None},
        {"backbone": "b", "depth": 2, "logme": 0.3, "transrate": 4.0, "leep": None, "nce": None},
        {"backbone": "b", "depth": 3, "logme": 0.2, "transrate": 9.0, "leep": None, "nce": None},
    ])
    assert table.attrs["combined_from"] == ["logme", "transrate"]
    assert table["depth"].tolist()[0] == 3  # ranks 2 and 1: the best mean rank
    # with the stacked score, it alone ranks the depths of one backbone (LEEP and NCE are the
    # same for every depth); LogME and TransRate of the boundary are shown, not ranked by
    table = rank_table([
        {"backbone": "b", "depth": 1, "logme_stack": 0.20, "logme": 0.1, "transrate": 5.0, "leep": -1.0},
        {"backbone": "b", "depth": 2, "logme_stack": 0.25, "logme": 0.3, "transrate": 4.0, "leep": -1.0},
        {"backbone": "b", "depth": 3, "logme_stack": 0.10, "logme": 0.2, "transrate": 9.0, "leep": -1.0},
    ])
    assert table.attrs["combined_from"] == ["logme_stack"]
    assert table["depth"].tolist() == [2, 1, 3]


# ------------------------------------------------------------------ the scout
def test_scout_scores_every_depth_and_reuses_its_features(workspace, monkeypatch):
    import tlcore.scout as scout_mod

    add_tiny_dataset(workspace)
    first = scout(workspace, "tiny", image_size=32, images=2000, weights=None)
    assert sorted(first.table["depth"]) == list(range(1, 19))
    assert first.table["logme"].notna().all() and first.table["transrate"].notna().all()
    assert first.table["logme_stack"].notna().all() and first.table.attrs["combined_from"] == ["logme_stack"]
    assert first.table["leep"].isna().all()
    assert any("LEEP and NCE are skipped" in n for n in first.notes)
    assert first.cached == []
    def no_recompute(*args, **kwargs):
        raise AssertionError("the stacked scores are cached with the features")

    monkeypatch.setattr(scout_mod, "logme_stack", no_recompute)
    second = scout(workspace, "tiny", image_size=32, images=2000, weights=None)
    assert second.cached == ["efficientnet_lite0"]
    np.testing.assert_allclose(second.table["logme"], first.table["logme"])
    np.testing.assert_allclose(second.table["logme_stack"], first.table["logme_stack"])
    top = first.top_configs(2, depth_range=[5, 18])
    assert len(top) == 2 and all(5 <= c["freeze_depth"] < 18 for c in top)


def test_an_interrupted_scout_leaves_no_cache_entry(workspace, monkeypatch):
    import tlcore.scout as scout_mod

    add_tiny_dataset(workspace)

    def broken(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(scout_mod, "_forward", broken)
    with pytest.raises(KeyboardInterrupt):
        scout(workspace, "tiny", image_size=32, weights=None)
    cache = ArrayCache(workspace.cache_dir / "features")
    assert not [e for e in cache.entries() if e.get("parts", e).get("kind") == "scout_features"]


def test_too_few_images_per_class_get_a_clear_message(workspace, make_image_tree):
    from tlcore.datasets import add_dataset

    # A one-class folder is refused when it is registered; a registered dataset can still have
    # fewer training images than two per class, where the scores are undefined.
    add_dataset(workspace, "few", make_image_tree(workspace.root / "few", {"cat": 2, "dog": 2, "owl": 2}))
    with pytest.raises(DatasetError) as info:
        scout(workspace, "few", image_size=32, weights=None, val_fraction=0.5, test_fraction=0.0)
    assert "at least two training images per class" in str(info.value)
    assert "training images for 3 classes" in str(info.value)


def test_the_cli_prints_a_ranked_table_and_saves_it(workspace):
    add_tiny_dataset(workspace)
    run = subprocess.run([sys.executable, "-m", "tlcore", "--workspace", str(workspace.root), "scout",
                          "--data", "tiny", "--image-size", "32", "--weights", "none", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert len(data["rows"]) == 18 and data["rows"][0]["combined_rank"] == 1
    assert latest_result(workspace, "tiny", image_size=32) is not None
    table = subprocess.run([sys.executable, "-m", "tlcore", "--workspace", str(workspace.root), "scout",
                            "--data", "tiny", "--image-size", "32", "--weights", "none"],
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("backbone"))
    assert lines[head].split() == ["backbone", "depth", "width", "stacked", "LogME", "TransRate", "LEEP", "NCE",
                                   "rank"]
    rows = [line.split() for line in lines[head + 1 : head + 19]]
    assert all(len(r) == 9 and r[0] == "efficientnet_lite0" for r in rows), rows
    assert sorted(int(r[1]) for r in rows) == list(range(1, 19)) and rows[0][-1] == "1"
    bad = subprocess.run([sys.executable, "-m", "tlcore", "--workspace", str(workspace.root), "scout",
                          "--data", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "error: " in bad.stderr and "Traceback" not in bad.stderr
    assert "Registered datasets: demo, tiny" in bad.stderr


def test_the_cli_takes_the_demo_or_a_folder_and_refuses_a_missing_weights_file(workspace, tmp_path, capsys):
    from tests.helpers.runs import write_tinted_tree
    from tlcore.cli import main

    base = ["scout", "--image-size", "32", "--images", "40", "--weights", "none", "--json"]
    assert main([*base, "--data", "demo"]) == 0  # a fresh workspace: the built-in demo, as train finds it
    assert json.loads(capsys.readouterr().out)["dataset"] == "demo"
    folder = write_tinted_tree(workspace.root / "My Photos", per_class=4)  # inside the allowed data roots
    assert main([*base, "--data", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["dataset"] == "My-Photos" and "Registered" in err
    assert main(["scout", "--data", "demo", "--weights", str(tmp_path / "missing.weights.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The weights file does not exist.") and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ a study's scout
def test_a_study_scouts_once_seeds_its_first_trials_and_measures_the_scores(workspace):
    from optuna.trial import TrialState

    from tests.helpers.searchfix import tiny_spec
    from tlcore.search import attrs, create_study, load_spec, load_study, run_worker
    from tlcore.search.seeding import SCOUT_ATTR, scout_agreement

    add_tiny_dataset(workspace)
    spec = tiny_spec("scouted", scout={"images": 100, "seed_trials": 2, "max_seconds": None}, n_trials=4,
                     freeze_depth=[10, 18], epochs=1)
    create_study(workspace, spec)
    lines: list[str] = []
    run_worker(workspace, "scouted", log=lines.append)
    study = load_study(workspace, "scouted")
    record = study.user_attrs[SCOUT_ATTR]
    assert len(record["rows"]) == 18 and len(record["seeded"]) == 2
    assert all(10 <= p["freeze_depth"] < 18 for p in record["seeded"])
    trials = study.get_trials()
    assert [t.params["freeze_depth"] for t in trials[:2]] == [p["freeze_depth"] for p in record["seeded"]]
    assert [attrs.seeded(t) for t in trials] == ["scout", "scout", None, None]  # never pruned at a rung
    assert sum("scout: " in line for line in lines) == 2  # started, finished: once
    agreement = scout_agreement(trials, record, load_spec(workspace, "scouted"))
    assert set(agreement["score"]) == {"logme_stack", "logme", "transrate", "leep", "nce", "combined"}
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    assert (agreement["trials"] == complete).all()
    leep_row = agreement[agreement["score"] == "leep"].iloc[0]
    assert leep_row["tau"] is None and leep_row["note"]  # no ImageNet head with random weights


def test_a_study_scouts_after_its_probe_and_recipe_trials(workspace):
    from tests.helpers.searchfix import tiny_spec
    from tlcore.search import create_study, load_study, run_worker
    from tlcore.search.seeding import SCOUT_ATTR

    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("queued", scout={"images": 60, "seed_trials": 1, "max_seconds": None},
                                      n_trials=3, epochs=1, freeze_depth=[10, 18], probe_first=True,
                                      recipe_trial=True, head_init="linear_probe"))
    lines: list[str] = []
    run_worker(workspace, "queued", log=lines.append)
    study = load_study(workspace, "queued")
    seeded = study.user_attrs[SCOUT_ATTR]["seeded"]
    assert [t.params["freeze_depth"] for t in study.get_trials()] == [18, 12, seeded[0]["freeze_depth"]]
    scouted_at = next(i for i, line in enumerate(lines) if line.startswith("scout: scoring"))
    assert {line.split(":")[0] for line in lines[:scouted_at] if line.startswith("trial ")} == {"trial 0", "trial 1"}


def test_a_scout_that_would_take_too_long_is_skipped_and_said(workspace):
    from tests.helpers.searchfix import tiny_spec
    from tlcore.search import create_study, load_study, run_worker
    from tlcore.search.seeding import SCOUT_ATTR

    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("slow", scout={"max_seconds": 0.5}, n_trials=1, epochs=1))
    run_worker(workspace, "slow", log=lambda s: None)
    assert "above its 0.5 s limit (scout.max_seconds)" in load_study(workspace, "slow").user_attrs[SCOUT_ATTR]["skipped"]


@pytest.mark.parametrize("bad, words", [
    ({"images": 1}, "scout.images must be an integer"),
    ({"seed_trials": -1}, "scout.seed_trials must be an integer"),
    ({"every": 3}, "Unknown scout option: every"),
    ("yes", "scout must be a mapping"),
])
def test_scout_options_are_validated(bad, words):
    from tlcore.errors import ConfigError
    from tlcore.search import StudySpec

    with pytest.raises(ConfigError) as info:
        StudySpec(name="s", dataset="d", scout=bad)
    assert words in str(info.value)


def test_older_studies_do_not_scout():
    from tlcore.search import StudySpec

    stored = StudySpec(name="s", dataset="d").to_dict()
    stored.pop("scout")
    assert StudySpec.from_stored({**stored, "version": 2}).scout is None
    assert StudySpec(name="s", dataset="d", scout={}).scout == {"images": 2000, "seed_trials": 0, "max_seconds": 60.0}


def test_a_scout_never_queues_more_trials_than_the_budget_runs(workspace):
    from optuna.trial import TrialState

    from tests.helpers.searchfix import tiny_spec
    from tlcore.search import create_study, load_study, run_worker
    from tlcore.search.seeding import SCOUT_ATTR

    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("small", scout={"images": 60, "seed_trials": 5, "max_seconds": None},
                                      n_trials=2, epochs=1))
    run_worker(workspace, "small", log=lambda s: None)
    study = load_study(workspace, "small")
    assert len(study.user_attrs[SCOUT_ATTR]["seeded"]) == 2
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2  # nothing left WAITING


def test_a_scout_that_finishes_between_the_status_read_and_the_pid_check_is_not_called_failed(monkeypatch, tmp_path):
    from tlcore import _fsutil, background
    from tlcore.scout import scout_status

    reads = iter([{"state": "running", "done": 1, "total": 2}, {"state": "finished", "result": "r.json"}])
    monkeypatch.setattr(_fsutil, "read_json", lambda path, default=None: next(reads))
    monkeypatch.setattr(background, "pid_alive", lambda pid: False)  # it has exited meanwhile
    out = scout_status({"pid": 1, "status": str(tmp_path / "s.json"), "log": str(tmp_path / "l.log")})
    assert out["state"] == "finished" and out["result"] == "r.json"


def test_seeded_trials_take_the_recipe_learning_rate_of_their_depth():
    from tlcore.search.seeding import seed_params
    from tlcore.search.spec import StudySpec

    spec = StudySpec(name="s", dataset="d", freeze_depth=[2, 16])
    configs = [{"backbone": "efficientnet_lite0", "freeze_depth": d} for d in (4, 6, 4, 12)]
    seeds = seed_params(spec, configs)
    assert [p["freeze_depth"] for p in seeds] == [4, 6, 12]  # a repeated pair is seeded once
    for p in seeds:
        lo, hi = spec.lr_range("efficientnet_lite0", "fine_tune", p["freeze_depth"])
        assert p["learning_rate"] == pytest.approx(math.sqrt(lo * hi))
    assert seeds[0]["learning_rate"] < seeds[2]["learning_rate"]  # the depth-aware ceiling: lower when shallower


def test_the_cost_estimate_counts_no_more_images_than_the_dataset_has(workspace):
    from tlcore.scout import scout_cost_estimate, scout_cost_for

    add_tiny_dataset(workspace)
    have = workspace.get_dataset("tiny").num_images
    assert 0 < have < 2000
    lite = ["efficientnet_lite0"]
    assert scout_cost_for(workspace, "tiny", 2000, 96, lite) == pytest.approx(scout_cost_estimate(have, 96, lite))
    assert scout_cost_for(workspace, "tiny", 2000, 96, lite) < scout_cost_estimate(2000, 96, lite)
    assert scout_cost_for(workspace, "no-such", 2000, 96, lite) == pytest.approx(scout_cost_estimate(2000, 96, lite))


# ------------------------------------------------------------------ background scouts found from disk
def _status(run: dict, **info) -> None:
    from pathlib import Path

    Path(run["status"]).write_text(json.dumps(info))


def test_a_running_scout_is_found_from_disk_and_a_second_identical_one_is_refused(workspace, stand_in_spawn):
    """A reload or a second tab knew nothing of a scout another session started, so a second identical
    one could start (two processes, two result files). Its record on disk now finds it, and the launch
    refuses a second one of the same settings while the first one's process lives."""
    from tlcore.scout import ScoutAlreadyRunning, launch_scout, running_scouts

    settings = dict(backbones=["efficientnet_lite0"], image_size=80, images=500, weights=None, resize_mode="pad")
    first = launch_scout(workspace, "demo", **settings)
    _status(first, state="running", started=first["started"], done=3, total=10, text="features")
    found = running_scouts(workspace, "demo", image_size=80, backbones=["efficientnet_lite0"], weights=None,
                           resize_mode="pad")
    assert [r["pid"] for r in found] == [first["pid"]]
    assert found[0]["images"] == 500 and found[0]["status"] == first["status"]
    assert running_scouts(workspace, "demo", image_size=96) == []  # other settings: not that one

    with pytest.raises(ScoutAlreadyRunning) as caught:
        launch_scout(workspace, "demo", **settings)
    assert caught.value.run["pid"] == first["pid"]
    assert "already running" in caught.value.message and caught.value.fix
    assert "image_size=80" in str(caught.value.received)
    assert len(stand_in_spawn) == 1  # no second process

    other = launch_scout(workspace, "demo", **{**settings, "image_size": 96})  # other settings: allowed
    assert len(stand_in_spawn) == 2 and other["pid"] != first["pid"]

    # The process died without finishing (killed, out of memory): it no longer counts, nor blocks.
    stand_in_spawn[0].kill()
    stand_in_spawn[0].wait()
    assert running_scouts(workspace, "demo", image_size=80) == []
    again = launch_scout(workspace, "demo", **settings)
    assert again["pid"] == stand_in_spawn[2].pid

    # A scout whose status says it ended is not running, even while its process is still exiting.
    _status(again, state="finished", started=again["started"], done=1, total=1, result="x.json", seconds=1.0)
    assert running_scouts(workspace, "demo", image_size=80) == []


def test_two_tabs_pressing_run_scout_at_once_start_one_scout(workspace, stand_in_spawn, monkeypatch):
    import threading

    from tlcore import background
    from tlcore.scout import ScoutAlreadyRunning, launch_scout

    spawn = background.spawn

    def slow_spawn(*args, **kw):  # a wide window between the check and the record
        time.sleep(0.3)
        return spawn(*args, **kw)

    monkeypatch.setattr(background, "spawn", slow_spawn)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def press():
        barrier.wait()
        try:
            launch_scout(workspace, "demo", backbones=["efficientnet_lite0"], image_size=80, images=500, weights=None)
            outcomes.append("started")
        except ScoutAlreadyRunning:
            outcomes.append("refused")

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused", "started"]
    assert len(stand_in_spawn) == 1


def test_a_scout_on_another_machine_counts_as_running_and_the_refusal_says_how_to_clear_it(workspace):
    from tlcore._fsutil import atomic_write_json
    from tlcore.scout import RUN_SUFFIX, ScoutAlreadyRunning, launch_scout, running_scouts, scouts_dir

    folder = scouts_dir(workspace, "demo")
    status = folder / "run-1.status.json"
    status.write_text(json.dumps({"state": "running", "done": 1, "total": 4}))
    record = folder / f"run-1{RUN_SUFFIX}"
    atomic_write_json(record, {"pid": 999_999_999, "host": "another-machine", "log": str(folder / "run-1.log"),
                               "status": str(status), "started": time.time(), "dataset": "demo",
                               "backbones": ["efficientnet_lite0"], "image_size": 80, "images": 500,
                               "weights": None, "resize_mode": "pad"})
    assert [r["host"] for r in running_scouts(workspace, "demo")] == ["another-machine"]
    with pytest.raises(ScoutAlreadyRunning) as caught:
        launch_scout(workspace, "demo", backbones=["efficientnet_lite0"], image_size=80, images=500, weights=None)
    assert "on another-machine" in caught.value.message and str(record) in caught.value.fix
    status.write_text(json.dumps({"state": "failed", "error": "boom"}))  # it said it ended
    assert running_scouts(workspace, "demo") == []
    record.write_text("{ damaged")  # an unreadable record blocks nothing
    assert running_scouts(workspace, "demo") == []


def test_a_scout_run_in_a_terminal_is_followed_and_not_started_twice(workspace, stand_in_spawn):
    """A scout started with ``python -m tlcore scout`` was invisible to the Search page, which could start
    an identical one beside it. It now records itself as a launched one does: found while it runs, a
    second identical launch refused, its status finished with the saved result when it ends."""
    import subprocess
    import sys
    from pathlib import Path

    from tlcore.cli import main
    from tlcore.scout import ScoutAlreadyRunning, launch_scout, running_scouts

    settings = dict(backbones=["efficientnet_lite0"], image_size=32, images=60, weights=None, resize_mode="pad")
    proc = subprocess.Popen([sys.executable, "-m", "tlcore", "--workspace", str(workspace.root), "scout", "--data",
                             "demo", "--weights", "none", "--image-size", "32", "--images", "60"],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, found = time.time() + 60, []
        while not found and proc.poll() is None and time.time() < deadline:
            found = running_scouts(workspace, "demo", image_size=32, backbones=["efficientnet_lite0"], weights=None)
            time.sleep(0.05)
        assert [r["pid"] for r in found] == [proc.pid], proc.poll()
        with pytest.raises(ScoutAlreadyRunning):
            launch_scout(workspace, "demo", **settings)
        assert stand_in_spawn == []
        # the terminal refuses an identical second terminal scout the same way
        code = main(["--workspace", str(workspace.root), "scout", "--data", "demo", "--weights", "none",
                     "--image-size", "32", "--images", "60"])
        assert code == 2 or proc.poll() is not None  # (unless the first one ended meanwhile)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    status = json.loads(Path(found[0]["status"]).read_text())
    assert status["state"] == "finished" and Path(status["result"]).is_file()
    assert running_scouts(workspace, "demo") == []
