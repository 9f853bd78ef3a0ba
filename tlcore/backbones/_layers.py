"""The Keras layers the backbones put into a model; importing this module registers them.

``CaffePreprocess`` is the first layer of the Caffe-style keras.applications backbones
(``_applications.CAFFE_MODE``, e.g. ResNet50). A saved model that holds it loads only
where it is registered (``keras.saving.register_keras_serializable``), so loaders call
``tlcore.backbones.register_layers`` first. The only backbone module that imports Keras
when imported: the others import it when they build, so the registry's facts (names,
blocks, sizes, preprocessing) are read without loading TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers, ops

__all__ = ["CaffePreprocess"]


@keras.saving.register_keras_serializable(package="tlcore")
class CaffePreprocess(layers.Layer):
    """RGB 0-255 to Caffe-style input: channels reversed to BGR, ImageNet mean removed.

    The same as ``keras.applications.resnet50.preprocess_input`` (mode "caffe"),
    as a weightless layer so a saved model carries it.

    Args:
        mean_bgr: per-channel mean subtracted after the flip (``_applications.CAFFE_MODE``
            gives the ImageNet mean).
    """

    def __init__(self, mean_bgr: Sequence[float], **kwargs: Any):
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, inputs: Any) -> Any:
        x = ops.flip(inputs, axis=-1)
        return x - ops.convert_to_tensor(np.asarray(self.mean_bgr), dtype=x.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}
