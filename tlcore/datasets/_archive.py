"""Extract an uploaded .zip dataset safely.

Refused, with nothing left behind: entries with absolute paths, ``..`` parts or
drive letters (they would escape the target); more than ``max_files`` entries; more
than ``max_bytes`` uncompressed (counted while extracting, so a lying header does not
help); a compression ratio above ``max_ratio`` (zip bombs); anything that is not a zip
file; an archive with no file left to extract.

Skipped, and said so, like the folder scan skips a link it will not follow: symbolic
links, devices, pipes and sockets (only regular files are written), encrypted entries,
names no file can have here (a control character, a part over 255 bytes) or that
clash with another entry (a file where a folder is), and a second entry with the path of
an earlier one (the first is kept; a zip tool that appends keeps both). What was skipped is written to
``SKIPPED_NOTE`` in the extracted folder; ``read_skipped_note`` gives it back, and the
folder scan turns each entry still missing (and each repeated one) into an ``archive_skipped`` problem, so it
reaches the problem report of every scan (the Datasets page, ``python -m tlcore
datasets inspect``), not only the message after the upload.

Folders are kept even when empty (a folder entry, or a folder holding only hidden or
skipped files), so an empty class folder gets the scan's ``empty_class`` warning as it
would in a folder. Hidden entries and ``__MACOSX`` are left out silently. Extraction
goes to a temporary folder beside the target and is renamed into place only when it
completes.

A zip holding one top-level folder (what zipping a folder produces) is unwrapped,
so ``pets.zip`` holding ``pets/cat/…`` gives a dataset whose classes are ``cat…``; but
``extract_zip`` keeps a top folder that holds files and no folder (``cat/1.jpg``, ``cat/2.jpg``):
it is the dataset's one class, and the scan says that a dataset needs two, rather than that
the images lie outside any class folder.

Entry points: ``extract_zip(archive, target, max_bytes=..., max_files=...,
max_ratio=...)`` (defaults ``MAX_ZIP_BYTES`` 4 GiB, ``MAX_ZIP_FILES`` 200,000,
``MAX_ZIP_RATIO`` 200); ``_ops.add_zip_dataset`` calls it for the Datasets page's
upload and then scans the folder. ``zip_members`` (the checks, the sorting into files,
folders and skipped entries, and the unwrapping, without writing anything) and
``read_member`` (one entry's bytes, counted against a limit) serve readers that keep the
files in memory: ``tlcore.batch_predict``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from tlcore._fsutil import atomic_directory
from tlcore.errors import DatasetError, EscapingEntryError, UnsafeArchiveError

__all__ = [
    "extract_zip",
    "zip_members",
    "read_member",
    "read_skipped_note",
    "REPEATED_ENTRY",
    "SkippedEntry",
    "ZipMembers",
    "SKIPPED_NOTE",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_FILES",
    "MAX_ZIP_RATIO",
]

MAX_ZIP_BYTES = 4 * 1024**3
MAX_ZIP_FILES = 200_000
MAX_ZIP_RATIO = 200.0
SKIPPED_NOTE = ".tlcore-skipped.json"  # hidden: the scan does not index it
_SKIP_PARTS = {"__MACOSX"}
_CHUNK = 1 << 20
_NAME_MAX = 255  # bytes in one part of a path, on every common file system
_MAX_NOTED = 10_000  # skipped entries kept in the note (and read back from one)
# Writing an entry failed because of its name or a clash with another entry: skip it.
# Anything else (a full disk, permissions) refuses the archive.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ENOTDIR, errno.EISDIR,
                          errno.EEXIST})
_RE_ARCHIVE = "Fix it in the archive and upload it again, or add the file to the dataset folder and rescan."
REPEATED_ENTRY = "an earlier entry of the archive has the same path, and that one was kept"
"""The reason of a ``SkippedEntry`` whose path the dataset does hold, from another entry."""


@dataclass(frozen=True)
class SkippedEntry:
    """A zip entry left out of the extraction, and why.

    Attributes:
        entry: its name in the archive, as stored.
        relpath: where it would have gone, relative to the extracted folder (after unwrapping).
        reason: why it was skipped, a clause: "it is a symbolic link".
        fix: what to do about it.
    """

    entry: str
    relpath: str
    reason: str
    fix: str


@dataclass(frozen=True)
class ZipMembers:
    """The entries of an archive sorted by ``zip_members``; paths relative to the extracted folder.

    Attributes:
        files: the regular files to extract, with their paths.
        folders: every folder to create, empty ones included.
        skipped: the entries left out, and why.
    """

    files: list[tuple[zipfile.ZipInfo, PurePosixPath]]
    folders: list[PurePosixPath]
    skipped: list[SkippedEntry]


def _entry_parts(name: str) -> tuple[str, ...]:
    """The entry's path parts (empty and "." parts dropped); raise if it would escape the target."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in p.parts:
        raise EscapingEntryError(  # zip slip
            "The zip file has an entry that would be written outside the target folder.",
            received=repr(name),
            fix="Re-create the archive from the dataset folder itself (e.g. 'zip -r data.zip mydata').",
        )
    return tuple(x for x in p.parts if x not in ("", "."))


def _visible(parts: tuple[str, ...]) -> tuple[str, ...]:
    """The parts before the first hidden one (``.git``, ``.DS_Store``) or ``__MACOSX``."""
    for i, part in enumerate(parts):
        if part in _SKIP_PARTS or part.startswith("."):
            return parts[:i]
    return parts


def _why_skipped(info: zipfile.ZipInfo, parts: tuple[str, ...]) -> tuple[str, str] | None:
    """Why a file entry cannot be extracted, and the fix; None when it can."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return ("it is a symbolic link (only regular files are extracted)",
                "Put the file it points to in the archive instead (zip follows links unless told --symlinks). "
                + _RE_ARCHIVE)
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return ("it is a device, pipe or socket, not a regular file",
                "Leave it out of the archive; nothing is lost if it is not an image.")
    if info.flag_bits & 0x1:
        return ("it is encrypted (password-protected)", "Create the archive without a password. " + _RE_ARCHIVE)
    return _bad_name(parts)


def _bad_name(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """Why no file or folder can have this path here, and the fix; None when one can."""
    if any(len(p.encode("utf-8", "surrogateescape")) > _NAME_MAX for p in parts):
        return (f"a part of its name is longer than {_NAME_MAX} bytes, too long for a file name",
                "Rename it to a shorter name. " + _RE_ARCHIVE)
    if any(ord(c) < 32 or ord(c) == 127 for p in parts for c in p):
        return ("its name holds a control character", "Rename it to a plain name. " + _RE_ARCHIVE)
    return None


def zip_members(
    zf: zipfile.ZipFile,
    *,
    max_bytes: int = MAX_ZIP_BYTES,
    max_files: int = MAX_ZIP_FILES,
    max_ratio: float = MAX_ZIP_RATIO,
    unwrap_flat: bool = True,
) -> ZipMembers:
    """The entries of an open zip archive sorted into files, folders and skipped entries, every
    one checked.

    Hidden entries and ``__MACOSX`` are left out silently (their folders are kept); links,
    devices, encrypted entries and impossible names are ``skipped``; a single top-level folder
    holding everything is unwrapped (``pets/cat/1.jpg`` -> ``cat/1.jpg``). Nothing is read:
    the sizes checked are the declared ones (``read_member`` counts the real bytes).

    Args:
        unwrap_flat: unwrap a single top-level folder that holds files and no folder too.
            Defaults to True (a reader of images; its folder's name is still known). ``extract_zip``
            passes False: such a folder is a dataset's one class folder, kept so the scan names it.

    Raises:
        UnsafeArchiveError: an entry would escape the folder (absolute, ``..``, drive
            letter); too many entries; more than ``max_bytes`` declared; an entry
            compressed more than ``max_ratio`` times.
    """
    infos = zf.infolist()
    if len(infos) > max_files:
        raise UnsafeArchiveError(
            f"The zip file has too many entries (limit {max_files:,}).", received=f"{len(infos):,} entries"
        )
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    folders: set[tuple[str, ...]] = set()
    skipped: list[tuple[zipfile.ZipInfo, tuple[str, ...], tuple[str, str]]] = []
    declared = 0
    taken: set[tuple[str, ...]] = set()  # file paths already kept (a case-only clash fails at writing, and says so)
    for info in infos:
        parts = _entry_parts(info.filename)  # every entry, skipped or not, must stay inside
        seen = _visible(parts)
        is_dir = info.is_dir() or stat.S_ISDIR(info.external_attr >> 16)
        if is_dir or len(seen) < len(parts):  # a folder, or a hidden entry: keep its folders
            if _bad_name(seen) is None:  # a file below a folder of a bad name says so itself
                folders.add(seen)
            continue
        if _bad_name(parts[:-1]) is None:
            folders.add(parts[:-1])  # kept even when the file is skipped: an empty class still shows
        why = _why_skipped(info, parts)
        if why is None and parts in taken:
            why = (REPEATED_ENTRY, "Give every file in the archive its own path (rename one of the two), "
                   "or add the second file to the dataset folder under another name and rescan.")
        if why is not None:
            skipped.append((info, parts, why))
            continue
        taken.add(parts)
        declared += info.file_size
        if info.compress_size > 0 and info.file_size / info.compress_size > max_ratio and info.file_size > _CHUNK:
            raise UnsafeArchiveError(
                "The zip file looks like a zip bomb (an entry expands far beyond its compressed size).",
                received=f"{info.filename!r}: {info.compress_size:,} → {info.file_size:,} bytes",
            )
        files.append((info, parts))
    if declared > max_bytes:
        raise UnsafeArchiveError(
            f"The zip file expands to more than the limit of {max_bytes / 1024**3:.1f} GiB.",
            received=f"{declared / 1024**3:.2f} GiB",
            fix="Upload a smaller archive, or put the folder under a data root and give its path.",
        )
    entries = [parts for _, parts in files] + [parts for _, parts, _ in skipped]
    tops = {parts[0] for parts in entries} | {f[0] for f in folders if f}
    cut = 1 if len(tops) == 1 and all(len(parts) > 1 for parts in entries) else 0
    if cut and not unwrap_flat and all(len(p) == 2 for p in entries) and all(len(f) <= 1 for f in folders):
        cut = 0  # a lone class folder (cat/1.jpg): unwrapped, its images would have no class
    return ZipMembers(
        files=[(info, PurePosixPath(*parts[cut:])) for info, parts in files],
        folders=sorted(PurePosixPath(*f[cut:]) for f in folders if len(f) > cut),
        skipped=[SkippedEntry(info.filename, "/".join(parts[cut:]), reason, fix)
                 for info, parts, (reason, fix) in skipped],
    )


def read_skipped_note(folder: str | os.PathLike[str]) -> list[SkippedEntry]:
    """The entries ``extract_zip`` skipped when it made ``folder`` (its ``SKIPPED_NOTE``); empty when
    there is no note, or one that cannot be read (it only ever adds warnings)."""
    try:
        raw = json.loads((Path(folder) / SKIPPED_NOTE).read_text(encoding="utf-8"))
        rows = raw["skipped"][:_MAX_NOTED]
        return [SkippedEntry(*(str(row[k]) for k in ("entry", "relpath", "reason", "fix"))) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    """The content of one entry of ``zip_members``, refused once more than ``max_bytes`` come out
    (counted while reading, so a lying header does not help).

    Raises:
        UnsafeArchiveError: the entry expands beyond ``max_bytes``.
        zipfile.BadZipFile, EOFError: the entry is damaged.
    """
    parts: list[bytes] = []
    size = 0
    with zf.open(info) as src:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeArchiveError(f"A zip entry expands to more than the limit of {max_bytes:,} bytes.",
                                         received=f"{info.filename!r}: more than {size:,} bytes")
            parts.append(chunk)
    return b"".join(parts)


def extract_zip(
    source: str | os.PathLike[str] | IO[bytes],
    target: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_ZIP_BYTES,
    max_files: int = MAX_ZIP_FILES,
    max_ratio: float = MAX_ZIP_RATIO,
) -> Path:
    """Extract ``source`` (a path or a binary file object) into the new folder ``target``.

    Args:
        source: the zip archive.
        target: a folder that must not exist yet.
        max_bytes: the most uncompressed bytes allowed. Defaults to 4 GiB.
        max_files: the most entries allowed. Defaults to 200,000.
        max_ratio: the largest uncompressed/compressed ratio allowed. Defaults to 200.

    Returns:
        ``target``, holding the extracted files and folders, and ``SKIPPED_NOTE`` when
        entries were skipped (``read_skipped_note``).

    Raises:
        UnsafeArchiveError: the archive is unsafe or over a limit.
        DatasetError: the upload is not a zip file, or holds no file that can be extracted.
    """
    target = Path(target)
    if target.exists():
        raise DatasetError("The target folder already exists.", received=str(target), fix="Choose another name.")
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError(
            "The upload is not a valid zip file.",
            received=getattr(source, "name", str(source)),
            fix="Upload a .zip archive of a folder holding one sub-folder per class.",
        ) from exc
    with zf:
        members = zip_members(zf, max_bytes=max_bytes, max_files=max_files, max_ratio=max_ratio, unwrap_flat=False)
        if not members.files:
            _refuse_empty(members.skipped)
        skipped = list(members.skipped)
        try:
            with atomic_directory(target) as tmp:
                for folder in members.folders:
                    try:
                        tmp.joinpath(*folder.parts).mkdir(parents=True, exist_ok=True)
                    except OSError as exc:  # a part too long for a name: its files are skipped, and say so
                        if exc.errno not in _NAME_ERRNOS:
                            raise
                written = 0
                for info, rel in members.files:
                    dest = tmp.joinpath(*rel.parts)
                    if not dest.resolve().is_relative_to(tmp.resolve()):  # belt and braces
                        raise UnsafeArchiveError("An entry would be written outside the target.",
                                                 received=info.filename)
                    try:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        out = open(dest, "xb")  # repeated paths were skipped: nothing is overwritten
                    except OSError as exc:
                        if exc.errno not in _NAME_ERRNOS:
                            raise
                        skipped.append(SkippedEntry(
                            info.filename, rel.as_posix(),
                            f"it could not be written: {exc.strerror or exc} (a file and a folder of the "
                            "archive have that name, or the name is not allowed here)",
                            "Give every file and folder in the archive a distinct, plain name. " + _RE_ARCHIVE))
                        continue
                    with zf.open(info) as src, out:
                        while chunk := src.read(_CHUNK):
                            written += len(chunk)
                            if written > max_bytes:
                                raise UnsafeArchiveError(
                                    f"The zip file expands to more than the limit of {max_bytes:,} bytes.",
                                    received=f"more than {written:,} bytes",
                                )
                            out.write(chunk)
                if skipped:
                    rows = [asdict(s) for s in skipped[:_MAX_NOTED]]
                    (tmp / SKIPPED_NOTE).write_text(json.dumps({"skipped": rows}, indent=1), encoding="utf-8")
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
            raise DatasetError("The zip file is corrupt and could not be extracted.", received=str(exc),
                               fix="Create the archive again and re-upload it.") from exc
    return target


def _refuse_empty(skipped: list[SkippedEntry]) -> None:
    if not skipped:
        raise DatasetError("The zip file holds no files.", fix="Zip a folder holding one sub-folder per class.")
    first = skipped[0]
    raise DatasetError(
        f"The zip file holds no file that can be extracted: all {len(skipped):,} were skipped.",
        received=f"{first.entry!r}: {first.reason}" + (f", and {len(skipped) - 1:,} more" if len(skipped) > 1 else ""),
        fix=first.fix,
    )
