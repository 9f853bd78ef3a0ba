"""Classify every image of a folder or a zip archive, a chunk at a time: ``predict_batch``.

Sources (``BatchSource``, a context manager):

- ``open_folder(folder, ws=...)``: the image files under a folder (recursively, hidden
  files and folders left out). Given a workspace, the folder must lie under its data
  roots (``Workspace.check_data_path``), and so must any file under it that is a
  symbolic link: a page may only read where datasets may come from. The command line
  passes no workspace (its user owns the shell).
- ``open_zip(archive)``: the images of a zip archive, read in memory entry by entry;
  nothing is extracted. Every entry is checked first by ``tlcore.datasets``'
  ``zip_members`` (no absolute or ``..`` paths; links, devices and encrypted entries
  skipped and counted; entry count, declared size and compression-ratio limits; one top
  folder unwrapped) and each entry is read with a byte limit (``MAX_ENTRY_BYTES``)
  counted while reading.
- ``open_files(paths)``: image files given one by one.

Files are images by their extension (``tlcore.datasets.IMAGE_EXTENSIONS``); other files
are counted in ``skipped``. A source without any image raises ``DatasetError``.

``predict_batch`` decodes ``chunk_size`` images at a time (the model's own resize rule,
``tlcore.predict.prepare_image``), classifies them (``predict_arrays``, or with ``tta``
the flip average of ``tlcore.tta``) and keeps only each image's top ``top_k`` classes, so
memory stays bounded whatever the number of images; ``progress(done, total)`` is called
before the first chunk and after every one. A file that cannot be read or decoded becomes
a row with an ``error``, never a failure of the batch.

*True labels* follow the dataset scanner's rule (``tlcore.datasets``' ``scan_dataset``): an
image's class folder is the top-level folder under the folder (or zip) given, whatever the
depth of the image below it (``cat/indoor/2024/x.jpg`` is in the class folder ``cat``), and
when that name is exactly one of the model's classes (compared as is: case, spaces and all)
it is the image's true label. Two more layouts are labelled: a split folder on top
(``test/cat/x.jpg``; ``train``, ``val``, ``valid``, ``validation``, ``test``, any case, as in
the scanner's pre-split layout) takes the folder below it; and one class's folder given
itself (``cat``, or a zip whose single top folder ``cat`` is unwrapped) labels every image
under it whose own class folder names no class. Labels give a ``correct`` column and an
``accuracy`` (over the labelled images); images in class folders that name no class of the
model are counted (``BatchResult.unmatched``) and said in ``summary_line``, so an accuracy
over a few of the images is never mistaken for one over all.

Users: ``python -m tlcore predict MODEL --folder DIR | --zip FILE`` (``cli._train``) and
the Predict page's batch source (``tlui.predict_widgets``).

Example:

>>> with open_folder("photos/test") as src:
...     result = predict_batch(load_model("workspace/models/run"), src, top_k=2, tta=True)
>>> result.accuracy, len(result.rows)
(0.93, 200)
"""

from __future__ import annotations

import io
import os
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import pandas as pd

from tlcore._usertext import counted
from tlcore.datasets import IMAGE_EXTENSIONS, MAX_ZIP_BYTES, SPLIT_NAMES, read_member, zip_members
from tlcore.errors import ConfigError, DatasetError, EscapingEntryError, NotFoundError, TLCoreError, UnsafeArchiveError
from tlcore.predict import LoadedModel, Prediction, check_top_k, predict_arrays, prepare_image, top_predictions
from tlcore.tta import flip_average
from tlcore.workspace import Workspace

__all__ = [
    "BatchItem", "BatchSource", "BatchRow", "BatchResult", "open_folder", "open_zip", "open_files",
    "predict_batch", "summary_line", "MAX_ENTRY_BYTES", "MAX_BATCH_FILES",
]

MAX_ENTRY_BYTES = 64 * 1024**2  # one image file inside a zip
MAX_BATCH_FILES = 200_000  # images in one folder batch (a zip's entries: tlcore.datasets' MAX_ZIP_FILES)
CHUNK_SIZE = 64  # images decoded and classified at a time
_READ_ERRORS = (TLCoreError, OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
Progress = Callable[[int, int], None]


# ------------------------------------------------------------------ sources
@dataclass(frozen=True)
class BatchItem:
    """One image to classify.

    Attributes:
        name: its path relative to the folder or archive ('/'-separated), as shown.
        folder: its class folder: the top-level folder under the folder or archive given, at
            any depth below it ("cat" for ``cat/sub/x.png``), or a split folder and the folder
            below it ("test/cat" for ``test/cat/x.png``); "" for a file at the top.
        root: the name of the folder given (of the single top folder a zip's paths were
            unwrapped from; "" otherwise): the true label when it names a class and
            ``folder`` does not (one class's folder given itself).
        path: the file on disk (None for a zip entry).
        member: the zip entry (None for a file on disk).
    """

    name: str
    folder: str
    path: Path | None = None
    member: zipfile.ZipInfo | None = None
    root: str = ""

    def true_label(self, classes: set[str] | frozenset[str]) -> str | None:
        """The class this item's folders name among ``classes`` (the module's *True labels*), or None.

        Names are compared in Unicode's composed form (NFC): "é" written as e + a combining accent
        (as macOS and its zips write folder names) names the class "é" (one character), and the
        class is returned as the model spells it."""
        top, _, below = self.folder.partition("/")  # below: "cat" of "test/cat", a split folder's class folder
        composed = {unicodedata.normalize("NFC", c): c for c in classes}
        return next((composed[key] for name in (top, below, self.root) if name
                     and (key := unicodedata.normalize("NFC", name)) in composed), None)


@dataclass
class BatchSource:
    """The images of a folder, a zip archive or a list of files; close it when done (``with``).

    Attributes:
        items: the images, sorted by name.
        skipped: files left out because their extension is not an image's (or, in a zip, because
            they are links, devices or encrypted).
        description: what it is, for messages ("folder /data/x", "zip photos.zip").
    """

    items: list[BatchItem]
    skipped: int
    description: str
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self, item: BatchItem) -> str | bytes:
        """The image's path, or its bytes for a zip entry (raises ``UnsafeArchiveError`` over
        ``MAX_ENTRY_BYTES``, ``zipfile.BadZipFile`` for a damaged entry). Safe from several
        threads: a zip's entries are read one at a time (decoding, the slow part, is not locked)."""
        if item.member is not None and self._zip is not None:
            with self._lock:
                return read_member(self._zip, item.member, MAX_ENTRY_BYTES)
        return str(item.path)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> BatchSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.items)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _no_images(what: str, skipped: int) -> DatasetError:
    other = f" ({counted(skipped, 'other file')})" if skipped else ""
    return DatasetError(
        f"The {what} holds no images{other}.",
        fix="Give a folder or zip of image files (JPEG, PNG, GIF, BMP, WebP, TIFF), optionally in one "
            "sub-folder per class.",
    )


def _class_folder(dirs: tuple[str, ...]) -> str:
    """The class folder of an image in the folders ``dirs`` below the root (``BatchItem.folder``)."""
    if not dirs:
        return ""
    if len(dirs) > 1 and dirs[0].lower() in SPLIT_NAMES:
        return f"{dirs[0]}/{dirs[1]}"
    return dirs[0]


def _too_many(count: int) -> DatasetError:
    return DatasetError(f"Too many files for one batch (limit {MAX_BATCH_FILES:,}).", received=f"{count:,} files",
                        fix="Split the images into smaller folders.")


def open_folder(folder: str | os.PathLike[str], *, ws: Workspace | None = None) -> BatchSource:
    """The image files under ``folder`` (recursively; hidden files and folders left out).

    Args:
        folder: the folder.
        ws: when given, ``folder`` must lie under the workspace's data roots (and so must the
            target of any symbolic link under it). Defaults to None (no check: the CLI).

    Raises:
        PathNotAllowedError: outside the data roots (the message names them and how to add one).
        NotFoundError: no such folder. DatasetError: no image under it, or too many files.
    """
    raw = str(folder).strip()
    root = ws.check_data_path(raw) if ws is not None else Path(raw).expanduser()
    if not raw or not root.is_dir():
        raise NotFoundError("That is a file, not a folder." if raw and root.is_file() else "No folder there.",
                            received=raw or "(nothing)",
                            fix="Give the path of a folder of images (one sub-folder per class gives accuracy).")
    items: list[BatchItem] = []
    skipped = 0
    root_name = Path(os.path.abspath(root)).name  # "." and ".." named too, links not followed
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        for fname in filenames:
            if fname.startswith("."):
                continue
            if not _is_image(fname):
                skipped += 1
                continue
            path = here / fname
            if ws is not None and path.is_symlink() and not ws.is_within_data_roots(path):
                skipped += 1  # a link out of the data roots is not read
                continue
            rel = (rel_dir / fname).as_posix()
            items.append(BatchItem(name=rel, folder=_class_folder(rel_dir.parts), path=path, root=root_name))
            if len(items) > MAX_BATCH_FILES:
                raise _too_many(len(items))
    if not items:
        raise _no_images("folder", skipped)
    items.sort(key=lambda i: i.name)
    return BatchSource(items=items, skipped=skipped, description=f"folder {root}")


def open_zip(archive: str | os.PathLike[str] | bytes | IO[bytes], *, name: str | None = None,
             max_bytes: int = MAX_ZIP_BYTES) -> BatchSource:
    """The images of a zip archive (a path, its bytes or a binary file object), read in memory.

    Args:
        archive: the zip.
        name: what to call it in messages. Defaults to the file's name.
        max_bytes: the most uncompressed bytes the archive may declare. Defaults to 4 GiB.

    Raises:
        UnsafeArchiveError: an entry would escape (zip-slip), a limit.
        DatasetError: not a zip file, or no image in it.
    """
    label = name or (str(archive) if isinstance(archive, (str, os.PathLike)) else getattr(archive, "name", "upload"))
    if isinstance(archive, (str, os.PathLike)) and not Path(archive).expanduser().is_file():
        raise NotFoundError("No zip file there.", received=label, fix="Give the path of a .zip of images.")
    src = io.BytesIO(archive) if isinstance(archive, (bytes, bytearray)) else archive
    try:
        zf = zipfile.ZipFile(Path(src).expanduser() if isinstance(src, (str, os.PathLike)) else src)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError("The file is not a valid zip archive.", received=label,
                           fix="Give a .zip of a folder of images.") from exc
    try:
        try:
            members = zip_members(zf, max_bytes=max_bytes)
        except EscapingEntryError as exc:  # a limit (UnsafeArchiveError): its own words fit
            raise UnsafeArchiveError(  # said in this reader's terms: it extracts nothing
                "The zip file has an entry whose path leaves the archive's folder (an absolute path or '..'), as a "
                "crafted archive does; it is not read, although classifying extracts nothing.",
                received=exc.received, fix="Re-create the archive from the folder of images itself "
                "(e.g. 'zip -r photos.zip photos').") from exc
        items, skipped = [], len(members.skipped)  # links, devices, encrypted entries: counted, never read
        for info, rel in members.files:
            if not _is_image(rel.name):
                skipped += 1
                continue
            # Its class folder counts from the unwrapped top, as for an extracted zip scanned; the
            # folder unwrapped (if any) plays the part of the folder given.
            archived = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", ".", "/")]
            cut = len(archived) - len(rel.parts)
            items.append(BatchItem(name=rel.as_posix(), folder=_class_folder(rel.parts[:-1]), member=info,
                                   root=archived[cut - 1] if cut > 0 else ""))
        if not items:
            raise _no_images("zip file", skipped)
    except BaseException:
        zf.close()
        raise
    items.sort(key=lambda i: i.name)
    return BatchSource(items=items, skipped=skipped, description=f"zip {label}", _zip=zf)


def open_files(paths: Iterable[str | os.PathLike[str]]) -> BatchSource:
    """Image files given one by one (names as given, no true labels). Missing files become error rows."""
    items = [BatchItem(name=str(p), folder="", path=Path(p)) for p in paths]
    if not items:
        raise _no_images("list of files", 0)
    return BatchSource(items=items, skipped=0, description="files")


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class BatchRow:
    """The result for one image.

    Attributes:
        file: ``BatchItem.name``.
        predictions: the top classes, most probable first (empty when ``error``).
        true_label: the class its folder names, or None.
        error: why it was not classified, or None.
        folder: its class folder (``BatchItem.folder``; "" at the top of the source).
    """

    file: str
    predictions: tuple[Prediction, ...]
    true_label: str | None = None
    error: str | None = None
    folder: str = ""

    @property
    def correct(self) -> bool | None:
        """Whether the top class is the true label; None without a true label or a prediction."""
        if self.true_label is None or not self.predictions:
            return None
        return self.predictions[0].label == self.true_label


@dataclass
class BatchResult:
    """Every image's top classes, the true labels and errors.

    Attributes:
        rows: one per image, in the source's order.
        class_names: the model's classes.
        top_k: classes kept per image.
        tta: whether the flip average was used.
        skipped: files of the source that are not images.
        seconds: wall-clock time of ``predict_batch``.
    """

    rows: list[BatchRow]
    class_names: list[str]
    top_k: int
    tta: bool = False
    skipped: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[BatchRow]:
        return [r for r in self.rows if r.error is not None]

    @property
    def labelled(self) -> list[BatchRow]:
        """The classified rows with a true label."""
        return [r for r in self.rows if r.correct is not None]

    @property
    def has_truth(self) -> bool:
        """Whether any image has a true label (its folder names a class)."""
        return any(r.true_label is not None for r in self.rows)

    @property
    def unmatched(self) -> dict[str, int]:
        """The class folders that name no class of the model, with their number of images (most first)."""
        counts: dict[str, int] = {}
        for r in self.rows:
            if r.folder and r.true_label is None:
                counts[r.folder] = counts.get(r.folder, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def accuracy_basis(self) -> str:
        """What the accuracy is computed on, e.g. "on 6 of 18 images" ("" without labelled images)."""
        n = len(self.labelled)
        return f"on {n} of {counted(len(self.rows), 'image')}" if n else ""

    def unmatched_note(self, limit: int = 3) -> str:
        """One sentence naming the folders of ``unmatched`` (the first ``limit``), or "" when there are none."""
        folders = self.unmatched
        if not folders:
            return ""
        n = sum(folders.values())
        named = ", ".join(f"{name!r} ({count})" for name, count in list(folders.items())[:limit])
        more = f" and {counted(len(folders) - limit, 'more folder')}" if len(folders) > limit else ""
        verb = "is in a folder that names" if n == 1 else "are in folders that name"
        return (f"{counted(n, 'image')} {verb} no class of the model ({named}{more}), so "
                f"{'it has' if n == 1 else 'they have'} no true label")

    @property
    def accuracy(self) -> float | None:
        """The share of labelled images whose top class is right; None without labelled images."""
        labelled = self.labelled
        return sum(bool(r.correct) for r in labelled) / len(labelled) if labelled else None

    def table(self) -> pd.DataFrame:
        """One row per image: ``file``, ``label_1``, ``confidence_1`` … ``label_k``, ``confidence_k``
        (0-1), then ``true_label`` and ``correct`` when ``has_truth``, and ``error``."""
        data: dict[str, list[Any]] = {"file": [r.file for r in self.rows]}
        for k in range(self.top_k):
            data[f"label_{k + 1}"] = [r.predictions[k].label if len(r.predictions) > k else None for r in self.rows]
            data[f"confidence_{k + 1}"] = [r.predictions[k].probability if len(r.predictions) > k else np.nan
                                           for r in self.rows]
        if self.has_truth:
            data["true_label"] = [r.true_label for r in self.rows]
            data["correct"] = pd.array([r.correct for r in self.rows], dtype="boolean")
        data["error"] = [r.error for r in self.rows]
        return pd.DataFrame(data)

    def to_csv(self) -> bytes:
        """``table()`` as UTF-8 CSV (confidences with 4 decimals)."""
        return self.table().to_csv(index=False, float_format="%.4f").encode("utf-8")


# --------------------------------------------------------------- predicting
def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TLCoreError):
        return exc.message.rstrip()
    return f"could not be read ({type(exc).__name__}: {str(exc)[:200] or 'no detail'})"


def predict_batch(
    loaded: LoadedModel,
    source: BatchSource,
    *,
    top_k: int | None = None,
    tta: bool = False,
    batch_size: int = 32,
    chunk_size: int = CHUNK_SIZE,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Classify every image of ``source``; unreadable files become rows with an ``error``.

    Args:
        loaded: the model (``tlcore.predict.load_model``).
        source: from ``open_folder``, ``open_zip`` or ``open_files``.
        top_k: classes kept per image, 1 to the number of classes. Defaults to
            ``tlcore.predict.DEFAULT_TOP_K`` (3), or every class of a model with fewer.
        tta: average each image's probabilities with its mirror image's. Defaults to False.
        batch_size: images per model call. Defaults to 32.
        chunk_size: images decoded at a time (memory bound). Defaults to 64.
        workers: decoding threads. Defaults to the CPUs (at most 4).
        progress: ``progress(done, total)`` before the first chunk and after each one.

    Raises:
        ConfigError: ``top_k``, ``batch_size`` or ``chunk_size`` out of range.
    """
    top_k = check_top_k(top_k, loaded.num_classes)
    for what, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} must be a positive integer.", received=f"{what}={value!r}")
    started = time.perf_counter()
    classes = set(loaded.class_names)
    total = len(source.items)
    rows: list[BatchRow] = []
    if progress:
        progress(0, total)

    def prepare(item: BatchItem) -> np.ndarray | BaseException:
        try:
            return prepare_image(loaded, source.read(item))
        except _READ_ERRORS as exc:
            return exc

    def predict(x: np.ndarray) -> np.ndarray:
        return predict_arrays(loaded, x, batch_size=batch_size)

    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
        for start in range(0, total, chunk_size):
            chunk = source.items[start : start + chunk_size]
            prepared = list(pool.map(prepare, chunk)) if n_workers > 1 else [prepare(i) for i in chunk]
            good = [i for i, p in enumerate(prepared) if isinstance(p, np.ndarray)]
            probs = np.zeros((0, loaded.num_classes), dtype=np.float32)
            if good:
                x = np.stack([prepared[i] for i in good])
                probs = flip_average(predict, x) if tta else predict(x)
            by_index = dict(zip(good, probs))
            for i, item in enumerate(chunk):
                truth = item.true_label(classes)
                outcome = prepared[i]
                if isinstance(outcome, BaseException):
                    rows.append(BatchRow(item.name, (), truth, _error_text(outcome), item.folder))
                else:
                    preds = tuple(top_predictions(by_index[i], loaded.class_names, top_k))
                    rows.append(BatchRow(item.name, preds, truth, folder=item.folder))
            if progress:
                progress(min(start + len(chunk), total), total)
    return BatchResult(rows=rows, class_names=list(loaded.class_names), top_k=top_k, tta=bool(tta),
                       skipped=source.skipped, seconds=time.perf_counter() - started)


def summary_line(result: BatchResult) -> str:
    """One sentence: how many images, errors, the accuracy when there are true labels (and on how many),
    and the images in class folders that name no class of the model."""
    n = len(result.rows)
    parts = [f"{counted(n, 'image')} in {result.seconds:.1f} s"
             + (" with test-time augmentation" if result.tta else "")]
    if result.failed:
        parts.append(f"{len(result.failed)} could not be read")
    if result.skipped:
        parts.append(f"{result.skipped} other file{'s' if result.skipped != 1 else ''} skipped")
    acc = result.accuracy
    if acc is not None:
        n_rows, n_labelled = len(result.rows), len(result.labelled)
        parts.append(f"accuracy {100 * acc:.1f} % on {n_labelled} labelled images"
                     + (f" of the {n_rows}" if n_labelled < n_rows else ""))
    note = result.unmatched_note()
    if note:
        parts.append(note)
    return "; ".join(parts) + "."

