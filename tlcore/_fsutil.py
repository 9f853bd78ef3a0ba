"""Atomic file writes: write to a temporary file beside the target, fsync, rename.

A crash at any point leaves either the old file or the new one, never half of it.

- ``atomic_open(path)``: a context manager yielding a file to write;
  ``atomic_write_bytes`` / ``_text`` / ``_json`` / ``_yaml`` build on it;
- ``atomic_directory(target)``: a folder built under a temporary name and renamed
  into place when the block ends (run folders, exports, zip extraction, IDX imports,
  downloaded trial runs); it first deletes the temporary folders beside ``target`` that a
  killed process left more than ``STALE_AFTER_S`` ago;
- ``read_text(path, ...)``: a file's UTF-8 text (None when missing), every read failure one
  error that names the file and the fix; ``read_json(path, default)`` builds on it (a
  missing file gives ``default``; a damaged or unreadable one a ``WorkspaceError``).

A full disk or a read-only folder becomes a ``WorkspaceError`` that says what to do.
Used by nearly every module that writes (workspace registry, caches, trainer,
export, search); private to ``tlcore``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from tlcore.errors import TLCoreError, WorkspaceError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_yaml",
    "atomic_open",
    "check_new_folder",
    "file_above",
    "atomic_directory",
    "read_json",
]


def _disk_error(path: Path, exc: OSError) -> WorkspaceError:
    if exc.errno == errno.ENOSPC:
        return WorkspaceError(
            f"The disk is full: could not write {path.name}.",
            received=str(path.parent),
            fix="Free some space (or move the workspace with TLCORE_HOME) and try again; earlier files are intact.",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WorkspaceError(
            f"Cannot write {path.name}: the folder is not writable.",
            received=str(path.parent),
            fix="Make the folder writable or point TLCORE_HOME at a writable workspace.",
        )
    return WorkspaceError(
        f"Could not write {path}: {exc.strerror or exc}.",
        received=str(path),
        fix="Check the disk and the folder's permissions; earlier files are intact.",
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only when the block succeeds."""
    path = Path(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports 'w' and 'wb' only. Received: mode={mode!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _disk_error(path, exc) from exc
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file 0600; give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _disk_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_above(path: str | os.PathLike[str]) -> Path | None:
    """The nearest existing parent of a missing ``path`` when it is not a folder (nothing can be made
    below it), else None."""
    for parent in Path(path).parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_new_folder(target: str | os.PathLike[str], *,
                     fix: str = "Choose another name, or remove the existing folder first.") -> Path:
    """``target`` as a ``Path``, when a folder can be made there: nothing is there yet (not even a
    broken link) and no file lies above it.

    Raises:
        WorkspaceError: something is there, or a file is in the way; ``fix`` says what to do about the first.
    """
    target = Path(target)
    if target.exists() or target.is_symlink():
        raise WorkspaceError("The target folder already exists.", received=str(target), fix=fix)
    blocker = file_above(target)
    if blocker is not None:
        raise WorkspaceError(f"The target folder cannot be made: {blocker} above it is a file, not a folder.",
                             received=str(target), fix="Choose a folder that is not below a file.")
    return target


STALE_AFTER_S = 24 * 3600.0
"""How long a temporary folder of ``atomic_directory`` (``.NAME.*.partial``, or ``.NAME.old-PID`` while a
folder is replaced) must have gone untouched before a later ``atomic_directory`` in the same parent
deletes it: what a process killed mid-build (kill -9, out of memory, a restart) left, hidden and never
used. A build writes its files within minutes (each one touches the folder), so a day is far past any
of them, on this machine or another sharing the workspace."""


def _sweep_stale(parent: Path) -> None:
    """Delete the temporary folders in ``parent`` that ``atomic_directory`` left over ``STALE_AFTER_S`` ago."""
    cutoff = time.time() - STALE_AFTER_S
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(".") and (entry.name.endswith(".partial") or ".old-" in entry.name)):
            continue
        try:
            stale = entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``target``; rename it into place at the end.

    The block fills the yielded folder. If it raises, the temporary folder is
    removed and nothing appears at ``target``; an ``OSError`` (full disk,
    permissions) becomes a ``WorkspaceError`` saying what to do.

    Args:
        target: the folder to create.
        replace: replace an existing ``target`` (swapped out, then deleted).
            Defaults to False: an existing target is an error.
    """
    target = Path(target) if replace else check_new_folder(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    try:
        yield tmp
        if target.exists() and not replace:  # made meanwhile by another process: it is not ours to replace
            raise WorkspaceError("The target folder was created by someone else while this one was being made.",
                                 received=str(target), fix="Choose another name, and try again.")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # A file written inside the block (atomic_open) already became a WorkspaceError naming that
        # file in the temporary folder, which is gone now: name the folder being made instead.
        cause = exc.__cause__ if isinstance(exc, WorkspaceError) else exc
        if isinstance(cause, OSError) and not isinstance(cause, WorkspaceError):
            raise _disk_error(target, cause) from cause
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_yaml(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


_RESTORE = "Restore it from a backup or delete it to start that part of the workspace afresh."


_FOLDER_FIX = "Move that folder elsewhere (the file is then started afresh) or restore the file from a backup."
_DENIED_FIX = ("Make the file (and its folders) readable by the user running tlcore, or point TLCORE_HOME at a "
               "workspace that user owns.")
_OTHER_FIX = ("Check the disk and the file's permissions; or restore the file from a backup, or delete it to start "
              "that part of the workspace afresh.")


def read_text(path: str | os.PathLike[str], *, what: str | None = None, plural: bool = False,
              error: type[TLCoreError] = WorkspaceError, fix: str = _RESTORE, folder_fix: str = _FOLDER_FIX,
              denied_fix: str = _DENIED_FIX, other_fix: str = _OTHER_FIX) -> str | None:
    """A file's UTF-8 text, or None when there is no file; any other failure raises ``error``.

    Text that is not UTF-8, a folder in the file's place, a file this user may not read,
    or another read error each become one ``error`` that names the file (``what``, else
    its name; ``plural`` for "are") and the path, with the matching fix. The file is only read.
    """
    path = Path(path)
    name, verb = what or path.name, "are" if plural else "is"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise error(f"{name} {verb} not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); it "
                    "may have been saved in another encoding or overwritten by another program.",
                    received=str(path), fix=fix) from exc
    except IsADirectoryError as exc:
        raise error(f"{name} {verb} a folder, where a file was expected.", received=str(path), fix=folder_fix) from exc
    except OSError as exc:
        denied = isinstance(exc, PermissionError)
        raise error(f"{name} cannot be read: {'permission denied' if denied else exc.strerror or exc}.",
                    received=str(path), fix=denied_fix if denied else other_fix) from exc


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read JSON; a missing file gives ``default``; any other failure raises WorkspaceError.

    A file that is not UTF-8 text or not valid JSON, a folder in the file's place, a file
    this user may not read, or another read error: each becomes a ``WorkspaceError`` naming
    the path and saying what to do (``read_text``), so callers (and pages, which catch
    ``TLCoreError``) need not catch ``UnicodeDecodeError`` or ``OSError`` as well. Only a
    missing file gives ``default``.
    """
    path = Path(path)
    text = read_text(path)
    if text is None:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkspaceError(
            f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno}).",
            received=str(path), fix=_RESTORE,
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number too long to convert, nesting too deep
        raise WorkspaceError(
            f"{path.name} is not valid JSON ({(str(exc).splitlines() or [type(exc).__name__])[0]}).",
            received=str(path), fix=_RESTORE,
        ) from exc
