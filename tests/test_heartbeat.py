"""The journal storage's heartbeats, and the private Optuna class they rest on.

Optuna decides whether a storage keeps heartbeats with
``isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat)``, a class it does not
publish, so ``tlcore.search.heartbeat.HeartbeatJournalStorage`` subclasses it. The
first test pins the part of that class the project relies on (where it is, its
abstract methods and their signatures, that the RDB storage is one, the functions that
consult it) against the installed Optuna, so an upgrade that changes it fails here,
saying what changed, rather than as dead workers' trials that are never retried. The
others check the behaviour end to end, in Optuna's own ``fail_stale_trials``.
"""

from __future__ import annotations

import importlib
import inspect
import time

import optuna
import pytest
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tlcore.search.heartbeat import HEARTBEAT_ATTR, HeartbeatJournalStorage, HeartbeatThread

# The methods of BaseHeartbeat that HeartbeatJournalStorage implements, with their parameters.
ABSTRACT = {
    "record_heartbeat": ["self", "trial_id"],
    "_get_stale_trial_ids": ["self", "study_id"],
    "get_heartbeat_interval": ["self"],
    "get_heartbeat_stale_trial_callback": ["self"],
}
UPGRADE = (f"optuna {optuna.__version__} changed optuna.storages._heartbeat, a private module that "
           "tlcore.search.heartbeat.HeartbeatJournalStorage builds on (the journal storage's heartbeats). "
           "Adapt HeartbeatJournalStorage to the new interface, then update this test. ")


def test_optunas_private_heartbeat_interface_is_the_one_implemented_here():
    try:
        private = importlib.import_module("optuna.storages._heartbeat")
        base = private.BaseHeartbeat
    except (ImportError, AttributeError) as exc:
        pytest.fail(UPGRADE + f"optuna.storages._heartbeat.BaseHeartbeat is gone: {exc}")
    assert inspect.isabstract(base) and set(base.__abstractmethods__) == set(ABSTRACT), (
        UPGRADE + f"BaseHeartbeat's abstract methods are now {sorted(base.__abstractmethods__)}, "
        f"not {sorted(ABSTRACT)}.")
    for name, params in ABSTRACT.items():
        theirs = list(inspect.signature(getattr(base, name)).parameters)
        assert theirs == params, UPGRADE + f"BaseHeartbeat.{name} now takes {theirs}, not {params}."
        ours = list(inspect.signature(getattr(HeartbeatJournalStorage, name)).parameters)
        assert ours == params, f"HeartbeatJournalStorage.{name} takes {ours}; BaseHeartbeat's takes {params}."
        assert getattr(HeartbeatJournalStorage, name) is not getattr(base, name), f"{name} is not implemented"
    assert issubclass(HeartbeatJournalStorage, base) and not inspect.isabstract(HeartbeatJournalStorage)
    # HeartbeatThread tells a storage with heartbeats by this class, the database storage included.
    assert issubclass(RDBStorage, base), UPGRADE + "RDBStorage is no longer a BaseHeartbeat."
    # The functions that consult the class: the worker calls the first before each trial.
    assert optuna.storages.fail_stale_trials is private.fail_stale_trials, UPGRADE + "fail_stale_trials moved."
    assert callable(getattr(private, "is_heartbeat_enabled", None)), UPGRADE + "is_heartbeat_enabled is gone."


def _journal(tmp_path, *, grace_period: int) -> HeartbeatJournalStorage:
    return HeartbeatJournalStorage(JournalFileBackend(str(tmp_path / "journal.log")), heartbeat_interval=1,
                                   grace_period=grace_period, callback=RetryHeartbeatStaleTrialCallback(max_retry=1))


def test_optuna_fails_and_queues_again_a_journal_trial_without_heartbeat(tmp_path):
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = _journal(tmp_path, grace_period=0)  # any running trial without a beat just now is stale
    assert is_heartbeat_enabled(storage)
    study = optuna.create_study(storage=storage)
    dead = study.ask()
    time.sleep(0.05)
    optuna.storages.fail_stale_trials(study)
    first, retry = study.get_trials(deepcopy=False)
    assert first.number == dead.number and first.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == dead.number


def test_a_beating_trial_is_left_running(tmp_path):
    storage = _journal(tmp_path, grace_period=60)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with HeartbeatThread(storage, trial._trial_id):
        optuna.storages.fail_stale_trials(study)
    (t,) = study.get_trials(deepcopy=False)
    assert t.state == TrialState.RUNNING
    assert abs(t.system_attrs[HEARTBEAT_ATTR] - time.time()) < 60
    assert storage._get_stale_trial_ids(study._study_id) == []


def test_a_trial_whose_beats_stopped_is_stale_whatever_its_start_time_says(tmp_path):
    """A trial's start is its creating machine's local time, without a zone: on a shared journal, a trial
    started on a machine east of this one read as starting in the future, and as the later of its start and
    its last beat counted, its worker's death went unnoticed for hours. A trial that beat is judged by its beat."""
    import datetime as dt

    from optuna.distributions import FloatDistribution

    storage = _journal(tmp_path, grace_period=5)
    study = optuna.create_study(storage=storage)
    ahead = optuna.trial.create_trial(state=TrialState.RUNNING, params={"x": 0.5},
                                      distributions={"x": FloatDistribution(0, 1)})
    ahead.datetime_start = dt.datetime.now() + dt.timedelta(hours=3)  # started "in 3 h": a zone east
    study.add_trial(ahead)
    (t,) = study.get_trials(deepcopy=False)
    storage.set_trial_system_attr(t._trial_id, HEARTBEAT_ATTR, time.time() - 60)  # its last beat: 60 s ago
    assert storage._get_stale_trial_ids(study._study_id) == [t._trial_id]


def test_a_worker_beats_as_soon_as_it_takes_a_trial(tmp_path, monkeypatch):
    """The beat thread starts with the training; before it, a taken trial had no heartbeat, which a database
    storage now reads as a trial nobody took (``patience.PatientRDBStorage``). The first beat comes first."""
    import tlcore.search.worker as worker
    from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
    from tlcore.search import create_study, run_worker
    from tlcore.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec("beat", n_trials=1, epochs=1))
    seen = []
    real = worker._record_data

    def look(ws_, trial, tspec):
        seen.append(HEARTBEAT_ATTR in trial.storage.get_trial(trial._trial_id).system_attrs)
        return real(ws_, trial, tspec)

    monkeypatch.setattr(worker, "_record_data", look)
    run_worker(ws, "beat")
    assert seen == [True]
