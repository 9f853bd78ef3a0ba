"""A search worker: runs trials of one study until its budget is met.

``run_worker`` is what ``python -m tlcore worker --study NAME [--storage URL]``
runs; any number of them, on one machine or many, share a study. Before each
trial a worker fails the trials of dead workers (heartbeats; they are queued
again) and counts the trials finished (complete or pruned) across all workers:

- finished >= n_trials, the time limit passed, or a stop was requested: it exits;
- finished + running >= n_trials: it waits, because a running trial may yet fail
  and need a retry;
- otherwise it asks the sampler for a trial and trains it through the trainer
  (sharing its image and feature caches), reporting the objective after every
  epoch to the pruner.

A finished trial's run folder (model, history, metrics, spec, labels) goes to the
artifact store, and its history and metrics to trial user attributes, before the
trial is marked complete: a complete trial always has all its files. Between
trials the Keras session is cleared.

A worker also keeps a small state file (``<workspace>/studies/local/<study>/
workers/<id>.json``: state, trial, epoch, batch; ``worker_state``) that
the Search page reads for its progress bars; the storage is the source of truth for
everything else. Trial attributes are written through ``tlcore.search.attrs``.

The trials train in the worker's own workspace ``ws``: the study's dataset must be
registered there under the spec's name, which on another machine means registering it
there first. A saved augmentation pipeline the spec names comes from the study's own copy
(``attrs.AUGMENT``), not from the workspace.
Trials are trained in a temporary folder under ``<workspace>/cache``
(``trial-N-HOST-PID-*``) and only the uploaded copy in the artifact store is kept; a worker
starting deletes the folders that workers of this host killed mid-trial left there
(``_sweep_dead_trial_folders``: a demo trial's is some 13 MB).
"""

from __future__ import annotations

import gc
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tlcore.background import pid_alive
from tlcore.errors import ConfigError, StorageUnavailable, TLCoreError, TrainingDiverged
from tlcore.runfolder import RUN_FILES
from tlcore.search import attrs
from tlcore.search.artifacts import artifact_store
from tlcore.search.heartbeat import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL, HeartbeatThread
from tlcore.search.patience import DEFAULT_PATIENCE_S, PatientRDBStorage, driver_error, patient
from tlcore.search.spec import StudySpec
from tlcore.search.storage import check_heartbeat, open_storage
from tlcore.search.study import FINISHED, budget_spent, load_spec, load_study, make_sampler, study_started
from tlcore.search.worker_state import (
    GAVE_UP,
    STORAGE_LOST,
    TRAINING_STATUS,
    WorkerRecord,
    WorkerState,
    new_worker_id,
    state_path,
)
from tlcore.workspace import Workspace

__all__ = ["run_worker", "WorkerResult", "RUN_FILES"]

# RUN_FILES (the files of a complete run, which a trial uploads) is tlcore.runfolder's; exported here too.
# new_worker_id (the default worker id) is tlcore.search.worker_state's.
MAX_CONSECUTIVE_ERRORS = 3


class _Interrupted(Exception):
    """The study was stopped (or the worker signalled) during a trial."""


class _Abandoned(Exception):
    """The trial was ended from outside (marked failed by a user, or judged dead)."""


@dataclass
class WorkerResult:
    worker_id: str
    trials: list[int] = field(default_factory=list)
    reason: str = ""


class _State:
    """The worker's state file (a ``WorkerRecord``), written atomically at most once a second
    (always when forced: on a change of state)."""

    def __init__(self, path: Path | None, record: WorkerRecord):
        self.path, self.record, self._last = path, record, 0.0

    def update(self, force: bool = False, **kw: Any) -> None:
        self.record.update(**kw)
        now = time.time()
        if self.path is None or (not force and now - self._last < 1.0):
            return
        self.record.updated = now
        self._last = now
        try:
            self.record.write(self.path)
        except OSError:
            pass  # the state file is a convenience; never stop training for it


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("best_epoch", "best_val_accuracy", "best_val_loss", "epochs_run", "stopped_early", "train_seconds",
            "num_train", "num_val", "num_test", "test_accuracy", "test", "calibration", "cache", "runtime")
    return {k: metrics[k] for k in keep if k in metrics}


def _objective_value(spec: StudySpec, history: list[dict[str, Any]]) -> float:
    if spec.objective == "val_loss":
        return float(min(h["val_loss"] for h in history))
    return float(max(h["val_accuracy"] for h in history))


def check_worker_options(*, worker_index: int = 0, max_trials: int | None = None,
                         heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
                         grace_period: int = DEFAULT_GRACE_PERIOD, storage_patience: float = DEFAULT_PATIENCE_S) -> None:
    """Refuse a worker's options before it starts anything: a negative index (it offsets the
    sampler's seed) or trial count, a heartbeat the grace period does not outlast, a patience with
    the database that is negative or not a number (or over a day)."""
    from tlcore.config import _check_int

    _check_int("worker_index", worker_index, 0, 2**31 - 1)
    if max_trials is not None:
        _check_int("max_trials", max_trials, 0, 1_000_000)
    check_heartbeat(heartbeat_interval, grace_period)
    if not (isinstance(storage_patience, (int, float)) and 0 <= storage_patience <= 86_400):
        raise ConfigError("The storage patience must be between 0 and 86400 seconds (a day).",
                          received=f"storage_patience={storage_patience:g}" if isinstance(storage_patience, (int, float))
                          else repr(storage_patience),
                          fix="Give the seconds a worker waits for a database that stops answering, e.g. 300; "
                              "0 ends it at once.")


_TRIAL_FOLDER = re.compile(r"^trial-\d+-(?P<host>.+)-(?P<pid>\d+)-[^-]+$")  # mkdtemp's suffix has no "-"


def _sweep_dead_trial_folders(ws: Workspace) -> int:
    """Delete the trial folders in ``<workspace>/cache`` whose worker, on this host, is gone (killed
    mid-trial: its ``finally`` never ran); returns how many. Another host's, or a live worker's, stay:
    their process cannot be checked from here, or still trains in it."""
    here, removed = socket.gethostname(), 0
    try:
        entries = list(os.scandir(ws.cache_dir))
    except OSError:
        return 0
    for entry in entries:
        m = _TRIAL_FOLDER.match(entry.name)
        if m and m["host"] == here and entry.is_dir(follow_symlinks=False) and not pid_alive(int(m["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def run_worker(
    ws: Workspace,
    name: str,
    storage: str | None = None,
    *,
    artifacts: str | None = None,
    worker_id: str | None = None,
    worker_index: int = 0,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    poll_seconds: float = 5.0,
    storage_patience: float = DEFAULT_PATIENCE_S,
    max_trials: int | None = None,
    stop_event: threading.Event | None = None,
    log: Callable[[str], None] = print,
) -> WorkerResult:
    """Run trials of study ``name`` until its budget is met, it is stopped, or ``max_trials`` ran here.

    Args:
        ws: the workspace (datasets, caches; the default storage and artifact folder).
        name: the study.
        storage: None for the workspace journal, or a database URL.
        artifacts: the artifact folder, when not the workspace's (a shared folder for many machines).
        worker_id: a name for logs and the state file. Defaults to host-pid-random.
        worker_index: offsets the sampler seed so parallel workers start differently.
        heartbeat_interval, grace_period: seconds; see ``tlcore.search.heartbeat``.
        poll_seconds: how often a waiting worker looks again.
        storage_patience: seconds its calls wait for a study database that stops answering (a restart)
            before the worker ends; 0 ends it at once (``tlcore.search.patience``).
        max_trials: stop after this many trials here (None: no limit).
        stop_event: set it to stop (the running trial ends interrupted, like a study stop).
        log: where progress lines go.

    Returns:
        A ``WorkerResult``: the trial numbers this worker ran and why it stopped.
    """
    check_worker_options(worker_index=worker_index, max_trials=max_trials, heartbeat_interval=heartbeat_interval,
                         grace_period=grace_period, storage_patience=storage_patience)
    worker_id = worker_id or new_worker_id()
    storage_kw = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
    study = load_study(ws, name, storage, worker_index=worker_index, **storage_kw)  # no such study: says so
    st = open_storage(ws, storage, **storage_kw)
    spec = load_spec(ws, name, storage)
    # Seeded by the trials started so far too: a restarted worker draws new configurations, not its predecessor's.
    study.sampler = make_sampler(spec, worker_index, sum(t.state != TrialState.WAITING
                                                         for t in study.get_trials(deepcopy=False)))
    augmentation = _study_augmentation(st, study, spec)
    store = artifact_store(ws, artifacts)
    state = _State(state_path(ws, name, worker_id),
                   WorkerRecord(worker_id=worker_id, pid=os.getpid(), host=socket.gethostname(), dataset=spec.dataset,
                                root=str(ws.root), started=time.time(), state=WorkerState.STARTING, trials_done=0))
    state.update(force=True)
    if swept := _sweep_dead_trial_folders(ws):
        log(f"worker {worker_id}: deleted {swept} trial folder(s) that killed workers left in {ws.cache_dir}")
    stop_event = stop_event or threading.Event()
    result = WorkerResult(worker_id=worker_id)
    started = study_started(ws, name, storage)
    errors = 0
    log(f"worker {worker_id}: study {name!r}, budget {spec.n_trials or '-'} trials"
        + (f", {spec.timeout_minutes} min" if spec.timeout_minutes else ""))

    def study_stopped() -> bool:
        return attrs.stop_flag(st.get_study_user_attrs(study._study_id))

    def stop_wanted() -> bool:
        return stop_event.is_set() or study_stopped()

    final = WorkerState.CRASHED  # until the loop ends as planned
    cause = None  # what ended it, when that is no fault of its own (``STORAGE_LOST``)
    scouted = False
    folder = _folder_identity(ws)
    try:
        with patient(storage_patience, log, stop_event):  # a database restart is waited out
            while True:
                optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                finished = sum(t.state in FINISHED for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                if stop_wanted():
                    result.reason = "stop requested"
                    break
                if _folder_identity(ws) != folder:
                    result.reason = (f"its workspace {ws.root} was moved or deleted while it ran; start workers in "
                                     "the workspace where it is now")
                    break
                spent = budget_spent(spec, finished, started, time.time())
                if spent is not None:
                    result.reason = spent
                    break
                if max_trials is not None and len(result.trials) >= max_trials:
                    result.reason = f"ran its {max_trials} trial(s)"
                    break
                if spec.n_trials is not None and finished + running >= spec.n_trials:
                    state.update(force=True, state=WorkerState.WAITING, trial=None,
                                 status=f"waiting for {running} running trial(s) of other workers")
                    if stop_event.wait(poll_seconds):
                        continue
                    continue
                if spec.scout is not None and not scouted:
                    state.update(force=True, state=WorkerState.SCOUTING, trial=None, status="ranking depths (scout)")
                    scouted = _scout(ws, study, spec, st, log)
                with warnings.catch_warnings():  # "heartbeat is meant for Study.optimize": this loop beats itself
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()
                result.trials.append(trial.number)
                # beating from the moment it is taken: a RUNNING trial without a heartbeat is judged from when a
                # worker first sees it (``patience.PatientRDBStorage``), so a live trial never looks like one nobody took
                with HeartbeatThread(st, trial._trial_id):
                    outcome = _run_trial(ws, study, st, spec, trial, store, worker_id, state, stop_wanted, study_stopped,
                                         log, augmentation)
                state.update(force=True, trials_done=len(result.trials), state=WorkerState.BETWEEN_TRIALS, trial=None)
                if outcome == "error":
                    errors += 1
                    if errors >= MAX_CONSECUTIVE_ERRORS:
                        result.reason = f"{errors} {GAVE_UP}; see the log"
                        break
                else:
                    errors = 0
                if outcome == "interrupted":
                    result.reason = "stop requested"
                    break
                if outcome == "handed back":
                    result.reason = f"stopped by a signal; trial {trial.number} handed back to the queue"
                    break
            final = WorkerState.FINISHED
    except BaseException as exc:  # the storage went away, the disk filled up...: the state file says so
        if _storage_down(exc) and not isinstance(exc, StorageUnavailable):
            down = _unavailable(exc, storage, storage_patience if isinstance(st, PatientRDBStorage) else 0)
            result.reason, cause = str(down), STORAGE_LOST
            raise down from exc
        result.reason = str(exc) if isinstance(exc, TLCoreError) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # a crash keeps the trial it was running: that trial waits on it (``StudySummary.crash_pending``)
        state.update(force=True, state=final, reason=result.reason, finished=time.time(), cause=cause,
                     **({"trial": None} if final == WorkerState.FINISHED else {}))
    log(f"worker {worker_id}: stopped: {result.reason}; ran trials {result.trials}")
    return result


def _folder_identity(ws: Workspace) -> tuple[int, int] | None:
    """The workspace folder's (device, inode), None when it is gone. Another value than at the start: the
    workspace was moved away (or deleted) while the worker ran, and what it wrote since went to a new, empty
    folder of the old name: its next trial would find no dataset there and fail."""
    try:
        st = os.stat(ws.root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _storage_down(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the study's database not answering: Optuna's wrapper of any
    SQLAlchemy error (``StorageInternalError``), or SQLAlchemy's own error for a lost connection."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, optuna.exceptions.StorageInternalError):
            return True
        if type(exc).__module__.startswith("sqlalchemy") and type(exc).__name__ in ("OperationalError",
                                                                                      "InterfaceError"):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _unavailable(exc: BaseException, storage: str | None, patience: float = 0) -> StorageUnavailable:
    """The worker's one-line end when its study storage stopped answering (a database restarted, the network
    went down) for longer than its ``patience``, naming what the driver said (no password) instead of Optuna's
    "invalid data in the commit"."""
    from tlcore.search._urls import redact_url, scrub_secrets

    detail = driver_error(exc)
    if storage:
        detail = scrub_secrets(detail, storage)
    return StorageUnavailable(
        f"The study storage stopped answering ({detail})"
        + (f" and did not answer again within {patience:.3g} s" if patience > 0 else "") + "; this worker stops.",
        received=redact_url(storage) if storage else "the study storage",
        fix="The trial it was running stays running until its heartbeat is missed, then the next worker fails it "
            "and queues it again; start workers again once the database answers (python -m tlcore search status "
            "shows whether it does).")


def _scout(ws: Workspace, study: optuna.Study, spec: StudySpec, st: Any, log: Callable[[str], None]) -> bool:
    """The study's scout (``tlcore.search.seeding``); True once nothing is left to do. A scout that
    breaks is logged and never stops the search."""
    from tlcore.search.seeding import maybe_scout

    try:
        maybe_scout(ws, study, spec, st, log)
    except Exception as exc:  # noqa: BLE001 - the scout is advice; the trials must go on
        log(f"scout: failed: {type(exc).__name__}: {exc}")
        return True
    return attrs.SCOUT in st.get_study_user_attrs(study._study_id)


def _hand_back(st: Any, study: optuna.Study, trial: optuna.Trial) -> None:
    """End ``trial`` interrupted and queue it again with the same parameters, like a heartbeat
    retry: the copy carries ``RETRY_OF``, and the trial is listed as queued again (``REQUEUED``) so a
    later ``resume_study`` does not queue it twice. Killed between the two steps, the trial is left
    interrupted and ``resume_study`` queues it."""
    attrs.mark_interrupted(trial)
    study.tell(trial, state=TrialState.FAIL)
    study.enqueue_trial(trial.params, user_attrs=attrs.requeue_attrs(trial, trial.number), skip_if_exists=False)
    sid = study._study_id
    done = attrs.requeued(st.get_study_user_attrs(sid))
    st.set_study_user_attr(sid, attrs.REQUEUED, sorted(done | {trial.number}))


def _study_augmentation(st: Any, study: optuna.Study, spec: StudySpec) -> Any:
    """The ``AugmentSpec`` of the study's own copy of its saved pipeline (``attrs.AUGMENT``), or None
    (a preset, no augmentation, or a study older than the copies: its trials look the name up).

    Raises:
        AugmentationError: the copy is damaged (a storage written by other code).
    """
    raw = attrs.augment_copy(st.get_study_user_attrs(study._study_id), spec.augment)
    if raw is None:
        return None
    from tlcore.augment import AugmentSpec

    return AugmentSpec.from_dict(raw)


def _record_data(ws: Workspace, trial: optuna.Trial, tspec: Any) -> None:
    """Record which version of its dataset the trial trains on (``attrs.DATA``: the fingerprint of the split
    the trainer reads), so that trials trained before and after a change of the data are told apart."""
    from tlcore.datasets import load_split_spec
    from tlcore.search.fingerprint import dataset_fingerprint

    try:
        attrs.set_data(trial, dataset_fingerprint(ws, tspec.dataset, tspec.split_spec(load_split_spec(ws, tspec.dataset))))
    except TLCoreError:
        pass  # a dataset that cannot be read: the trainer says so, as the trial's error


def _run_trial(ws: Workspace, study: optuna.Study, st: Any, spec: StudySpec, trial: optuna.Trial, store: Any,
               worker_id: str, state: _State, stop_wanted: Callable[[], bool], study_stopped: Callable[[], bool],
               log: Callable[[str], None], augmentation: Any = None) -> str:
    """Train one trial and tell the study how it ended (``augmentation``: the study's copy of its
    saved pipeline, ``_study_augmentation``).

    Returns complete/pruned/interrupted/handed back/abandoned/error. A trial interrupted because
    the study was stopped waits for ``resume_study``; one interrupted because only this worker was
    told to stop (SIGTERM or SIGINT: a cluster evicting a pod, a scheduler pre-empting a job) is
    handed back at once (``_hand_back``), so another worker runs it with the same parameters.
    """
    import keras

    from tlcore.trainer import ProgressHooks, train

    tid = trial._trial_id
    history: list[dict[str, Any]] = []
    rungs: list[dict[str, Any]] = []
    last_check = [time.time()]
    try:
        params = spec.suggest(trial)
        tspec = spec.train_spec(params)
    except TLCoreError as exc:
        st.set_trial_user_attr(tid, attrs.ERROR, str(exc))
        study.tell(trial, state=TrialState.FAIL)
        log(f"trial {trial.number}: failed: {exc}")
        return "error"
    attrs.set_worker(trial, worker_id)
    _record_data(ws, trial, tspec)
    attrs.set_history(trial, [])
    shown = {k: (f"{v:.2e}" if isinstance(v, float) else v) for k, v in params.items()}
    log(f"trial {trial.number}: {shown}")
    state.update(force=True, state=WorkerState.TRAINING, trial=trial.number, epoch=0,
                 epochs=tspec.epochs + len(tspec.subset_rungs or []), batch=0, rung=None, train_fraction=1.0,
                 batches=0, status="preparing", params=params)

    def still_mine() -> None:
        if st.get_trial(tid).state != TrialState.RUNNING:
            raise _Abandoned()
        if stop_wanted():
            raise _Interrupted()

    def on_batch(epoch: int, batch: int, num_batches: int, logs: dict[str, float]) -> None:
        state.update(epoch=epoch + 1, batch=batch, batches=num_batches, status=TRAINING_STATUS,
                     loss=logs.get("loss"), accuracy=logs.get("accuracy"))
        if time.time() - last_check[0] > 5.0:
            last_check[0] = time.time()
            still_mine()

    def record(rec: dict[str, Any]) -> bool:
        """Store an epoch: history, the value reported to the pruner and, on a rung, the rung's value.
        Returns whether it was a rung epoch with a value to judge."""
        history.append(rec)
        attrs.set_history(trial, history)
        value = rec[spec.objective]
        if not math.isfinite(value):  # a non-finite epoch ends the trial as diverged (the trainer's guard)
            return False
        trial.report(value, rec["epoch"])
        if rec.get("rung") is None:
            return False
        rungs.append({"rung": rec["rung"], "fraction": rec["train_fraction"], "epoch": rec["epoch"], "value": value})
        attrs.set_rungs(trial, rungs)
        return True

    def on_epoch(rec: dict[str, Any]) -> None:
        still_mine()
        at_rung = record(rec)
        where = "" if rec.get("rung") is None else f" (rung {rec['rung']}, {rec['train_fraction']:.0%} of the data)"
        log(f"trial {trial.number}: epoch {rec['epoch']}{where} val_acc {rec['val_accuracy']:.4f} "
            f"val_loss {rec['val_loss']:.4f} ({rec['epoch_seconds']:.1f}s)")
        if at_rung:
            promoted = not trial.should_prune()
            rungs[-1]["promoted"] = promoted
            attrs.set_rungs(trial, rungs)
            if not promoted:
                raise optuna.TrialPruned(f"not promoted at rung {rec['rung']} ({rec['train_fraction']:.0%} of the data)")
            return
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {rec['epoch']}")

    def on_status(text: str) -> None:
        state.update(status=text)

    def on_stage(stage: dict[str, Any]) -> None:
        state.update(force=True, rung=stage["rung"], train_fraction=stage["fraction"])

    tmp = Path(tempfile.mkdtemp(prefix=f"trial-{trial.number}-{socket.gethostname()}-{os.getpid()}-", dir=ws.cache_dir))
    try:
        res = train(tspec, ws, run_dir=tmp / "run", augmentation=augmentation,
                    hooks=ProgressHooks(on_batch=on_batch, on_epoch=on_epoch, on_status=on_status,
                                        on_stage=on_stage))
        still_mine()
        state.update(force=True, status="saving the trial's files")
        ids = {}
        for fname in RUN_FILES:
            path = res.run_dir / fname
            if path.exists():
                ids[fname] = optuna.artifacts.upload_artifact(
                    artifact_store=store, file_path=str(path), study_or_trial=trial)
        attrs.set_artifacts(trial, ids)
        attrs.set_metrics(trial, _summary_metrics(res.metrics))
        value = _objective_value(spec, res.history)
        study.tell(trial, value)
        log(f"trial {trial.number}: complete, {spec.objective} {value:.4f}")
        return "complete"
    except optuna.TrialPruned as exc:
        study.tell(trial, state=TrialState.PRUNED)
        log(f"trial {trial.number}: {exc}")
        return "pruned"
    except TrainingDiverged as exc:  # stopped at once; pruned, so the sampler learns the region is bad
        # The epoch the guard stopped never reached on_epoch: record it here, and on a rung as not
        # promoted, so later trials are judged against it like any other.
        if exc.history and record(exc.history[-1]):
            rungs[-1]["promoted"] = False
            attrs.set_rungs(trial, rungs)
        attrs.set_diverged(trial, exc.reason)
        study.tell(trial, state=TrialState.PRUNED)
        log(f"trial {trial.number}: diverged: {exc.reason}")
        return "pruned"
    except _Interrupted:
        if not study_stopped():
            _hand_back(st, study, trial)
            log(f"trial {trial.number}: interrupted (this worker was told to stop); handed back to the "
                "queue with the same parameters for another worker")
            return "handed back"
        attrs.mark_interrupted(trial)
        study.tell(trial, state=TrialState.FAIL)
        log(f"trial {trial.number}: interrupted (study stopped); it is queued again on resume")
        return "interrupted"
    except (_Abandoned, optuna.exceptions.UpdateFinishedTrialError):
        log(f"trial {trial.number}: ended from outside (marked failed); moving on")
        return "abandoned"
    except Exception as exc:  # one bad trial must not end the search
        if _storage_down(exc):  # nothing can be written there (no error attribute, no tell): the
            raise  # worker ends, saying so (run_worker)
        msg = str(exc) if isinstance(exc, TLCoreError) else f"{type(exc).__name__}: {exc}"
        # a TLCoreError says what is wrong and how to fix it; a traceback is for the unexpected
        log(f"trial {trial.number}: failed: {msg}"
            + ("" if isinstance(exc, TLCoreError) else f"\n{traceback.format_exc()}"))
        try:
            attrs.set_error(trial, msg[:2000])
            study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        return "error"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        keras.backend.clear_session()
        gc.collect()
