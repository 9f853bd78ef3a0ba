"""Test-time augmentation: the probabilities of an image and of its mirror image, averaged.

A classifier trained on photos whose class does not change when mirrored (almost every
photo dataset; the demo's Fashion-MNIST too) often scores a little better when it also
sees each test image flipped left to right and the two probability vectors are averaged.
It costs one more forward pass per image. Whether it helps a given model is measured on
its test split (``tlcore.predict.evaluate_run(..., tta=True)`` against ``tta=False``).

``flip_average(predict, x)`` takes the prediction function rather than a model, so this
module depends on nothing else in tlcore: ``tlcore.predict`` (``evaluate_run``) and
``tlcore.batch_predict`` call it with ``predict_arrays`` (which applies the model's
calibration, if any, to each pass before the average).

Example:

>>> probs = flip_average(lambda a: predict_arrays(loaded, a), x)  # x: N×S×S×3
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["mirror", "flip_average"]


def mirror(x: np.ndarray) -> np.ndarray:
    """N×H×W×C images flipped left to right (a view, no copy)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"mirror takes a batch of images N×H×W×C. Received: shape={x.shape}")
    return x[:, :, ::-1, :]


def flip_average(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """The mean of ``predict(x)`` and ``predict(mirror(x))``: N×C probabilities (float32).

    Args:
        predict: maps N×S×S×3 images to N×C probabilities.
        x: the prepared images, N×S×S×3.
    """
    plain = np.asarray(predict(x), dtype=np.float32)
    flipped = np.asarray(predict(mirror(x)), dtype=np.float32)
    return ((plain + flipped) / 2.0).astype(np.float32, copy=False)
