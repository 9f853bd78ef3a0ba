"""The Search page after a worker was killed mid-trial and a later worker ran that trial again.

A killed worker's trial is failed by the next worker (no heartbeat) and queued again; the study then
goes on and may finish. The page still said, in a warning, that "a trial it was running is queued
again when a worker next starts ... start workers again below", on a study with nothing left to run.
The leftover is made directly: the dead worker's state file, and the trials as the storage holds them.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from tests.helpers.handstudy import hand_study, hand_trial
from tests.helpers.pagetest import open_page
from tlcore.search.storage import study_local_dir


def _dead_worker(ws, study: str, trial: int | None, **file) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process
    wdir = study_local_dir(ws, study) / "workers"
    wdir.mkdir(parents=True)
    (wdir / "w1.json").write_text(json.dumps({
        "worker_id": "w1", "pid": gone.pid, "host": socket.gethostname(), "state": "training", "trial": trial,
        "started": time.time(), **file}))
    (wdir / "w1.log").write_text("trial 0: epoch 1 val_acc 0.5\n")


@pytest.mark.parametrize("trial", [0, None])
def test_a_crash_whose_trial_has_been_run_again_is_history(workspace, trial):
    t0 = dt.datetime(2026, 1, 1)
    hand_study(workspace, "done", [
        hand_trial(t0, 0, 10, state=TrialState.FAIL),  # the killed trial, failed by the next worker
        hand_trial(t0, 11, 20, value=0.8),  # run again
    ], n_trials=1)
    _dead_worker(workspace, "done", trial)
    at = open_page("pages/4_Search.py", study="done")
    assert not at.exception, [e.value for e in at.exception]
    warning = next(w.value for w in at.warning if "crashed" in w.value).replace("\\", "")
    assert "crashed earlier" in warning and "Nothing waits on it" in warning
    assert "queued again when a worker next starts" not in warning


def test_a_crash_whose_trial_still_runs_asks_for_workers(workspace):
    t0 = dt.datetime(2026, 1, 1)
    hand_study(workspace, "stuck", [hand_trial(t0, 0, None, state=TrialState.RUNNING)])
    _dead_worker(workspace, "stuck", 0)
    at = open_page("pages/4_Search.py", study="stuck")
    assert not at.exception, [e.value for e in at.exception]
    warning = next(w.value for w in at.warning if "crashed" in w.value).replace("\\", "")
    assert "queued again when a worker next starts" in warning and "Add workers" in warning


@pytest.mark.parametrize("ended", [False, True])
def test_a_worker_the_database_outage_ended_is_not_called_crashed(workspace, ended):
    """A worker whose study database stayed away past its patience ends with ``cause: storage``; the page
    called it crashed ("it stopped without finishing ... check the log if it shows a problem to fix"), as if
    the worker were at fault."""
    t0 = dt.datetime(2026, 1, 1)
    trials = ([hand_trial(t0, 0, 10, state=TrialState.FAIL), hand_trial(t0, 11, 20, value=0.8)] if ended
              else [hand_trial(t0, 0, None, state=TrialState.RUNNING)])
    hand_study(workspace, "db", trials, n_trials=2)
    _dead_worker(workspace, "db", 0, state="crashed", cause="storage",
                 reason="The study storage stopped answering (OperationalError: ...); this worker stops.")
    at = open_page("pages/4_Search.py", study="db")
    assert not at.exception, [e.value for e in at.exception]
    warning = next(w.value for w in at.warning if "Worker w1" in w.value).replace("\\", "")
    assert "stopped when the study database stopped answering" in warning and "crashed" not in warning, warning
    assert ("has been run again since" if ended else "is run again once its heartbeat is missed") in warning
    assert "Add workers" in warning
    workers = next(df.value for df in at.dataframe if "worker" in df.value.columns and "pid" in df.value.columns)
    assert list(workers["state"]) == ["lost the database"]
