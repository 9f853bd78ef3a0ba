"""The trainer: methods, freeze depth, feature cache equivalence, artifacts, bad input.

Tests marked ``backend`` exercise backend-specific behaviour (freezing, splitting,
the cache equivalence, the phases, saving and reloading, determinism); scripts/test.sh
runs them under TensorFlow and again under JAX.
"""

import errno

import keras
import numpy as np
import pytest

from tlcore.config import TrainSpec
from tlcore.datasets import ensure_demo
from tlcore.errors import ConfigError, DatasetError, NotFoundError, WorkspaceError
from tlcore.model import Classifier
from tlcore.trainer import ProgressHooks, phases_for, train


@pytest.fixture
def demo_ws(workspace):
    ensure_demo(workspace)
    return workspace


def small(**kw):
    # A random backbone learns little in two epochs: no linear-probe head (tests/test_search_speed.py has
    # its own tests) and no divergence guard, so these tests see the phases and caches alone.
    base = dict(dataset="demo", image_size=48, epochs=2, weights=None, batch_size=32, seed=1, head_init="random",
                divergence_guard=False)
    base.update(kw)
    return TrainSpec(**base)


def test_phases_for_each_method():
    assert phases_for(small(method="feature_extraction"), 18) == [
        {"name": "head", "depth": 18, "start": 0, "end": 2, "lr": 1e-3}]
    assert phases_for(small(method="fine_tune", freeze_depth=5), 18)[0]["depth"] == 5
    two = phases_for(small(method="two_phase", freeze_depth=9, epochs=5, head_epochs=2, fine_tune_factor=0.1), 18)
    assert [(p["depth"], p["start"], p["end"]) for p in two] == [(18, 0, 2), (9, 2, 5)]
    assert two[1]["lr"] == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="between 0 and 18"):
        phases_for(small(method="fine_tune", freeze_depth=19), 18)
    # Without a depth, fine_tune and two_phase train the last third (they trained the head alone, silently).
    assert phases_for(small(method="fine_tune"), 18)[0]["depth"] == 12
    assert [p["depth"] for p in phases_for(small(method="two_phase", epochs=3), 18)] == [18, 12]
    assert phases_for(small(method="feature_extraction", freeze_depth=3), 18)[0]["depth"] == 18


def test_two_phase_head_epochs_range_says_what_is_allowed():
    with pytest.raises(ConfigError, match=r"head_epochs must be an integer \[1, 1\]"):
        small(method="two_phase", epochs=2, head_epochs=2)
    assert small(method="two_phase", epochs=2, head_epochs=1).head_epochs == 1
    assert small(method="fine_tune", epochs=2, head_epochs=2).head_epochs == 2


@pytest.mark.backend
def test_freeze_depth_semantics():
    clf = Classifier.build("efficientnet_lite0", num_classes=3, image_size=48, weights=None)
    n = clf.num_blocks
    counts = []
    for k in (0, n // 2, n):
        clf.set_freeze_depth(k)
        assert clf.trainable_backbone_blocks() == [i >= k for i in range(n)]
        counts.append(sum(int(np.prod(w.shape)) for w in clf.model.trainable_weights))
    assert counts[0] > counts[1] > counts[2] > 0
    head_params = 1280 * 3 + 3
    assert counts[2] == head_params
    # With batchnorm="frozen", BatchNorm (and stochastic depth) run in inference mode even when training;
    # with "train" (the default) the unfrozen blocks' BatchNorm uses batch statistics; frozen blocks never do.
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 3)).astype("float32")
    no_dropout = keras.Model(clf.model.inputs[0], clf.model.get_layer("pool").output)
    for depth, mode, same in ((0, "frozen", True), (0, "train", False), (n, "train", True)):
        clf.set_freeze_depth(depth, batchnorm=mode)
        a = np.asarray(no_dropout(x, training=True))
        b = np.asarray(no_dropout(x, training=False))
        assert np.allclose(a, b, atol=1e-5) == same, (depth, mode)


@pytest.mark.backend
def test_split_matches_full_model_at_every_depth():
    clf = Classifier.build("efficientnet_lite0", num_classes=4, image_size=48, weights=None)
    x = np.random.default_rng(1).uniform(0, 255, (2, 48, 48, 3)).astype("float32")
    full = np.asarray(clf.model(x, training=False))
    for k in (1, 7, clf.num_blocks):
        prefix, rest = clf.split(k)
        got = np.asarray(rest(prefix(x, training=False), training=False))
        assert np.allclose(got, full, atol=1e-5), k
    assert clf.split(0)[0] is None


@pytest.mark.backend
def test_feature_cache_gives_the_same_first_epoch_loss(demo_ws):
    with_cache = train(small(feature_cache=True), demo_ws)
    without = train(small(feature_cache=False), demo_ws)
    a, b = with_cache.history[0], without.history[0]
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-3)
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=2e-3)
    assert with_cache.cache["features"]["misses"] == 2  # train and val, computed once
    again = train(small(feature_cache=True), demo_ws)
    assert again.cache["features"]["hits"] == 2 and again.cache["features"]["misses"] == 0
    assert again.cache["images"]["hits"] == 3


@pytest.mark.backend
def test_same_seed_same_result(demo_ws):
    a = train(small(method="fine_tune", freeze_depth=14), demo_ws)
    b = train(small(method="fine_tune", freeze_depth=14), demo_ws)
    assert [h["train_loss"] for h in a.history] == pytest.approx([h["train_loss"] for h in b.history], rel=1e-5)


@pytest.mark.backend
def test_two_phase_curves_join(demo_ws):
    events = []
    r = train(small(method="two_phase", freeze_depth=12, epochs=3, head_epochs=1),
              demo_ws, hooks=ProgressHooks(on_epoch=events.append))
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert [h["phase"] for h in r.history] == ["head", "fine_tune", "fine_tune"]
    assert [h["freeze_depth"] for h in r.history] == [18, 12, 12]
    assert r.history[1]["learning_rate"] == pytest.approx(1e-4)
    assert len(events) == 3 and all(h["epoch_seconds"] > 0 for h in r.history)


@pytest.mark.backend
def test_the_saved_spec_names_the_depth_the_run_trained_at(demo_ws):
    r = train(small(method="fine_tune", epochs=1), demo_ws)  # no depth: the recipe's
    assert [h["freeze_depth"] for h in r.history] == [12]
    assert TrainSpec.from_yaml((r.run_dir / "spec.yaml").read_text()).freeze_depth == 12
    r = train(small(method="feature_extraction", freeze_depth=3, epochs=1), demo_ws)  # a depth it does not use
    assert TrainSpec.from_yaml((r.run_dir / "spec.yaml").read_text()).freeze_depth is None


def test_short_run_on_demo_clearly_beats_chance(demo_ws):
    r = train(TrainSpec(dataset="demo", image_size=64, epochs=3, learning_rate=3e-3, seed=0), demo_ws)
    assert r.metrics["best_val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert r.metrics["test_accuracy"] > 0.5


@pytest.mark.backend
def test_run_artifacts_and_reload(demo_ws):
    r = train(small(epochs=1), demo_ws)
    for name in ("model.keras", "history.json", "metrics.json", "spec.yaml", "labels.txt", "data.json"):
        assert (r.run_dir / name).is_file(), name
    assert not list(r.run_dir.parent.glob(".*.partial"))
    model = keras.saving.load_model(r.run_dir / "model.keras", safe_mode=True, compile=False)
    assert TrainSpec.from_yaml((r.run_dir / "spec.yaml").read_text()) == small(epochs=1)
    labels = (r.run_dir / "labels.txt").read_text().split("\n")[:-1]
    assert labels == r.class_names and model.output.shape[-1] == len(labels)
    assert r.metrics["test"]["confusion_matrix"] and len(r.metrics["test"]["per_class"]) == 10


@pytest.mark.backend
def test_calibration_is_fitted_on_the_validation_split_and_stored(demo_ws):
    """metrics.json's ``calibration``: T fitted on the saved model's validation output, ECE on its test output."""
    import json
    import math

    from tlcore.calibration import apply_temperature, expected_calibration_error, fit_temperature
    from tlcore.predict import load_model, predict_arrays
    from tlcore.trainer import prepare_data

    spec = small(epochs=1)
    r = train(spec, demo_ws)
    cal = json.loads((r.run_dir / "metrics.json").read_text())["calibration"]
    assert cal == r.metrics["calibration"]
    for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after"):
        assert isinstance(cal[k], float) and math.isfinite(cal[k]), k
        assert isinstance(cal["val"][k], float) and math.isfinite(cal["val"][k]), k
    assert 0.05 <= cal["temperature"] <= 20.0
    assert (cal["split"], cal["fitted_on"]) == ("test", "val")
    assert cal["num_samples"] == r.metrics["num_test"] and cal["val"]["num_samples"] == r.metrics["num_val"]
    assert cal["accuracy"] == pytest.approx(r.metrics["test_accuracy"])
    assert len(cal["bins"]) == 15
    for side in ("before", "after"):
        assert sum(b[side]["count"] for b in cal["bins"]) == cal["num_samples"] > 0

    data = prepare_data(demo_ws, spec)
    loaded = load_model(r.run_dir)
    assert loaded.temperature == cal["temperature"]
    val_raw = predict_arrays(loaded, data.x["val"], calibrated=False)
    assert fit_temperature(val_raw, data.y["val"]) == pytest.approx(cal["temperature"], rel=2e-2)
    test_raw = predict_arrays(loaded, data.x["test"], calibrated=False)
    assert expected_calibration_error(test_raw, data.y["test"]) == pytest.approx(cal["ece_before"], abs=1e-6)
    after = expected_calibration_error(apply_temperature(test_raw, cal["temperature"]), data.y["test"])
    assert after == pytest.approx(cal["ece_after"], abs=1e-6)


def test_class_weights_and_early_stopping(demo_ws):
    r = train(small(epochs=6, class_weights=True, early_stopping=1, learning_rate=0.5), demo_ws)
    assert 2 <= len(r.history) <= 6
    assert r.metrics["epochs_run"] == len(r.history)


def test_bad_input(demo_ws, tmp_path):
    with pytest.raises(NotFoundError, match="No dataset"):
        train(small(dataset="nope"), demo_ws)
    with pytest.raises(ConfigError, match="between 0 and 18"):
        train(small(method="fine_tune", freeze_depth=40), demo_ws)
    with pytest.raises(ConfigError):
        train(small(backbone="inception_v3", image_size=48), demo_ws)
    with pytest.raises(ConfigError, match="method"):
        TrainSpec(dataset="demo", method="magic")
    # No validation images.
    with pytest.raises(DatasetError, match="val split is empty"):
        train(small(val_fraction=0.0), demo_ws)


def test_full_disk_while_saving_keeps_earlier_runs(demo_ws, monkeypatch):
    first = train(small(epochs=1), demo_ws)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full)
    with pytest.raises(WorkspaceError, match="disk is full|Could not save"):
        train(small(epochs=1), demo_ws)
    monkeypatch.undo()
    assert (first.run_dir / "model.keras").is_file()
    assert not list(first.run_dir.parent.glob(".*.partial"))


def test_disk_full_while_writing_a_run_names_it_and_leaves_earlier_runs_loadable(demo_ws, monkeypatch):
    """ENOSPC from the OS (at fsync, where a full disk often shows) while the run's files are written."""
    import os

    from tlcore.predict import load_model, predict_arrays

    first = train(small(epochs=1), demo_ws)

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(WorkspaceError) as info:
        train(small(epochs=1), demo_ws)  # the same spec: both caches hit, so the first write is the run's
    monkeypatch.undo()
    assert str(info.value).startswith("The disk is full: could not write demo-")
    assert f"Received: {demo_ws.models_dir}." in str(info.value)
    assert "Free some space" in info.value.fix and "earlier files are intact" in info.value.fix
    assert [p.name for p in demo_ws.models_dir.iterdir()] == [first.run_dir.name]  # no partial folder
    loaded = load_model(first.run_dir)
    assert loaded.class_names == first.class_names
    probs = predict_arrays(loaded, np.zeros((1, 48, 48, 3), np.uint8))
    assert probs.shape == (1, len(first.class_names))


def test_unwritable_cache_is_a_clear_error(demo_ws):
    cache = demo_ws.root / "cache"
    cache.mkdir(exist_ok=True)
    (cache / "images").write_text("a file where the folder should be")
    with pytest.raises(WorkspaceError):
        train(small(epochs=1), demo_ws)


def test_augmentation_with_cached_copies_and_on_the_fly(demo_ws):
    cached = train(small(augment="light", aug_copies=2, epochs=3), demo_ws)
    # Two augmented train copies plus the val features, computed once each.
    assert cached.cache["features"]["misses"] == 3
    assert len(cached.history) == 3
    again = train(small(augment="light", aug_copies=2, epochs=3), demo_ws)
    assert again.cache["features"]["hits"] == 3
    assert [h["train_loss"] for h in again.history] == pytest.approx([h["train_loss"] for h in cached.history],
                                                                       rel=1e-4)
    exact = train(small(augment="light", aug_copies=0, epochs=1), demo_ws)
    assert exact.cache["features"]["misses"] == 0 and exact.cache["features"]["hits"] == 0
    with pytest.raises(NotFoundError, match="pipeline|augment"):
        train(small(augment="no-such-pipeline"), demo_ws)


def test_cosine_schedule_trains_and_bad_schedules_are_refused(demo_ws):
    with pytest.raises(ConfigError, match="learning-rate schedule"):
        small(lr_schedule="linear")
    res = train(small(lr_schedule="cosine", method="two_phase", epochs=2, freeze_depth=16), demo_ws)
    assert [h["phase"] for h in res.history] == ["head", "fine_tune"]
    assert TrainSpec.from_yaml((res.run_dir / "spec.yaml").read_text()).lr_schedule == "cosine"


def test_the_batch_counter_never_passes_the_number_of_batches(demo_ws):
    """Cached features run 8 steps per call; with a feed of a length 8 does not divide, Keras reports
    a step past the end on the epoch's last call ("batch 72/66" on the Search page)."""
    seen = []
    r = train(small(method="feature_extraction", batch_size=5),
              demo_ws, hooks=ProgressHooks(on_batch=lambda e, b, n, logs: seen.append((e, b, n))))
    num_batches = -(-r.metrics["num_train"] // 5)
    assert num_batches % 8, "the demo's train split no longer shows the case: change the batch size"
    assert {n for _, _, n in seen} == {num_batches}
    for epoch in {e for e, _, _ in seen}:
        assert max(b for e, b, _ in seen if e == epoch) == num_batches


def test_full_batches_fill_the_short_last_batch_and_still_read_every_row():
    """Where the step is compiled (JAX, XLA on a GPU), a short last batch is a second shape to compile."""
    from tlcore.trainer import _Batches

    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10) % 2
    plain = _Batches([x], y, 2, batch_size=4, seed=0)
    assert [len(plain[i][0]) for i in range(len(plain))] == [4, 4, 2]
    full = _Batches([x], y, 2, batch_size=4, seed=0, full_batches=True)
    for _ in range(3):  # each epoch its own order
        batches = [full[i] for i in range(len(full))]
        assert [len(b[0]) for b in batches] == [4, 4, 4]
        rows = np.concatenate([b[0][:, 0] for b in batches]).astype(int)
        assert set(rows) == set(range(10)) and len(rows) == 12
        for xb, yb in batches:  # labels still follow their rows
            np.testing.assert_array_equal(yb.argmax(axis=1), xb[:, 0].astype(int) % 2)
        full.on_epoch_end()
    few = _Batches([x[:3]], y[:3], 2, batch_size=4, seed=0, full_batches=True)  # fewer rows than one batch
    assert len(few) == 1 and len(few[0][0]) == 3


def test_a_split_dataset_without_training_images_says_where_they_are_missing(workspace, tmp_path):
    """Imported with --train-per-class 0, a split dataset's train split was empty, and the advice was to
    change the split fractions, which cannot give it training images."""
    from tests.helpers.imagegen import make_tree
    from tlcore.datasets import add_dataset

    root = workspace.root / "photos"
    make_tree(root / "test", {"cat": 3, "dog": 3})
    (root / "train" / "cat").mkdir(parents=True)
    add_dataset(workspace, "split", root)
    with pytest.raises(DatasetError, match="train split is empty") as info:
        train(small(dataset="split"), workspace)
    assert "train/ only, which holds no usable image" in info.value.fix and "--train-per-class" in info.value.fix


def test_images_deleted_since_the_scan_are_not_trained_on_from_the_cache(workspace):
    """Photos deleted after the scan were trained on all the same, from the image cache, without a word."""
    from tests.helpers.imagegen import make_tree
    from tlcore.cache import ArrayCache
    from tlcore.datasets import add_dataset
    from tlcore.trainer import prepare_data

    root = make_tree(workspace.root / "photos", {"cat": 6, "dog": 6})
    add_dataset(workspace, "pets", root)
    spec = small(dataset="pets")
    cache = ArrayCache(workspace.cache_dir / "images")
    assert len(prepare_data(workspace, spec, cache=cache).class_names) == 2  # decoded once: cached
    deleted = sorted((root / "dog").iterdir())[:2]
    for path in deleted:
        path.unlink()
    with pytest.raises(DatasetError, match="2 images of dataset 'pets' are gone since its last scan") as info:
        prepare_data(workspace, spec, cache=cache)
    assert all(f"dog/{p.name}" in str(info.value.received) for p in deleted)
    assert "datasets rescan pets" in info.value.fix
    root.rename(workspace.root / "moved")  # the whole folder: said so, with the ways out
    with pytest.raises(DatasetError, match="The folder of dataset 'pets' is missing") as info:
        prepare_data(workspace, spec, cache=cache)
    assert "--overwrite" in info.value.fix


def test_a_class_without_training_images_is_refused_not_trained_as_an_unlearnable_output(workspace):
    """A pre-split dataset whose val/ and test/ hold a class train/ lacks (here a misspelled "Cat" and a
    "bird") was trained with those classes as outputs it never learned, and their images as errors."""
    from tests.helpers.imagegen import make_tree
    from tlcore.datasets import add_dataset
    from tlcore.trainer import prepare_data

    root = workspace.root / "photos"
    make_tree(root / "train", {"cat": 4, "dog": 4})
    make_tree(root / "val", {"cat": 2, "dog": 2, "Cat": 2})
    make_tree(root / "test", {"cat": 2, "dog": 2, "bird": 3})
    add_dataset(workspace, "split", root)
    with pytest.raises(DatasetError, match="Classes 'Cat', 'bird' have no image in the train split") as info:
        prepare_data(workspace, small(dataset="split"))
    assert "Cat: 2 in validation" in str(info.value.received) and "bird: 3 in test" in str(info.value.received)
    assert "datasets exclude split" in info.value.fix
