"""Extract an uploaded .zip dataset safely.

Refused, with nothing left behind: entries with absolute paths, ``..`` parts or
drive letters; symbolic links; encrypted entries; more than ``max_files``
entries; more than ``max_bytes`` uncompressed (counted while extracting, so a
lying header does not help); a compression ratio above ``max_ratio`` (zip bombs);
anything that is not a zip file. Extraction goes to a temporary folder beside the
target and is renamed into place only when it completes.

A zip holding one top-level folder (what zipping a folder produces) is unwrapped,
so ``pets.zip`` holding ``pets/cat/…`` gives a dataset whose classes are ``cat…``.

Entry points: ``extract_zip(archive, target, max_bytes=..., max_files=...,
max_ratio=...)`` (defaults ``MAX_ZIP_BYTES`` 4 GiB, ``MAX_ZIP_FILES`` 200,000,
``MAX_ZIP_RATIO`` 200); ``_ops.add_zip_dataset`` calls it for the Datasets page's
upload and then scans the folder. ``zip_members`` (the checks and the unwrapping,
without writing anything) and ``read_member`` (one entry's bytes, counted against a
limit) serve readers that keep the files in memory: ``tlcore.batch_predict``.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from tlcore._fsutil import atomic_directory
from tlcore.errors import DatasetError, UnsafeArchiveError

__all__ = ["extract_zip", "zip_members", "read_member", "MAX_ZIP_BYTES", "MAX_ZIP_FILES", "MAX_ZIP_RATIO"]

MAX_ZIP_BYTES = 4 * 1024**3
MAX_ZIP_FILES = 200_000
MAX_ZIP_RATIO = 200.0
_SKIP_PARTS = {"__MACOSX"}
_CHUNK = 1 << 20


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The entry's relative path, or raise if it would escape; None for skipped entries."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in p.parts:
        raise UnsafeArchiveError(
            "The zip file has an entry that would be written outside the target folder.",
            received=repr(name),
            fix="Re-create the archive from the dataset folder itself (e.g. 'zip -r data.zip mydata').",
        )
    parts = [x for x in p.parts if x not in ("", ".")]
    if not parts or any(x in _SKIP_PARTS or x.startswith(".") for x in parts):
        return None
    return PurePosixPath(*parts)


def zip_members(
    zf: zipfile.ZipFile,
    *,
    max_bytes: int = MAX_ZIP_BYTES,
    max_files: int = MAX_ZIP_FILES,
    max_ratio: float = MAX_ZIP_RATIO,
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The files of an open zip archive with their safe relative paths, every entry checked.

    Directories, ``__MACOSX`` and hidden entries are left out; a single top-level folder
    holding everything is unwrapped (``pets/cat/1.jpg`` -> ``cat/1.jpg``). Nothing is
    read: the sizes checked are the declared ones (``read_member`` counts the real bytes).

    Raises:
        UnsafeArchiveError: an entry would escape the folder (absolute, ``..``, drive
            letter), is a symbolic link or encrypted; too many entries; more than
            ``max_bytes`` declared; an entry compressed more than ``max_ratio`` times.
    """
    infos = zf.infolist()
    if len(infos) > max_files:
        raise UnsafeArchiveError(
            f"The zip file has too many entries (limit {max_files:,}).", received=f"{len(infos):,} entries"
        )
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    declared = 0
    for info in infos:
        rel = _safe_member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                "The zip file contains a symbolic link, which is not allowed.",
                received=repr(info.filename),
                fix="Zip the real files (e.g. 'zip -r --symlinks' off, the default).",
            )
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError("The zip file has encrypted entries.", received=repr(info.filename),
                                     fix="Upload an archive without a password.")
        if rel is None or info.is_dir():
            continue
        declared += info.file_size
        if info.compress_size > 0 and info.file_size / info.compress_size > max_ratio and info.file_size > _CHUNK:
            raise UnsafeArchiveError(
                "The zip file looks like a zip bomb (an entry expands far beyond its compressed size).",
                received=f"{info.filename!r}: {info.compress_size:,} → {info.file_size:,} bytes",
            )
        plan.append((info, rel))
    if declared > max_bytes:
        raise UnsafeArchiveError(
            f"The zip file expands to more than the limit of {max_bytes / 1024**3:.1f} GiB.",
            received=f"{declared / 1024**3:.2f} GiB",
            fix="Upload a smaller archive, or put the folder under a data root and give its path.",
        )
    tops = {rel.parts[0] for _, rel in plan}
    if len(tops) == 1 and all(len(rel.parts) > 1 for _, rel in plan):
        plan = [(info, PurePosixPath(*rel.parts[1:])) for info, rel in plan]
    return plan


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
        ``target``, holding the extracted files.

    Raises:
        UnsafeArchiveError: the archive is unsafe or over a limit.
        DatasetError: the upload is not a zip file or is empty.
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
        members = zip_members(zf, max_bytes=max_bytes, max_files=max_files, max_ratio=max_ratio)
        if not members:
            raise DatasetError("The zip file holds no files.", fix="Zip a folder holding one sub-folder per class.")

        try:
            with atomic_directory(target) as tmp:
                written = 0
                for info, rel in members:
                    dest = tmp.joinpath(*rel.parts)
                    if not dest.resolve().is_relative_to(tmp.resolve()):  # belt and braces
                        raise UnsafeArchiveError("An entry would be written outside the target.",
                                                 received=info.filename)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        while chunk := src.read(_CHUNK):
                            written += len(chunk)
                            if written > max_bytes:
                                raise UnsafeArchiveError(
                                    f"The zip file expands to more than the limit of {max_bytes:,} bytes.",
                                    received=f"more than {written:,} bytes",
                                )
                            out.write(chunk)
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
            raise DatasetError("The zip file is corrupt and could not be extracted.", received=str(exc),
                               fix="Create the archive again and re-upload it.") from exc
    return target
