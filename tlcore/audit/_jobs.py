"""An audit as a background job: ``python -m tlcore datasets audit NAME`` in its own process.

The Datasets page never audits in its own process (Streamlit reruns its script on every
click). ``launch_audit`` starts the CLI in the background (``tlcore.background.spawn``) and
everything about the job lives in its folder, so a reload, another browser or a restarted
server finds it again::

    <workspace>/datasets/<name>/audits/jobs/<job id>/
      spec.yaml      the AuditSpec
      status.json    {"state", "started", "ended", "done", "total", "text", "audit", "error", "pid", "file"},
                     written atomically by the audit process as it goes (``file``: the status
                     file it writes, which a copy or a move of the workspace made while it ran
                     does not hold: the job reads there as failed, never as running)
      log.txt        the process's output

States: ``queued`` (launched; the process starts), ``running``, ``finished`` (``audit`` is
the id of the saved result: ``load_audit(ws, name, status["audit"])``), ``failed``
(``error`` says why: the audit's own message, or the end of the log when the process
died without one).

Example:

>>> job = launch_audit(ws, "fmnist", AuditSpec(image_size=96))
>>> audit_status(ws, "fmnist", job)["state"]      # "queued", "running", then "finished"
>>> load_audit(ws, "fmnist", audit_status(ws, "fmnist", job)["audit"])
>>> audit_jobs(ws, "fmnist")                       # every job, newest first, after a reload too
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from tlcore._fsutil import atomic_write_json, atomic_write_text, read_json
from tlcore.audit._run import AuditSpec, audits_dir
from tlcore.errors import NotFoundError, TLCoreError
from tlcore.workspace import Workspace

__all__ = ["launch_audit", "audit_status", "audit_jobs", "StatusWriter", "JOB_STATES"]

JOB_STATES = ("queued", "running", "finished", "failed")
WRITE_EVERY_S = 0.5


def _jobs_dir(ws: Workspace, name: str) -> Path:
    return audits_dir(ws, name) / "jobs"


def launch_audit(ws: Workspace, name: str, spec: AuditSpec | None = None) -> str:
    """Start an audit of ``name`` in the background; returns the job id (``audit_status`` follows it)."""
    from tlcore import background

    ws.get_dataset(name)
    spec = spec or AuditSpec()
    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    folder = _jobs_dir(ws, name) / job_id
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "spec.yaml", spec.to_yaml())
    status = folder / "status.json"
    atomic_write_json(status, {"state": "queued", "started": time.time(), "done": 0, "total": 0, "text": ""})
    cmd = [sys.executable, "-m", "tlcore", "--workspace", str(ws.root), "datasets", "audit", name,
           "--spec", str(folder / "spec.yaml"), "--status-file", str(status)]
    proc = background.spawn(cmd, folder / "log.txt", cwd=ws.root, env=background.child_env())
    info = read_json(status, default={}) or {}
    atomic_write_json(status, {**info, "pid": proc.pid})
    return job_id


def audit_status(ws: Workspace, name: str, job_id: str) -> dict[str, Any]:
    """Where a job is: ``{"id", "state", "done", "total", "text", "audit", "error", "started", "ended", "log"}``
    (``log``: the path of the process's output)."""
    from tlcore.background import launch_overdue, log_tail, pid_alive

    folder = _jobs_dir(ws, name) / job_id
    if not folder.is_dir() or "/" in job_id or job_id.startswith("."):
        raise NotFoundError("No audit job has that id.", received=job_id,
                            fix="Start one with launch_audit, or list them with audit_jobs.")
    try:
        info = read_json(folder / "status.json", default=None) or {}
    except TLCoreError:
        info = {}
    info = {"id": job_id, **info, "log": str(folder / "log.txt")}
    if info.get("state") in ("finished", "failed"):
        return info
    pid = info.get("pid")
    writes = info.get("file")
    if isinstance(writes, str) and writes and Path(writes) != folder / "status.json":
        # this workspace was copied or moved while the audit ran: its process writes the old one's file
        return {**info, "state": "failed",
                "error": f"This audit was running in another workspace ({writes}) when this one was copied or "
                         "moved from there: its result is saved there, not here. Start the audit again here."}
    if pid is None and info.get("state") in (None, "queued") and launch_overdue(info.get("started"), folder):
        # a launch takes a second (the audit process then writes its own pid): its launcher died first
        return {**info, "state": "failed",
                "error": "The audit never started: what launched it (the dashboard's server) stopped before it "
                         "could, killed or restarted. Start the audit again."}
    if pid is not None and not pid_alive(int(pid)):
        time.sleep(0.05)  # the process may have written its final state just now
        try:
            again = read_json(folder / "status.json", default=None) or {}
        except TLCoreError:
            again = {}
        if again.get("state") in ("finished", "failed"):
            return {"id": job_id, **again, "log": str(folder / "log.txt")}
        tail = log_tail(folder / "log.txt", 3).strip()
        return {**info, "state": "failed", "error": tail or "The audit stopped without a result (see its log)."}
    return info


def audit_jobs(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """Every audit job of ``name``, newest first, each as ``audit_status`` gives it."""
    folder = _jobs_dir(ws, name)
    if not folder.is_dir():
        return []
    return [audit_status(ws, name, d.name) for d in sorted(folder.iterdir(), key=lambda p: p.name, reverse=True)
            if d.is_dir() and not d.name.startswith(".")]


class StatusWriter:
    """What the audit process writes to its job's ``status.json`` (``cli._datasets``): a ``progress``
    callback (at most every ``WRITE_EVERY_S``), then ``finished(audit_id)`` or ``failed(message)``."""

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = Path(path) if path else None
        self.started = time.time()
        self._last = 0.0
        self._base: dict[str, Any] = {}
        if self.path is not None:
            # its own process number: the launcher's record of it may not be written yet, and a status
            # without one reads as a launch that never started (``audit_status``)
            self._base = {"pid": os.getpid(), "file": str(self.path.absolute())}  # where it writes: ``audit_status``
            self._write({"state": "running", "done": 0, "total": 0, "text": "Starting"})

    def _write(self, data: dict[str, Any]) -> None:
        if self.path is not None:
            atomic_write_json(self.path, {**self._base, "started": self.started, **data})

    def progress(self, text: str, done: int, total: int) -> None:
        now = time.time()
        if now - self._last >= WRITE_EVERY_S or done == total:
            self._last = now
            self._write({"state": "running", "done": int(done), "total": int(total), "text": text})

    def finished(self, audit_id: str, seconds: float) -> None:
        self._write({"state": "finished", "done": 1, "total": 1, "text": "Done", "audit": audit_id,
                     "seconds": seconds, "ended": time.time()})

    def failed(self, message: str) -> None:
        self._write({"state": "failed", "error": message, "ended": time.time()})
