"""The default search's parts: BatchNorm mode, the collapse guard, the shared linear-probe head and
its cache, nested subsets, rung promotion, features from a shallower depth, spec validation."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import keras
import numpy as np
import optuna
import pandas as pd
import pytest

from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.cache import ArrayCache
from tlcore.config import TrainSpec
from tlcore.errors import ConfigError, TrainingDiverged
from tlcore.model import Classifier
from tlcore.pipeline import nested_subset
from tlcore.probe import ProbeFit, fit_softmax_regression
from tlcore.search import StudySpec, create_study, load_study, run_worker
from tlcore.search.pruners import RungPruner
from tlcore.search.study import DIVERGED_ATTR, RUNGS_ATTR, load_spec, probe_trial_params, recipe_trial_params
from tlcore.trainer import _DivergenceGuard, train

DEMO = Path(__file__).resolve().parent.parent / "demo_data"


# ------------------------------------------------------------------ BatchNorm mode
def _bn_layers(clf: Classifier, block: int):
    from tlcore import backbones

    return [layer for layer in backbones.block_layers(clf.backbone, clf.info)[block]
            if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["train", "frozen"])
def test_batchnorm_mode_decides_whether_unfrozen_statistics_move(mode):
    clf = Classifier.build("efficientnet_lite0", num_classes=2, image_size=32, weights=None)
    clf.set_freeze_depth(10, batchnorm=mode)
    frozen_bn, free_bn = _bn_layers(clf, 3)[0], _bn_layers(clf, 15)[0]
    before = [np.array(frozen_bn.moving_mean), np.array(free_bn.moving_mean)]
    clf.model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    clf.model.fit(x, keras.utils.to_categorical(np.arange(16) % 2, 2), epochs=1, batch_size=8, verbose=0)
    assert np.array_equal(np.array(frozen_bn.moving_mean), before[0])  # a frozen block never moves
    moved = not np.allclose(np.array(free_bn.moving_mean), before[1])
    assert moved == (mode == "train")
    assert free_bn.momentum == (0.9 if mode == "train" else 0.99)


def test_an_unknown_batchnorm_mode_is_refused():
    clf = Classifier.build("efficientnet_lite0", num_classes=2, image_size=32, weights=None)
    with pytest.raises(ConfigError, match="batchnorm='sometimes'"):
        clf.set_freeze_depth(5, batchnorm="sometimes")


@pytest.mark.slow
def test_pinned_batchnorm_collapses_at_a_large_rate_and_batch_statistics_survive(workspace):
    """The cause of the collapsed trials, reproduced on the demo data with the real ImageNet weights.

    From the same linear-probe head (0.84 validation accuracy), one epoch of fine-tuning from depth 7
    at 3e-3 with BatchNorm pinned to its moving statistics falls to chance (measured: 0.10, train loss
    3.4) and the guard stops it; with BatchNorm on batch statistics the same run stays far above
    (measured: 0.55, then 0.70 after a second epoch). bench/bench_collapse.py shows the same on 1,000
    Fashion-MNIST images at 96 px.
    """
    from tlcore.datasets import ensure_demo

    ensure_demo(workspace)
    kw = dict(dataset="demo", image_size=64, method="fine_tune", freeze_depth=7, learning_rate=3e-3, epochs=1,
              batch_size=16)
    with pytest.raises(TrainingDiverged, match="at chance") as info:
        train(TrainSpec(**kw, batchnorm="frozen"), workspace, run_dir=workspace.root / "frozen")
    assert len(info.value.history) == 1  # stopped after its first epoch
    assert not (workspace.root / "frozen").exists()  # a diverged run saves nothing
    res = train(TrainSpec(**kw, batchnorm="train"), workspace, run_dir=workspace.root / "train")
    assert res.metrics["linear_probe"]["val_accuracy"] > 0.6
    assert res.history[-1]["val_accuracy"] > 0.4


# ------------------------------------------------------------------ divergence guard
def _rec(epoch=1, val_accuracy=0.5, train_loss=1.0, val_loss=1.0, fraction=1.0):
    return {"epoch": epoch, "val_accuracy": val_accuracy, "train_loss": train_loss, "val_loss": val_loss,
            "train_fraction": fraction}


def test_guard_stops_non_finite_losses_and_chance_accuracy():
    y = np.repeat(np.arange(10), 45)  # 450 balanced validation images: threshold 0.1 + 2 * 0.01414
    guard = _DivergenceGuard(y, 10, from_probe=False)
    assert guard.threshold == pytest.approx(0.1 + 2 * math.sqrt(0.09 / 450))
    with pytest.raises(TrainingDiverged, match="train loss not finite at epoch 1"):
        guard.check([_rec(train_loss=float("nan"))])
    with pytest.raises(TrainingDiverged, match="validation accuracy 0.087 after epoch 1 is at chance"):
        guard.check([_rec(val_accuracy=0.087)])
    guard.check([_rec(val_accuracy=0.6)])
    # From a random head only the first full-data epoch is judged: a rung epoch on 11 % is not.
    guard.check([_rec(val_accuracy=0.1, fraction=0.11)])
    guard.check([_rec(val_accuracy=0.6), _rec(epoch=2, val_accuracy=0.1)])
    # From the probe every epoch is judged: falling to chance later is a collapse too.
    probe_guard = _DivergenceGuard(y, 10, from_probe=True)
    with pytest.raises(TrainingDiverged):
        probe_guard.check([_rec(val_accuracy=0.8), _rec(epoch=2, val_accuracy=0.1)])


def test_guard_does_not_judge_chance_on_a_handful_of_validation_images():
    guard = _DivergenceGuard(np.array([0, 1, 2, 0, 1]), 3, from_probe=True)
    guard.check([_rec(val_accuracy=0.2)])  # 5 images cannot tell chance from learning
    with pytest.raises(TrainingDiverged):
        guard.check([_rec(val_loss=float("inf"))])


# ------------------------------------------------------------------ linear probe
def test_softmax_regression_separates_and_packs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 3
    y = np.repeat(np.arange(3), 40)
    x = centers[y] + rng.normal(size=(120, 16))
    fit = fit_softmax_regression(x, y, x, y, num_classes=3)
    assert fit.val_accuracy == 1.0 and fit.train_accuracy == 1.0
    kernel, bias = ProbeFit.unpack(fit.pack())
    assert kernel.shape == (16, 3) and bias.shape == (3,)
    assert np.array_equal(np.argmax(x @ kernel + bias, axis=1), y)


def test_the_probe_is_fitted_once_and_shared_by_later_runs(workspace):
    add_tiny_dataset(workspace)
    spec = TrainSpec(dataset="tiny", weights=None, image_size=32, batch_size=8, epochs=1, method="fine_tune",
                     freeze_depth=12)
    first = train(spec, workspace, run_dir=workspace.root / "a")
    assert first.metrics["linear_probe"]["fitted_here"] is True
    second = train(TrainSpec(**{**spec.to_dict(), "freeze_depth": 14, "learning_rate": 3e-3}), workspace,
                   run_dir=workspace.root / "b")
    assert second.metrics["linear_probe"]["fitted_here"] is False
    assert second.metrics["linear_probe"]["val_accuracy"] == first.metrics["linear_probe"]["val_accuracy"]
    # The head starts from the probe: the dense weights before training are the cached ones.
    other_split = train(TrainSpec(**{**spec.to_dict(), "split_seed": 5}), workspace, run_dir=workspace.root / "c")
    assert other_split.metrics["linear_probe"]["fitted_here"] is True  # another split, another probe
    rand = train(TrainSpec(**{**spec.to_dict(), "head_init": "random"}), workspace, run_dir=workspace.root / "d")
    assert "linear_probe" not in rand.metrics


def test_two_phase_from_the_probe_skips_its_own_head_phase(workspace):
    add_tiny_dataset(workspace)
    spec = TrainSpec(dataset="tiny", weights=None, image_size=32, batch_size=8, epochs=2, method="two_phase",
                     freeze_depth=14)
    res = train(spec, workspace, run_dir=workspace.root / "a")
    assert [h["phase"] for h in res.history] == ["fine_tune", "fine_tune"]
    res = train(TrainSpec(**{**spec.to_dict(), "head_init": "random"}), workspace, run_dir=workspace.root / "b")
    assert [h["phase"] for h in res.history] == ["head", "fine_tune"]


def _create_slowly(root: str, count_file: str, hold: float) -> None:
    cache = ArrayCache(root)

    def make():
        with open(count_file, "a") as fh:
            fh.write("x")
        time.sleep(hold)
        return np.arange(6, dtype=np.float32)

    cache.get_or_create({"kind": "linear_probe", "k": 1}, make, exclusive=True)


def test_two_processes_needing_the_same_head_fit_it_once(tmp_path):
    count = tmp_path / "count"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_create_slowly, args=(str(tmp_path / "c"), str(count), 2.0)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert count.read_text() == "x"
    assert ArrayCache(tmp_path / "c").get({"kind": "linear_probe", "k": 1}).tolist() == list(range(6))


def test_a_worker_killed_while_fitting_the_head_leaves_nothing_half_written(tmp_path):
    count = tmp_path / "count"
    ctx = mp.get_context("spawn")
    victim = ctx.Process(target=_create_slowly, args=(str(tmp_path / "c"), str(count), 60.0))
    victim.start()
    deadline = time.time() + 60
    while not count.exists() and time.time() < deadline:
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    cache = ArrayCache(tmp_path / "c")
    assert cache.get({"kind": "linear_probe", "k": 1}) is None  # no entry, and no lock left held
    _create_slowly(str(tmp_path / "c"), str(count), 0.0)  # the next one rebuilds it at once
    assert count.read_text() == "xx"
    assert cache.get({"kind": "linear_probe", "k": 1}) is not None


# ------------------------------------------------------------------ nested subsets
def test_nested_subsets_are_stratified_nested_and_stable():
    rows = pd.DataFrame({"sha1": [f"{i:040x}" for i in range(300)]})
    y = np.repeat(np.arange(3), 100)
    small, mid = nested_subset(rows, y, 0.11), nested_subset(rows, y, 0.33)
    assert nested_subset(rows, y, 1.0) is None
    assert set(small) <= set(mid)
    assert np.bincount(y[small]).tolist() == [11, 11, 11] and np.bincount(y[mid]).tolist() == [33, 33, 33]
    # The same images whatever else is in the split: a subset depends on each image's hash only.
    more = pd.concat([rows, pd.DataFrame({"sha1": [f"{i:040x}" for i in range(1000, 1030)]})], ignore_index=True)
    y_more = np.concatenate([y, np.repeat(np.arange(3), 10)])
    again = nested_subset(more, y_more, 0.5)
    assert np.array_equal(again[again < 300], nested_subset(rows, y, 0.5)) or len(again) == 165


@pytest.mark.backend
def test_rung_epochs_train_on_the_subsets_then_all_the_data(workspace):
    add_tiny_dataset(workspace)
    spec = TrainSpec(dataset="tiny", weights=None, image_size=32, batch_size=4, epochs=1, method="fine_tune",
                     freeze_depth=12, subset_rungs=[0.3, 0.6])
    stages = []
    from tlcore.trainer import ProgressHooks

    res = train(spec, workspace, run_dir=workspace.root / "r", hooks=ProgressHooks(on_stage=stages.append))
    assert [(h["epoch"], h["rung"], h["train_fraction"]) for h in res.history] == [(1, 0, 0.3), (2, 1, 0.6),
                                                                                  (3, None, 1.0)]
    assert [s["rung"] for s in stages] == [0, 1, None]


# ------------------------------------------------------------------ rung pruner
def test_rung_pruner_keeps_one_in_reduction_factor():
    p = RungPruner(reduction_factor=3)
    assert p.promotes(0.5, [])  # the first is the best so far
    assert not p.promotes(0.5, [0.6])
    assert p.promotes(0.7, [0.6, 0.5])
    assert p.promotes(0.6, [0.7, 0.5, 0.4, 0.3, 0.2])  # n = 6 keeps 2
    assert not RungPruner(3, "minimize").promotes(0.7, [0.6, 0.5])


def test_rung_pruner_judges_only_rung_epochs_against_the_same_rung():
    study = optuna.create_study(direction="maximize", pruner=RungPruner(3))
    for v in (0.9, 0.8):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=v, intermediate_values={1: v},
            user_attrs={RUNGS_ATTR: [{"rung": 0, "fraction": 0.1, "epoch": 1, "value": v, "promoted": True}]}))
    trial = study.ask()
    trial.report(0.5, 1)
    assert not trial.should_prune()  # no rung recorded: an ordinary epoch is never pruned here
    trial.set_user_attr(RUNGS_ATTR, [{"rung": 0, "fraction": 0.1, "epoch": 1, "value": 0.5}])
    assert trial.should_prune()
    trial.set_user_attr(RUNGS_ATTR, [{"rung": 0, "fraction": 0.1, "epoch": 1, "value": 0.95}])
    assert not trial.should_prune()


def test_rung_pruner_never_prunes_a_seed_the_scout_queued():
    from tlcore.search import attrs

    study = optuna.create_study(direction="maximize", pruner=RungPruner(3))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE, value=0.9, intermediate_values={1: 0.82},
        user_attrs={RUNGS_ATTR: [{"rung": 0, "fraction": 0.1, "epoch": 1, "value": 0.82, "promoted": True}]}))
    study.enqueue_trial({"x": 1}, user_attrs={attrs.SEEDED: "scout"})
    study.enqueue_trial({"x": 2})
    for expected in (False, True):  # the seed goes on; a drawn trial as slow on the rung is pruned
        trial = study.ask()
        trial.report(0.75, 1)
        trial.set_user_attr(RUNGS_ATTR, [{"rung": 0, "fraction": 0.1, "epoch": 1, "value": 0.75}])
        assert trial.should_prune() is expected
        study.tell(trial, 0.75 if not expected else None,
                   state=optuna.trial.TrialState.PRUNED if expected else optuna.trial.TrialState.COMPLETE)


# ------------------------------------------------------------------ incremental feature cache
def test_deeper_features_come_from_the_cached_shallower_depth(workspace):
    add_tiny_dataset(workspace)
    base = dict(dataset="tiny", weights=None, image_size=32, batch_size=8, epochs=1, method="fine_tune",
                head_init="random")
    train(TrainSpec(**base, freeze_depth=7), workspace, run_dir=workspace.root / "a")
    res = train(TrainSpec(**base, freeze_depth=12), workspace, run_dir=workspace.root / "b")
    assert res.cache["features_from_shallower"] == 2  # train and val at depth 12 from depth 7
    clf = Classifier.build("efficientnet_lite0", num_classes=3, image_size=32, weights=None)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    direct = np.asarray(clf.split(12)[0](x, training=False))
    via = np.asarray(clf.segment(7, 12)(clf.split(7)[0](x, training=False), training=False))
    np.testing.assert_allclose(via, direct, rtol=1e-5, atol=1e-5)
    pooled = np.asarray(clf.segment(7, clf.num_blocks)(clf.split(7)[0](x, training=False), training=False))
    np.testing.assert_allclose(pooled, np.asarray(clf.split(clf.num_blocks)[0](x, training=False)), atol=1e-5)


@pytest.mark.backend
def test_a_rung_computes_only_its_subsets_features_and_the_next_stage_only_the_rest(workspace):
    add_tiny_dataset(workspace)
    from tlcore.trainer import ProgressHooks

    class Pruned(Exception):
        pass

    def stop_after_first_rung(rec):
        raise Pruned()

    base = dict(dataset="tiny", weights=None, image_size=32, batch_size=4, epochs=1, method="fine_tune",
                freeze_depth=12, head_init="random", seed=3)
    with pytest.raises(Pruned):  # a trial pruned at its first rung
        train(TrainSpec(**base, subset_rungs=[0.3, 0.6]), workspace, run_dir=workspace.root / "p",
              hooks=ProgressHooks(on_epoch=stop_after_first_rung))
    cache = ArrayCache(workspace.cache_dir / "features")
    subset_entries = [e for e in cache.entries() if "rows" in e["parts"] and e["parts"]["depth"] == 12]
    assert len(subset_entries) == 1  # the 30 % only: nothing was computed for the rest of the split
    n_small = int(subset_entries[0]["parts"]["rows"].split(":")[0])

    res = train(TrainSpec(**base, subset_rungs=[0.3, 0.6]), workspace, run_dir=workspace.root / "a")
    n_train = res.metrics["num_train"]
    # The 30 % came from the cache; the 60 % and then all the data computed only the rows they added.
    assert res.cache["feature_rows_computed"] == n_train - n_small  # (and the validation split was cached)
    assert not [e for e in cache.entries() if "rows" in e["parts"] and e["parts"]["depth"] == 12]  # now redundant

    # The same numbers as when the whole split's features were there from the start.
    cold = ArrayCache(workspace.cache_dir / "features")
    cold.clear()
    train(TrainSpec(**base, subset_rungs=None), workspace, run_dir=workspace.root / "full")
    again = train(TrainSpec(**base, subset_rungs=[0.3, 0.6]), workspace, run_dir=workspace.root / "b")
    assert again.cache["feature_rows_computed"] == 0
    for h1, h2 in zip(res.history, again.history):
        assert h1["val_loss"] == pytest.approx(h2["val_loss"], rel=1e-3, abs=1e-4)


def test_the_training_step_is_traced_once_when_its_state_is_built_first():
    from tlcore.trainer import _build_state

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's double tracing of a step that creates variables")
    traces = {}
    for built in (False, True):
        keras.backend.clear_session()
        clf = Classifier.build("efficientnet_lite0", num_classes=3, image_size=32, weights=None)
        clf.set_freeze_depth(14, batchnorm="train")
        prefix, trainable = clf.split(14)
        x = np.asarray(prefix(np.random.default_rng(0).uniform(0, 255, (10, 32, 32, 3)).astype("float32")))
        y = keras.utils.to_categorical(np.arange(10) % 3, 3)
        trainable.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=False)
        if built:
            _build_state(trainable, (x, y))
            assert trainable.optimizer.built and all(v.numpy() == 0 for v in trainable.metrics_variables)
        count, step = [], trainable.train_step
        trainable.train_step = lambda data, step=step, count=count: (count.append(1), step(data))[1]
        trainable.fit(x, y, batch_size=4, epochs=2, verbose=0)
        traces[built] = len(count)
    assert traces == {False: 2, True: 1}


# ------------------------------------------------------------------ specs
@pytest.mark.parametrize("bad, words", [
    (dict(subset_rungs=[0.5, 0.2]), "subset_rungs must be increasing data fractions"),
    (dict(subset_rungs=[0.0, 0.5]), "each in (0, 1)"),
    (dict(subset_rungs=[0.5, 1.0]), "each in (0, 1)"),
    (dict(reduction_factor=1), "reduction_factor must be an integer [2, 10]"),
    (dict(warmup_epochs=3), "warm-up must be shorter than the run"),
    (dict(fe_epochs=0), "fe_epochs must be an integer"),
    (dict(head_init="zeros"), "Unknown head_init"),
    (dict(batchnorm="off"), "Unknown batchnorm"),
    (dict(lr_ceiling_at_depth0=0), "lr_ceiling_at_depth0 must be a number in (0.0, 1.0]"),
    (dict(lr_ceiling_at_depth0=2.0), "lr_ceiling_at_depth0 must be a number in (0.0, 1.0]"),
])
def test_new_spec_fields_are_validated_with_a_clear_message(bad, words):
    with pytest.raises(ConfigError) as info:
        StudySpec(name="s", dataset="d", epochs=3, **bad)
    assert words in str(info.value)


def test_default_trials_use_the_probe_rungs_and_a_compute_budget():
    spec = StudySpec(name="s", dataset="d", n_trials=12)
    ft = spec.train_spec({"freeze_depth": 7, "learning_rate": 1e-3})
    assert (ft.head_init, ft.batchnorm, ft.subset_rungs, ft.epochs) == ("linear_probe", "train", [0.111, 0.333], 3)
    fe = spec.train_spec({"freeze_depth": 18, "learning_rate": 1e-3})  # all frozen: cheap epochs
    assert (fe.subset_rungs, fe.epochs, fe.early_stopping) == (None, 20, 3)
    assert StudySpec(name="s", dataset="d", n_trials=5).rungs() == [0.111]  # 9 > 5: one rung
    assert StudySpec(name="s", dataset="d", n_trials=2).rungs() == []
    assert probe_trial_params(spec) == {"freeze_depth": 18, "learning_rate": 1e-3}
    assert probe_trial_params(StudySpec(name="s", dataset="d", freeze_depth=[0, 9])) is None


def test_the_recipe_trial_fine_tunes_the_last_third_at_the_middle_of_its_rate_range():
    spec = StudySpec(name="s", dataset="d")  # EfficientNet-Lite0: 18 blocks
    depth_lr = recipe_trial_params(spec)
    assert depth_lr["freeze_depth"] == 12
    lo, hi = spec.lr_range("efficientnet_lite0", "fine_tune", 12)
    assert depth_lr["learning_rate"] == pytest.approx(math.sqrt(lo * hi)) and lo < depth_lr["learning_rate"] < hi
    assert recipe_trial_params(StudySpec(name="s", dataset="d", freeze_depth=[0, 9]))["freeze_depth"] == 9
    assert recipe_trial_params(StudySpec(name="s", dataset="d", freeze_depth=[16, 18]))["freeze_depth"] == 16
    assert recipe_trial_params(StudySpec(name="s", dataset="d", freeze_depth=[18, 18])) is None  # the probe
    assert recipe_trial_params(StudySpec(name="s", dataset="d", methods=["feature_extraction"])) is None
    assert recipe_trial_params(StudySpec(name="s", dataset="d", recipe_trial=False)) is None
    assert recipe_trial_params(StudySpec(name="s", dataset="d", methods=["feature_extraction", "two_phase"])) == {
        "method": "two_phase", "freeze_depth": 12, "learning_rate": pytest.approx(1e-3)}
    assert recipe_trial_params(StudySpec(name="s", dataset="d", freeze_depth=[12, 12],
                                         learning_rate=[1e-3, 1e-3])) is None  # nothing searched: nothing to fix
    stored = spec.to_dict()
    stored.pop("recipe_trial")
    assert StudySpec.from_stored({**stored, "version": 4}).recipe_trial is False  # older studies: as they were
    with pytest.raises(ConfigError, match="recipe_trial must be true or false"):
        StudySpec(name="s", dataset="d", recipe_trial="yes")


def test_the_learning_rate_ceiling_falls_with_the_unfrozen_depth():
    spec = StudySpec(name="s", dataset="d")  # [1e-4, 1e-2], ceiling 0.1 of the high end at depth 0
    highs = [spec.lr_range("efficientnet_lite0", "fine_tune", d)[1] for d in range(19)]
    assert highs[0] == pytest.approx(1e-3) and highs[18] == pytest.approx(1e-2)
    assert highs[9] == pytest.approx(10 ** -2.5)  # log-linear: the geometric middle at half depth
    assert all(a < b for a, b in zip(highs, highs[1:]))
    assert spec.lr_range("efficientnet_lite0", "two_phase", 0) == [1e-4, 1e-2]  # its phase 2 has its own factor
    assert StudySpec(name="s", dataset="d", lr_ceiling_at_depth0=None).lr_range(
        "efficientnet_lite0", "fine_tune", 0) == [1e-4, 1e-2]
    assert StudySpec(name="s", dataset="d", learning_rate=[5e-3, 1e-2]).lr_range(
        "efficientnet_lite0", "fine_tune", 0) == [5e-3, 5e-3]  # never below the low end

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    seen = []

    def objective(trial):
        p = spec.suggest(trial)
        seen.append((p["freeze_depth"], p["learning_rate"]))
        return p["learning_rate"]  # TPE pushes the rate up: the ceiling must hold it
    study.optimize(objective, n_trials=25)
    assert all(lr <= spec.lr_range("efficientnet_lite0", "fine_tune", d)[1] * (1 + 1e-9) for d, lr in seen)


def test_a_version_2_study_keeps_its_learning_rate_range():
    stored = StudySpec(name="s", dataset="d").to_dict()
    stored.pop("lr_ceiling_at_depth0")
    assert StudySpec.from_stored({**stored, "version": 2}).lr_ceiling_at_depth0 is None
    assert StudySpec.from_stored({**stored, "version": 3}).lr_ceiling_at_depth0 == 0.1


def test_a_version_3_study_keeps_its_constant_learning_rate():
    stored = StudySpec(name="s", dataset="d").to_dict()
    assert stored["lr_schedule"] == "cosine"  # the default since version 4
    stored.pop("lr_schedule")
    assert StudySpec.from_stored({**stored, "version": 3}).lr_schedule == "constant"
    assert StudySpec.from_stored({**stored, "version": 4}).lr_schedule == "cosine"
    spec = StudySpec(name="s", dataset="d")
    assert spec.train_spec({"freeze_depth": 7, "learning_rate": 1e-3}).lr_schedule == "cosine"


def test_a_study_stored_before_version_2_keeps_its_old_training(workspace):
    add_tiny_dataset(workspace)
    study = create_study(workspace, tiny_spec("old"))
    old = tiny_spec("old").to_dict()
    for key in ("version", "head_init", "batchnorm", "subset_rungs", "reduction_factor", "fe_epochs",
                "probe_first", "warmup_epochs", "divergence_guard"):
        old.pop(key)
    study.set_user_attr("tl_spec", old)
    spec = load_spec(workspace, "old")
    assert (spec.version, spec.head_init, spec.batchnorm, spec.subset_rungs) == (1, "random", "frozen", None)
    load_study(workspace, "old")  # opens


def test_a_study_runs_the_probe_trial_first_and_records_rungs(workspace):
    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("rungs", freeze_depth=[10, 18], pruner="successive_halving",
                                      subset_rungs=[0.4], reduction_factor=2, n_trials=4, epochs=1,
                                      probe_first=True, recipe_trial=True, head_init="linear_probe"))
    run_worker(workspace, "rungs", log=lambda s: None)
    trials = load_study(workspace, "rungs").get_trials()
    assert trials[0].params["freeze_depth"] == 18  # feature extraction from the probe
    assert trials[1].params["freeze_depth"] == 12  # then the recipe: the last third fine-tuned
    assert trials[0].state == optuna.trial.TrialState.COMPLETE
    with_rungs = [t for t in trials if t.user_attrs.get(RUNGS_ATTR)]
    assert with_rungs and all(t.user_attrs[RUNGS_ATTR][0]["fraction"] == 0.4 for t in with_rungs)
    for t in with_rungs:
        promoted = t.user_attrs[RUNGS_ATTR][-1]["promoted"]
        assert (t.state == optuna.trial.TrialState.PRUNED) == (not promoted) or DIVERGED_ATTR in t.user_attrs


def test_a_diverged_trial_is_recorded_as_such_and_costs_no_more_epochs(workspace, monkeypatch):
    import tlcore.trainer as trainer_mod

    def check(self, history):
        if history[-1]["epoch"] == 1:
            raise TrainingDiverged("validation accuracy 0.080 after epoch 1 is at chance (test)", history=history)

    monkeypatch.setattr(trainer_mod._DivergenceGuard, "check", check)
    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("div", divergence_guard=True, n_trials=1, epochs=3))
    run_worker(workspace, "div", log=lambda s: None)
    (t,) = load_study(workspace, "div").get_trials()
    assert t.state == optuna.trial.TrialState.PRUNED
    assert t.user_attrs[DIVERGED_ATTR] == "validation accuracy 0.080 after epoch 1 is at chance (test)"
    assert [h["epoch"] for h in t.user_attrs["tl_history"]] == [1]  # stopped after its first epoch
    assert list(t.intermediate_values) == [1]  # the sampler sees the value it stopped at


def test_warmup_schedule_rises_then_holds_or_decays():
    from tlcore.trainer import WarmupSchedule

    warm = WarmupSchedule(1e-3, warmup_steps=4)
    assert [round(float(warm(s)), 6) for s in (0, 1, 3, 10)] == [0.00025, 0.0005, 0.001, 0.001]
    both = WarmupSchedule(1e-3, warmup_steps=2, decay_steps=10)
    assert float(both(0)) == pytest.approx(0.5e-3 * 1.0)
    assert float(both(5)) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(both(10)) == pytest.approx(0.0, abs=1e-12)
    assert WarmupSchedule.from_config(both.get_config()).get_config() == both.get_config()
