"""Where studies live: the storage a string names, opened once per process.

Two kinds of storage, named by a string:

- the default (``None``): an Optuna journal file in the workspace,
  ``<workspace>/studies/journal.log``. Optuna's guidance for several local
  processes writing at once is the journal storage rather than SQLite (SQLite
  serialises writers and raises "database is locked" under contention): each
  write appends one JSON line under a file lock and every reader replays the log.
  Any other string without ``://`` is the path of such a journal file
  (``journal:PATH`` too).
- an SQLAlchemy URL (``postgresql://user:pass@host:5432/db``; ``mysql://`` and
  ``sqlite:///`` are accepted too, MySQL with its driver installed) for a database
  server that workers on many machines share. PostgreSQL goes through psycopg
  (libpq), so a URL without a password takes it from ``PGPASSWORD`` or ``~/.pgpass``.
  Such a database is opened as a ``patience.PatientRDBStorage``: a search worker's calls
  wait out a database that stops answering for a while (a restart) instead of ending it.

Both kinds get heartbeats, so a dead worker's trial is failed and queued again
(``heartbeat``: the policy, and the journal storage's heartbeats). A URL's password
never reaches a message (``_urls``). This machine's own files of a study (worker
state files and logs, downloaded trial runs) are under ``study_local_dir``; the
trials' files are in the artifact store (``artifacts``).

Opening never writes to a file that is not a study journal: an existing file whose
first bytes hold no journal record (a user's notes, a CSV, an SQLite database given
as a path) is refused before Optuna appends to it. Only ``create_study`` may create
a storage's file (``open_storage(..., create=True)``); every other caller, readers
above all, finds a journal or SQLite file that does not exist refused, or (``list_studies``
and the workspace's own journal) treated as empty (``missing_storage_file``), and
nothing is created. The workspace's ``studies`` folder is named without being made
(``studies_path``), so listing or resolving never leaves an empty folder behind.

Entry points: ``open_storage(ws, storage)`` (once per process and storage: the
opened storages are cached), ``describe_storage`` (for people: the journal's path
or the URL without its password), ``check_storage_location`` (pages check a typed
journal path against the data roots), ``missing_storage_file``, ``default_journal_path``,
``studies_path``, ``study_local_dir``.
The storage string comes from the CLI's ``--storage`` or ``$TLCORE_STORAGE``
(``tlcore.cli._search``), or the Results page's storage field; ``study``,
``worker``, ``local`` and ``results`` pass it here.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from tlcore.errors import ConfigError, NotFoundError, PathNotAllowedError, WorkspaceError
from tlcore.search._urls import redact_url, scrub_secrets
from tlcore.search.heartbeat import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_HEARTBEAT_INTERVAL,
    MAX_RETRY,
    HeartbeatJournalStorage,
)
from tlcore.search.patience import PatientRDBStorage
from tlcore.workspace import Workspace

__all__ = [
    "open_storage", "describe_storage", "check_storage_location", "default_journal_path", "study_local_dir",
    "is_journal_path", "journal_file", "missing_storage_file", "studies_path", "check_heartbeat",
]

_RDB_PREFIXES = ("postgresql", "postgres", "mysql", "sqlite", "oracle", "mssql")


def studies_path(ws: Workspace) -> Path:
    """``<workspace>/studies`` (the journal, the artifacts, this machine's files of each study), not
    created: ``Workspace.studies_dir`` makes the folder, which a reader must not (``models list`` on a
    fresh workspace left an empty ``studies`` behind). Writers create what they write under it."""
    return ws.root / "studies"


def default_journal_path(ws: Workspace) -> Path:
    """The workspace's own journal (the storage ``None``): ``<workspace>/studies/journal.log`` (not created)."""
    return studies_path(ws) / "journal.log"


def study_local_dir(ws: Workspace, name: str) -> Path:
    """This machine's files of a study: worker states, logs, downloaded trial runs (not created)."""
    return studies_path(ws) / "local" / name


def _is_rdb(url: str) -> bool:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    return "://" in url and scheme in _RDB_PREFIXES


def is_journal_path(storage: str) -> bool:
    """Whether ``storage`` names a journal file (a path, or ``journal:PATH``) rather than a URL."""
    return "://" not in storage


def journal_file(storage: str) -> Path:
    """The journal file a journal ``storage`` names (a path, or ``journal:PATH``; see ``is_journal_path``)."""
    return Path(storage.removeprefix("journal:")).expanduser()


def describe_storage(ws: Workspace, storage: str | None) -> str:
    """The storage for people to read: the journal's path, or the URL without its password."""
    if storage is None:
        return str(default_journal_path(ws))
    if storage.startswith("journal:"):
        return storage[len("journal:"):]
    return redact_url(storage)


def _storage_file(storage: str) -> str | None:
    """The local file a storage reads and writes (a journal, an SQLite database), or None."""
    if "://" not in storage:
        return storage.removeprefix("journal:")
    if not _is_rdb(storage) or storage.split(":", 1)[0].split("+", 1)[0].lower() != "sqlite":
        return None  # a database server, or a URL open_storage refuses
    try:
        from sqlalchemy.engine import make_url

        database = make_url(storage).database
    except Exception:  # unparsable: open_storage says so
        return None
    return database if database and database != ":memory:" else None


def missing_storage_file(ws: Workspace, storage: str | None) -> Path | None:
    """The file ``storage`` keeps its studies in (a journal, an SQLite database) when it does not exist
    yet, else None (it exists, or the storage is a database server).

    Such a storage holds no study: readers treat it as empty (``list_studies``) or say the study is
    not there, rather than open it, which would create the file.
    """
    path = default_journal_path(ws) if storage is None else _storage_file(storage)
    if path is None:
        return None
    path = Path(path).expanduser()
    return None if path.exists() else path


def check_storage_location(ws: Workspace, storage: str | None) -> str | None:
    """Refuse a storage that would read or write a file outside the data roots; else return it.

    Pages call this before ``open_storage`` with a storage a visitor typed: opening a
    journal creates the file (and its folders), so an unchecked path would let a page
    create files anywhere the server may write. Database servers and the workspace's own
    journal (None) pass. The command line does not need it: its user owns the shell. A
    relative path is read from the current folder, as the command line's ``--storage`` reads
    it; the message names the file it read, why the page refuses it, the ``allow-root`` command
    for its folder, and that the command line is not limited.

    Raises:
        PathNotAllowedError: the journal or SQLite file lies outside the data roots.
    """
    import shlex

    path = None if storage is None else _storage_file(storage)
    if path is None or ws.is_within_data_roots(path):
        return storage
    typed = Path(path).expanduser()
    real = Path(os.path.realpath(typed))
    # A relative path is read from the process's current folder, as the command line's --storage reads
    # it: the message says which file that is, so a surprise shows.
    received = (f"{path} (a relative path, read from the current folder {os.getcwd()}: {real})"
                if not typed.is_absolute() else f"{path}" if str(real) == str(typed) else f"{path} (resolves to {real})")
    folder = real.parent
    create = "" if folder.is_dir() else f" (create the folder {folder} first)"
    raise PathNotAllowedError(
        "This page opens study journal and SQLite files only inside the allowed data roots, and may create "
        "one there, so that a visitor cannot make it read or create files anywhere on this machine: the "
        "path given is outside the allowed data roots.",
        received=received,
        fix=f"To open it here, allow its folder: 'python -m tlcore datasets allow-root {shlex.quote(str(folder))}'"
            f"{create}; the page then accepts any journal in that folder (allowed now: "
            + ", ".join(str(r) for r in ws.data_roots) + "). The command line is not limited: "
            f"'python -m tlcore search list --storage {shlex.quote(storage)}' reads it as it is.",
    )


_OP_CODE = b'{"op_code":'  # how every journal record starts (Optuna writes compact JSON)
_MAX_LISTED = 5
_HEAD_BYTES = 64 * 1024  # how much of an existing file is read to tell a journal from another file
_RECORD_KEY = b'"op_code"'  # in every journal record, whatever the JSON's spacing or key order
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_foreign_file(path: Path, storage: str | None) -> None:
    """Refuse an existing, non-empty file that is not a study journal, before anything is written to it.

    Optuna appends its records to whatever file it is given: a user's notes or a CSV named by
    mistake got a journal record glued to its last line (then a traceback). A journal's first
    record starts at its first byte; one with no record anywhere in its first 64 KiB is another
    kind of file. A damaged journal still holds records, and gets the damaged-journal message instead.

    Raises:
        ConfigError: the file holds no journal record (the message names it and what to give instead).
        WorkspaceError: the file cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise WorkspaceError(f"Cannot read the study journal: {exc.strerror or exc}.", received=str(path),
                             fix="Check the file's permissions and the disk.") from exc
    if not head or _RECORD_KEY in head:
        return  # empty (a new journal), or a journal
    new = path.with_name("studies.log")
    if head.startswith(_SQLITE_MAGIC):
        fix = (f"It is an SQLite database: give it as an SQLAlchemy URL, sqlite:///{path}, or name a new "
               f"journal file (e.g. {new}), which is created.")
    else:
        fix = (f"Name a new journal file (e.g. {new}), which is created, or an existing study journal, or give a "
               "postgresql:// URL" + ("; or leave the storage out for the workspace's own journal." if storage
                                      else "."))
    raise ConfigError(f"{path.name} is not a study journal (it holds no Optuna journal record); nothing was "
                      "written to it.", received=str(path), fix=fix)


def _record_ok(line: bytes) -> bool:
    try:
        log = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 (UnicodeDecodeError is a ValueError)
        return False
    return isinstance(log, dict) and "op_code" in log


def _damaged_lines(path: Path) -> tuple[list[int], dict[int, int]]:
    """The journal's damaged lines (1-based, the first ``_MAX_LISTED``), and of those that are a
    record cut short with a whole record glued after it, the column where the whole one starts.

    A last line without its newline is skipped: it may be a write in progress, and Optuna
    ignores it. Reads the file once, on the error path only.
    """
    bad: list[int] = []
    glued: dict[int, int] = {}
    try:
        with open(path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.endswith(b"\n") or _record_ok(line):
                    continue
                bad.append(number)
                at = line.rfind(_OP_CODE)
                if at > 0 and _record_ok(line[at:]):
                    glued[number] = at + 1
                if len(bad) >= _MAX_LISTED:
                    break
    except OSError:
        pass
    return bad, glued


def _journal_damaged(path: Path, exc: BaseException) -> WorkspaceError:
    """The error for a journal Optuna cannot replay: which lines are damaged, and how to recover."""
    bad, glued = _damaged_lines(path)
    keep = f"Stop the workers of its studies, copy {path.name} aside as a backup, then "
    if not bad:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        return WorkspaceError(
            f"The study journal is damaged and cannot be replayed ({type(exc).__name__}: {detail}).",
            received=str(path),
            fix=keep + "restore the journal from a backup, or move it away to start with no studies "
                "(the trials' run folders stay in the workspace).")
    where = ("line " if len(bad) == 1 else "lines ") + ", ".join(map(str, bad)) + (
        " (and maybe more)" if len(bad) >= _MAX_LISTED else "")
    it, that = ("that line", "it") if len(bad) == 1 else ("those lines", "one of them")
    if len(glued) == len(bad):
        cols = ", ".join(f"line {n}: column {c}" for n, c in glued.items())
        return WorkspaceError(
            f"The study journal is damaged at {where}: a record cut short (a worker stopped while writing it) "
            f"has the next record glued to it, so Optuna cannot read the studies.",
            received=str(path),
            fix=keep + f"on that line delete only the cut-off text before the last '{{\"op_code\"' ({cols}), "
                "keeping the whole record after it. Only the unfinished record is lost.")
    return WorkspaceError(
        f"The study journal is damaged at {where}: not a valid journal record (not JSON, or not UTF-8 text), "
        "so Optuna cannot read the studies.",
        received=str(path),
        fix=keep + f"delete {where} (with a text editor) and try again. What {it} recorded is lost; if {that} "
            "created a study or a trial, the records after it no longer line up, and the trials recorded after "
            "it may be lost or attached to the wrong trial: then restore the journal from a backup instead.")


_TAIL_CHUNK = 1 << 16


def set_aside_cut_tail(path: Path) -> Path | None:
    """Move a journal's cut-off last record (text after its last newline: a writer killed mid-write,
    a copy taken while one wrote, a full disk) into ``<name>.cut-<time>-<pid>`` beside it and cut
    the journal back to its last whole record; returns that file, or None when the journal ends
    with a newline. Call it only holding the journal's lock: then no writer is mid-write.

    Optuna appends the next record after whatever the file ends with, so a cut last line glued
    the next record to it: that record was lost, and every later replay of the journal failed.
    """
    with open(path, "rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return None
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return None
        cut = 0  # where the cut-off record starts: after the last newline, or the file's start
        pos = end
        while pos > 0:
            start = max(0, pos - _TAIL_CHUNK)
            fh.seek(start)
            chunk = fh.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                cut = start + nl + 1
                break
            pos = start
        fh.seek(cut)
        tail = fh.read()
        aside = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        with open(aside, "wb") as out:
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
    warnings.warn(f"The study journal {path} ended with a record cut short ({len(tail)} bytes, a writer stopped "
                  f"while writing it); it was moved to {aside.name} before the next record was written.",
                  RuntimeWarning, stacklevel=2)
    return aside


class _TailCheckingLock(JournalFileSymlinkLock):
    """Optuna's journal lock (its default one, so plain Optuna processes on the same file agree)
    that, once held, sets a cut-off last record aside (``set_aside_cut_tail``) before Optuna appends."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self._journal = path

    def acquire(self) -> bool:
        got = super().acquire()
        try:
            set_aside_cut_tail(self._journal)
        except OSError:
            pass  # the append then fails or succeeds on its own; the reader names a damaged line
        return got


class _CheckedJournalFileBackend(JournalFileBackend):
    """A journal file whose damaged lines raise a ``WorkspaceError`` saying which and what to do,
    and whose cut-off last record is set aside before the next append (``_TailCheckingLock``).

    Optuna's own reader raises a bare ``JSONDecodeError`` or ``UnicodeDecodeError`` for a line
    that is not a JSON record (a worker killed mid-write left a cut line, and the next append
    was glued to it), on opening and on every later replay. A cut LAST line is still ignored
    when reading, as Optuna does.
    """

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path, lock_obj=_TailCheckingLock(Path(file_path)))
        self._path = Path(file_path)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            for log in super().read_logs(log_number_from):
                if not isinstance(log, dict) or "op_code" not in log:
                    raise ValueError("a line is JSON but not a journal record")
                yield log
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, "Invalid log format."
            raise _journal_damaged(self._path, exc) from exc
        except OSError as exc:
            if isinstance(exc, WorkspaceError):
                raise
            raise WorkspaceError(f"Cannot read the study journal: {exc.strerror or exc}.", received=str(self._path),
                                 fix="Check the file's permissions and the disk.") from exc


def _no_storage_file(path: Path, storage: str | None) -> NotFoundError:
    """The error for a storage whose file does not exist, opened by a caller that may not create it."""
    if storage is None:
        return NotFoundError("This workspace has no studies yet (its study journal does not exist).",
                             received=str(path), fix="Create a study with `python -m tlcore search create --spec "
                                                     "FILE` or on the Search page.")
    kind = "study journal" if is_journal_path(storage) else "SQLite database"
    return NotFoundError(f"There is no {kind} at this path, so it holds no study.", received=str(path),
                         fix="Check the path. A new study made with `python -m tlcore search create --storage ...` "
                             "creates it; leave the storage out for the workspace's own journal.")


_OPEN: dict[tuple[Any, ...], BaseStorage] = {}
_OPEN_LOCK = threading.Lock()


def check_heartbeat(heartbeat_interval: int, grace_period: int) -> None:
    """Refuse a heartbeat interval that is not a whole number of seconds, 1 or more, or a grace period
    that is not longer than it.

    Raises:
        ConfigError: which of the two is wrong, with both values (a worker's ``--heartbeat-interval``
            and ``--grace-period``).
    """
    received = f"heartbeat_interval={heartbeat_interval!r}, grace_period={grace_period!r}"
    example = (f"For example a heartbeat every {DEFAULT_HEARTBEAT_INTERVAL} s and a grace period of "
               f"{DEFAULT_GRACE_PERIOD} s (the defaults).")
    for value in (heartbeat_interval, grace_period):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("The heartbeat interval and the grace period must be whole numbers of seconds.",
                              received=received, fix=example)
    if heartbeat_interval < 1:
        raise ConfigError("The heartbeat interval must be at least 1 second: a worker records that it is alive "
                          "this often while it runs a trial, so that the trial of a worker that died is "
                          "failed and run again.", received=received, fix=example)
    if grace_period <= heartbeat_interval:
        raise ConfigError("The grace period must be longer than the heartbeat interval: a trial is judged dead "
                          "when it has had no heartbeat for the grace period.", received=received, fix=example)


_ENCODE = "write @ as %40, : as %3A, / as %2F, ? as %3F, # as %23 and % as %25"
_PGPASS_WAY = ("or leave the password out of the URL (postgresql://USER@HOST:PORT/DB) and put it in ~/.pgpass "
               "(HOST:PORT:DB:USER:PASSWORD, chmod 600, a colon in the password written \\:) or in PGPASSWORD")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _check_url(storage: str) -> None:
    """Refuse, with what to write instead, a database URL that SQLAlchemy would misread: the scheme
    ``postgres://`` (libpq's and many hosts' spelling, which SQLAlchemy has no dialect for), and a user or
    password holding ``@ : / ? #`` or a ``%`` not percent-encoded (SQLAlchemy then reads part of the
    password as the host or port: "invalid literal for int() with base 10: 'w'", a piece of the password).
    Says nothing of the password itself.

    Raises:
        ConfigError: the URL is one of those.
    """
    scheme, rest = storage.split("://", 1)
    dialect, plus, driver = scheme.partition("+")
    if dialect.lower() == "postgres":
        fixed = "postgresql" + plus + driver + "://" + rest
        raise ConfigError("SQLAlchemy, which opens the study storage, does not know the scheme postgres://; "
                          "it is spelled postgresql://.", received=redact_url(storage),
                          fix=f"Write {redact_url(fixed)} (the same URL, with postgresql://).")
    if "@" not in rest:
        return
    cred = rest.rsplit("@", 1)[0]
    if "?" in cred or "#" in cred:
        return  # an "@" in the query string or fragment: not user info
    user, _, password = cred.partition(":")
    if "@" in cred or "/" in cred or ":" in password or _PERCENT.search(cred):
        which = "password" if password and ("@" in password or "/" in password or ":" in password
                                            or _PERCENT.search(password)) else "user name or password"
        raise ConfigError(f"The storage URL's {which} holds a character that must be percent-encoded "
                          "(one of @ : / ? # %), so the URL cannot be read as USER:PASSWORD@HOST:PORT/DB.",
                          received=redact_url(storage),
                          fix=f"Percent-encode it in the URL ({_ENCODE}; python3 -c \"import urllib.parse, getpass; "
                              "print(urllib.parse.quote(getpass.getpass(), safe=''))\" prints it encoded), "
                              + _PGPASS_WAY + ", not percent-encoded.")


def _no_driver(storage: str, exc: ImportError) -> ConfigError:
    """The error for a URL whose database driver cannot be imported: the one the URL names, and the way out."""
    scheme = storage.split("://", 1)[0]
    dialect, _, driver = scheme.partition("+")
    if dialect.lower() == "postgresql" and driver and driver.lower() != "psycopg":
        return ConfigError(f"The URL names the database driver {driver!r} ({scheme}://), which is not installed; "
                           "this workbench installs psycopg (version 3).", received=redact_url(storage),
                           fix=f"Write postgresql:// (or postgresql+psycopg://) instead of {scheme}://, or install "
                               f"{driver} in this environment.")
    detail = str(exc).rstrip(".") or type(exc).__name__
    return ConfigError(f"The database driver for this storage is not installed: {detail}.",
                       received=redact_url(storage),
                       fix="For PostgreSQL: pip install 'psycopg[binary]' (in requirements.txt).")


def _open_fix(detail: str) -> str:
    """What to do about a database server's refusal, by what it said (``detail``, scrubbed)."""
    if "password authentication failed" in detail or "no password supplied" in detail:
        return ("Check the password: in the URL, percent-encoded (" + _ENCODE + "); " + _PGPASS_WAY
                + ", on every machine.")
    return ("Check the URL (postgresql://USER:PASSWORD@HOST:PORT/DB), that the server runs and that the "
            "database exists.")


def open_storage(
    ws: Workspace,
    storage: str | None = None,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    max_retry: int = MAX_RETRY,
    create: bool = False,
) -> BaseStorage:
    """Open (once per process) the storage named by ``storage``; None is the workspace journal.

    Args:
        ws: the workspace (its journal is the storage None).
        storage: None, a journal path (``journal:PATH`` too) or an SQLAlchemy URL.
        heartbeat_interval, grace_period, max_retry: see ``tlcore.search.heartbeat``.
        create: make the journal or SQLite file (and its folders) when it does not exist; only
            ``create_study`` does. Otherwise such a storage is refused and nothing is created.

    Raises:
        ConfigError: the URL is not a storage this can open (the message says which are), or the path
            names a folder, or an existing file that is not a study journal (left untouched).
        NotFoundError: the journal or SQLite file does not exist and ``create`` is False.
        WorkspaceError: the journal file cannot be created or read, or it is damaged (a line that is
            not a journal record: the message names the line and how to recover).
    """
    check_heartbeat(heartbeat_interval, grace_period)
    key = (str(ws.root), storage, heartbeat_interval, grace_period, max_retry)
    with _OPEN_LOCK:
        if key in _OPEN:
            return _OPEN[key]
        missing = missing_storage_file(ws, storage)
        if missing is not None and not create:
            raise _no_storage_file(missing, storage)
        callback = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        if storage is not None and _is_rdb(storage):
            _check_url(storage)
            try:
                opened: BaseStorage = PatientRDBStorage(
                    storage, engine_kwargs={"pool_pre_ping": True},
                    heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                    heartbeat_stale_trial_callback=callback,
                )
            except ImportError as exc:
                raise _no_driver(storage, exc) from exc
            except Exception as exc:  # sqlalchemy errors: bad URL, server down, auth
                detail = scrub_secrets((str(exc).splitlines() or [type(exc).__name__])[0], storage)
                raise ConfigError(f"Cannot open the study storage: {detail}",
                                  received=redact_url(storage), fix=_open_fix(detail)) from exc
        else:
            if storage is not None and not is_journal_path(storage):
                raise ConfigError("Unknown storage URL.", received=redact_url(storage),
                                  fix="Use postgresql://USER:PASSWORD@HOST/DB, or a path to a journal .log file, "
                                      "or leave it out for the workspace's own storage.")
            path = default_journal_path(ws) if storage is None else journal_file(storage)
            if path.is_dir():
                raise ConfigError("The study storage is a folder, not a journal file.", received=str(path),
                                  fix=f"Give a journal file, e.g. {path / 'studies.log'}, or a postgresql:// URL.")
            if path.exists():
                _refuse_foreign_file(path, storage)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                backend = _CheckedJournalFileBackend(str(path))
            except OSError as exc:
                raise WorkspaceError(f"Cannot create the study journal: {exc.strerror or exc}.",
                                     received=str(path), fix="Make the folder writable, or pick another.") from exc
            try:
                opened = HeartbeatJournalStorage(backend, heartbeat_interval=heartbeat_interval,
                                                 grace_period=grace_period, callback=callback)
            except (KeyError, TypeError, ValueError, IndexError) as exc:  # records that parse but do not replay
                raise _journal_damaged(path, exc) from exc
        _OPEN[key] = opened
        return opened
