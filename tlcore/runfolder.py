"""A trained run's folder: the names of its files, how to read them, how to write them.

``tlcore.trainer.train`` writes one folder per run; ``predict``, ``export``, the
search worker (which uploads it to the artifact store), ``search.results`` (which
downloads it again) and the Results and Predict pages read it. This module is the
one place that knows what such a folder holds:

- ``model.keras``: the Keras 3 model (raw RGB 0-255 in, softmax probabilities out);
- ``history.json``: one record per epoch;
- ``metrics.json``: the test-split report, best epoch, runtime, cache hits;
- ``spec.yaml``: the ``TrainSpec``;
- ``labels.txt``: the class names, one per line, in output order;
- ``data.json``: dataset, fingerprints, image size, resize rule, test files.

An export folder (``tlcore.export``) holds ``model.keras`` and ``labels.txt`` too,
and ``model_card.json`` instead of the rest; ``RunFolder`` names that file as well.

- ``RunFolder(path)``: a property per file (``model_file``, ``labels_file``, ...),
  tolerant readers (``read_history``, ``read_metrics``, ``read_spec``,
  ``read_labels``, ``read_data``, ``read_model_card``: a missing, unreadable or
  corrupt file gives an empty value, never an error) and ``RunFolder.write``, the
  atomic writer the trainer uses (the folder is built under a temporary name and
  renamed into place when complete, so an interrupted write leaves nothing);
- ``RUN_FILES``: the files a complete run has (what a search worker uploads);
- ``labels_text`` / ``split_labels``: the ``labels.txt`` format, both ways.

Example:

>>> run = RunFolder("workspace/models/demo-efficientnet_lite0-feature_extraction-20260101-120000")
>>> run.model_file.name, run.read_labels()[:2]
('model.keras', ['Ankle boot', 'Bag'])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tlcore import _yaml
from tlcore._fsutil import atomic_directory, atomic_write_json, atomic_write_text, read_json
from tlcore.config import Spec
from tlcore.errors import TLCoreError

__all__ = [
    "RunFolder",
    "RUN_FILES",
    "MODEL_FILE",
    "HISTORY_FILE",
    "METRICS_FILE",
    "SPEC_FILE",
    "LABELS_FILE",
    "DATA_FILE",
    "MODEL_CARD_FILE",
    "labels_text",
    "split_labels",
]

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
SPEC_FILE = "spec.yaml"
LABELS_FILE = "labels.txt"
DATA_FILE = "data.json"
MODEL_CARD_FILE = "model_card.json"  # export folders only (tlcore.export)

RUN_FILES = (MODEL_FILE, HISTORY_FILE, METRICS_FILE, SPEC_FILE, LABELS_FILE, DATA_FILE)
"""The files of a complete run folder, in the order the trainer writes them."""


def labels_text(class_names: Sequence[str]) -> str:
    """The content of a ``labels.txt``: one class name per line, in output order, newline-terminated."""
    return "\n".join(class_names) + "\n"


def split_labels(text: str) -> list[str]:
    """The lines of a ``labels.txt`` as they are (a class folder's name may begin or end with a
    space, and the dataset's labels keep it), trailing blank lines dropped.

    The result is valid class names when it is non-empty and no entry is blank (a blank line
    between names is not); the callers decide what to do otherwise.
    """
    names = text.splitlines()
    while names and not names[-1].strip():
        names.pop()
    return names


def _optional_json(path: Path) -> Any:
    """A JSON side file's content, or None when it is missing, unreadable or not JSON."""
    try:
        return read_json(path)
    except (TLCoreError, OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class RunFolder:
    """One run folder (or export folder): where its files are, and their content.

    Nothing is read when the object is made; each ``read_*`` reads its file again.

    Attributes:
        path: the folder (a ``str`` or path-like is turned into a ``Path``).
    """

    path: Path

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))

    # ------------------------------------------------------------ files
    @property
    def name(self) -> str:
        """The folder's name (a run's name)."""
        return self.path.name

    @property
    def model_file(self) -> Path:
        """``model.keras``: the Keras 3 model."""
        return self.path / MODEL_FILE

    @property
    def history_file(self) -> Path:
        """``history.json``: one record per epoch."""
        return self.path / HISTORY_FILE

    @property
    def metrics_file(self) -> Path:
        """``metrics.json``: the test-split report, best epoch, runtime, cache hits."""
        return self.path / METRICS_FILE

    @property
    def spec_file(self) -> Path:
        """``spec.yaml``: the training spec."""
        return self.path / SPEC_FILE

    @property
    def labels_file(self) -> Path:
        """``labels.txt``: the class names, one per line, in output order."""
        return self.path / LABELS_FILE

    @property
    def data_file(self) -> Path:
        """``data.json``: dataset, fingerprints, image size, resize rule, test files."""
        return self.path / DATA_FILE

    @property
    def model_card_file(self) -> Path:
        """``model_card.json``: an export folder's description of the model."""
        return self.path / MODEL_CARD_FILE

    def files(self) -> tuple[Path, ...]:
        """The paths of ``RUN_FILES`` in this folder, in that order."""
        return tuple(self.path / name for name in RUN_FILES)

    def is_complete(self) -> bool:
        """Whether every file of ``RUN_FILES`` is there."""
        return all(p.is_file() for p in self.files())

    def load_version(self) -> int:
        """A version of what loading the model reads (a cache key part): the model file's modification
        time in nanoseconds, combined with the size and time of labels.txt, metrics.json (the
        temperature), spec.yaml and data.json, so that a changed label or temperature is read again;
        0 when the model file cannot be read."""
        try:
            stamps = [os.stat(self.model_file).st_mtime_ns]
        except OSError:
            return 0
        for path in (self.labels_file, self.metrics_file, self.spec_file, self.data_file):
            try:
                st_ = os.stat(path)
                stamps += [st_.st_mtime_ns, st_.st_size]
            except OSError:
                stamps += [0, -1]
        return hash(tuple(stamps)) or 1  # ints hash alike in every process

    # ---------------------------------------------------------- readers
    def read_history(self) -> list[Any]:
        """``history.json``'s epoch records; ``[]`` when missing, corrupt or not a list."""
        data = _optional_json(self.history_file)
        return data if isinstance(data, list) else []

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json``; ``{}`` when missing, corrupt or not a mapping."""
        data = _optional_json(self.metrics_file)
        return data if isinstance(data, dict) else {}

    def read_data(self) -> dict[str, Any]:
        """``data.json``; ``{}`` when missing, corrupt or not a mapping."""
        data = _optional_json(self.data_file)
        return data if isinstance(data, dict) else {}

    def read_model_card(self) -> dict[str, Any]:
        """An export's ``model_card.json``; ``{}`` when missing, corrupt or not a mapping."""
        data = _optional_json(self.model_card_file)
        return data if isinstance(data, dict) else {}

    def read_spec(self) -> dict[str, Any]:
        """``spec.yaml`` as a plain dict (not validated); ``{}`` when missing, corrupt or not a mapping.

        The YAML is read with ``tlcore._yaml.safe_load`` (plain types, no aliases).
        """
        try:
            data = _yaml.safe_load(self.spec_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_labels(self) -> list[str]:
        """``labels.txt``'s class names; ``[]`` when missing, unreadable or not one name per line.

        ``tlcore.predict.read_labels`` is the strict reader that says what is wrong.
        """
        try:
            names = split_labels(self.labels_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return []
        return names if names and all(n.strip() for n in names) else []

    # ----------------------------------------------------------- writer
    @classmethod
    def write(
        cls,
        target: str | os.PathLike[str],
        *,
        model: Any,
        history: list[dict[str, Any]],
        metrics: dict[str, Any],
        spec: Spec,
        class_names: Sequence[str],
        data: dict[str, Any],
    ) -> RunFolder:
        """Write a complete run folder at ``target``, atomically.

        The files are written, in ``RUN_FILES`` order, into a temporary folder beside
        ``target`` (each through ``tlcore._fsutil``'s atomic file writes, the model by
        its own ``save``), which is renamed to ``target`` when all are written. If
        anything fails or the write is interrupted, the temporary folder is removed
        and nothing appears at ``target``.

        Args:
            target: the run folder to create; it must not exist yet.
            model: the trained model (a ``keras.Model``; anything with ``save(path)``).
            history: one record per epoch.
            metrics: the run's metrics.
            spec: the training spec (``spec.yaml`` holds its ``to_yaml()``).
            class_names: the class names in output order.
            data: what ``data.json`` holds (dataset, fingerprints, image size, resize rule, test files).

        Returns:
            The ``RunFolder`` at ``target``.

        Raises:
            WorkspaceError: ``target`` exists, or the disk is full or not writable.
        """
        with atomic_directory(target) as tmp:
            run = cls(tmp)
            model.save(run.model_file)
            atomic_write_json(run.history_file, history)
            atomic_write_json(run.metrics_file, metrics)
            atomic_write_text(run.spec_file, spec.to_yaml())
            atomic_write_text(run.labels_file, labels_text(class_names))
            atomic_write_json(run.data_file, data)
        return cls(Path(target))

