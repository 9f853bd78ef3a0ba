"""Use a trained model: load it, classify images, list the trained runs, re-evaluate a run.

A *run folder* (written by ``tlcore.trainer.train``; ``tlcore.runfolder`` names
and reads its files) holds ``model.keras`` (raw RGB 0-255 in, softmax probabilities
out), ``labels.txt`` (class names in output order), ``spec.yaml``, ``metrics.json``,
``history.json`` and ``data.json``. An export folder (``tlcore.export``) holds
``model.keras``, ``labels.txt`` and ``model_card.json``. ``load_model`` takes either
folder, or a ``.keras`` file with a ``labels.txt`` beside it.

Images are decoded and resized exactly as in training (``tlcore.datasets.load_rgb``
then ``resize_to`` with the run's image size and resize rule), so a photo gets
the same pixels here as it would have had in the training set.

Probabilities are calibrated: ``predict_arrays`` (so ``predict_images`` and
``evaluate_run`` too) applies the temperature the trainer fitted on the validation
split (``LoadedModel.temperature``, ``tlcore.calibration``; 1.0 for runs from before
calibration); ``predict_arrays(..., calibrated=False)`` gives the raw softmax that
the model file and its exports return.

A damaged file beside the model (``metrics.json``, ``data.json``, ``spec.yaml``, an export's
``model_card.json``: there, but not readable) does not stop a load, since the model is fine, but
it is never silent: ``LoadedModel.notes`` (``read_run_files``, which the Results page reads
without loading the model) says which file, what that changes (the predictions are not
calibrated; the resize rule is unknown and "pad" is used) and how to fix it. A missing file is
no note: a run from before calibration, or a hand-made folder, simply lacks it.

Entry points: ``resolve_model_path`` (a path or a run name under
``<workspace>/models``), ``load_model`` (``LoadedModel``; ``read_run_files``: ``RunFiles``), ``prepare_image``,
``predict_arrays``, ``predict_images``, ``top_predictions`` (``Prediction``),
``list_models`` (``ModelSummary``; runs under ``<workspace>/models`` only; ``scan_models``
adds a note for each run folder it cannot list; ``tlcore.catalog`` lists search trials and exports too), ``evaluate_run`` (the run's
test split again, via ``tlcore.evaluate``; ``tta=True``: flip-averaged, ``tlcore.tta``).
Callers: ``python -m tlcore predict`` (``cli._predict``) and ``models`` (``cli._train``),
``tlcore.export``, ``tlcore.batch_predict``, the Predict and Results pages (``tlui.data``).

Example:

>>> loaded = load_model("workspace/models/demo-efficientnet_lite0-feature_extraction-20260101-120000")
>>> [str(p) for p in predict_images(loaded, ["boot.png"], top_k=2)[0]]
['Ankle boot (93.1 %)', 'Sneaker (4.2 %)']
"""

from __future__ import annotations

import datetime as _dt
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.backbones import register_layers
from tlcore.calibration import apply_temperature, stored_temperature
from tlcore.config import DEFAULT_TOP_K, RESIZE_MODES, RESIZE_RULES
from tlcore.datasets import load_rgb, resize_to
from tlcore.errors import ConfigError, ImageDecodeError, NotFoundError, WorkspaceError
from tlcore.pipeline import decode_resized
from tlcore.runfolder import RunFolder, split_labels
from tlcore.tta import flip_average
from tlcore.workspace import Workspace

__all__ = [
    "LoadedModel",
    "Prediction",
    "ModelSummary",
    "RESIZE_RULES",  # re-exported from tlcore.config, which owns the resize modes
    "RunFiles",
    "load_model",
    "read_run_files",
    "read_labels",
    "resolve_model_path",
    "prepare_image",
    "predict_arrays",
    "predict_images",
    "top_predictions",
    "check_top_k",
    "DEFAULT_TOP_K",  # from tlcore.config, which the CLI's parser reads without this module
    "list_models",
    "scan_models",
    "evaluate_run",
]

ImageSource = np.ndarray | str | os.PathLike[str] | bytes | bytearray | memoryview


# ------------------------------------------------------------------ types
@dataclass(frozen=True)
class Prediction:
    """One class's score for one image.

    Attributes:
        label: the class name.
        index: the class's position in the model's output.
        probability: the softmax probability, 0-1.
    """

    label: str
    index: int
    probability: float

    def __str__(self) -> str:
        return f"{self.label} ({100.0 * self.probability:.1f} %)"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "probability": self.probability}


@dataclass
class LoadedModel:
    """A trained classifier ready to predict, with what is known about how it was trained.

    Treat it as read-only: pages share one instance between sessions.

    Attributes:
        model: the ``keras.Model`` (raw RGB 0-255, S×S×3 in; probabilities out).
        class_names: the class names, in output order.
        image_size: S, the input side in pixels.
        resize_mode: how images are made square ("pad", "crop" or "stretch").
        spec: the training spec as a dict (empty when unknown).
        run_dir: the run (or export) folder, or None for a lone ``.keras`` file.
        metrics: the run's ``metrics.json`` (empty when unknown).
        model_path: the ``.keras`` file.
        data: the run's ``data.json`` (dataset, fingerprints, test files; empty when unknown).
        temperature: the calibration temperature ``predict_arrays`` applies to the model's
            output (``tlcore.calibration``; from the run's ``metrics.json`` or the export's
            ``model_card.json``). 1.0, the raw softmax, for a model that was not calibrated.
        notes: one sentence per file beside the model that exists but cannot be read (or holds
            a value that cannot be used): which file, what that changes (e.g. "its predictions
            are not calibrated", "the resize rule is unknown: 'pad' is used") and how to fix it
            (``RunFiles.notes``). Empty for a folder whose files are all readable or missing.
    """

    model: Any
    class_names: list[str]
    image_size: int
    resize_mode: str
    spec: dict[str, Any]
    run_dir: Path | None
    metrics: dict[str, Any]
    model_path: Path
    data: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    notes: tuple[str, ...] = ()

    @property
    def calibrated(self) -> bool:
        """Whether predictions are temperature-scaled (a temperature other than 1.0 was stored)."""
        return self.temperature != 1.0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def name(self) -> str:
        """The run folder's name, or the model file's stem."""
        return self.run_dir.name if self.run_dir is not None else self.model_path.stem


@dataclass(frozen=True)
class ModelSummary:
    """One trained run in a workspace, as ``list_models`` finds it (nothing is loaded).

    Attributes:
        name: the run folder's name.
        path: the run folder.
        dataset, backbone, method: from the run's spec.
        image_size: the input side in pixels.
        freeze_depth: the spec's freeze depth (None: all blocks).
        epochs_run: epochs actually trained.
        best_val_accuracy, test_accuracy: from ``metrics.json`` (None when unknown).
        num_classes: lines of ``labels.txt``.
        created: when the model was saved, ISO 8601 (local time, seconds).
    """

    name: str
    path: Path
    dataset: str | None
    backbone: str | None
    method: str | None
    image_size: int | None
    freeze_depth: int | None
    epochs_run: int | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    num_classes: int
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.path), "dataset": self.dataset, "backbone": self.backbone,
            "method": self.method, "image_size": self.image_size, "freeze_depth": self.freeze_depth,
            "epochs_run": self.epochs_run, "best_val_accuracy": self.best_val_accuracy,
            "test_accuracy": self.test_accuracy, "num_classes": self.num_classes, "created": self.created,
        }


# ---------------------------------------------------------------- loading
def read_labels(path: Path) -> list[str]:
    """The class names of a ``labels.txt``: one per line, trailing blank lines ignored.

    The strict reader: a missing, unreadable or malformed file raises an error that
    says what to do (``RunFolder.read_labels`` is the tolerant one).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(
            "The model has no labels.txt beside it, so its outputs cannot be named.",
            received=str(path),
            fix="Put labels.txt (one class name per line, in the model's output order) beside the model file, "
            "or give the run folder the trainer wrote.",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"Cannot read {path.name}: {exc}.", received=str(path),
                             fix="Check the file is readable UTF-8 text.") from exc
    names = split_labels(text)
    if not names or any(not n.strip() for n in names):
        raise ConfigError(
            "labels.txt must list one non-empty class name per line.",
            received=f"{path} ({len(names)} lines)",
            fix="Restore it from the run folder the trainer wrote.",
        )
    return names


def resolve_model_path(ws: Workspace | None, name_or_path: str | os.PathLike[str]) -> Path:
    """A model given as a path (run folder, export folder or ``.keras`` file) or as a run name.

    Args:
        ws: the workspace whose ``models/`` folder run names are looked up in (None: paths only).
        name_or_path: a path, or the name of a folder under ``<workspace>/models``.

    Raises:
        NotFoundError: nothing of that name or path exists; the message lists what was tried.
    """
    raw = str(name_or_path).strip()
    if not raw:
        raise NotFoundError("No model was given.", fix="Give a run folder, a .keras file or a run name "
                            "('python -m tlcore models list' shows them).")
    path = Path(raw).expanduser()
    if path.exists():
        return path
    tried = [str(path)]
    if ws is not None and os.sep not in raw and "/" not in raw:
        candidate = ws.root / "models" / raw
        if candidate.exists():
            return candidate
        tried.append(str(candidate))
    raise NotFoundError(
        "No trained model there.",
        received=" or ".join(tried),
        fix="Give a run folder (with model.keras and labels.txt), a .keras file, or a run name; "
        "'python -m tlcore models list' shows the trained runs.",
    )


def _locate(path: Path) -> tuple[Path, Path | None]:
    """``(model file, run folder or None)`` for a folder or a ``.keras`` file."""
    if path.is_dir():
        model_path = RunFolder(path).model_file
        if not model_path.is_file():
            partial = path.name.endswith(".partial")
            others = sorted(p.name for p in path.glob("*") if p.suffix.lower() in (".tflite", ".onnx"))
            if partial:
                fix = "This run did not finish saving (a '.partial' folder): train again."
            elif others:  # an export of edge formats only: this workbench predicts with the Keras model
                fix = (f"It holds {', '.join(others)}, which this workbench does not predict with (they run in "
                       "TensorFlow Lite or ONNX Runtime). Export again with the keras format too (--format "
                       "keras,...), or give the run folder or trial the export was made from.")
            else:
                fix = ("Give a run folder the trainer wrote, an export folder, or a .keras file ('python -m tlcore "
                       "models list' shows them).")
            raise NotFoundError(f"The folder has no {model_path.name}.", received=f"looked for {model_path}",
                                fix=fix)
        return model_path, path
    if not path.exists():
        raise NotFoundError(
            "No model file there.",
            received=f"looked for {path}",
            fix="Check the path; 'python -m tlcore models list' shows the trained runs.",
        )
    if path.suffix.lower() != ".keras":
        raise ConfigError(
            "Only Keras 3 '.keras' model files can be loaded.",
            received=str(path),
            fix="Give the model.keras of a run or export folder (SavedModel and TFLite exports are for serving).",
        )
    parent = RunFolder(path.parent)
    is_run = parent.spec_file.is_file() or parent.model_card_file.is_file()
    return path, (parent.path if is_run else None)


def _not_a_model(path: Path, detail: str) -> ConfigError:
    return ConfigError(
        f"The file is not a Keras model file ({detail}).",
        received=str(path),
        fix="Re-export the model or train again; a model.keras is a zip archive holding config.json.",
    )


def _load_keras(model_path: Path):
    import keras

    register_layers()  # a model built on a Caffe-style backbone holds tlcore's own layer
    try:
        if model_path.stat().st_size == 0:
            raise _not_a_model(model_path, "it is empty")
        if not zipfile.is_zipfile(model_path):
            raise _not_a_model(model_path, "it is not a zip archive")
        with zipfile.ZipFile(model_path) as zf:
            if "config.json" not in zf.namelist():
                raise _not_a_model(model_path, "the archive holds no config.json")
    except zipfile.BadZipFile as exc:
        raise _not_a_model(model_path, f"damaged archive: {exc}") from exc
    except OSError as exc:
        raise WorkspaceError(f"Cannot read the model file: {exc.strerror or exc}.", received=str(model_path),
                             fix="Check the file exists and is readable.") from exc
    try:
        return keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError, KeyError, TypeError... for foreign or damaged files
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"The Keras model file could not be loaded ({type(exc).__name__}: {detail}).",
            received=str(model_path),
            fix="It may be damaged, come from another program or a newer Keras, or need unsafe code "
            "(Lambda layers are refused); re-export the model or train again.",
        ) from exc


def _input_size(model, model_path: Path, fallback: int | None) -> int:
    shapes = [tuple(t.shape) for t in getattr(model, "inputs", None) or []]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][3] != 3:
        raise ConfigError(
            "The model does not take one batch of H×W×3 RGB images.",
            received=f"input shapes {shapes or 'unknown'} in {model_path.name}",
            fix="Use a model trained by this workbench (input: raw RGB images, S×S×3).",
        )
    _, h, w, _ = shapes[0]
    if h is None and w is None and fallback:
        return int(fallback)
    if h is None or w is None or h != w:
        raise ConfigError(
            "The model's input must be a fixed square size (S×S×3).",
            received=f"input shape {shapes[0]} in {model_path.name}",
            fix="Use a model trained by this workbench.",
        )
    return int(h)


@dataclass(frozen=True)
class RunFiles:
    """What ``load_model`` reads beside the model file, and what it could not read.

    Attributes:
        spec: ``spec.yaml`` as a dict (an export's ``model_card.json`` "training" block; {} when unknown).
        data: ``data.json`` ({} when unknown).
        metrics: ``metrics.json`` (an export's model card's "metrics" block; {} when unknown).
        card: an export's ``model_card.json`` ({} when unknown).
        resize_mode: the resize rule: the first valid one of ``data.json``, ``spec.yaml`` and
            the model card's "input", else "pad".
        temperature: the calibration temperature (``tlcore.calibration.stored_temperature``
            of the metrics, else of the card); 1.0 when there is none.
        notes: one sentence per file that exists but cannot be read, or per value that cannot
            be used: which file, what that changes, how to fix it. A missing file gets no note
            (a run from before calibration has a ``metrics.json`` without a temperature, a
            ``.keras`` file made elsewhere no ``spec.yaml``): only a damaged one does.
        calibration_unknown: the temperature is 1.0 because the file holding it cannot be read
            (or holds no valid temperature), not because the model was never calibrated.
    """

    spec: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    resize_mode: str = "pad"
    temperature: float = 1.0
    notes: tuple[str, ...] = ()
    calibration_unknown: bool = False


_NOT_CALIBRATED = "its predictions are not calibrated (temperature 1: the raw softmax)"


def _restore(names: Sequence[str], card: str) -> str:
    """How to fix damaged files ``names`` (``card``: the model card's name, an export's file)."""
    what = " and ".join(names) if len(names) > 1 else "it"
    again = "export the model again" if list(names) == [card] else "train the model again"
    return f"Restore {what} from a copy of the folder, or {again}."


def _resize_rule(candidates: Sequence[tuple[str, Any]], damaged: Sequence[str]) -> tuple[str, str | None]:
    """The resize rule (the first valid one of ``(file name, value)`` candidates, else "pad") and,
    when none is valid because a file is damaged or names an unknown rule, why (else None)."""
    for _, value in candidates:
        if value in RESIZE_MODES:
            return str(value), None
    why = [f"{' and '.join(damaged)} cannot be read"] if damaged else []
    why += [f"its {name} names {value!r}, which is none of {', '.join(RESIZE_MODES)}"
            for name, value in candidates if value is not None]
    return "pad", "; ".join(why) or None


def read_run_files(run_dir: str | os.PathLike[str] | None) -> RunFiles:
    """Read a run (or export) folder's files beside the model, as ``load_model`` does, with a note
    for each one that exists but cannot be read.

    The Results page reads the notes here without loading the model; ``load_model`` puts them
    in ``LoadedModel.notes``. To tell a missing file (no note: an older or hand-made folder)
    from a damaged one, each empty result of the tolerant ``RunFolder`` readers is checked
    for the file's existence.

    Args:
        run_dir: the folder; None (a lone ``.keras`` file) reads nothing.

    Returns:
        A ``RunFiles``; a damaged file is a note, never an error.
    """
    if run_dir is None:
        return RunFiles()
    folder = RunFolder(Path(run_dir))
    spec_name, data_name = folder.spec_file.name, folder.data_file.name
    metrics_name, card_name = folder.metrics_file.name, folder.model_card_file.name
    spec, data, metrics, card = folder.read_spec(), folder.read_data(), folder.read_metrics(), folder.read_model_card()
    read = ((folder.spec_file, spec, "is not a YAML mapping of the run's settings"),
            (folder.data_file, data, "is not a JSON object"),
            (folder.metrics_file, metrics, "is not a JSON object"),
            (folder.model_card_file, card, "is not a JSON object"))
    damaged = {path.name: _unreadable(path, what) for path, value, what in read if not value and path.exists()}
    spec_from = spec_name
    if not spec and isinstance(card.get("training"), dict):  # an export: its card says how it was trained
        spec, spec_from = dict(card["training"]), card_name
    if not metrics and isinstance(card.get("metrics"), dict):
        metrics = dict(card["metrics"])
    temperature = stored_temperature(metrics) or stored_temperature(card)  # None: not calibrated
    bad_entry = [name for name, record in ((metrics_name, metrics), (card_name, card))
                 if "calibration" in record and stored_temperature(record) is None]
    calibration_unknown = temperature is None and bool(bad_entry or {metrics_name, card_name} & set(damaged))

    where = f"Model folder {folder.path}"
    uncalibrated = [_NOT_CALIBRATED] if temperature is None else []
    changes = {spec_name: ["its training settings (backbone, method, dataset) are unknown"],
               data_name: ["its test images are unknown (it cannot be evaluated again)"],
               metrics_name: [*uncalibrated, "its accuracies are unknown"],
               card_name: [*uncalibrated, "how it was trained is unknown"]}
    notes = [f"{where}: {why}, so {' and '.join(changes[name])}. {_restore([name], card_name)}"
             for name, why in damaged.items()]
    if temperature is None:
        notes += [f"{where}: the calibration in its {name} holds no valid temperature, so {_NOT_CALIBRATED}. "
                  f"{_restore([name], card_name)}" for name in bad_entry]
    card_input = card.get("input") if isinstance(card.get("input"), dict) else {}
    lost = [name for name in (data_name, spec_name, card_name) if name in damaged]
    resize_mode, why = _resize_rule([(data_name, data.get("resize_mode")), (spec_from, spec.get("resize_mode")),
                                     (card_name, card_input.get("resize_mode"))], lost)
    if why is not None:
        notes.append(f"{where}: the resize rule is unknown ({why}): 'pad' is used, which changes the predictions of "
                     f"a model trained with 'crop' or 'stretch'. "
                     + (_restore(lost, card_name) if lost else
                        "Set it to the rule the model was trained with (crop, pad or stretch), or train the model again."))
    return RunFiles(spec=spec, data=data, metrics=metrics, card=card, resize_mode=resize_mode,
                    temperature=temperature or 1.0, notes=tuple(notes), calibration_unknown=calibration_unknown)


def load_model(path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None) -> LoadedModel:
    """Load a trained classifier from a run folder, an export folder or a ``.keras`` file.

    The model is loaded with Keras' safe mode on (no arbitrary code) and not compiled.

    Args:
        path: a run folder, an export folder, or a ``.keras`` file with ``labels.txt`` beside it.
        class_names: the class names in output order, overriding ``labels.txt``. Defaults to None.

    Returns:
        A ``LoadedModel``. The image size comes from the model's input shape; the resize
        rule from the run's ``data.json``/``spec.yaml`` (an export's ``model_card.json``),
        else "pad". A file beside the model that exists but cannot be read does not stop
        the load (the model is fine): ``LoadedModel.notes`` says which file, what that
        changes (no calibration, an unknown resize rule) and how to fix it (``read_run_files``).

    Raises:
        NotFoundError: no such file or folder, no ``model.keras`` in the folder, or no ``labels.txt``.
        ConfigError: not a Keras model file; an input that is not S×S×3; an output size
            that differs from the number of labels.
    """
    model_path, run_dir = _locate(Path(path).expanduser())
    folder = RunFolder(model_path.parent)
    files = read_run_files(run_dir)
    spec, data = files.spec, files.data
    names = list(class_names) if class_names is not None else read_labels(folder.labels_file)

    model = _load_keras(model_path)
    fallback = spec.get("image_size") or data.get("image_size")
    image_size = _input_size(model, model_path, fallback if isinstance(fallback, int) else None)
    outputs = [tuple(t.shape) for t in getattr(model, "outputs", None) or []]
    if len(outputs) != 1 or len(outputs[0]) != 2:
        raise ConfigError(
            "The model does not output one vector of class probabilities.",
            received=f"output shapes {outputs or 'unknown'} in {model_path.name}",
            fix="Use a model trained by this workbench.",
        )
    if outputs[0][1] != len(names):
        raise ConfigError(
            f"The model has {outputs[0][1]} outputs but labels.txt names {len(names)} classes.",
            received=f"{model_path} with {folder.labels_file}",
            fix="labels.txt must have one line per model output, in output order: restore it from the run "
            "folder the trainer wrote, or give the matching model.",
        )
    return LoadedModel(model=model, class_names=names, image_size=image_size, resize_mode=files.resize_mode,
                       spec=spec, run_dir=run_dir, metrics=files.metrics, model_path=model_path, data=data,
                       temperature=files.temperature, notes=files.notes)


# -------------------------------------------------------------- predicting
def _as_rgb_array(arr: np.ndarray) -> np.ndarray:
    """An image array (H×W, H×W×1, H×W×3; uint8, or float 0-255) as H×W×3 uint8."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ConfigError(
            "An image array must have shape (H, W, 3) (or (H, W) for grayscale).",
            received=f"shape={a.shape}",
            fix="Pass RGB images; decode files with tlcore.datasets.load_rgb or pass their paths.",
        )
    if a.dtype == np.uint8:
        return a
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ConfigError("An image array must hold numbers.", received=f"dtype={a.dtype}")
    return np.clip(np.rint(np.nan_to_num(a.astype(np.float64))), 0, 255).astype(np.uint8)


def prepare_image(loaded: LoadedModel, image: ImageSource) -> np.ndarray:
    """One image as the model's input: S×S×3 uint8, decoded and resized by the training rule.

    Args:
        loaded: the model (its image size and resize rule are used).
        image: a file path, the file's bytes, or an RGB array (uint8 or float 0-255; any size).

    Raises:
        ImageDecodeError: the file cannot be decoded (missing, not an image, damaged,
            or too large: more than ``MAX_IMAGE_PIXELS`` pixels).
        ConfigError: an array of the wrong shape.
    """
    if isinstance(image, np.ndarray):
        return resize_to(_as_rgb_array(image), loaded.image_size, mode=loaded.resize_mode)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return resize_to(load_rgb(image), loaded.image_size, mode=loaded.resize_mode)
    if isinstance(image, (str, os.PathLike)):
        return decode_resized(image, loaded.image_size, loaded.resize_mode)
    raise ConfigError(
        "An image must be a file path, the file's bytes or a numpy array.",
        received=type(image).__name__,
    )


def predict_arrays(loaded: LoadedModel, x: np.ndarray, *, batch_size: int = 32,
                   calibrated: bool = True) -> np.ndarray:
    """Class probabilities of prepared inputs, calibrated by the run's temperature.

    Args:
        loaded: the model.
        x: N×S×S×3 images (uint8 or float 0-255), e.g. from ``prepare_image``.
        batch_size: images per model call. Defaults to 32.
        calibrated: apply ``loaded.temperature`` (``softmax(log(output) / T)``,
            ``tlcore.calibration.apply_temperature``); False gives the model's raw
            softmax output, what an exported model returns. Defaults to True.

    Returns:
        An N×C float32 array of probabilities, columns in ``loaded.class_names`` order.
    """
    from tlcore.runtime import forward_batches

    x = np.asarray(x)
    s = loaded.image_size
    if x.ndim != 4 or x.shape[1:] != (s, s, 3):
        raise ConfigError("Prepared inputs must be N×S×S×3 at the model's image size.",
                          received=f"shape={x.shape}, S={s}", fix="Use prepare_image for each image.")
    _check_positive("batch_size", batch_size)
    if not len(x):
        return np.zeros((0, loaded.num_classes), dtype=np.float32)
    probs = np.asarray(forward_batches(loaded.model, x, batch_size), dtype=np.float32)
    return apply_temperature(probs, loaded.temperature) if calibrated and loaded.calibrated else probs


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer.", received=f"{name}={value!r}")
    return int(value)


def check_top_k(top_k: object, num_classes: int) -> int:
    """``top_k`` checked against the number of classes; None gives ``DEFAULT_TOP_K``, or every
    class of a model with fewer (a two-class model shows two)."""
    if top_k is None:
        return min(DEFAULT_TOP_K, num_classes)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= num_classes:
        raise ConfigError(
            f"top_k must be an integer from 1 to the number of classes ({num_classes}).",
            received=f"top_k={top_k!r}",
            fix=f"Use a value between 1 and {num_classes}.",
        )
    return int(top_k)


def top_predictions(probs: np.ndarray, class_names: Sequence[str], top_k: int | None = None) -> list[Prediction]:
    """The ``top_k`` most probable classes of one probability vector, most probable first.

    Ties keep output order (a stable sort).
    """
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(probs) != len(class_names):
        raise ConfigError("One probability per class is needed.",
                          received=f"{len(probs)} probabilities, {len(class_names)} classes")
    k = check_top_k(top_k, len(class_names))
    order = np.argsort(-probs, kind="stable")[:k]
    return [Prediction(label=str(class_names[i]), index=int(i), probability=float(probs[i])) for i in order]


def predict_images(
    loaded: LoadedModel,
    images: Sequence[ImageSource],
    top_k: int | None = None,
    batch_size: int = 32,
) -> list[list[Prediction]]:
    """Classify images: the ``top_k`` classes of each, most probable first.

    Args:
        loaded: from ``load_model``.
        images: file paths, file contents (bytes) or RGB arrays (any size; they are
            resized by the run's rule).
        top_k: classes reported per image, 1 to the number of classes. Defaults to
            ``DEFAULT_TOP_K`` (3), or every class of a model with fewer.
        batch_size: images per model call. Defaults to 32.

    Returns:
        One list of ``Prediction`` per image; ``str(prediction)`` reads "label (93.1 %)".

    Raises:
        ImageDecodeError: an image cannot be decoded (the message names the file).
        ConfigError: ``top_k`` or ``batch_size`` out of range, or a malformed array.
    """
    k = check_top_k(top_k, loaded.num_classes)
    _check_positive("batch_size", batch_size)
    if isinstance(images, (str, bytes, os.PathLike, np.ndarray)) and not (
        isinstance(images, np.ndarray) and images.ndim == 4
    ):
        images = [images]
    results: list[list[Prediction]] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = np.stack([prepare_image(loaded, img) for img in chunk])
        probs = predict_arrays(loaded, x, batch_size=batch_size)
        results.extend(top_predictions(p, loaded.class_names, k) for p in probs)
    return results


# ----------------------------------------------------------------- listing
def _created(path: Path) -> str:
    try:
        ts = path.stat().st_mtime
    except OSError:
        return ""
    return _dt.datetime.fromtimestamp(ts).isoformat(timespec="seconds")


def _unreadable(path: Path, what: str) -> str:
    """Why ``path`` (a run file) cannot be read, for a note: missing, an OS error, or ``what``."""
    try:
        path.read_bytes()
    except FileNotFoundError:
        return f"its {path.name} is missing"
    except OSError as exc:
        return f"its {path.name} cannot be read ({exc.strerror or exc})"
    return f"its {path.name} {what}"


def _summary(run: Path) -> tuple[ModelSummary | None, str | None]:
    """One run folder's summary and a note: (summary, None) for a run; (summary, note) for a run
    whose metrics.json cannot be read; (None, note) for a run folder that cannot be listed,
    saying why; (None, None) for a folder that holds none of a run's files (not a run)."""
    folder = RunFolder(run)
    model_file = folder.model_file
    if not any(p.exists() for p in folder.files()):
        return None, None
    fix = f"Restore it, train the model again, or delete the folder {run}."
    if not model_file.is_file():
        return None, f"Run '{run.name}' is not listed: {_unreadable(model_file, 'is not a file')}. {fix}"
    labels = folder.read_labels()
    if not labels:
        why = _unreadable(folder.labels_file, "is not UTF-8 text with one class name per line")
        return None, f"Run '{run.name}' is not listed: {why}. {fix}"
    spec = folder.read_spec()
    if not spec and not folder.spec_file.exists() and folder.model_card_file.is_file():
        # an export saved among the runs (export --out <workspace>/models/NAME): a good model, not a broken run
        exports = run.parent.parent / "exports"
        return None, (f"'{run.name}' in the models folder is an export (it has {folder.model_card_file.name}), not "
                      f"a trained run, so it is not listed with the runs. Move the folder to {exports}, where "
                      "exports are listed (Predict, 'models list'), or give its path as the model.")
    if not spec:
        why = _unreadable(folder.spec_file, "is not a YAML mapping of the run's settings")
        return None, f"Run '{run.name}' is not listed: {why}. {fix}"
    metrics = folder.read_metrics()
    note = None if metrics else (
        f"Run '{run.name}': {_unreadable(folder.metrics_file, 'is not a JSON object')}, so its accuracies are not "
        "shown and its predictions are not calibrated. It can still be used; restore metrics.json from a copy to "
        "have both back.")

    def num(d: dict[str, Any], key: str) -> float | None:
        v = d.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def integer(d: dict[str, Any], key: str) -> int | None:
        v = d.get(key)
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

    def text(d: dict[str, Any], key: str) -> str | None:
        v = d.get(key)
        return str(v) if v is not None else None

    return ModelSummary(
        name=run.name, path=run, dataset=text(spec, "dataset"), backbone=text(spec, "backbone"),
        method=text(spec, "method"), image_size=integer(spec, "image_size"),
        freeze_depth=integer(spec, "freeze_depth"), epochs_run=integer(metrics, "epochs_run"),
        best_val_accuracy=num(metrics, "best_val_accuracy"), test_accuracy=num(metrics, "test_accuracy"),
        num_classes=len(labels), created=_created(model_file),
    ), note


def scan_models(ws: Workspace) -> tuple[list[ModelSummary], list[str]]:
    """The trained runs under ``<workspace>/models`` (newest first), and a note for each run
    folder that cannot be listed or whose metrics cannot be read.

    Unfinished (``.partial``) and hidden folders, and folders holding none of a run's files,
    are skipped without a note. A folder without ``model.keras``, with a ``labels.txt`` or
    ``spec.yaml`` that is missing or cannot be read, is not listed and gets a note saying which
    file and what to do; a run whose ``metrics.json`` cannot be read is listed without its
    accuracies, with a note. Nothing is loaded: a model file that turns out to be damaged fails
    in ``load_model``.

    Raises:
        WorkspaceError: the models folder cannot be read.
    """
    root = ws.root / "models"
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise WorkspaceError(f"Cannot list the trained models: {exc.strerror or exc}.", received=str(root),
                             fix="Make the workspace readable.") from exc
    found: list[ModelSummary] = []
    notes: list[str] = []
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name.endswith(".partial"):
            continue
        try:
            if not entry.is_dir():
                continue
            summary, note = _summary(Path(entry.path))
        except OSError as exc:
            notes.append(f"Run '{entry.name}' is not listed: its folder cannot be read ({exc.strerror or exc}).")
            continue
        if summary is not None:
            found.append(summary)
        if note is not None:
            notes.append(note)
    found.sort(key=lambda s: (s.created, s.name), reverse=True)
    return found, notes


def list_models(ws: Workspace) -> list[ModelSummary]:
    """The trained runs under ``<workspace>/models``, newest first (``scan_models`` without its
    notes: folders that cannot be listed are skipped, never fatal).

    Raises:
        WorkspaceError: the models folder cannot be read.
    """
    return scan_models(ws)[0]


# -------------------------------------------------------------- evaluation
def evaluate_run(
    loaded: LoadedModel,
    ws: Workspace,
    *,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    tta: bool = False,
) -> dict[str, Any]:
    """Evaluate a run again on the test images it was trained with.

    The test files are those listed in the run's ``data.json`` (so later changes to
    the dataset's split settings do not leak training images into the test set),
    looked up in the dataset's current index; files that are gone or no longer
    usable are reported in ``missing``. Images are decoded through the workspace's
    image cache, with the run's size and resize rule.

    Args:
        loaded: a model loaded from a run folder.
        ws: the workspace holding the dataset.
        batch_size: images per model call. Defaults to 64.
        progress: ``progress(done, total)`` while decoding.
        tta: average each image's probabilities with its mirror image's (``tlcore.tta``).
            Defaults to False.

    Returns:
        A dict with ``report`` (``tlcore.evaluate.classification_report``: accuracy,
        loss, confusion matrix, per-class precision/recall/F1), ``probabilities``
        (N×C), ``y_true`` (N), ``files`` (absolute paths), ``relpaths``,
        ``class_names``, ``dataset``, ``missing`` (relpaths not evaluated) and
        ``same_test_set`` (whether the images are byte-for-byte those of training).

    Raises:
        ConfigError: the model is not a run folder with a ``data.json``.
        NotFoundError: the dataset is no longer registered.
    """
    from tlcore.cache import ArrayCache
    from tlcore.datasets import apply_overrides, folder_missing, load_index, load_overrides
    from tlcore.evaluate import classification_report
    from tlcore.pipeline import dataset_fingerprint, load_image_array

    data = loaded.data
    if loaded.run_dir is None or not data.get("dataset") or not isinstance(data.get("test_files"), list):
        data_file = RunFolder(loaded.run_dir).data_file if loaded.run_dir is not None else None
        raise ConfigError(
            "Re-evaluation needs the run folder the trainer wrote (with data.json naming its test files).",
            received=str(data_file if data_file is not None and data_file.exists() else
                          loaded.run_dir or loaded.model_path),
            fix=("Its data.json cannot be used: restore it from a copy of the run folder, or train the model again."
                 if data_file is not None and data_file.exists() else
                 "Load the model from its run folder under <workspace>/models."),
        )
    dataset = str(data["dataset"])
    if not ws.has_dataset(dataset):
        raise NotFoundError(
            f"This model's test images cannot be classified again: the dataset it was trained on, {dataset!r}, "
            "is no longer registered in this workspace (removed since).", received=dataset,
            fix=f"Register the same images again under the name {dataset!r} (python -m tlcore datasets add "
                f"{dataset} FOLDER, or on the Datasets page), then evaluate again.")
    index = apply_overrides(load_index(ws, dataset), load_overrides(ws, dataset))  # relabels count, exclusions go
    usable = index[index["usable"].astype(bool)] if "usable" in index else index
    by_rel = usable.drop_duplicates("relpath").set_index("relpath", drop=False)
    lookup = {c: i for i, c in enumerate(loaded.class_names)}
    wanted = [str(r) for r in data["test_files"]]
    present = [r for r in wanted if r in by_rel.index and by_rel.at[r, "label"] in lookup]
    kept = set(present)
    missing = [r for r in wanted if r not in kept]
    rows = by_rel.loc[present].reset_index(drop=True)
    fingerprint = (data.get("fingerprint") or {}).get("test")
    same = bool(fingerprint) and not missing and dataset_fingerprint(rows) == fingerprint
    if len(rows):
        cache = ArrayCache(ws.cache_dir / "images")
        try:
            x = load_image_array(rows, loaded.image_size, loaded.resize_mode, cache=cache, progress=progress)
        except ImageDecodeError as exc:  # one file named, "rescan the dataset": the cause may be the whole folder
            gone = folder_missing(ws.get_dataset(dataset), then="The test images cannot be read.")
            if gone is None:
                raise
            raise gone from exc
        if tta:
            probs = flip_average(lambda a: predict_arrays(loaded, a, batch_size=batch_size), x)
        else:
            probs = predict_arrays(loaded, x, batch_size=batch_size)
    else:
        probs = np.zeros((0, loaded.num_classes), dtype=np.float32)
    y_true = rows["label"].map(lookup).to_numpy(dtype=np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
    return {
        "dataset": dataset,
        "class_names": list(loaded.class_names),
        "report": classification_report(y_true, probs, loaded.class_names),
        "probabilities": probs,
        "y_true": y_true,
        "files": rows["path"].astype(str).tolist() if len(rows) else [],
        "relpaths": present,
        "missing": missing,
        "same_test_set": same,
    }
