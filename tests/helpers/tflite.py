"""Run an exported ``.tflite`` model the way a phone app would: TensorFlow Lite's interpreter.

Written independently of ``tlcore.exportcheck`` (which the export's own checks use), so a test
comparing the two can fail.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def tflite_interpreter(path: str | Path):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return tf.lite.Interpreter(model_path=str(path))


def tflite_predict(path: str | Path, x: np.ndarray) -> np.ndarray:
    """The model at ``path`` on the batch ``x`` (images 0-255, as the Keras model takes them).

    A quantized input gets ``round(x / scale) + zero_point``; a quantized output is dequantized.
    """
    interp = tflite_interpreter(path)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    if np.issubdtype(inp["dtype"], np.integer):
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        q = np.clip(np.round(np.asarray(x, np.float64) / scale) + zero, info.min, info.max)
        interp.set_tensor(inp["index"], q.astype(inp["dtype"]))
    else:
        interp.set_tensor(inp["index"], np.asarray(x, np.float32))
    interp.invoke()
    y = interp.get_tensor(out["index"])
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y
