"""The owners of the search's shared names: trial and study attributes, the direction rule, worker state.

- ``tlcore.search.attrs``: each key once, readers that tolerate foreign values, writers
  that a reader reads back, and the older ``*_ATTR`` names still importable;
- ``tlcore.search.direction``: better, best, ranking, for both directions;
- ``tlcore.search.worker_state``: the state file as a record, round trip, files of
  older workers (missing keys), states this version does not know, and
  ``list_workers`` over such files.

Everything is in memory or in ``tmp_path``: nothing trains.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from dataclasses import fields

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from tlcore.errors import ConfigError
from tlcore.search import attrs, results, seeding, study
from tlcore.search.direction import MAXIMIZE, MINIMIZE, best_of, comparator, is_better, maximizes, rank_key
from tlcore.search.local import CRASHED
from tlcore.search.pruners import RungPruner
from tlcore.search.storage import study_local_dir
from tlcore.search.worker_state import (
    MISSING_STATE,
    TRAINING_STATUS,
    WorkerRecord,
    WorkerState,
    list_workers,
    log_path,
    state_path,
    workers_dir,
)

T0 = dt.datetime(2025, 3, 1, 9, 0, 0)
LR = {"learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}


def _trial(state=TrialState.COMPLETE, value=None, start=0.0, end=None, system_attrs=None, **user_attrs):
    """A frozen trial that started ``start`` s after T0 and ended ``end`` s after it (None: not yet)."""
    if state == TrialState.COMPLETE and value is None:
        value = 0.5
    t = create_trial(state=state, value=value, params={"learning_rate": 1e-3}, distributions=LR,
                     user_attrs=user_attrs or None, system_attrs=system_attrs)
    t.datetime_start = None if start is None else T0 + dt.timedelta(seconds=start)
    t.datetime_complete = None if end is None else T0 + dt.timedelta(seconds=end)
    return t


# ------------------------------------------------------------------ keys
def test_every_key_is_defined_once_and_the_older_names_still_import():
    keys = attrs.TRIAL_KEYS + attrs.STUDY_KEYS
    assert len(set(keys)) == len(keys) and all(k.startswith("tl_") for k in keys)
    assert attrs.HISTORY == "tl_history" and attrs.METRICS == "tl_metrics" and attrs.ERROR == "tl_error"
    assert (study.SPEC_ATTR, study.STOP_ATTR, study.STARTED_ATTR, study.REQUEUED_ATTR) == (
        attrs.SPEC, attrs.STOP, attrs.STARTED, attrs.REQUEUED)
    assert (study.DIVERGED_ATTR, study.RUNGS_ATTR, seeding.SCOUT_ATTR) == (attrs.DIVERGED, attrs.RUNGS, attrs.SCOUT)
    assert CRASHED == WorkerState.CRASHED == "crashed"


# -------------------------------------------------------------- trial readers
def test_readers_of_a_trial_without_attributes_read_nothing():
    t = _trial(state=TrialState.RUNNING, start=0.0)
    assert attrs.history(t) == [] and attrs.epochs(t) == 0 and attrs.best_val_accuracy(t) is None
    assert attrs.metrics(t) == {} and attrs.artifacts(t) == {} and attrs.rungs(t) == []
    assert attrs.worker(t) is None and attrs.error(t) is None and not attrs.interrupted(t)
    assert attrs.failure_reason(t) is None and attrs.retry_of(t) is None and attrs.diverged(t) is None


def test_readers_return_what_the_worker_recorded():
    hist = [{"epoch": 1, "val_accuracy": 0.6, "val_loss": 1.0}, {"epoch": 2, "val_accuracy": 0.8, "val_loss": 0.7},
            {"epoch": 3, "val_accuracy": 0.7, "val_loss": 0.8}]
    rung = {"rung": 0, "fraction": 0.111, "epoch": 1, "value": 0.6, "promoted": True}
    t = _trial(value=0.8, start=0, end=90, **{
        attrs.HISTORY: hist, attrs.METRICS: {"best_epoch": 2, "test_accuracy": 0.75},
        attrs.ARTIFACTS: {"model.keras": "a1"}, attrs.WORKER: "host-1-ab", attrs.RUNGS: [rung]})
    assert attrs.history(t) == hist and attrs.epochs(t) == 3 and attrs.best_val_accuracy(t) == 0.8
    assert attrs.metrics(t)["test_accuracy"] == 0.75 and attrs.artifacts(t) == {"model.keras": "a1"}
    assert attrs.worker(t) == "host-1-ab" and attrs.rungs(t) == [rung]
    attrs.rungs(t)[0]["value"] = 0.0  # a copy: the trial keeps its value
    assert attrs.rungs(t)[0]["value"] == 0.6


def test_readers_tolerate_values_written_by_other_code():
    t = _trial(**{attrs.HISTORY: [{"epoch": 1, "val_accuracy": None}, "junk", 3], attrs.METRICS: ["x"],
                  attrs.ARTIFACTS: "model.keras", attrs.RUNGS: "junk", attrs.DIVERGED: False})
    assert attrs.history(t) == [{"epoch": 1, "val_accuracy": None}] and attrs.epochs(t) == 1
    assert attrs.best_val_accuracy(t) is None
    assert attrs.metrics(t) == {} and attrs.artifacts(t) == {} and attrs.rungs(t) == []
    assert attrs.diverged(t) is None
    assert attrs.diverged(_trial(**{attrs.DIVERGED: "  "})) is None
    assert attrs.diverged(_trial(**{attrs.DIVERGED: " loss is nan \n"})) == "loss is nan"


def test_why_a_trial_failed_and_which_trial_it_repeats():
    failed = _trial(state=TrialState.FAIL, **{attrs.ERROR: "OOM", attrs.INTERRUPTED: True})
    stopped = _trial(state=TrialState.FAIL, **{attrs.INTERRUPTED: True})
    blank = _trial(state=TrialState.FAIL, **{attrs.ERROR: ""})
    assert attrs.failure_reason(failed) == "OOM"  # the error wins over the interruption
    assert attrs.failure_reason(stopped) == "interrupted" and attrs.interrupted(stopped)
    assert attrs.failure_reason(blank) is None and attrs.error(blank) is None
    resumed = _trial(state=TrialState.WAITING, start=None, **{attrs.RETRY_OF: 3})
    retried = _trial(state=TrialState.WAITING, start=None, system_attrs={"failed_trial": 5}, **{attrs.RETRY_OF: 3})
    assert attrs.retry_of(resumed) == 3 and attrs.retry_of(retried) == 5  # Optuna's own retry first


def test_a_seed_is_marked_and_its_copy_queued_again_stays_a_seed():
    seed = _trial(state=TrialState.FAIL, **{attrs.SEEDED: "scout", attrs.INTERRUPTED: True})
    drawn = _trial(state=TrialState.FAIL, **{attrs.INTERRUPTED: True})
    assert attrs.seeded(seed) == "scout" and attrs.seeded(drawn) is None
    assert attrs.seeded(_trial(**{attrs.SEEDED: ""})) is None and attrs.seeded(_trial(**{attrs.SEEDED: 1})) is None
    assert attrs.requeue_attrs(seed, 4) == {attrs.RETRY_OF: 4, attrs.SEEDED: "scout"}
    assert attrs.requeue_attrs(drawn, 4) == {attrs.RETRY_OF: 4}


def test_a_trial_failed_because_its_worker_died_says_so_and_names_its_retry():
    dead = _trial(state=TrialState.FAIL)  # failed by the next worker's heartbeat check: no error of its own
    dead.number = 5
    retry = _trial(system_attrs={"failed_trial": 5})
    retry.number = 7
    resumed = _trial(state=TrialState.WAITING, start=None, **{attrs.RETRY_OF: 3})  # a resume's: not a dead worker
    resumed.number = 8
    assert attrs.retries([dead, retry, resumed]) == {5: 7}
    assert attrs.failure_reason(dead) is None  # it used to show an empty error
    assert attrs.failure_reason(dead, retried_as=7) == ("its worker stopped without finishing (no heartbeat); "
                                                        "run again as trial 7")
    assert attrs.failure_reason(_trial(state=TrialState.FAIL, **{attrs.ERROR: "OOM"}), retried_as=7) == "OOM"


def test_duration_of_complete_running_and_waiting_trials():
    assert attrs.duration_seconds(_trial(start=10, end=70)) == 60.0
    running = _trial(state=TrialState.RUNNING, start=10)
    assert attrs.duration_seconds(running) is None
    assert attrs.duration_seconds(running, T0 + dt.timedelta(seconds=25)) == 15.0
    waiting = _trial(state=TrialState.WAITING, start=None)
    assert attrs.duration_seconds(waiting, T0) is None
    pruned = _trial(state=TrialState.PRUNED, start=0)  # ended without a completion time: no duration
    assert attrs.duration_seconds(pruned, T0 + dt.timedelta(seconds=5)) is None


# -------------------------------------------------------------- trial writers
def test_what_the_writers_write_the_readers_read_back():
    s = optuna.create_study()
    trial = s.ask()
    attrs.set_worker(trial, "w1")
    attrs.set_history(trial, [{"epoch": 1, "val_accuracy": 0.5}])
    attrs.set_rungs(trial, [{"rung": 0, "fraction": 0.1, "epoch": 1, "value": 0.5, "promoted": False}])
    attrs.set_diverged(trial, "validation accuracy at chance")
    attrs.set_metrics(trial, {"best_epoch": 1})
    attrs.set_artifacts(trial, {"model.keras": "id-1"})
    attrs.set_error(trial, "boom")
    attrs.mark_interrupted(trial)
    s.tell(trial, state=TrialState.PRUNED)
    t = s.trials[0]
    assert set(t.user_attrs) == {attrs.WORKER, attrs.HISTORY, attrs.RUNGS, attrs.DIVERGED, attrs.METRICS,
                                 attrs.ARTIFACTS, attrs.ERROR, attrs.INTERRUPTED}
    assert attrs.worker(t) == "w1" and attrs.epochs(t) == 1 and attrs.rungs(t)[0]["promoted"] is False
    assert attrs.diverged(t) == "validation accuracy at chance" and attrs.metrics(t) == {"best_epoch": 1}
    assert attrs.artifacts(t) == {"model.keras": "id-1"} and attrs.failure_reason(t) == "boom"


def test_study_readers():
    assert attrs.stored_spec({}) is None and attrs.stored_spec({attrs.SPEC: "x"}) is None
    assert attrs.stored_spec({attrs.SPEC: {"name": "s"}}) == {"name": "s"}
    assert attrs.created_at({}) == "" and attrs.created_at({attrs.CREATED: "2025-03-01T09:00:00+00:00"})
    assert not attrs.stop_flag({}) and attrs.stop_flag({attrs.STOP: True}) and not attrs.stop_flag({attrs.STOP: False})
    assert attrs.started_at({attrs.STARTED: 12}) == 12.0 and attrs.started_at({}) is None
    assert attrs.started_at({attrs.STARTED: True}) is None and attrs.started_at({attrs.STARTED: "soon"}) is None
    assert attrs.requeued({attrs.REQUEUED: [1, 3, "x"]}) == {1, 3} and attrs.requeued({}) == set()
    assert attrs.scout_record({attrs.SCOUT: {"skipped": "too slow"}}) == {"skipped": "too slow"}
    assert attrs.scout_record({attrs.SCOUT: "junk"}) is None


# ---------------------------------------------------------------- direction
def test_reading_a_direction():
    assert maximizes("maximize") and maximizes("MAXIMIZE") and maximizes(StudyDirection.MAXIMIZE)
    assert not maximizes("minimize") and not maximizes(StudyDirection.MINIMIZE)
    assert maximizes(None)  # a bare list of trials: maximize
    for bad in ("up", StudyDirection.NOT_SET, 1):
        with pytest.raises(ConfigError):
            maximizes(bad)


@pytest.mark.parametrize("direction, better, worse", [(MAXIMIZE, 0.9, 0.1), (MINIMIZE, 0.1, 0.9)])
def test_better_is_strict_in_both_directions(direction, better, worse):
    assert is_better(better, worse, direction) and not is_better(worse, better, direction)
    assert not is_better(0.5, 0.5, direction)  # a tie is not better: the earlier value stands
    assert comparator(direction)(better, worse) and not comparator(direction)(0.5, 0.5)
    assert sorted([worse, 0.5, better], key=lambda v: rank_key(v, direction)) == [better, 0.5, worse]


def test_the_best_trial_is_the_best_complete_one_and_the_first_of_equals():
    trials = [_trial(value=0.7, start=0, end=1), _trial(value=0.9, start=0, end=2),
              _trial(value=0.9, start=0, end=3), _trial(value=0.2, start=0, end=4),
              _trial(state=TrialState.PRUNED, start=0, end=5), _trial(state=TrialState.RUNNING, start=0)]
    hi, lo = best_of(trials, "maximize"), best_of(trials, StudyDirection.MINIMIZE)
    assert hi is trials[1] and lo is trials[3]
    assert best_of(trials[4:], "maximize") is None and best_of([], "minimize") is None


def test_the_studys_best_trial_and_summary_follow_the_direction():
    for direction, expected in (("maximize", 0.9), ("minimize", 0.2)):
        s = optuna.create_study(direction=direction)
        for v in (0.7, 0.9, 0.2):
            s.add_trial(_trial(value=v, start=0, end=1))
        assert results.best_trial(s).value == expected
        assert list(results.best_so_far(s)["value"])[-1] == expected


def test_the_rung_pruner_keeps_the_better_value_by_direction():
    assert RungPruner(3, "maximize").promotes(0.9, [0.7, 0.8]) and not RungPruner(3, "maximize").promotes(0.7, [0.9])
    assert RungPruner(3, "minimize").promotes(0.1, [0.7, 0.8]) and not RungPruner(3, "minimize").promotes(0.7, [0.1])
    with pytest.raises(ConfigError):
        RungPruner(3, "sideways")


# ------------------------------------------------------------- worker state
WRITTEN_BY_A_TRAINING_WORKER = {
    "worker_id": "host-12-ab12", "pid": 12, "host": "host", "dataset": "pets", "root": "/ws", "started": 1.5e9, "updated": 1.5e9 + 60,
    "state": "training", "trials_done": 2, "trial": 5, "params": {"learning_rate": 0.001, "freeze_depth": 9},
    "epoch": 2, "epochs": 4, "batch": 5, "batches": 10, "rung": 1, "train_fraction": 0.333,
    "loss": 0.9, "accuracy": 0.6, "status": TRAINING_STATUS,
}


def test_the_states_are_the_words_in_the_file():
    assert [s.value for s in WorkerState] == ["starting", "scouting", "waiting", "training", "between trials",
                                              "finished", "crashed"]
    assert WorkerState.BETWEEN_TRIALS == "between trials" and f"[{WorkerState.FINISHED}]" == "[finished]"
    assert json.dumps(WorkerState.WAITING) == '"waiting"'


def test_a_record_round_trips_through_its_file(tmp_path):
    rec = WorkerRecord.from_dict(WRITTEN_BY_A_TRAINING_WORKER)
    assert rec.state is WorkerState.TRAINING and rec.trial == 5 and rec.rung == 1 and rec.extra == {}
    assert rec.to_dict() == WRITTEN_BY_A_TRAINING_WORKER  # the same keys and values as the worker wrote
    path = tmp_path / "w.json"
    rec.write(path)
    assert json.loads(path.read_text()) == WRITTEN_BY_A_TRAINING_WORKER
    assert WorkerRecord.read(path) == rec
    assert rec.progress == pytest.approx((1 + 0.5) / 4)


def test_a_file_with_missing_keys_reads_with_defaults(tmp_path):
    # What launch_workers wrote before a worker took over, and an older worker's file with nulls.
    launched = {"worker_id": "w0", "pid": 7, "host": "h", "started": 1.0, "updated": 1.0, "state": "starting",
                "trials_done": 0}
    rec = WorkerRecord.from_dict(launched)
    assert rec.state is WorkerState.STARTING and rec.trial is None and rec.epoch is None and rec.status is None
    assert rec.reason is None and rec.progress is None and rec.to_dict() == launched
    old = WorkerRecord.from_dict({"pid": 8, "state": "waiting", "trial": None, "rung": None})
    assert (old.worker_id, old.host, old.trials_done, old.trial, old.rung) == ("", "", 0, None, None)
    assert "trial" not in old.to_dict()  # None is left out; a reader's .get() gives None either way
    assert WorkerRecord.from_dict({}).state == MISSING_STATE
    assert WorkerRecord.read(tmp_path / "none.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert WorkerRecord.read(tmp_path / "list.json") is None


def test_an_unknown_state_and_unknown_keys_are_kept():
    data = {**WRITTEN_BY_A_TRAINING_WORKER, "state": "compiling", "gpu": "H200"}
    rec = WorkerRecord.from_dict(data)
    assert rec.state == "compiling" and not isinstance(rec.state, WorkerState)
    assert rec.extra == {"gpu": "H200"} and rec.to_dict() == data


def test_values_of_the_wrong_type_read_as_none():
    rec = WorkerRecord.from_dict({"pid": "12", "epoch": "two", "epochs": True, "loss": float("nan"),
                                  "params": "lr=0.1", "trials_done": None, "started": "noon"})
    assert rec.pid == 12 and rec.epoch is None and rec.epochs is None and rec.loss is None
    assert rec.params is None and rec.trials_done == 0 and rec.started is None


def test_update_sets_known_fields_only():
    rec = WorkerRecord(worker_id="w")
    rec.update(state=WorkerState.TRAINING, trial=1, epoch=0, batch=0)
    assert rec.to_dict()["state"] == "training" and rec.to_dict()["trial"] == 1
    with pytest.raises(TypeError):
        rec.update(epoc=1)
    # every field but ``extra`` is a key of the file, and from_dict reads every one of them
    names = {f.name for f in fields(WorkerRecord)} - {"extra"}
    full = WorkerRecord.from_dict({**WRITTEN_BY_A_TRAINING_WORKER, "reason": "stop requested", "finished": 2e9,
                                     "cause": "storage"})
    assert set(full.to_dict()) == names and full.extra == {}
    assert WorkerRecord.from_dict(full.to_dict()) == full


def test_list_workers_reads_old_files_and_marks_the_dead_crashed(workspace):
    wdir = study_local_dir(workspace, "s") / "workers"
    assert wdir == workers_dir(workspace, "s")
    assert (state_path(workspace, "s", "w1"), log_path(workspace, "s", "w1")) == (wdir / "w1.json", wdir / "w1.log")
    wdir.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process
    here = socket.gethostname()
    (wdir / "dead.json").write_text(json.dumps({"pid": gone.pid, "host": here, "state": "training", "trial": 0,
                                                "started": 2.0}))
    (wdir / "done.json").write_text(json.dumps({"worker_id": "done", "pid": os.getpid(), "host": here,
                                                "state": "finished", "reason": "budget met", "started": 1.0}))
    (wdir / "far.json").write_text(json.dumps({"worker_id": "far", "pid": 1, "host": "elsewhere",
                                               "state": "compiling", "started": 3.0}))
    (wdir / "nopid.json").write_text(json.dumps({"worker_id": "x", "state": "training"}))
    workers = list_workers(workspace, "s")
    assert [w.worker_id for w in workers] == ["far", "dead", "done"]  # newest first; no pid: skipped
    far, dead, done = workers
    assert (dead.state, dead.alive, dead.trial, dead.record.state) == (WorkerState.CRASHED, False, 0, "training")
    assert (done.state, done.alive, done.record.reason, done.data["reason"]) == ("finished", False, "budget met",
                                                                              "budget met")
    assert (far.state, far.alive) == ("compiling", False)  # another machine's: not judged from here
