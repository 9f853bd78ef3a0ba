"""Where studies live: Optuna storages with heartbeats, and the artifact store.

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

Both kinds get the same heartbeat: a worker records one every
``heartbeat_interval`` seconds while it runs a trial; a running trial without one
for ``grace_period`` seconds belongs to a dead worker, is marked failed and is
queued again with the same parameters (at most ``max_retry`` times), by whichever
worker looks next. Optuna's RDB storage does this natively; the journal storage
gets it here, storing the heartbeat as a trial system attribute.

Trial artifacts (model, history, metrics) go to an Optuna artifact store: a
folder beside the journal by default (``<workspace>/studies/artifacts``), or any
folder all workers can reach (``--artifacts``). Files are written atomically.

Entry points: ``open_storage(ws, storage)`` (once per process and storage),
``artifact_store(ws, artifacts)``, ``describe_storage`` (for people: the journal's
path or the URL without its password), ``check_storage_location`` (pages check a
typed journal path against the data roots) and ``scrub_secrets`` (passwords out of
messages), ``HeartbeatThread``, ``study_local_dir``. The storage string comes from
the CLI's ``--storage`` or ``$TLCORE_STORAGE`` (``tlcore.cli._search``), or the
Results page's storage field; ``study``, ``worker``, ``local`` and ``results`` pass
it here.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import unquote

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from tlcore._fsutil import atomic_open
from tlcore.errors import ConfigError, PathNotAllowedError, WorkspaceError
from tlcore.workspace import Workspace

__all__ = [
    "open_storage", "describe_storage", "check_storage_location", "scrub_secrets", "default_journal_path",
    "study_local_dir", "artifact_store", "AtomicArtifactStore", "HeartbeatThread",
    "DEFAULT_HEARTBEAT_INTERVAL", "DEFAULT_GRACE_PERIOD", "MAX_RETRY",
]

DEFAULT_HEARTBEAT_INTERVAL = 10
DEFAULT_GRACE_PERIOD = 60
MAX_RETRY = 2
HEARTBEAT_ATTR = "tl:heartbeat"
_RDB_PREFIXES = ("postgresql", "postgres", "mysql", "sqlite", "oracle", "mssql")


def default_journal_path(ws: Workspace) -> Path:
    return ws.studies_dir / "journal.log"


def study_local_dir(ws: Workspace, name: str) -> Path:
    """This machine's files of a study: worker states, logs, downloaded trial runs."""
    return ws.studies_dir / "local" / name


def _is_rdb(url: str) -> bool:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    return "://" in url and scheme in _RDB_PREFIXES


def describe_storage(ws: Workspace, storage: str | None) -> str:
    """The storage for people to read: the journal's path, or the URL without its password."""
    if storage is None:
        return str(default_journal_path(ws))
    if storage.startswith("journal:"):
        return storage[len("journal:"):]
    return _redact(storage)


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


def check_storage_location(ws: Workspace, storage: str | None) -> str | None:
    """Refuse a storage that would read or write a file outside the data roots; else return it.

    Pages call this before ``open_storage`` with a storage a visitor typed: opening a
    journal creates the file (and its folders), so an unchecked path would let a page
    create files anywhere the server may write. Database servers and the workspace's own
    journal (None) pass. The command line does not need it: its user owns the shell.

    Raises:
        PathNotAllowedError: the journal or SQLite file lies outside the data roots.
    """
    path = None if storage is None else _storage_file(storage)
    if path is None or ws.is_within_data_roots(path):
        return storage
    real = os.path.realpath(Path(path).expanduser())
    raise PathNotAllowedError(
        "The study storage file is outside the allowed data roots.",
        received=f"{path} (resolves to {real})",
        fix="Put the journal under one of: " + ", ".join(str(r) for r in ws.data_roots)
            + "; or allow its folder with 'python -m tlcore datasets allow-root PATH'.",
    )


class _HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus heartbeats kept as trial system attributes."""

    def __init__(self, backend: JournalFileBackend, *, heartbeat_interval: int, grace_period: int,
                 callback: Callable[[optuna.Study, FrozenTrial], None] | None):
        super().__init__(backend)
        self._hb_interval = heartbeat_interval
        self._grace = grace_period
        self._stale_callback = callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = t.datetime_start.timestamp() if t.datetime_start else now
            last = max(float(t.system_attrs.get(HEARTBEAT_ATTR, 0.0)), started)
            if now - last > self._grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._hb_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback


_OPEN: dict[tuple[Any, ...], BaseStorage] = {}
_OPEN_LOCK = threading.Lock()


def open_storage(
    ws: Workspace,
    storage: str | None = None,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    max_retry: int = MAX_RETRY,
) -> BaseStorage:
    """Open (once per process) the storage named by ``storage``; None is the workspace journal.

    Raises:
        ConfigError: the URL is not a storage this can open (the message says which are).
        WorkspaceError: the journal file cannot be created.
    """
    if heartbeat_interval < 1 or grace_period <= heartbeat_interval:
        raise ConfigError("The grace period must be longer than the heartbeat interval.",
                          received=f"heartbeat_interval={heartbeat_interval}, grace_period={grace_period}",
                          fix="For example heartbeat every 10 s, grace period 60 s.")
    key = (str(ws.root), storage, heartbeat_interval, grace_period, max_retry)
    with _OPEN_LOCK:
        if key in _OPEN:
            return _OPEN[key]
        callback = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        if storage is not None and _is_rdb(storage):
            try:
                opened: BaseStorage = RDBStorage(
                    storage, engine_kwargs={"pool_pre_ping": True},
                    heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                    heartbeat_stale_trial_callback=callback,
                )
            except ImportError as exc:
                raise ConfigError(f"The database driver for this storage is not installed: {exc}.",
                                  received=_redact(storage),
                                  fix="For PostgreSQL: pip install 'psycopg[binary]' (in requirements.txt).") from exc
            except Exception as exc:  # sqlalchemy errors: bad URL, server down, auth
                detail = scrub_secrets((str(exc).splitlines() or [type(exc).__name__])[0], storage)
                raise ConfigError(f"Cannot open the study storage: {detail}",
                                  received=_redact(storage),
                                  fix="Check the URL (postgresql://USER:PASSWORD@HOST:PORT/DB), that the "
                                      "server runs and that the database exists.") from exc
        else:
            if storage is not None and "://" in storage:
                raise ConfigError("Unknown storage URL.", received=_redact(storage),
                                  fix="Use postgresql://USER:PASSWORD@HOST/DB, or a path to a journal .log file, "
                                      "or leave it out for the workspace's own storage.")
            path = default_journal_path(ws) if storage is None else Path(storage.removeprefix("journal:")).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                backend = JournalFileBackend(str(path))
            except OSError as exc:
                raise WorkspaceError(f"Cannot create the study journal: {exc.strerror or exc}.",
                                     received=str(path), fix="Make the folder writable, or pick another.") from exc
            opened = _HeartbeatJournalStorage(backend, heartbeat_interval=heartbeat_interval,
                                              grace_period=grace_period, callback=callback)
        _OPEN[key] = opened
        return opened


_PASSWORD_PARAM = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#]*)", re.IGNORECASE)


def _credentials(url: str) -> tuple[str, str, str, str, str] | None:
    """``scheme://user:password@host…`` as (scheme, user, ":" or "", password, host); None without user info."""
    if "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    if "@" not in rest:
        return None
    cred, host = rest.rsplit("@", 1)
    user, sep, password = cred.partition(":")
    return scheme, user, sep, password, host


def _redact(url: str) -> str:
    """The URL without its password (``user:***@host``, ``?password=***``), for messages and pages."""
    out = url
    parts = _credentials(url)
    if parts:
        scheme, user, sep, _, host = parts
        out = f"{scheme}://{user}{':***' if sep else ''}@{host}"
    return _PASSWORD_PARAM.sub(r"\1***", out)


def _passwords(url: str) -> list[str]:
    """The secrets in ``url``, as written and URL-decoded, longest first."""
    parts = _credentials(url)
    found = [parts[3]] if parts and parts[3] else []
    found += [m.group(2) for m in _PASSWORD_PARAM.finditer(url) if m.group(2)]
    found += [unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def scrub_secrets(text: str, url: str | None) -> str:
    """``text`` (an error message, a log line) with every password of ``url`` replaced by ``***``."""
    for secret in _passwords(url or ""):
        text = text.replace(secret, "***")
    return text


class AtomicArtifactStore:
    """Optuna's file-system artifact store, but each file is written atomically.

    Optuna's own ``FileSystemArtifactStore`` writes in place, so a killed worker
    could leave half a model behind; here the bytes go to a temporary file that is
    renamed into place when complete.
    """

    def __init__(self, base_path: str | os.PathLike[str]):
        self._base = Path(base_path)
        self._base.mkdir(parents=True, exist_ok=True)

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
        with atomic_open(self._path(artifact_id), "wb") as f:
            while chunk := content_body.read(1 << 20):
                f.write(chunk)

    def remove(self, artifact_id: str) -> None:
        try:
            self._path(artifact_id).unlink()
        except FileNotFoundError as exc:
            raise optuna.artifacts.exceptions.ArtifactNotFound(f"artifact {artifact_id} not found") from exc


def artifact_store(ws: Workspace, artifacts: str | os.PathLike[str] | None = None) -> AtomicArtifactStore:
    """The artifact store: ``artifacts`` if given, else ``<workspace>/studies/artifacts``."""
    return AtomicArtifactStore(Path(artifacts) if artifacts else ws.studies_dir / "artifacts")


class HeartbeatThread:
    """Records a trial's heartbeat every interval until stopped (a context manager)."""

    def __init__(self, storage: BaseStorage, trial_id: int):
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self, interval: float) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
            except Exception:  # a transient storage error must not kill training; the next beat retries
                pass
            if self._stop.wait(interval):
                return

    def __enter__(self) -> HeartbeatThread:
        if isinstance(self._storage, BaseHeartbeat) and self._storage.get_heartbeat_interval():
            interval = float(self._storage.get_heartbeat_interval() or DEFAULT_HEARTBEAT_INTERVAL)
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True,
                                            name=f"heartbeat-{self._trial_id}")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
