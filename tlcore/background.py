"""Background tlcore processes on this machine: search workers, scouts and training jobs.

``spawn`` starts a ``python -m tlcore ...`` command the way every background run
starts: in its own session (so it outlives the page or terminal that started it),
stdin closed, stdout and stderr appended to a log file, with an environment from
``child_env`` (this process's environment, unbuffered output, and, from a source
checkout, this copy of tlcore first on ``PYTHONPATH``). The ``Popen`` is kept (``track_child``) and
a daemon thread of the starting process reaps it when it ends (``reap``: no zombies, whether or
not a page is looking); ``pid_alive`` reaps too, and also answers for a
process started by another server or terminal, from its pid alone, and says no to
a pid reused by something that is not tlcore. ``log_tail`` reads the end of a log.
``launch_overdue`` says when a process recorded as launched, but still without a pid, never
started: its launcher (the dashboard's server, a terminal) was killed in between.

Users: ``tlcore.search.local`` (search workers), ``tlcore.search.worker_state``
(``list_workers``: which workers still run), ``tlcore.scout`` (``launch_scout``,
``scout_status``) and ``tlcore.train_jobs`` (``launch_training``, ``job_status``). The
processes' own state files are their owners' business.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tlcore.appfiles import PACKAGE_ROOT

__all__ = ["spawn", "child_env", "track_child", "reap", "pid_alive", "log_tail", "launch_overdue", "LAUNCH_GRACE_S"]

LAUNCH_GRACE_S = 120.0
"""How long a job recorded as launched may stay without a process number: a launch takes a second or
two (the launcher writes the pid at once, or the process its own), so past this its launcher died first."""

_INSTALLED_INTO = ("site-packages", "dist-packages")  # the folders pip and Debian install packages into
_CHILDREN: dict[int, subprocess.Popen] = {}  # reaped by reap() so finished children do not linger as zombies
_REAP_EVERY = 2.0  # seconds between two looks of the reaper thread
_reaper: threading.Thread | None = None
_reaper_lock = threading.Lock()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a background tlcore process: this process's, then ``extra``, unbuffered
    output, and, for a source checkout, the folder holding this tlcore package first on
    ``PYTHONPATH`` (the child starts in the workspace, where ``-m tlcore`` would not find it).
    An installed package is found by the interpreter anyway; its site-packages folder is not
    put there, where it would come before the standard library."""
    env = {**os.environ, **(extra or {}), "PYTHONUNBUFFERED": "1"}
    if PACKAGE_ROOT.name not in _INSTALLED_INTO:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


def spawn(cmd: Sequence[str], log_path: str | os.PathLike[str], *, cwd: str | os.PathLike[str],
          env: Mapping[str, str]) -> subprocess.Popen:
    """Start ``cmd`` in its own session with its output appended to ``log_path``; tracked (``track_child``)."""
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(cwd), env=env, start_new_session=True)
    track_child(proc)
    return proc


def track_child(proc: subprocess.Popen) -> None:
    """Keep a background process started here so that it is reaped when it ends (no zombies):
    a daemon thread, started with the first child, calls ``reap`` every two seconds, whether or
    not any page is still looking at the process; ``pid_alive`` reaps too."""
    global _reaper
    _CHILDREN[proc.pid] = proc
    with _reaper_lock:
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap_forever, name="tlcore-reaper", daemon=True)
            _reaper.start()


def reap() -> list[int]:
    """Collect the exit status of every finished process started here; returns their pids."""
    done = []
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)
            done.append(pid)
    return done


def _reap_forever() -> None:
    while True:
        time.sleep(_REAP_EVERY)
        try:
            reap()
        except Exception:  # noqa: BLE001 - the reaper must outlive any odd child
            pass


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


def works_elsewhere(recorded_root: Any, root: str | os.PathLike[str]) -> str | None:
    """The other workspace a record's process works in, or None when it works in ``root`` (or the record
    names no root: written before roots were recorded).

    A workspace copied or moved while a job, worker, scout or audit ran holds that job's record, pid and
    all; its process still works in the old folder. Such a record is never this workspace's to show as
    running, to wait for, or to stop: stopping the copy's job had killed the original's."""
    if not isinstance(recorded_root, str) or not recorded_root:
        return None
    return None if Path(recorded_root) == Path(root) else recorded_root


def log_tail(path: str | os.PathLike[str], lines: int = 20, *, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a log ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def launch_overdue(launched: object, record: str | os.PathLike[str]) -> bool:
    """Whether a job recorded as launched at ``launched`` (seconds since the epoch; when that is not a
    number, the time of its ``record`` file or folder) and still without a pid will never start: over
    ``LAUNCH_GRACE_S`` ago."""
    if not isinstance(launched, (int, float)) or isinstance(launched, bool):
        try:
            launched = os.stat(record).st_mtime
        except OSError:
            return False
    return time.time() - float(launched) > LAUNCH_GRACE_S
