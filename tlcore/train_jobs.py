"""Training jobs: one ``python -m tlcore train`` run in the background, followed through its folder.

A job is one training run, started by the Train page (``launch_training``: a
background process, never the page's own) or by ``python -m tlcore train`` from a
terminal, which registers itself (``register_job``), so both show on the page.
Everything about a job lives in its folder, so a reload, another browser or a
restarted server sees the same thing::

    <workspace>/train-jobs/<id>/
      spec.yaml        the TrainSpec
      augment.yaml     the job's own copy of the saved augmentation pipeline its spec names
                       (none for a preset): the run trains with it even if the saved one is
                       changed or deleted while the job starts
      state.json       the job's state (below), written atomically under a lock
      progress.jsonl   one JSON object per line, appended as the run goes:
                       {"type": "epoch", ...} an epoch's history record (train/val loss and
                       accuracy, epoch_seconds, phase, ...; tlcore.trainer), and
                       {"type": "status", "text": ...} the trainer's stage messages
      log.txt          the process's output (jobs launch_training started)
      stop             a stop request (stop_job)

``state.json`` keys: ``id``, ``source`` ("page" or "cli"), ``status``, ``pid``, ``host``, ``root``
(the workspace its process works in: a copy of the workspace made while it ran reads the job as
``crashed`` there, saying where it runs, and never signals it: ``background.works_elsewhere``),
``created`` / ``started`` / ``ended`` (seconds since the epoch), ``epochs`` (planned),
``epoch`` (the last one finished), ``running_epoch`` with ``batch`` / ``batches`` (the
epoch under way),
``status_text`` (the latest stage message), ``run_target`` (the run folder about to be
written, recorded just before the trainer writes it), ``run_dir`` (the saved run), ``metrics``
(best epoch, best validation and test accuracy), ``error``, ``note``. ``run_target`` and
``run_dir`` are relative to the workspace root when the run lies inside it (the workspace
may be moved or copied: ``Workspace.portable_path``); ``JobStatus.run_dir`` gives the folder.

Statuses: ``queued`` (launched; the process loads TensorFlow), ``running``, then one of
``finished``, ``stopped`` (a stop request was honoured: the best weights so far were
evaluated and saved as a normal run; stopped before the first epoch ended, nothing is
saved) and ``crashed`` (an error, with its message; or the process is gone without a
final state, killed or out of memory: ``job_status`` says so and shows the end of its log; or
still ``queued`` without a process ``background.LAUNCH_GRACE_S`` after it was made: its launcher died first).
A process gone without a final state whose ``run_target`` holds a complete run folder (every
``runfolder.RUN_FILES``: it was killed after the run was written, before it recorded so) reads as
``finished`` (``stopped`` when a stop was requested), with that run and a ``note`` saying so; a run
folder still under its temporary name (``.NAME.*.partial``) is not one, and the job reads ``crashed``.

Jobs run side by side: each writes its own run folder (``RunFolder.write``: atomic,
named with microseconds and a random suffix) and the image and feature caches write
each entry atomically (``tlcore.cache``), so two jobs on the same data at once both
compute, both write whole entries, and neither reads half of the other's.

Writer: the training process, through ``JobReporter`` (``cli._train``). Readers:
``list_jobs``, ``job_status``, ``read_progress`` (the Train page, ``tlui.train_widgets``).

Example:

>>> job = launch_training(ws, TrainSpec(dataset="demo", image_size=96, epochs=3))
>>> job_status(job).status                      # "queued", then "running", ...
>>> [e["val_accuracy"] for e in read_progress(job).epochs]
>>> stop_job(job)                               # ends after the current batch; the run is saved
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tlcore import background
from tlcore._fsutil import atomic_write_json, atomic_write_text, atomic_write_yaml, read_json
from tlcore.config import TrainSpec
from tlcore.errors import ConfigError, NotFoundError, TLCoreError, WorkspaceError
from tlcore.workspace import Workspace

__all__ = ["TrainJob", "JobStatus", "JobProgress", "JobReporter", "JobStopped", "check_spec", "launch_training",
           "register_job", "open_job", "list_jobs", "running_jobs", "job_status", "read_progress", "stop_job", "jobs_dir", "STATUSES",
           "FINAL", "ACTIVE"]

JOBS_DIR = "train-jobs"
STATUSES = ("queued", "running", "finished", "stopped", "crashed")
ACTIVE = ("queued", "running")
FINAL = ("finished", "stopped", "crashed")
LOG_TAIL_LINES = 15
_METRIC_KEYS = ("best_epoch", "best_val_accuracy", "test_accuracy", "epochs_run", "stopped_early")
WRITE_EVERY_S = 1.0  # batch progress and chatty stage messages reach state.json at most this often
TERMINATE_WAIT_S = 5.0  # after SIGTERM, before SIGKILL
_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")
_COUNTING = re.compile(r"^.*: \d+/\d+$")  # "Caching train features (depth 18): 64/450": progress, not a stage


class JobStopped(Exception):
    """Raised inside the training process when a stop request arrives before the first epoch ended."""


def jobs_dir(ws: Workspace) -> Path:
    """``<workspace>/train-jobs``: one folder per training job."""
    return ws.root / JOBS_DIR


@dataclass(frozen=True)
class TrainJob:
    """One job's folder and the paths of its files (nothing is read when it is made)."""

    folder: Path

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def spec_file(self) -> Path:
        return self.folder / "spec.yaml"

    @property
    def augment_file(self) -> Path:
        return self.folder / "augment.yaml"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    @property
    def progress_file(self) -> Path:
        return self.folder / "progress.jsonl"

    @property
    def log_file(self) -> Path:
        return self.folder / "log.txt"

    @property
    def stop_file(self) -> Path:
        return self.folder / "stop"

    @property
    def workspace(self) -> Workspace:
        """The workspace the job's folder is in (``<root>/train-jobs/<id>``), wherever it is now."""
        return Workspace(self.folder.parent.parent)

    def read_state(self) -> dict[str, Any]:
        """``state.json`` ({} when missing, unreadable or not an object)."""
        try:
            data = read_json(self.state_file, default=None)
        except TLCoreError:
            return {}
        return data if isinstance(data, dict) else {}

    def read_augmentation(self, name: str | None) -> Any:
        """The job's copy of the saved augmentation pipeline ``name`` (an ``AugmentSpec``); None when
        it has none of that name (a preset, no augmentation) or the file is missing or damaged."""
        from tlcore import _yaml
        from tlcore.augment import AugmentSpec

        try:
            doc = _yaml.safe_load(self.augment_file.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or name is None or doc.get("name") != name:
                return None
            return AugmentSpec.from_dict(doc.get("spec"))
        except (OSError, UnicodeDecodeError, TLCoreError, ValueError):
            return None

    def read_spec(self) -> TrainSpec | None:
        """The job's ``TrainSpec``; None when its file is missing or invalid."""
        try:
            return TrainSpec.from_yaml(self.spec_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, TLCoreError):
            return None


# ------------------------------------------------------------------ state file
@contextlib.contextmanager
def _locked(job: TrainJob) -> Iterator[None]:
    """An exclusive lock on the job's state across processes (the launcher and the training process
    both update it; each update is read, change, atomic write)."""
    import fcntl

    with _open_in(job, job.folder / ".state.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open_in(job: TrainJob, path: Path, mode: str, **kw: Any) -> IO[Any]:
    """``open(path, mode)`` for a file of ``job``'s folder; a ``WorkspaceError`` when the folder has gone
    while the job ran: its workspace was moved or deleted (a raw ``FileNotFoundError`` on ``.state.lock``
    had ended it in a traceback)."""
    try:
        return open(path, mode, **kw)
    except FileNotFoundError as exc:
        raise WorkspaceError("The training job's folder is gone: its workspace was moved or deleted while the job "
                             "ran. Nothing more can be saved there.", received=str(job.folder),
                             fix="Train again in the workspace where it is now; stop training jobs before moving "
                                 "or copying a workspace.") from exc


def _update(job: TrainJob, **changes: Any) -> dict[str, Any]:
    """Set ``changes`` in ``state.json`` (a key set to None is removed); returns the new state."""
    with _locked(job):
        state = job.read_state()
        for k, v in changes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        atomic_write_json(job.state_file, state)
    return state


def _append(job: TrainJob, record: dict[str, Any]) -> None:
    """Append one line to ``progress.jsonl`` (one write of one line: readers skip a torn last line)."""
    line = json.dumps({**record, "time": time.time()}, default=str, allow_nan=True) + "\n"
    with _open_in(job, job.progress_file, "a", encoding="utf-8") as fh:
        fh.write(line)


def _new_job(ws: Workspace, spec: TrainSpec, source: str) -> TrainJob:
    from tlcore.augment import saved_pipeline_of

    pipeline = saved_pipeline_of(ws, spec.augment)  # before the folder: a missing one leaves no job
    root = jobs_dir(ws)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    job = TrainJob(folder)
    atomic_write_text(job.spec_file, spec.to_yaml())
    if pipeline is not None:
        atomic_write_yaml(job.augment_file, {"name": spec.augment, "spec": pipeline.to_dict()})
    _update(job, id=job.id, source=source, status="queued", created=time.time(), host=socket.gethostname(),
            root=str(ws.root), epochs=spec.epochs + len(spec.subset_rungs or []))
    return job


def open_job(ws: Workspace, job_id: str) -> TrainJob:
    """The job ``job_id`` of the workspace.

    Raises:
        NotFoundError: no job of that id (or an id that is not one).
    """
    if not isinstance(job_id, str) or not _ID.match(job_id) or not (jobs_dir(ws) / job_id).is_dir():
        known = [j.id for j in _job_folders(ws)][:5]
        raise NotFoundError("No training job of that id.", received=repr(job_id),
                            fix=f"Recent jobs: {', '.join(known) or 'none yet'} (the Train page lists them).")
    return TrainJob(jobs_dir(ws) / job_id)


def _job_folders(ws: Workspace) -> list[TrainJob]:
    root = jobs_dir(ws)
    if not root.is_dir():
        return []
    # A folder without its state file yet is a job being made (``_new_job`` writes the spec first).
    return [TrainJob(p) for p in sorted(root.iterdir(), reverse=True)
            if _ID.match(p.name) and (p / "state.json").is_file()]


# ------------------------------------------------------------------ starting
def check_spec(ws: Workspace, spec: TrainSpec, *, augmentation: Any = None) -> None:
    """What can be checked before training starts, in a second and without Keras: the dataset, backbone,
    freeze depth, augmentation (unless the job holds its own copy, ``augmentation``) and weights
    file. ``launch_training`` checks so before it starts a process, and ``python -m tlcore train``
    before it decodes any image.

    Raises:
        NotFoundError: the dataset or augmentation does not exist.
        ConfigError: the backbone does not exist; the freeze depth is deeper than the backbone; the
            weights file is missing.
    """
    from tlcore import augment
    from tlcore import backbones as bb

    ws.get_dataset(spec.dataset)
    info = bb.get(spec.backbone)
    if spec.freeze_depth is not None and spec.freeze_depth > info.num_blocks:
        raise ConfigError(f"freeze_depth must be between 0 and {info.num_blocks} for {spec.backbone}.",
                          received=f"freeze_depth={spec.freeze_depth}",
                          fix=f"Use {info.num_blocks} for feature extraction and 0 to fine-tune every block.")
    if spec.augment and spec.augment != "none" and augmentation is None:
        augment.get_spec(ws, spec.augment)
    bb.weights_identity(spec.weights, spec.seed)  # a missing weights file


def launch_training(ws: Workspace, spec: TrainSpec) -> TrainJob:
    """Start ``python -m tlcore train --spec FILE --job ID`` in the background (its own session, as
    search workers are: it outlives the page and the server); returns its job, ``queued``.

    A spec refused by ``check_spec``, or a process that cannot be started, leaves no job behind: the
    error is the caller's to show.

    Raises:
        NotFoundError: the dataset or augmentation does not exist.
        ConfigError: what ``check_spec`` refuses (a backbone, freeze depth or weights file); the process
            did not start.
    """
    check_spec(ws, spec)
    job = _new_job(ws, spec, "page")
    cmd = [sys.executable, "-m", "tlcore", "--workspace", str(ws.root), "train", "--spec", str(job.spec_file),
           "--job", job.id]
    try:
        proc = background.spawn(cmd, job.log_file, cwd=ws.root, env=background.child_env())
    except OSError as exc:
        shutil.rmtree(job.folder, ignore_errors=True)  # it never ran: nothing to list
        raise ConfigError("The training process did not start.", received=str(exc),
                          fix="Check that this Python can run 'python -m tlcore' and the disk is not full.") from exc
    _update(job, pid=proc.pid)
    return job


def register_job(ws: Workspace, spec: TrainSpec, *, source: str = "cli") -> TrainJob:
    """A new job record for a run started elsewhere (``python -m tlcore train`` from a terminal)."""
    return _new_job(ws, spec, source)


# ------------------------------------------------------------------ reading
@dataclass
class JobStatus:
    """A job as ``job_status`` found it.

    ``status`` is the state file's, or ``crashed`` when the process is gone without a
    final state (then ``error`` says so and ``log_tail`` holds the end of its log);
    ``state`` is the file itself.
    """

    job: TrainJob
    status: str
    state: dict[str, Any]
    spec: TrainSpec | None
    alive: bool
    error: str | None = None
    log_tail: str = ""

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def run_dir(self) -> Path | None:
        """The saved run's folder (recorded relative to the workspace when inside it), or None."""
        return _stored_run(self.job, self.state.get("run_dir"))

    @property
    def stop_requested(self) -> float | None:
        """When a stop was requested (seconds since the epoch), or None."""
        try:
            return self.job.stop_file.stat().st_mtime
        except OSError:
            return None

    def number(self, key: str) -> float | None:
        v = self.state.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _pid(state: dict[str, Any]) -> int | None:
    pid = state.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def _stored_run(job: TrainJob, text: Any) -> Path | None:
    """A run folder the job's state recorded (``run_dir``, ``run_target``): relative to the job's
    workspace when inside it, else absolute; None when there is none."""
    return job.workspace.stored_path(text) if isinstance(text, str) and text else None


SAVED_UNRECORDED = "Its process ended (killed, or the machine restarted) after the run was saved, before it recorded so."


def _saved_state(job: TrainJob, state: dict[str, Any]) -> dict[str, Any] | None:
    """The final state of a job whose process is gone without one, when the run it was writing
    (``run_target``) is complete on disk: ``finished`` (``stopped`` when a stop was requested) with
    that ``run_dir``, its metrics from the run and a note saying what happened; else None. Nothing
    is written."""
    from tlcore.runfolder import RunFolder

    target = state.get("run_target")
    folder = _stored_run(job, target)
    # a whole run: the trainer writes its files under a temporary name (``.NAME.*.partial``) and renames
    # the folder when every one of ``runfolder.RUN_FILES`` is written
    if folder is None or not RunFolder(folder).is_complete():
        return None
    metrics = RunFolder(folder).read_metrics()
    keep = {k: metrics.get(k) for k in _METRIC_KEYS}
    stopped = job.stop_file.exists()
    ended = state.get("ended")
    if not isinstance(ended, (int, float)) or isinstance(ended, bool):
        with contextlib.suppress(OSError):
            ended = (job.folder / "state.json").stat().st_mtime
    return {**state, "status": "stopped" if stopped else "finished", "run_dir": target,
            "metrics": state.get("metrics") or keep, "ended": ended, "note": SAVED_UNRECORDED}


def job_status(job: TrainJob, *, log_lines: int = LOG_TAIL_LINES) -> JobStatus:
    """Where job ``job`` is (see ``JobStatus``); nothing is written."""
    state = job.read_state()
    status = state.get("status") if state.get("status") in STATUSES else "crashed"
    error = state.get("error") if isinstance(state.get("error"), str) else None
    pid, here = _pid(state), state.get("host") == socket.gethostname()
    alive = False
    elsewhere = background.works_elsewhere(state.get("root"), job.workspace.root) if here else None
    if status in ACTIVE:
        if elsewhere is not None:  # a copy (or a move) of the workspace made while it ran: never ours to stop
            status = "crashed"
            runs = pid is not None and background.pid_alive(pid)
            error = error or (f"This job was running in {elsewhere} when this workspace was copied or moved from "
                              "there. " + (f"Its process (pid {pid}) goes on there: nothing it saves appears here, "
                                           "and it cannot be stopped from here." if runs else
                                           "Its process has ended; what it saved, if anything, is there.")
                              + " Train again here if you need the run in this workspace; stop jobs before moving "
                                "or copying a workspace.")
        elif pid is None and here and status == "queued" and background.launch_overdue(state.get("created"),
                                                                                       job.state_file):
            status = "crashed"  # a launch takes a second or two: this one's launcher died before its process started
            error = error or ("The training process never started: what launched it (the dashboard's server, or "
                              "the train command) stopped before it could, killed or restarted. Nothing was "
                              "trained; start the run again.")
        elif pid is None or not here:
            alive = True  # launching (no pid yet), or on another machine: nothing to check here
        else:
            alive = background.pid_alive(pid)
            if not alive:
                saved = _saved_state(job, state)
                if saved is not None:  # killed after its run was written, before it recorded so
                    state, status = saved, saved["status"]
                else:
                    status = "crashed"
                    error = error or ("The training process ended without saying it finished: killed, out of "
                                      "memory, or the machine restarted. The end of its log is below.")
    if not state:
        error = error or "The job's state file is missing or unreadable."
    tail = ""
    if status == "crashed":
        tail = background.log_tail(job.log_file, log_lines) or "\n".join(
            str(e.get("text")) for e in read_progress(job).events[-log_lines:])
    return JobStatus(job=job, status=status, state=state, spec=job.read_spec(), alive=alive, error=error,
                     log_tail=tail)


def list_jobs(ws: Workspace) -> list[JobStatus]:
    """The workspace's training jobs, newest first (``job_status`` of each)."""
    return [job_status(j) for j in _job_folders(ws)]


def running_jobs(ws: Workspace) -> list[JobStatus]:
    """The workspace's training jobs that are queued or running now (``job_status`` alive and not final),
    newest first. A job whose state file says it ended is passed over after reading that small file,
    without its spec or log (a workspace collects hundreds of finished jobs)."""
    out = []
    for job in _job_folders(ws):
        if job.read_state().get("status") not in ACTIVE:
            continue
        js = job_status(job)
        if js.alive and not js.final:
            out.append(js)
    return out


@dataclass
class JobProgress:
    """``progress.jsonl`` read: ``epochs`` (the history records, oldest first) and ``events`` (stage
    messages: ``{"text", "time"}``)."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def read_progress(job: TrainJob) -> JobProgress:
    """The job's epochs and stage messages so far (lines that do not parse are skipped)."""
    out = JobProgress()
    try:
        text = job.progress_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line while it is being written
        if not isinstance(rec, dict):
            continue
        kind = rec.pop("type", None)
        if kind == "epoch":
            out.epochs.append(rec)
        elif kind == "status":
            out.events.append(rec)
    return out


# ------------------------------------------------------------------ stopping
def _signal(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``'s process group when it leads one (a launched job), else to ``pid`` alone
    (a terminal's run, whose group is the shell's job)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_job(job: TrainJob, *, force: bool = False) -> str:
    """Ask job ``job`` to stop; returns its status afterwards.

    The request is a file the training process checks after every batch and epoch (and
    while it prepares): it stops there, keeps the best weights so far, evaluates and saves
    the run as usual and ends ``stopped``. With ``force`` (for a process that does not
    react), the process is terminated: SIGTERM, then SIGKILL after ``TERMINATE_WAIT_S``;
    the job is then ``stopped`` with nothing saved, unless it wrote its own final state first.
    """
    st = job_status(job)
    if st.final:
        return st.status
    if not job.stop_file.exists():
        atomic_write_text(job.stop_file, f"{time.time()}\n")
    pid = _pid(st.state)
    if not force or pid is None or not st.alive:
        return st.status
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + TERMINATE_WAIT_S
    while background.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if background.pid_alive(pid):
        _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + TERMINATE_WAIT_S
        while background.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    with _locked(job):
        state = job.read_state()
        if state.get("status") in ACTIVE:
            saved = _saved_state(job, state)  # its run was written just before it ended
            if saved is not None:
                state = {k: v for k, v in saved.items() if v is not None}
            else:
                state.update(status="stopped", ended=time.time(),
                             note="Terminated: it did not react to the stop request. Nothing was saved.")
            atomic_write_json(job.state_file, state)
    return job_status(job).status


# ------------------------------------------------------------------ the training process's side
class JobReporter:
    """What the training process writes into its job: its start, epochs, stage messages and end.

    ``python -m tlcore train`` makes one and passes its methods to ``ProgressHooks``
    (``on_epoch``, ``on_batch``, ``on_status``, ``should_stop``), then calls ``finished``,
    ``stopped_before_training`` or ``crashed``.
    """

    def __init__(self, job: TrainJob):
        self.job = job
        self.epochs_done = 0
        self.stop_seen = False
        self.stop_asked = ""  # why a stop was asked in this process (Ctrl-C), or ""
        self._last_write = 0.0

    def start(self) -> None:
        _update(self.job, status="running", pid=os.getpid(), host=socket.gethostname(),
                root=str(self.job.workspace.root), started=time.time())
        _append(self.job, {"type": "status", "text": f"Started (process {os.getpid()})"})

    def should_stop(self) -> bool:
        """Whether a stop was requested: the job's stop file (the Train page's Stop), or ``stop_asked``
        (set by the process itself: Ctrl-C in its terminal)."""
        if not self.stop_seen and (self.stop_asked or self.job.stop_file.exists()):
            self.stop_seen = True
            by = f" ({self.stop_asked})" if self.stop_asked else ""
            _append(self.job, {"type": "status", "text": f"Stop requested{by}: stopping after this batch"})
        return self.stop_seen

    def on_epoch(self, rec: dict[str, Any]) -> None:
        self.epochs_done += 1
        _append(self.job, {"type": "epoch", **rec})
        _update(self.job, epoch=int(rec.get("epoch", self.epochs_done)), running_epoch=None, batch=None,
                batches=None)
        self._last_write = time.monotonic()

    def on_batch(self, epoch: int, batch: int, num_batches: int, logs: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last_write >= WRITE_EVERY_S or batch == num_batches:
            self._last_write = now
            _update(self.job, running_epoch=epoch + 1, batch=batch, batches=num_batches)

    def on_status(self, text: str) -> None:
        if self.epochs_done == 0 and self.should_stop():
            raise JobStopped(text)
        now = time.monotonic()
        if not _COUNTING.match(text):
            _append(self.job, {"type": "status", "text": text})
        elif now - self._last_write < WRITE_EVERY_S:
            return
        self._last_write = now
        _update(self.job, status_text=text)

    def saving(self, run_dir: str | os.PathLike[str]) -> None:
        """The run is about to be written to ``run_dir`` (``ProgressHooks.on_save``): recorded as
        ``run_target``, so that a process killed once it is written, before ``finished``, still links
        it (``job_status``). A state that cannot be written does not stop the run from being saved."""
        with contextlib.suppress(TLCoreError):
            _update(self.job, run_target=self.job.workspace.portable_path(Path(run_dir).resolve()))

    def finished(self, run_dir: str | os.PathLike[str], metrics: dict[str, Any]) -> str:
        """The run was saved: ``finished``, or ``stopped`` when a stop request ended it early."""
        status = "stopped" if self.stop_seen else "finished"
        keep = {k: metrics.get(k) for k in _METRIC_KEYS}
        _update(self.job, status=status, ended=time.time(),
                run_dir=self.job.workspace.portable_path(Path(run_dir).resolve()), metrics=keep,
                status_text=None, running_epoch=None, batch=None, batches=None,
                note="Stopped on request; the best epoch so far was saved." if self.stop_seen else None)
        _append(self.job, {"type": "status", "text": f"Saved {Path(run_dir).name} ({status})"})
        return status

    def stopped_before_training(self) -> None:
        _update(self.job, status="stopped", ended=time.time(), status_text=None,
                note="Stopped before the first epoch ended: nothing was saved.")

    def interrupted(self) -> None:
        _update(self.job, status="stopped", ended=time.time(), status_text=None,
                note="Interrupted (Ctrl-C in its terminal): nothing was saved.")

    def crashed(self, error: str) -> None:
        if not self.job.folder.is_dir():
            return  # moved or deleted while it ran (``_open_in``): there is nowhere to say so
        _update(self.job, status="crashed", ended=time.time(), error=error or "unknown error")
        _append(self.job, {"type": "status", "text": f"Error: {error}"})
