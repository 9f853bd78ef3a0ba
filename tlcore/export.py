"""Export a trained model for serving: Keras, SavedModel, TFLite, with labels and a model card.

Formats (``FORMATS``):

- ``keras``: ``model.keras``, a copy of the run's Keras 3 file (any backend loads it).
- ``savedmodel``: ``saved_model/``, a TensorFlow SavedModel whose ``serving_default``
  signature takes ``image`` (float32, ``[batch, S, S, 3]``) and returns ``output_0``
  (``[batch, C]`` probabilities). TensorFlow serving, TF.js and TFLite start from it.
- ``tflite``: ``model.tflite``, float32 TensorFlow Lite.
- ``tflite_dynamic``: ``model_dynamic_range.tflite``, dynamic-range quantized (int8
  weights, float activations): about a quarter of the size, nearly the same answers.

SavedModel and TFLite are TensorFlow's alone: they need ``KERAS_BACKEND=tensorflow``.

Every export also writes ``labels.txt`` and ``model_card.json``: what the model
expects (raw RGB 0-255, S×S, the resize rule), what it returns, the backbone and its
weights, the training spec, the dataset and its fingerprint, the metrics and the
size and SHA-256 of every file. The folder is built beside ``out_dir`` and renamed
into place when complete, so a failed export never leaves half a folder.

``export_model(source, out_dir, formats)`` takes anything ``tlcore.predict.load_model``
takes (a run folder, a search trial's run folder, a ``.keras`` file) and returns an
``ExportResult``. Callers: ``python -m tlcore export`` (``cli._train``) and the
Results page (``tlui.results_widgets.export_zip``).

Example:

>>> result = export_model("workspace/models/demo-...", "exports/demo", formats=("keras", "tflite"))
>>> sorted(result.files)
['labels.txt', 'model.keras', 'model.tflite']
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore import __version__
from tlcore._fsutil import atomic_directory, atomic_write_json, atomic_write_text
from tlcore.config import RESIZE_RULES
from tlcore.errors import ConfigError, TLCoreError, WorkspaceError
from tlcore.predict import LoadedModel, load_model
from tlcore.runfolder import MODEL_FILE, RunFolder, labels_text

__all__ = ["export_model", "ExportResult", "FORMATS", "FILE_NAMES"]

FORMATS = ("keras", "savedmodel", "tflite", "tflite_dynamic")
FILE_NAMES = {
    "keras": MODEL_FILE,
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "tflite_dynamic": "model_dynamic_range.tflite",
}
_TF_FORMATS = ("savedmodel", "tflite", "tflite_dynamic")


@dataclass(frozen=True)
class ExportResult:
    """What ``export_model`` wrote.

    Attributes:
        out_dir: the export folder.
        formats: the formats exported, in ``FORMATS`` order.
        files: every file written (relative path -> ``{"bytes", "sha256"}``), the
            model card itself excepted.
        model_card: the content of ``model_card.json``.
    """

    out_dir: Path
    formats: tuple[str, ...]
    files: dict[str, dict[str, Any]]
    model_card: dict[str, Any]

    def path(self, fmt: str) -> Path:
        """Where one format's file (or folder, for savedmodel) is."""
        return self.out_dir / FILE_NAMES[fmt]


def _check_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
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


def _failed(what: str, exc: Exception) -> ConfigError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
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


def _tflite(saved_model_dir: Path, out: Path, *, dynamic_range: bool) -> None:
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        if dynamic_range:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        content = converter.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise _failed("The TFLite conversion" + (" (dynamic range)" if dynamic_range else ""), exc) from exc
    out.write_bytes(content)


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
        "classes": list(loaded.class_names),
        "backbone": _backbone_card(loaded.spec),
        "training": dict(loaded.spec),
        "dataset": {"name": data.get("dataset") or loaded.spec.get("dataset"),
                    "fingerprint": data.get("fingerprint")},
        "metrics": _metrics_summary(loaded),
    }


def export_model(
    run_or_model_path: str | os.PathLike[str] | LoadedModel,
    out_dir: str | os.PathLike[str],
    formats: str | Iterable[str] = FORMATS,
    *,
    overwrite: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a trained model into ``out_dir``.

    Args:
        run_or_model_path: a run folder, an export folder, a ``.keras`` file (with
            ``labels.txt`` beside it), or an already loaded model.
        out_dir: the export folder to create.
        formats: any of "keras", "savedmodel", "tflite", "tflite_dynamic" (a list, or a
            comma-separated string). Defaults to all four.
        overwrite: replace an existing ``out_dir``. Defaults to False.
        on_status: called with a short message before each step.

    Returns:
        An ``ExportResult``.

    Raises:
        ConfigError: an unknown format; SavedModel/TFLite under a non-TensorFlow backend;
            a model that cannot be loaded (see ``tlcore.predict.load_model``).
        WorkspaceError: ``out_dir`` exists (without ``overwrite``), holds the model being
            exported, or cannot be written.
    """
    import keras

    status = on_status or (lambda text: None)
    fmts = _check_formats(formats)
    tf_needed = [f for f in fmts if f in _TF_FORMATS]
    if tf_needed and keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"Exporting {', '.join(tf_needed)} needs the TensorFlow backend.",
            received=f"KERAS_BACKEND={keras.backend.backend()}",
            fix="Run the export with KERAS_BACKEND=tensorflow (the model file itself works under any backend), "
            "or export only the 'keras' format.",
        )
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

    scratch: Path | None = None
    try:
        with atomic_directory(out, replace=True) as tmp:
            if "keras" in fmts:
                status(f"Copying {MODEL_FILE}")
                shutil.copyfile(loaded.model_path, tmp / FILE_NAMES["keras"])
            saved = tmp / FILE_NAMES["savedmodel"]
            if "savedmodel" in fmts or "tflite" in fmts or "tflite_dynamic" in fmts:
                if "savedmodel" not in fmts:
                    scratch = Path(tempfile.mkdtemp(prefix=".savedmodel.", dir=out.parent))
                    saved = scratch / "saved_model"
                status("Writing the SavedModel")
                _saved_model(loaded, saved)
            if "tflite" in fmts:
                status("Converting to TFLite (float32)")
                _tflite(saved, tmp / FILE_NAMES["tflite"], dynamic_range=False)
            if "tflite_dynamic" in fmts:
                status("Converting to TFLite (dynamic-range quantized)")
                _tflite(saved, tmp / FILE_NAMES["tflite_dynamic"], dynamic_range=True)
            folder = RunFolder(tmp)
            atomic_write_text(folder.labels_file, labels_text(loaded.class_names))
            status("Writing the model card")
            card = _model_card(loaded, Path(source), fmts)
            card["files"] = _inventory(tmp)
            atomic_write_json(folder.model_card_file, card)
            _share(tmp)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return ExportResult(out_dir=out, formats=fmts, files=card["files"], model_card=card)
