"""keras.applications backbones with their preprocessing inside the model.

Each model takes raw RGB 0-255: a first layer does what
``keras.applications.<x>.preprocess_input`` would (``TF_MODE``, ``CAFFE_MODE``;
EfficientNet carries its own rescaling, ``KERAS_EFFICIENTNET``). ImageNet weights
come from Keras (downloaded when online, or found in its cache
``$KERAS_HOME/models``), or from a file the user names. Offline with neither,
the build fails with a message naming the file Keras wanted and where to put it;
it never falls back to random weights.

The parts a ``BackboneInfo`` record of this family is made of:
``KerasApplication`` (its ``builder``: a keras.applications constructor wrapped
with the preprocessing and pooling), the ``Preprocessing`` values above,
``KerasWeights`` (its ``imagenet``: the files Keras downloads, whether one is in
the cache, the text people read) and ``fix_efficientnet_normalization`` (a
``post_load`` hook). ``keras_cache_dir`` is where Keras keeps the weights. The
records themselves are in ``_registry``.

Importing this module does not import Keras (TensorFlow): the records are made of these
parts at import, and reading them (texts, file names, whether a file is in the cache)
never needs it. Keras is imported when a model is built; the Caffe-style layer is
``_layers.CaffePreprocess``.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tlcore.backbones._info import BackboneInfo, Pooling, Preprocessing
from tlcore.errors import ConfigError

if TYPE_CHECKING:
    import keras
    from keras import layers

__all__ = [
    "TF_MODE",
    "CAFFE_MODE",
    "KERAS_EFFICIENTNET",
    "KerasApplication",
    "KerasWeights",
    "fix_efficientnet_normalization",
    "keras_cache_dir",
]

_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


# ------------------------------------------------------------- preprocessing
def _tf_mode() -> layers.Layer:
    """``preprocess_input`` mode "tf": scale to [-1, 1]."""
    from keras import layers

    return layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="preprocess")


def _caffe_mode() -> layers.Layer:
    """``preprocess_input`` mode "caffe": BGR, minus the ImageNet mean (``_layers.CaffePreprocess``)."""
    from tlcore.backbones._layers import CaffePreprocess

    return CaffePreprocess(_IMAGENET_MEAN_BGR, name="preprocess")


TF_MODE = Preprocessing("RGB 0-255 -> x / 127.5 - 1", _tf_mode)
CAFFE_MODE = Preprocessing(f"RGB 0-255 -> BGR, minus the ImageNet mean {_IMAGENET_MEAN_BGR} (Caffe style)", _caffe_mode)
KERAS_EFFICIENTNET = Preprocessing(  # the model starts with Rescaling(1/255) + Normalization
    "RGB 0-255 -> x / 255, then ImageNet mean/std normalisation (Keras' own layers)"
)


# ------------------------------------------------------------------- weights
def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights: ``$KERAS_HOME/models`` (``~/.keras/models``).

    Asked of Keras when it is loaded (the path it resolved at import); otherwise worked out
    by Keras' own rule, so that asking does not load TensorFlow.
    """
    config = sys.modules.get("keras.src.backend.config")
    keras_home = getattr(config, "keras_home", None)
    if keras_home is not None:
        home = keras_home()
    elif "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:  # Keras' rule: ~/.keras, or /tmp/.keras when the home folder is not writable
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home).expanduser() / "models"


@dataclass(frozen=True)
class KerasWeights:
    """The ImageNet weights files Keras downloads for one keras.applications model.

    Attributes:
        notop: the file for ``include_top=False``, as Keras names it.
        top: the file for ``include_top=True``.
        sizes: for models with one file per input side: the sides Keras has files
            for; ``{size}`` in ``notop``/``top`` stands for the side, and any other
            side gets the last one (what Keras does). Empty for one file per variant.
    """

    notop: str
    top: str
    sizes: tuple[int, ...] = ()
    bundled: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if ("{size}" in self.notop + self.top) != bool(self.sizes):
            raise ValueError(f"{self.notop}: give sizes exactly when the file names contain {{size}}")

    def file(self, *, include_top: bool = False, size: int | None = 224) -> str:
        """The file name for these settings (``size``: the square input side, ``None`` if not square)."""
        name = self.top if include_top else self.notop
        if not self.sizes:
            return name
        return name.format(size=size if size in self.sizes else self.sizes[-1])

    def available(self, *, include_top: bool, size: int | None) -> bool:
        """Whether that file is in the Keras cache."""
        return (keras_cache_dir() / self.file(include_top=include_top, size=size)).is_file()

    def describe(self) -> str:
        notop = self.notop.replace("{size}", "<size>")
        return (
            f"weights='imagenet': Keras downloads {notop} into $KERAS_HOME/models (~/.keras/models) when online, "
            "or finds it there; weights=PATH loads that file; weights=None starts from random weights."
        )


# keras.applications' EfficientNet weights store the Normalization variance as the
# standard deviation (keras-team/keras#49930 in TF's tracker); Keras compensates with
# an extra Rescaling only when weights="imagenet". A weights *file* loads into a model
# without it, so the variance is squared instead, giving the same (x - mean) / std.
_IMAGENET_STDDEV_RGB = np.array([0.229, 0.224, 0.225])


def fix_efficientnet_normalization(model: keras.Model) -> None:
    """``post_load`` hook of keras.applications EfficientNets: square a variance stored as the std."""
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, layers.Normalization):
            mean, variance, *rest = layer.get_weights()
            if variance.shape == (3,) and np.allclose(variance, _IMAGENET_STDDEV_RGB, atol=1e-4):
                layer.set_weights([mean, variance**2, *rest])
                layer.finalize_state()  # the layer keeps derived tensors of its variables
            return


_URL_RE = re.compile(r"(https?://\S+?\.h5)")


def _imagenet_error(info: BackboneInfo, include_top: bool, size: int | None, exc: BaseException) -> ConfigError:
    fname = _files(info).file(include_top=include_top, size=size)
    match = _URL_RE.search(str(exc))
    where = keras_cache_dir()
    display = info.display_name
    if match is None and (where / fname).is_file():
        return ConfigError(
            f"{display}'s ImageNet weights file is in the Keras cache but could not be loaded.",
            received=f"{where / fname} ({type(exc).__name__}: {str(exc)[:160]})",
            fix="Delete it so Keras downloads it again, replace it with a good copy, or pass weights=PATH.",
        )
    source = f" from {match.group(1)}" if match else ""
    return ConfigError(
        f"{display}'s ImageNet weights are not in the Keras cache (or fail its hash check) and could not be "
        f"downloaded{source} (offline?): Keras wanted the file {fname}.",
        received=f"weights='imagenet' ({type(exc).__name__}: {str(exc)[:160]})",
        fix=f"Copy {fname} into {where}/ (download it on a machine with internet), or pass weights=PATH "
        "to that file, or weights=None to start from random weights, or use efficientnet_lite0, "
        "whose ImageNet weights are installed with the workbench.",
    )


def _files(info: BackboneInfo) -> KerasWeights:
    if not isinstance(info.imagenet, KerasWeights):
        raise TypeError(f"{info.name}: a keras.applications backbone needs KerasWeights as its imagenet source")
    return info.imagenet


# ------------------------------------------------------------------ building
@dataclass(frozen=True)
class KerasApplication:
    """The ``builder`` of a keras.applications backbone: its constructor with preprocessing and pooling.

    Calling it (as ``_registry.build`` does, arguments already checked) builds
    ``constructor`` on ``info.preprocess``'s layer, without Keras' softmax when
    ``include_top``, loads ``weights`` (Keras' ImageNet files named by
    ``info.imagenet``, a ``KerasWeights``) and adds the pooling.

    Attributes:
        application: the constructor's name in ``keras.applications``, e.g. ``"ResNet50"``
            (a name, so that the record is made without importing Keras).
    """

    application: str

    @property
    def constructor(self) -> Callable[..., keras.Model]:
        """The keras.applications constructor, e.g. ``keras.applications.ResNet50`` (imports Keras)."""
        import keras

        return getattr(keras.applications, self.application)

    def __call__(
        self,
        info: BackboneInfo,
        *,
        input_shape: tuple[int | None, int | None, int],
        include_top: bool,
        weights: str | Path | None,
        cache_dir: str | os.PathLike[str] | None = None,  # unused: Keras keeps its own cache
        pooling: Pooling = "avg",
    ) -> keras.Model:
        import keras
        from keras import layers

        display = info.display_name
        files = _files(info)
        if include_top and (input_shape[0] is None or input_shape[1] is None):
            raise ConfigError(
                f"{display} with include_top=True needs a fixed input size.",
                received=f"input_shape={input_shape}",
                fix=f"Give the size, e.g. ({info.default_size}, {info.default_size}, 3).",
            )
        inputs = keras.Input(shape=input_shape, name="image")
        make_layer = info.preprocess.layer
        x = make_layer()(inputs) if make_layer is not None else inputs
        kwargs: dict[str, Any] = {"input_tensor": x, "input_shape": input_shape, "include_top": include_top}
        if include_top:
            kwargs["classifier_activation"] = None  # logits, like efficientnet_lite0
        path = None if weights in (None, "imagenet") else Path(weights)  # type: ignore[arg-type]
        size = input_shape[0] if input_shape[0] == input_shape[1] else None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*input_shape.*")  # MobileNetV2's size notice
                base = self.constructor(weights="imagenet" if weights == "imagenet" else None, **kwargs)
        except ValueError as exc:
            settings_problem = "input_shape" in str(exc) or "include_top" in str(exc)
            if weights == "imagenet" and not settings_problem:  # a bad hash, or a cached file that does not load
                raise _imagenet_error(info, include_top, size, exc) from exc
            raise ConfigError(
                f"{display} cannot be built with these settings: {exc}",
                received=f"include_top={include_top}, weights={weights!r}",
                fix="With include_top=True and ImageNet weights, use the backbone's default input size; "
                "otherwise use include_top=False.",
            ) from exc
        except Exception as exc:  # keras.utils.get_file turns URLError/HTTPError into a bare Exception
            if weights == "imagenet":
                raise _imagenet_error(info, include_top, size, exc) from exc
            raise
        if path is not None:
            try:
                base.load_weights(path)
            except Exception as exc:
                raise ConfigError(
                    f"Could not load {display} weights from the file ({type(exc).__name__}: {str(exc)[:200]}).",
                    received=str(path),
                    fix=f"Give the Keras ImageNet file for this configuration "
                    f"({files.file(include_top=include_top, size=size)}) or a weights file saved "
                    f"from the same backbone with include_top={include_top}.",
                ) from exc
        out = base.output
        if not include_top:
            if pooling == "avg":
                out = layers.GlobalAveragePooling2D(name="avg_pool")(out)
            elif pooling == "max":
                out = layers.GlobalMaxPooling2D(name="max_pool")(out)
        return keras.Model(inputs, out, name=info.name)
