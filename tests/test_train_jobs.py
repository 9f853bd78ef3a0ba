"""Training jobs (tlcore.train_jobs): real background runs on tiny data, stop, crash, the CLI's own job.

The real jobs train 32 px images of three tinted classes with random weights, so each
epoch takes a fraction of a second; most of a job's time is its process loading TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.runs import write_tinted_tree
from tlcore import background
from tlcore import train_jobs as tj
from tlcore.cli import main
from tlcore.config import TrainSpec
from tlcore.datasets import add_dataset
from tlcore.errors import NotFoundError
from tlcore.runfolder import RunFolder

JOB_TIMEOUT = 300  # seconds a tiny job may take on a loaded machine (TensorFlow's import dominates)


@pytest.fixture
def ws(workspace):
    add_dataset(workspace, "tiny", write_tinted_tree(workspace.root / "photos"))
    return workspace


def tiny_spec(**kw) -> TrainSpec:
    return TrainSpec(**{"dataset": "tiny", "weights": None, "image_size": 32, "epochs": 2, "batch_size": 8, **kw})


def wait_for(job: tj.TrainJob, done, timeout: float = JOB_TIMEOUT) -> tj.JobStatus:
    """Poll ``job_status`` until ``done(status)``; fail with the job's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        s = tj.job_status(job)
        if done(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job.id} is {s.status} after {timeout} s; log:\n"
                                 + background.log_tail(job.log_file, 30))
        time.sleep(0.3)


def finished(s: tj.JobStatus) -> bool:
    return s.final


def runs(ws) -> list[str]:
    return sorted(p.name for p in ws.models_dir.iterdir()) if ws.models_dir.is_dir() else []


def write_state(job: tj.TrainJob, **state) -> None:
    """A state file as a training process writes it (the format the module docstring gives)."""
    job.state_file.write_text(json.dumps({"id": job.id, "host": socket.gethostname(), **state}))


def dummy_process(*args: str) -> subprocess.Popen:
    """A process that looks like a tlcore process (its command line says so) and ignores stop requests."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore", *args],
                            start_new_session=True)
    background.track_child(proc)
    return proc


# ------------------------------------------------------------------ real jobs
@pytest.mark.slow
def test_two_jobs_at_once_both_finish_with_their_epochs(ws):
    a = tj.launch_training(ws, tiny_spec())
    b = tj.launch_training(ws, tiny_spec(seed=1))
    assert tj.job_status(a).status in ("queued", "running")
    assert (a.folder / "spec.yaml").is_file() and tj.job_status(a).spec == tiny_spec()
    done = [wait_for(j, finished) for j in (a, b)]
    assert [s.status for s in done] == ["finished", "finished"], [s.error for s in done]
    for s in done:
        epochs = tj.read_progress(s.job).epochs
        assert [e["epoch"] for e in epochs] == [1, 2]
        for e in epochs:
            assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(e)
            assert e["epoch_seconds"] > 0
        assert s.state["started"] <= s.state["ended"] and s.state["source"] == "page"
        assert RunFolder(s.run_dir).model_file.is_file()
        assert s.state["metrics"]["epochs_run"] == 2 and s.state["metrics"]["test_accuracy"] is not None
        assert "Training efficientnet_lite0" in background.log_tail(s.job.log_file, 200)
    assert done[0].run_dir != done[1].run_dir
    assert runs(ws) == sorted(s.run_dir.name for s in done)  # two whole runs, nothing half-written
    assert {s.id for s in tj.list_jobs(ws)} == {a.id, b.id}


@pytest.mark.slow
def test_a_stop_request_saves_the_best_epoch_and_a_killed_job_is_crashed_with_its_log(ws):
    stop, kill = tj.launch_training(ws, tiny_spec(epochs=5000)), tj.launch_training(ws, tiny_spec(epochs=5000, seed=1))
    for job in (stop, kill):
        wait_for(job, lambda s, job=job: s.final or len(tj.read_progress(job).epochs) >= 1)
    assert tj.stop_job(stop) == "running"
    assert tj.job_status(stop).stop_requested is not None
    os.kill(tj.job_status(kill).state["pid"], signal.SIGKILL)

    s = wait_for(stop, finished)
    assert s.status == "stopped", s.error
    m = RunFolder(s.run_dir).read_metrics()
    assert m["stopped_early"] and 1 <= m["epochs_run"] < 5000
    assert m["best_epoch"] <= m["epochs_run"] and "test" in m
    assert len(tj.read_progress(stop).epochs) == m["epochs_run"]
    assert "best epoch so far was saved" in s.state["note"]

    k = wait_for(kill, finished, timeout=30)
    assert k.status == "crashed" and k.run_dir is None
    assert "ended without saying it finished" in k.error
    assert re.search(r"epoch \d+/5000  loss", k.log_tail)  # the end of its log: its last epochs
    assert runs(ws) == [s.run_dir.name]  # the killed job left nothing in models/
    assert {j.status for j in tj.list_jobs(ws)} == {"stopped", "crashed"}


def test_a_terminal_run_registers_a_job_with_its_epochs(ws, capsys):
    code = main(["--workspace", str(ws.root), "train", "--data", "tiny", "--weights", "none", "--image-size", "32",
                 "--epochs", "2", "--batch-size", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [s] = tj.list_jobs(ws)
    assert (s.status, s.state["source"], s.state["pid"]) == ("finished", "cli", os.getpid())
    assert f"(job {s.id})" in err
    [printed] = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Run folder:")]
    assert Path(printed).resolve() == s.run_dir and RunFolder(s.run_dir).model_file.is_file()
    assert [e["epoch"] for e in tj.read_progress(s.job).epochs] == [1, 2]
    assert s.spec.dataset == "tiny" and s.spec.epochs == 2


def test_a_stop_before_the_first_epoch_saves_nothing(ws, capsys):
    job = tj.register_job(ws, tiny_spec(), source="page")
    tj.stop_job(job)  # queued, no process yet: only the request
    code = main(["--workspace", str(ws.root), "train", "--spec", str(job.spec_file), "--job", job.id])
    assert code == 0
    assert "nothing was saved" in capsys.readouterr().err
    s = tj.job_status(job)
    assert s.status == "stopped" and s.run_dir is None and "nothing was saved" in s.state["note"]
    assert runs(ws) == []


def test_an_error_in_the_run_is_a_crashed_job_with_the_message(ws, capsys):
    job = tj.register_job(ws, tiny_spec(freeze_depth=99, method="fine_tune"), source="page")
    assert main(["--workspace", str(ws.root), "train", "--spec", str(job.spec_file), "--job", job.id]) == 2
    s = tj.job_status(job)
    assert s.status == "crashed" and "freeze_depth must be between 0 and" in s.error


# ------------------------------------------------------------------ states without training
def test_a_job_whose_process_is_gone_is_crashed_with_the_end_of_its_log(ws):
    job = tj.register_job(ws, tiny_spec())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_state(job, status="running", pid=gone.pid, epoch=3, epochs=5)
    job.log_file.write_text("epoch 3/5 ...\nTraceback (most recent call last):\nMemoryError\n")
    s = tj.job_status(job)
    assert s.status == "crashed" and not s.alive
    assert s.log_tail.endswith("MemoryError")
    write_state(job, status="finished", pid=gone.pid)  # a final state stays what it says
    assert tj.job_status(job).status == "finished"


def test_terminate_ends_a_job_that_does_not_react_to_its_stop_request(ws):
    job = tj.register_job(ws, tiny_spec())
    proc = dummy_process()
    try:
        write_state(job, status="running", pid=proc.pid, started=time.time())
        assert tj.job_status(job).alive
        assert tj.stop_job(job) == "running"  # asked; it ignores the request
        assert job.stop_file.is_file() and tj.job_status(job).status == "running"
        assert tj.stop_job(job, force=True) == "stopped"
        assert proc.poll() is not None
        s = tj.job_status(job)
        assert "Terminated" in s.state["note"] and s.run_dir is None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_jobs_are_listed_newest_first_and_unknown_ids_are_refused(ws):
    first = tj.register_job(ws, tiny_spec())
    time.sleep(1.1)  # ids start with the second they were made
    second = tj.register_job(ws, tiny_spec(epochs=3))
    assert [s.id for s in tj.list_jobs(ws)] == [second.id, first.id]
    assert tj.open_job(ws, first.id) == first
    for bad in ("nope", "../models", "20260101-000000-abcd"):
        with pytest.raises(NotFoundError):
            tj.open_job(ws, bad)


# ------------------------------------------------------------------ Ctrl-C in a terminal
def _cli_train(ws, tmp_path) -> subprocess.Popen:
    spec_file = tmp_path / "long.yaml"
    spec_file.write_text(tiny_spec(epochs=500).to_yaml())
    proc = subprocess.Popen([sys.executable, "-m", "tlcore", "--workspace", str(ws.root), "train", "--spec",
                             str(spec_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    background.track_child(proc)
    return proc


def _after_first_epoch(ws) -> tj.TrainJob:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        jobs = tj.list_jobs(ws)
        if jobs and tj.read_progress(jobs[0].job).epochs:
            return jobs[0].job
        time.sleep(0.3)
    raise AssertionError("no epoch ended in time")


@pytest.mark.slow
def test_ctrl_c_in_the_terminal_stops_as_the_page_does_and_saves_the_best_epoch(ws, tmp_path):
    """Ctrl-C during `python -m tlcore train` kept nothing, even after epochs had ended."""
    proc = _cli_train(ws, tmp_path)
    job = _after_first_epoch(ws)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=JOB_TIMEOUT)
    assert proc.returncode == 0, err
    assert "Stopping after this batch" in err and "the best epoch was saved" in err, err
    s = tj.job_status(job)
    assert s.status == "stopped" and RunFolder(s.run_dir).is_complete()
    assert any("Stop requested (Ctrl-C)" in (r.get("text") or "") for r in tj.read_progress(job).events)


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_saves_nothing(ws, tmp_path):
    proc = _cli_train(ws, tmp_path)
    job = _after_first_epoch(ws)
    proc.send_signal(signal.SIGINT)
    # The second only once the first was taken: two SIGINTs pending before the process runs again (a busy
    # machine) are delivered as one, which is the first Ctrl-C, and the best epoch was saved.
    deadline = time.monotonic() + JOB_TIMEOUT
    while not any("Stop requested (Ctrl-C)" in (r.get("text") or "") for r in tj.read_progress(job).events):
        assert time.monotonic() < deadline and proc.poll() is None, "the first Ctrl-C was not taken"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=JOB_TIMEOUT)  # evaluating and saving take far longer than this poll
    assert proc.returncode == 130, err
    assert tj.job_status(job).status == "stopped" and runs(ws) == []


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_ends_exits_as_interrupted(ws, tmp_path):
    """It said nothing was saved and exited 0, as if the command had done its work."""
    proc = _cli_train(ws, tmp_path)
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:  # training has begun (its data are being decoded): Ctrl-C means Stop
        jobs = tj.list_jobs(ws)
        if jobs and any("Decoding" in (r.get("text") or "") for r in tj.read_progress(jobs[0].job).events):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=JOB_TIMEOUT)
    assert "before the first epoch ended: nothing was saved" in err, err
    assert proc.returncode == 130 and runs(ws) == []


@pytest.mark.slow
def test_a_reader_that_goes_away_does_not_stop_the_training(ws, tmp_path):
    """`python -m tlcore train ... | head -1` crashed the run with a BrokenPipeError at the next epoch
    line, and nothing was saved."""
    spec_file = tmp_path / "three.yaml"
    spec_file.write_text(tiny_spec(epochs=3).to_yaml())
    proc = subprocess.Popen([sys.executable, "-m", "tlcore", "--workspace", str(ws.root), "train", "--spec",
                             str(spec_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    background.track_child(proc)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does after its line
    err = proc.stderr.read()
    proc.wait(timeout=JOB_TIMEOUT)
    assert first.startswith("epoch 1/3"), first
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert len(runs(ws)) == 1 and tj.job_status(tj.list_jobs(ws)[0].job).status == "finished"
