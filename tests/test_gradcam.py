"""tlcore.gradcam: the autodiff-free Grad-CAM equals real Grad-CAM; heatmaps and overlays."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.helpers.runs import TINY_CLASSES, tiny_run
from tlcore.errors import ConfigError
from tlcore.gradcam import GradCam, colormap, gradcam, overlay
from tlcore.predict import load_model, predict_arrays, prepare_image

# Shares the session's tiny trained run (tests/helpers/runs.py): one pytest-xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_model(tiny_run(tmp_path_factory))


@pytest.fixture(scope="module")
def x(loaded) -> np.ndarray:
    photos = loaded.run_dir.parent.parent / "photos"
    files = [f for c in TINY_CLASSES for f in sorted((photos / c).glob("*.png"))[:2]]
    noise = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    return np.concatenate([np.stack([prepare_image(loaded, f) for f in files]), noise])


def autodiff_gradcam(model, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Textbook Grad-CAM with autodiff: d(pre-softmax logit)/d(feature map), spatially averaged."""
    features = keras.Model(model.inputs[0], model.get_layer("pool").input)
    head = [model.get_layer(n) for n in ("pool", "head_dropout", "classifier")]
    fmap = keras.ops.convert_to_numpy(features(x.astype(np.float32), training=False))

    def score(a):
        for layer in head:
            a = layer(a, training=False) if layer.name == "head_dropout" else layer(a)
        return keras.ops.sum(keras.ops.take_along_axis(a, keras.ops.convert_to_tensor(classes[:, None]), axis=1))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        a = tf.constant(fmap)
        with tf.GradientTape() as tape:
            tape.watch(a)
            s = score(a)
        grads = tape.gradient(s, a).numpy()
    elif backend == "jax":
        import jax

        grads = np.asarray(jax.grad(lambda a: score(a))(fmap))
    else:
        pytest.skip(f"no autodiff reference written for the {backend} backend")
    alpha = grads.mean(axis=(1, 2))  # N × K
    cam = np.maximum(np.einsum("nhwk,nk->nhw", fmap.astype(np.float64), alpha.astype(np.float64)), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)


@pytest.mark.backend
def test_equals_autodiff_gradcam(loaded, x):
    cam = GradCam(loaded.model)
    res = cam.explain(x)
    assert res.raw.shape == (len(x), 2, 2)  # EfficientNet-Lite0 at 64 px: a 2×2 feature map
    ref = autodiff_gradcam(loaded.model, x, res.class_indices)
    assert np.abs(res.raw - ref).max() < 1e-4
    # ... for any class, not only the predicted one
    other = (res.class_indices + 1) % 3
    res2 = cam.explain(x, other)
    assert np.abs(res2.raw - autodiff_gradcam(loaded.model, x, other)).max() < 1e-4


@pytest.mark.backend
def test_equals_autodiff_gradcam_on_a_finer_map(tmp_path):
    """At 128 px the map is 4×4, where the spatial pattern matters (random head, no training)."""
    from tlcore.model import Classifier

    clf = Classifier.build("efficientnet_lite0", num_classes=4, image_size=128, weights=None)
    x = np.random.default_rng(2).integers(0, 256, (3, 128, 128, 3)).astype(np.float32)
    res = GradCam(clf.model).explain(x, [0, 1, 3])
    ref = autodiff_gradcam(clf.model, x, np.array([0, 1, 3]))
    assert res.raw.shape == (3, 4, 4)
    assert np.abs(res.raw - ref).max() < 1e-4


def test_heatmaps(loaded, x):
    res = GradCam(loaded.model).explain(x)
    assert res.heatmaps.shape == (len(x), 64, 64) and res.heatmaps.dtype == np.float32
    assert res.heatmaps.min() >= 0.0 and res.heatmaps.max() <= 1.0
    for raw in res.raw:
        assert raw.max() == pytest.approx(1.0) or raw.max() == 0.0
    np.testing.assert_allclose(res.probabilities, predict_arrays(loaded, x, calibrated=False), atol=1e-5)
    np.testing.assert_array_equal(res.class_indices, res.probabilities.argmax(axis=1))
    # With the run's temperature (as the pages build it) its probabilities are predict's calibrated ones.
    calibrated = GradCam(loaded.model, temperature=loaded.temperature).explain(x)
    np.testing.assert_allclose(calibrated.probabilities, predict_arrays(loaded, x), atol=1e-5)
    np.testing.assert_array_equal(calibrated.class_indices, res.class_indices)
    np.testing.assert_allclose(gradcam(loaded.model, x[:2]), res.heatmaps[:2], atol=1e-5)


def test_class_index_validated(loaded, x):
    with pytest.raises(ConfigError, match="class_indices"):
        GradCam(loaded.model).explain(x, 3)
    with pytest.raises(ConfigError, match="N×S×S×3"):
        GradCam(loaded.model).explain(np.zeros((1, 32, 32, 3)))


def test_needs_the_workbench_head():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ConfigError, match="pool"):
        GradCam(model)


def test_colormap_runs_from_blue_to_red():
    lo, mid, hi = colormap(np.array([0.0, 0.5, 1.0]))
    assert lo[2] > lo[0] and hi[0] > hi[2]  # cold blue end, hot red end
    assert mid[1] > 150  # greenish-yellow middle
    assert colormap(np.zeros((3, 4))).shape == (3, 4, 3)


def test_overlay():
    img = np.full((16, 16, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = overlay(img, heat, alpha=0.5)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(overlay(img, heat, alpha=0.0), img)
    full = overlay(img, np.ones((16, 16)), alpha=1.0)
    assert (full == colormap(np.ones(1))[0]).all()
    assert overlay(img[..., 0], heat).shape == (16, 16, 3)  # grayscale in, RGB out
    with pytest.raises(ConfigError, match="alpha"):
        overlay(img, heat, alpha=1.5)
    with pytest.raises(ConfigError, match="uint8"):
        overlay(img.astype(np.float32), heat)
