"""Local workers: start them in the background, stop them.

Workers are separate processes (``python -m tlcore worker ...``) in their own
session, so they outlive the page or terminal that started them and a restarted
Streamlit server finds them again through their state files and logs in
``<workspace>/studies/local/<study>/workers/``.

Entry points: ``launch_workers`` (used by ``search run`` and the Search page) and
``stop_workers`` (a stop request in the storage, which reaches workers on every
machine, plus SIGTERM to the local ones). A launched worker inherits this process's
environment (so ``KERAS_BACKEND``, ``CUDA_VISIBLE_DEVICES``,
``XLA_PYTHON_CLIENT_PREALLOCATE`` set before ``search run`` or the dashboard apply
to it) and gets the storage URL through ``$TLCORE_STORAGE``. Worker indexes (the
sampler seed offset) count this machine's state files, so they start at 0 on every
machine; workers on other machines are started by hand with ``--worker-index``.

The workers folder, the state files and finding the workers again (``list_workers``)
are ``tlcore.search.worker_state``'s; starting a background process, and telling
whether it still runs, ``tlcore.background``'s.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from tlcore import background
from tlcore.background import pid_alive
from tlcore.errors import ConfigError, WorkspaceError
from tlcore.search import study
from tlcore.search.heartbeat import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL
from tlcore.search.worker_state import (
    WorkerRecord,
    WorkerState,
    list_workers,
    log_path,
    new_worker_id,
    state_path,
    workers_dir,
)
from tlcore.workspace import Workspace

__all__ = ["launch_workers", "stop_workers", "CRASHED", "STORAGE_ENV"]

CRASHED = WorkerState.CRASHED  # a worker's state when it exited without finishing (older name)
STORAGE_ENV = "TLCORE_STORAGE"  # how a launched worker gets its storage URL (never on its command line)


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
    warn: Callable[[str], None] | None = None,
) -> list[str]:
    """Start ``n`` background workers for study ``name``; returns their ids.

    Raises:
        ConfigError: ``n`` is not 1-64, or the study would run no trial (stopped, budget met, time
            limit passed: ``study.check_runnable``, whose message says how to continue).
        NotFoundError: no such study. WorkspaceError: the workers folder cannot be made.

    ``warn``: gets the line saying the study's dataset changed in this workspace, the one that created
    the study, since the study recorded it (``study.check_dataset_here``: the workers start, on the
    changed data); without it, that is a ``study.DatasetChangedWarning``. A workspace whose copy of the
    dataset differs from the study's, elsewhere, is refused (``DatasetError``) before any worker starts.

    Each writes its log to ``workers/<id>.log`` and its state to ``workers/<id>.json``.
    The storage URL reaches a worker through its environment (``$TLCORE_STORAGE``), not
    its command line, which any user of the machine can read (``ps``) and which may hold
    a database password.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 64:
        raise ConfigError("The number of workers must be between 1 and 64.", received=n,
                          fix="Start with one worker per GPU, or 1-2 on a CPU.")
    study.check_runnable(ws, name, storage)  # it exists, is ours and has trials to run: else say so here,
    # rather than start workers that exit at once (a stopped or finished study), or fail in n background logs
    # not registered here: every trial a worker took would fail; in each record from the start (dataset_users).
    # Another copy than the study's: refused; this workspace's own changed data: noted in the study, ``warn``ed
    dataset = study.check_dataset_here(ws, name, storage, warn=warn)
    wdir = workers_dir(ws, name)
    try:
        wdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"Cannot create the workers folder: {exc.strerror or exc}.", received=str(wdir),
                             fix="Make the workspace writable.") from exc
    if first_index is None:
        first_index = len(list(wdir.glob("*.json")))
    child_env = background.child_env(env)
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
        proc = background.spawn(cmd, log_path(ws, name, wid), cwd=ws.root, env=child_env)
        now = time.time()
        WorkerRecord(worker_id=wid, pid=proc.pid, host=socket.gethostname(), dataset=dataset, root=str(ws.root), started=now,
                     updated=now, state=WorkerState.STARTING, trials_done=0).write(state_path(ws, name, wid))
        ids.append(wid)
    return ids


def stop_workers(ws: Workspace, name: str, storage: str | None = None, *, wait: float = 0.0) -> int:
    """Request a stop in the storage (every worker, any machine) and signal this machine's
    workers; returns how many local workers were signalled. ``wait`` seconds for them to exit."""
    if not (isinstance(wait, (int, float)) and 0 <= wait < math.inf):
        raise ConfigError("The time to wait for the workers must be a number of seconds, 0 or more.",
                          received=f"wait={wait!r}", fix="Give 0 not to wait, or the seconds to wait (e.g. 60).")
    study.request_stop(ws, name, storage)
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
