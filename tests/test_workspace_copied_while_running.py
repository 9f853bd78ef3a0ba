"""A workspace copied (``cp -a``) while a training job, search worker, scout or audit runs: the copy
holds the job's record, pid and all, but the process works in the original. Before, the copy showed it
running; its Stop and Terminate signalled the original's process (a 25-epoch run killed at epoch 1),
``search stop`` in the copy interrupted the original's worker, and the copy's datasets could not be
removed "in use". Now each record names the workspace its process works in (``root``; an audit its
status file), and a copy reads those jobs as ended elsewhere and never signals them.

Live processes are stand-ins: a sleeping Python whose command line names tlcore (as
``background.pid_alive`` wants)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore import background
from tlcore import train_jobs as tj
from tlcore.audit._jobs import StatusWriter, audit_status
from tlcore.config import TrainSpec
from tlcore.dataset_users import dataset_users
from tlcore.scout import _claim_run, running_scouts
from tlcore.search import create_study
from tlcore.search.local import stop_workers
from tlcore.search.worker_state import WorkerRecord, WorkerState, list_workers, state_path
from tlcore.workspace import Workspace


@pytest.fixture
def stand_in(request):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore-stand-in"],
                            start_new_session=True)
    background.track_child(proc)

    def end() -> None:
        proc.kill()
        proc.wait()

    request.addfinalizer(end)
    return proc


@pytest.fixture
def original(workspace) -> Workspace:
    add_tiny_dataset(workspace)
    return workspace


def _copy(ws: Workspace, tmp_path) -> Workspace:
    return Workspace(shutil.copytree(ws.root, tmp_path / "copy", symlinks=True))


def test_a_training_job_of_the_original_is_not_the_copy_s_to_stop(original, tmp_path, stand_in):
    job = tj.register_job(original, TrainSpec(dataset="tiny", weights=None, image_size=32, epochs=2), source="page")
    tj.JobReporter(job).start()  # as the training process writes it: its pid, host and workspace
    state = json.loads(job.state_file.read_text())
    job.state_file.write_text(json.dumps({**state, "pid": stand_in.pid}))
    assert state["root"] == str(original.root)

    copy = _copy(original, tmp_path)
    there = tj.job_status(tj.open_job(copy, job.id))
    assert there.status == "crashed" and not there.alive
    assert f"running in {original.root} when this workspace was copied or moved" in there.error
    assert f"pid {stand_in.pid}" in there.error and "cannot be stopped from here" in there.error
    assert tj.stop_job(tj.open_job(copy, job.id), force=True) == "crashed"
    assert stand_in.poll() is None  # the original's process was not signalled
    assert tj.running_jobs(copy) == [] and dataset_users(copy, "tiny") == []

    here = tj.job_status(job)  # the original still follows it
    assert here.status == "running" and here.alive


def test_a_search_worker_of_the_original_is_not_the_copy_s(original, tmp_path, stand_in):
    create_study(original, tiny_spec("s"))
    WorkerRecord(worker_id="w1", pid=stand_in.pid, host=socket.gethostname(), dataset="tiny",
                 root=str(original.root), started=time.time(), state=WorkerState.TRAINING, trial=0).write(
        _state_file(original, "s", "w1"))
    WorkerRecord(worker_id="w0", pid=stand_in.pid, host=socket.gethostname(), dataset="tiny",
                 root=str(original.root), started=time.time() - 60, state=WorkerState.FINISHED).write(
        _state_file(original, "s", "w0"))
    copy = _copy(original, tmp_path)
    assert [(w.worker_id, w.state) for w in list_workers(copy, "s")] == [("w0", WorkerState.FINISHED)]  # history
    assert stop_workers(copy, "s") == 0
    assert stand_in.poll() is None
    assert dataset_users(copy, "tiny") == []
    assert [w.worker_id for w in list_workers(original, "s") if w.alive] == ["w1"]


def _state_file(ws: Workspace, study: str, wid: str):
    path = state_path(ws, study, wid)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_scout_of_the_original_is_not_running_in_the_copy(original, tmp_path, stand_in):
    _claim_run(original, "tiny", backbones=["efficientnet_lite0"], image_size=96, images=100, weights=None,
               resize_mode="pad", start=lambda status, log: stand_in.pid)
    assert len(running_scouts(original, "tiny")) == 1
    copy = _copy(original, tmp_path)
    assert running_scouts(copy, "tiny") == []


def test_an_audit_of_the_original_reads_as_ended_in_the_copy(original, tmp_path, stand_in):
    folder = original.root / "datasets" / "tiny" / "audits" / "jobs" / "20261205-100000-abcdef"
    folder.mkdir(parents=True)
    writer = StatusWriter(folder / "status.json")
    writer.progress("Training fold 1 of 3", 1, 3)
    data = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**data, "pid": stand_in.pid}))
    assert audit_status(original, "tiny", folder.name)["state"] == "running"
    copy = _copy(original, tmp_path)
    there = audit_status(copy, "tiny", folder.name)
    assert there["state"] == "failed" and "when this one was copied or moved" in there["error"], there
    assert dataset_users(copy, "tiny") == []


@pytest.mark.slow
def test_a_worker_whose_workspace_is_moved_away_stops_instead_of_failing_trials(original, tmp_path, monkeypatch):
    """It went on in a new, empty folder of the old name (its writes made one): the next trials found no
    dataset there and failed one after another, spending the study's budget."""
    import tlcore.trainer
    from tlcore.search import load_study, run_worker

    journal = str(tmp_path / "shared.log")  # outside the workspace, as a shared study's storage is
    create_study(original, tiny_spec("s", n_trials=3), journal)
    real_train = tlcore.trainer.train

    def train_then_move_the_workspace(*args, **kwargs):
        res = real_train(*args, **kwargs)
        if not (tmp_path / "moved").exists():
            shutil.move(str(original.root), str(tmp_path / "moved"))
        return res

    monkeypatch.setattr(tlcore.trainer, "train", train_then_move_the_workspace)
    result = run_worker(original, "s", journal, log=lambda s: None)
    assert result.trials == [0], result
    assert result.reason.startswith(f"its workspace {original.root} was moved or deleted while it ran"), result
    states = [t.state.name for t in load_study(Workspace(tmp_path / "moved"), "s", journal).trials]
    assert "FAIL" not in states, states
