"""A workspace moved or copied to another folder keeps working, and never reads the old one's folders.

The registry, the training jobs' states and the scouts' records held absolute paths into the
workspace: after ``cp -a ws ws2`` a dataset the workbench had extracted or imported (a zip upload,
Fashion-MNIST, a folder inside the workspace) was still read from the OLD workspace while it existed
(training on ws2 read ws's images), and read as missing once it was moved; a job's run link pointed
at the old run folder. Paths inside the workspace are now recorded relative to its root; paths of the
user's own folders elsewhere stay absolute, and old absolute entries are still read.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.runs import write_tinted_tree
from tlcore import train_jobs as tj
from tlcore.config import TrainSpec
from tlcore.datasets import add_dataset, dataset_splits, folder_missing, load_index, load_scan_info
from tlcore.runfolder import RUN_FILES, RunFolder
from tlcore.workspace import Workspace


def _move(ws: Workspace, to, *, keep_old: bool = False) -> Workspace:
    """``cp -a ws to`` (then the old one renamed away, unless ``keep_old``); the workspace at ``to``."""
    shutil.copytree(ws.root, to, symlinks=True)
    if not keep_old:
        ws.root.rename(ws.root.with_name(ws.root.name + "-gone"))
    return Workspace(to)


@pytest.fixture
def outside(tmp_path, monkeypatch):
    folder = write_tinted_tree(tmp_path / "my-photos", per_class=3)
    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(folder))
    return folder


def test_datasets_inside_the_workspace_are_registered_relative_to_it(workspace, outside):
    add_dataset(workspace, "inside", write_tinted_tree(workspace.data_dir / "inside", per_class=3))
    add_dataset(workspace, "mine", outside)
    reg = json.loads((workspace.root / "datasets" / "registry.json").read_text())["datasets"]
    assert reg["inside"]["path"] == "data/inside"
    assert reg["mine"]["path"] == str(outside)  # the user's own folder: absolute, as before
    assert workspace.get_dataset("inside").path == str(workspace.root / "data" / "inside")
    assert load_scan_info(workspace, "inside")["root"] == "data/inside"


@pytest.mark.parametrize("keep_old", [False, True], ids=["moved", "copied"])
def test_a_moved_or_copied_workspace_reads_its_own_datasets(workspace, outside, tmp_path, keep_old):
    add_dataset(workspace, "inside", write_tinted_tree(workspace.data_dir / "inside", per_class=3))
    add_dataset(workspace, "mine", outside)
    ws2 = _move(workspace, tmp_path / "elsewhere" / "ws2", keep_old=keep_old)
    rec = ws2.get_dataset("inside")
    assert rec.path == str(ws2.root / "data" / "inside")  # not the old workspace's, even while it exists
    assert folder_missing(rec) is None
    assert load_index(ws2, "inside")["path"].str.startswith(str(ws2.root) + "/").all()
    assert len(dataset_splits(ws2, "inside")) == 9
    assert {r.name: r.path for r in ws2.list_datasets()} == {"inside": rec.path, "mine": str(outside)}


def test_an_old_absolute_entry_is_read_and_written_relative_once_inside_this_workspace(workspace, tmp_path):
    add_dataset(workspace, "a", write_tinted_tree(workspace.root / "photos", per_class=3))
    reg_file = workspace.root / "datasets" / "registry.json"
    reg = json.loads(reg_file.read_text())
    reg["datasets"]["a"]["path"] = str(workspace.root / "photos")  # as an older version wrote it
    other = str(tmp_path / "old-ws" / "data" / "x")  # inside another workspace: left as it is
    reg["datasets"]["x"] = {**reg["datasets"]["a"], "name": "x", "path": other}
    reg_file.write_text(json.dumps(reg))
    assert workspace.get_dataset("a").path == str(workspace.root / "photos")
    add_dataset(workspace, "b", write_tinted_tree(workspace.root / "more", per_class=3))  # any registry write
    paths = {k: v["path"] for k, v in json.loads(reg_file.read_text())["datasets"].items()}
    assert paths == {"a": "photos", "b": "more", "x": other}


def _finished_job(ws: Workspace, run_dir) -> tj.TrainJob:
    for name in RUN_FILES:
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text("{}")
    rep = tj.JobReporter(tj.register_job(ws, TrainSpec(dataset="demo", image_size=32, epochs=1)))
    rep.start()
    rep.finished(run_dir, {"best_epoch": 1})
    return rep.job


@pytest.mark.parametrize("keep_old", [False, True], ids=["moved", "copied"])
def test_a_moved_workspace_s_jobs_link_their_runs_there(workspace, tmp_path, keep_old):
    _finished_job(workspace, workspace.models_dir / "run-1")
    ws2 = _move(workspace, tmp_path / "ws2", keep_old=keep_old)
    [s] = tj.list_jobs(ws2)
    assert s.status == "finished" and s.run_dir == ws2.root / "models" / "run-1"
    assert RunFolder(s.run_dir).is_complete()
    assert s.state["run_dir"] == "models/run-1"  # recorded relative to the workspace


def test_a_run_outside_the_workspace_and_an_old_absolute_run_dir_are_read_as_they_are(workspace, tmp_path):
    out = tmp_path / "out" / "run-x"
    job = _finished_job(workspace, out)  # --out DIR elsewhere
    assert json.loads(job.state_file.read_text())["run_dir"] == str(out)
    assert tj.job_status(job).run_dir == out
    old = str(workspace.models_dir / "run-1")
    tj._update(job, run_dir=old)  # an older version's record
    assert tj.job_status(job).run_dir == workspace.models_dir / "run-1"


def test_a_copied_workspace_s_scout_record_reads_its_own_status_file(workspace, tmp_path):
    from tlcore import scout

    rec = scout.claim_terminal_scout(workspace, "demo", backbones=["efficientnet_lite0"], image_size=32, images=60)
    on_disk = json.loads(open(rec["record"]).read())
    assert (on_disk["status"], on_disk["log"]) == (rec["status"].rsplit("/", 1)[1], rec["log"].rsplit("/", 1)[1])
    ws2 = _move(workspace, tmp_path / "ws2", keep_old=True)
    copied = ws2.root / rec["record"][len(str(workspace.root)) + 1:]
    run = scout._read_run(copied)
    assert run["status"] == str(copied.parent / on_disk["status"]) and run["log"].startswith(str(ws2.root))
    (copied.parent / on_disk["status"]).write_text(json.dumps({"state": "finished", "result": "r.json"}))
    assert scout.scout_status(run)["state"] == "finished"  # the copy's own status, not the old one's


def test_an_old_scout_record_with_absolute_paths_is_read_as_it_is(workspace):
    from tlcore import scout

    rec = scout.claim_terminal_scout(workspace, "demo", backbones=["efficientnet_lite0"], image_size=32, images=60)
    record = json.loads(open(rec["record"]).read())
    with open(rec["record"], "w") as fh:
        json.dump({**record, "status": rec["status"], "log": rec["log"]}, fh)
    run = scout._read_run(rec["record"])
    assert (run["status"], run["log"]) == (rec["status"], rec["log"])


@pytest.mark.slow
def test_a_workspace_moved_after_training_trains_and_predicts_from_its_new_place(workspace, tmp_path, capsys):
    """For real: a dataset uploaded into the workspace (a zip), a run trained from the terminal, the
    workspace moved; the dataset, the job's run link and a second training all use the new place."""
    import zipfile

    from tlcore.cli import main
    from tlcore.datasets import add_zip_dataset
    from tlcore.predict import load_model, predict_images

    tree = write_tinted_tree(tmp_path / "src", per_class=8)
    with zipfile.ZipFile(tmp_path / "up.zip", "w") as zf:
        for png in sorted(tree.rglob("*.png")):
            zf.write(png, f"{png.parent.name}/{png.name}")
    add_zip_dataset(workspace, "up", tmp_path / "up.zip")
    args = ["train", "--data", "up", "--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8"]
    assert main(["--workspace", str(workspace.root), *args]) == 0
    ws2 = _move(workspace, tmp_path / "moved" / "ws")
    capsys.readouterr()
    assert ws2.get_dataset("up").path == str(ws2.root / "data" / "up")
    [s] = tj.list_jobs(ws2)
    assert s.run_dir.parent == ws2.models_dir and RunFolder(s.run_dir).is_complete()
    image = next((ws2.root / "data" / "up").rglob("*.png"))
    [preds] = predict_images(load_model(s.run_dir), [image])
    assert preds and preds[0].label in ("bird", "cat", "dog")
    assert main(["--workspace", str(ws2.root), *args]) == 0, capsys.readouterr().err
    jobs = tj.list_jobs(ws2)
    assert [j.status for j in jobs] == ["finished", "finished"]
    assert all(j.run_dir.parent == ws2.models_dir for j in jobs)
