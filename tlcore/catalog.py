"""Every model of a workspace in one list: trained runs, search trials, exports.

A model is named by a *key* that stays the same between listings (the Predict page keeps
it in its URL, the CLI takes it wherever a model is given):

- ``run:NAME``: a trained run, ``<workspace>/models/NAME`` (``tlcore.predict.list_models``);
- ``trial:STUDY:N``: trial N of a search study whose worker saved its model in the
  artifact store; its run folder is downloaded (``tlcore.search.fetch_trial_run``) only
  when the model is used (``model_folder``), never to list it;
- ``export:NAME``: an export folder ``<workspace>/exports/NAME`` (``tlcore.export``; the
  default place of ``python -m tlcore export``) holding ``model_card.json``,
  ``model.keras`` and ``labels.txt``.

``list_catalog(ws)`` lists them without loading any model: runs newest first, then each
study (newest first) with its complete trials that saved a model, best first (the
study's own direction), then the exports. Studies are read from their storage's summaries
and trial attributes only. A storage that cannot be opened or read is skipped with a note
in ``Catalog.notes``, never an error, and so is a run folder that cannot be listed
(``tlcore.predict.scan_models``); a workspace without any study yet is no error either (its
journal is not created by listing).

``find`` takes a key, or a bare run name (links made before keys existed), and
``resolve(ws, text)`` turns a key or a path into the model's folder for the CLI.

Example:

>>> cat = list_catalog(Workspace("workspace"))
>>> [e.label for e in cat.entries][:2]
['demo-efficientnet_lite0-feature_extraction-20260101-120000 · val 0.902', 'study pets · trial 7 (best) · val 0.931']
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from tlcore.errors import ConfigError, NotFoundError
from tlcore.predict import ModelSummary, resolve_model_path, scan_models
from tlcore.runfolder import LABELS_FILE, MODEL_FILE, RunFolder
from tlcore.search import attrs
from tlcore.search._urls import scrub_secrets
from tlcore.search.direction import best_of, rank_key
from tlcore.search.results import fetch_trial_run
from tlcore.search.storage import default_journal_path, describe_storage, open_storage, study_local_dir
from tlcore.workspace import Workspace

__all__ = [
    "KINDS", "CatalogEntry", "Catalog", "list_catalog", "list_exports", "run_key", "trial_key", "export_key",
    "parse_key", "model_folder", "resolve", "export_name", "EXPORTS",
]

KINDS = ("run", "trial", "export")
EXPORTS = "exports"  # ``Workspace.exports_dir``, named here to list it without creating it


def run_key(name: str) -> str:
    return f"run:{name}"


def trial_key(study: str, number: int) -> str:
    return f"trial:{study}:{int(number)}"


def export_key(name: str) -> str:
    return f"export:{name}"


def parse_key(key: str) -> tuple[str, str, int | None]:
    """``(kind, name, trial number or None)`` of a key.

    Raises:
        ConfigError: not a key of ``KINDS``.
    """
    kind, sep, rest = str(key).partition(":")
    if sep and rest:
        if kind in ("run", "export"):
            return kind, rest, None
        if kind == "trial":
            study, sep2, number = rest.rpartition(":")
            if sep2 and study and number.isdigit():
                return kind, study, int(number)
    raise ConfigError("Not a model key.", received=repr(key),
                      fix="Use run:NAME, trial:STUDY:NUMBER or export:NAME ('python -m tlcore models list').")


@dataclass(frozen=True)
class CatalogEntry:
    """One model of the workspace, as listed (nothing loaded).

    Attributes:
        key: its stable key (``run:…``, ``trial:…:N``, ``export:…``).
        kind: "run", "trial" or "export".
        name: the run or export folder's name; the study's name for a trial.
        label: how people see it in a list.
        path: its folder; for a trial, the local copy if it was fetched already, else None.
        val_accuracy, test_accuracy: best validation and test accuracy (None when unknown).
        dataset, backbone, method, image_size, num_classes: what is known without loading.
        created: when it was saved or exported (ISO 8601), "" when unknown.
        study, trial, best: a trial's study, number, and whether it is the study's best.
    """

    key: str
    kind: str
    name: str
    label: str
    path: Path | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    dataset: str | None = None
    backbone: str | None = None
    method: str | None = None
    image_size: int | None = None
    num_classes: int | None = None
    created: str = ""
    study: str | None = None
    trial: int | None = None
    best: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path) if self.path is not None else None
        return d


@dataclass
class Catalog:
    """``entries`` in listing order, and ``notes``: sentences about what could not be listed."""

    entries: list[CatalogEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    def find(self, key: str | None) -> CatalogEntry | None:
        """The entry of ``key``, or of the run named ``key`` (an old ``?model=NAME`` link); None if absent."""
        if not key:
            return None
        by_key = {e.key: e for e in self.entries}
        return by_key.get(key) or by_key.get(run_key(key))


def _val(value: float | None) -> str:
    return f" · val {value:.3f}" if isinstance(value, (int, float)) else ""


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _run_entry(s: ModelSummary) -> CatalogEntry:
    return CatalogEntry(
        key=run_key(s.name), kind="run", name=s.name, label=f"{s.name}{_val(s.best_val_accuracy)}", path=s.path,
        val_accuracy=s.best_val_accuracy, test_accuracy=s.test_accuracy, dataset=s.dataset, backbone=s.backbone,
        method=s.method, image_size=s.image_size, num_classes=s.num_classes, created=s.created,
    )


# ----------------------------------------------------------------- trials
def _trial_entries(ws: Workspace, storage: str | None) -> list[CatalogEntry]:
    """The complete trials with a saved model of every workbench study in ``storage``."""
    st = open_storage(ws, storage)
    studies = []
    for fs in st.get_all_studies():
        spec = attrs.stored_spec(fs.user_attrs)
        if spec is not None:
            studies.append((attrs.created_at(fs.user_attrs), fs, spec))
    studies.sort(key=lambda s: s[0], reverse=True)
    out: list[CatalogEntry] = []
    for _, fs, spec in studies:
        complete = [t for t in st.get_all_trials(fs._study_id, deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.value is not None]
        best = best_of(complete, fs.direction)
        with_model = [t for t in complete if MODEL_FILE in attrs.artifacts(t)]
        with_model.sort(key=lambda t: (t is not best, rank_key(float(t.value), fs.direction), t.number))
        backbones = spec.get("backbones") or []
        methods = spec.get("methods") or []
        local = study_local_dir(ws, fs.study_name) / "trials"
        for t in with_model:
            is_best = best is not None and t.number == best.number
            val = attrs.best_val_accuracy(t)
            folder = local / str(t.number)
            out.append(CatalogEntry(
                key=trial_key(fs.study_name, t.number), kind="trial", name=fs.study_name,
                label=f"study {fs.study_name} · trial {t.number}{' (best)' if is_best else ''}{_val(val)}",
                path=folder if RunFolder(folder).model_file.is_file() else None,
                val_accuracy=val, test_accuracy=_num(attrs.metrics(t).get("test_accuracy")),
                dataset=str(spec.get("dataset") or "") or None,
                backbone=str(t.params.get("backbone") or (backbones[0] if len(backbones) == 1 else "")) or None,
                method=str(t.params.get("method") or (methods[0] if len(methods) == 1 else "")) or None,
                image_size=_int(spec.get("image_size")),
                created=t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else "",
                study=fs.study_name, trial=t.number, best=is_best,
            ))
    return out


# ---------------------------------------------------------------- exports
def _export_entry(folder: Path) -> CatalogEntry | None:
    rf = RunFolder(folder)
    if not (rf.model_card_file.is_file() and rf.model_file.is_file() and (folder / LABELS_FILE).is_file()):
        return None
    card = rf.read_model_card()
    if not card:
        return None
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    inp = card.get("input") if isinstance(card.get("input"), dict) else {}
    classes = card.get("classes") if isinstance(card.get("classes"), list) else None
    val = _num(metrics.get("best_val_accuracy"))
    dataset = (card.get("dataset") or {}).get("name") if isinstance(card.get("dataset"), dict) else None
    return CatalogEntry(
        key=export_key(folder.name), kind="export", name=folder.name, label=f"export {folder.name}{_val(val)}",
        path=folder, val_accuracy=val, test_accuracy=_num(metrics.get("test_accuracy")),
        dataset=str(dataset or training.get("dataset") or "") or None,
        backbone=str(training.get("backbone") or "") or None, method=str(training.get("method") or "") or None,
        image_size=_int(inp.get("image_size")), num_classes=len(classes) if classes else None,
        created=_local_time(card.get("exported_at")),
    )


def _local_time(stamp: Any) -> str:
    """An ISO 8601 time with a zone (a model card's, in UTC) as this machine's local time without one,
    as runs and trials give theirs (so they print and sort alike); "" when missing, as given when not ISO."""
    if not stamp:
        return ""
    try:
        when = _dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    return (when.astimezone().replace(tzinfo=None) if when.tzinfo else when).isoformat(timespec="seconds")


def list_exports(ws: Workspace) -> list[CatalogEntry]:
    """The export folders under ``<workspace>/exports`` with a model card, ``model.keras`` and
    ``labels.txt``, newest first (SavedModel- or TFLite-only exports cannot be loaded here)."""
    return _scan_exports(ws)[0]


def _scan_exports(ws: Workspace) -> tuple[list[CatalogEntry], list[str]]:
    """``list_exports`` and a note for each folder there that is not listed, saying why."""
    root = ws.root / EXPORTS
    try:
        folders = sorted(Path(e.path) for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return [], []
    found, notes = [], []
    for folder in folders:
        entry = _export_entry(folder)
        if entry is not None:
            found.append(entry)
        elif (why := _unlisted_export(folder)) is not None:
            notes.append(why)
    found.sort(key=lambda e: (e.created, e.name), reverse=True)
    return found, notes


def _unlisted_export(folder: Path) -> str | None:
    """Why the export folder ``folder``, which holds a Keras model, is not listed (``_export_entry``
    gave None); None for a folder without one: an export of serving formats only (TFLite, ONNX,
    SavedModel), made so on purpose, or a folder of the user's own (``predict export:NAME`` on it
    says what it holds)."""
    rf = RunFolder(folder)
    if not rf.model_file.is_file():
        return None
    what = (f"its {rf.model_card_file.name} is missing" if not rf.model_card_file.is_file()
            else f"its {LABELS_FILE} is missing" if not (folder / LABELS_FILE).is_file()
            else f"its {rf.model_card_file.name} cannot be read")
    return (f"Export '{folder.name}' is not listed: {what}. Export the model again, or give the folder's path "
            f"as the model ('python -m tlcore predict {folder} IMAGE').")


# ---------------------------------------------------------------- listing
def list_catalog(ws: Workspace, *, storage: str | None = None) -> Catalog:
    """Every model of the workspace: runs (newest first), search trials (each study's best first),
    exports (newest first). Nothing is loaded or downloaded.

    Args:
        ws: the workspace.
        storage: the study storage (None: the workspace's journal). Defaults to None.

    Raises:
        WorkspaceError: the models folder cannot be read (a storage that cannot be read is
            a note instead).
    """
    runs, notes = scan_models(ws)
    cat = Catalog(entries=[_run_entry(s) for s in runs], notes=notes)
    try:
        if storage is not None or default_journal_path(ws).exists():  # no study yet: no journal made
            cat.entries += _trial_entries(ws, storage)
    except Exception as exc:  # any storage failure (bad URL, server down, damaged journal): a note
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        if storage is not None:
            detail = scrub_secrets(detail, storage)  # never a password in a message
        cat.notes.append(f"Search trials are not listed: the study storage {describe_storage(ws, storage)} "
                         f"could not be read ({detail}).")
    exports, unlisted = _scan_exports(ws)
    cat.entries += exports
    cat.notes += unlisted
    return cat


# -------------------------------------------------------------- resolving
def model_folder(ws: Workspace, entry: CatalogEntry, *, storage: str | None = None) -> Path:
    """The folder holding ``entry``'s model: a trial's run folder is fetched on first use.

    Raises:
        NotFoundError, WorkspaceError: the trial's files cannot be fetched.
    """
    if entry.kind == "trial":
        return fetch_trial_run(ws, str(entry.study), int(entry.trial or 0), storage)
    if entry.path is None:
        raise NotFoundError("The model has no folder.", received=entry.key)
    return entry.path


def resolve(ws: Workspace, text: str, *, storage: str | None = None) -> Path:
    """A model given on the command line: a key (``run:…``, ``trial:STUDY:N``, ``export:…``), a
    path, or a run name. A trial's run folder is fetched from the artifact store.

    Raises:
        NotFoundError: nothing of that key, name or path.
    """
    raw = str(text).strip()
    kind = raw.partition(":")[0]
    if kind in KINDS and not Path(raw).expanduser().exists():
        kind, name, number = parse_key(raw)
        if kind == "trial":
            return fetch_trial_run(ws, name, int(number or 0), storage)
        folder = ws.root / ("models" if kind == "run" else EXPORTS) / name
        if not (folder / MODEL_FILE).is_file():
            if folder.is_dir():  # there, without a Keras model (an edge-formats-only export): loading it
                return folder    # says what it holds and what to do, as for the folder's path
            raise NotFoundError(f"No {kind} of that name.", received=str(folder),
                                fix="'python -m tlcore models list' shows every model and its key.")
        return folder
    return resolve_model_path(ws, raw)


def export_name(model: str, path: Path) -> str:
    """The folder name an export of ``model`` (as given, resolved to ``path``) gets by default:
    the run's name, ``STUDY-trial-N`` for a search trial, the file's stem for a ``.keras`` file."""
    kind = model.partition(":")[0]
    if kind == "trial":
        _, study, number = parse_key(model)
        return f"{study}-trial-{number}"
    if path.parent.name == "trials" and path.name.isdigit():  # <studies>/local/STUDY/trials/N
        return f"{path.parent.parent.name}-trial-{path.name}"
    return path.stem if path.suffix.lower() == ".keras" else path.name
