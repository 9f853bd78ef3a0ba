"""Export a trained model for serving, check every format against the Keras model, write a model card.

Formats (``FORMATS``; ``DEFAULT_FORMATS`` are the first four):

- ``keras``: ``model.keras``, a copy of the run's Keras 3 file (any backend loads it).
- ``savedmodel``: ``saved_model/``, a TensorFlow SavedModel whose ``serving_default``
  signature takes ``image`` (float32, ``[batch, S, S, 3]``) and returns ``output_0``
  (``[batch, C]`` probabilities). TensorFlow serving, TF.js and TFLite start from it.
- ``tflite``: ``model.tflite``, float32 TensorFlow Lite.
- ``tflite_dynamic``: ``model_dynamic_range.tflite``, dynamic-range quantized (int8
  weights, float activations): about a quarter of the size, nearly the same answers.
- ``tflite_float16``: ``model_float16.tflite``, float16 weights (float32 input, output
  and arithmetic on CPUs; a GPU delegate can compute in float16): about half the size.
- ``tflite_int8``: ``model_int8.tflite``, full-integer quantization (every operation
  int8, for NPUs, DSPs, Edge TPUs and microcontrollers). Input **uint8**, the raw RGB
  pixels: the input is calibrated to exactly 0-255 (scale 1, zero point 0; the model
  card records the values), so a decoded image goes in unchanged. Output **float32**
  probabilities (the int8 softmax, dequantized by the model's last operation). The
  quantization ranges are calibrated on ``REPRESENTATIVE_IMAGES`` training images of the
  run (stratified, deterministic, decoded exactly as in training): it needs the run
  folder and its dataset in the workspace, and refuses clearly without them. Before
  conversion the convolution weights of a copy of the model are rounded to the int8 grid
  by data-aware rounding on ``quantize.ROUNDING_IMAGES`` of those images
  (``tlcore.quantize``; ``int8_rounding="nearest"`` skips it), which on the demo model
  took the int8 file's agreement with Keras from 66 to 70 of 70 test images.
- ``onnx``: ``model.onnx``, ONNX (float32, dynamic batch) for ONNX Runtime and the many
  tools that read ONNX. Written by Keras' own ``model.export(format="onnx")``, which on the
  TensorFlow backend traces the same function as the SavedModel and converts it with
  tf2onnx (patched by Keras for numpy 2): one code path that Keras maintains, rather than a
  second SavedModel-to-ONNX conversion here. Needs ``tf2onnx`` and ``onnx``.

SavedModel, TFLite and ONNX need TensorFlow: ``KERAS_BACKEND=tensorflow``. Every format
takes raw RGB 0-255 images (the backbone's preprocessing is inside the model).

**Every export is checked right after it is written** (``tlcore.exportcheck``): each
file is run by its own runtime (Keras, TensorFlow, the TFLite interpreter, ONNX Runtime)
on the run's test split (at most ``max_check_images``; the validation split for a run
trained without a test split) and compared with the run's Keras model: accuracy, top-1
agreement, largest absolute probability difference, file size (bytes, and percent of the
float32 TFLite file when it is exported, else of the Keras file: ``size_reference`` says
which) and single-image latency on this machine (median of 20 calls after 3 warm-up
calls). A format fails its check when its agreement is *significantly* below
``MIN_AGREEMENT`` (99.5 % for the float32 formats, 98 % for the reduced-precision ones:
float16, dynamic range, int8): with k of the n check images classified otherwise than by
Keras, the one-sided exact binomial test of "the true disagreement rate is at most
1 - MIN_AGREEMENT" gives p = P(X >= k | n, 1 - MIN_AGREEMENT) (``agreement_verdict``), and
the format fails when p < ``SIGNIFICANCE`` (0.05). On a small check set one image moves the
agreement by points (1.4 on the demo's 70 test images), so the point estimate alone would
mostly measure sampling noise: on 70 images a float32 format fails from 2 disagreements and
a reduced-precision one from 5; on 2,000 images from 16 (99.20 %) and 52 (97.40 %). A format
that passes with its agreement under the threshold is shown as passed with a note
(``check_note``: "2 of 70 differ; within what 70 images can tell from 98 %"). The check
entry records ``disagreements`` (k), ``images`` (n) and ``p_value`` beside ``agreement``,
``min_agreement`` and ``passed``. A format that fails, or which cannot be run at all, is
named in ``warnings``: in the result, in the card, in red by the CLI and in an error box on
the Results page; so is each damaged file of the source folder
(``LoadedModel.notes``: e.g. a ``metrics.json`` that cannot be read, so the export is not
calibrated). A model without its run folder or dataset is exported but not checked, and the
card says why (``checks.checked`` false, ``checks.reason``).

Every export also writes ``labels.txt`` and ``model_card.json``: what the model
expects (raw RGB 0-255, S×S, the resize rule), what it returns, the backbone and its
weights, the training spec, the dataset and its fingerprint, the metrics, the checks,
how the quantized formats were quantized, and the size and SHA-256 of every file. The
folder is built beside ``out_dir`` and renamed into place when complete, so a failed
export (a conversion error, a full disk) never leaves half a folder, and an existing
folder replaced with ``overwrite`` stays as it was.

``export_model(source, out_dir, formats)`` takes anything ``tlcore.predict.load_model``
takes (a run folder, a search trial's run folder, a ``.keras`` file) and returns an
``ExportResult``. Callers: ``python -m tlcore export`` (``cli._train``), the Results page
(``tlui.results_widgets.export_zip``) and ``bench/bench_export.py``.

Example:

>>> result = export_model("workspace/models/demo-...", "exports/demo", formats=("keras", "tflite"))
>>> sorted(result.files)
['labels.txt', 'model.keras', 'model.tflite']
>>> result.checks["formats"]["tflite"]["agreement"], result.warnings
(1.0, ())
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlcore import __version__
from tlcore import exportcheck as _check
from tlcore._fsutil import atomic_directory, atomic_write_json, atomic_write_text
from tlcore.config import RESIZE_RULES
from tlcore.errors import ConfigError, TLCoreError, WorkspaceError
from tlcore.predict import LoadedModel, load_model
from tlcore.quantize import INT8_ROUNDING
from tlcore.runfolder import MODEL_FILE, RunFolder, labels_text
from tlcore.workspace import Workspace

__all__ = ["export_model", "check_formats", "ExportResult", "FORMATS", "DEFAULT_FORMATS", "FILE_NAMES", "MIN_AGREEMENT",
           "SIGNIFICANCE", "REPRESENTATIVE_IMAGES", "MAX_CHECK_IMAGES", "INT8_ROUNDING", "workspace_for",
           "agreement_verdict", "check_note", "verdict_text", "rule_text"]

FORMATS = ("keras", "savedmodel", "tflite", "tflite_dynamic", "tflite_float16", "tflite_int8", "onnx")
DEFAULT_FORMATS = ("keras", "savedmodel", "tflite", "tflite_dynamic")
FILE_NAMES = {
    "keras": MODEL_FILE,
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "tflite_dynamic": "model_dynamic_range.tflite",
    "tflite_float16": "model_float16.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}
_TF_FORMATS = ("savedmodel", "tflite", "tflite_dynamic", "tflite_float16", "tflite_int8", "onnx")
_TFLITE_MODES = {"tflite": "float32", "tflite_dynamic": "dynamic", "tflite_float16": "float16", "tflite_int8": "int8"}
_RUNTIMES = {"keras": "keras", "savedmodel": "savedmodel", "onnx": "onnx"} | {f: "tflite" for f in _TFLITE_MODES}

MIN_AGREEMENT = {
    "keras": 0.995, "savedmodel": 0.995, "tflite": 0.995, "onnx": 0.995,
    "tflite_float16": 0.98, "tflite_dynamic": 0.98, "tflite_int8": 0.98,
}
"""The top-1 agreement with the Keras model each format is held to. The float32 formats compute the
same function up to rounding order (99.5 %). The reduced-precision ones change the weights on
purpose (98 %, the usual bar for post-training quantization): float16 weights too, which flip
near-ties (on the demo model, one test image in 70 whose top two classes were 0.003 apart).

The check images are a sample, so a format fails only when its agreement on them is
*significantly* below the bar: ``agreement_verdict`` tests "the true disagreement rate is at most
1 - MIN_AGREEMENT[f]" against the k disagreements of n images (one-sided exact binomial test) and
fails it when P(X >= k) < ``SIGNIFICANCE``. An agreement under the bar that n images cannot tell
from it (2 of 70 at 98 %) passes, with a note."""

SIGNIFICANCE = 0.05
"""The significance level of the agreement check: a format fails when, were its true agreement exactly
``MIN_AGREEMENT``, at least as many disagreements as seen would happen less often than this
(P(X >= k | n, 1 - MIN_AGREEMENT) < 0.05). So a file whose true agreement meets its threshold is
flagged at most one time in 20, and the shortfall that still passes shrinks as the check set grows
(roughly as 1/sqrt(n)): at 98 %, up to 4 disagreements of 70 images pass (94.28 %), up to 51 of 2,000
(97.45 %)."""

REPRESENTATIVE_IMAGES = 200
"""Training images the int8 quantization is calibrated on (stratified; fewer when the split is smaller)."""

NEAREST_ROUNDING = {"method": "nearest (TFLite's own)"}
"""The model card's ``weight_rounding`` when TFLite rounds the int8 weights itself."""

MAX_CHECK_IMAGES = 2000
"""The most test images an export is checked on (a stratified, deterministic subset beyond it)."""


@dataclass(frozen=True)
class ExportResult:
    """What ``export_model`` wrote and what the checks found.

    Attributes:
        out_dir: the export folder.
        formats: the formats exported, in ``FORMATS`` order.
        files: every file written (relative path -> ``{"bytes", "sha256"}``), the
            model card itself excepted.
        model_card: the content of ``model_card.json``.
        checks: the card's ``checks`` section: ``checked``, ``reason`` (why not),
            ``split``, ``images``, ``thresholds``, ``size_reference``, ``latency`` (how it
            was measured) and ``formats``: per format ``accuracy``, ``agreement``,
            ``max_abs_prob_diff``, ``bytes``, ``size_pct``, ``latency_ms``, ``min_agreement``,
            ``images`` (n), ``disagreements`` (k), ``p_value`` (``agreement_verdict``), ``passed``
            (and ``error`` when the file could not be run).
        warnings: one sentence per format that failed its check (also in the card).
    """

    out_dir: Path
    formats: tuple[str, ...]
    files: dict[str, dict[str, Any]]
    model_card: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def path(self, fmt: str) -> Path:
        """Where one format's file (or folder, for savedmodel) is."""
        return self.out_dir / FILE_NAMES[fmt]


def check_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """The formats asked for (a list, or a comma-separated string), in ``FORMATS`` order; a
    ``ConfigError`` for an unknown one or none. Numpy only: the CLI checks ``--format`` with it
    before the backend starts."""
    if isinstance(formats, str):
        formats = [f for f in formats.replace(" ", "").split(",") if f]
    wanted = list(formats)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ConfigError(
            "Unknown export format." if unknown else "No export format was given.",
            received=f"formats={wanted!r}",
            fix=f"Use one or more of: {', '.join(FORMATS)}.",
        )
    return tuple(f for f in FORMATS if f in wanted)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _share(folder: Path) -> None:
    """Give the export the usual permissions (temporary files and folders are private to the user)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for p in folder.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _inventory(folder: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            files[p.relative_to(folder).as_posix()] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
    return files


def _first_line(exc: Exception, limit: int) -> str:
    """The first line of an error's message (its type's name when it has none), cut at ``limit``."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def _failed(what: str, exc: Exception) -> Exception:
    """A converter's error as a ``ConfigError``; a full disk (TensorFlow reports it in its own
    error types) as the ``OSError`` that ``atomic_directory`` turns into "the disk is full"."""
    if "No space left on device" in str(exc):
        return OSError(errno.ENOSPC, f"{what}: no space left on device")
    detail = _first_line(exc, 300)
    return ConfigError(
        f"{what} failed ({type(exc).__name__}: {detail}).",
        fix="Export the 'keras' format, which always works, and report the problem with the backbone's name.",
    )


def _saved_model(loaded: LoadedModel, path: Path) -> None:
    try:
        loaded.model.export(str(path), format="tf_saved_model", verbose=False)
    except OSError:
        raise
    except Exception as exc:  # TensorFlow tracing errors have many types
        raise _failed("Writing the SavedModel", exc) from exc


def _calibration_data(x: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    """The int8 converter's representative dataset: one image per step, float32 0-255.

    One pixel of the first image is set to 0 and one to 255, so the input's calibrated range
    is exactly 0-255 whatever the images hold: a uint8 input then has scale 1 and zero
    point 0, and raw pixels go in unchanged.
    """
    data = x.astype(np.float32)
    if len(data):
        data[0, 0, 0, :] = 0.0
        data[0, -1, -1, :] = 255.0

    def steps() -> Iterable[list[np.ndarray]]:
        for i in range(len(data)):
            yield [data[i:i + 1]]

    return steps


def _tflite(saved_model_dir: Path, out: Path, *, mode: str, representative: np.ndarray | None = None) -> None:
    """Convert the SavedModel to TFLite: ``mode`` "float32", "dynamic", "float16" or "int8"."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = _calibration_data(representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8  # raw pixels; the output stays float32
        content = converter.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise _failed(f"The TFLite conversion ({mode})", exc) from exc
    out.write_bytes(content)


def _onnx(loaded: LoadedModel, path: Path) -> None:
    """Keras' own ONNX export (tf2onnx on the SavedModel's traced function; see the module docstring)."""
    import logging

    quiet = [logging.getLogger(name) for name in ("tf2onnx", "onnx")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        if not getattr(loaded.model, "_called", True):  # Keras' ONNX export refuses a model never called
            s = loaded.image_size
            loaded.model(np.zeros((1, s, s, 3), np.float32), training=False)
        loaded.model.export(str(path), format="onnx", verbose=False)
    except OSError:
        raise
    except Exception as exc:  # tf2onnx raises many types
        raise _failed("The ONNX conversion", exc) from exc
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def _metrics_summary(loaded: LoadedModel) -> dict[str, Any]:
    m = loaded.metrics
    test = m.get("test") if isinstance(m.get("test"), dict) else {}
    per_class = test.get("per_class") or []
    return {
        "best_val_accuracy": m.get("best_val_accuracy"),
        "best_epoch": m.get("best_epoch"),
        "test_accuracy": m.get("test_accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "test_per_class_f1": {str(r.get("class")): r.get("f1") for r in per_class if isinstance(r, dict)},
        "num_train": m.get("num_train"),
        "num_val": m.get("num_val"),
        "num_test": m.get("num_test"),
    }


def _backbone_card(spec: dict[str, Any]) -> dict[str, Any]:
    name = spec.get("backbone")
    card: dict[str, Any] = {"name": name, "weights": spec.get("weights")}
    if name:
        try:
            from tlcore import backbones

            info = backbones.get(str(name))
        except (TLCoreError, ImportError):
            return card
        card.update(display_name=info.display_name, weights_source=info.weights_sources,
                    preprocessing_inside_model=info.preprocessing, num_blocks=info.num_blocks)
    return card


def _model_card(loaded: LoadedModel, source: Path, formats: Sequence[str]) -> dict[str, Any]:
    import keras

    from tlcore.calibration import card_entry

    s = loaded.image_size
    versions = {"tlcore": __version__, "keras": keras.__version__, "backend": keras.backend.backend()}
    try:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    except ImportError:
        pass
    data = loaded.data
    return {
        "card_version": 1,
        "name": loaded.name,
        "task": "image classification",
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "exported_from": str(source),
        "versions": versions,
        "formats": {f: FILE_NAMES[f] for f in formats},
        "input": {
            "shape": [s, s, 3],
            "dtype": "float32 (uint8 pixel values converted to float; no scaling)",
            "range": "raw RGB 0-255; the backbone's preprocessing is inside the model",
            "image_size": s,
            "resize_mode": loaded.resize_mode,
            "resize_rule": RESIZE_RULES.get(loaded.resize_mode, ""),
            "decoding": "RGB; EXIF orientation applied; transparency composited on white; 16-bit scaled to 8-bit",
            "batch": "any batch size (Keras, SavedModel); TFLite is built for batch 1, call "
            "resize_tensor_input for more",
            "savedmodel_signature": "serving_default: image [batch, S, S, 3] float32 -> output_0 [batch, C]",
        },
        "output": {
            "shape": [loaded.num_classes],
            "meaning": "softmax class probabilities, in labels.txt order",
        },
        # The exports return the raw softmax; calibration is a documented post-processing step.
        "calibration": card_entry(loaded.temperature, loaded.metrics),
        "classes": list(loaded.class_names),
        "backbone": _backbone_card(loaded.spec),
        "training": dict(loaded.spec),
        "dataset": {"name": data.get("dataset") or loaded.spec.get("dataset"),
                    "fingerprint": data.get("fingerprint")},
        "metrics": _metrics_summary(loaded),
    }


def _onnx_tools(fmts: Sequence[str]) -> None:
    """Refuse an ONNX export up front when its converter is not installed."""
    if "onnx" not in fmts:
        return
    import importlib.util

    missing = [m for m in ("tf2onnx", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            "The ONNX export needs tf2onnx and onnx, which are not installed.",
            received=f"missing: {', '.join(missing)}",
            fix="Install them (pip install -r requirements.txt, or pip install tf2onnx onnx onnxruntime), "
            "or choose other formats.",
        )


def workspace_for(loaded: LoadedModel, workspace: Workspace | str | os.PathLike[str] | None) -> Workspace:
    """The workspace holding the run's dataset: the one given, else the one a run under
    ``<workspace>/models/`` lies in, else the default (``$TLCORE_HOME``)."""
    if isinstance(workspace, Workspace):
        return workspace
    if workspace is not None:
        return Workspace(workspace)
    run = loaded.run_dir
    if run is not None and run.resolve().parent.name == "models":
        return Workspace(run.resolve().parent.parent)
    return Workspace()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _pct_down(x: float) -> str:
    """A share as a percentage, rounded down (a missed threshold never reads as met)."""
    return f"{math.floor(x * 10000) / 100:.2f} %"


def agreement_verdict(disagreements: int, images: int, min_agreement: float) -> tuple[bool, float]:
    """Whether a format passes its agreement check, and the p-value behind the verdict.

    One-sided exact binomial test of H0 "the true disagreement rate is at most 1 - ``min_agreement``":
    p = P(X >= k) for X ~ Binomial(n, 1 - ``min_agreement``), k = ``disagreements``, n = ``images``.
    The format fails when p < ``SIGNIFICANCE``: its agreement is significantly below the threshold.

    >>> agreement_verdict(2, 70, 0.98)[0], agreement_verdict(5, 70, 0.98)[0]
    (True, False)
    """
    p = _check.binomial_tail(disagreements, images, 1.0 - min_agreement)
    return p >= SIGNIFICANCE, p


def _pct_short(x: float) -> str:
    """A threshold as a percentage without trailing zeros: 0.98 -> "98 %", 0.995 -> "99.5 %"."""
    return f"{round(100 * x, 4):g} %"


def _p_text(p: float) -> str:
    """A p-value in two significant digits, rounded down (a failed check never reads as close to passing)."""
    if p < 1e-4:
        return "p < 0.0001"
    e = math.floor(math.log10(p))
    digits = math.floor(round(p / 10.0 ** (e - 1), 9)) * 10.0 ** (e - 1)
    return f"p = {digits:.{max(0, 1 - e)}f}"


def check_note(entry: dict[str, Any]) -> str:
    """For a format that passed its check with its agreement under the threshold, why it passed:
    "2 of 70 differ; within what 70 images can tell from 98 %". "" for any other entry (also one
    from a card written before ``disagreements`` was recorded)."""
    agreement, threshold, n = entry.get("agreement"), entry.get("min_agreement"), entry.get("images")
    if entry.get("passed") is not True or agreement is None or threshold is None or not n or agreement >= threshold:
        return ""
    k = entry.get("disagreements")
    k = int(round((1.0 - agreement) * n)) if k is None else int(k)
    return f"{k} of {n} differ; within what {n} images can tell from {_pct_short(threshold)}"


def _scratch(tmp: Path) -> Path:
    """A scratch folder for the intermediate SavedModels, inside the export folder being built
    (``atomic_directory``'s temporary one): deleted once the TFLite files are written, and with that
    folder when the export fails or is killed (then by the next export's sweep)."""
    scratch = tmp / ".scratch"
    scratch.mkdir(exist_ok=True)
    return scratch


def verdict_text(entry: dict[str, Any]) -> str:
    """A format's check in words, as the CLI's table and the Results page show it: "ok", "FAILED",
    "not checked", or "ok (2 of 70 differ; …)" for a pass under the threshold (``check_note``)."""
    verdict = {True: "ok", False: "FAILED", None: "not checked"}[entry.get("passed")]
    note = check_note(entry)
    return f"{verdict} ({note})" if note else verdict


def rule_text(checks: dict[str, Any]) -> str:
    """The sentence that explains a pass under the threshold, when a format of ``checks`` has one
    (``check_note``); "" otherwise."""
    if not any(check_note(c) for c in (checks.get("formats") or {}).values()):
        return ""
    return (f"A format fails when its agreement is significantly below its threshold (one-sided binomial test, "
            f"p < {SIGNIFICANCE:g}); on {checks.get('images')} images a shortfall of a few is sampling noise.")


def _check_all(tmp: Path, fmts: Sequence[str], loaded: LoadedModel, images: _check.CheckImages,
               status: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """Run every exported file in its own runtime against the Keras model: the card's ``checks``
    section and the warnings (one per format that could not be run or disagrees too often)."""
    reference = _check.reference_probabilities(loaded, images.x)
    sizes = {f: _size(tmp / FILE_NAMES[f]) for f in fmts}
    size_ref = "tflite" if "tflite" in fmts else "keras"
    ref_bytes = sizes["tflite"] if "tflite" in fmts else loaded.model_path.stat().st_size
    n, split = len(images.x), images.split
    results: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for f in fmts:
        runtime = _RUNTIMES[f]
        status(f"Checking {f} with {runtime}" + (f" on {n} {split} images" if n else " (latency only)"))
        entry: dict[str, Any] = {"file": FILE_NAMES[f], "runtime": runtime, "bytes": sizes[f],
                                 "size_pct": 100.0 * sizes[f] / ref_bytes if ref_bytes else None,
                                 "min_agreement": MIN_AGREEMENT[f]}
        try:
            runner = _check.load_runner(runtime, tmp / FILE_NAMES[f])
            entry.update(_check.check_format(runner, images, reference))
            del runner
        except Exception as exc:  # an export its own runtime cannot run is a failed check, not a crash
            detail = (str(exc).strip().splitlines() or [""])[0][:300]
            entry["error"] = f"{type(exc).__name__}: {detail}".rstrip(": ")
        agreement = entry.get("agreement")
        if "error" in entry:
            entry["passed"] = False
            warnings.append(f"{f} ({FILE_NAMES[f]}) could not be run by {runtime}: {entry['error']}. "
                            "Do not use this file; export again or report the problem.")
        elif agreement is None:
            entry.update(disagreements=None, p_value=None, passed=None)
        else:
            k = int(round((1.0 - agreement) * n))  # agreement is a share of the n images
            passed, p = agreement_verdict(k, n, MIN_AGREEMENT[f])
            entry.update(images=int(n), disagreements=k, p_value=p, passed=bool(passed))
            if not passed:
                warnings.append(
                    f"{f} ({FILE_NAMES[f]}) agrees with the Keras model on only {_pct_down(agreement)} of {n} "
                    f"{split} images ({k} of {n} differ), significantly below its threshold "
                    f"{_pct_down(MIN_AGREEMENT[f])} (one-sided binomial test, {_p_text(p)} < {SIGNIFICANCE:g}); "
                    f"largest probability difference {entry['max_abs_prob_diff']:.3f}. Check it on your own "
                    "images before you ship it, or choose a float format.")
        results[f] = entry
    checks: dict[str, Any] = {
        "checked": bool(n),
        "reason": images.reason or None,
        "split": split,
        "images": int(n),
        "split_images": int(images.available),
        "missing_images": int(images.missing),
        "same_images_as_training": images.same_as_training,
        "reference": "the run's Keras model, raw softmax, run in the exporting process",
        "thresholds": {"min_agreement": {f: MIN_AGREEMENT[f] for f in fmts}, "significance": SIGNIFICANCE,
                       "rule": "a format fails when its agreement is significantly below min_agreement: "
                               "p_value = P(X >= disagreements), X ~ Binomial(images, 1 - min_agreement), "
                               "below significance (one-sided exact binomial test)"},
        "size_reference": size_ref,
        "size_reference_bytes": int(ref_bytes),
        "latency": f"median of {_check.LATENCY_CALLS} single-image calls after {_check.WARMUP_CALLS} warm-up "
                   f"calls, in milliseconds, on {_check.machine()}",
        "formats": results,
    }
    notes = []
    if split == "val":
        notes.append("The run has no test split: checked on its validation split, on which training chose "
                     "its best epoch (agreement is still meaningful; accuracy is optimistic).")
    if images.missing:  # the accuracy above is not the run's test accuracy: say why, never silently
        notes.append(f"{images.missing} of the run's {images.missing + images.available} {split} images are gone "
                     f"from its dataset (removed, excluded or relabelled since training): checked on the other "
                     f"{images.available}, so the accuracy is not the run's test accuracy (agreement still is "
                     "meaningful).")
    elif images.same_as_training is False:
        notes.append(f"The {split} images changed since training (the dataset was re-registered, rescanned or "
                     "edited: the same file names hold other images), so the accuracy is not the run's test "
                     "accuracy (agreement still is meaningful). Register the original images again to compare "
                     "with training.")
    if notes:
        checks["note"] = " ".join(notes)
    return checks, warnings


def _rounded_saved_model(loaded: LoadedModel, representative: np.ndarray, scratch: Path) -> tuple[Path | None, dict[str, Any]]:
    """A SavedModel of a copy of the model with data-aware int8 rounding (``tlcore.quantize``), and its
    report; ``(None, report)`` when the rounding cannot be done on this model (the int8 file then keeps
    TFLite's nearest rounding, and the report says why): an improvement that fails never blocks the export."""
    from tlcore.quantize import ROUNDING_IMAGES, round_for_int8

    path = scratch / "saved_model_int8"
    try:
        copy, report = round_for_int8(loaded.model, representative[:ROUNDING_IMAGES])
        copy.export(str(path), format="tf_saved_model", verbose=False)
    except OSError:
        raise  # a full disk is the export's failure, reported with its folder
    except Exception as exc:  # Keras/TensorFlow errors have many types
        shutil.rmtree(path, ignore_errors=True)
        return None, {**NEAREST_ROUNDING,
                      "note": f"data-aware rounding failed on this model ({type(exc).__name__}: "
                              f"{_first_line(exc, 200)}); TFLite's nearest rounding was used"}
    return path, report


def _quantization_card(tmp: Path, fmts: Sequence[str], representative: dict[str, Any],
                       rounding: dict[str, Any]) -> dict[str, Any]:
    """How each quantized TFLite format was made, and the dtypes of its input and output."""
    card: dict[str, Any] = {}
    float_io = {"input": "float32, raw RGB 0-255", "output": "float32 probabilities"}
    if "tflite_dynamic" in fmts:
        card["tflite_dynamic"] = {"weights": "int8", "activations": "float32 (weights dequantized on the fly)",
                                  **float_io}
    if "tflite_float16" in fmts:
        card["tflite_float16"] = {"weights": "float16",
                                  "activations": "float32 on CPUs (float16 with a GPU delegate)", **float_io}
    if "tflite_int8" in fmts:
        io = _check.tflite_io(tmp / FILE_NAMES["tflite_int8"])
        inp = io["input"]
        exact = inp.get("scale") == 1.0 and inp.get("zero_point") == 0
        card["tflite_int8"] = {
            "weights": "int8",
            "activations": "int8 (every operation integer-only: TFLITE_BUILTINS_INT8)",
            "input": ("uint8, raw RGB 0-255 exactly (scale 1, zero point 0): feed the decoded pixels unchanged"
                      if exact else f"{inp['dtype']}: q = round(pixel / {inp.get('scale')}) + "
                      f"{inp.get('zero_point')}"),
            "output": "float32 probabilities (the int8 softmax dequantized by the last operation: steps of 1/256)",
            "tensors": io,
            "weight_rounding": rounding,
            "representative_data": {**representative,
                                    "how": "stratified by class, deterministic (ranked by content hash), "
                                           "decoded and resized as in training"},
        }
    return card


def export_model(
    run_or_model_path: str | os.PathLike[str] | LoadedModel,
    out_dir: str | os.PathLike[str],
    formats: str | Iterable[str] = DEFAULT_FORMATS,
    *,
    overwrite: bool = False,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    max_check_images: int = MAX_CHECK_IMAGES,
    int8_rounding: str = "data_aware",
    on_status: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a trained model into ``out_dir`` and check every format against the Keras model.

    Args:
        run_or_model_path: a run folder, an export folder, a ``.keras`` file (with
            ``labels.txt`` beside it), or an already loaded model.
        out_dir: the export folder to create.
        formats: any of ``FORMATS`` (a list, or a comma-separated string). Defaults to
            ``DEFAULT_FORMATS`` (keras, savedmodel, tflite, tflite_dynamic).
        overwrite: replace an existing ``out_dir`` (only once the new export is complete).
            Defaults to False.
        workspace: the workspace holding the run's dataset (its test images for the checks,
            its training images for int8 calibration). Defaults to the workspace a run under
            ``<workspace>/models/`` lies in, else ``$TLCORE_HOME``.
        max_check_images: the most test images the checks use. Defaults to ``MAX_CHECK_IMAGES``.
        int8_rounding: "data_aware" (``tlcore.quantize``: the int8 file is converted from a copy
            whose convolution weights are rounded on training images) or "nearest" (TFLite's
            own rounding only). Defaults to "data_aware".
        on_status: called with a short message before each step.

    Returns:
        An ``ExportResult``; its ``warnings`` name every format that failed its check.

    Raises:
        ConfigError: an unknown format; SavedModel/TFLite/ONNX under a non-TensorFlow backend;
            ONNX without tf2onnx; int8 without readable training images; a model that cannot
            be loaded (see ``tlcore.predict.load_model``); a conversion that fails.
        WorkspaceError: ``out_dir`` exists (without ``overwrite``), holds the model being
            exported, or cannot be written (a full disk: nothing is left behind).
    """
    fmts = check_formats(formats)  # before Keras starts: a mistyped format fails in a second
    import keras

    status = on_status or (lambda text: None)
    tf_needed = [f for f in fmts if f in _TF_FORMATS]
    if tf_needed and keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"Exporting {', '.join(tf_needed)} needs the TensorFlow backend.",
            received=f"KERAS_BACKEND={keras.backend.backend()}",
            fix="Run the export with KERAS_BACKEND=tensorflow (the model file itself works under any backend), "
            "or export only the 'keras' format.",
        )
    _onnx_tools(fmts)
    if int8_rounding not in INT8_ROUNDING:
        raise ConfigError("Unknown int8 rounding.", received=f"int8_rounding={int8_rounding!r}",
                          fix=f"Choose one of: {', '.join(INT8_ROUNDING)}.")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not overwrite:
        raise WorkspaceError(
            "The export folder already exists.",
            received=str(out),
            fix="Choose another folder, or overwrite it (--overwrite, overwrite=True).",
        )
    if out.exists() and not out.is_dir():
        raise WorkspaceError("The export path exists and is not a folder.", received=str(out),
                             fix="Choose another path.")
    if isinstance(run_or_model_path, LoadedModel):
        loaded = run_or_model_path
    else:
        status("Loading the model")
        loaded = load_model(run_or_model_path)
    source = loaded.run_dir or loaded.model_path
    if loaded.model_path.resolve().is_relative_to(out):
        raise WorkspaceError(
            "The export folder would replace the folder of the model being exported.",
            received=f"out_dir={out}",
            fix="Export into a new folder outside the run folder.",
        )
    if out.is_dir() and not RunFolder(out).model_card_file.is_file() and any(out.iterdir()):
        # --overwrite replaces an earlier export, never a folder of the user's own files
        raise WorkspaceError(
            "The folder to overwrite is not an earlier export (it has no model_card.json), so overwriting "
            "it would delete the files in it.",
            received=str(out),
            fix="Choose a new folder, or an earlier export folder to replace, or an empty one.",
        )
    ws = workspace_for(loaded, workspace)
    representative, rep_info, rounding = None, {}, dict(NEAREST_ROUNDING)
    if "tflite_int8" in fmts:  # before anything is written: no data, no int8 export
        status("Decoding the training images int8 quantization calibrates on")
        representative, rep_info = _check.representative_images(loaded, ws, count=REPRESENTATIVE_IMAGES)
    status("Decoding the images the export is checked on")
    images = _check.check_images(loaded, ws, limit=max_check_images)

    scratch: Path | None = None
    with atomic_directory(out, replace=overwrite) as tmp:  # a folder made meanwhile is never replaced
        if "keras" in fmts:
            status(f"Copying {MODEL_FILE}")
            shutil.copyfile(loaded.model_path, tmp / FILE_NAMES["keras"])
        saved = tmp / FILE_NAMES["savedmodel"]
        if "savedmodel" in fmts or any(f in _TFLITE_MODES for f in fmts):
            if "savedmodel" not in fmts:
                scratch = _scratch(tmp)
                saved = scratch / "saved_model"
            status("Writing the SavedModel")
            _saved_model(loaded, saved)
        for f, mode in _TFLITE_MODES.items():
            if f in fmts:
                source_model = saved
                if mode == "int8" and int8_rounding == "data_aware":
                    status("Rounding the weights for int8 on training images")
                    scratch = scratch or _scratch(tmp)
                    source_model, rounding = _rounded_saved_model(loaded, representative, scratch)
                    source_model = source_model or saved
                status(f"Converting to TFLite ({mode})")
                _tflite(source_model, tmp / FILE_NAMES[f], mode=mode, representative=representative)
        if scratch is not None:  # inside the folder being built: a kill leaves it to the next sweep
            shutil.rmtree(scratch, ignore_errors=True)
        if "onnx" in fmts:
            status("Converting to ONNX")
            _onnx(loaded, tmp / FILE_NAMES["onnx"])
        folder = RunFolder(tmp)
        atomic_write_text(folder.labels_file, labels_text(loaded.class_names))
        checks, warnings = _check_all(tmp, fmts, loaded, images, status)
        warnings = [*loaded.notes, *warnings]  # a damaged file of the source: the card must not hide it
        status("Writing the model card")
        card = _model_card(loaded, Path(source), fmts)
        card["input"]["dtype_by_format"] = {f: "uint8" if f == "tflite_int8" else "float32" for f in fmts}
        card["quantization"] = _quantization_card(tmp, fmts, rep_info, rounding)
        card["checks"] = checks
        card["warnings"] = warnings
        card["files"] = _inventory(tmp)
        atomic_write_json(folder.model_card_file, card)
        _share(tmp)
    return ExportResult(out_dir=out, formats=fmts, files=card["files"], model_card=card, checks=checks,
                        warnings=tuple(warnings))
