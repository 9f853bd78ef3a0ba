"""Backend set-up for training: threads, GPU memory growth, mixed precision, seeds.

Keras 3 runs on TensorFlow (the default), JAX or PyTorch (``KERAS_BACKEND``).
Only this module and ``export`` touch backend-specific APIs, and each such call
is guarded by the backend in use.

Entry points, all called by ``tlcore.trainer.train`` at the start of every run
(so a search worker, the CLI and tests get the same set-up):

- ``configure()``: starts the backend without its CPU-only start-up noise when it is
  not imported yet (``tlcore.startup.start_backend_quietly``: the scout's and the
  audit's first Keras import is here); once per process, on TensorFlow, turns GPU memory growth on
  (several workers can share a card) or, without a GPU, uses every core per op
  (``cpu_threads()``: ``$TLCORE_CPU_THREADS`` when set, for several processes
  sharing a machine);
  on every call, sets Keras' global dtype policy: ``mixed_float16`` when the
  backend sees a GPU, else ``float32``. ``train`` passes no argument, so there is
  no user switch for mixed precision. Returns ``{"backend", "gpu",
  "mixed_precision"}``, which the trainer stores in ``metrics.json`` and uses to
  choose XLA (``jit_compile``).
- ``has_gpu()``, ``backend_name()``: what the active backend sees.
- ``set_seed(seed)``: Python, numpy and backend seeds; deterministic ops on TensorFlow.
- ``forward_batches(model, x, batch_size)``: inference over many images, compiled
  once on JAX (Keras' plain call runs there one operation at a time).

Not done here: JAX's GPU memory preallocation (75 % per process by default) is
left as it is; set ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` in the environment
before starting several JAX workers on one GPU.

Importing this module does not import Keras (the backend): ``cpu_threads`` is read by
modules a page imports; the functions that need the backend import it.
"""

from __future__ import annotations

import json
import os
import sys
import weakref
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.startup import backend_sees_gpu, start_backend_quietly

__all__ = ["configure", "cpu_threads", "has_gpu", "backend_name", "set_seed", "forward_batches"]

THREADS_ENV = "TLCORE_CPU_THREADS"


def backend_name() -> str:
    """The Keras backend in use ("tensorflow", "jax", ...), without importing Keras when it is not loaded.

    Keras picks it, in order, from ``$KERAS_BACKEND``, the ``backend`` of
    ``$KERAS_HOME/keras.json`` (``~/.keras/keras.json`` by default), or "tensorflow"; read
    the same way here, so a page can offer the formats of the backend before the backend
    has started (seconds for TensorFlow).
    """
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    env = os.environ.get("KERAS_BACKEND", "").strip()
    if env:
        return env
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        backend = json.loads((home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return backend if isinstance(backend, str) and backend else "tensorflow"


@lru_cache(maxsize=1)
def has_gpu() -> bool:
    """Whether the active backend sees a GPU (``tlcore.startup.backend_sees_gpu``, asked once)."""
    return backend_sees_gpu()


_configured = False


def cpu_threads() -> int:
    """Threads per op on a CPU: ``$TLCORE_CPU_THREADS`` if set, else every core.

    Set it when several training processes share one machine (local search workers,
    parallel tests), so that together they use each core once instead of fighting over them.
    """
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return os.cpu_count() or 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        from tlcore.errors import ConfigError

        raise ConfigError(f"{THREADS_ENV} must be a whole number of threads, 1 or more.",
                          received=repr(raw), fix=f"unset it (every core) or set e.g. {THREADS_ENV}=2")
    return n


def configure(*, mixed_precision: bool | None = None) -> dict[str, object]:
    """Set the runtime up once per process; returns what was chosen.

    On a GPU: memory grows on demand (so several workers share a card) and mixed
    precision is on unless ``mixed_precision=False``. On a CPU: float32, and
    TensorFlow uses every core for each op and two ops at a time.
    """
    if "keras" not in sys.modules:  # the first start: without "failed call to cuInit" on a CPU
        start_backend_quietly()
    import keras

    global _configured
    gpu = has_gpu()
    use_mp = gpu if mixed_precision is None else bool(mixed_precision and gpu)
    if not _configured:
        name = backend_name()
        if name == "tensorflow":
            import tensorflow as tf

            for dev in tf.config.list_physical_devices("GPU"):
                try:
                    tf.config.experimental.set_memory_growth(dev, True)
                except RuntimeError:  # already initialised
                    pass
            if not gpu:
                try:
                    threads = cpu_threads()
                    tf.config.threading.set_intra_op_parallelism_threads(threads)
                    tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
                except RuntimeError:
                    pass
        _configured = True
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mp else "float32")
    return {"backend": backend_name(), "gpu": gpu, "mixed_precision": use_mp}


def set_seed(seed: int) -> None:
    """Seed Python, numpy and the backend; on TensorFlow also make ops deterministic."""
    import keras

    keras.utils.set_random_seed(seed)
    if backend_name() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:
            pass


_JAX_FORWARD: "weakref.WeakKeyDictionary[Any, Callable[..., Any]]" = weakref.WeakKeyDictionary()


def forward_batches(model: Any, x: Any, batch_size: int, *,
                    on_batch: Callable[[int, int], None] | None = None) -> Any:
    """The model's inference output (``training=False``) for every row of ``x``, ``batch_size`` rows at a time.

    Returns one numpy array, or a list of them for a model of several outputs, with
    the rows of ``x`` in order. ``x`` is an array (or a list of arrays, one per model
    input) of at least one row; each batch is passed as float32. ``on_batch(done,
    total)`` follows each batch.

    On JAX the whole forward pass is one XLA program (``jax.jit`` over the model's
    ``stateless_call``), compiled once per model and batch shape; a short last batch
    is padded to the batch size, so it reuses that program. Keras' plain call on JAX
    dispatches each operation on its own: on an H200 the linear probe's step (the
    features of 5,000 images at 96 px that way, then its fit) took 227 s and the test
    split's 1,000 images 30-57 s (``bench/gpu_check.py``, BENCHMARKS.md "GPU"). On
    TensorFlow and PyTorch this is the plain call, whose eager kernels are what those
    backends' figures were measured with.
    """
    import keras

    multi = isinstance(x, (list, tuple))
    inputs = list(x) if multi else [x]
    total = len(inputs[0]) if inputs else 0
    if total == 0:
        raise ValueError("forward_batches needs at least one row")
    size = max(1, min(int(batch_size), total))
    jax_fn = _jax_forward(model) if keras.config.backend() == "jax" else None  # the backend the variables live in
    parts: list[list[np.ndarray]] = []
    for start in range(0, total, size):
        batch = [np.asarray(a[start:start + size], dtype=np.float32) for a in inputs]
        n = len(batch[0])
        if jax_fn is not None:
            if n < size:  # pad to the compiled shape
                batch = [np.concatenate([b, np.zeros((size - n, *b.shape[1:]), np.float32)]) for b in batch]
            out = jax_fn([v.value for v in model.trainable_variables],
                         [v.value for v in model.non_trainable_variables], batch if multi else batch[0])
        else:
            out = model(batch if multi else batch[0], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        parts.append([keras.ops.convert_to_numpy(o)[:n] for o in outs])
        if on_batch is not None:
            on_batch(start + n, total)
    joined = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
    return joined if len(joined) > 1 else joined[0]


def _jax_forward(model: Any) -> Callable[..., Any]:
    """``model``'s inference pass as one jitted function of (trainable, non-trainable values, inputs)."""
    fn = _JAX_FORWARD.get(model)
    if fn is None:
        import jax

        ref = weakref.ref(model)  # the cached function must not keep its model (its key) alive

        def call(trainable, non_trainable, inputs):
            out, _ = ref().stateless_call(trainable, non_trainable, inputs, training=False)
            return out

        fn = _JAX_FORWARD[model] = jax.jit(call)
    return fn
