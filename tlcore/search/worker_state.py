"""A search worker's state file and folder: what each worker of this machine is doing now.

Every worker keeps one JSON file, ``<workspace>/studies/local/<study>/workers/<id>.json``,
beside its log ``<id>.log`` (``launch_workers`` writes the first state, the worker
rewrites it as it goes; see ``worker``). It is a convenience for progress bars on this
machine; the storage is the source of truth for trials. This module owns the folder
and the file:

- ``workers_dir``, ``state_path``, ``log_path``: where a study's workers keep their
  files; ``new_worker_id``: the id that names them (``host-pid-random``);
- ``WorkerState``: the states a worker passes through (a ``str`` enum, so a member
  compares equal to, and formats as, the word written in the file);
- ``WorkerRecord``: the file as a typed record. ``WorkerRecord.read(path)`` /
  ``from_dict`` accept files of any age: a missing key reads as its default (a missing
  state as ``MISSING_STATE``), a value of the wrong type as None, an unknown key is kept
  (``extra``) and written back, and a state this version does not know stays as its text.
  ``write(path)`` writes the same keys as ever, leaving out those that are None;
- ``list_workers``: this machine's workers of a study (``WorkerInfo``), alive or not, a
  worker whose process is gone without having finished read as ``CRASHED``.

Keys: ``worker_id``, ``pid``, ``host``, ``dataset`` (the study's: what a dataset's removal
checks, ``tlcore.dataset_users``), ``root`` (the workspace it works in, ``list_workers``),
``started`` and ``updated`` (seconds since the epoch),
``state``, ``trials_done``; while a trial trains ``trial``, ``params``,
``epoch`` / ``epochs`` (1-based, rung epochs included), ``batch`` / ``batches``,
``rung`` and ``train_fraction`` (the data subset of a successive-halving rung),
``loss`` / ``accuracy`` (of the last batch) and ``status`` (a few words: "preparing",
"training", "saving the trial's files", ...); when it stops ``reason`` and
``finished`` (seconds since the epoch); a worker that crashed keeps the ``trial`` it was running,
and ``cause`` says ``"storage"`` when what ended it was the study database not answering
(``STORAGE_LOST``: nothing to fix in the worker; start workers again once the database answers).

Writer: ``worker.run_worker`` (through ``WorkerRecord.update`` and ``write``) and
``local.launch_workers``. Readers: ``list_workers`` (``WorkerInfo.record``; used by
``local.stop_workers``, ``study.delete_study``, the CLI's ``search status`` and the
Search page, through ``tlui.search_widgets``).

Example:

>>> rec = WorkerRecord.from_dict({"worker_id": "w1", "pid": 42, "state": "training", "epoch": 2, "epochs": 4})
>>> rec.state is WorkerState.TRAINING, rec.progress
(True, 0.25)
>>> WorkerRecord.from_dict(rec.to_dict()) == rec
True
"""

from __future__ import annotations

import enum
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tlcore._fsutil import atomic_write_json, read_json
from tlcore.background import pid_alive, works_elsewhere
from tlcore.search.storage import study_local_dir
from tlcore.workspace import Workspace

__all__ = ["WorkerState", "WorkerRecord", "WorkerInfo", "list_workers", "workers_dir", "state_path", "log_path",
           "new_worker_id", "MISSING_STATE", "TRAINING_STATUS", "GAVE_UP"]

MISSING_STATE = "?"  # the state of a file that names none
TRAINING_STATUS = "training"  # ``status`` while batches run: says nothing the epoch and batch do not
GAVE_UP = "trials in a row failed with an error"  # in the ``reason`` of a worker that gave up on errors


def workers_dir(ws: Workspace, study: str) -> Path:
    """``<workspace>/studies/local/<study>/workers``: this machine's worker state files and logs of ``study``."""
    return study_local_dir(ws, study) / "workers"


def state_path(ws: Workspace, study: str, worker_id: str) -> Path:
    """The state file of worker ``worker_id`` of ``study``: ``workers/<id>.json``."""
    return workers_dir(ws, study) / f"{worker_id}.json"


def log_path(ws: Workspace, study: str, worker_id: str) -> Path:
    """The log of worker ``worker_id`` of ``study`` (its output, when ``launch_workers`` started it):
    ``workers/<id>.log``."""
    return workers_dir(ws, study) / f"{worker_id}.log"


def new_worker_id() -> str:
    """A new worker's id: ``<host>-<pid>-<4 hex digits>`` (the host cut to 24 characters)."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{os.urandom(2).hex()}"


class WorkerState(enum.StrEnum):
    """Where a worker is. A worker writes ``CRASHED`` when an error ends it; ``list_workers``
    also reads it for a worker of this machine whose process is gone although its file does not say
    ``FINISHED`` (killed, out of memory)."""

    STARTING = "starting"  # launched; loading TensorFlow, opening the study
    SCOUTING = "scouting"  # running the study's scout before its first trial (``seeding``)
    WAITING = "waiting"  # the budget is taken by running trials of other workers
    TRAINING = "training"  # running a trial (``trial`` says which)
    BETWEEN_TRIALS = "between trials"  # a trial ended; about to look for the next
    FINISHED = "finished"  # exited as planned (budget met, stopped, time limit, ...); ``reason`` says why
    CRASHED = "crashed"  # ended without finishing: an error, killed, out of memory

    @classmethod
    def parse(cls, value: Any) -> WorkerState | str:
        """The member named by ``value`` (its word, as in the file); an unknown word stays as its text
        (a newer worker's state shows as written), a missing one is ``MISSING_STATE``."""
        if value is None:
            return MISSING_STATE
        text = str(value)
        try:
            return cls(text)
        except ValueError:
            return text


def _int(v: Any) -> int | None:
    """``v`` as an int (an int, a finite float, or digits as text, as ``int()`` reads them), else None.
    A bool is not a number here."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return None
    return None


def _float(v: Any) -> float | None:
    """``v`` as a finite float, or None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _str(v: Any) -> str | None:
    """``v`` as text, or None."""
    return None if v is None else str(v)


# How each key of the file is read: to its field's type, or None (see ``_int``, ``_float``).
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "worker_id": lambda v: "" if v is None else str(v), "pid": _int,
    "host": lambda v: "" if v is None else str(v), "started": _float, "updated": _float,
    "state": WorkerState.parse, "trials_done": lambda v: _int(v) or 0, "trial": _int,
    "params": lambda v: dict(v) if isinstance(v, dict) else None, "epoch": _int, "epochs": _int,
    "batch": _int, "batches": _int, "rung": _int, "train_fraction": _float, "loss": _float,
    "accuracy": _float, "status": _str, "reason": _str, "finished": _float, "dataset": _str, "root": _str,
    "cause": _str,
}

STORAGE_LOST = "storage"  # ``cause`` of a worker ended by its study database not answering (past its patience)


@dataclass
class WorkerRecord:
    """One worker's state file (see the module docstring for each key).

    Fields that are None are not in the file. ``extra`` holds keys this version does not
    know, so reading and writing a newer file keeps them.
    """

    worker_id: str = ""
    pid: int | None = None
    host: str = ""
    dataset: str | None = None
    root: str | None = None
    started: float | None = None
    updated: float | None = None
    state: WorkerState | str = WorkerState.STARTING
    trials_done: int = 0
    trial: int | None = None
    params: dict[str, Any] | None = None
    epoch: int | None = None
    epochs: int | None = None
    batch: int | None = None
    batches: int | None = None
    rung: int | None = None
    train_fraction: float | None = None
    loss: float | None = None
    accuracy: float | None = None
    status: str | None = None
    reason: str | None = None
    finished: float | None = None
    cause: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerRecord:
        """The record of a state file's contents, whatever its age (see the module docstring)."""
        known = {k: conv(data[k]) for k, conv in _FIELDS.items() if k in data}
        known.setdefault("state", MISSING_STATE)  # a file that names no state does not say "starting"
        extra = {k: v for k, v in data.items() if k not in _FIELDS}
        return cls(**known, extra=extra)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> WorkerRecord | None:
        """The record in the state file ``path``; None when it is missing or not a JSON object.

        Raises:
            WorkspaceError: the file is not valid JSON.
        """
        data = read_json(path, default=None)
        return cls.from_dict(data) if isinstance(data, dict) else None

    # ------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """The file's contents: the known fields that are not None (the state as its word), and ``extra``."""
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = str(v) if f.name == "state" else v
        return out

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the record to ``path`` atomically (readers never see half a file)."""
        atomic_write_json(path, self.to_dict())

    def update(self, **changes: Any) -> None:
        """Set the fields named in ``changes`` (an unknown name is a ``TypeError``, not a new key)."""
        for k, v in changes.items():
            if k not in _FIELDS:
                raise TypeError(f"WorkerRecord has no field {k!r}")
            setattr(self, k, v)

    # ------------------------------------------------------------ reading it
    @property
    def progress(self) -> float | None:
        """The fraction of the current trial done (epochs and batches), or None before its first epoch."""
        if not self.epochs or not self.epoch:
            return None
        within = (self.batch / self.batches) if self.batches and self.batch else 0.0
        return max(0.0, min(1.0, ((self.epoch - 1) + within) / self.epochs))


@dataclass
class WorkerInfo:
    """One of this machine's workers, as ``list_workers`` found it.

    ``state`` is its file's state, or ``WorkerState.CRASHED`` when its process is gone without
    having finished; ``record`` is its state file (``WorkerRecord``) and ``data`` the same record
    as a plain dict (``record.to_dict()``, the keys of the file).
    """

    worker_id: str
    pid: int
    host: str
    state: WorkerState | str
    alive: bool
    trial: int | None
    data: dict[str, Any]
    log_path: Path
    record: WorkerRecord

    @property
    def progress(self) -> float | None:
        """Fraction of the current trial done (epochs and batches), or None."""
        return self.record.progress

    @property
    def lost_storage(self) -> bool:
        """It ended because the study database stopped answering (for longer than its patience), not
        through a fault of its own (``STORAGE_LOST``)."""
        return self.state == WorkerState.CRASHED and self.record.cause == STORAGE_LOST

    @property
    def state_text(self) -> str:
        """Its state in a word or three, for tables: the state's word, "lost the database" for ``lost_storage``."""
        return "lost the database" if self.lost_storage else str(self.state)


def list_workers(ws: Workspace, name: str) -> list[WorkerInfo]:
    """This machine's workers of study ``name`` (running or not), newest first.

    A record of a worker that was running in another workspace (``root``: this one was copied or moved
    from there while it ran, ``background.works_elsewhere``) is left out: its process is not this
    workspace's to show, wait for or stop (stopping a copy's study had signalled the original's workers),
    and its trial, if it is in this workspace's storage, is failed and retried once its heartbeat is missed.
    Such a record that says the worker ended stays, as history."""
    wdir = workers_dir(ws, name)
    out = []
    here = socket.gethostname()
    for path in sorted(wdir.glob("*.json")) if wdir.is_dir() else []:
        rec = WorkerRecord.read(path)
        if rec is None or rec.pid is None:
            continue
        if rec.state not in (WorkerState.FINISHED, WorkerState.CRASHED) and works_elsewhere(rec.root, ws.root):
            continue
        same_host = rec.host == here
        # a file that says it ended is not alive, whatever its pid: a crashed worker's process may outlive its
        # last write for a moment (or for good: a worker run in the caller's own process)
        alive = same_host and rec.state not in (WorkerState.FINISHED, WorkerState.CRASHED) and pid_alive(rec.pid)
        state = rec.state
        if not alive and state != WorkerState.FINISHED and same_host:
            state = WorkerState.CRASHED  # gone without saying it finished: killed, out of memory, or a bug
        out.append(WorkerInfo(worker_id=rec.worker_id or path.stem, pid=rec.pid, host=rec.host, state=state,
                              alive=alive, trial=rec.trial, data=rec.to_dict(), log_path=path.with_suffix(".log"),
                              record=rec))
    out.sort(key=lambda w: w.record.started or 0, reverse=True)
    return out
