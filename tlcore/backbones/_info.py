"""The backbone record: ``BackboneInfo``, one per backbone, carrying all it needs.

A record names the backbone's builder (a callable with one signature for every
family), its preprocessing (``Preprocessing``: the first layer and what it does),
its sizes and feature width, its blocks for freeze depth, where its ImageNet
weights come from (an ``ImageNetWeights``) and an optional post-load hook. The
strings people read (``preprocessing``, ``weights_sources``) and ``num_blocks``
are derived from those parts, never written twice.

This module imports no builder, so ``_applications`` and ``_efficientnet_lite``
can use its types while ``_registry`` holds the records built from them. Nor does
it import Keras (TensorFlow): a record's facts are read without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import keras

__all__ = ["BackboneInfo", "Builder", "ImageNetWeights", "Preprocessing", "Pooling"]

Pooling = Literal["avg", "max"] | None


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone does to raw RGB 0-255 before its first convolution.

    Attributes:
        text: the same, for people (shown on the Search page and in the model card).
        layer: makes the layer that does it, placed after the input; ``None`` when
            the network carries its own preprocessing layers.
    """

    text: str
    layer: Callable[[], keras.layers.Layer] | None = None


class ImageNetWeights(Protocol):
    """Where a backbone's ``weights="imagenet"`` comes from."""

    @property
    def bundled(self) -> bool:
        """True when the weights are installed with the workbench (usable offline without any download)."""
        ...

    def describe(self) -> str:
        """Where ``weights="imagenet"`` comes from, and what else works (``BackboneInfo.weights_sources``)."""
        ...

    def available(self, *, include_top: bool, size: int | None) -> bool:
        """Whether ``weights="imagenet"`` works now without a download; nothing is downloaded or built."""
        ...


class Builder(Protocol):
    """Makes the Keras model of a backbone from arguments ``_registry.build`` has already checked.

    ``input_shape`` is ``(height, width, 3)`` (sizes may be ``None``), ``weights`` is
    ``None``, ``"imagenet"`` or an existing file's ``Path``. The model takes raw RGB
    0-255 and is named ``info.name``.
    """

    def __call__(
        self,
        info: BackboneInfo,
        *,
        input_shape: tuple[int | None, int | None, int],
        include_top: bool,
        weights: str | Path | None,
        cache_dir: str | os.PathLike[str] | None,
        pooling: Pooling,
    ) -> keras.Model: ...


@dataclass(frozen=True)
class BackboneInfo:
    """One backbone: everything the workbench needs to build it, split it into blocks and describe it.

    Attributes:
        name: registry key, e.g. ``"efficientnet_lite0"``.
        display_name: for people, e.g. ``"EfficientNet-Lite0"``.
        family: the implementation behind ``builder``: ``"efficientnet_lite"`` (our own
            Keras network) or ``"keras_applications"``.
        builder: makes the model (see ``Builder``).
        preprocess: its preprocessing (``Preprocessing``); the model's first layers do it.
        imagenet: where ``weights="imagenet"`` comes from (an ``ImageNetWeights``).
        default_size: the input side it was trained at (pixels).
        min_size: the smallest input side it accepts.
        feature_dim: channels of the feature map (and of the pooled features).
        block_names: the N block names, input to output; ``freeze_depth = k`` freezes blocks ``[0, k)``.
        block_ends: per block, the layer whose output ends it: an exact layer name,
            ``"prefix*"`` (the last layer whose name starts with ``prefix``) or ``""``
            (the last single-tensor cut before the next block's end).
        post_load: called with the built model after weights from a file the user
            named (``weights=PATH``) were loaded into it; ``None`` for most backbones.

    Derived: ``num_blocks`` (N), ``preprocessing`` (``preprocess.text``),
    ``bundled_weights`` and ``weights_sources`` (from ``imagenet``).
    """

    name: str
    display_name: str
    family: Literal["efficientnet_lite", "keras_applications"]
    builder: Builder
    preprocess: Preprocessing
    imagenet: ImageNetWeights
    default_size: int
    min_size: int
    feature_dim: int
    block_names: tuple[str, ...]
    block_ends: tuple[str, ...]
    post_load: Callable[[keras.Model], None] | None = None

    def __post_init__(self) -> None:
        if not self.block_names or len(self.block_names) != len(self.block_ends):
            raise ValueError(f"{self.name}: block_names and block_ends must be non-empty and of equal length")
        if len(set(self.block_names)) != len(self.block_names):
            raise ValueError(f"{self.name}: block names repeat")
        if not 0 < self.min_size <= self.default_size:
            raise ValueError(f"{self.name}: need 0 < min_size <= default_size")

    @property
    def num_blocks(self) -> int:
        """N, the number of blocks; ``freeze_depth = k`` freezes blocks ``[0, k)``."""
        return len(self.block_names)

    @property
    def preprocessing(self) -> str:
        """What the model's first layers do to raw RGB 0-255."""
        return self.preprocess.text

    @property
    def bundled_weights(self) -> bool:
        """The ImageNet weights are installed with the workbench (usable offline without any download)."""
        return self.imagenet.bundled

    @property
    def weights_sources(self) -> str:
        """Where ``weights="imagenet"`` comes from, and what else works."""
        return self.imagenet.describe()
