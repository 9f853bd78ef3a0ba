"""Start the Keras backend in a background process without its CPU-only start-up noise.

On a machine without a GPU, importing TensorFlow (or JAX) and listing its devices
writes lines such as ``failed call to cuInit: INTERNAL: CUDA error`` and ``Could not
find cuda drivers on your machine`` to stderr. They are harmless there, but they are
the first lines of every search worker's, scout's and training job's log, where a
user reads them as the reason something went wrong.

``start_backend_quietly()`` imports Keras and asks the backend for its devices with
the process's stderr (file descriptor 2, which the C++ libraries write to) sent to a
temporary file, then restores stderr and copies every line back except the known
start-up noise (``NOISE``) — and only when no GPU turned up: with a GPU, every line
is kept, since a CUDA message may then be the problem. It returns whether a GPU was
found. Every command that starts the backend starts it here, after checking its
options (``worker``, ``train``, ``predict``, ``export``, ``models evaluate``; the scout
and the audit through ``tlcore.runtime.configure``): a background job's log, or a
terminal, then starts with the command's own lines, not with "failed call to cuInit",
which a user reads as the reason something went wrong.

It never imports a backend at import time itself, so importing this module is cheap.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["start_backend_quietly", "backend_sees_gpu", "is_noise", "NOISE"]

NOISE = re.compile(
    "|".join((
        r"failed call to cuInit",
        r"cuda_platform\.cc",
        r"cudart_stub\.cc",
        r"Could not find cuda drivers",
        r"All log messages before absl::InitializeLog\(\) is called",
        r"Unable to register cu(DNN|FFT|BLAS) factory",
        r"computation placer already registered",
        r"oneDNN custom operations are on",
        r"This TensorFlow binary is optimized to use available CPU instructions",
        r"rebuild TensorFlow with the appropriate compiler flags",
        r"CUDA-enabled jaxlib is not installed",
        r"TF-TRT Warning: Could not find TensorRT",
    ))
)
"""Lines the CPU-only start of TensorFlow, Keras and JAX writes that say nothing about the run."""


def is_noise(line: str) -> bool:
    """Whether ``line`` is CPU-only backend start-up noise (``NOISE``)."""
    return bool(NOISE.search(line))


def backend_sees_gpu() -> bool:
    """Whether the active Keras backend sees a GPU (imports Keras and starts the backend);
    ``tlcore.runtime.has_gpu`` is this, cached."""
    import keras

    name = keras.backend.backend()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if name == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if name == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA install means no usable GPU; the real call says why later
        return False
    return False


def start_backend_quietly() -> bool:
    """Import Keras and start its backend with CPU-only start-up noise dropped from stderr.

    Returns whether the backend sees a GPU. Anything else the start writes to stderr,
    including an import error's traceback, still reaches stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        gpu = False
        try:
            gpu = backend_sees_gpu()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = text.splitlines() if gpu else [line for line in text.splitlines() if not is_noise(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
    return gpu
