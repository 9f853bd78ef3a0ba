"""A training job killed after its run folder was written, before it recorded that it finished.

``python -m tlcore train`` writes the run (``RunFolder.write``: a temporary ``.NAME.*.partial`` folder
renamed into place when whole), then sets the job ``finished`` with its ``run_dir``. A process killed
between the two (kill -9, out of memory, a restart) left a job that read "crashed" with no link to its
run, although model, history and metrics were all on disk. The job now records the folder it is about
to write (``run_target``, just before the write), and a job whose process is gone reads ``finished``
with that run when the folder is whole; a folder still under its temporary name is no run, and the job
stays ``crashed``.

The states are written as the killed process leaves them; the last test kills a real training process
(kill -9) right after its run folder is published.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.helpers.runs import write_tinted_tree
from tlcore import background
from tlcore import train_jobs as tj
from tlcore.config import TrainSpec
from tlcore.datasets import add_dataset
from tlcore.runfolder import RUN_FILES, RunFolder

METRICS = {"best_epoch": 2, "best_val_accuracy": 0.75, "test_accuracy": 0.5, "epochs_run": 2,
           "stopped_early": False}


def _spec() -> TrainSpec:
    return TrainSpec(dataset="tiny", weights=None, image_size=32, epochs=2, batch_size=8)


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _whole_run(folder):
    folder.mkdir(parents=True)
    for name in RUN_FILES:
        (folder / name).write_text("x")
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    return folder


def _killed_job(ws, **state) -> tj.TrainJob:
    """A job as a process killed while saving leaves it: running, two epochs done, its pid gone."""
    job = tj.register_job(ws, _spec())
    job.state_file.write_text(json.dumps({"id": job.id, "host": socket.gethostname(), "status": "running",
                                          "pid": _gone_pid(), "epoch": 2, "epochs": 2, **state}))
    job.log_file.write_text("epoch 2/2 ...\nCalibrating the confidences\n")
    return job


def test_a_job_killed_after_its_run_was_saved_reads_finished_with_its_run(workspace):
    run = _whole_run(workspace.models_dir / "tiny-run-1")
    job = _killed_job(workspace, run_target="models/tiny-run-1")
    s = tj.job_status(job)
    assert (s.status, s.final, s.alive, s.error) == ("finished", True, False, None)
    assert s.run_dir == run and RunFolder(s.run_dir).is_complete()
    assert "before it recorded so" in s.state["note"]
    assert s.state["metrics"]["best_val_accuracy"] == 0.75  # the run's own numbers, for the jobs table
    assert [(j.id, j.status, j.run_dir) for j in tj.list_jobs(workspace)] == [(job.id, "finished", run)]
    assert tj.running_jobs(workspace) == []
    assert json.loads(job.state_file.read_text())["status"] == "running"  # reading writes nothing


def test_an_absolute_target_of_a_run_outside_the_workspace_is_linked_too(workspace, tmp_path):
    run = _whole_run(tmp_path / "elsewhere" / "my-run")  # --out DIR
    job = _killed_job(workspace, run_target=str(run))
    s = tj.job_status(job)
    assert s.status == "finished" and s.run_dir == run


def test_a_stop_requested_before_the_kill_reads_stopped_with_its_run(workspace):
    run = _whole_run(workspace.models_dir / "tiny-run-1")
    job = _killed_job(workspace, run_target="models/tiny-run-1")
    job.stop_file.write_text("1\n")
    s = tj.job_status(job)
    assert s.status == "stopped" and s.run_dir == run


def test_a_job_killed_while_its_run_was_being_written_stays_crashed(workspace):
    # only the temporary folder of atomic_directory, with every file in it: not renamed, so no run
    _whole_run(workspace.models_dir / ".tiny-run-1.k2j4.partial")
    job = _killed_job(workspace, run_target="models/tiny-run-1")
    s = tj.job_status(job)
    assert (s.status, s.run_dir) == ("crashed", None)
    assert "ended without saying it finished" in s.error and "Calibrating" in s.log_tail


def test_a_target_that_is_not_a_whole_run_or_none_at_all_stays_crashed(workspace):
    part = _whole_run(workspace.models_dir / "tiny-run-1")
    (part / "model.keras").unlink()
    for state in ({"run_target": "models/tiny-run-1"}, {"run_target": "models/nothing-here"}, {}):
        job = _killed_job(workspace, **state)
        assert (tj.job_status(job).status, tj.job_status(job).run_dir) == ("crashed", None)


def test_terminate_of_a_job_that_saved_its_run_before_it_ended_records_the_run(workspace):
    run = _whole_run(workspace.models_dir / "tiny-run-1")
    job = tj.register_job(workspace, _spec())
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore"], start_new_session=True)
    background.track_child(proc)
    try:
        job.state_file.write_text(json.dumps({"id": job.id, "host": socket.gethostname(), "status": "running",
                                              "pid": proc.pid, "run_target": "models/tiny-run-1"}))
        assert tj.stop_job(job, force=True) == "stopped"
        state = json.loads(job.state_file.read_text())
        assert state["run_dir"] == "models/tiny-run-1" and "Nothing was saved" not in state["note"]
        assert tj.job_status(job).run_dir == run
    finally:
        if proc.poll() is None:
            proc.kill()


_KILL_AFTER_SAVE = """
import os, signal, sys
from tlcore import trainer
save = trainer._save_run
def save_then_die(*a, **k):
    save(*a, **k)  # the run folder is renamed into place here
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process is gone before it records it
trainer._save_run = save_then_die
from tlcore.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_real_training_process_killed_right_after_publishing_its_run(workspace):
    add_dataset(workspace, "tiny", write_tinted_tree(workspace.root / "photos"))
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_SAVE, "--workspace", str(workspace.root), "train", "--data", "tiny",
         "--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8"],
        capture_output=True, text=True, timeout=600, env=background.child_env())
    assert proc.returncode == -9, proc.stderr[-3000:]
    [s] = tj.list_jobs(workspace)
    assert s.state.get("run_target", "").startswith("models/")  # recorded before the write, relative
    assert s.status == "finished" and "before it recorded so" in s.state["note"]
    [run] = [p for p in workspace.models_dir.iterdir()]
    assert s.run_dir == run and RunFolder(run).is_complete()
