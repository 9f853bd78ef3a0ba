"""Studies: create, list, load, stop, resume, delete; their trials as a table.

A study made here is an ordinary Optuna study whose user attributes hold the
``StudySpec`` (``tl_spec``), so ``optuna-dashboard`` and any Optuna code can
read it too. The workers record each trial's history, metrics, artifacts, worker,
error, divergence and successive-halving rungs in trial user attributes; the
study's stop request, start time and resumed trials are study user attributes.
``tlcore.search.attrs`` names and reads every one of them (the ``*_ATTR`` names
here are kept for older imports); ``tlcore.search.direction`` decides which value
is best.

A study also keeps the fingerprint of the data its trials train on (``fingerprint``), taken where it
was created: ``check_dataset_here`` refuses a worker elsewhere whose copy of the dataset differs, and
accepts, with a warning, a change made in the creating workspace itself.

A new study's queue starts with the probe trial (``probe_trial_params``) and the
recipe trial (``recipe_trial_params``); the sampler draws the rest.

Entry points: ``create_study``, ``load_study`` / ``load_spec`` (sampler and pruner
rebuilt from the spec: ``make_sampler``, ``make_pruner``), ``list_studies``
(``StudySummary``), ``request_stop``, ``resume_study``, ``fail_trial``,
``delete_study``, ``load_study_frame`` (one row per trial, for ``search status``,
``export-csv`` and the pages), ``dashboard_command``. Storages come from
``storage.open_storage``, trial files from ``artifacts``, this machine's workers
(which ``delete_study`` refuses to pull the study from under) from
``worker_state.list_workers``; ``worker``, ``local`` and ``results`` build on this module.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tlcore.config import SplitSpec, recipe_depth
from tlcore.errors import ConfigError, DatasetError, NotFoundError
from tlcore.search import attrs, fingerprint
from tlcore.search._urls import without_password
from tlcore.search.artifacts import artifact_store, artifacts_dir
from tlcore.search.direction import best_of
from tlcore.search.heartbeat import grace_period, stale_trial_ids
from tlcore.search.spec import StudySpec
from tlcore.search.storage import (
    describe_storage,
    is_journal_path,
    missing_storage_file,
    open_storage,
    study_local_dir,
)
from tlcore.search.worker_state import WorkerState, list_workers
from tlcore.workspace import Workspace, validate_name

__all__ = [
    "create_study", "load_study", "load_spec", "list_studies", "StudySummary", "delete_study", "request_stop",
    "resume_study", "stop_requested", "fail_trial", "load_study_frame", "study_frame", "finished_count", "make_sampler",
    "make_pruner", "dashboard_command", "FINISHED", "probe_trial_params", "recipe_trial_params", "stalled_trials",
    "budget_spent", "check_runnable", "raise_budget", "check_dataset_here", "DatasetChangedWarning",
]

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# The keys under their older names (``tlcore.search.attrs`` owns them).
SPEC_ATTR = attrs.SPEC
STOP_ATTR = attrs.STOP
STARTED_ATTR = attrs.STARTED
REQUEUED_ATTR = attrs.REQUEUED
DIVERGED_ATTR = attrs.DIVERGED
RUNGS_ATTR = attrs.RUNGS
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def make_sampler(spec: StudySpec, worker_index: int = 0, trials_before: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler; each local worker gets its own seed so their random starts differ.

    ``trials_before``: how many trials the study had started when the worker started (``run_worker``).
    A worker on a fresh study is seeded ``spec.seed + worker_index``, so a study is reproducible; a
    later one (a restart, a resume, one more worker) mixes the count in, or it would draw again the
    very configurations its predecessor with that index drew.
    """
    seed = spec.seed + worker_index
    if trials_before > 0:
        seed = int(np.random.SeedSequence([spec.seed, worker_index, trials_before]).generate_state(1)[0])
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: running trials count as bad, so parallel workers spread out.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=min(10, max(2, (spec.n_trials or 20) // 4)))


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The spec's pruner. Epochs are reported as steps 1, 2, ...; a trial always runs its warm-up epochs."""
    if spec.pruner == "successive_halving":
        from tlcore.search.pruners import RungPruner

        return RungPruner(reduction_factor=spec.reduction_factor, direction=spec.direction)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.pruner_startup_trials,
                                           n_warmup_steps=spec.pruner_warmup_epochs + 1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, spec.pruner_warmup_epochs),
                                              max_resource=spec.epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _missing(ws: Workspace, name: str, storage: str | None) -> NotFoundError:
    """No study ``name`` in the storage: the error names the studies there (none when its file does not
    exist yet, which is not created by asking)."""
    known = ([] if missing_storage_file(ws, storage) is not None
             else [s.study_name for s in open_storage(ws, storage).get_all_studies()])
    return NotFoundError(f"No study named {name!r}.", received=f"storage {describe_storage(ws, storage)}",
                         fix=f"Studies there: {', '.join(known) or 'none yet'}. Create one with "
                             "`python -m tlcore search create --spec FILE` or on the Search page.")


def create_study(ws: Workspace, spec: StudySpec, storage: str | None = None) -> optuna.Study:
    """Create the study named ``spec.name`` and store ``spec`` in it.

    A saved augmentation pipeline the spec names is copied into the study (``attrs.AUGMENT``):
    its trials train with that copy, whatever later happens to the saved one. The fingerprint of the
    data its trials train on here, with this machine's name and the workspace's root, is kept too
    (``attrs.DATA_FINGERPRINT``): ``check_dataset_here`` refuses workers elsewhere whose copy differs.

    Raises:
        ConfigError: a study of that name exists already (or a creation of it was interrupted: the
            error says how to delete it), its dataset is not registered, or its weights file does not
            exist (every trial would fail on it).
        NotFoundError: the spec names an augmentation pipeline that is not saved here.
    """
    from tlcore.backbones import weights_identity

    if not ws.has_dataset(spec.dataset):
        known = ", ".join(r.name for r in ws.list_datasets()) or "none yet"
        raise ConfigError(f"The study's dataset {spec.dataset!r} is not registered in this workspace.",
                          received=f"dataset={spec.dataset!r}", fix=f"Registered datasets: {known}.")
    weights_identity(spec.weights, spec.seed)  # a missing weights file: the same ConfigError as a trial's
    pipeline = _augment_copy(ws, spec)
    data = _data_record(ws, spec)  # before the study exists: a dataset that cannot be read leaves nothing
    st = open_storage(ws, storage, create=True)  # the only caller that makes a new journal
    try:
        study = optuna.create_study(study_name=spec.name, storage=st, direction=spec.direction,
                                    sampler=make_sampler(spec), pruner=make_pruner(spec))
    except optuna.exceptions.DuplicatedStudyError as exc:
        try:
            unfinished = _unfinished_creation(st, st.get_study_id_from_name(spec.name))
        except KeyError:  # deleted in the meantime
            unfinished = False
        if unfinished:  # not removed here: it may be another process's creation, between its two steps
            raise _unfinished_error(spec.name) from exc
        raise ConfigError(f"A study named {spec.name!r} already exists.", received=spec.name,
                          fix="Choose another name, or delete the old study first.") from exc
    study.set_user_attr(attrs.SPEC, spec.to_dict())
    study.set_user_attr(attrs.DATA_FINGERPRINT, data)
    if pipeline is not None:
        study.set_user_attr(attrs.AUGMENT, pipeline)
    for params in (probe_trial_params(spec), recipe_trial_params(spec)):
        if params is not None:
            study.enqueue_trial(params)
    study.set_user_attr(attrs.CREATED, _now_iso())
    return study


def _study_split(ws: Workspace, spec: StudySpec) -> SplitSpec:
    """The split the study's trials use: its spec's ``val_fraction``/``test_fraction``/``split_seed``
    where given, else the dataset's saved split in this workspace (as ``TrainSpec.split_spec``)."""
    from tlcore.datasets import load_split_spec

    saved = load_split_spec(ws, spec.dataset)
    return SplitSpec(val_fraction=saved.val_fraction if spec.val_fraction is None else spec.val_fraction,
                     test_fraction=saved.test_fraction if spec.test_fraction is None else spec.test_fraction,
                     seed=saved.seed if spec.split_seed is None else spec.split_seed)


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _data_record(ws: Workspace, spec: StudySpec) -> dict[str, Any]:
    """``attrs.DATA_FINGERPRINT``'s value: the fingerprint of the study's data in ``ws`` and where it was taken."""
    here = fingerprint.dataset_fingerprint(ws, spec.dataset, _study_split(ws, spec))
    return {**here, "host": socket.gethostname(), "root": str(ws.root), "workspace": ws.identity(),
            "recorded": _now_iso()}


def _creating_workspace(ws: Workspace, record: dict[str, Any]) -> bool:
    """Whether ``ws`` is the workspace the study's data record was taken in: on the same host, with the same
    id (``Workspace.identity``: the same after the workspace was moved) or, for a record without one, the
    same root. A copy of the workspace on another machine is another machine's (its host differs)."""
    if str(record.get("host") or "") != socket.gethostname():
        return False
    mine = record.get("workspace")
    if isinstance(mine, str) and mine:
        return mine == ws.identity()
    return str(record.get("root") or "") == str(ws.root)


def _augment_copy(ws: Workspace, spec: StudySpec) -> dict[str, Any] | None:
    """The study's own copy of the saved pipeline ``spec.augment`` names (``attrs.AUGMENT``), so that
    changing or deleting it later changes no trial; None for a preset or no augmentation.

    Raises:
        NotFoundError: no pipeline is saved under that name (the message lists those that are).
        AugmentationError: the saved file is damaged.
    """
    from tlcore.augment import saved_pipeline_of

    pipeline = saved_pipeline_of(ws, spec.augment)
    return None if pipeline is None else {"name": spec.augment, "spec": pipeline.to_dict()}


def probe_trial_params(spec: StudySpec) -> dict[str, Any] | None:
    """The parameters of the study's first trial when ``spec.probe_first``: feature extraction from the
    linear probe (a usable model in the first minute), or None when the space has no such trial."""
    from tlcore import backbones as bb

    if not spec.probe_first:
        return None
    params: dict[str, Any] = {}
    if len(spec.backbones) > 1:
        params["backbone"] = spec.backbones[0]
    blocks = bb.get(spec.backbones[0]).num_blocks
    if "feature_extraction" in spec.methods:
        if len(spec.methods) > 1:
            params["method"] = "feature_extraction"
    elif "fine_tune" in spec.methods and spec.depth_range(spec.backbones[0])[1] == blocks:
        if len(spec.methods) > 1:
            params["method"] = "fine_tune"
        lo, _ = spec.depth_range(spec.backbones[0])
        if lo < blocks:
            params["freeze_depth"] = blocks
    else:
        return None
    lo, hi = spec.learning_rate
    if lo < hi:
        params["learning_rate"] = min(max(1e-3, lo), hi)
    return params


def recipe_trial_params(spec: StudySpec) -> dict[str, Any] | None:
    """The parameters of the trial after the probe when ``spec.recipe_trial``: the classic recipe,
    fine-tune the last third of the first backbone's blocks (the depth clipped to the searched
    range) at the geometric middle of that depth's learning-rate range (``StudySpec.middle_lr``,
    under the depth-aware ceiling). None when the space has no fine-tuning method or the recipe
    would repeat the probe trial. Only the parameters the spec searches are fixed.

    EfficientNet-Lite0 (18 blocks) with the default ranges: freeze depth 12, learning rate ~6.8e-4.
    """
    from tlcore import backbones as bb

    if not spec.recipe_trial:
        return None
    method = next((m for m in ("fine_tune", "two_phase") if m in spec.methods), None)
    if method is None:
        return None
    backbone = spec.backbones[0]
    blocks = bb.get(backbone).num_blocks
    lo, hi = spec.depth_range(backbone)
    depth = min(max(recipe_depth(blocks), lo), hi)
    if depth >= blocks and method == "fine_tune" and spec.probe_first:
        return None  # the probe trial already is feature extraction at full depth
    params: dict[str, Any] = {}
    if len(spec.backbones) > 1:
        params["backbone"] = backbone
    if len(spec.methods) > 1:
        params["method"] = method
    if lo < hi:
        params["freeze_depth"] = depth
    lr = spec.middle_lr(backbone, method, depth)
    if lr is not None:
        params["learning_rate"] = lr
    return params or None


def _study_id(ws: Workspace, name: str, storage: str | None) -> int:
    """The storage's id of study ``name``.

    Raises:
        NotFoundError: no such study (also when the storage's file does not exist: it is not created).
    """
    if missing_storage_file(ws, storage) is not None:
        raise _missing(ws, name, storage)
    st = open_storage(ws, storage)
    try:
        return st.get_study_id_from_name(name)
    except KeyError:
        raise _missing(ws, name, storage) from None


def load_spec(ws: Workspace, name: str, storage: str | None = None) -> StudySpec:
    """The spec stored in study ``name``."""
    validate_name(name, "study name")
    sid = _study_id(ws, name, storage)
    study_attrs = open_storage(ws, storage).get_study_user_attrs(sid)
    if attrs.SPEC not in study_attrs:
        if _unfinished_creation(open_storage(ws, storage), sid):
            raise _unfinished_error(name)
        raise ConfigError(f"Study {name!r} was not made by this workbench (it has no stored spec).",
                          received=name, fix="Create studies with `python -m tlcore search create` or the Search page.")
    return StudySpec.from_stored(study_attrs[attrs.SPEC])


def _unfinished_creation(st: optuna.storages.BaseStorage, study_id: int) -> bool:
    """Whether study ``study_id`` is what a ``create_study`` stopped between Optuna's study and its
    spec leaves (killed, out of memory, the machine restarted): no spec and no trial. It is invisible
    to ``list_studies`` and the pages, yet holds its name; ``delete_study`` removes it."""
    return attrs.SPEC not in st.get_study_user_attrs(study_id) and not st.get_all_trials(study_id, deepcopy=False)


def _unfinished_error(name: str) -> ConfigError:
    return ConfigError(
        f"Study {name!r} was left unfinished: its creation stopped before its spec was stored (the process "
        "was killed or the machine restarted), so it has no spec and no trials.",
        received=name,
        fix=f"Delete it, then create it again: python -m tlcore search delete --study {name} --yes")


def load_study(ws: Workspace, name: str, storage: str | None = None, *, worker_index: int = 0,
               **storage_kw: Any) -> optuna.Study:
    """The Optuna study ``name`` with the sampler and pruner of its spec."""
    spec = load_spec(ws, name, storage)
    return optuna.load_study(study_name=name, storage=open_storage(ws, storage, **storage_kw),
                             sampler=make_sampler(spec, worker_index), pruner=make_pruner(spec))


@dataclass
class StudySummary:
    name: str
    dataset: str
    direction: str
    objective: str
    n_trials: int | None
    counts: dict[str, int]
    best_value: float | None
    best_trial: int | None
    created: str
    stop_requested: bool
    stalled: dict[int, str] = field(default_factory=dict)  # ``stalled_trials``: number -> why
    data_versions: list[dict[str, Any]] = field(default_factory=list)  # ``attrs.data_versions`` of its trials

    @property
    def data_note(self) -> str | None:
        """A sentence when its trials trained on more than one version of the dataset (``data_versions``):
        which trials on which, and why that matters; None otherwise."""
        if len(self.data_versions) < 2:
            return None
        parts = [f"trial{'s' if len(v['trials']) > 1 else ''} {_numbers_text(v['trials'])}"
                 + (f" ({v['images']} images)" if v.get("images") is not None else "") for v in self.data_versions]
        return (f"The trials trained on {len(self.data_versions)} versions of the dataset {self.dataset!r} (it "
                f"changed between them: relabels, exclusions, a rescan or another split): {'; '.join(parts)}. "
                "Their scores were measured on different validation images: compare across versions with care.")

    @property
    def finished(self) -> int:
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)

    @property
    def running(self) -> int:
        """The trials RUNNING in the storage, stalled ones included (see ``live``)."""
        return self.counts.get("RUNNING", 0)

    @property
    def live(self) -> int:
        """The running trials that are not stalled: those a worker is still training."""
        return max(0, self.running - len(self.stalled))

    def crash_pending(self, trial: int | None) -> bool:
        """Whether a local worker that crashed while running ``trial`` still leaves it waiting: that trial
        is stalled (RUNNING, no worker trains it: failed and run again when a worker next starts). A
        worker killed as it took a trial, before recording which (None), leaves one waiting while any
        trial is running. Otherwise the crash is history: ``search status`` and the Search page fold it."""
        return trial in self.stalled if trial is not None else self.running > 0

    @property
    def complete(self) -> bool:
        """Its trial budget is spent and no worker trains a trial: no worker would start another one."""
        return self.n_trials is not None and self.finished >= self.n_trials and not self.live

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "finished": self.finished}


def _numbers_text(numbers: list[int]) -> str:
    """``[0, 1, 2, 3, 7, 9, 10]`` as "0-3, 7, 9, 10": runs of three or more as a range."""
    out, i = [], 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out += [f"{numbers[i]}-{numbers[j]}"] if j - i >= 2 else [str(n) for n in numbers[i:j + 1]]
        i = j + 1
    return ", ".join(out)


def list_studies(ws: Workspace, storage: str | None = None) -> list[StudySummary]:
    """Every study of this workbench in the storage, newest first (none when the storage's journal or
    SQLite file does not exist: listing does not create it)."""
    if missing_storage_file(ws, storage) is not None:
        return []
    st = open_storage(ws, storage)
    out = []
    for fs in st.get_all_studies():
        spec = attrs.stored_spec(fs.user_attrs)
        if spec is None:
            continue
        trials = st.get_all_trials(fs._study_id, deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:  # a trial a stop or a signal ended counts as INTERRUPTED, not FAIL: it runs again
            key = "INTERRUPTED" if t.state == TrialState.FAIL and attrs.interrupted(t) else t.state.name
            counts[key] = counts.get(key, 0) + 1
        best = best_of(trials, fs.direction)
        out.append(StudySummary(
            name=fs.study_name, dataset=str(spec.get("dataset", "")), direction=fs.direction.name.lower(),
            objective=str(spec.get("objective", "val_accuracy")), n_trials=spec.get("n_trials"), counts=counts,
            best_value=best.value if best else None, best_trial=best.number if best else None,
            created=attrs.created_at(fs.user_attrs), stop_requested=attrs.stop_flag(fs.user_attrs),
            stalled=_stalled(ws, fs.study_name, st, fs._study_id, trials) if counts.get("RUNNING") else {},
            data_versions=attrs.data_versions(trials),
        ))
    out.sort(key=lambda s: s.created, reverse=True)
    return out


def _stalled(ws: Workspace, name: str, st: optuna.storages.BaseStorage, study_id: int,
             trials: list[FrozenTrial]) -> dict[int, str]:
    """``stalled_trials`` from an open storage and the study's trials."""
    running = {t.number: t for t in trials if t.state == TrialState.RUNNING}
    out: dict[int, str] = {}
    for w in list_workers(ws, name):
        if w.state == WorkerState.CRASHED and w.trial in running:
            out[int(w.trial)] = (f"its worker {w.worker_id} (pid {w.pid}, on this machine) stopped "
                                 + ("when the study database stopped answering" if w.lost_storage
                                    else "without finishing"))
    by_id = {t._trial_id: t.number for t in running.values()}
    stale = [by_id[i] for i in stale_trial_ids(st, study_id) if i in by_id]
    for number in stale:
        out.setdefault(number, f"its worker has sent no heartbeat for over {grace_period(st)} s")
    return dict(sorted(out.items()))


def stalled_trials(ws: Workspace, name: str, storage: str | None = None) -> dict[int, str]:
    """The trials of study ``name`` that are RUNNING in the storage although no worker trains them any
    more, each with why that is known: trial number -> "its worker ... stopped without finishing" (a
    worker of this machine whose process is gone, killed or out of memory) or "its worker has sent no
    heartbeat for over N s" (any machine; ``heartbeat.stale_trial_ids``).

    Only reads. Such a trial stays RUNNING until a worker of the study next looks for a trial: that
    worker fails it (once the grace period has passed without a heartbeat) and queues it again with
    the same parameters (``heartbeat``); ``fail_trial`` ends it at once, without a retry.
    ``StudySummary.stalled`` holds the same.
    """
    sid = _study_id(ws, name, storage)
    st = open_storage(ws, storage)
    return _stalled(ws, name, st, sid, st.get_all_trials(sid, deepcopy=False))


def finished_count(trials: list[FrozenTrial]) -> int:
    return sum(t.state in FINISHED for t in trials)


def stop_requested(ws: Workspace, name: str, storage: str | None = None) -> bool:
    sid = _study_id(ws, name, storage)
    return attrs.stop_flag(open_storage(ws, storage).get_study_user_attrs(sid))


def request_stop(ws: Workspace, name: str, storage: str | None = None) -> None:
    """Ask every worker of the study to stop: a running trial ends (failed, marked
    interrupted) at its next batch, and no new trial starts."""
    sid = _study_id(ws, name, storage)
    open_storage(ws, storage).set_study_user_attr(sid, attrs.STOP, True)


def resume_study(ws: Workspace, name: str, storage: str | None = None) -> int:
    """Clear the stop request and queue the interrupted trials again (same parameters).

    Returns the number of trials queued again. Start workers to continue.
    """
    sid = _study_id(ws, name, storage)
    st = open_storage(ws, storage)
    done = attrs.requeued(st.get_study_user_attrs(sid))
    study = load_study(ws, name, storage)
    trials = study.get_trials(deepcopy=False)
    # and those a resume killed before it recorded REQUEUED had queued already (their copies name them)
    done |= {n for t in trials if isinstance(n := t.user_attrs.get(attrs.RETRY_OF), int) and not isinstance(n, bool)}
    again = [t for t in trials if t.state == TrialState.FAIL and attrs.interrupted(t) and t.number not in done]
    for t in again:
        study.enqueue_trial(t.params, user_attrs=attrs.requeue_attrs(t, t.number), skip_if_exists=False)
    st.set_study_user_attr(sid, attrs.REQUEUED, sorted(done | {t.number for t in again}))
    st.set_study_user_attr(sid, attrs.STOP, False)
    return len(again)


def budget_spent(spec: StudySpec, finished: int, started: float | None, now: float) -> str | None:
    """Why the study's budget allows no new trial: "budget met (N trials finished)" (its ``n_trials``)
    or "time limit of M min reached" (``timeout_minutes`` since its first worker started, ``started``);
    None while it allows one. The worker's rule (``run_worker``) and ``check_runnable``'s."""
    if spec.n_trials is not None and finished >= spec.n_trials:
        return f"budget met ({finished} trials finished)"
    if spec.timeout_minutes is not None and started is not None and now - started > spec.timeout_minutes * 60:
        return f"time limit of {spec.timeout_minutes:g} min reached"
    return None


def check_runnable(ws: Workspace, name: str, storage: str | None = None) -> None:
    """Refuse to start workers that would exit at once without running a trial: the study is stopped,
    its trial budget is met, or its time limit has passed. The message says how to continue.

    Raises:
        ConfigError: the study would run no trial (why, and the command that lets it run again).
        NotFoundError: no such study.
    """
    spec = load_spec(ws, name, storage)
    sid = _study_id(ws, name, storage)
    st = open_storage(ws, storage)
    study_attrs = st.get_study_user_attrs(sid)
    resume = f"python -m tlcore search resume --study {name}"
    finished = finished_count(st.get_all_trials(sid, deepcopy=False, states=FINISHED))
    spent = budget_spent(spec, finished, attrs.started_at(study_attrs), time.time())
    if attrs.stop_flag(study_attrs):
        if spec.n_trials is not None and finished >= spec.n_trials:  # a resume alone would not let it run
            raise ConfigError(f"Study {name!r} is stopped and has finished: {finished} of its {spec.n_trials} trials "
                              "are done, so a worker would exit at once without running a trial.", received=name,
                              fix=f"To search further, resume it with a larger trial budget: {resume} --trials "
                                  f"{spec.n_trials + 10} (or on the Search page: Raise the budget), then start "
                                  "workers.")
        raise ConfigError(f"Study {name!r} is stopped, so a worker would exit at once without running a trial.",
                          received=name, fix=f"Resume it first ({resume}; on the Search page: Resume), which "
                                             "queues its interrupted trials again, then start workers.")
    if spent is None:
        return
    if spec.n_trials is not None and finished >= spec.n_trials:
        raise ConfigError(f"Study {name!r} has finished: {finished} of its {spec.n_trials} trials are done, so a "
                          "worker would exit at once without running a trial.", received=name,
                          fix=f"To search further, raise its trial budget: {resume} --trials {spec.n_trials + 10} "
                              "(or on the Search page: Raise the budget), then start workers.")
    raise ConfigError(f"Study {name!r} has reached its time limit ({spent}), so a worker would exit at once "
                      "without running a trial.", received=name,
                      fix=f"To search further, give it more time: {resume} --minutes "
                          f"{(spec.timeout_minutes or 0) * 2:g} (counted from its first worker's start), then "
                          "start workers.")


class DatasetChangedWarning(UserWarning):
    """The study's dataset changed in the workspace that created it (``check_dataset_here``)."""


_MAX_LINES = 8  # differing classes named in a refusal or a warning; the rest are counted
_KEPT_LINES = 50  # kept in the study's record of a change


def _lines_text(lines: list[str], most: int = _MAX_LINES) -> str:
    shown = "; ".join(lines[:most])
    return shown + (f"; and {len(lines) - most} more" if len(lines) > most else "")


def check_dataset_here(ws: Workspace, name: str, storage: str | None = None, *,
                       warn: Callable[[str], None] | None = None) -> str:
    """The dataset of study ``name``; refuses to start a worker of it in a workspace where that dataset is
    not registered, or differs from the data the study was created with.

    A worker without the dataset took trial after trial from the shared storage and failed each (three in a
    row before it gave up), spending the study's budget and the retries of the trials it took over, the
    recipe trial's included, on another machine's missing registration. A worker with another copy under
    the same name (two images of 500 replaced, other relabels or exclusions, another split) trained without
    a word, and the study then compared trials trained on different data.

    The comparison is with the study's fingerprint (``attrs.DATA_FINGERPRINT``, ``tlcore.search.fingerprint``):

    - none stored (a study created before it was kept): no check;
    - the same: nothing;
    - different in the very workspace that created the study (``_creating_workspace``: same host, same
      workspace id, moved or not): its user changed the data on purpose (relabels or exclusions after an
      audit, a rescan, another split). The worker starts, the stored fingerprint becomes this one (so
      workers elsewhere with the old copy are refused from now on), the change is noted in it
      (``changed``), and ``warn`` gets one line saying which classes changed; without ``warn``, a
      ``DatasetChangedWarning`` is issued (``warnings.warn``);
    - different in another workspace: refused.

    Raises:
        NotFoundError: the dataset is not registered here (the message says how to register it), or no such
            study.
        DatasetError: this workspace's copy differs from the study's (the message names the classes that
            differ and how to make them alike).
        ConfigError: the dataset's override manifest or split settings cannot be read (a trial would fail
            on them too).
    """
    spec = load_spec(ws, name, storage)
    dataset = spec.dataset
    if not ws.has_dataset(dataset):
        raise NotFoundError(f"Study {name!r} trains on the dataset {dataset!r}, which is not registered in this "
                            f"workspace ({ws.root}): a worker here would fail every trial it took. No worker was "
                            "started.", received=dataset,
                            fix=f"Register this machine's copy of the study's images under that name first: python "
                                f"-m tlcore datasets add {dataset} PATH --allow-root (the same files as on the machine "
                                "that created the study).")
    sid = _study_id(ws, name, storage)
    st = open_storage(ws, storage)
    record = attrs.data_fingerprint(st.get_study_user_attrs(sid))
    stored = fingerprint.usable_fingerprint(record)
    if record is None or stored is None:
        return dataset  # a study from before fingerprints were kept (or another version's): nothing to compare
    here = fingerprint.dataset_fingerprint(ws, dataset, _study_split(ws, spec))
    if fingerprint.same(stored, here):
        return dataset
    host, root = str(record.get("host") or "?"), str(record.get("root") or "?")
    if _creating_workspace(ws, record):
        lines = fingerprint.compare(stored, here, here_word="now", stored_word="before")
        now = _now_iso()
        kept = lines[:_KEPT_LINES] + ([f"and {len(lines) - _KEPT_LINES} more"] if len(lines) > _KEPT_LINES else [])
        st.set_study_user_attr(sid, attrs.DATA_FINGERPRINT, {**record, **here, "root": str(ws.root), "recorded": now,
                                                             "changed": {"at": now, "lines": kept}})
        since = f" ({record['recorded']})" if record.get("recorded") else ""
        message = (f"The dataset {dataset!r} of study {name!r} changed in this workspace since the study recorded "
                   f"it{since}: {stored.get('images')} images then, {here['images']} now; {_lines_text(lines)}. "
                   "Trials from now on train on the changed data, so compare them with the earlier trials with "
                   "care. Workers started on other machines from now on are refused until their copy has the same "
                   "change (those running there go on with theirs).")
        if warn is not None:
            warn(message)
        else:
            warnings.warn(message, DatasetChangedWarning, stacklevel=2)
        return dataset
    lines = fingerprint.compare(stored, here)
    raise DatasetError(
        f"This workspace's copy of the dataset {dataset!r} differs from the one study {name!r} was created with "
        f"on host {host} (workspace {root}; {stored.get('images')} images there, {here['images']} here): "
        f"{_lines_text(lines)}. No worker was started: its trials would train on other data than the study's "
        "other trials.",
        received=f"dataset {dataset!r} in {ws.root} on {socket.gethostname()}",
        fix=f"Copy the same files from the study's machine, then rescan them here: python -m tlcore datasets "
            f"rescan {dataset}; give it the same relabels and exclusions (there: python -m tlcore datasets "
            f"overrides {dataset} --export FILE; here: --import FILE --replace) and the same split (or put "
            "val_fraction, test_fraction and split_seed in the study spec). Or, to search this data, create a "
            "separate study for it.")


def raise_budget(ws: Workspace, name: str, storage: str | None = None, *, n_trials: int | None = None,
                 timeout_minutes: float | None = None) -> StudySpec:
    """Let a study that met its budget run further: a larger ``n_trials`` and/or ``timeout_minutes``
    (minutes since its first worker started) in its stored spec. Workers started from now on use
    them; returns the new spec.

    Raises:
        ConfigError: a value is not larger than the current one (or, for trials, not more than the
            trials finished), or out of the spec's range.
        NotFoundError: no such study.
    """
    spec = load_spec(ws, name, storage)
    sid = _study_id(ws, name, storage)
    st = open_storage(ws, storage)
    changes: dict[str, Any] = {}
    if n_trials is not None:
        finished = finished_count(st.get_all_trials(sid, deepcopy=False, states=FINISHED))
        floor = max(finished, spec.n_trials or 0)
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials <= floor:
            raise ConfigError(f"The new trial budget must be more than {floor} (the study's budget is "
                              f"{spec.n_trials or 'not limited'}, {finished} trials finished).",
                              received=f"n_trials={n_trials!r}", fix=f"For example {floor + 10}.")
        changes["n_trials"] = n_trials
    if timeout_minutes is not None:
        now = spec.timeout_minutes or 0.0
        ok = not isinstance(timeout_minutes, bool) and isinstance(timeout_minutes, (int, float))
        if not ok or not timeout_minutes > now:
            raise ConfigError(f"The new time limit must be more than {now:g} min (the study's current one).",
                              received=f"timeout_minutes={timeout_minutes!r}", fix=f"For example {max(now * 2, 30):g}.")
        changes["timeout_minutes"] = float(timeout_minutes)
    if not changes:
        return spec
    new = StudySpec.from_dict({**spec.to_dict(), **changes})  # validates the ranges
    st.set_study_user_attr(sid, attrs.SPEC, new.to_dict())
    return new


def fail_trial(ws: Workspace, name: str, number: int, storage: str | None = None) -> None:
    """Mark a running (or waiting) trial failed; its worker notices and moves on.

    Raises:
        NotFoundError: no such trial. ConfigError: the trial has finished already.
    """
    study = load_study(ws, name, storage)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise NotFoundError(f"Study {name!r} has no trial {number}.", received=number,
                            fix=f"Trials: 0 to {max(trials) if trials else -1}.")
    t = trials[number]
    if t.state not in (TrialState.RUNNING, TrialState.WAITING):
        raise ConfigError(f"Trial {number} has already ended ({t.state.name.lower()}).", received=number,
                          fix="Only running or waiting trials can be marked failed.")
    st = open_storage(ws, storage)
    st.set_trial_user_attr(t._trial_id, attrs.ERROR, "marked failed by the user")
    try:
        st.set_trial_state_values(t._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # it ended meanwhile


def delete_study(ws: Workspace, name: str, storage: str | None = None, *,
                 artifacts: str | None = None) -> int:
    """Delete the study, its trials' artifacts and its local folder. Returns artifacts removed.

    A study an interrupted ``create_study`` left without its spec (and without trials) is deleted too:
    nothing else can remove it, and it holds its name.

    Raises:
        ConfigError: local workers of the study are still running (stop them first).
    """
    alive = [w for w in list_workers(ws, name) if w.alive]
    if alive:
        raise ConfigError(f"Study {name!r} still has {len(alive)} running worker(s).",
                          received=", ".join(w.worker_id for w in alive), fix="Stop the study first, then delete it.")
    st = open_storage(ws, storage)
    if _unfinished_creation(st, _study_id(ws, name, storage)):  # no spec, no trials: nothing else to remove
        optuna.delete_study(study_name=name, storage=st)
        shutil.rmtree(study_local_dir(ws, name), ignore_errors=True)
        return 0
    study = load_study(ws, name, storage)
    store = artifact_store(ws, artifacts)
    removed = 0
    for t in study.get_trials(deepcopy=False):
        for aid in attrs.artifacts(t).values():
            try:
                store.remove(str(aid))
                removed += 1
            except (optuna.artifacts.exceptions.ArtifactNotFound, ValueError):
                pass
    optuna.delete_study(study_name=name, storage=open_storage(ws, storage))
    shutil.rmtree(study_local_dir(ws, name), ignore_errors=True)
    return removed


def load_study_frame(ws: Workspace, name: str, storage: str | None = None) -> pd.DataFrame:
    """One row per trial of study ``name`` (``study_frame``)."""
    return study_frame(load_study(ws, name, storage).get_trials(deepcopy=False))


def study_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: number, state, value, params_*, epochs, duration_s, test_accuracy, worker, error.
    For a caller that has the trials already (loading a study replays its journal)."""
    rows = []
    now = _dt.datetime.now()
    retried = attrs.retries(trials)
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number, "state": t.state.name, "value": t.value,
            **{f"params_{k}": v for k, v in t.params.items()},
            "epochs": attrs.epochs(t),
            "best_val_accuracy": attrs.best_val_accuracy(t),
            "test_accuracy": attrs.metrics(t).get("test_accuracy"),
            "duration_s": attrs.duration_seconds(t, now),
            "started": t.datetime_start, "completed": t.datetime_complete,
            "worker": attrs.worker(t),
            "retry_of": attrs.retry_of(t),
            "error": attrs.failure_reason(t, retried_as=retried.get(t.number) if t.state == TrialState.FAIL else None),
        }
        rows.append(row)
    cols = ["number", "state", "value", "epochs", "best_val_accuracy", "test_accuracy", "duration_s",
            "started", "completed", "worker", "retry_of", "error"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=cols)
    params = sorted(c for c in df.columns if c.startswith("params_"))
    return df[cols[:3] + params + cols[3:]]


def dashboard_command(ws: Workspace, storage: str | None = None, *, artifacts: str | None = None) -> str:
    """The optuna-dashboard command that opens this storage (with the artifact folder)."""
    import shlex

    store = artifacts or str(artifacts_dir(ws))
    where, note = describe_storage(ws, storage), ""
    if storage is not None and not is_journal_path(storage):
        # never the password, and not redact_url's "***" either: the dashboard would send that as the password
        where = without_password(storage)
        if where != storage:
            note = "  # the password: from ~/.pgpass or PGPASSWORD"
    return (f"pip install optuna-dashboard && optuna-dashboard {shlex.quote(where)} "
            f"--artifact-dir {shlex.quote(store)}{note}")


def study_started(ws: Workspace, name: str, storage: str | None = None) -> float:
    """When the study's first worker started (seconds since the epoch); set on first call."""
    sid = _study_id(ws, name, storage)
    st = open_storage(ws, storage)
    started = attrs.started_at(st.get_study_user_attrs(sid))
    if started is None:
        started = time.time()
        st.set_study_user_attr(sid, attrs.STARTED, started)
    return float(started)
