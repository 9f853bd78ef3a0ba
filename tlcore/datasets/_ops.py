"""Register, rescan, load and remove datasets in a workspace.

A registered dataset is a folder of images somewhere under the data roots plus,
in ``<workspace>/datasets/<name>/``, what the last scan found:

- ``index.parquet``     one row per image file (see ``scan_dataset``)
- ``problems.parquet``  the problem report
- ``scan.json``         layout, classes, counts and timings of the last scan
- ``split.yaml``        the dataset's ``SplitSpec`` (fractions and seed), once saved
- ``overrides.jsonl``   people's keep / relabel / exclude decisions (``_manifest``, ``_overrides``)
- ``split_groups.json`` near-duplicate groups the split keeps together (``_groups``)
- ``audits/``           label, near-duplicate and quality audits (``tlcore.audit``)

Each file is written atomically and the registry entry last, so a crash leaves
the previous registration intact. Images are never modified; removing a dataset
deletes image files only when the workbench made them (uploads and imports) and no
other registered dataset uses them. A dataset whose folder is gone is never rescanned
(it would find nothing and empty the dataset); its last scan is kept. Registering a name again with
``overwrite`` (a moved folder) keeps the split settings, decisions, groups and audits; removing the
dataset deletes them (``kept_with_dataset`` says what there is, for the messages that warn).

Entry points: ``add_dataset`` (path checked against the data roots), ``rescan_dataset``
(only changed files are read again), ``add_zip_dataset``, ``add_idx_dataset``,
``add_fashion_mnist`` (each writes under ``<workspace>/data/<name>/`` first),
``remove_dataset``, ``load_index`` / ``load_problems`` / ``load_scan_info``,
``load_split_spec`` / ``save_split_spec``, ``dataset_splits`` (the index with the override
manifest applied and a ``split`` column, what the trainer trains on) and ``dataset_summary``. Built on
``_scan``, ``_split``, ``_archive``, ``_idx`` and the registry of
``tlcore.workspace``.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import shlex
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd
import yaml

from tlcore._fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from tlcore._usertext import counted
from tlcore.config import SplitSpec
from tlcore.datasets._archive import extract_zip
from tlcore.datasets._groups import group_keys, load_split_groups
from tlcore.datasets._idx import import_fashion_mnist, import_idx
from tlcore.datasets._manifest import apply_overrides, load_overrides
from tlcore.datasets._scan import ScanOptions, ScanResult, scan_dataset
from tlcore.datasets._split import assign_splits, read_split_spec, split_counts
from tlcore.errors import ConfigError, DatasetError, NotFoundError, TLCoreError, WorkspaceError
from tlcore.workspace import DatasetRecord, Workspace, validate_name

__all__ = [
    "add_dataset",
    "add_zip_dataset",
    "add_idx_dataset",
    "add_fashion_mnist",
    "check_name_free",
    "folder_missing",
    "folder_problem",
    "kept_with_dataset",
    "rescan_dataset",
    "remove_dataset",
    "load_index",
    "load_problems",
    "load_scan_info",
    "load_split_spec",
    "save_split_spec",
    "dataset_splits",
    "dataset_summary",
    "OWNED_SOURCES",
]

# The sources of datasets whose image folder the workbench created under <workspace>/data/
# (uploads, IDX and Fashion-MNIST imports): removing one may delete its files too.
OWNED_SOURCES = ("upload", "idx")

Progress = Callable[[int, int], None]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    df.reset_index(drop=True).to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _read_parquet(path: Path, what: str, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"The dataset {name!r} has no {what} yet.",
            received=str(path),
            fix=f"Scan it with 'python -m tlcore datasets rescan {name}'.",
        ) from exc
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise WorkspaceError(
            f"The saved {what} of dataset {name!r} is damaged.",
            received=str(path),
            fix=f"Rebuild it with 'python -m tlcore datasets rescan {name}'.",
        ) from exc


def _save_scan(ws: Workspace, name: str, result: ScanResult) -> None:
    d = ws.dataset_dir(name)
    _write_parquet(d / "index.parquet", result.index)
    _write_parquet(d / "problems.parquet", result.problems)
    info = {
        "root": ws.portable_path(result.root),  # inside the workspace: relative to it (it may be moved)
        "layout": result.layout,
        "classes": list(result.classes),
        "stats": result.stats,
        "usable": result.usable,
        "reason": result.reason,
        "scanned_at": _now(),
    }
    atomic_write_json(d / "scan.json", info)


def _record_from(name: str, result: ScanResult, *, source: str, added_at: str | None = None) -> DatasetRecord:
    idx = result.index
    usable = int(idx["usable"].sum()) if len(idx) else 0
    rec = DatasetRecord(
        name=name,
        path=str(result.root),
        source=source,
        layout=result.layout,
        scanned_at=_now(),
        num_images=usable,
        num_classes=len(result.classes),
        num_problems=len(result.problems),
        usable=result.usable,
    )
    if added_at:
        rec.added_at = added_at
    return rec


def add_dataset(
    ws: Workspace,
    name: str,
    path: str | os.PathLike[str],
    *,
    source: str = "folder",
    overwrite: bool = False,
    options: ScanOptions | None = None,
    progress: Progress | None = None,
    origin: str | None = None,
) -> ScanResult:
    """Scan the folder ``path`` and register it as ``name``.

    Args:
        ws: the workspace.
        name: the dataset's name (letters, digits, '.', '_', '-').
        path: a folder under the workspace's data roots.
        source: how the folder came to be: folder, upload, idx or demo. Defaults to "folder".
        overwrite: replace an existing registration of ``name``. Defaults to False.
        options: scan thresholds. Defaults to ``ScanOptions()``.
        origin: what the user gave, named in the messages: an uploaded zip file's name (its
            extraction folder is not theirs to look for). Defaults to ``path``.
        progress: called as ``progress(done, total)`` while scanning.

    Returns:
        The scan result (index and problem report).

    Raises:
        PathNotAllowedError: ``path`` lies outside the data roots.
        DatasetError: the folder cannot be used as a dataset at all; nothing is registered.
    """
    validate_name(name, "dataset name")
    folder = None if source in OWNED_SOURCES else path  # an upload's or import's folder is not one to name again
    if not overwrite:
        check_name_free(ws, name, folder)
    root = ws.check_data_path(path)
    result = scan_dataset(root, options=options, allowed_roots=ws.data_roots, progress=progress)
    if not result.usable:
        upload = source == "upload"
        raise DatasetError(
            f"This {'zip file' if upload else 'folder'} cannot be used as a dataset: {result.reason.rstrip('.')}.",
            received=str(origin or path),
            fix="Arrange the images as one folder per class (at least two classes), e.g. cat/1.jpg and dog/2.jpg "
            "inside the zip." if upload else
            "Arrange the images as one sub-folder per class (at least two classes), e.g. photos/cat/*.jpg, photos/dog/*.jpg.",
        )
    with ws.lock(f"dataset-{name}"):
        if not overwrite:  # again: another process may have added the name while this one scanned
            check_name_free(ws, name, folder)
        _save_scan(ws, name, result)
        ws.put_dataset(_record_from(name, result, source=source), overwrite=overwrite)
    return result


def check_name_free(ws: Workspace, name: str, path: str | os.PathLike[str] | None = None) -> None:
    """Refuse ``name`` when a dataset is registered under it. The way out the message offers first,
    for a folder ``path`` (not an upload or import, which make a folder of their own), keeps what the
    registered dataset holds beside its images (``kept_with_dataset``): ``add NAME PATH --overwrite``
    (with ``--allow-root`` when PATH lies outside the data roots); removing the dataset first, which
    deletes those, comes last and says so.

    Raises:
        ConfigError: the name is taken.
    """
    if not ws.has_dataset(name):
        return
    kept = kept_with_dataset(ws, name)
    remove = f"'python -m tlcore datasets remove {name}'"
    if kept:
        remove += f", which also deletes its {kept}"
    if path is None:
        fix = f"Choose another name, or remove the registered dataset first ({remove})."
    else:
        allow = "" if ws.is_within_data_roots(path) else " --allow-root"
        command = f"python -m tlcore datasets add {name} {shlex.quote(os.fspath(path))} --overwrite{allow}"
        keeps = f": its {kept} stay, only the folder changes" if kept else ""
        fix = (f"To point {name!r} at this folder, register it again with --overwrite ('{command}'){keeps}. "
               f"Or choose another name; or remove the registered dataset first ({remove}).")
    raise ConfigError("A dataset with that name is already registered.", received=repr(name), fix=fix)


def kept_with_dataset(ws: Workspace, name: str) -> str:
    """What a dataset holds besides its images and its scan, which removing it deletes and registering
    it again with ``overwrite`` keeps, in words ("3 keep/relabel/exclude decisions, split settings and
    1 saved audit"); "" when it holds none of those."""
    folder = ws.dataset_dir(name, create=False)
    parts = []
    manifest = folder / "overrides.jsonl"
    if manifest.is_file():
        try:
            n = len(load_overrides(ws, name))
        except TLCoreError:  # a damaged manifest is still lost with the dataset: count its lines
            try:
                n = sum(1 for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines()
                        if line.strip())
            except OSError:
                n = 0
        if n:
            parts.append(counted(n, "keep/relabel/exclude decision"))
    if (folder / "split.yaml").is_file() or (folder / "split_groups.json").is_file():
        parts.append("split settings")
    audits = folder / "audits"
    try:
        n = sum(1 for d in audits.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "jobs"
                and (d / "summary.json").is_file()) if audits.is_dir() else 0
    except OSError:
        n = 0
    if n:
        parts.append(counted(n, "saved audit"))
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)


def rescan_dataset(
    ws: Workspace, name: str, *, options: ScanOptions | None = None, progress: Progress | None = None
) -> ScanResult:
    """Scan a registered dataset again, re-reading only files that changed.

    A dataset whose folder is gone (moved, deleted, on a drive or network share that is not
    mounted) is not rescanned: scanning it would find no images and empty the dataset. An
    existing folder is scanned whatever it holds (an empty one gives an unusable dataset).

    Raises:
        NotFoundError: ``name`` is not registered.
        DatasetError: the dataset's folder is missing or not a folder (checked before the scan
            and again before its result is saved); its registry entry and last scan are kept.
        PathNotAllowedError: the folder now lies outside the data roots.
    """
    rec = ws.get_dataset(name)
    root = ws.check_data_path(rec.path)
    _check_folder_present(rec, root)
    try:
        previous = load_index(ws, name)
    except TLCoreError:
        previous = None
    result = scan_dataset(root, previous=previous, options=options, allowed_roots=ws.data_roots, progress=progress)
    with ws.lock(f"dataset-{name}"):
        _check_folder_present(rec, root)  # again: a drive unplugged during the scan leaves a partial result
        _save_scan(ws, name, result)
        ws.put_dataset(_record_from(name, result, source=rec.source, added_at=rec.added_at))
    return result


def _check_folder_present(rec: DatasetRecord, root: Path) -> None:
    """Refuse to rescan ``rec`` when its folder ``root`` (its path resolved) is gone or is not a folder.

    Raises:
        DatasetError: ``folder_missing``'s.
    """
    error = folder_missing(rec, root=root, then="Nothing was rescanned: the dataset keeps its last scan.")
    if error is not None:
        raise error


def folder_missing(rec: DatasetRecord, *, then: str = "", root: Path | None = None) -> DatasetError | None:
    """The error for a dataset whose folder is gone, is a file now, or cannot be reached (a stale network
    mount, no permission), saying which folder and the ways out; None while it is a folder. Every
    action on the dataset's images says this, not "rescan the dataset" (a rescan is refused then).

    Args:
        rec: the dataset.
        then: what it means for the action asked for, a sentence ("Nothing was rescanned: ...").
        root: the folder to look at (the dataset's path resolved), when not ``rec.path``.
    """
    root = Path(rec.path) if root is None else root
    state = _folder_state(root)
    if state is None:
        return None
    problem = state[1]
    shown = rec.path if str(root) == rec.path else f"{rec.path} (resolves to {root})"
    return DatasetError(
        f"The folder of dataset {rec.name!r} {problem}." + (f" {then}" if then else ""),
        received=shown,
        fix=f"Put the folder back at {rec.path} (or connect or mount the drive or share it is on); if it moved, "
        f"register its new place with 'python -m tlcore datasets add {rec.name} NEW_PATH --overwrite'; or remove "
        f"the dataset ('python -m tlcore datasets remove {rec.name}').",
    )


def _folder_state(root: Path) -> tuple[str, str] | None:
    """None while ``root`` is a folder; else a short word for lists ("folder missing") and what follows
    "The folder of dataset 'x'" in a sentence."""
    try:
        return None if stat.S_ISDIR(os.stat(root).st_mode) else ("not a folder", "is a file now, not a folder")
    except (FileNotFoundError, NotADirectoryError):
        return ("folder missing", "is missing: it was moved or deleted, or the drive or network share it is on is "
                "not connected")
    except OSError as exc:  # a stale network mount, an I/O error, no permission to look
        return "folder unreachable", f"cannot be reached ({exc.strerror or exc})"


def folder_problem(rec: DatasetRecord) -> str | None:
    """A few words for a list of datasets when ``rec``'s folder is not there ("folder missing", "not a
    folder", "folder unreachable"; ``folder_missing`` says it in full); None while it is a folder."""
    state = _folder_state(Path(rec.path))
    return None if state is None else state[0]


def _owned_folder(ws: Workspace, rec: DatasetRecord) -> bool:
    return rec.source in OWNED_SOURCES and Path(rec.path).resolve().is_relative_to(ws.data_dir.resolve())


def _new_data_folder(ws: Workspace, name: str) -> Path:
    target = ws.data_dir / validate_name(name, "dataset name")
    if target.exists():
        real = Path(os.path.realpath(target))
        users = [r.name for r in ws.list_datasets() if Path(os.path.realpath(r.path)).is_relative_to(real)]
        if users:
            raise ConfigError(
                "The workspace already holds data under that name.", received=str(target),
                fix=f"Choose another name, or remove the dataset that uses it with its files first "
                    f"('python -m tlcore datasets remove {users[0]} --delete-files').")
        raise ConfigError(  # "remove the old dataset with its files" could not help: none uses it
            "The workspace already holds a folder of images under that name that no registered dataset uses "
            "(left by an import or upload stopped before it registered the folder, by a dataset registered "
            "again from another folder with --overwrite, or put there by hand).", received=str(target),
            fix=f"Choose another name; or register that folder as it is ('python -m tlcore datasets add {name} "
                f"{target}': an import writes it whole before it registers it); or delete it if you no longer "
                "need its images, then try again.")
    return target


def _register_new_folder(ws: Workspace, name: str, folder: Path, source: str, progress: Progress | None,
                         origin: str | None = None) -> ScanResult:
    try:
        return add_dataset(ws, name, folder, source=source, progress=progress, origin=origin)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-registered
        raise


def add_zip_dataset(
    ws: Workspace,
    name: str,
    archive: str | os.PathLike[str] | IO[bytes],
    *,
    progress: Progress | None = None,
    **limits: Any,
) -> ScanResult:
    """Extract an uploaded zip into ``<workspace>/data/<name>`` and register it.

    The archive is extracted safely (see ``extract_zip``); if extraction or the
    scan fails, the extracted files are removed and nothing is registered. Entries it
    skipped (links, devices, encrypted files) are ``archive_skipped`` problems of this
    scan and of every rescan, and empty class folders are kept (``empty_class``).
    """
    validate_name(name, "dataset name")
    check_name_free(ws, name)
    folder = extract_zip(archive, _new_data_folder(ws, name), **limits)
    shown = getattr(archive, "name", archive)  # a path, or a file object's name (the page's upload has one)
    origin = Path(shown).name if isinstance(shown, (str, os.PathLike)) and str(shown) else "the uploaded zip file"
    return _register_new_folder(ws, name, folder, "upload", progress, origin)


def add_idx_dataset(
    ws: Workspace,
    name: str,
    images: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    *,
    class_names: list[str] | None = None,
    per_class: int | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Import an IDX image/label pair into ``<workspace>/data/<name>`` and register it."""
    validate_name(name, "dataset name")
    check_name_free(ws, name)
    folder = import_idx({"all": (images, labels)}, _new_data_folder(ws, name), class_names=class_names,
                        per_class=per_class)
    return _register_new_folder(ws, name, folder, "idx", progress)


def add_fashion_mnist(
    ws: Workspace, name: str = "fashion-mnist", *, per_class: int | dict[str, int] | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Import Fashion-MNIST (Debian's dataset-fashion-mnist) as a pre-split dataset and register it."""
    validate_name(name, "dataset name")
    check_name_free(ws, name)
    folder = import_fashion_mnist(_new_data_folder(ws, name), per_class=per_class)
    return _register_new_folder(ws, name, folder, "idx", progress)


def remove_dataset(ws: Workspace, name: str, *, delete_files: bool = False) -> None:
    """Unregister a dataset and delete its index; image files are deleted only when
    ``delete_files`` is set, the workbench created them (uploads, imports) and no other
    registered dataset uses them. The CLI and the Datasets page go through
    ``tlcore.dataset_users.remove_if_unused``, which first refuses while a training job, search
    worker, scout or audit of this machine uses the dataset.

    Raises:
        NotFoundError: ``name`` is not registered.
        DatasetError: ``delete_files`` would delete files another registered dataset uses (its
            folder is this one's, inside it, or holds it, or it holds a link to them); nothing is
            removed then.
    """
    rec = ws.get_dataset(name)
    with ws.lock(f"dataset-{name}"):
        delete = delete_files and _owned_folder(ws, rec)
        if delete:
            _refuse_shared_files(ws, rec)
        ws.remove_dataset(name)
        if rec.source == "demo":  # the user removed it: do not bring it back on the next start
            ws.save_settings({**ws.settings(), "demo_removed": True})
        shutil.rmtree(ws.root / "datasets" / name, ignore_errors=True)
        if delete:
            shutil.rmtree(rec.path, ignore_errors=True)


def _refuse_shared_files(ws: Workspace, rec: DatasetRecord) -> None:
    """Refuse to delete ``rec``'s folder while another registered dataset uses files in it: its folder
    is the same one (symlinks followed), lies inside it, holds it, or holds a symlink to a file or
    folder in it (links to images are followed by the scan, so deleting would leave them broken).

    Raises:
        DatasetError: naming the other datasets and the ways out.
    """
    mine = Path(os.path.realpath(rec.path))
    users: list[tuple[str, str]] = []  # (name, how its folder meets this one)
    for other in ws.list_datasets():
        if other.name == rec.name:
            continue
        theirs = Path(os.path.realpath(other.path))
        if theirs == mine:
            users.append((other.name, "the same folder"))
        elif theirs.is_relative_to(mine):
            users.append((other.name, f"a folder inside it, {other.path}"))
        elif mine.is_relative_to(theirs):
            users.append((other.name, f"a folder that holds it, {other.path}"))
        elif (link := _link_into(Path(other.path), mine)) is not None:
            users.append((other.name, f"a link in its folder to these files, {link}"))
    if not users:
        return
    named = ", ".join(f"{n!r} ({how})" for n, how in users)
    others = (f"the dataset {users[0][0]!r} first ('python -m tlcore datasets remove {users[0][0]}')"
              if len(users) == 1 else "those datasets first")
    raise DatasetError(
        f"The files of dataset {rec.name!r} are used by "
        f"{'another registered dataset' if len(users) == 1 else 'other registered datasets'} too: {named}. "
        "Nothing was removed or deleted.",
        received=rec.path,
        fix=f"Remove {rec.name!r} without deleting its files (leave out --delete-files; on the Datasets page, "
        f"leave 'Also delete its files' unticked), or remove {others}.",
    )


def _link_into(folder: Path, mine: Path) -> Path | None:
    """The first symlink under ``folder`` (links not followed) whose target lies in ``mine`` or holds
    it, so deleting ``mine`` would empty or break it; None when there is none (or ``folder`` is gone)."""
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = Path(root, name)
            if not path.is_symlink():
                continue
            target = Path(os.path.realpath(path))
            if target.is_relative_to(mine) or mine.is_relative_to(target):
                return path
    return None


def load_index(ws: Workspace, name: str) -> pd.DataFrame:
    """The dataset's image index, with an absolute ``path`` column added."""
    rec = ws.get_dataset(name)
    df = _read_parquet(ws.dataset_dir(name, create=False) / "index.parquet", "index", name)
    root = Path(rec.path)
    df["path"] = os.path.join(str(root), "") + df["relpath"].astype(str)  # 10k Path joins took ~0.1 s
    return df


def load_problems(ws: Workspace, name: str) -> pd.DataFrame:
    ws.get_dataset(name)
    return _read_parquet(ws.dataset_dir(name, create=False) / "problems.parquet", "problem report", name)


def load_scan_info(ws: Workspace, name: str) -> dict[str, Any]:
    ws.get_dataset(name)
    return read_json(ws.dataset_dir(name, create=False) / "scan.json", default={}) or {}


def load_split_spec(ws: Workspace, name: str) -> SplitSpec:
    return read_split_spec(ws.dataset_dir(name, create=False) / "split.yaml")


def save_split_spec(ws: Workspace, name: str, spec: SplitSpec) -> None:
    ws.get_dataset(name)
    atomic_write_text(ws.dataset_dir(name) / "split.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False))


def dataset_splits(ws: Workspace, name: str, spec: SplitSpec | None = None) -> pd.DataFrame:
    """The index with its ``split`` column filled in ("train"/"val"/"test", "" if unusable).

    This is the one read that the split, training, search, the scout and the audit share, so
    the dataset's override manifest is applied here (``_manifest.apply_overrides``: excluded
    images are gone, relabelled ones carry their new label, ``attrs["overrides"]`` reports
    decisions about files no longer present) and its near-duplicate groups are kept on one
    side (``_groups``).

    Raises:
        ConfigError: the override manifest has a line that is not a valid decision.
    """
    index = apply_overrides(load_index(ws, name), load_overrides(ws, name))
    keys = group_keys(index, load_split_groups(ws, name))
    index["split"] = assign_splits(index, spec or load_split_spec(ws, name), group_keys=keys)
    return index


def dataset_summary(index: pd.DataFrame) -> dict[str, Any]:
    """Counts and image statistics for display: per class, per split, sizes, imbalance."""
    usable = index[index["usable"].astype(bool)] if len(index) else index
    counts = usable["label"].value_counts().sort_index() if len(usable) else pd.Series(dtype=int)
    summary: dict[str, Any] = {
        "num_files": int(len(index)),
        "num_images": int(len(usable)),
        "num_unusable": int(len(index) - len(usable)),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "imbalance_ratio": float(counts.max() / counts.min()) if len(counts) and counts.min() > 0 else None,
    }
    if len(usable):
        w, h = usable["width"].astype(float), usable["height"].astype(float)
        summary.update(
            width_median=float(w.median()),
            height_median=float(h.median()),
            width_range=(int(w.min()), int(w.max())),
            height_range=(int(h.min()), int(h.max())),
            aspect_median=float((w / h.where(h > 0)).median()),
            modes={str(k): int(v) for k, v in usable["mode"].value_counts().items()},
            formats={str(k): int(v) for k, v in usable["format"].value_counts().items()},
            total_bytes=int(usable["bytes"].sum()),
        )
        if "split" in usable and usable["split"].astype(str).ne("").any():
            summary["split_counts"] = split_counts(usable, usable["split"].astype(str)).to_dict()
    return summary
