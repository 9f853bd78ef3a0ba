"""Removing a dataset is refused while something on this machine uses it: a running training job, live
workers of a search study on it, a running scout or audit (``tlcore.dataset_users``). The refusal names
each user and how to stop it, and nothing is removed or deleted. Only live processes count: the files a
crashed job or a dead worker left never block a removal. ``--force`` removes anyway. The Datasets page
names the users beside its Remove button and shows the refusal as its other errors.

Live processes are stand-ins: a sleeping Python whose command line names tlcore (as
``background.pid_alive`` wants of a tlcore process), written into each kind's own record the way
its writer writes it (``register_job``, ``launch_scout``, ``launch_audit``, ``launch_workers``, a worker state
file)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.idx import write_idx
from tests.helpers.pagetest import shown_text
from tests.helpers.searchfix import tiny_spec
from tlcore import background
from tlcore import train_jobs as tj
from tlcore.cli import main
from tlcore.config import TrainSpec
from tlcore.dataset_users import dataset_users, in_use_error, remove_if_unused
from tlcore.datasets import add_dataset, add_idx_dataset
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace

PAGE = "pages/1_Datasets.py"


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture
def ws(workspace, tmp_path, make_image_tree, monkeypatch) -> Workspace:
    """'pets' (an IDX import: the workbench made its files, so --delete-files deletes them) and 'other'."""
    monkeypatch.delenv("TLCORE_STORAGE", raising=False)  # the stand-in workers inherit this environment
    images = np.random.default_rng(0).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 4, dtype=np.uint8)
    add_idx_dataset(workspace, "pets", write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", labels),
                    class_names=["cat", "dog", "owl"])
    add_dataset(workspace, "other", make_image_tree(workspace.root / "photos", {"a": 3, "b": 3}))
    return workspace


@pytest.fixture
def live(request):
    """``live(*args, env=None)``: a new stand-in tlcore process (killed after the test); returns it."""
    started: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore-stand-in", *args],
                                env=env, start_new_session=True)
        background.track_child(proc)
        started.append(proc)
        return proc

    def stop_all() -> None:
        for proc in started:
            proc.kill()
            proc.wait()

    request.addfinalizer(stop_all)
    return start


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process
    return gone.pid


def end(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    background.reap()


def job_on(ws: Workspace, dataset: str, **state) -> tj.TrainJob:
    """A training job on ``dataset`` whose state file says ``state`` (as its training process writes it)."""
    job = tj.register_job(ws, TrainSpec(dataset=dataset, weights=None, image_size=32, epochs=2), source="page")
    data = json.loads(job.state_file.read_text())
    job.state_file.write_text(json.dumps({**data, "host": socket.gethostname(), **state}))
    return job


def worker_file(ws: Workspace, study: str, wid: str, pid: int, state: str = "training", dataset: str = "pets") -> None:
    """A worker state file as ``launch_workers`` / ``run_worker`` write it."""
    wdir = ws.root / "studies" / "local" / study / "workers"
    wdir.mkdir(parents=True, exist_ok=True)
    (wdir / f"{wid}.json").write_text(json.dumps({"worker_id": wid, "pid": pid, "host": socket.gethostname(),
                                                  "dataset": dataset, "state": state, "started": time.time(),
                                                  "trial": 0}))


def refused(ws: Workspace, name: str = "pets", **kw) -> str:
    """Remove ``name`` (with its files), expect the refusal, check nothing was removed; the message."""
    entry = ws.get_dataset(name).to_dict()
    folder = Path(entry["path"])
    files = sorted(folder.rglob("*"))
    index = (ws.dataset_dir(name, create=False) / "index.parquet").read_bytes()
    with pytest.raises(DatasetError) as info:
        remove_if_unused(ws, name, delete_files=True, **kw)
    assert ws.get_dataset(name).to_dict() == entry
    assert sorted(folder.rglob("*")) == files and files
    assert (ws.dataset_dir(name, create=False) / "index.parquet").read_bytes() == index
    text = str(info.value)
    assert f"The dataset {name!r} is in use" in text and "Nothing was removed or deleted." in text
    assert f"datasets remove {name} --force" in text
    return text


def removed(ws: Workspace, name: str = "pets") -> None:
    folder = Path(ws.get_dataset(name).path)
    remove_if_unused(ws, name, delete_files=True)
    assert not ws.has_dataset(name) and not folder.exists()


# ------------------------------------------------------------------ nothing uses it
def test_a_dataset_nothing_uses_is_removed_as_before(ws):
    assert dataset_users(ws, "pets") == [] and in_use_error(ws, "pets") is None
    removed(ws)


# ------------------------------------------------------------------ training jobs
def test_a_running_training_job_blocks_until_its_process_ends(ws, live):
    proc = live()
    job = job_on(ws, "pets", status="running", pid=proc.pid, started=time.time())
    other = job_on(ws, "other", status="running", pid=live().pid)  # another dataset's job: not named
    text = refused(ws)
    assert f"training job {job.id} (running, started from the Train page, process {proc.pid})" in text
    assert other.id not in text
    assert "Stop on the Train page" in text and "Ctrl-C" in text
    end(proc)  # the process is gone without a final state: crashed, blocks nothing
    assert tj.job_status(job).status == "crashed"
    removed(ws)


def test_a_queued_job_counts_while_it_starts(ws):
    job = tj.register_job(ws, TrainSpec(dataset="pets", weights=None, image_size=32))  # queued, no pid yet
    assert [u.ident for u in dataset_users(ws, "pets")] == [job.id]  # as the Train page shows it: queued
    refused(ws)


def test_finished_and_crashed_jobs_never_block(ws, live):
    job_on(ws, "pets", status="finished", pid=live().pid)  # a terminal's process still alive after its run
    job_on(ws, "pets", status="running", pid=dead_pid())  # killed: read as crashed
    job_on(ws, "pets", status="crashed", pid=live().pid)
    job_on(ws, "pets", status="running", pid=live().pid, host="another-machine")  # not this machine's
    removed(ws)


# ------------------------------------------------------------------ search workers
def test_live_workers_of_a_study_on_the_dataset_block(ws, live):
    from tlcore.search import create_study

    create_study(ws, tiny_spec("pets-search", dataset="pets"))
    create_study(ws, tiny_spec("other-search", dataset="other"))
    a, b = live(), live()
    worker_file(ws, "pets-search", "w1", a.pid)
    worker_file(ws, "pets-search", "w2", b.pid, state="waiting")
    worker_file(ws, "pets-search", "w3", dead_pid())  # crashed: not counted
    worker_file(ws, "pets-search", "w4", live().pid, state="finished")  # says it finished: not counted
    worker_file(ws, "other-search", "x1", live().pid, dataset="other")  # another dataset's study
    text = refused(ws)
    assert "search study 'pets-search' (2 workers)" in text and "other-search" not in text
    assert "'python -m tlcore search stop --study pets-search'" in text and "Search page" in text
    end(a)
    assert "search study 'pets-search' (1 worker)" in refused(ws)
    end(b)
    removed(ws)


def test_workers_name_their_study_s_dataset_from_the_launch_on(ws, stand_in_spawn, tmp_path):
    """launch_workers writes the study's dataset into each worker's first record, so a study kept
    anywhere (here another journal) is seen before its workers have loaded anything."""
    from tlcore.search import create_study
    from tlcore.search.local import launch_workers
    from tlcore.search.worker_state import list_workers

    journal = str(tmp_path / "journal.log")
    create_study(ws, tiny_spec("elsewhere", dataset="pets"), storage=journal)
    launch_workers(ws, "elsewhere", 2, storage=journal)
    assert {w.record.dataset for w in list_workers(ws, "elsewhere")} == {"pets"}
    [user] = dataset_users(ws, "pets")
    assert (user.kind, user.ident, len(user.pids)) == ("search study", "elsewhere", 2)
    assert "--study elsewhere' (with its --storage" in refused(ws)
    assert dataset_users(ws, "other") == []


def test_a_worker_record_without_a_dataset_is_read_as_before():
    from tlcore.search.worker_state import WorkerRecord

    rec = WorkerRecord.from_dict({"worker_id": "w", "pid": 5, "state": "training"})
    assert rec.dataset is None and "dataset" not in rec.to_dict()
    assert WorkerRecord.from_dict({**rec.to_dict(), "dataset": "pets"}).dataset == "pets"


# ------------------------------------------------------------------ scouts and audits
def test_a_running_scout_blocks_until_it_ends(ws, stand_in_spawn):
    from tlcore.scout import launch_scout, running_scouts

    run = launch_scout(ws, "pets", backbones=["efficientnet_lite0"], image_size=96, images=100)
    assert running_scouts(ws, "pets")  # what the Search page sees, too
    text = refused(ws)
    assert f"scout of efficientnet_lite0 at 96 px (process {run['pid']})" in text and "let the scout finish" in text
    Path(run["status"]).write_text(json.dumps({"state": "finished", "started": time.time()}))
    assert not running_scouts(ws, "pets")
    removed(ws)


def test_a_scout_whose_process_died_does_not_block(ws, stand_in_spawn):
    from tlcore.scout import launch_scout

    launch_scout(ws, "pets", backbones=["efficientnet_lite0"], image_size=96, images=100)
    end(stand_in_spawn[0])  # killed: its status still says "starting"
    removed(ws)


def test_a_running_audit_blocks_until_its_process_ends(ws, stand_in_spawn):
    from tlcore.audit import audit_status, launch_audit

    job = launch_audit(ws, "pets")
    assert audit_status(ws, "pets", job)["state"] == "queued"
    text = refused(ws)
    assert f"audit {job} (process {stand_in_spawn[0].pid})" in text and "let the audit finish" in text
    end(stand_in_spawn[0])
    assert audit_status(ws, "pets", job)["state"] == "failed"
    removed(ws)


def test_every_kind_is_named_in_one_refusal_and_force_removes_anyway(ws, live, stand_in_spawn):
    from tlcore.audit import launch_audit
    from tlcore.scout import launch_scout
    from tlcore.search import create_study

    job = job_on(ws, "pets", status="running", pid=live().pid)
    create_study(ws, tiny_spec("s", dataset="pets"))
    worker_file(ws, "s", "w1", live().pid)
    launch_scout(ws, "pets", backbones=["efficientnet_lite0"], image_size=96, images=100)
    audit = launch_audit(ws, "pets")
    text = refused(ws)
    order = [text.index(w) for w in (f"training job {job.id}", "search study 's' (1 worker)", "scout of",
                                     f"audit {audit}")]
    assert order == sorted(order)
    remove_if_unused(ws, "pets", delete_files=True, force=True)
    assert not ws.has_dataset("pets")


# ------------------------------------------------------------------ the CLI
def test_the_cli_refuses_with_exit_status_2_before_asking_and_force_removes(ws, live, capsys):
    job = job_on(ws, "pets", status="running", pid=live().pid)
    root = str(ws.root)
    for extra in (["--yes"], [], ["--delete-files", "--yes"]):  # without --yes: refused before the confirmation
        code = main(["--workspace", root, "datasets", "remove", "pets", *extra])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", err
        assert err.startswith("error: The dataset 'pets' is in use on this machine: training job " + job.id), err
        assert "Nothing was removed or deleted." in err and "--force" in err and len(err.splitlines()) == 1
        assert ws.has_dataset("pets")
    assert main(["--workspace", root, "datasets", "remove", "pets", "--yes", "--force"]) == 0
    assert "Removed 'pets'." in capsys.readouterr().out and not ws.has_dataset("pets")


def test_the_cli_help_documents_force(capsys):
    with pytest.raises(SystemExit):
        main(["datasets", "remove", "--help"])
    out = capsys.readouterr().out
    assert "--force" in out and "training job" in out


# ------------------------------------------------------------------ the Datasets page
def _page(dataset: str) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page(PAGE)
    at.query_params["dataset"] = dataset
    return at.run()


def test_the_page_names_the_users_before_the_click_and_shows_the_refusal(ws, live):
    proc = live()
    job = job_on(ws, "pets", status="running", pid=proc.pid)
    at = _page("pets")
    assert not at.exception
    warning = shown_text(at.warning)
    assert f"In use now: training job {job.id}" in warning and "stop the training job with Stop on the Train" in warning
    at.checkbox(key="ds_rm_confirm::pets").check()
    at.checkbox(key="ds_rm_files::pets").check()
    at.run()
    at.button(key="ds_rm_btn").click().run()
    assert not at.exception
    error = shown_text(at.error)
    assert "The dataset 'pets' is in use" in error and job.id in error and "Nothing was removed" in error
    assert ws.has_dataset("pets") and Path(ws.get_dataset("pets").path).is_dir()
    assert at.selectbox(key="ds_selected").value == "pets"

    end(proc)
    at.run()
    assert "In use now" not in shown_text(at.warning)
    at.button(key="ds_rm_btn").click().run()
    assert not at.exception and not at.error
    assert not ws.has_dataset("pets")


def test_the_page_says_nothing_about_a_dataset_nothing_uses(ws, live):
    job_on(ws, "other", status="running", pid=live().pid)
    at = _page("pets")
    assert not at.exception and "In use now" not in shown_text(at.warning)
