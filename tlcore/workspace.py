"""Where things live on disk: one workspace folder per user or project.

Layout::

    <root>/
      workspace.yaml            settings a user may edit: ``data_roots`` (extra folders
                                datasets may come from); ``demo_removed`` is set by
                                removing the demo dataset
      datasets/registry.json    the registered datasets (``DatasetRecord``)
      datasets/<name>/          each dataset's index, problem report and split
      augmentations/<name>.yaml saved augmentation pipelines
      data/<name>/              datasets the workbench made: uploaded archives, IDX imports
      cache/                    decoded-image and feature caches, converted weights
                                (safe to delete)
      models/<run>/             trained runs (``tlcore.trainer``)
      train-jobs/<id>/          training jobs: spec, state, per-epoch progress, log
                                (``tlcore.train_jobs``; the Train page)
      exports/<name>/           exported models (``python -m tlcore export`` writes here by
                                default; ``tlcore.catalog`` lists them)
      studies/                  searches: journal (``tlcore.search.storage``), artifacts
                                (``search.artifacts``), local worker files (``search.worker_state``)
      .locks/                   inter-process locks (``Workspace.lock``)
      .workspace-id             a random name made on first use (``Workspace.identity``): the
                                same workspace after a move, another one after a copy

The root is, in order: the ``root`` argument (the CLI's ``--workspace``), the
``TLCORE_HOME`` environment variable, ``./workspace``. Every write is atomic and
registry updates hold a file lock, so concurrent processes and crashes never
leave a half-written registry.

A workspace can be moved or copied elsewhere whole: a path inside it that its own
files record (a dataset the workbench extracted or imported under ``data/``, a training
job's run folder) is stored relative to the root (``Workspace.portable_path``) and read
back against the root it is in now (``Workspace.stored_path``). Paths outside it (the
user's own image folders, the demo) stay absolute; an absolute path an older version
stored is read as it is, and written relative once it lies inside this root.

Dataset paths are confined to the *data roots*: the workspace itself, the
bundled demo folder (``DEMO_DATA_DIR``: the checkout's ``demo_data/``, or the
installed copy's, found by ``tlcore.appfiles``), and whatever ``workspace.yaml``'s
``data_roots`` list or the ``TLCORE_DATA_ROOTS`` variable (``os.pathsep``-separated)
add. A ``workspace.yaml`` that is not UTF-8 text, not YAML, or whose ``data_roots`` is not a
list of folders is an error that names it, and it is never rewritten then; a workspace path
below a file is refused when the ``Workspace`` is made.

This module only knows paths, settings and the registry; what a dataset holds is
``tlcore.datasets`` (``add_dataset`` and friends write the registry through
``Workspace.put_dataset``). Every other module takes a ``Workspace`` to find its
folders; the folders are created on first use.

Example:

>>> ws = Workspace("/tmp/ws")
>>> ws.check_data_path("/tmp/ws/data/pets")
PosixPath('/tmp/ws/data/pets')
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tlcore import _yaml
from tlcore._fsutil import atomic_write_json, atomic_write_yaml, file_above, read_json, read_text
from tlcore.appfiles import PACKAGE_ROOT, demo_data_dir
from tlcore.errors import ConfigError, NotFoundError, PathNotAllowedError, WorkspaceError

__all__ = ["Workspace", "DatasetRecord", "default_root", "validate_name", "DEMO_DATA_DIR", "PACKAGE_ROOT"]

# PACKAGE_ROOT (the folder holding the tlcore package) is tlcore.appfiles', re-exported here.
DEMO_DATA_DIR = demo_data_dir()  # the checkout's demo_data/, else the installed copy's
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_root() -> Path:
    """The workspace root when none is given: ``$TLCORE_HOME`` or ``./workspace``."""
    env = os.environ.get("TLCORE_HOME")
    return Path(env).expanduser() if env else Path.cwd() / "workspace"


def validate_name(name: str, what: str = "name") -> str:
    """Check a user-chosen name (dataset, pipeline, study) is a safe file name."""
    if isinstance(name, (int, float)) and not isinstance(name, bool):  # YAML reads name: 123 as a number
        raise ConfigError(f"Invalid {what}: it must be text, and {name!r} was read as a number.",
                          received=repr(name), fix=f"In a YAML file, put it in quotes: \"{name}\".")
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in {".", ".."}:
        raise ConfigError(
            f"Invalid {what}.",
            received=repr(name),
            fix="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class DatasetRecord:
    """A registered dataset: where it is and what the last scan found."""

    name: str
    path: str
    source: str = "folder"  # folder | upload | idx | demo
    layout: str = "class_folders"  # class_folders | presplit
    added_at: str = field(default_factory=_now)
    scanned_at: str | None = None
    num_images: int = 0
    num_classes: int = 0
    num_problems: int = 0
    usable: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Workspace:
    """A workspace folder. Cheap to create; folders are made on first use.

    Args:
        root: the folder. Defaults to ``$TLCORE_HOME`` or ``./workspace``.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = (Path(root).expanduser() if root is not None else default_root()).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise WorkspaceError(
                "The workspace path exists and is not a folder.",
                received=str(self.root),
                fix="Point TLCORE_HOME or --workspace at a folder.",
            )
        blocker = file_above(self.root)
        if blocker is not None:
            raise WorkspaceError(
                f"The workspace path cannot be a folder: {blocker} above it is a file, not a folder.",
                received=str(self.root),
                fix="Point TLCORE_HOME or --workspace at a folder that is not below a file.",
            )

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # ------------------------------------------------------- portable paths
    def portable_path(self, path: str | os.PathLike[str]) -> str:
        """``path`` as the workspace's files record it: relative to the root (``data/pets``) when it
        lies inside it, so the record still holds after the workspace is moved or copied; else absolute,
        as given. The check is on the text of the path (made absolute, not resolved: a link inside the
        workspace to a folder elsewhere stays a path inside it)."""
        p = Path(os.path.abspath(Path(path).expanduser()))
        if p == self.root or p.is_relative_to(self.root):
            return p.relative_to(self.root).as_posix()
        return str(path) if Path(path).is_absolute() else str(p)

    def stored_path(self, text: str | os.PathLike[str]) -> Path:
        """A path the workspace's files recorded (``portable_path``): a relative one is inside this
        root, wherever the workspace is now; an absolute one (outside, or written by an older version)
        is returned as it is."""
        p = Path(text)
        return p if p.is_absolute() else self.root / p

    # ----------------------------------------------------------------- folders
    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"Cannot create the workspace folder {path}: {exc.strerror}.",
                received=str(path),
                fix="Make it writable, or set TLCORE_HOME to a writable folder.",
            ) from exc
        return path

    @property
    def datasets_dir(self) -> Path:
        return self._dir("datasets")

    @property
    def augmentations_dir(self) -> Path:
        return self._dir("augmentations")

    @property
    def data_dir(self) -> Path:
        """Where datasets the workbench creates (uploads, IDX imports) are written."""
        return self._dir("data")

    @property
    def cache_dir(self) -> Path:
        return self._dir("cache")

    @property
    def studies_dir(self) -> Path:
        return self._dir("studies")

    @property
    def models_dir(self) -> Path:
        return self._dir("models")

    @property
    def exports_dir(self) -> Path:
        """Where exports go when no folder is given (``tlcore.catalog`` lists them)."""
        return self._dir("exports")

    def dataset_dir(self, name: str, *, create: bool = True) -> Path:
        """The folder holding a dataset's index and reports (not its images).

        Args:
            name: the dataset's name.
            create: make the folder if missing. Readers pass False. Defaults to True.
        """
        validate_name(name, "dataset name")
        return self._dir("datasets", name) if create else self.root / "datasets" / name

    # ---------------------------------------------------------------- identity
    def identity(self) -> str | None:
        """This workspace's id, ``<root>/.workspace-id``: made (random) the first time it is asked for,
        then read. A workspace moved keeps it; a copy gets its own. The file's first line is the id and
        the root folder's inode, its second line the root's path. The inode is what ``mv`` keeps and
        ``cp -a`` does not; when it differs, the path tells the two apart: if the recorded folder is still
        there with this id, this is a copy, which derives a new id from the old one and its own inode (so
        every process of the copy derives the same one); if it is gone (a move to another file system,
        which copies and deletes, or a restore from a backup), this is the workspace itself, moved. A file
        written before the path was recorded counts as a copy. None when the file can be neither read nor
        made (a read-only workspace).

        A study records the workspace it was created in with it (``tlcore.search.study``), to tell its own
        workspace, moved since, from a copy or another machine's."""
        path = self.root / ".workspace-id"
        try:
            here = os.stat(self.root)
        except OSError:
            return None
        inode = f"{here.st_dev}:{here.st_ino}"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        except OSError:
            return None
        words = lines[0].split() if lines else []
        recorded = lines[1] if len(lines) > 1 and lines[1] else None
        old_id = words[0] if words and re.fullmatch(r"[0-9a-f]{32}", words[0]) else None
        if old_id and len(words) == 2 and words[1] == inode:
            if recorded == str(self.root):
                return old_id
            new_id = old_id  # moved within its file system (or a file without the path): record where it is
        elif old_id and recorded is not None and not self._id_still_at(recorded, old_id):
            new_id = old_id  # the recorded folder is gone: moved across file systems, or restored
        elif old_id:  # a copy (or an id without its inode or path)
            new_id = hashlib.sha256(f"{old_id} {inode}".encode()).hexdigest()[:32]
        else:
            new_id = uuid.uuid4().hex
        tmp = self.root / f".workspace-id.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
        try:
            tmp.write_text(f"{new_id} {inode}\n{self.root}\n", encoding="utf-8")
            if lines:
                os.replace(tmp, path)  # every process derives the same id, so any writer wins
            else:
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)  # the first: two processes at once, one random id wins
        except OSError:
            return None if new_id != old_id else old_id  # read-only: a moved workspace still knows its id
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return self.identity() if not lines else new_id

    def _id_still_at(self, folder: str, the_id: str) -> bool:
        """Whether ``folder`` (another path than this root) is a workspace folder whose id file holds
        ``the_id``: the original this workspace was copied from is still there."""
        other = Path(folder)
        try:
            if other.resolve() == self.root:
                return False  # the path is this root's own (restored in place): nothing else holds the id
            first = (other / ".workspace-id").read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            return False
        return bool(first) and first[0] == the_id

    # ---------------------------------------------------------------- settings
    @property
    def settings_path(self) -> Path:
        return self.root / "workspace.yaml"

    def settings(self) -> dict[str, Any]:
        """User-editable settings from ``workspace.yaml`` (empty if absent).

        Raises:
            WorkspaceError: the file cannot be read (not UTF-8 text, a folder, no permission).
            ConfigError: it is not valid YAML, or not a mapping.
        """
        try:
            data = _yaml.safe_load(self._read_settings_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(
                "workspace.yaml is not valid YAML.", received=f"{self.settings_path}: {_yaml.error_line(exc)}",
                fix="Fix the syntax: one 'key: value' per line, e.g. 'data_roots: [/data]'."
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(
                "workspace.yaml must be a mapping of settings.",
                received=f"{self.settings_path}: a {type(data).__name__}",
                fix="Write it as 'key: value' lines, e.g. 'data_roots: [/data]'.",
            )
        return data

    def _read_settings_text(self) -> str:
        """``workspace.yaml``'s text ("" when there is none); it is only read, never changed here."""
        readable = "Make it readable by the user running tlcore, or point TLCORE_HOME at a workspace that user owns."
        text = read_text(
            self.settings_path,
            fix="Nothing was written to it. Save it again as UTF-8 text ('key: value' lines: data_roots, a list of "
            "folders datasets may come from; demo_removed: true or false), or delete it: it holds only those settings.",
            folder_fix="Move that folder elsewhere: the settings then start empty (no extra data roots).",
            denied_fix=readable, other_fix=readable,
        )
        return text or ""

    def save_settings(self, settings: dict[str, Any]) -> None:
        self._dir()
        atomic_write_yaml(self.settings_path, settings)

    # -------------------------------------------------------------- data roots
    @property
    def data_roots(self) -> list[Path]:
        """Folders dataset paths must lie in (resolved, symlinks followed)."""
        roots: list[Path] = [self.root, DEMO_DATA_DIR]
        extra = self._data_roots_setting(self.settings())
        env = os.environ.get("TLCORE_DATA_ROOTS", "")
        extra += [p for p in env.split(os.pathsep) if p.strip()]
        roots += [Path(p).expanduser() for p in extra]
        seen: list[Path] = []
        for r in roots:
            rr = Path(os.path.realpath(r))
            if rr not in seen:
                seen.append(rr)
        return seen

    def add_data_root(self, path: str | os.PathLike[str]) -> Path:
        """Allow datasets under ``path`` (stored in ``workspace.yaml``)."""
        p = Path(os.path.realpath(Path(path).expanduser()))
        if not p.is_dir():
            raise ConfigError("A data root must be an existing folder.", received=str(path))
        settings = self.settings()
        roots = self._data_roots_setting(settings)
        if str(p) not in roots:
            roots.append(str(p))
        settings["data_roots"] = roots
        self.save_settings(settings)
        return p

    def remove_data_root(self, path: str | os.PathLike[str]) -> None:
        """Stop allowing datasets under ``path`` (a root ``add_data_root`` stored); nothing else changes."""
        p = str(Path(os.path.realpath(Path(path).expanduser())))
        settings = self.settings()
        roots = self._data_roots_setting(settings)
        if p in roots:
            settings["data_roots"] = [r for r in roots if r != p]
            self.save_settings(settings)

    def demo_removed(self) -> bool:
        """``workspace.yaml``'s ``demo_removed``: whether the user removed the demo dataset (so it is
        not registered again until ``datasets restore-demo``); False when the setting is absent.

        Raises:
            ConfigError: it is not true or false (the file is left as it is).
        """
        value = self.settings().get("demo_removed", False)
        if not isinstance(value, bool):
            raise ConfigError(
                "workspace.yaml's demo_removed must be true or false.",
                received=f"{self.settings_path}: demo_removed holds {value!r}",
                fix="Write 'demo_removed: true' to keep the demo dataset away, or remove the line to have it back "
                "('python -m tlcore datasets restore-demo' does that). Nothing was written to the file.",
            )
        return value

    def _data_roots_setting(self, settings: dict[str, Any]) -> list[str]:
        """``workspace.yaml``'s ``data_roots``: a list of folders (one folder alone may be given as text).

        Raises:
            ConfigError: it is something else (a number, a mapping, an entry that is not a path);
                the file is left as it is.
        """
        value = settings.get("data_roots")
        if value is None or value == "":
            return []
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list):
            what = repr(value)
        else:
            bad = [(i, e) for i, e in enumerate(entries, 1) if not (isinstance(e, str) and e.strip())]
            if not bad:
                return list(entries)
            what = f"{bad[0][1]!r} as entry {bad[0][0]}, which is not a folder path"
        raise ConfigError(
            "workspace.yaml's data_roots must be a list of folders.",
            received=f"{self.settings_path}: data_roots holds {what}",
            fix="Write it as 'data_roots: [/data/photos, /mnt/shared]' (a path that looks like a number in quotes), "
            "or remove the line. Nothing was written to the file.",
        )

    def is_within_data_roots(self, path: str | os.PathLike[str]) -> bool:
        real = Path(os.path.realpath(Path(path).expanduser()))
        return any(real == r or real.is_relative_to(r) for r in self.data_roots)

    def check_data_path(self, path: str | os.PathLike[str]) -> Path:
        """Resolve ``path`` (following symlinks) and refuse it outside the data roots."""
        if path is None or str(path).strip() == "":
            raise PathNotAllowedError("No dataset path was given.", fix="Give the folder that holds the class folders.")
        raw = Path(str(path).strip()).expanduser()
        real = Path(os.path.realpath(raw))
        if not any(real == r or real.is_relative_to(r) for r in self.data_roots):
            roots = ", ".join(str(r) for r in self.data_roots)
            raise PathNotAllowedError(
                "That path is outside the allowed data roots.",
                received=f"{path} (resolves to {real})",
                fix=(
                    f"Use a folder under one of: {roots}; or allow another root with "
                    "'python -m tlcore datasets allow-root PATH', the data_roots list in "
                    "workspace.yaml, or the TLCORE_DATA_ROOTS variable."
                ),
            )
        return real

    # ---------------------------------------------------------------- registry
    @property
    def _registry_path(self) -> Path:
        return self.datasets_dir / "registry.json"

    @contextlib.contextmanager
    def lock(self, name: str = "registry") -> Iterator[None]:
        """An exclusive inter-process lock (flock) on ``<root>/.locks/<name>.lock``."""
        lock_path = self._dir(".locks") / f"{name}.lock"
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _read_registry(self) -> dict[str, dict[str, Any]]:
        """The registry's entries by name; {} before the first dataset. A registry that is JSON but
        not one (a hand edit, another program's file) is an error, never read as empty: the next
        write would then drop every registration."""
        data = read_json(self._registry_path, default={})
        if data == {}:  # no dataset yet
            return {}
        entries = data.get("datasets") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            what = 'it is not a mapping with a "datasets" mapping in it'
        else:
            bad = next((k for k, v in entries.items() if not (
                isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("path"), str))), None)
            if bad is None:
                return entries
            what = f"its entry {bad!r} is not a dataset record (a mapping with a name and a path)"
        raise WorkspaceError(
            f"The dataset registry cannot be read: {what}.",
            received=str(self._registry_path),
            fix="Restore registry.json from a backup, or mend it by hand: "
            '{"version": 1, "datasets": {"NAME": {"name": "NAME", "path": "/path/to/it"}}}. '
            "Nothing was written to it.",
        )

    def _write_registry(self, datasets: dict[str, dict[str, Any]]) -> None:
        """Write the registry; a path inside the workspace (every entry's, an older one's too) is written
        relative to the root (``portable_path``)."""
        portable = {name: {**d, "path": self.portable_path(self.stored_path(d["path"]))}
                    for name, d in datasets.items()}
        atomic_write_json(self._registry_path, {"version": 1, "datasets": portable})

    def _record(self, entry: dict[str, Any]) -> DatasetRecord:
        """A registry entry as a ``DatasetRecord``, its path absolute (``stored_path``)."""
        return DatasetRecord.from_dict({**entry, "path": str(self.stored_path(entry["path"]))})

    def list_datasets(self) -> list[DatasetRecord]:
        """The registered datasets by name; each ``path`` absolute (a folder inside the workspace, recorded
        relative to it, is where the workspace is now)."""
        return [self._record(d) for _, d in sorted(self._read_registry().items())]

    def has_dataset(self, name: str) -> bool:
        return name in self._read_registry()

    def get_dataset(self, name: str) -> DatasetRecord:
        reg = self._read_registry()
        if name not in reg:
            known = ", ".join(sorted(reg)) or "none yet"
            raise NotFoundError(
                "No dataset is registered under that name.",
                received=repr(name),
                fix=f"Registered datasets: {known}. Add one with 'python -m tlcore datasets add NAME PATH'.",
            )
        return self._record(reg[name])

    def put_dataset(self, record: DatasetRecord, *, overwrite: bool = True) -> DatasetRecord:
        """Insert or replace a registry entry atomically, under the registry lock."""
        validate_name(record.name, "dataset name")
        with self.lock():
            reg = self._read_registry()
            if not overwrite and record.name in reg:
                raise ConfigError(
                    "A dataset with that name is already registered.",
                    received=repr(record.name),
                    fix="Choose another name, or remove the existing one first.",
                )
            reg[record.name] = record.to_dict()
            self._write_registry(reg)
        return record

    def remove_dataset(self, name: str) -> None:
        """Forget a dataset (its image folder is never touched)."""
        with self.lock():
            reg = self._read_registry()
            if name not in reg:
                raise NotFoundError("No dataset is registered under that name.", received=repr(name))
            del reg[name]
            self._write_registry(reg)
