"""The artifact store: where the trials' run folders (model, history, metrics, ...) are kept.

Workers upload a finished trial's files with ``optuna.artifacts.upload_artifact``;
readers download them by the ids the trial's ``tl_artifacts`` attribute holds
(``tlcore.search.attrs``). The store is a folder: ``<workspace>/studies/artifacts``
by default, or any folder all workers can reach (``--artifacts``), one file per
artifact named by its id.

``AtomicArtifactStore`` is Optuna's file-system artifact store, but each file is
written atomically: a killed worker leaves no half model behind.

Entry points: ``artifact_store(ws, artifacts)`` (``worker``, ``study.delete_study``,
``results.fetch_trial_run``) and ``artifacts_dir(ws, artifacts)`` (the folder, for
``study.dashboard_command``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, BinaryIO

import optuna

from tlcore._fsutil import atomic_open
from tlcore.search.storage import studies_path
from tlcore.workspace import Workspace

__all__ = ["AtomicArtifactStore", "artifact_store", "artifacts_dir"]


class AtomicArtifactStore:
    """Optuna's file-system artifact store, but each file is written atomically.

    Optuna's own ``FileSystemArtifactStore`` writes in place, so a killed worker
    could leave half a model behind; here the bytes go to a temporary file that is
    renamed into place when complete.
    """

    def __init__(self, base_path: str | os.PathLike[str]):
        self._base = Path(base_path)  # made by the first write: a reader leaves no empty folder behind, where
        # the shared folder is to be mounted or symlinked (``ln -s`` into it would link inside it)

    def _path(self, artifact_id: str) -> Path:
        if not artifact_id or "/" in artifact_id or artifact_id.startswith("."):
            raise ValueError(f"bad artifact id {artifact_id!r}")
        return self._base / artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        try:
            return open(self._path(artifact_id), "rb")
        except FileNotFoundError as exc:
            raise optuna.artifacts.exceptions.ArtifactNotFound(f"artifact {artifact_id} not found") from exc

    def write(self, artifact_id: str, content_body: BinaryIO | IO[bytes]) -> None:
        path = self._path(artifact_id)
        self._base.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            while chunk := content_body.read(1 << 20):
                f.write(chunk)

    def remove(self, artifact_id: str) -> None:
        try:
            self._path(artifact_id).unlink()
        except FileNotFoundError as exc:
            raise optuna.artifacts.exceptions.ArtifactNotFound(f"artifact {artifact_id} not found") from exc


def artifacts_dir(ws: Workspace, artifacts: str | os.PathLike[str] | None = None) -> Path:
    """The artifact folder: ``artifacts`` if given, else ``<workspace>/studies/artifacts`` (not created here)."""
    return Path(artifacts) if artifacts else studies_path(ws) / "artifacts"


def artifact_store(ws: Workspace, artifacts: str | os.PathLike[str] | None = None) -> AtomicArtifactStore:
    """The artifact store: ``artifacts`` if given, else ``<workspace>/studies/artifacts``."""
    return AtomicArtifactStore(artifacts_dir(ws, artifacts))
