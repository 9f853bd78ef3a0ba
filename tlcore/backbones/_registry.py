"""The backbone registry: one ``BackboneInfo`` record per backbone, and what uses them.

``_RECORDS`` below is the table (``BACKBONES`` maps each name to its record):
each record, a ``BackboneInfo`` (see ``_info``), carries its builder,
preprocessing, sizes, feature width, block names and the layer ending each
block, its ImageNet weights source and an optional post-load hook, like fastai's
``model_meta``. Adding a backbone is adding a record there; the tests in
``tests/test_backbones.py`` run over every record.

``list_backbones`` and ``get`` read the table; ``build`` checks the arguments,
calls the record's builder (``_efficientnet_lite.build_lite0`` or an
``_applications.KerasApplication``) and its post-load hook, giving a Keras model
that takes raw RGB 0-255 and returns pooled features; ``block_layers`` /
``block_output`` / ``split_at`` / ``freeze_blocks`` turn a freeze depth ``k`` into
layers: ``split_at`` gives the frozen prefix and the trainable rest for the
feature cache, ``freeze_blocks`` marks the same boundary for ``fit``.
``imagenet_weights_available`` asks the record's weights source whether
``weights="imagenet"`` works without a download (the Search page labels
backbones with it). ``register_layers`` registers the Keras layers backbones put
into models (``_layers``), so that a saved model loads in any process.

Importing the registry does not import Keras (TensorFlow): the records, and everything
read from them (names, blocks, sizes, preprocessing, weights sources), come without it,
so a page that lists backbones draws at once. Keras is imported by the functions that
build or take a model.

The package ``tlcore.backbones`` re-exports the public names; ``tlcore.model``
builds the classifier on top, and ``search.spec`` checks freeze-depth ranges
against ``num_blocks``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.backbones import _applications as apps
from tlcore.backbones import _efficientnet_lite as lite
from tlcore.backbones._info import BackboneInfo, Pooling
from tlcore.errors import ConfigError

if TYPE_CHECKING:
    import keras

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
    "register_layers",
]

# Block names a record uses twice (for block_names, and to name the layers that end the blocks).
_EFFICIENTNET_B0_BLOCKS = (
    "stem",
    *(f"block{s}{chr(97 + j)}" for s, n in ((1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 1)) for j in range(n)),
    "top",
)
_RESNET50_BLOCKS = (
    "stem",
    *(f"conv{s}_block{b}" for s, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for b in range(1, n + 1)),
)
_INCEPTION_V3_BLOCKS = ("stem", *(f"mixed{i}" for i in range(11)))

_RECORDS = (
    BackboneInfo(
        name="efficientnet_lite0",
        display_name="EfficientNet-Lite0",
        family="efficientnet_lite",
        builder=lite.build_lite0,
        preprocess=lite.LITE0_PREPROCESSING,
        imagenet=lite.LITE0_IMAGENET,
        default_size=224,
        min_size=32,
        feature_dim=1280,
        block_names=lite.LITE0_BLOCK_NAMES,
        block_ends=lite.LITE0_BLOCK_ENDS,
    ),
    BackboneInfo(
        name="mobilenet_v2",
        display_name="MobileNetV2",
        family="keras_applications",
        builder=apps.KerasApplication("MobileNetV2"),
        preprocess=apps.TF_MODE,
        imagenet=apps.KerasWeights(
            notop="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
            top="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}.h5",
            sizes=(96, 128, 160, 192, 224),
        ),
        default_size=224,
        min_size=32,
        feature_dim=1280,
        block_names=("stem", *(f"block_{i}" for i in range(1, 17)), "head"),
        block_ends=("expanded_conv_project_BN", *(f"block_{i}_*" for i in range(1, 17)), "out_relu"),
    ),
    BackboneInfo(
        name="efficientnet_b0",
        display_name="EfficientNetB0",
        family="keras_applications",
        builder=apps.KerasApplication("EfficientNetB0"),
        preprocess=apps.KERAS_EFFICIENTNET,
        imagenet=apps.KerasWeights(notop="efficientnetb0_notop.h5", top="efficientnetb0.h5"),
        default_size=224,
        min_size=32,
        feature_dim=1280,
        block_names=_EFFICIENTNET_B0_BLOCKS,
        block_ends=("stem_activation", *(f"{b}_*" for b in _EFFICIENTNET_B0_BLOCKS[1:-1]), "top_activation"),
        post_load=apps.fix_efficientnet_normalization,
    ),
    BackboneInfo(
        name="resnet50",
        display_name="ResNet50",
        family="keras_applications",
        builder=apps.KerasApplication("ResNet50"),
        preprocess=apps.CAFFE_MODE,
        imagenet=apps.KerasWeights(
            notop="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            top="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        ),
        default_size=224,
        min_size=32,
        feature_dim=2048,
        block_names=_RESNET50_BLOCKS,
        block_ends=("pool1_pool", *(f"{b}_out" for b in _RESNET50_BLOCKS[1:])),
    ),
    BackboneInfo(
        name="inception_v3",
        display_name="InceptionV3",
        family="keras_applications",
        builder=apps.KerasApplication("InceptionV3"),
        preprocess=apps.TF_MODE,
        imagenet=apps.KerasWeights(
            notop="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            top="inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        ),
        default_size=299,
        min_size=75,
        feature_dim=2048,
        block_names=_INCEPTION_V3_BLOCKS,
        block_ends=("", *_INCEPTION_V3_BLOCKS[1:]),  # the stem's layers have automatic names
    ),
)

BACKBONES: dict[str, BackboneInfo] = {info.name: info for info in _RECORDS}
if len(BACKBONES) != len(_RECORDS):  # pragma: no cover - a typo in the table above
    raise ValueError("Two backbone records share a name.")


def list_backbones() -> list[str]:
    """The registered backbone names, bundled-weights ones first.

    Example:

    >>> list_backbones()[0]
    'efficientnet_lite0'
    """
    return sorted(BACKBONES, key=lambda n: (not BACKBONES[n].bundled_weights, n))


def get(name: str) -> BackboneInfo:
    """A backbone's record.

    Args:
        name: a name from ``list_backbones()``.

    Raises:
        ConfigError: no backbone has that name.
    """
    try:
        return BACKBONES[name]
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
            fix=f"Use e.g. ({info.default_size}, {info.default_size}, 3); "
            "grey images are converted to RGB before the model.",
        )
    small = [d for d in shape[:2] if d is not None and d < info.min_size]
    if small:
        raise ConfigError(
            f"{info.display_name} needs inputs of at least {info.min_size} x {info.min_size} pixels.",
            received=f"input_shape={shape}",
            fix=f"Use an image size of {info.min_size} or more (it was trained at {info.default_size}).",
        )
    return shape  # type: ignore[return-value]


def _missing_weights(weights: object, of: str = "") -> ConfigError:
    return ConfigError(
        f"The weights file{' for ' + of if of else ''} does not exist.",
        received=f"weights={str(weights)!r}",
        fix="Give the path of an existing weights file, 'imagenet', or none for random weights (--weights none; "
            "weights: null in a spec).",
    )


def _check_weights(info: BackboneInfo, weights: object) -> str | Path | None:
    if weights is None or weights == "imagenet":
        return weights  # type: ignore[return-value]
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise _missing_weights(weights, info.display_name)
    raise ConfigError(
        "weights must be 'imagenet', a path to a weights file, or None.", received=f"weights={weights!r}"
    )


def weights_identity(weights: str | os.PathLike | None, seed: int) -> str:
    """What identifies a backbone's weights in a cache key, without building the model: random
    weights by their seed, ``"imagenet"``, or a file by its resolved path, size and modification
    time (so a file saved again misses the caches). A missing file gets the same ``ConfigError``
    as :func:`build`, before any TensorFlow work."""
    if weights is None:
        return f"random-seed{seed}"
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    try:
        st = path.stat()
    except OSError as exc:
        raise _missing_weights(weights) from exc
    if not stat.S_ISREG(st.st_mode):  # a folder: refused here as build refuses it
        raise _missing_weights(weights)
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


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
    import keras

    info = get(name)
    shape = _check_input_shape(info, input_shape)
    checked_weights = _check_weights(info, weights)
    if pooling not in ("avg", "max", None):
        raise ConfigError("pooling must be 'avg', 'max' or None.", received=f"pooling={pooling!r}")
    if not isinstance(include_top, bool):
        raise ConfigError("include_top must be True or False.", received=f"include_top={include_top!r}")
    if keras.config.image_data_format() != "channels_last":
        raise ConfigError(
            "The backbones are built channels-last.",
            received=f"keras image_data_format={keras.config.image_data_format()!r}",
            fix="Set image_data_format to 'channels_last' in ~/.keras/keras.json "
            "or with keras.config.set_image_data_format.",
        )
    model = info.builder(
        info, input_shape=shape, include_top=include_top, weights=checked_weights, cache_dir=cache_dir, pooling=pooling
    )
    if info.post_load is not None and isinstance(checked_weights, Path):
        info.post_load(model)
    return model


def imagenet_weights_available(name: str, *, include_top: bool = False, size: int = 224) -> bool:
    """Whether ``weights="imagenet"`` works without a download.

    True for backbones whose weights ship with the workbench (when their package
    is installed), and for keras.applications backbones whose file is already in
    the Keras cache. Nothing is downloaded or built.
    """
    return get(name).imagenet.available(include_top=include_top, size=size)


def register_layers() -> None:
    """Register the Keras layers backbones put into models (``_layers.CaffePreprocess``).

    ``keras.saving.load_model`` reads a model holding them only once they are registered;
    call this before loading a workbench model in a process that has built no backbone.
    Imports Keras.
    """
    from tlcore.backbones import _layers  # noqa: F401 - importing the module registers its layers


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
                fix=f"Pass the model that tlcore.backbones.build({info.name!r}, ...) returned, "
                "not a wrapper around it.",
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
    import keras

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
    import keras

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
