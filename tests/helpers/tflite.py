"""Run an exported ``.tflite`` model the way a phone app would: TensorFlow Lite's interpreter."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def tflite_predict(path: str | Path, x: np.ndarray) -> np.ndarray:
    """The model at ``path`` on the batch ``x`` (float32 images, as the Keras model takes them)."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interp = tf.lite.Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x.astype(np.float32))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])
