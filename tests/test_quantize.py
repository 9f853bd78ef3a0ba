"""tlcore.quantize: data-aware rounding of convolution weights to TFLite's int8 grid.

Checked without TFLite: the copy's folded weights lie on the per-channel grid TFLite's converter
computes (so its nearest rounding reproduces them), each channel's scale is unchanged, the first
layer's output after ReLU6 is closer to the float model's than with nearest rounding, and the
original model is untouched.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlcore.errors import ConfigError
from tlcore.quantize import round_for_int8


def _conv_bn(x, layer, name, relu=True):
    x = layer(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu")(x) if relu else x


def _model(nested: bool) -> keras.Model:
    """stem conv (27 weights a filter) -> depthwise -> 1x1 projection, each with a BatchNorm,
    optionally as a nested model (as the trainer builds backbone + head)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = _conv_bn(inp, keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem"), "stem")
    x = _conv_bn(x, keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw"), "dw")
    x = _conv_bn(x, keras.layers.Conv2D(4, 1, use_bias=True, name="project"), "project", relu=False)
    body = keras.Model(inp, x, name="body")
    rng = np.random.default_rng(0)
    for layer in body.layers:  # BatchNorm gains up to ~50, as in EfficientNet-Lite0's stem
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 50.0, c).astype("float32"))
            layer.beta.assign(rng.normal(0, 1, c).astype("float32"))
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 4.0, c).astype("float32"))
    if not nested:
        out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
        return keras.Model(inp, out)
    outer_in = keras.Input((16, 16, 3))
    y = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(outer_in)
    y = keras.layers.GlobalAveragePooling2D()(body(y))
    return keras.Model(outer_in, keras.layers.Dense(3, activation="softmax", name="head")(y))


def _images(n=16) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (n, 16, 16, 3)).astype("float32")


def _layer(model: keras.Model, name: str):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _layer(layer, name)
            if found is not None:
                return found
        elif layer.name == name:
            return layer
    return None


def _folded(model, conv_name):
    conv, bn = _layer(model, conv_name), _layer(model, f"{conv_name}_bn")
    fold = keras.ops.convert_to_numpy(bn.gamma) / np.sqrt(keras.ops.convert_to_numpy(bn.moving_variance) + bn.epsilon)
    k = keras.ops.convert_to_numpy(conv.kernel)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        return (k[:, :, :, 0] * fold).reshape(-1, k.shape[2])
    return (k * fold).reshape(-1, k.shape[-1])


@pytest.mark.parametrize("nested", [False, True])
def test_folded_weights_land_on_the_int8_grid_with_each_channels_scale_unchanged(nested):
    model = _model(nested)
    before = [w.copy() for w in model.get_weights()]
    copy, report = round_for_int8(model, _images())
    assert report["layers"] == 3 and report["skipped"] == 0 and report["images"] == 16
    for name in ("stem", "dw", "project"):
        w, q = _folded(model, name), _folded(copy, name)
        scale = np.abs(w).max(axis=0) / 127.0
        np.testing.assert_allclose(np.abs(q).max(axis=0) / 127.0, scale, rtol=1e-5)  # TFLite's scale stays
        steps = q / scale
        np.testing.assert_allclose(steps, np.round(steps), atol=2e-3)  # on the grid: nearest rounding keeps them
        assert np.abs(steps).max() <= 127.0 + 1e-3
        assert np.all(np.abs(steps - w / scale) <= 1.0 + 1e-3)  # floor or ceil of each weight, nothing further
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the float model is untouched


def test_one_float_pass_for_the_convs_on_the_same_images_gives_the_same_rounding(monkeypatch):
    """The float model's activations come from one prefix pass per group of convs that look at the
    same images (``_float_group``); with no room for a group (a pass per conv, as before) the rounded
    weights are the same, bit for bit, and only the number of passes differs."""
    from tlcore import quantize

    calls = []
    prefix = quantize._prefix
    monkeypatch.setattr(quantize, "_prefix", lambda *a, **k: calls.append(len(a[1])) or prefix(*a, **k))
    grouped, _ = round_for_int8(_model(nested=False), _images())
    assert calls == [6]  # the float inputs and outputs of all 3 convs at once
    calls.clear()
    monkeypatch.setattr(quantize, "_GROUP_BYTES", 0)
    alone, _ = round_for_int8(_model(nested=False), _images())
    assert calls == [2] * 3
    for a, b in zip(grouped.get_weights(), alone.get_weights()):
        np.testing.assert_array_equal(a, b)


def _residual_model() -> keras.Model:
    """stem -> depthwise -> projection added back to the stem's output -> 1x1 conv, each with a BatchNorm."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    stem = _conv_bn(inp, keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem"), "stem")
    x = _conv_bn(stem, keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw"), "dw")
    x = _conv_bn(x, keras.layers.Conv2D(8, 1, use_bias=False, name="project"), "project", relu=False)
    x = keras.layers.Add(name="add")([stem, x])
    x = _conv_bn(x, keras.layers.Conv2D(4, 1, use_bias=False, name="after"), "after")
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def test_the_copys_inputs_from_the_last_convs_inputs_give_the_same_rounding(monkeypatch):
    """Each conv's input in the rounded copy runs only the layers after the inputs already known
    for the same images (``_RoundedInputs``), across a residual branch too; from the model's input
    every time (nothing kept) the rounded weights are the same, bit for bit."""
    from tlcore import quantize

    starts = []
    run = quantize._run
    monkeypatch.setattr(quantize, "_run", lambda i, o, v, **k: starts.append(len(i)) or run(i, o, v, **k))
    model = _residual_model()
    kept, report = round_for_int8(model, _images())
    assert report["layers"] == 4
    # the float pass, then the copy: the stem from the image, each later conv from the known inputs;
    # the conv after the residual add from two of them (the stem's output and the projection's input)
    assert starts == [1, 1, 1, 1, 2]
    starts.clear()
    monkeypatch.setattr(quantize, "_KEEP_INPUTS", 0)
    scratch, _ = round_for_int8(model, _images())
    assert starts == [1] * 5
    for a, b in zip(kept.get_weights(), scratch.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_stems_output_is_closer_to_the_float_model_than_with_nearest_rounding():
    model = _model(nested=False)
    x = _images(32)
    copy, _ = round_for_int8(model, x)
    nearest = keras.models.clone_model(model)
    nearest.set_weights(model.get_weights())
    conv, bn = _layer(nearest, "stem"), _layer(nearest, "stem_bn")
    fold = keras.ops.convert_to_numpy(bn.gamma) / np.sqrt(keras.ops.convert_to_numpy(bn.moving_variance) + bn.epsilon)
    k = keras.ops.convert_to_numpy(conv.kernel) * fold
    s = np.abs(k.reshape(-1, k.shape[-1])).max(axis=0) / 127.0
    conv.kernel.assign((np.round(k / s) * s / fold).astype("float32"))

    def stem(m):
        return np.asarray(keras.Model(m.inputs[0], _layer(m, "stem_relu").output)(x))

    ref = stem(model)
    err_nearest = float(((stem(nearest) - ref) ** 2).mean())
    err_aware = float(((stem(copy) - ref) ** 2).mean())
    assert err_aware < 0.8 * err_nearest, (err_aware, err_nearest)


def test_the_descent_lowers_the_layer_error_below_nearest_rounding_and_keeps_the_scale():
    from tlcore.quantize import _descend, _objective

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 27)) @ rng.normal(size=(27, 27))  # correlated inputs, as image patches are
    w = rng.normal(size=(27, 6)) * rng.uniform(0.1, 5.0, 6)

    def cost(q):
        e = x @ (q - w)
        return ((e - e.mean(axis=0)) ** 2).sum(axis=0)

    s = np.abs(w).max(axis=0) / 127.0
    nearest = np.round(w / s) * s
    q = _descend(w, *_objective(x, x, w))
    assert np.all(cost(q) <= cost(nearest) + 1e-9) and cost(q).sum() < 0.8 * cost(nearest).sum()
    np.testing.assert_allclose(np.abs(q).max(axis=0), np.abs(w).max(axis=0))


def test_a_model_without_conv_batchnorm_pairs_is_left_as_it_is():
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Dense(4)(inp)))
    copy, report = round_for_int8(model, np.ones((4, 8), "float32"))
    assert report["layers"] == 0 and "nearest rounding" in report["note"]
    for a, b in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_unknown_int8_rounding_is_refused_before_anything_is_loaded(tmp_path):
    from tlcore.export import export_model

    with pytest.raises(ConfigError) as exc:
        export_model(tmp_path / "no-such-run", tmp_path / "out", ("keras",), int8_rounding="stochastic")
    assert "data_aware" in exc.value.fix and "nearest" in exc.value.fix
    assert not (tmp_path / "out").exists()


def test_an_export_whose_rounding_fails_keeps_nearest_rounding_and_says_why(monkeypatch, tmp_path):
    from tlcore import export, quantize

    def broken(model, images, **_):
        raise ValueError("an unusual layer")

    monkeypatch.setattr(quantize, "round_for_int8", broken)
    path, report = export._rounded_saved_model(type("L", (), {"model": None})(), np.zeros((2, 8, 8, 3)), tmp_path)
    assert path is None and report["method"].startswith("nearest")
    assert "ValueError: an unusual layer" in report["note"] and not (tmp_path / "saved_model_int8").exists()


@pytest.mark.parametrize("kernel, stride, padding, dilation, side", [
    (3, 1, "same", 1, 16), (3, 2, "same", 1, 16), (5, 2, "same", 1, 15), (5, 1, "same", 1, 14),
    (3, 1, "valid", 1, 13), (3, 1, "same", 2, 12), (5, 2, "valid", 1, 17), (3, 2, "same", 1, 7)])
def test_a_depthwise_convs_taps_gathered_per_channel_are_its_patches(kernel, stride, padding, dilation, side):
    """The per-channel gather (TensorFlow's padding, the odd pixel after) against the patches
    TensorFlow's own depthwise conv computes with one-hot taps, for every output row and for a
    sample of them."""
    from tlcore.quantize import _DepthwiseTaps

    conv = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, dilation_rate=dilation)
    conv(keras.Input((side, side, 6)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, side, side, 6)).astype("float32")
    one_hot = np.zeros((kernel, kernel, 6, kernel * kernel), np.float32)  # output channel c * taps + tap
    for tap in range(kernel * kernel):
        one_hot[tap // kernel, tap % kernel, :, tap] = 1.0
    full = keras.ops.convert_to_numpy(keras.ops.depthwise_conv(x, one_hot, strides=stride, padding=padding,
                                                               dilation_rate=dilation))
    full = full.reshape(-1, 6, kernel * kernel)  # rows × channels × taps
    sample = rng.choice(len(full), size=min(len(full), 40), replace=False)
    for rows, expected in ((None, full), (sample, full[sample])):
        taps = _DepthwiseTaps(conv, x, rows)
        for c in range(6):
            np.testing.assert_allclose(taps.channel(c), expected[:, c, :], rtol=0, atol=1e-6)
