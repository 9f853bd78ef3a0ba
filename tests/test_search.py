"""Search: the study spec, storages (workspace journal and PostgreSQL), workers, pruning, retries.

The storage tests run once per storage kind through the ``storage`` fixture:
``None`` (the workspace's journal file) and a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.errors import ConfigError, NotFoundError, WorkspaceError
from tlcore.search import (
    StudySpec,
    artifact_store,
    create_study,
    delete_study,
    fail_trial,
    fetch_trial_run,
    launch_workers,
    list_studies,
    list_workers,
    load_spec,
    load_study,
    load_study_frame,
    log_tail,
    request_stop,
    resume_study,
    run_worker,
    stop_requested,
)
from tlcore.search import study as study_mod
from tlcore.search.results import outcome
from tlcore.search.worker import RUN_FILES

QUIET = {"log": lambda s: None}


@pytest.fixture(params=["journal", "postgresql"])
def storage(request):
    """The storage URL of each kind: None (the workspace journal) or a fresh PostgreSQL database."""
    if request.param == "journal":
        return None
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def tiny_ws(workspace):
    add_tiny_dataset(workspace)
    return workspace


# --------------------------------------------------------------------- spec
def test_spec_round_trips_through_yaml():
    spec = StudySpec(name="s1", dataset="demo", methods=["fine_tune", "two_phase"], freeze_depth=(6, 18),
                     learning_rate=[1e-4, 1e-2], dropout=[0.1, 0.5], batch_sizes=[64, 16], n_trials=7,
                     timeout_minutes=30, sampler="random", pruner="hyperband")
    again = StudySpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.freeze_depth == [6, 18] and again.batch_sizes == [16, 64]


@pytest.mark.parametrize("bad, words", [
    ({"learning_rate": [1e-2, 1e-4]}, "low end is above"),
    ({"learning_rate": [0, 1e-2]}, "learning_rate[0]"),
    ({"freeze_depth": [0, 40]}, "freeze_depth[1]"),
    ({"freeze_depth": 5}, "range [low, high]"),
    ({"sampler": "grid"}, "Unknown sampler"),
    ({"pruner": "asha"}, "Unknown pruner"),
    ({"objective": "f1"}, "Unknown objective"),
    ({"methods": ["finetune"]}, "Unknown methods"),
    ({"backbones": ["vgg16"]}, "Unknown backbones"),
    ({"n_trials": None, "timeout_minutes": None}, "needs a budget"),
    ({"n_trials": 0}, "n_trials"),
    ({"name": "../x"}, "Invalid study name"),
    ({"name": 123}, "was read as a number"),
    ({"name": ""}, "A study needs a name."),
    ({"dataset": ""}, "needs a dataset"),
    ({"epochs": 0}, "epochs"),
    ({"colour": "red"}, "Unknown StudySpec field"),
])
def test_spec_refuses_bad_fields_with_a_clear_message(bad, words):
    data = {"name": "s", "dataset": "demo", **bad}
    with pytest.raises(ConfigError) as err:
        StudySpec.from_dict(data)
    assert words in str(err.value)


@pytest.mark.parametrize("field", ["learning_rate", "fine_tune_factor", "dropout", "freeze_depth"])
def test_the_example_a_range_message_gives_is_accepted(field):
    """'For example learning_rate: [0.0, 1.0]' was itself refused (the low end must be above 0)."""
    import re

    import yaml

    with pytest.raises(ConfigError) as err:
        StudySpec.from_dict({"name": "s", "dataset": "demo", field: 0.01})
    example = re.search(rf"For example ({field}: \[[^\]]*\])", str(err.value)).group(1)
    spec = StudySpec.from_dict({"name": "s", "dataset": "demo", **yaml.safe_load(example)})
    assert getattr(spec, field) == yaml.safe_load(example)[field]


def test_trial_specs_follow_the_parameters():
    spec = StudySpec(name="s", dataset="demo", methods=["two_phase"], epochs=4, fine_tune_factor=[0.01, 0.5])
    t = spec.train_spec({"freeze_depth": 9, "learning_rate": 3e-4, "fine_tune_factor": 0.2})
    assert (t.method, t.freeze_depth, t.learning_rate, t.fine_tune_factor, t.epochs) == ("two_phase", 9, 3e-4, 0.2, 4)
    fe = StudySpec(name="s", dataset="demo", methods=["feature_extraction"]).train_spec({"learning_rate": 1e-3})
    assert fe.freeze_depth is None


# ------------------------------------------------------------------ storage
@pytest.mark.slow
def test_two_trials_on_each_storage(tiny_ws, storage):
    spec = tiny_spec(n_trials=2)
    create_study(tiny_ws, spec, storage)
    with pytest.raises(ConfigError, match="already exists"):
        create_study(tiny_ws, spec, storage)
    res = run_worker(tiny_ws, spec.name, storage, **QUIET)
    assert res.trials == [0, 1] and "budget met" in res.reason

    study = load_study(tiny_ws, spec.name, storage)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    store = artifact_store(tiny_ws)
    for t in trials:
        assert set(t.intermediate_values) == {1, 2}
        assert t.value == max(h["val_accuracy"] for h in t.user_attrs["tl_history"])
        assert set(t.user_attrs["tl_artifacts"]) == set(RUN_FILES)
        for aid in t.user_attrs["tl_artifacts"].values():
            with store.open_reader(aid) as f:
                assert f.read(1)
        assert 12 <= t.params["freeze_depth"] <= 18
        assert 1e-3 <= t.params["learning_rate"] <= 1e-2
    assert load_spec(tiny_ws, spec.name, storage) == spec
    (summary,) = list_studies(tiny_ws, storage)
    assert summary.finished == 2 and summary.best_value == max(t.value for t in trials)
    df = load_study_frame(tiny_ws, spec.name, storage)
    assert list(df["state"]) == ["COMPLETE", "COMPLETE"] and "params_freeze_depth" in df

    run = fetch_trial_run(tiny_ws, spec.name, 0, storage)
    from tlcore.predict import load_model

    assert load_model(run).class_names == ["bird", "cat", "dog"]

    # A second worker finds the budget met and leaves at once.
    assert run_worker(tiny_ws, spec.name, storage, **QUIET).trials == []

    # Delete: trials, artifacts and the local folder go.
    n = delete_study(tiny_ws, spec.name, storage)
    assert n == 2 * len(RUN_FILES)
    assert not list((tiny_ws.studies_dir / "artifacts").glob("*"))
    with pytest.raises(NotFoundError, match="No study named"):
        load_study(tiny_ws, spec.name, storage)


def test_bad_storage_urls_explain(workspace):
    from tlcore.search import open_storage

    with pytest.raises(ConfigError, match="Unknown storage URL"):
        open_storage(workspace, "redis://localhost/0")
    with pytest.raises(ConfigError, match="Cannot open the study storage") as err:
        open_storage(workspace, "postgresql://u:secret@127.0.0.1:1/nodb")
    assert "secret" not in str(err.value)


def test_study_of_an_unknown_dataset_is_refused(workspace):
    with pytest.raises(ConfigError, match="not registered"):
        create_study(workspace, tiny_spec())


# ------------------------------------------------------------------ pruning
@pytest.mark.slow
def test_a_deterministic_pruner_prunes_after_the_warmup(tiny_ws, monkeypatch):
    # val accuracy can never exceed 1.01: every trial is pruned at its first prunable epoch.
    monkeypatch.setattr(study_mod, "make_pruner", lambda spec: optuna.pruners.ThresholdPruner(lower=1.01))
    spec = tiny_spec(n_trials=2, epochs=3)
    create_study(tiny_ws, spec)
    res = run_worker(tiny_ws, spec.name, **QUIET)
    trials = load_study(tiny_ws, spec.name).get_trials()
    assert res.trials == [0, 1]
    for t in trials:
        assert t.state == TrialState.PRUNED
        assert list(t.intermediate_values) == [1]  # reported epoch 1, pruned there
        assert len(t.user_attrs["tl_history"]) == 1
        assert "tl_artifacts" not in t.user_attrs
    assert list_studies(tiny_ws)[0].counts == {"PRUNED": 2}


def test_median_pruner_steps_continue_across_two_phase_epochs():
    spec = StudySpec(name="s", dataset="demo", methods=["two_phase"], epochs=4, pruner="median", pruner_warmup_epochs=2)
    pruner = study_mod.make_pruner(spec)
    assert isinstance(pruner, optuna.pruners.MedianPruner) and pruner._n_warmup_steps == 3
    hb = study_mod.make_pruner(StudySpec(name="s", dataset="demo", epochs=6, pruner="hyperband"))
    assert isinstance(hb, optuna.pruners.HyperbandPruner)


# ------------------------------------------------------------ crash, retry
@pytest.mark.slow
def test_a_dead_workers_trial_is_failed_and_retried(tiny_ws, storage):
    spec = tiny_spec(n_trials=1)
    create_study(tiny_ws, spec, storage)
    hb = {"heartbeat_interval": 1, "grace_period": 2}
    # A worker "crashes" after starting trial 0: it is RUNNING, its heartbeat stops.
    study = load_study(tiny_ws, spec.name, storage, **hb)
    t = study.ask()
    params = spec.suggest(t)
    from tlcore.search.storage import open_storage

    open_storage(tiny_ws, storage, **hb).record_heartbeat(t._trial_id)
    time.sleep(3)
    res = run_worker(tiny_ws, spec.name, storage, poll_seconds=0.5, **hb, **QUIET)
    trials = load_study(tiny_ws, spec.name, storage).get_trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[1].state == TrialState.COMPLETE
    assert trials[1].system_attrs["failed_trial"] == 0
    assert load_study_frame(tiny_ws, spec.name, storage)["error"].tolist()[0] == (
        "its worker stopped without finishing (no heartbeat); run again as trial 1")
    assert trials[1].params == {k: v for k, v in params.items() if k in trials[1].params}
    assert res.trials == [1]


def test_stop_resume_and_fail_trial(tiny_ws):
    spec = tiny_spec(n_trials=3)
    create_study(tiny_ws, spec)
    study = load_study(tiny_ws, spec.name)
    running = study.ask()
    spec.suggest(running)
    request_stop(tiny_ws, spec.name)
    assert stop_requested(tiny_ws, spec.name)
    assert run_worker(tiny_ws, spec.name, **QUIET).reason == "stop requested"
    fail_trial(tiny_ws, spec.name, running.number)
    with pytest.raises(ConfigError, match="already ended"):
        fail_trial(tiny_ws, spec.name, running.number)
    with pytest.raises(NotFoundError):
        fail_trial(tiny_ws, spec.name, 99)
    assert load_study_frame(tiny_ws, spec.name)["error"].tolist() == ["marked failed by the user"]
    assert resume_study(tiny_ws, spec.name) == 0  # only interrupted trials are queued again
    assert not stop_requested(tiny_ws, spec.name)


def test_a_worker_that_fails_is_recorded_as_crashed_with_the_reason(tiny_ws, monkeypatch):
    spec = tiny_spec(n_trials=3)
    create_study(tiny_ws, spec)

    def storage_gone(study):
        raise WorkspaceError("The study journal cannot be read.", fix="Check the disk.")

    monkeypatch.setattr(optuna.storages, "fail_stale_trials", storage_gone)
    with pytest.raises(WorkspaceError):
        run_worker(tiny_ws, spec.name, worker_id="broken", **QUIET)
    monkeypatch.undo()
    request_stop(tiny_ws, spec.name)
    run_worker(tiny_ws, spec.name, worker_id="fine", **QUIET)
    workers = {w.worker_id: w for w in list_workers(tiny_ws, spec.name)}
    assert workers["broken"].state == "crashed"
    assert workers["broken"].data["reason"].startswith("The study journal cannot be read.")
    assert workers["fine"].state == "finished" and workers["fine"].data["reason"] == "stop requested"


@pytest.mark.slow
def test_a_stopped_trial_is_queued_again_on_resume(tiny_ws):
    spec = tiny_spec(n_trials=1, epochs=2)
    create_study(tiny_ws, spec)

    # Stop from "outside" during the first epoch: the running trial ends interrupted.
    import tlcore.search.worker as worker_mod

    real = worker_mod._run_trial

    def run_and_stop(*args, **kw):
        request_stop(tiny_ws, spec.name)
        return real(*args, **kw)

    worker_mod._run_trial = run_and_stop
    try:
        res = run_worker(tiny_ws, spec.name, **QUIET)
    finally:
        worker_mod._run_trial = real
    assert res.reason == "stop requested"
    (t0,) = load_study(tiny_ws, spec.name).get_trials()
    assert t0.state == TrialState.FAIL and t0.user_attrs["tl_interrupted"]
    assert resume_study(tiny_ws, spec.name) == 1
    assert resume_study(tiny_ws, spec.name) == 0  # not twice
    res = run_worker(tiny_ws, spec.name, **QUIET)
    t0, t1 = load_study(tiny_ws, spec.name).get_trials()
    assert t1.state == TrialState.COMPLETE and t1.params == t0.params and t1.user_attrs["tl_retry_of"] == 0


def test_a_worker_told_to_stop_hands_its_trial_back_to_the_queue(tiny_ws):
    """A stop of this worker alone (its stop event: what SIGTERM/SIGINT set) is not a study stop:
    the running trial ends interrupted and is queued again at once, same parameters, and a resume
    does not queue it a second time; the next worker finishes it."""
    spec = tiny_spec(n_trials=1, epochs=2)
    create_study(tiny_ws, spec)
    import threading

    import tlcore.search.worker as worker_mod

    real, told = worker_mod._run_trial, threading.Event()

    def run_and_signal(*args, **kw):
        told.set()
        return real(*args, **kw)

    worker_mod._run_trial = run_and_signal
    try:
        res = run_worker(tiny_ws, spec.name, stop_event=told, **QUIET)
    finally:
        worker_mod._run_trial = real
    assert res.reason == "stopped by a signal; trial 0 handed back to the queue"
    t0, t1 = load_study(tiny_ws, spec.name).get_trials()
    assert t0.state == TrialState.FAIL and t0.user_attrs["tl_interrupted"]
    assert t1.state == TrialState.WAITING and t1.system_attrs["fixed_params"] == t0.params
    assert t1.user_attrs["tl_retry_of"] == 0
    assert not stop_requested(tiny_ws, spec.name)
    (summary,) = list_studies(tiny_ws)
    assert summary.counts == {"INTERRUPTED": 1, "WAITING": 1}  # interrupted, not failed
    assert outcome(t0) == "INTERRUPTED"
    assert resume_study(tiny_ws, spec.name) == 0  # already queued again
    res = run_worker(tiny_ws, spec.name, **QUIET)
    assert res.trials == [1] and res.reason.startswith("budget met")
    assert load_study(tiny_ws, spec.name).get_trials()[1].state == TrialState.COMPLETE


# -------------------------------------------------------------------- chaos
def _wait(cond, timeout: float, what: str, every: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _kill_all(ws, name):
    for w in list_workers(ws, name):
        if w.alive:
            os.kill(w.pid, signal.SIGKILL)


def test_a_launched_worker_opens_the_storage_it_was_given(tiny_ws):
    """The storage reaches a background worker through $TLCORE_STORAGE (not its command line)."""
    journal = str(tiny_ws.root / "elsewhere.log")
    spec = tiny_spec("elsewhere")
    create_study(tiny_ws, spec, journal)
    launch_workers(tiny_ws, spec.name, 1, journal)  # (a stopped study is refused: stopped right after)
    request_stop(tiny_ws, spec.name, journal)  # the worker, still loading, only has to find the study and the stop
    try:
        _wait(lambda: not list_workers(tiny_ws, spec.name)[0].alive, 180, "the worker to exit")
    finally:
        _kill_all(tiny_ws, spec.name)
    (w,) = list_workers(tiny_ws, spec.name)
    assert (w.state, w.data.get("reason")) == ("finished", "stop requested"), log_tail(w.log_path)


@pytest.mark.slow
def test_chaos_kill_9_a_worker_mid_trial(tiny_ws, storage):
    """Two workers; one is killed with SIGKILL during a trial. The study still meets its
    budget, the killed trial ends failed and is retried, no storage error, no artifact lost."""
    spec = tiny_spec(n_trials=4, epochs=4)
    create_study(tiny_ws, spec, storage)
    ids = launch_workers(tiny_ws, spec.name, 2, storage, heartbeat_interval=1, grace_period=4)
    try:
        def training_worker():
            for w in list_workers(tiny_ws, spec.name):
                if w.alive and w.worker_id in ids and w.data.get("state") == "training" and (w.data.get("epoch") or 0) >= 1:
                    return w
            return None

        victim = _wait(training_worker, 240, "a worker in the middle of a trial")
        killed_trial = victim.trial
        os.kill(victim.pid, signal.SIGKILL)
        survivor = next(w for w in list_workers(tiny_ws, spec.name) if w.worker_id != victim.worker_id)
        _wait(lambda: not next(w for w in list_workers(tiny_ws, spec.name)
                               if w.worker_id == survivor.worker_id).alive, 400, "the surviving worker to finish")
    finally:
        _kill_all(tiny_ws, spec.name)

    study = load_study(tiny_ws, spec.name, storage)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[killed_trial].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[killed_trial].params
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials.values()) >= spec.n_trials
    store = artifact_store(tiny_ws)
    for t in trials.values():
        if t.state == TrialState.COMPLETE:
            for aid in t.user_attrs["tl_artifacts"].values():
                with store.open_reader(aid) as f:
                    assert f.read(1)
    log = log_tail(survivor.log_path, 10_000)
    assert "budget met" in log
    for bad in ("Traceback", "database is locked", "OperationalError", "Invalid log format"):
        assert bad not in log, log
    states = {w.worker_id: w.state for w in list_workers(tiny_ws, spec.name)}
    assert states[victim.worker_id] == "crashed" and states[survivor.worker_id] == "finished"


@pytest.mark.slow
def test_chaos_sigterm_hands_a_running_trial_to_another_worker(tiny_ws, storage):
    """A worker sent SIGTERM mid-trial (a pod evicted, a job pre-empted) exits cleanly and leaves its
    trial to the queue; another worker started later finishes it, with the same parameters."""
    spec = tiny_spec(n_trials=2, epochs=4)
    create_study(tiny_ws, spec, storage)
    (first,) = launch_workers(tiny_ws, spec.name, 1, storage)
    try:
        def mid_trial():
            w = next(w for w in list_workers(tiny_ws, spec.name) if w.worker_id == first)
            return w if w.alive and w.data.get("state") == "training" and (w.data.get("epoch") or 0) >= 1 else None

        victim = _wait(mid_trial, 240, "the worker in the middle of a trial")
        handed = victim.trial
        os.kill(victim.pid, signal.SIGTERM)
        _wait(lambda: not next(w for w in list_workers(tiny_ws, spec.name) if w.worker_id == first).alive,
              120, "the signalled worker to exit")
        (second,) = launch_workers(tiny_ws, spec.name, 1, storage)
        _wait(lambda: not next(w for w in list_workers(tiny_ws, spec.name) if w.worker_id == second).alive,
              400, "the second worker to finish the study")
    finally:
        _kill_all(tiny_ws, spec.name)
    workers = {w.worker_id: w for w in list_workers(tiny_ws, spec.name)}
    assert workers[first].state == "finished", log_tail(workers[first].log_path)
    assert workers[first].data["reason"] == f"stopped by a signal; trial {handed} handed back to the queue"
    trials = {t.number: t for t in load_study(tiny_ws, spec.name, storage).get_trials()}
    assert trials[handed].state == TrialState.FAIL and trials[handed].user_attrs["tl_interrupted"]
    (retry,) = [t for t in trials.values() if t.user_attrs.get("tl_retry_of") == handed]
    assert retry.state == TrialState.COMPLETE and retry.params == trials[handed].params
    assert retry.user_attrs["tl_worker"] == second
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == spec.n_trials
    for wid in (first, second):
        log = log_tail(workers[wid].log_path, 10_000)
        for bad in ("Traceback", "cuInit", "Could not find cuda drivers"):
            assert bad not in log, log
    assert "SIGTERM: stopping" in log_tail(workers[first].log_path, 10_000)


@pytest.mark.slow
def test_four_workers_forty_trials_on_the_journal(tiny_ws):
    """Four local workers share the default storage for 40 short trials: no storage error."""
    spec = tiny_spec(name="many", n_trials=40, epochs=1, methods=["feature_extraction"], pruner="none")
    create_study(tiny_ws, spec)
    ids = launch_workers(tiny_ws, spec.name, 4)
    try:
        _wait(lambda: all(not w.alive for w in list_workers(tiny_ws, spec.name) if w.worker_id in ids),
              900, "four workers to run 40 trials", every=2)
    finally:
        _kill_all(tiny_ws, spec.name)
    trials = load_study(tiny_ws, spec.name).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 40 and len(trials) <= 43  # at most one extra trial per other worker
    assert not [t for t in trials if t.state == TrialState.FAIL]
    workers = {t.user_attrs["tl_worker"] for t in complete}
    assert len(workers) == 4
    for w in list_workers(tiny_ws, spec.name):
        log = log_tail(w.log_path, 10_000)
        for bad in ("Traceback", "database is locked", "Invalid log format", "Error"):
            assert bad not in log, log


@pytest.mark.slow
def test_two_studies_run_at_the_same_time(tiny_ws):
    """One background worker per study, both on the workspace journal: each meets its own budget."""
    specs = [tiny_spec(name="first", n_trials=2, epochs=1), tiny_spec(name="second", n_trials=3, epochs=1)]
    for spec in specs:
        create_study(tiny_ws, spec)
    for spec in specs:
        launch_workers(tiny_ws, spec.name, 1)
    try:
        _wait(lambda: all(not w.alive for s in specs for w in list_workers(tiny_ws, s.name)), 600,
              "both studies' workers to finish", every=2)
    finally:
        for spec in specs:
            _kill_all(tiny_ws, spec.name)
    for spec in specs:
        trials = load_study(tiny_ws, spec.name).get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * spec.n_trials
        (w,) = list_workers(tiny_ws, spec.name)
        assert {t.user_attrs["tl_worker"] for t in trials} == {w.worker_id}
    assert {s.name: s.finished for s in list_studies(tiny_ws)} == {"first": 2, "second": 3}
