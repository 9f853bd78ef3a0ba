"""A training job whose launcher died before the training process started.

``launch_training`` (the Train page) makes the job folder (``queued``, no process number yet), then
starts the process and records its pid. A server killed in between left a job that ``job_status``
judged "launching" for ever: the Train page showed "Queued: the training process is starting" with a
Stop that could not stop it, and the dataset could never be removed (a running training job used it).
The leftover is made directly, as the killed launcher leaves it.
"""

from __future__ import annotations

import time

from tlcore import train_jobs as tj
from tlcore.config import TrainSpec


def _orphan(ws, age: float) -> tj.TrainJob:
    job = tj._new_job(ws, TrainSpec(dataset="tiny", epochs=1, image_size=32), "page")  # launcher killed here
    tj._update(job, created=time.time() - age)
    return job


def test_a_queued_job_whose_process_never_started_is_crashed_after_the_grace(workspace):
    job = _orphan(workspace, 3600.0)  # an hour: far past background.LAUNCH_GRACE_S
    s = tj.job_status(job)
    assert s.status == "crashed" and not s.alive and s.final
    assert "never started" in s.error and "start the run again" in s.error
    assert [j.status for j in tj.list_jobs(workspace)] == ["crashed"]


def test_a_job_being_launched_now_is_still_queued(workspace):
    job = _orphan(workspace, 1.0)
    s = tj.job_status(job)
    assert s.status == "queued" and s.alive
    assert [(j.id, j.status) for j in tj.list_jobs(workspace)] == [(job.id, "queued")]
