"""Scan a folder-per-class tree into an image index and a problem report.

Layouts:

- ``class_folders``: ``root/<class>/...`` — every sub-folder of the root is a class.
- ``presplit``: the root's sub-folders are only ``train`` plus at least one of
  ``val``/``valid``/``validation``/``test`` (any case), each holding class
  folders; the index's ``split`` column says which ("valid" and "validation"
  become "val").

Rules:

- **Nested folders**: images in sub-folders of a class folder, at any depth,
  belong to that class. They are included, and each class that has some gets one
  ``nested_folder`` warning saying how many (so a folder that was meant to be a
  class of its own is noticed).
- **Root files**: image files directly in the root (or directly in a split folder)
  have no class; they are skipped and each gets a ``root_file`` warning (the
  first 20 of a folder one by one, the rest in one summary line). Other
  files there (README, CSV, ...) are normal and ignored.
- **Non-image files** inside class folders are skipped, reported as one
  ``non_image_file`` warning per class. Hidden files and folders (name starting
  with "."), ``Thumbs.db``, ``desktop.ini`` and ``__MACOSX`` are ignored silently.
- **Symlinks** are followed (``ScanOptions.follow_symlinks``) unless they point
  outside ``allowed_roots`` (``symlink_escape``, skipped, never read) or back to a
  folder being walked (``symlink_loop``, skipped, so the scan always ends).
- A folder named like an image (``cat.jpg/``) is a folder.
- **Names that are not UTF-8** (written in another encoding by an old program or archive)
  cannot be held by the index, the pages or their CSV files: such a folder or image is
  skipped and reported as ``unreadable``, its name shown with ``\\xNN`` escapes, and the
  report says to rename it.
- **Extracted archives**: entries ``extract_zip`` skipped (links, devices, encrypted
  entries, impossible names) are listed in the folder's hidden ``SKIPPED_NOTE``; each
  one still missing from the folder gets an ``archive_skipped`` warning.
- ``classes`` lists the class folders that have at least one usable image; a class
  folder without one gets an ``empty_class`` warning instead; class names that differ only in
  letter case, surrounding spaces or Unicode encoding ("café" written two ways, which look the
  same) get one ``look_alike_classes`` warning per group.

Each problem has a severity: ``error`` — an image file is excluded because of what
it is (unreadable, empty, not an image, corrupt, truncated, a decompression bomb,
or a link escaping the data roots); ``warning`` — usable, or skipped by one of the
rules above, but worth a look. ``PROBLEM_KINDS`` maps every kind to its severity.

Incremental rescans: given the ``previous`` index, files whose path, size and
modification time are unchanged are not read again; their row is copied, and
their per-file problems are rebuilt from its ``issues``/``issue_detail`` columns.
Problems that involve several files (duplicates, class sizes) are recomputed from
the index every time.

Speed: each file is read once; the bytes are hashed (SHA-1), the header parsed,
and the pixels decoded to catch damage — JPEGs at 1/8 scale, which costs a
fraction of a full decode. Files are checked on a thread pool: Pillow, hashlib
and file reads release the GIL, and threads measured as fast as processes on
this work without their start-up and pickling costs.

Entry point: ``scan_dataset(root, previous=..., options=ScanOptions(...),
allowed_roots=..., progress=...)`` returns a ``ScanResult`` (index, problems,
layout, classes, stats). It writes nothing: ``_ops`` stores the result in the
workspace, ``_imageio``'s probes do the per-file checks, ``python -m tlcore datasets
inspect`` prints it.

Example:

>>> result = scan_dataset("photos")
>>> result.layout, result.classes, result.usable
('class_folders', ['cat', 'dog'], True)
>>> result.problems[["relpath", "kind", "severity"]]
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlcore._usertext import counted
from tlcore.datasets._archive import REPEATED_ENTRY, read_skipped_note
from tlcore.datasets._imageio import IMAGE_EXTENSIONS, _failure_text, _Probe, _probe_bytes, _probe_header
from tlcore.errors import ConfigError, PathNotAllowedError

__all__ = [
    "SPLIT_NAMES",
    "ScanOptions",
    "ScanResult",
    "scan_dataset",
    "PROBLEM_KINDS",
    "INDEX_COLUMNS",
    "PROBLEM_COLUMNS",
]

Progress = Callable[[int, int], None]

PROBLEM_KINDS: dict[str, str] = {
    # per file, the file is excluded (usable=False)
    "unreadable": "error",
    "empty_file": "error",
    "not_an_image": "error",
    "corrupt": "error",
    "truncated": "error",
    "decompression_bomb": "error",
    # per file, usable
    "tiny_image": "warning",
    "extreme_aspect": "warning",
    "duplicate": "warning",
    "conflicting_labels": "warning",
    # per class or per folder
    "empty_class": "warning",
    "class_too_small": "warning",
    "nested_folder": "warning",
    "look_alike_classes": "warning",
    "non_image_file": "warning",
    # skipped, never indexed
    "root_file": "warning",
    "archive_skipped": "warning",
    "symlink_escape": "error",
    "symlink_loop": "warning",
}
"""Every problem kind the scan reports, with its severity ("error" or "warning")."""

INDEX_COLUMNS: tuple[str, ...] = (
    "relpath",
    "label",
    "split",
    "width",
    "height",
    "mode",
    "format",
    "bytes",
    "mtime_ns",
    "sha1",
    "usable",
    "issues",
    "issue_detail",
)
PROBLEM_COLUMNS: tuple[str, ...] = ("relpath", "kind", "severity", "message", "fix")

# Kinds that come from a file's own bytes: stored in the index, reused unchanged on a rescan.
_FILE_KINDS = ("unreadable", "empty_file", "not_an_image", "corrupt", "truncated", "decompression_bomb")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""A pre-split layout's top folder names (lower case; any case on disk) and the split each is."""
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin", "system volume information"})
_MAX_DEPTH = 64  # a deeper tree is not a dataset; stops pathological (bind-mount) cycles too
_MAX_ROOT_FILE_LINES = 20  # root_file lines per folder before the rest are summed up in one
# Files larger than this have their header checked before they are read whole, so a
# huge decompression bomb (or a renamed video) is refused without loading it into memory.
_HEADER_FIRST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ScanOptions:
    """Thresholds and resources for ``scan_dataset``.

    Args:
        min_side: an image whose smaller side is below this many pixels gets a
            ``tiny_image`` warning. Defaults to 16 (Fashion-MNIST's 28x28 passes).
        max_aspect: width/height (or height/width) above this gets an
            ``extreme_aspect`` warning. Defaults to 5.0.
        min_class_size: a class with fewer usable images gets ``class_too_small``
            (it cannot give an image to each of train, val and test). Defaults to 3.
        workers: threads checking files. Defaults to None, meaning ``os.cpu_count()``.
        follow_symlinks: follow symlinked files and folders (never in a loop, and
            never outside ``allowed_roots``). Defaults to True; when False,
            symlinks are skipped.
    """

    min_side: int = 16
    max_aspect: float = 5.0
    min_class_size: int = 3
    workers: int | None = None
    follow_symlinks: bool = True

    def __post_init__(self) -> None:
        def _int(name: str, value: Any, lo: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"ScanOptions.{name} must be an integer >= {lo}.", received=f"{name}={value!r}")

        _int("min_side", self.min_side, 0)
        _int("min_class_size", self.min_class_size, 0)
        if self.workers is not None:
            _int("workers", self.workers, 1)
        if isinstance(self.max_aspect, bool) or not isinstance(self.max_aspect, (int, float)) or self.max_aspect < 1:
            raise ConfigError(
                "ScanOptions.max_aspect must be a number >= 1.",
                received=f"max_aspect={self.max_aspect!r}",
                fix="Use e.g. 5.0 to flag images more than five times wider than high (or the reverse).",
            )


@dataclass
class ScanResult:
    """What ``scan_dataset`` found.

    Args:
        root: the scanned folder (absolute).
        layout: "class_folders" or "presplit".
        classes: sorted names of the classes that have at least one usable image.
        index: one row per image file found, usable or not (``INDEX_COLUMNS``):
            relpath (posix, relative to root), label, split ("train"/"val"/"test"
            for presplit, else ""), width, height (as displayed, i.e. after EXIF
            rotation; 0 if unknown), mode, format ("" if unknown), bytes, mtime_ns,
            sha1 ("" if unreadable), usable, issues ("|"-joined per-file problem
            kinds), issue_detail (the decoder's words for an error, else "").
        problems: one row per problem (``PROBLEM_COLUMNS``): relpath ("" for the
            whole dataset), kind, severity, message, fix; errors first.
        stats: files_seen, files_read, files_reused, seconds, images_usable,
            classes, errors, warnings, workers, ignored, symlinks_skipped.
        usable: False when the folder cannot be used as a dataset at all.
        reason: one line saying why, when not usable; else None.
    """

    root: Path
    layout: str
    classes: list[str]
    index: pd.DataFrame
    problems: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)
    usable: bool = True
    reason: str | None = None


# ------------------------------------------------------------------ the walk
@dataclass
class _Found:
    """An image file to index (found by the walk, not yet read)."""

    relpath: str
    abspath: str
    label: str
    split: str
    size: int
    mtime_ns: int
    broken: str = ""  # set when the file cannot even be stat'ed (a dangling link, ...)


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in _IGNORED_NAMES


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_utf8(name: str) -> bool:
    """Whether a name read from the disk is UTF-8 text (Python keeps the bytes that are not as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(name: str) -> str:
    """``name`` with its bytes that are not UTF-8 written as ``\\xff`` escapes: text a report can hold."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _within(real: str, roots: Sequence[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class _Walker:
    """Collects image files, class folders and walk-level problems."""

    def __init__(self, options: ScanOptions, allowed_roots: list[str] | None):
        self.options = options
        self.allowed = allowed_roots
        self.files: list[_Found] = []
        self.problems: list[dict[str, str]] = []
        self.class_dirs: list[tuple[str, str, str]] = []  # (split, label, relpath)
        self.non_images: dict[str, list[str]] = defaultdict(list)  # class relpath -> file relpaths
        self.ignored = 0
        self.symlinks_skipped = 0

    def problem(self, relpath: str, kind: str, message: str, fix: str) -> None:
        self.problems.append(_problem(relpath, kind, message, fix))

    def entries(
        self, path: str, relpath: str, real: str, ancestors: frozenset[str]
    ) -> Iterable[tuple[str, str, str, str]]:
        """Yield ``(kind, name, abspath, extra)`` for the entries of a folder worth looking at.

        ``kind`` is "dir" or "file" (regular files; ``extra`` is the resolved path),
        "other" (FIFOs, sockets, devices: never to be opened), or "broken" (a link
        with an image name whose target is missing; ``extra`` says why). Hidden and
        system names are skipped; links are resolved, checked against the allowed
        roots and the folders being walked, and reported when refused. A folder or image
        whose name is not UTF-8 is skipped and reported (``_bad_name``); another file of
        such a name is yielded under its name as shown (``_shown``), as it is never opened.
        """
        try:
            with os.scandir(path) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.problem(
                relpath,
                "unreadable",
                f"The folder {relpath or '.'} cannot be listed: {exc.strerror or exc}.",
                "Make the folder readable by the user running the workbench.",
            )
            return
        for entry in items:
            name = entry.name
            if _is_ignored(name):
                self.ignored += 1
                continue
            rel = f"{relpath}/{name}" if relpath else name
            if not _is_utf8(name):
                if self._bad_name(entry, rel):
                    continue
                name, rel = _shown(name), _shown(rel)
            try:
                is_link = entry.is_symlink()
            except OSError:
                is_link = False
            if not is_link:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        yield "dir", name, entry.path, os.path.join(real, name)
                    elif entry.is_file(follow_symlinks=False):
                        yield "file", name, entry.path, os.path.join(real, name)
                    else:
                        yield "other", name, entry.path, ""
                except OSError:
                    yield "other", name, entry.path, ""
                continue
            if not self.options.follow_symlinks:
                self.symlinks_skipped += 1
                continue
            target = os.path.realpath(entry.path)
            if self.allowed is not None and not _within(target, self.allowed):
                self.problem(
                    rel,
                    "symlink_escape",
                    f"{rel} is a link to {target}, outside the allowed data roots; it was skipped and not read.",
                    "Copy the files into the dataset folder, or add their folder as a data root "
                    "('python -m tlcore datasets allow-root PATH').",
                )
                continue
            try:
                st = os.stat(entry.path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    self._loop(rel, target)
                elif _is_image_name(name):
                    yield "broken", name, entry.path, f"it is a link to {target}, which {_missing(exc)}"
                continue
            if stat.S_ISDIR(st.st_mode):
                if target in ancestors:
                    self._loop(rel, target)
                else:
                    yield "dir", name, entry.path, target
            elif stat.S_ISREG(st.st_mode):
                yield "file", name, entry.path, target
            else:
                yield "other", name, entry.path, ""

    def _bad_name(self, entry: os.DirEntry[str], rel: str) -> bool:
        """Report a folder or image file whose name is not UTF-8 text, which the index (and every
        page, CSV and JSON file after it) cannot hold; True when it was reported and is to be skipped."""
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if not is_dir and not _is_image_name(entry.name):
            return False
        what = f"The folder {_shown(rel)}" if is_dir else _shown(rel)
        skipped = "it was skipped with everything in it" if is_dir else "it is excluded"
        self.problem(
            _shown(rel),
            "unreadable",
            f"{what} has a name that is not valid UTF-8 text (shown with \\xNN for each byte that is not); "
            f"{skipped}.",
            "Rename it with plain UTF-8 text (a name written in another encoding, e.g. Latin-1 by an old program "
            "or archive), then rescan.",
        )
        return True

    def _loop(self, rel: str, target: str) -> None:
        self.problem(
            rel,
            "symlink_loop",
            f"{rel} is a link that leads back to itself or to a folder containing it ({target}); it was skipped "
            "so that the scan ends (images reached through it are scanned once, through their real path).",
            "Remove the link; nothing is lost.",
        )

    def walk_class(self, path: str, relpath: str, real: str, label: str, split: str, ancestors: frozenset[str]) -> None:
        """Index every image below a class folder, at any depth, under ``label``."""
        self.class_dirs.append((split, label, relpath))
        self._walk(path, relpath, real, label, split, ancestors | {real}, relpath, 0)

    def _walk(
        self, path: str, relpath: str, real: str, label: str, split: str, ancestors: frozenset[str], class_rel: str,
        depth: int,
    ) -> None:
        for kind, name, abspath, target in self.entries(path, relpath, real, ancestors):
            rel = f"{relpath}/{name}"
            if kind == "dir":
                if depth < _MAX_DEPTH:
                    self._walk(abspath, rel, target, label, split, ancestors | {target}, class_rel, depth + 1)
            elif kind in ("file", "broken") and _is_image_name(name):
                self.files.append(_file_entry(rel, abspath, label, split, broken=target if kind == "broken" else ""))
            elif kind != "broken":
                self.non_images[class_rel].append(rel)

    def root_files(self, rels: list[str], where: str, folder_rel: str) -> None:
        """Report image files lying outside any class folder (one line each, up to a limit)."""
        fix = "Move it into the folder of its class (or delete it)."
        for rel in rels[:_MAX_ROOT_FILE_LINES]:
            self.problem(
                rel,
                "root_file",
                f"{rel} lies directly in {where}, not in a class folder, so it has no class; it was skipped.",
                fix,
            )
        rest = rels[_MAX_ROOT_FILE_LINES:]
        if rest:
            self.problem(
                folder_rel,
                "root_file",
                f"{counted(len(rest), 'more image file')} lie directly in {where} and were skipped "
                f"(e.g. {_describe(rest, 3)}).",
                "Move them into the folders of their classes (or delete them).",
            )


def _missing(exc: OSError) -> str:
    return "does not exist" if exc.errno == errno.ENOENT else f"cannot be read ({exc.strerror or exc})"


def _file_entry(rel: str, abspath: str, label: str, split: str, *, broken: str = "") -> _Found:
    if broken:
        return _Found(rel, abspath, label, split, 0, 0, broken=broken)
    try:
        st = os.stat(abspath)
    except OSError as exc:
        return _Found(rel, abspath, label, split, 0, 0, broken=exc.strerror or str(exc))
    return _Found(rel, abspath, label, split, int(st.st_size), int(st.st_mtime_ns))


# --------------------------------------------------------------- per file
def _read_file(path: str) -> bytes:
    """Read a whole file. A seam for tests (e.g. to simulate a permission error as root)."""
    with open(path, "rb") as fh:
        return fh.read()


def _refused_large_file(path: str) -> tuple[_Probe, str] | None:
    """For a very large file: its header probe and streamed SHA-1 when the header already
    condemns it (bomb, not an image, damaged header); None when it should be read normally."""
    with open(path, "rb") as fh:
        probe = _probe_header(fh)
        if not probe.kind:
            return None
        fh.seek(0)
        return probe, hashlib.file_digest(fh, "sha1").hexdigest()


def _check_file(found: _Found) -> dict[str, Any]:
    """Read, hash and probe one file. Never raises for a bad file: the failure is the result."""
    row: dict[str, Any] = {"width": 0, "height": 0, "mode": "", "format": "", "sha1": "", "kind": "", "detail": ""}
    if found.broken:
        row.update(kind="unreadable", detail=found.broken)
        return row
    try:
        early = _refused_large_file(found.abspath) if found.size > _HEADER_FIRST_BYTES else None
        if early is not None:
            probe, row["sha1"] = early
        else:
            data = _read_file(found.abspath)
            row["sha1"] = hashlib.sha1(data).hexdigest()
            probe = _probe_bytes(data)
    except OSError as exc:
        row.update(kind="unreadable", detail=exc.strerror or str(exc))
        return row
    if probe.header is not None:
        h = probe.header
        w, ht = (h.height, h.width) if probe.transposed else (h.width, h.height)
        row.update(width=w, height=ht, mode=h.mode, format=h.format)
    if probe.kind:
        row.update(kind=probe.kind, detail=probe.detail)
    return row


def _check_many(batch: list[_Found]) -> list[dict[str, Any]]:
    return [_check_file(f) for f in batch]


# ------------------------------------------------------------------ helpers
def _empty_index() -> pd.DataFrame:
    return _index_frame({c: [] for c in INDEX_COLUMNS})


def _index_frame(cols: dict[str, list[Any]]) -> pd.DataFrame:
    df = pd.DataFrame(cols, columns=list(INDEX_COLUMNS))
    for c in ("width", "height", "bytes", "mtime_ns"):
        df[c] = df[c].astype("int64")
    df["usable"] = df["usable"].astype(bool)
    for c in ("relpath", "label", "split", "mode", "format", "sha1", "issues", "issue_detail"):
        df[c] = df[c].astype(str)
    return df


def _problem_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS))
    for c in PROBLEM_COLUMNS:
        df[c] = df[c].astype(str)
    if len(df):
        order = df["severity"].map({"error": 0, "warning": 1}).fillna(2)
        df = df.assign(_o=order).sort_values(["_o", "kind", "relpath"], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def _previous_rows(previous: pd.DataFrame | None) -> dict[str, int]:
    """relpath -> row position in ``previous``, when it has everything a reuse needs."""
    if previous is None or len(previous) == 0:
        return {}
    needed = {"relpath", "bytes", "mtime_ns", "width", "height", "mode", "format", "sha1", "issues"}
    if not needed <= set(previous.columns):
        return {}
    return {str(r): i for i, r in enumerate(previous["relpath"].tolist())}


def _per_file_problem(
    kind: str, rel: str, detail: str, width: int, height: int, options: ScanOptions
) -> dict[str, str]:
    """The problem row for one per-file kind, rebuilt from the index row alone."""
    if kind in _FILE_KINDS:
        what, fix = _failure_text(kind, detail)
        return _problem(rel, kind, f"{rel} {what}; it is excluded.", fix)
    if kind == "tiny_image":
        return _problem(
            rel,
            kind,
            f"{rel} is only {width}x{height} pixels (smaller side below min_side={options.min_side}).",
            "Check it is not an icon or a thumbnail; enlarging adds no detail. It is kept. "
            "Lower min_side if such small images are expected.",
        )
    if kind == "extreme_aspect":
        ratio = max(width, height) / max(1, min(width, height))
        return _problem(
            rel,
            kind,
            f"{rel} is {width}x{height}: one side is {ratio:.1f} times the other "
            f"(above max_aspect={options.max_aspect:g}).",
            "Resizing to a square will squash it or crop most of it away; crop it by hand, or use the "
            "'pad' resize mode. It is kept.",
        )
    raise AssertionError(f"not a per-file problem kind: {kind}")  # pragma: no cover


def _describe(rels: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(rels[:limit])
    return shown + (f" and {len(rels) - limit} more" if len(rels) > limit else "")


# ------------------------------------------------------------------- main
def scan_dataset(
    root: str | os.PathLike[str],
    *,
    previous: pd.DataFrame | None = None,
    options: ScanOptions | None = None,
    allowed_roots: list[Path] | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Scan a folder-per-class tree into an image index and a problem report.

    Never raises for problems in the data: a folder that cannot be used at all
    gives ``usable=False`` and a one-line ``reason`` (missing path, no class
    folders, no images, a single class).

    Args:
        root: the dataset folder.
        previous: the index of an earlier scan of the same folder. Files whose
            relpath, size and mtime are unchanged are not read again. Defaults to
            None (read everything).
        options: thresholds and thread count. Defaults to ``ScanOptions()``.
        allowed_roots: when given, symlinks resolving outside these folders are
            skipped (``symlink_escape``), and ``root`` itself must lie inside one.
            Defaults to None (no confinement).
        progress: called as ``progress(done, total)`` (image files) while
            scanning: first with the number of unchanged files (0 without
            ``previous``), last with ``done=total``.

    Returns:
        A ``ScanResult``.

    Raises:
        PathNotAllowedError: ``allowed_roots`` is given and ``root`` is outside them.
        ConfigError: ``options`` has an invalid value.
    """
    t0 = time.perf_counter()
    options = options or ScanOptions()
    if not isinstance(options, ScanOptions):
        raise ConfigError("options must be a ScanOptions.", received=type(options).__name__)
    root_path = Path(os.path.abspath(Path(root).expanduser()))
    real_root = os.path.realpath(root_path)
    allowed = [os.path.realpath(Path(p).expanduser()) for p in allowed_roots] if allowed_roots is not None else None
    if allowed is not None and not _within(real_root, allowed):
        raise PathNotAllowedError(
            "The dataset folder is outside the allowed data roots.",
            received=f"{root} (resolves to {real_root})",
            fix="Use a folder under one of: " + ", ".join(allowed) + "; or allow its folder as a data root.",
        )

    def unusable(reason: str) -> ScanResult:
        stats = _stats(0, 0, t0, 0, 0, _problem_frame([]), options, _Walker(options, allowed))
        return ScanResult(root_path, "class_folders", [], _empty_index(), _problem_frame([]), stats, False, reason)

    if not root_path.exists():
        return unusable(f"the folder {root_path} does not exist")
    if not root_path.is_dir():
        return unusable(f"{root_path} is a file, not a folder")

    walker = _Walker(options, allowed)
    layout, root_images = _walk_tree(walker, root_path, real_root)
    index, n_read = _build_index(walker.files, previous, options, progress)
    index, file_problems = _per_file_checks(index, options)
    index, dup_problems = _duplicate_problems(index)
    problems = (walker.problems + _archive_problems(root_path) + file_problems + dup_problems
                + _folder_problems(index, walker, layout, options))
    problem_df = _problem_frame(problems)

    usable_rows = index[index["usable"]]
    classes = sorted(usable_rows["label"].unique().tolist())
    reason = _unusable_reason(walker, index, classes, root_images, layout)
    stats = _stats(len(index), n_read, t0, len(usable_rows), len(classes), problem_df, options, walker)
    return ScanResult(root_path, layout, classes, index, problem_df, stats, reason is None, reason)


def _stats(
    n_files: int, n_read: int, t0: float, n_usable: int, n_classes: int, problems: pd.DataFrame,
    options: ScanOptions, walker: _Walker,
) -> dict[str, Any]:
    """The ``ScanResult.stats`` dict (plain ints and a float: JSON-ready)."""
    return {
        "files_seen": int(n_files),
        "files_read": int(n_read),
        "files_reused": int(n_files - n_read),
        "seconds": round(time.perf_counter() - t0, 4),
        "images_usable": int(n_usable),
        "classes": int(n_classes),
        "errors": int((problems["severity"] == "error").sum()),
        "warnings": int((problems["severity"] == "warning").sum()),
        "workers": _workers(options, n_read),
        "ignored": walker.ignored,
        "symlinks_skipped": walker.symlinks_skipped,
    }


def _walk_tree(walker: _Walker, root_path: Path, real_root: str) -> tuple[str, int]:
    """Walk the tree below the root; returns the layout and the number of images lying directly in it."""
    ancestors = frozenset({real_root})
    top = list(walker.entries(str(root_path), "", real_root, ancestors))
    dirs = [(n, p, r) for kind, n, p, r in top if kind == "dir"]
    root_images = [n for kind, n, _, _ in top if kind in ("file", "broken") and _is_image_name(n)]
    walker.root_files(root_images, "the dataset folder", "")

    lowered = {n.lower() for n, _, _ in dirs}
    presplit = bool(dirs) and lowered <= set(SPLIT_NAMES) and "train" in lowered and len(lowered) >= 2
    if not presplit:
        for name, path, real in dirs:
            walker.walk_class(path, name, real, name, "", ancestors)
        return "class_folders", len(root_images)

    for split_name, path, real in dirs:
        split = SPLIT_NAMES[split_name.lower()]
        loose: list[str] = []
        for kind, name, cpath, creal in walker.entries(path, split_name, real, ancestors | {real}):
            rel = f"{split_name}/{name}"
            if kind == "dir":
                walker.walk_class(cpath, rel, creal, name, split, ancestors | {real})
            elif kind in ("file", "broken") and _is_image_name(name):
                loose.append(rel)
        walker.root_files(loose, f"the {split_name} folder", split_name)
    return "presplit", len(root_images)


def _workers(options: ScanOptions, n_files: int) -> int:
    wanted = options.workers or os.cpu_count() or 1
    return max(1, min(wanted, 32, n_files // 16 or 1))


_REUSED = ("width", "height", "mode", "format", "sha1")


def _build_index(
    found: list[_Found], previous: pd.DataFrame | None, options: ScanOptions, progress: Progress | None
) -> tuple[pd.DataFrame, int]:
    """Reuse unchanged rows of ``previous``, read the other files (on threads).

    Returns the index (``usable`` not yet set) and how many files were read.
    """
    prev_pos = _previous_rows(previous)
    n = len(found)
    cols: dict[str, list[Any]] = {c: [None] * n for c in INDEX_COLUMNS}
    for i, f in enumerate(found):
        cols["relpath"][i], cols["label"][i], cols["split"][i] = f.relpath, f.label, f.split
        cols["bytes"][i], cols["mtime_ns"][i] = f.size, f.mtime_ns

    to_read: list[int] = []
    p_bytes: list[int] = []
    p_mtime: list[int] = []
    p_issues: list[str] = []
    p_detail: list[str] = []
    p_vals: dict[str, list[Any]] = {}
    if prev_pos and previous is not None:
        p_bytes = [int(v) for v in previous["bytes"].tolist()]
        p_mtime = [int(v) for v in previous["mtime_ns"].tolist()]
        p_issues = previous["issues"].fillna("").astype(str).tolist()
        p_detail = (
            previous["issue_detail"].fillna("").astype(str).tolist()
            if "issue_detail" in previous
            else [""] * len(previous)
        )
        p_vals = {c: previous[c].tolist() for c in _REUSED}
    for i, f in enumerate(found):
        j = prev_pos.get(f.relpath)
        if j is not None and not f.broken and p_bytes[j] == f.size and p_mtime[j] == f.mtime_ns:
            file_kinds = [k for k in p_issues[j].split("|") if k in _FILE_KINDS]
            # A permission fix changes neither size nor mtime: always retry unreadable files.
            if "unreadable" not in file_kinds:
                for c in _REUSED:
                    cols[c][i] = p_vals[c][j]
                cols["issues"][i] = "|".join(file_kinds)
                cols["issue_detail"][i] = p_detail[j] if file_kinds else ""
                continue
        to_read.append(i)

    total = n
    done = n - len(to_read)
    if progress is not None:
        progress(done, total)

    def store(positions: list[int], results: list[dict[str, Any]]) -> None:
        for i, r in zip(positions, results):
            for c in _REUSED:
                cols[c][i] = r[c]
            cols["issues"][i] = r["kind"]
            cols["issue_detail"][i] = r["detail"]

    workers = _workers(options, len(to_read))
    if workers <= 1:
        step = 64
        for start in range(0, len(to_read), step):
            batch = to_read[start : start + step]
            store(batch, _check_many([found[i] for i in batch]))
            done += len(batch)
            if progress is not None:
                progress(done, total)
    elif to_read:
        # Small batches amortise the per-task overhead yet keep the progress bar moving.
        step = max(8, min(128, len(to_read) // (workers * 8) or 8))
        batches = [to_read[s : s + step] for s in range(0, len(to_read), step)]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tlcore-scan")
        try:
            pending: dict[Future[list[dict[str, Any]]], list[int]] = {
                pool.submit(_check_many, [found[i] for i in b]): b for b in batches
            }
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    batch = pending.pop(fut)
                    store(batch, fut.result())
                    done += len(batch)
                if progress is not None:
                    progress(done, total)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    cols["usable"] = [True] * n  # set properly by _per_file_checks
    df = _index_frame(cols) if n else _empty_index()
    if n:
        df = df.sort_values("relpath", kind="stable").reset_index(drop=True)
    return df, len(to_read)


def _per_file_checks(index: pd.DataFrame, options: ScanOptions) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Set ``usable``, add the size warnings to ``issues``, and list the per-file problems."""
    if len(index) == 0:
        return index, []
    file_kind = index["issues"].tolist()  # at most one file kind so far: what reading the file found
    broken = np.array([bool(k) for k in file_kind])
    w = index["width"].to_numpy(dtype=np.int64)
    h = index["height"].to_numpy(dtype=np.int64)
    ok = ~broken & (w > 0) & (h > 0)
    tiny = ok & (np.minimum(w, h) < options.min_side)
    ratio = np.maximum(w, h) / np.maximum(np.minimum(w, h), 1)
    extreme = ok & (ratio > options.max_aspect)

    issues = list(file_kind)
    problems: list[dict[str, str]] = []
    details = index["issue_detail"].tolist()
    rels = index["relpath"].tolist()
    for i in np.flatnonzero(broken | tiny | extreme):
        kinds = [k for k in file_kind[i].split("|") if k]
        kinds += (["tiny_image"] if tiny[i] else []) + (["extreme_aspect"] if extreme[i] else [])
        issues[i] = "|".join(kinds)
        for k in kinds:
            problems.append(_per_file_problem(k, rels[i], details[i], int(w[i]), int(h[i]), options))
    index = index.assign(issues=pd.Series(issues, index=index.index, dtype=str), usable=~broken)
    return index, problems


def _duplicate_problems(index: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Exact duplicates (same SHA-1) among usable images: within a class, and across classes."""
    problems: list[dict[str, str]] = []
    if len(index) == 0:
        return index, problems
    usable = index[index["usable"]]
    dup = usable[usable["sha1"].ne("") & usable["sha1"].duplicated(keep=False)]
    if len(dup) == 0:
        return index, problems
    issues = index["issues"].tolist()
    for _, group in dup.groupby("sha1", sort=False):
        members = list(zip(group.index, group["relpath"], group["label"], group["split"]))
        for pos, rel, label, split in members:
            kinds = [k for k in issues[pos].split("|") if k]
            same = [r for _, r, lab, _ in members if lab == label and r != rel]
            other = [(r, lab) for _, r, lab, _ in members if lab != label]
            if same:
                kinds.append("duplicate")
                leak = sorted({s for _, r, lab, s in members if lab == label and s and s != split})
                note = f" (also in split {', '.join(leak)}: it leaks between splits)" if leak else ""
                problems.append(_problem(
                    rel,
                    "duplicate",
                    f"{rel} has the same content as {_describe(same)}{note}.",
                    "Delete the extra copies: a duplicate counts twice in training and can leak into evaluation.",
                ))
            if other:
                kinds.append("conflicting_labels")
                classes = ", ".join(repr(c) for c in sorted({lab for _, lab in other}))
                problems.append(_problem(
                    rel,
                    "conflicting_labels",
                    f"{rel} (class '{label}') has the same content as {_describe([r for r, _ in other])}, "
                    f"in class {classes}.",
                    "Decide which class the image belongs to: delete the wrong copy, or move it.",
                ))
            issues[pos] = "|".join(kinds)
    return index.assign(issues=pd.Series(issues, index=index.index, dtype=str)), problems


def _archive_problems(root: Path) -> list[dict[str, str]]:
    """An ``archive_skipped`` warning for each entry extraction skipped that is still missing (a file
    put in its place answers it), and for each entry repeating an earlier one's path."""
    out = []
    for s in read_skipped_note(root):
        if s.reason == REPEATED_ENTRY:
            out.append(_problem(s.relpath, "archive_skipped",
                                f"The uploaded zip file held {s.relpath} twice: {s.reason}; the second is not in "
                                "the dataset.", s.fix))
        elif not os.path.isfile(root.joinpath(*s.relpath.split("/"))):
            out.append(_problem(s.relpath, "archive_skipped",
                                f"{s.relpath} was not extracted from the uploaded zip file: {s.reason}; it is not "
                                "in the dataset.", s.fix))
    return out


def _problem(rel: str, kind: str, message: str, fix: str) -> dict[str, str]:
    return {"relpath": rel, "kind": kind, "severity": PROBLEM_KINDS[kind], "message": message, "fix": fix}


def _look_alike(labels: set[str]) -> list[list[str]]:
    """Groups of two or more class names that are the same text once Unicode-normalized (NFKC: "é" as
    one code point or as "e" and an accent), case-folded and stripped of surrounding spaces."""
    groups: dict[str, list[str]] = {}
    for label in sorted(labels):
        groups.setdefault(unicodedata.normalize("NFKC", label).casefold().strip(), []).append(label)
    return [names for _key, names in sorted(groups.items()) if len(names) > 1]


def _folder_problems(index: pd.DataFrame, walker: _Walker, layout: str, options: ScanOptions) -> list[dict[str, str]]:
    """Per-class problems (empty, too small, nested images, non-image files), from the index and the walk."""
    problems: list[dict[str, str]] = []

    def add(rel: str, kind: str, message: str, fix: str) -> None:
        problems.append(_problem(rel, kind, message, fix))

    usable = index[index["usable"]] if len(index) else index

    # Class folders without usable images, and classes too small to split.
    counts_by_folder = usable.groupby(["split", "label"]).size().to_dict() if len(usable) else {}
    found_by_folder = index.groupby(["split", "label"]).size().to_dict() if len(index) else {}
    for split, label, rel in walker.class_dirs:
        if counts_by_folder.get((split, label), 0) == 0:
            n_bad = found_by_folder.get((split, label), 0)
            why = (
                f"its {counted(n_bad, 'image file')} cannot be used (see their problems)"
                if n_bad
                else "it holds no image files"
            )
            add(
                rel,
                "empty_class",
                f"The class folder {rel} has no usable images: {why}.",
                "Add images of this class, or delete the folder (a class with no images cannot be learned).",
            )
    class_counts = usable.groupby("label").size().to_dict() if len(usable) else {}
    for label, n in sorted(class_counts.items()):
        if layout != "class_folders" and counts_by_folder.get(("train", label), 0) == 0:
            # given splits: a class found only in val/ or test/ is never trained on (whatever its size), and
            # each of its images counts as an error there; "too small to split" would not say that
            where = ", ".join(f"{counts_by_folder[(sp, label)]} in {sp}/" for sp in ("val", "test")
                              if counts_by_folder.get((sp, label)))
            add(
                "",
                "class_too_small",
                f"Class '{label}' has no usable image in the train folder (only {where}): the model cannot learn "
                "it, and each of its validation and test images counts as an error.",
                f"Add images of this class to train/{label}/, or remove its folders from the other splits "
                "(if it is another class spelled differently, move its images into that class's folders).",
            )
            continue
        if n < options.min_class_size:
            add(
                label if layout == "class_folders" else "",
                "class_too_small",
                f"Class '{label}' has only {counted(n, 'usable image')}; at least {options.min_class_size} are "
                "needed to put one in each of train, validation and test.",
                "Add more images of this class, or remove its folder.",
            )

    # Class names that look alike: one class split in two by how its folders were spelled.
    for names in _look_alike({label for _split, label, _rel in walker.class_dirs}):
        add(
            "",
            "look_alike_classes",
            f"The classes {', '.join(repr(n) for n in names)} differ only in letter case, spaces or how an accented "
            "letter is encoded, so they look like one class but are learned as "
            f"{len(names)} different ones.",
            "If they are one class, move their images into one folder and delete the others; if they are "
            "different classes, rename them so the difference shows.",
        )

    # Images in sub-folders of class folders (included: they belong to the class).
    if len(index):
        base_depth = 2 if layout == "class_folders" else 3
        depth = index["relpath"].str.count("/") + 1
        nested = index[depth > base_depth]
        for (_split, label), group in nested.groupby(["split", "label"], sort=True):
            rels = group["relpath"].tolist()
            where = "/".join(rels[0].split("/", base_depth - 1)[:-1])  # the class folder, as spelled on disk
            add(
                where,
                "nested_folder",
                f"{counted(len(rels), 'image')} in sub-folders of {where} (e.g. {_describe(rels, 2)}) "
                f"{'was' if len(rels) == 1 else 'were'} included in class '{label}': images below a class folder "
                "belong to it at any depth.",
                "Nothing to do if the sub-folders are parts of this class; if they are classes of their own, "
                "move them up next to the other class folders.",
            )

    # Non-image files inside class folders: one line per class.
    for class_rel, rels in sorted(walker.non_images.items()):
        add(
            class_rel,
            "non_image_file",
            f"{counted(len(rels), 'file')} in {class_rel} "
            f"{'is not an image and was' if len(rels) == 1 else 'are not images and were'} skipped "
            f"(e.g. {_describe([r.rsplit('/', 1)[-1] for r in rels], 3)}).",
            "Nothing to do if they are notes or metadata; supported images end in "
            + ", ".join(sorted(IMAGE_EXTENSIONS))
            + ".",
        )
    return problems


def _unusable_reason(
    walker: _Walker, index: pd.DataFrame, classes: list[str], root_images: int, layout: str
) -> str | None:
    if not walker.class_dirs:
        if root_images:
            return (
                f"it has no class sub-folders ({counted(root_images, 'image')} "
                f"{'lies' if root_images == 1 else 'lie'} directly in it); "
                "put each class's images in a sub-folder named after the class"
            )
        return "it has no class sub-folders; put each class's images in a sub-folder named after the class"
    if len(index) == 0:
        return "no image files were found in its class folders (supported: " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")"
    if not classes:
        return f"none of its {counted(len(index), 'image file')} can be used (see the problems)"
    if len(classes) == 1:
        reason = f"only one class ('{classes[0]}') has usable images; a classifier needs at least two"
        base_depth = 1 if layout == "class_folders" else 2
        if layout == "class_folders" and index["relpath"].str.count("/").gt(base_depth).any():
            reason += f"; if the sub-folders of '{classes[0]}' are the classes, scan that folder instead"
        return reason
    return None
