"""The classifier: backbone + global average pooling + dropout + dense softmax head.

Freeze depth is counted in backbone blocks (``BackboneInfo.num_blocks`` = N):
``freeze_depth = k`` freezes blocks ``[0, k)``; ``k = N`` is feature extraction,
``k = 0`` full fine-tuning. Frozen blocks always run in inference mode (BatchNorm
uses its moving statistics, dropout is off), so the frozen prefix is a fixed
function of its input. BatchNorm in the *unfrozen* blocks follows
``set_freeze_depth(..., batchnorm=...)``: "train" (the default) normalises each
batch by its own statistics while training and updates the moving averages, as a
plain Keras loop does; "frozen" keeps the moving statistics, as the Keras
transfer-learning guide prescribes for small learning rates. Moving statistics
pinned while the convolutions before them change at a large learning rate let the
activations drift off the scale the pinned statistics expect, and a trial
collapses to chance within one epoch (``bench/bench_collapse.py`` measures it);
"train" survives those rates. The preprocessing is inside the model: the saved
model takes raw RGB 0-255 images.

For the feature cache the classifier splits at the freeze boundary into a
*prefix* (the frozen blocks, a fixed function whose output can be cached) and a
*trainable* part (the remaining blocks and the head). Both are built from the
very same layer objects as ``Classifier.model``, so training the trainable part
trains the full model.

``Classifier.build`` makes the backbone through ``tlcore.backbones`` (which also
supplies the blocks behind ``set_freeze_depth`` and ``split``) and adds the head
(``HEAD_LAYER_NAMES``: pool, dropout, dense, softmax in float32 so mixed precision
keeps the loss stable). ``tlcore.trainer`` is its only caller; a saved
``model.keras`` is read back by ``tlcore.predict``, and ``tlcore.gradcam`` relies on
the head's shape.

Example:

>>> clf = Classifier.build("efficientnet_lite0", num_classes=10, image_size=96, weights=None)
>>> clf.set_freeze_depth(clf.num_blocks)          # feature extraction
>>> prefix, head = clf.split(clf.num_blocks)       # prefix: image -> pooled features
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from tlcore import backbones
from tlcore.config import BATCHNORM_MODES
from tlcore.errors import ConfigError

__all__ = ["Classifier", "HEAD_LAYER_NAMES", "BATCHNORM_MODES"]

HEAD_LAYER_NAMES = ("pool", "head_dropout", "classifier", "probabilities")
# Moving-average momentum of BatchNorm layers that train on batch statistics. The backbones' 0.99
# leaves the moving statistics ~100 steps behind the weights; a short fine-tune is evaluated with
# them, so they must follow within a few dozen steps.
# (Measured on 1,000 Fashion-MNIST images, depth 7, lr 5e-3, probe head: 0.13 validation accuracy
# after one epoch with 0.99, 0.55 with 0.9, while the training loss was the same.)
BN_TRAIN_MOMENTUM = 0.9


@dataclass
class Classifier:
    """A backbone and a classification head sharing one ``keras.Model``.

    Use ``Classifier.build`` to make one. Attributes:
        model: raw image (S×S×3, 0-255) -> class probabilities.
        backbone: raw image -> feature map (the backbone without pooling).
        info: the backbone's registry entry (blocks, sizes).
        class_names: the class names, in output order.
    """

    model: keras.Model
    backbone: keras.Model
    info: backbones.BackboneInfo
    class_names: list[str]
    image_size: int

    @classmethod
    def build(
        cls,
        backbone: str,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        image_size: int = 224,
        weights: str | os.PathLike[str] | None = "imagenet",
        dropout: float = 0.2,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Classifier:
        """Build a classifier on a registered backbone.

        Args:
            backbone: a name from ``tlcore.backbones.list_backbones()``.
            num_classes: the number of classes (or give ``class_names``).
            class_names: the class names in output order. Defaults to "0", "1", ...
            image_size: input side in pixels. Defaults to 224.
            weights: "imagenet", a weights file, or None (random). Defaults to "imagenet".
            dropout: dropout rate before the dense layer. Defaults to 0.2.
            cache_dir: the workspace cache (for converted weights).
        """
        if class_names is None:
            if num_classes is None:
                raise ConfigError("Give num_classes or class_names.")
            class_names = [str(i) for i in range(num_classes)]
        class_names = list(class_names)
        if num_classes is not None and num_classes != len(class_names):
            raise ConfigError("num_classes and class_names disagree.",
                              received=f"num_classes={num_classes}, {len(class_names)} names")
        if len(class_names) < 2:
            raise ConfigError("A classifier needs at least two classes.", received=class_names)
        info = backbones.get(backbone)
        base = backbones.build(
            backbone,
            input_shape=(image_size, image_size, 3),
            include_top=False,
            weights=weights,
            cache_dir=cache_dir,
            pooling=None,
        )
        _pin_inference_mode(base)
        inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
        fmap = base(inputs, training=False)
        head = _Head(len(class_names), dropout)
        model = keras.Model(inputs, head(fmap), name=f"{backbone}_classifier")
        clf = cls(model=model, backbone=base, info=info, class_names=class_names, image_size=image_size)
        clf._head = head
        return clf

    # ------------------------------------------------------------ freezing
    @property
    def num_blocks(self) -> int:
        return self.info.num_blocks

    def check_depth(self, depth: int) -> int:
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= self.num_blocks:
            raise ConfigError(
                f"freeze_depth must be between 0 and {self.num_blocks} for {self.info.name} "
                f"({self.num_blocks} blocks: {', '.join(self.info.block_names[:3])}, …).",
                received=f"freeze_depth={depth!r}",
                fix=f"Use {self.num_blocks} for feature extraction, 0 to fine-tune everything.",
            )
        return depth

    def set_freeze_depth(self, depth: int, *, batchnorm: str = "train") -> None:
        """Freeze blocks ``[0, depth)``, make the rest and the head trainable.

        Args:
            depth: the number of frozen blocks.
            batchnorm: how BatchNorm layers in the unfrozen blocks behave while training:
                "train" (batch statistics, moving averages updated) or "frozen" (moving
                statistics, never updated). Frozen blocks always use their moving statistics.
                Defaults to "train".

        Recompile the model (or the trainable part) after calling this.
        """
        self.check_depth(depth)
        if batchnorm not in BATCHNORM_MODES:
            raise ConfigError("Unknown BatchNorm mode.", received=f"batchnorm={batchnorm!r}",
                              fix=f"Use one of: {', '.join(BATCHNORM_MODES)}.")
        self.backbone.trainable = True
        for i, layers in enumerate(backbones.block_layers(self.backbone, self.info)):
            for layer in layers:
                layer.trainable = i >= depth
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer._tl_batch_stats = i >= depth and batchnorm == "train"
                    if not hasattr(layer, "_tl_momentum"):
                        layer._tl_momentum = layer.momentum
                    layer.momentum = BN_TRAIN_MOMENTUM if layer._tl_batch_stats else layer._tl_momentum
        for layer in self._head.layers:
            layer.trainable = True

    def trainable_backbone_blocks(self) -> list[bool]:
        return [any(layer.trainable for layer in layers) for layers in backbones.block_layers(self.backbone, self.info)]

    # ------------------------------------------------------------ splitting
    def split(self, depth: int) -> tuple[keras.Model | None, keras.Model]:
        """Split at the boundary after block ``depth - 1``.

        Returns:
            ``(prefix, trainable)``: ``prefix`` maps raw images to the boundary
            tensor (pooled features when ``depth == N``), or None when ``depth == 0``
            (nothing is frozen: train ``self.model`` on images); ``trainable``
            maps the boundary tensor to class probabilities.
        """
        self.check_depth(depth)
        if depth == 0:
            return None, self.model
        if depth == self.num_blocks:
            inputs = keras.Input(shape=(self.image_size, self.image_size, 3), name="image")
            pooled = self._head.pool(self.backbone(inputs, training=False))
            prefix = keras.Model(inputs, pooled, name=f"prefix_{depth}")
            feats = keras.Input(shape=tuple(pooled.shape[1:]), name="features")
            trainable = keras.Model(feats, self._head(feats, pooled=True), name=f"trainable_{depth}")
            return prefix, trainable
        pre, suf = backbones.split_at(self.backbone, self.info, depth)
        inputs = keras.Input(shape=(self.image_size, self.image_size, 3), name="image")
        prefix = keras.Model(inputs, pre(inputs, training=False), name=f"prefix_{depth}")
        boundary = keras.Input(shape=tuple(pre.output.shape[1:]), name="boundary")
        trainable = keras.Model(boundary, self._head(suf(boundary, training=False)), name=f"trainable_{depth}")
        return prefix, trainable


    def segment(self, start: int, end: int) -> keras.Model:
        """The frozen blocks ``[start, end)`` as a model from boundary ``start`` to boundary ``end``.

        Boundary ``end == N`` is the pooled feature vector, as ``split(N)``'s prefix gives it.
        ``segment(s, d)(prefix_s(x))`` equals ``prefix_d(x)``: the feature cache uses it to
        compute depth ``d``'s features from a shallower depth's cached ones.
        """
        self.check_depth(start)
        self.check_depth(end)
        if not 0 < start < end:
            raise ConfigError("A segment runs from a boundary inside the backbone to a deeper one.",
                              received=f"start={start}, end={end}", fix="Use 0 < start < end.")
        begin = backbones.block_output(self.backbone, self.info, start)
        inputs = keras.Input(shape=tuple(begin.shape[1:]), name=f"boundary_{start}")
        if end == self.num_blocks:
            rest = keras.Model(begin, self.backbone.outputs[0], name=f"blocks_{start}_{end}")
            return keras.Model(inputs, self._head.pool(rest(inputs, training=False)), name=f"segment_{start}_{end}")
        mid = keras.Model(begin, backbones.block_output(self.backbone, self.info, end), name=f"blocks_{start}_{end}")
        return keras.Model(inputs, mid(inputs, training=False), name=f"segment_{start}_{end}")


def _pin_inference_mode(model: keras.Model) -> None:
    """Make the layers inside the backbone run in inference mode, except BatchNorm set free.

    The classifier calls the backbone with ``training=False``, but in Keras 3 an
    outer ``model(x, training=True)`` (what ``fit`` does) overrides that argument
    inside a nested functional model, so the call alone is not enough: pin it on
    each layer that takes ``training``. Dropout and stochastic depth inside the
    backbone stay off. A BatchNorm layer that ``Classifier.set_freeze_depth`` marked
    ``_tl_batch_stats`` (an unfrozen block with ``batchnorm="train"``) passes the
    caller's ``training`` through. Frozen blocks are never marked, which makes the
    frozen prefix a fixed function of the input: what lets the feature cache stand
    in for it exactly.
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.Model) or not getattr(layer, "_call_has_training_arg", False):
            continue
        original = layer.call
        layer._tl_batch_stats = False

        def call(*args, _original=original, _layer=layer, **kwargs):
            if not _layer._tl_batch_stats:
                kwargs["training"] = False
            return _original(*args, **kwargs)

        layer.call = call


class _Head:
    """Pooling, dropout, dense and a float32 softmax: the layers the classifier adds."""

    def __init__(self, num_classes: int, dropout: float):
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.dense = keras.layers.Dense(num_classes, name="classifier")
        # float32 output keeps the loss stable under mixed precision.
        self.softmax = keras.layers.Activation("softmax", dtype="float32", name="probabilities")
        self.layers = (self.pool, self.dropout, self.dense, self.softmax)

    def __call__(self, x, *, pooled: bool = False):
        if not pooled:
            x = self.pool(x)
        return self.softmax(self.dense(self.dropout(x)))
