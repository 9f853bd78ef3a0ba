"""The backbone registry: every record builds, runs, splits into its blocks and fails offline
with a clear message; EfficientNet-Lite0 parity with PyTorch and its weights cache.

The tests over backbones are parametrised by ``list_backbones()``, so a new record
is tested without editing this file. Tests that load real ImageNet weights use
EfficientNet-Lite0's (installed with the workbench); keras.applications weights
are never downloaded here. Runs without torch: the reference logits come from
tests/fixtures/parity (made by scripts/make_parity_fixture.py). Backend-neutral
(TensorFlow or JAX).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from tlcore import backbones
from tlcore.backbones import _applications, _efficientnet_lite
from tlcore.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "effnet_lite0_parity.npz"
NAMES = backbones.list_backbones()
BUNDLED = [n for n in NAMES if backbones.get(n).bundled_weights]
KERAS_APPS = [n for n in NAMES if backbones.get(n).family == "keras_applications"]
# Pins of the backbones that exist today (a new record needs no entry here).
KNOWN_BLOCKS = {"efficientnet_lite0": 18, "mobilenet_v2": 18, "efficientnet_b0": 18, "resnet50": 17, "inception_v3": 12}


def _small(name: str) -> int:
    """An input side small enough to keep random-weight builds and forward passes quick."""
    return max(backbones.get(name).min_size, 64)


@pytest.fixture(scope="module")
def lite_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace cache holding the converted Lite0 weights (built once for the module)."""
    cache = tmp_path_factory.mktemp("cache")
    backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=cache)
    return cache


@pytest.fixture(scope="module")
def random_models() -> dict[str, keras.Model]:
    """Every backbone with random weights at a small size, pooled features."""
    return {n: backbones.build(n, input_shape=(_small(n), _small(n), 3), weights=None) for n in NAMES}


def _images(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, size=(n, size, size, 3)).astype("float32")


def _run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


# ------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", NAMES)
def test_every_record_is_complete_and_consistent(name: str) -> None:
    info = backbones.get(name)
    assert info.name == name and info.display_name and info.family in ("efficientnet_lite", "keras_applications")
    assert info.num_blocks == len(info.block_names) == len(info.block_ends) > 0
    assert len(set(info.block_names)) == info.num_blocks
    assert 0 < info.min_size <= info.default_size and info.feature_dim > 0
    assert isinstance(info.bundled_weights, bool) and callable(info.builder)
    assert info.preprocessing == info.preprocess.text and info.weights_sources == info.imagenet.describe()
    assert "weights='imagenet'" in info.weights_sources and "weights=None" in info.weights_sources
    if info.family == "keras_applications":
        assert isinstance(info.builder, _applications.KerasApplication)
        assert isinstance(info.imagenet, _applications.KerasWeights)


def test_registry_lists_bundled_backbones_first_and_keeps_the_known_ones() -> None:
    assert NAMES == sorted(NAMES, key=lambda n: (not backbones.get(n).bundled_weights, n))
    assert NAMES[0] == "efficientnet_lite0"
    for name, blocks in KNOWN_BLOCKS.items():
        assert backbones.get(name).num_blocks == blocks, name
    lite = backbones.get("efficientnet_lite0")
    assert lite.block_names[0] == "stem" and lite.block_names[1] == "block00" and lite.block_names[-1] == "head"
    assert lite.bundled_weights and lite.family == "efficientnet_lite" and lite.feature_dim == 1280
    assert backbones.get("resnet50").block_names[1:4] == ("conv2_block1", "conv2_block2", "conv2_block3")
    assert backbones.get("inception_v3").block_names[-1] == "mixed10"
    assert [backbones.get(n).feature_dim for n in ("resnet50", "inception_v3")] == [2048, 2048]
    assert backbones.get("inception_v3").min_size == 75 and backbones.get("inception_v3").default_size == 299


@pytest.mark.parametrize(
    "name,include_top,size,fname",
    [
        ("mobilenet_v2", False, 96, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"),
        ("mobilenet_v2", False, 100, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        ("mobilenet_v2", True, None, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
        ("resnet50", False, 64, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("resnet50", True, 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
        ("inception_v3", False, 75, "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("efficientnet_b0", False, 64, "efficientnetb0_notop.h5"),
        ("efficientnet_b0", True, 224, "efficientnetb0.h5"),
    ],
)
def test_keras_weights_files_are_the_ones_keras_downloads(name: str, include_top: bool, size: int | None,
                                                          fname: str) -> None:
    assert backbones.get(name).imagenet.file(include_top=include_top, size=size) == fname


def test_display_strings_are_derived_from_the_record() -> None:
    sources = backbones.get("mobilenet_v2").weights_sources
    assert "Keras downloads mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_<size>_no_top.h5 into" in sources
    assert "efficientnet_lite0_imagenet.weights.h5" in backbones.get("efficientnet_lite0").weights_sources
    assert backbones.get("resnet50").preprocessing == (
        "RGB 0-255 -> BGR, minus the ImageNet mean (103.939, 116.779, 123.68) (Caffe style)"
    )
    assert backbones.get("inception_v3").preprocessing == backbones.get("mobilenet_v2").preprocessing


def test_malformed_records_are_refused() -> None:
    lite = backbones.get("efficientnet_lite0")
    with pytest.raises(ValueError, match="equal length"):
        backbones.BackboneInfo(**{**_fields(lite), "block_ends": lite.block_ends[:-1]})
    with pytest.raises(ValueError, match="repeat"):
        backbones.BackboneInfo(**{**_fields(lite), "block_names": ("stem",) * lite.num_blocks})
    with pytest.raises(ValueError, match="min_size"):
        backbones.BackboneInfo(**{**_fields(lite), "min_size": 300})
    with pytest.raises(ValueError, match="sizes"):
        _applications.KerasWeights(notop="a_{size}_notop.h5", top="a_{size}.h5")


def _fields(info: backbones.BackboneInfo) -> dict[str, object]:
    return {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}


def test_unknown_backbone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown backbone.*efficientnet_lite0"):
        backbones.get("vgg99")


# -------------------------------------------------- EfficientNet-Lite0 parity
@pytest.mark.backend
@pytest.mark.parametrize("size", [224, 128])
def test_lite0_logits_match_the_pytorch_reference(lite_cache: Path, size: int) -> None:
    ref = np.load(FIXTURE)
    names = list(ref["names"])
    model = backbones.build("efficientnet_lite0", input_shape=(size, size, 3), include_top=True, cache_dir=lite_cache)
    logits = _run(model, ref[f"inputs_{size}"].astype("float32"))
    assert logits.shape == (len(names), 1000)
    np.testing.assert_allclose(logits, ref[f"logits_{size}"], atol=1e-3, rtol=0)
    top1 = logits.argmax(axis=1)
    assert 281 <= top1[names.index("chelsea")] <= 285  # a cat: tabby .. Egyptian cat
    assert top1[names.index("coffee")] == 967  # espresso


def test_lite0_features_pooled_max_and_unpooled_agree(lite_cache: Path) -> None:
    x = _images(96)
    fmap = _run(backbones.build("efficientnet_lite0", input_shape=(96, 96, 3), pooling=None, cache_dir=lite_cache), x)
    avg = _run(backbones.build("efficientnet_lite0", input_shape=(96, 96, 3), cache_dir=lite_cache), x)
    mx = _run(backbones.build("efficientnet_lite0", input_shape=(96, 96, 3), pooling="max", cache_dir=lite_cache), x)
    assert fmap.shape == (2, 3, 3, 1280) and avg.shape == mx.shape == (2, 1280)
    np.testing.assert_allclose(avg, fmap.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(mx, fmap.max(axis=(1, 2)), atol=1e-6)


def test_lite0_accepts_any_size_when_none(lite_cache: Path) -> None:
    model = backbones.build("efficientnet_lite0", input_shape=(None, None, 3), cache_dir=lite_cache)
    assert _run(model, _images(40, 1)).shape == (1, 1280)
    assert _run(model, _images(67, 1)).shape == (1, 1280)


# ---------------------------------------------------------- the weights cache
def test_weights_cache_is_written_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / "weights" / "efficientnet_lite0_imagenet.weights.h5"
    first = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, cache_dir=tmp_path)
    assert cached.is_file()
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name]  # no temporary files left
    mtime = cached.stat().st_mtime_ns

    def no_pth(path: object) -> None:
        raise AssertionError("the .pth was read although the cache is valid")

    monkeypatch.setattr(_efficientnet_lite, "read_legacy_torch_file", no_pth)
    second = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, cache_dir=tmp_path)
    assert cached.stat().st_mtime_ns == mtime
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "untagged"])
def test_a_damaged_cache_is_rebuilt_from_the_checkpoint(tmp_path: Path, lite_cache: Path, damage: str) -> None:
    good = lite_cache / "weights" / "efficientnet_lite0_imagenet.weights.h5"
    cached = tmp_path / "weights" / good.name
    cached.parent.mkdir()
    if damage == "truncate":
        cached.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "garbage":
        cached.write_bytes(b"not an hdf5 file")
    else:  # a valid Keras weights file, but of random weights and without our tags
        random = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, weights=None)
        random.save_weights(cached)
    model = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, cache_dir=tmp_path)
    reference = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, cache_dir=lite_cache)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert cached.stat().st_size == good.stat().st_size


def test_lite0_loads_a_user_pth_or_weights_file(tmp_path: Path, lite_cache: Path) -> None:
    pth = _efficientnet_lite.efficientnet_lite0_checkpoint_path()
    from_pth = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, weights=pth)
    reference = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), include_top=True, cache_dir=lite_cache)
    for a, b in zip(from_pth.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a no-top model's own weights file loads back into a no-top model
    notop = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), weights=None)
    notop.save_weights(tmp_path / "mine.weights.h5")
    again = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), weights=tmp_path / "mine.weights.h5")
    for a, b in zip(notop.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "bad.weights.h5").write_bytes(b"nope")
    with pytest.raises(ConfigError, match="Could not load EfficientNet-Lite0 weights"):
        backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), weights=tmp_path / "bad.weights.h5")


def test_random_lite0_is_reproducible_with_a_seed() -> None:
    keras.utils.set_random_seed(3)
    a = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), weights=None).get_weights()
    keras.utils.set_random_seed(3)
    b = backbones.build("efficientnet_lite0", input_shape=(32, 32, 3), weights=None).get_weights()
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    kernel = a[0]  # stem conv, (3, 3, 3, 32): variance ~ 2 / fan_out
    assert kernel.shape == (3, 3, 3, 32) and 0.5 < kernel.std() / np.sqrt(2 / (9 * 32)) < 1.5


# ------------------------------------------------------------- every backbone
@pytest.mark.parametrize("name", NAMES)
def test_every_backbone_builds_and_runs_with_random_weights(random_models: dict[str, keras.Model], name: str) -> None:
    model, info = random_models[name], backbones.get(name)
    out = _run(model, _images(_small(name)))
    assert out.shape == (2, info.feature_dim) and np.isfinite(out).all()
    assert model.name == name


@pytest.mark.parametrize("name", NAMES)
def test_include_top_gives_imagenet_logits(name: str) -> None:
    size = _small(name)
    model = backbones.build(name, input_shape=(size, size, 3), include_top=True, weights=None)
    out = _run(model, _images(size))
    assert out.shape == (2, 1000) and np.isfinite(out).all()
    assert not np.allclose(out.sum(axis=1), 1.0)  # logits, not softmax


@pytest.mark.parametrize("name", KERAS_APPS)
def test_preprocessing_inside_the_model_matches_keras(random_models: dict[str, keras.Model], name: str) -> None:
    """Our model on raw RGB equals the bare keras.applications model on ``preprocess_input(x)``."""
    ours, info = random_models[name], backbones.get(name)
    constructor = info.builder.constructor
    size = _small(name)
    bare = constructor(include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg")
    bare.set_weights(ours.get_weights())
    preprocess_input = sys.modules[constructor.__module__].preprocess_input  # keras.applications.<x>.preprocess_input
    x = _images(size)
    expected = _run(bare, np.asarray(preprocess_input(x.copy())))
    np.testing.assert_allclose(_run(ours, x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_a_saved_model_reloads_with_its_preprocessing_and_blocks(
    tmp_path: Path, random_models: dict[str, keras.Model], name: str
) -> None:
    model, info = random_models[name], backbones.get(name)
    model.save(tmp_path / f"{name}.keras")
    again = keras.models.load_model(tmp_path / f"{name}.keras")
    x = _images(_small(name))
    np.testing.assert_allclose(_run(again, x), _run(model, x), atol=1e-5)
    assert len(backbones.block_layers(again, info)) == info.num_blocks


# ------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_sizes_are_config_errors(name: str) -> None:
    info = backbones.get(name)
    d = info.default_size
    with pytest.raises(ConfigError, match=f"at least {info.min_size} x {info.min_size}"):
        backbones.build(name, input_shape=(info.min_size - 1, d, 3), weights=None)
    for shape in ((d, d, 1), (d, d), str(d)):
        with pytest.raises(ConfigError, match=r"\(height, width, 3\)"):
            backbones.build(name, input_shape=shape, weights=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", KERAS_APPS)
def test_keras_application_top_needs_a_fixed_size(name: str) -> None:
    with pytest.raises(ConfigError, match="fixed input size"):
        backbones.build(name, input_shape=(None, None, 3), include_top=True, weights=None)


def test_other_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pooling"):
        backbones.build("efficientnet_lite0", weights=None, pooling="mean")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="does not exist") as info:
        backbones.build("resnet50", weights=tmp_path / "missing.h5")
    assert "--weights none" in info.value.fix and "None" not in info.value.fix  # the CLI's word, not Python's
    with pytest.raises(ConfigError, match="weights must be"):
        backbones.build("resnet50", weights=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="include_top must be"):
        backbones.build("resnet50", include_top="yes", weights=None)  # type: ignore[arg-type]


# ------------------------------------------------------------ offline paths
@pytest.fixture
def offline_keras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Keras cache and no network: every download raises URLError."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(home))  # Keras reads KERAS_HOME at import

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    return home


def _offline_cases() -> list[tuple[str, bool, int]]:
    """Per keras.applications record: no top at its smallest size (and at the first size with its own
    file, where files are per size), and the ImageNet top at its default size."""
    cases = []
    for name in KERAS_APPS:
        info = backbones.get(name)
        sizes = {info.min_size, *info.imagenet.sizes[:1]}
        cases += [(name, False, size) for size in sorted(sizes)] + [(name, True, info.default_size)]
    return cases


@pytest.mark.parametrize("name,include_top,size", _offline_cases())
def test_offline_imagenet_for_keras_applications_says_which_file_and_where(
    offline_keras: Path, name: str, include_top: bool, size: int
) -> None:
    fname = backbones.get(name).imagenet.file(include_top=include_top, size=size)
    with pytest.raises(ConfigError) as info:
        backbones.build(name, input_shape=(size, size, 3), include_top=include_top)
    message = str(info.value)
    assert re.search(r"from https?://\S+/" + re.escape(fname), message), message  # the file Keras asked for
    assert fname in message and str(offline_keras / "models") in message
    assert "weights=PATH" in message and "could not be downloaded" in message
    assert not backbones.imagenet_weights_available(name, include_top=include_top, size=size)
    assert list((offline_keras / "models").iterdir()) == []  # no half-downloaded file left


def test_imagenet_found_in_the_keras_cache_works_offline(
    offline_keras: Path, random_models: dict[str, keras.Model]
) -> None:
    from keras.src.legacy.saving import legacy_h5_format  # the format Keras' own downloads use

    # MobileNetV2: Keras checks no hash for its files, so a random-weights file stands in for the real one.
    source, size = random_models["mobilenet_v2"], 96
    fname = backbones.get("mobilenet_v2").imagenet.file(include_top=False, size=size)
    (offline_keras / "models").mkdir(exist_ok=True)
    with h5py.File(offline_keras / "models" / fname, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, source)
    assert backbones.imagenet_weights_available("mobilenet_v2", size=size)
    for weights in ("imagenet", offline_keras / "models" / fname):
        model = backbones.build("mobilenet_v2", input_shape=(size, size, 3), weights=weights)
        for a, b in zip(model.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_efficientnet_b0_weights_file_gets_keras_imagenet_normalisation(
    tmp_path: Path, random_models: dict[str, keras.Model]
) -> None:
    assert backbones.get("efficientnet_b0").post_load is _applications.fix_efficientnet_normalization
    model = random_models["efficientnet_b0"]
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    saved = norm.get_weights()
    try:  # what keras' imagenet file stores: the mean, and the std where the variance belongs
        mean, std = np.array([0.485, 0.456, 0.406], "float32"), np.array([0.229, 0.224, 0.225], "float32")
        norm.set_weights([mean, std, saved[2]])
        model.save_weights(tmp_path / "b0.weights.h5")
    finally:
        norm.set_weights(saved)
    loaded = backbones.build("efficientnet_b0", input_shape=(64, 64, 3), weights=tmp_path / "b0.weights.h5")
    norm2 = next(layer for layer in loaded.layers if isinstance(layer, keras.layers.Normalization))
    np.testing.assert_allclose(norm2.get_weights()[1], np.array([0.229, 0.224, 0.225]) ** 2, rtol=1e-5)
    # the layer computes (x / 255 - mean) / std, as keras' weights="imagenet" model does
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    out = keras.ops.convert_to_numpy(norm2(x / 255.0))[0, 0, 0]
    np.testing.assert_allclose(out, (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-4)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_imagenet_weights_need_no_network(offline_keras: Path, lite_cache: Path, name: str) -> None:
    info = backbones.get(name)
    assert backbones.imagenet_weights_available(name)
    model = backbones.build(name, input_shape=(info.min_size, info.min_size, 3), cache_dir=lite_cache)
    assert model.output.shape == (None, info.feature_dim)


# ------------------------------------------------------------------- blocks
@pytest.mark.parametrize("name", NAMES)
def test_blocks_partition_the_backbone(random_models: dict[str, keras.Model], name: str) -> None:
    model, info = random_models[name], backbones.get(name)
    blocks = backbones.block_layers(model, info)
    assert len(blocks) == info.num_blocks and all(blocks)
    in_blocks = [layer for block in blocks for layer in block]
    assert len({id(layer) for layer in in_blocks}) == len(in_blocks)
    weighted = {id(layer) for layer in model.layers if layer.weights}
    assert weighted <= {id(layer) for layer in in_blocks}  # pooling is the only thing outside
    feature_map = backbones.block_output(model, info, info.num_blocks)
    assert feature_map.shape[-1] == info.feature_dim


def test_lite0_blocks_follow_the_layer_names(random_models: dict[str, keras.Model]) -> None:
    info = backbones.get("efficientnet_lite0")
    blocks = backbones.block_layers(random_models["efficientnet_lite0"], info)
    for block_name, block in zip(info.block_names, blocks):
        assert all(layer.name.startswith(block_name + "_") for layer in block), block_name
    assert sum(1 for block in blocks[1:17] if any(layer.name.endswith("_add") for layer in block)) == 9


@pytest.mark.parametrize("name", NAMES)
def test_split_at_every_depth_reproduces_the_backbone(random_models: dict[str, keras.Model], name: str) -> None:
    model, info = random_models[name], backbones.get(name)
    x = _images(_small(name))
    full = _run(model, x)
    n = info.num_blocks
    depths = range(n + 1) if info.bundled_weights else sorted({0, 1, 2, n // 2, n - 1, n})
    for k in depths:
        prefix, suffix = backbones.split_at(model, info, k)
        mid = _run(prefix, x)
        np.testing.assert_allclose(_run(suffix, mid), full, atol=1e-5, rtol=1e-5, err_msg=f"{name} k={k}")
        if k == 0:
            np.testing.assert_array_equal(mid, x)


def test_split_shares_layers_and_the_feature_map_is_unpooled(lite_cache: Path) -> None:
    info = backbones.get("efficientnet_lite0")
    model = backbones.build(info.name, input_shape=(64, 64, 3), pooling=None, cache_dir=lite_cache)
    prefix, suffix = backbones.split_at(model, info, 5)
    assert prefix.output.shape == (None, 8, 8, 40)  # after block04 (stage 3, stride 8)
    assert model.get_layer("head_conv") in suffix.layers and model.get_layer("stem_conv") in prefix.layers
    prefix_n, suffix_n = backbones.split_at(model, info, info.num_blocks)
    assert suffix_n.output.shape == (None, 2, 2, 1280)
    with pytest.raises(ConfigError, match="from 0 to 18"):
        backbones.split_at(model, info, 19)


@pytest.mark.parametrize("name", NAMES)
def test_freeze_blocks_sets_trainable_per_block(random_models: dict[str, keras.Model], name: str) -> None:
    model, info = random_models[name], backbones.get(name)
    blocks = backbones.block_layers(model, info)
    try:
        backbones.freeze_blocks(model, info, info.num_blocks)
        assert model.trainable_weights == []  # feature extraction: nothing in the backbone trains
        backbones.freeze_blocks(model, info, 3)
        for i, block in enumerate(blocks):
            assert all(layer.trainable == (i >= 3) for layer in block)
        frozen = {id(w) for block in blocks[:3] for layer in block for w in layer.weights}
        assert frozen and not frozen & {id(w) for w in model.trainable_weights}
        backbones.freeze_blocks(model, info, 0)
        assert len(model.trainable_weights) == sum(len(layer.trainable_weights) for block in blocks for layer in block)
        with pytest.raises(ConfigError, match="freeze_depth"):
            backbones.freeze_blocks(model, info, -1)
    finally:
        backbones.freeze_blocks(model, info, 0)


def test_freeze_blocks_leaves_the_classifier_alone() -> None:
    info = backbones.get("efficientnet_lite0")
    model = backbones.build(info.name, input_shape=(32, 32, 3), include_top=True, weights=None)
    model.get_layer("predictions").trainable = False
    model.trainable = False
    backbones.freeze_blocks(model, info, 17)
    assert not model.get_layer("predictions").trainable and not model.get_layer("stem_conv").trainable
    assert model.get_layer("head_conv").trainable and model.trainable
    head = model.get_layer("head_conv").trainable_weights + model.get_layer("head_bn").trainable_weights
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in head}


def test_block_functions_refuse_a_model_of_another_backbone(random_models: dict[str, keras.Model]) -> None:
    with pytest.raises(ConfigError, match="block structure of ResNet50"):
        backbones.block_layers(random_models["mobilenet_v2"], backbones.get("resnet50"))


def test_the_library_is_backend_neutral() -> None:
    modules = sorted(Path(backbones.__file__).parent.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        source = module.read_text()
        assert "import tensorflow" not in source and "tf." not in source, module.name


# ------------------------------------------------------------- without Keras
def _fresh_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its last line of output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_the_records_are_read_without_importing_keras() -> None:
    """Pages list backbones, blocks, sizes and preprocessing without waiting for TensorFlow."""
    out = _fresh_python(
        "import json, sys\n"
        "from tlcore import backbones\n"
        "facts = {n: [backbones.get(n).display_name, backbones.get(n).block_names, backbones.get(n).default_size,\n"
        "             backbones.get(n).preprocessing, backbones.get(n).weights_sources,\n"
        "             backbones.imagenet_weights_available(n)] for n in backbones.list_backbones()}\n"
        "print(json.dumps({'facts': facts, 'keras': [m for m in ('keras', 'tensorflow') if m in sys.modules]}))"
    )
    report = json.loads(out)
    assert report["keras"] == []
    assert set(report["facts"]) == set(NAMES)
    resnet = report["facts"]["resnet50"]
    assert resnet[0] == "ResNet50" and resnet[2] == 224 and "Caffe" in resnet[3] and len(resnet[1]) == 17


def test_a_saved_caffe_style_model_loads_where_no_backbone_was_built(tmp_path: Path) -> None:
    """``tlcore.predict`` registers the backbones' own layer (``register_layers``) before loading."""
    model = backbones.build("resnet50", input_shape=(32, 32, 3), weights=None)
    outputs = keras.layers.Dense(2, activation="softmax")(model.output)
    keras.Model(model.input, outputs).save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    out = _fresh_python(
        "import sys\n"
        "from tlcore.predict import load_model\n"
        f"loaded = load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(type(loaded.model.get_layer('preprocess')).__name__)"
    )
    assert out == "CaffePreprocess"


def test_weights_identity_names_the_weights_without_building_a_model(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache keys' name for weights (the trainer's, the scout's, the audit's): a missing file is
    the same ConfigError as build's, a ~ path is the user's home, and a file saved again is new."""
    assert backbones.weights_identity(None, 3) == "random-seed3"
    assert backbones.weights_identity("imagenet", 3) == "imagenet"
    monkeypatch.setenv("HOME", str(tmp_path))
    w = tmp_path / "mine.weights.h5"
    w.write_bytes(b"1234")
    first = backbones.weights_identity("~/mine.weights.h5", 0)
    assert first == backbones.weights_identity(str(w), 7) and first.startswith(f"file:{w.resolve()}:4:")
    os.utime(w, ns=(1, 2))
    assert backbones.weights_identity(str(w), 0) != first
    with pytest.raises(ConfigError) as info:
        backbones.weights_identity("~/missing.weights.h5", 0)
    assert "does not exist" in str(info.value) and "missing.weights.h5" in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):  # a folder, as build refuses it
        backbones.weights_identity(str(tmp_path), 0)
