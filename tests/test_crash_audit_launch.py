"""An audit job whose launcher died before the audit process started, and the audit process's own pid.

``launch_audit`` (the Datasets page) makes the job folder and its ``status.json`` (``queued``, no pid),
then starts the process and records its pid. A server killed in between left a job that
``audit_status`` reported as queued for ever: the Audit tab said "Auditing for 3602 s", and the
dataset was "in use now" by it, so it could never be removed. The leftovers are made directly, as
the killed launcher leaves them.
"""

from __future__ import annotations

import json
import os
import time

from tlcore.audit import audit_jobs, audit_status
from tlcore.audit._jobs import StatusWriter


def _job(ws, name: str, job_id: str, status: dict | None) -> str:
    folder = ws.dataset_dir(name) / "audits" / "jobs" / job_id
    folder.mkdir(parents=True)
    if status is not None:
        (folder / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return job_id


def test_a_queued_audit_whose_process_never_started_is_failed_after_the_grace(workspace):
    _job(workspace, "d", "20260101-000000-aaaaaa",
         {"state": "queued", "started": time.time() - 3600, "done": 0, "total": 0, "text": ""})
    [job] = audit_jobs(workspace, "d")
    assert job["state"] == "failed" and "never started" in job["error"]


def test_a_job_folder_without_its_status_file_is_failed_once_old(workspace):
    job_id = _job(workspace, "d", "20260101-000000-bbbbbb", None)
    folder = workspace.dataset_dir("d") / "audits" / "jobs" / job_id
    old = time.time() - 3600
    os.utime(folder, (old, old))
    assert audit_status(workspace, "d", job_id)["state"] == "failed"


def test_an_audit_being_launched_now_is_still_queued(workspace):
    job_id = _job(workspace, "d", "20260101-000000-cccccc",
                  {"state": "queued", "started": time.time(), "done": 0, "total": 0, "text": ""})
    assert audit_status(workspace, "d", job_id)["state"] == "queued"


def test_the_audit_process_records_its_own_pid(tmp_path):
    """It may start before its launcher has written the pid: its status then still names its process, so
    a live audit is never taken for a launch that never started."""
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"state": "queued", "started": time.time() - 3600}), encoding="utf-8")
    StatusWriter(status)
    assert json.loads(status.read_text(encoding="utf-8"))["pid"] == os.getpid()
