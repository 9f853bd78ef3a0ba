"""keras.applications backbones with their preprocessing inside the model.

Each model takes raw RGB 0-255: a first layer does what
``keras.applications.<x>.preprocess_input`` would (EfficientNetB0 carries its
own rescaling). ImageNet weights come from Keras (downloaded when online, or
found in its cache ``$KERAS_HOME/models``), or from a file the user names.
Offline with neither, the build fails with a message naming the file Keras
wanted and where to put it; it never falls back to random weights.

Entry points: ``KERAS_APPS`` (per model a ``KerasAppSpec``: its keras.applications
constructor, preprocessing, block names and ends for freeze depth, weights file
name), ``build_keras_application``,
``keras_weights_file`` / ``keras_cache_dir`` (where Keras keeps the weights).
``_registry`` turns each entry into a ``BackboneInfo`` and calls the builder.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from tlcore.errors import ConfigError

__all__ = ["CaffePreprocess", "KerasAppSpec", "KERAS_APPS", "build_keras_application", "keras_weights_file", "keras_cache_dir"]


@keras.saving.register_keras_serializable(package="tlcore")
class CaffePreprocess(layers.Layer):
    """RGB 0-255 to Caffe-style input: channels reversed to BGR, ImageNet mean removed.

    The same as ``keras.applications.resnet50.preprocess_input`` (mode "caffe"),
    as a weightless layer so a saved model carries it.

    Args:
        mean_bgr: per-channel mean subtracted after the flip.
            Defaults to the ImageNet mean ``(103.939, 116.779, 123.68)``.
    """

    def __init__(self, mean_bgr: Sequence[float] = (103.939, 116.779, 123.68), **kwargs: Any):
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, inputs: Any) -> Any:
        x = ops.flip(inputs, axis=-1)
        return x - ops.convert_to_tensor(np.asarray(self.mean_bgr), dtype=x.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}


def _tf_mode() -> layers.Layer:
    """``preprocess_input`` mode "tf": scale to [-1, 1]."""
    return layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="preprocess")


def _caffe_mode() -> layers.Layer:
    return CaffePreprocess(name="preprocess")


@dataclass(frozen=True)
class KerasAppSpec:
    """How to build one keras.applications backbone.

    ``block_ends`` names, per block, the layer whose output ends it: an exact
    layer name, ``"prefix*"`` for the last layer whose name starts with
    ``prefix``, or ``""`` for the last single-tensor cut before the next block's end.
    """

    constructor: Callable[..., keras.Model]
    preprocess: Callable[[], layers.Layer] | None
    block_names: tuple[str, ...]
    block_ends: tuple[str, ...]
    weights_file: Callable[[bool, int | None], str]


def _mobilenet_v2_file(include_top: bool, size: int | None) -> str:
    rows = size if size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}{'' if include_top else '_no_top'}.h5"


_MOBILENET_V2_BLOCKS = ("stem", *(f"block_{i}" for i in range(1, 17)), "head")
_RESNET50_BLOCKS = ("stem", *(f"conv{s}_block{b}" for s, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for b in range(1, n + 1)))
_INCEPTION_V3_BLOCKS = ("stem", *(f"mixed{i}" for i in range(11)))
_EFFICIENTNET_B0_BLOCKS = (
    "stem",
    *(f"block{s}{chr(97 + j)}" for s, n in ((1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 1)) for j in range(n)),
    "top",
)

KERAS_APPS: dict[str, KerasAppSpec] = {
    "mobilenet_v2": KerasAppSpec(
        constructor=keras.applications.MobileNetV2,
        preprocess=_tf_mode,
        block_names=_MOBILENET_V2_BLOCKS,
        block_ends=("expanded_conv_project_BN", *(f"block_{i}_*" for i in range(1, 17)), "out_relu"),
        weights_file=_mobilenet_v2_file,
    ),
    "efficientnet_b0": KerasAppSpec(
        constructor=keras.applications.EfficientNetB0,
        preprocess=None,  # the model starts with Rescaling(1/255) + Normalization
        block_names=_EFFICIENTNET_B0_BLOCKS,
        block_ends=("stem_activation", *(f"{b}_*" for b in _EFFICIENTNET_B0_BLOCKS[1:-1]), "top_activation"),
        weights_file=lambda top, size: "efficientnetb0.h5" if top else "efficientnetb0_notop.h5",
    ),
    "resnet50": KerasAppSpec(
        constructor=keras.applications.ResNet50,
        preprocess=_caffe_mode,
        block_names=_RESNET50_BLOCKS,
        block_ends=("pool1_pool", *(f"{b}_out" for b in _RESNET50_BLOCKS[1:])),
        weights_file=lambda top, size: f"resnet50_weights_tf_dim_ordering_tf_kernels{'' if top else '_notop'}.h5",
    ),
    "inception_v3": KerasAppSpec(
        constructor=keras.applications.InceptionV3,
        preprocess=_tf_mode,
        block_names=_INCEPTION_V3_BLOCKS,
        block_ends=("", *_INCEPTION_V3_BLOCKS[1:]),  # the stem's layers have automatic names
        weights_file=lambda top, size: f"inception_v3_weights_tf_dim_ordering_tf_kernels{'' if top else '_notop'}.h5",
    ),
}

# keras.applications' EfficientNet weights store the Normalization variance as the
# standard deviation (keras-team/keras#49930 in TF's tracker); Keras compensates with
# an extra Rescaling only when weights="imagenet". A weights *file* loads into a model
# without it, so the variance is squared instead, giving the same (x - mean) / std.
_IMAGENET_STDDEV_RGB = np.array([0.229, 0.224, 0.225])


def _fix_efficientnet_normalization(model: keras.Model) -> None:
    for layer in model.layers:
        if isinstance(layer, layers.Normalization):
            mean, variance, *rest = layer.get_weights()
            if variance.shape == (3,) and np.allclose(variance, _IMAGENET_STDDEV_RGB, atol=1e-4):
                layer.set_weights([mean, variance**2, *rest])
                layer.finalize_state()  # the layer keeps derived tensors of its variables
            return


def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights: ``$KERAS_HOME/models`` (``~/.keras/models``)."""
    try:
        from keras.src.backend.config import keras_home  # the path Keras resolved at import

        home = keras_home()
    except Exception:  # pragma: no cover - a Keras without the private accessor
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home).expanduser() / "models"


def keras_weights_file(name: str, *, include_top: bool = False, size: int | None = 224) -> str:
    """The file name Keras downloads for ``name``'s ImageNet weights."""
    return KERAS_APPS[name].weights_file(include_top, size)


_URL_RE = re.compile(r"(https?://\S+?\.h5)")


def _imagenet_error(name: str, display: str, include_top: bool, size: int | None, exc: BaseException) -> ConfigError:
    fname = keras_weights_file(name, include_top=include_top, size=size)
    match = _URL_RE.search(str(exc))
    where = keras_cache_dir()
    if match is None and (where / fname).is_file():
        return ConfigError(
            f"{display}'s ImageNet weights file is in the Keras cache but could not be loaded.",
            received=f"{where / fname} ({type(exc).__name__}: {str(exc)[:160]})",
            fix="Delete it so Keras downloads it again, replace it with a good copy, or pass weights=PATH.",
        )
    source = f" from {match.group(1)}" if match else ""
    return ConfigError(
        f"{display}'s ImageNet weights are not in the Keras cache (or fail its hash check) and could not be downloaded{source} "
        f"(offline?): Keras wanted the file {fname}.",
        received=f"weights='imagenet' ({type(exc).__name__}: {str(exc)[:160]})",
        fix=f"Copy {fname} into {where}/ (download it on a machine with internet), or pass weights=PATH "
        "to that file, or weights=None to start from random weights, or use efficientnet_lite0, "
        "whose ImageNet weights are installed with the workbench.",
    )


def build_keras_application(
    name: str,
    display: str,
    *,
    input_shape: tuple[int | None, int | None, int],
    include_top: bool,
    weights: str | os.PathLike[str] | None,
    pooling: str | None,
) -> keras.Model:
    """Build a keras.applications backbone taking raw RGB 0-255 (arguments already validated)."""
    spec = KERAS_APPS[name]
    inputs = keras.Input(shape=input_shape, name="image")
    x = spec.preprocess()(inputs) if spec.preprocess is not None else inputs
    kwargs: dict[str, Any] = {"input_tensor": x, "input_shape": input_shape, "include_top": include_top}
    if include_top:
        kwargs["classifier_activation"] = None  # logits, like efficientnet_lite0
    path = None if weights in (None, "imagenet") else Path(weights)  # type: ignore[arg-type]
    size = input_shape[0] if input_shape[0] == input_shape[1] else None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input_shape.*")  # MobileNetV2's size notice
            base = spec.constructor(weights="imagenet" if weights == "imagenet" else None, **kwargs)
    except ValueError as exc:
        settings_problem = "input_shape" in str(exc) or "include_top" in str(exc)
        if weights == "imagenet" and not settings_problem:  # a bad hash, or a cached file that does not load
            raise _imagenet_error(name, display, include_top, size, exc) from exc
        raise ConfigError(
            f"{display} cannot be built with these settings: {exc}",
            received=f"include_top={include_top}, weights={weights!r}",
            fix="With include_top=True and ImageNet weights, use the backbone's default input size; "
            "otherwise use include_top=False.",
        ) from exc
    except Exception as exc:  # keras.utils.get_file turns URLError/HTTPError into a bare Exception
        if weights == "imagenet":
            raise _imagenet_error(name, display, include_top, size, exc) from exc
        raise
    if path is not None:
        try:
            base.load_weights(path)
        except Exception as exc:
            raise ConfigError(
                f"Could not load {display} weights from the file ({type(exc).__name__}: {str(exc)[:200]}).",
                received=str(path),
                fix=f"Give the Keras ImageNet file for this configuration "
                f"({keras_weights_file(name, include_top=include_top, size=size)}) or a weights file saved "
                f"from the same backbone with include_top={include_top}.",
            ) from exc
        if name == "efficientnet_b0":
            _fix_efficientnet_normalization(base)
    out = base.output
    if not include_top:
        if pooling == "avg":
            out = layers.GlobalAveragePooling2D(name="avg_pool")(out)
        elif pooling == "max":
            out = layers.GlobalMaxPooling2D(name="max_pool")(out)
    return keras.Model(inputs, out, name=name)
