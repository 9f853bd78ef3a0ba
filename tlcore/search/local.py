"""Local workers: start them in the background, find them again, stop them.

Workers are separate processes (``python -m tlcore worker ...``) in their own
session, so they outlive the page or terminal that started them and a restarted
Streamlit server finds them again through their state files and logs in
``<workspace>/studies/local/<study>/workers/``.

Entry points: ``launch_workers`` (used by ``search run`` and the Search page),
``list_workers`` (this machine's workers, alive or not, from their state files),
``stop_workers`` (a stop request in the storage, which reaches workers on every
machine, plus SIGTERM to the local ones), ``log_tail``. A launched worker inherits
this process's environment (so ``KERAS_BACKEND``, ``CUDA_VISIBLE_DEVICES``,
``XLA_PYTHON_CLIENT_PREALLOCATE`` set before ``search run`` or the dashboard apply
to it) and gets the storage URL through ``$TLCORE_STORAGE``. Worker indexes (the
sampler seed offset) count this machine's state files, so they start at 0 on every
machine; workers on other machines are started by hand with ``--worker-index``.
The state files' shape and states are ``tlcore.search.worker_state``'s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.errors import ConfigError, WorkspaceError
from tlcore.search.storage import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL, study_local_dir
from tlcore.search.worker_state import WorkerRecord, WorkerState
from tlcore.workspace import PACKAGE_ROOT, Workspace

__all__ = ["launch_workers", "list_workers", "WorkerInfo", "stop_workers", "log_tail", "CRASHED", "STORAGE_ENV",
           "pid_alive", "track_child"]

CRASHED = WorkerState.CRASHED  # a worker's state when it exited without finishing (older name)
STORAGE_ENV = "TLCORE_STORAGE"  # how a launched worker gets its storage URL (never on its command line)

_CHILDREN: dict[int, subprocess.Popen] = {}  # reaped here so finished workers do not linger as zombies


def _workers_dir(ws: Workspace, name: str) -> Path:
    return study_local_dir(ws, name) / "workers"


def launch_workers(
    ws: Workspace,
    name: str,
    n: int,
    storage: str | None = None,
    *,
    artifacts: str | None = None,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    first_index: int | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Start ``n`` background workers for study ``name``; returns their ids.

    Each writes its log to ``workers/<id>.log`` and its state to ``workers/<id>.json``.
    The storage URL reaches a worker through its environment (``$TLCORE_STORAGE``), not
    its command line, which any user of the machine can read (``ps``) and which may hold
    a database password.
    """
    from tlcore.search.study import load_spec
    from tlcore.search.worker import new_worker_id

    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 64:
        raise ConfigError("The number of workers must be between 1 and 64.", received=n,
                          fix="Start with one worker per GPU, or 1-2 on a CPU.")
    load_spec(ws, name, storage)  # the study exists and is ours: fail here, not in n background logs
    wdir = _workers_dir(ws, name)
    try:
        wdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"Cannot create the workers folder: {exc.strerror or exc}.", received=str(wdir),
                             fix="Make the workspace writable.") from exc
    if first_index is None:
        first_index = len(list(wdir.glob("*.json")))
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), child_env.get("PYTHONPATH")) if p)
    if storage:
        child_env[STORAGE_ENV] = storage
    else:  # the workspace journal, whatever this process's environment says
        child_env.pop(STORAGE_ENV, None)
    ids = []
    for i in range(n):
        wid = new_worker_id()
        cmd = [sys.executable, "-m", "tlcore", "--workspace", str(ws.root), "worker", "--study", name,
               "--worker-id", wid, "--worker-index", str(first_index + i),
               "--heartbeat-interval", str(heartbeat_interval), "--grace-period", str(grace_period)]
        if artifacts:
            cmd += ["--artifacts", str(artifacts)]
        log_path = wdir / f"{wid}.log"
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=str(ws.root), env=child_env, start_new_session=True)
        track_child(proc)
        now = time.time()
        WorkerRecord(worker_id=wid, pid=proc.pid, host=socket.gethostname(), started=now, updated=now,
                     state=WorkerState.STARTING, trials_done=0).write(wdir / f"{wid}.json")
        ids.append(wid)
    return ids


def track_child(proc: subprocess.Popen) -> None:
    """Keep a background process started here so ``pid_alive`` reaps it when it ends (no zombies)."""
    _CHILDREN[proc.pid] = proc


def pid_alive(pid: int) -> bool:
    """Whether the tlcore process ``pid`` (a worker, a scout) is still running on this machine."""
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie, or the pid reused by something that is not a worker
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return b"tlcore" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal check


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


def list_workers(ws: Workspace, name: str) -> list[WorkerInfo]:
    """This machine's workers of study ``name`` (running or not), newest first."""
    wdir = _workers_dir(ws, name)
    out = []
    here = socket.gethostname()
    for path in sorted(wdir.glob("*.json")) if wdir.is_dir() else []:
        rec = WorkerRecord.read(path)
        if rec is None or rec.pid is None:
            continue
        same_host = rec.host == here
        alive = same_host and rec.state != WorkerState.FINISHED and pid_alive(rec.pid)
        state = rec.state
        if not alive and state != WorkerState.FINISHED and same_host:
            state = WorkerState.CRASHED  # gone without saying it finished: killed, out of memory, or a bug
        out.append(WorkerInfo(worker_id=rec.worker_id or path.stem, pid=rec.pid, host=rec.host, state=state,
                              alive=alive, trial=rec.trial, data=rec.to_dict(), log_path=path.with_suffix(".log"),
                              record=rec))
    out.sort(key=lambda w: w.record.started or 0, reverse=True)
    return out


def log_tail(path: str | os.PathLike[str], lines: int = 20, *, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a worker log ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_workers(ws: Workspace, name: str, storage: str | None = None, *, wait: float = 0.0) -> int:
    """Request a stop in the storage (every worker, any machine) and signal this machine's
    workers; returns how many local workers were signalled. ``wait`` seconds for them to exit."""
    from tlcore.search.study import request_stop

    request_stop(ws, name, storage)
    alive = [w for w in list_workers(ws, name) if w.alive]
    for w in alive:
        try:
            os.kill(w.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + wait
    while wait and time.time() < deadline and any(pid_alive(w.pid) for w in alive):
        time.sleep(0.2)
    return len(alive)
