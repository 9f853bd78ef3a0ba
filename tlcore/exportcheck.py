"""Check an exported model against the model it came from, each format in its own runtime.

``tlcore.export`` calls this right after it writes each format: the exported file is
run by the runtime a deployment would use (Keras for ``.keras``, TensorFlow for the
SavedModel, the TFLite interpreter for ``.tflite`` (``ai_edge_litert`` when it is
installed, else ``tf.lite.Interpreter``), ONNX Runtime for ``.onnx``) on the run's
held-out images, and compared with the run's Keras model in this process.

- ``check_images(loaded, ws, limit)``: the images to check on (``CheckImages``): the
  run's test split (the files its ``data.json`` lists, looked up in the dataset's
  current index, as ``tlcore.predict.evaluate_run`` does), or, for a run trained
  without a test split, its validation split; at most ``limit`` of them (a stratified,
  deterministic subset, ``tlcore.pipeline.nested_subset``). A model without its run
  folder or dataset gets an empty set and the reason.
- ``representative_images(loaded, ws, count)``: up to ``count`` of the run's training
  images, stratified and deterministic, decoded and resized exactly as in training
  (``tlcore.pipeline.load_image_array``): the calibration data of full-integer
  quantization. Images that cannot be decoded raise a ``ConfigError`` that says what
  and how to fix it.
- ``reference_probabilities(loaded, x)``: the Keras model's raw softmax output, the
  yardstick (never post-processed, e.g. by a temperature: the exports are raw softmax).
- ``load_runner(runtime, path)``: a callable ``N×S×S×3 uint8 -> N×C float32``
  probabilities for one exported file; quantized TFLite inputs and outputs are
  (de)quantized with the tensor's own scale and zero point.
- ``check_format(runner, images, reference)``: accuracy, top-1 agreement with the
  reference, the largest absolute probability difference, and the single-image
  latency (median of ``LATENCY_CALLS`` calls after ``WARMUP_CALLS``) on this machine.
- ``binomial_tail(k, n, p)``: P(X >= k) for X ~ Binomial(n, p), the one-sided exact test
  ``tlcore.export`` judges the agreement with (k disagreements among n images).

Only ``tlcore.export`` uses it; the format names and thresholds belong to ``export``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlcore._usertext import counted
from tlcore.backbones import register_layers
from tlcore.errors import ConfigError, TLCoreError
from tlcore.predict import LoadedModel
from tlcore.runtime import cpu_threads, forward_batches
from tlcore.workspace import Workspace

__all__ = [
    "CheckImages",
    "Runner",
    "RUNTIMES",
    "LATENCY_CALLS",
    "WARMUP_CALLS",
    "check_images",
    "representative_images",
    "reference_probabilities",
    "load_runner",
    "check_format",
    "binomial_tail",
    "latency_ms",
    "tflite_io",
    "machine",
]

RUNTIMES = ("keras", "savedmodel", "tflite", "onnx")
LATENCY_CALLS = 20
WARMUP_CALLS = 3
BATCH = 32  # images per runtime call while checking

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CheckImages:
    """The images an export is checked on.

    Attributes:
        x: N×S×S×3 uint8, decoded and resized as in training.
        y: N class indices (the model's output order).
        split: "test" or "val"; None when there is nothing to check on.
        available: images of that split found in the dataset (before ``limit``).
        missing: images of the split listed by the run but gone from the dataset.
        same_as_training: whether the images are those the run was evaluated on (fingerprint);
            None when unknown.
        reason: why nothing is checked ("" when ``x`` is not empty).
    """

    x: np.ndarray
    y: np.ndarray
    split: str | None
    available: int = 0
    missing: int = 0
    same_as_training: bool | None = None
    reason: str = ""

    @classmethod
    def nothing(cls, loaded: LoadedModel, reason: str) -> CheckImages:
        s = loaded.image_size
        return cls(x=np.zeros((0, s, s, 3), np.uint8), y=np.zeros(0, np.int64), split=None, reason=reason)


# ------------------------------------------------------------------ data
def _index_and_splits(loaded: LoadedModel, ws: Workspace):
    """The dataset's usable index with a ``split`` column as the run's spec splits it."""
    from tlcore.config import TrainSpec
    from tlcore.datasets import dataset_splits, load_split_spec

    dataset = str(loaded.data["dataset"])
    default = load_split_spec(ws, dataset)
    try:
        split = TrainSpec.from_dict(dict(loaded.spec)).split_spec(default)
    except (TLCoreError, TypeError):  # a spec of another version: the dataset's own split settings
        split = default
    index = dataset_splits(ws, dataset, split)
    index = index[index["split"] != ""].sort_values("relpath", kind="stable").reset_index(drop=True)
    return index.drop_duplicates("relpath").reset_index(drop=True)


def _subset(rows, y: np.ndarray, limit: int):
    from tlcore.pipeline import nested_subset

    keep = nested_subset(rows, y, limit / len(rows)) if len(rows) > limit else None
    if keep is None:
        return rows, y
    return rows.iloc[keep].reset_index(drop=True), y[keep]


def _labels(rows, loaded: LoadedModel) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(loaded.class_names)}
    return rows["label"].map(lookup).to_numpy(dtype=np.int64)


def check_images(loaded: LoadedModel, ws: Workspace, *, limit: int = 2000) -> CheckImages:
    """The run's held-out images to check an export on (see the module docstring).

    Never raises for a missing run folder, dataset or image: the result is then empty and
    ``reason`` says why.
    """
    from tlcore.cache import ArrayCache
    from tlcore.pipeline import dataset_fingerprint, load_image_array

    data = loaded.data
    if loaded.run_dir is None or not data.get("dataset") or not isinstance(data.get("test_files"), list):
        return CheckImages.nothing(loaded, "the model was not exported from the run folder the trainer wrote "
                                   "(its data.json names the test images)")
    try:
        index = _index_and_splits(loaded, ws)
        known = index[index["label"].isin(loaded.class_names)]
        wanted = [str(r) for r in data["test_files"]]
        split = "test" if wanted else "val"
        if wanted:
            by_rel = known.set_index("relpath", drop=False)
            present = [r for r in wanted if r in by_rel.index]
            rows = by_rel.loc[present].reset_index(drop=True)
            missing = len(wanted) - len(present)
            fingerprint = (data.get("fingerprint") or {}).get("test")
            # None: a run without a fingerprint (unknown), never "changed"
            same = (not missing and dataset_fingerprint(rows) == fingerprint) if fingerprint else None
        else:  # trained without a test split
            rows = known[known["split"] == "val"].reset_index(drop=True)
            missing = 0
            fingerprint = (data.get("fingerprint") or {}).get("val")
            same = dataset_fingerprint(rows) == fingerprint if fingerprint else None
        if not len(rows):
            return CheckImages.nothing(loaded, f"none of the run's {split} images are in dataset "
                                       f"{data['dataset']!r} any more")
        y = _labels(rows, loaded)
        available = len(rows)
        rows, y = _subset(rows, y, limit)
        # The whole split is in the image cache since training; a subset is decoded afresh.
        cache = ArrayCache(ws.cache_dir / "images") if len(rows) == available else None
        x = load_image_array(rows, loaded.image_size, loaded.resize_mode, cache=cache)
    except (TLCoreError, OSError) as exc:
        return CheckImages.nothing(loaded, f"the run's images could not be read ({exc})")
    return CheckImages(x=x, y=y, split=split, available=available, missing=missing, same_as_training=same)


def representative_images(loaded: LoadedModel, ws: Workspace, *, count: int = 200) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to ``count`` of the run's training images (stratified, deterministic), as the model takes them.

    Returns:
        ``(x, info)``: N×S×S×3 uint8 and what was used (``images``, ``train_images``,
        ``split``, ``same_as_training``).

    Raises:
        ConfigError: the model has no run folder, its dataset or training images are gone,
            or an image cannot be decoded.
    """
    from tlcore.pipeline import dataset_fingerprint, load_image_array

    data = loaded.data
    name = loaded.run_dir or loaded.model_path
    fix = ("Export from the run folder the trainer wrote, with its dataset registered in this workspace and its "
           "images in place (rescan the dataset if they moved), or choose tflite_dynamic or tflite_float16, "
           "which need no data.")
    if loaded.run_dir is None or not data.get("dataset"):
        raise ConfigError("Full-integer (int8) quantization calibrates on the run's training images, but this "
                          "model has no run folder naming its dataset.", received=str(name), fix=fix)
    try:
        index = _index_and_splits(loaded, ws)
        test = {str(r) for r in data.get("test_files") or []}
        rows = index[(index["split"] == "train") & index["label"].isin(loaded.class_names)
                     & ~index["relpath"].isin(sorted(test))].reset_index(drop=True)
        if not len(rows):
            raise ConfigError("The run's dataset has no training images left.", received=str(data["dataset"]))
        total = len(rows)
        same = dataset_fingerprint(rows) == (data.get("fingerprint") or {}).get("train")
        rows, _ = _subset(rows, _labels(rows, loaded), count)
        x = load_image_array(rows, loaded.image_size, loaded.resize_mode, cache=None)
    except (TLCoreError, OSError) as exc:
        detail = exc.message if isinstance(exc, TLCoreError) else str(exc)
        where = f" ({exc.received})" if isinstance(exc, TLCoreError) and exc.received else ""
        raise ConfigError(
            "The int8 export needs the run's training images to calibrate on, and they cannot be read: "
            f"{detail.rstrip('.')}{where}.",
            received=f"dataset {data['dataset']!r} of {name}",
            fix=fix,
        ) from exc
    return x, {"split": "train", "images": int(len(x)), "train_images": int(total), "same_as_training": bool(same)}


def reference_probabilities(loaded: LoadedModel, x: np.ndarray) -> np.ndarray:
    """The run's Keras model on ``x``: raw softmax probabilities (N×C float32)."""
    if not len(x):
        return np.zeros((0, loaded.num_classes), np.float32)
    return np.asarray(forward_batches(loaded.model, x, BATCH), dtype=np.float32)


# --------------------------------------------------------------- runners
def _interpreter(path: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return Interpreter(model_path=str(path), num_threads=threads)


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    if scale == 1.0 and zero == 0 and dtype == np.uint8 and x.dtype == np.uint8:
        return x  # raw pixels, exactly
    info = np.iinfo(dtype)
    q = np.rint(x.astype(np.float32) / (scale or 1.0)) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


class _TFLite:
    def __init__(self, path: Path, threads: int):
        self.interp = _interpreter(path, threads)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.batch = -1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self.batch:
            self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interp.allocate_tensors()
            self.batch = len(x)
        self.interp.set_tensor(self.inp["index"], _quantize(x, self.inp))
        self.interp.invoke()
        return _dequantize(self.interp.get_tensor(self.out["index"]), self.out)


def _keras_runner(path: Path) -> Runner:
    import keras

    register_layers()  # a model built on a Caffe-style backbone holds tlcore's own layer
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    return lambda x: keras.ops.convert_to_numpy(model(x.astype(np.float32), training=False))


def _savedmodel_runner(path: Path) -> Runner:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]

    def run(x: np.ndarray) -> np.ndarray:
        out = serve(**{name: tf.constant(x, dtype=tf.float32)})
        return next(iter(out.values())).numpy()

    return run


def _onnx_runner(path: Path, threads: int) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError("Checking an ONNX export needs ONNX Runtime, which is not installed.",
                          fix="pip install onnxruntime (it is in requirements.txt).") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: np.asarray(session.run(None, {name: x.astype(np.float32)})[0], np.float32)


def load_runner(runtime: str, path: str | os.PathLike[str], *, threads: int | None = None) -> Runner:
    """A callable running the exported file at ``path``: ``N×S×S×3 uint8 -> N×C float32`` probabilities.

    Args:
        runtime: one of ``RUNTIMES``.
        path: the exported file (a folder for the SavedModel).
        threads: CPU threads for the TFLite interpreter and ONNX Runtime. Defaults to
            ``tlcore.runtime.cpu_threads()``.
    """
    path = Path(path)
    n = threads or cpu_threads()
    if runtime == "keras":
        return _keras_runner(path)
    if runtime == "savedmodel":
        return _savedmodel_runner(path)
    if runtime == "tflite":
        return _TFLite(path, n)
    if runtime == "onnx":
        return _onnx_runner(path, n)
    raise ConfigError("Unknown runtime.", received=f"runtime={runtime!r}", fix=f"Use one of: {', '.join(RUNTIMES)}.")


def tflite_io(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The input and output tensors of a ``.tflite`` file: dtype, and scale and zero point when quantized."""
    interp = _interpreter(Path(path), 1)

    def describe(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": np.dtype(d["dtype"]).name}
        scale, zero = d["quantization"]
        if scale:
            out.update(scale=float(scale), zero_point=int(zero))
        return out

    return {"input": describe(interp.get_input_details()[0]), "output": describe(interp.get_output_details()[0])}


# ---------------------------------------------------------------- checks
def _batched(runner: Runner, x: np.ndarray) -> np.ndarray:
    return np.concatenate([runner(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def latency_ms(runner: Runner, image: np.ndarray, *, calls: int = LATENCY_CALLS, warmup: int = WARMUP_CALLS) -> float:
    """Median wall time of ``calls`` single-image calls after ``warmup`` ones, in milliseconds."""
    one = np.asarray(image, np.uint8)[None]
    for _ in range(warmup):
        runner(one)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        runner(one)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def check_format(runner: Runner, images: CheckImages, reference: np.ndarray, *,
                 latency_calls: int = LATENCY_CALLS) -> dict[str, Any]:
    """The figures of one export against the reference on ``images``.

    Returns:
        ``{"images", "accuracy", "agreement", "max_abs_prob_diff", "latency_ms"}``; the
        first four are None when ``images`` is empty (latency is then measured on a black image).
    """
    figures: dict[str, Any] = {"images": int(len(images.x)), "accuracy": None, "agreement": None,
                               "max_abs_prob_diff": None}
    if len(images.x):
        probs = _batched(runner, images.x)
        if probs.shape != reference.shape:
            raise ConfigError("The exported model returns outputs of another shape than the Keras model.",
                              received=f"{probs.shape} instead of {reference.shape}")
        pred = probs.argmax(axis=1)
        figures.update(
            accuracy=float((pred == images.y).mean()),
            agreement=float((pred == reference.argmax(axis=1)).mean()),
            max_abs_prob_diff=float(np.abs(probs.astype(np.float64) - reference).max()),
        )
        if not math.isfinite(figures["max_abs_prob_diff"]):
            figures["max_abs_prob_diff"] = float("inf")
        sample = images.x[0]
    else:
        sample = np.zeros(images.x.shape[1:], np.uint8)
    figures["latency_ms"] = latency_ms(runner, sample, calls=latency_calls)
    return figures


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how likely k or more of n images disagree when each one
    does with probability p (SciPy's survival function, exact for thousands of images).

    Raises:
        ValueError: ``n`` negative, or ``p`` outside [0, 1].
    """
    from scipy.stats import binom

    k, n, p = int(k), int(n), float(p)
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial_tail needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    return 1.0 if k <= 0 else float(binom.sf(k - 1, n, p))


def machine(threads: int | None = None) -> str:
    """This machine in words, for the latency figures."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = threads or cpu_threads()
    return (f"{name or platform.machine()}, {os.cpu_count()} CPUs visible, "
            f"{counted(n, 'thread')} for TFLite and ONNX Runtime")
