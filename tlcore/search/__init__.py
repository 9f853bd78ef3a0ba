"""Optuna search over transfer-learning runs: specs, storage, workers, results.

- ``spec``     ``StudySpec``: dataset, backbones, methods, ranges, budget, sampler, pruner
- ``storage``  the workspace journal (safe for concurrent local workers) or a database URL:
               where it is, which files a page may open, ``open_storage`` (once per process)
- ``heartbeat`` dead workers' trials failed and queued again; the journal's heartbeats
- ``artifacts`` the atomic artifact store (the trials' run folders)
- ``_urls``    passwords out of storage URLs and out of messages
- ``study``    create, list, stop, resume, delete; raise a finished study's budget; the trial
               table; trials whose worker stopped (``stalled_trials``)
- ``worker``   run trials until the budget is met (``python -m tlcore worker``)
- ``pruners``  ``RungPruner``: successive halving over the nested-subset rungs
- ``seeding``  the study's scout: rank the depths once, seed the first trials with the
               best, and each score's Kendall tau against the finished trials
- ``worker_state`` a worker's state file and folder: ``WorkerState`` (its states),
               ``WorkerRecord`` (the file, typed), ``list_workers`` (this machine's workers;
               read by the pages and ``search status``)
- ``local``    background workers on this machine: launch, stop (processes and log tails:
               ``tlcore.background``)
- ``attrs``    the trial and study user attributes (``tl_history``, ``tl_metrics``, ...):
               every key once, with typed readers and writers, and trial durations
- ``direction`` which value is better (maximize / minimize) and the best trial
- ``results``  learning curves, Optuna's plotly views, a trial's run folder, the best
               value over time, diverged trials and successive-halving rungs
- ``compare``  trials of several studies side by side: trial keys, one ranking across
               studies, their curves (the Results page)

How a search runs: ``create_study`` stores a ``StudySpec`` in an Optuna study;
workers (``run_worker``, started by ``launch_workers`` on this machine or by hand on
others) ask the study's sampler for parameters, turn them into a ``TrainSpec``
(``StudySpec.train_spec``) and call ``tlcore.trainer.train``, report each epoch to
the pruner, and upload the finished run folder to the artifact store. Readers
(``list_studies``, ``load_study_frame``/``study_frame``, ``results``) only read the storage and the
artifacts. Users: ``tlcore.cli._search`` (``search ...``, ``worker``), the Search
page (``tlui.search_widgets``) and the Results page (``tlui.results_widgets``).
Everything commonly needed is re-exported here.
"""

from tlcore.background import log_tail
from tlcore.search.artifacts import artifact_store
from tlcore.search.local import launch_workers, stop_workers
from tlcore.search.results import (
    best_so_far,
    best_trial,
    diverged_reason,
    fetch_trial_run,
    get_trial,
    learning_curves,
    rung_path,
    study_figures,
    trial_rungs,
    trial_summary,
    with_outcomes,
    with_stalled,
)
from tlcore.search.spec import StudySpec
from tlcore.search.storage import check_storage_location, describe_storage, open_storage, study_local_dir
from tlcore.search.study import (
    StudySummary,
    create_study,
    dashboard_command,
    delete_study,
    fail_trial,
    list_studies,
    load_spec,
    load_study,
    load_study_frame,
    raise_budget,
    request_stop,
    resume_study,
    stalled_trials,
    stop_requested,
    study_frame,
)
from tlcore.search.worker import WorkerResult, run_worker
from tlcore.search.worker_state import WorkerInfo, WorkerRecord, WorkerState, list_workers

__all__ = [
    "StudySpec", "StudySummary", "WorkerInfo", "WorkerRecord", "WorkerResult", "WorkerState", "artifact_store",
    "best_so_far", "best_trial", "check_storage_location", "create_study", "dashboard_command", "delete_study",
    "describe_storage", "diverged_reason", "fail_trial", "fetch_trial_run", "get_trial",
    "launch_workers", "learning_curves", "list_studies", "list_workers", "load_spec", "load_study",
    "load_study_frame", "log_tail", "open_storage", "raise_budget", "request_stop", "resume_study", "run_worker",
    "rung_path", "stalled_trials", "stop_requested", "stop_workers", "study_figures", "study_frame", "study_local_dir", "trial_rungs",
    "trial_summary", "with_outcomes", "with_stalled",
]
