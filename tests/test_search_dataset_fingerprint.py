"""A study's workers must train on the same data: the dataset fingerprint kept in the study.

Before: a second workspace (another machine) whose copy of the study's dataset had one image of the
tiny dataset replaced, or that lacked a relabel the first had made, started workers without a word,
and the study compared trials trained on different data. Two workspaces sharing one journal file
behave here as two machines sharing a PostgreSQL database (the check compares host and workspace
root; their roots differ); one test runs on PostgreSQL, with a password in the URL.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from tests.helpers.clirun import assert_error, cli
from tests.helpers.runs import write_tinted_tree
from tests.helpers.searchfix import tiny_spec
from tlcore.datasets import add_dataset, add_overrides, dataset_splits
from tlcore.errors import DatasetError
from tlcore.search import attrs, create_study, open_storage
from tlcore.search.fingerprint import compare, dataset_fingerprint, fingerprint_of
from tlcore.search.local import launch_workers
from tlcore.search.storage import study_local_dir
from tlcore.search.study import DatasetChangedWarning, check_dataset_here
from tlcore.workspace import Workspace

STUDY = "shared"


def _workspace(root, *, replace: str | None = None) -> Workspace:
    """A workspace with the tiny dataset registered as "tiny"; ``replace``: the relpath of one image
    given other pixels first (another machine's copy, 35 of 36 images the same)."""
    ws = Workspace(root)
    photos = write_tinted_tree(ws.root / "photos")
    if replace is not None:
        arr = np.random.default_rng(99).integers(0, 255, size=(30, 40, 3), dtype=np.uint8)
        Image.fromarray(arr).save(photos / replace)
    add_dataset(ws, "tiny", photos)
    return ws


def _record(ws: Workspace, storage: str) -> dict:
    st = open_storage(ws, storage)
    return attrs.data_fingerprint(st.get_study_user_attrs(st.get_study_id_from_name(STUDY)))


@pytest.fixture
def journal(tmp_path) -> str:
    return str(tmp_path / "shared-journal.log")


@pytest.fixture
def first(tmp_path, journal) -> Workspace:
    """The workspace that created the study, in the shared journal."""
    ws = _workspace(tmp_path / "ws1")
    create_study(ws, tiny_spec(STUDY), journal)
    return ws


# ------------------------------------------------------------------ the fingerprint itself
def test_the_fingerprint_counts_each_split_and_class_and_says_where_two_differ():
    rows = pd.DataFrame({"relpath": ["a/1.png", "a/2.png", "b/1.png", "b/2.png", "x.png"],
                         "label": ["a", "a", "b", "b", "a"], "split": ["train", "val", "train", "train", ""],
                         "sha1": ["s1", "s2", "s3", "s4", "s5"]})
    fp = fingerprint_of(rows)
    assert fp["images"] == 4  # the unusable image trains nothing
    assert {k: v["n"] for k, v in fp["classes"].items()} == {"train/a": 1, "val/a": 1, "train/b": 2}
    assert fingerprint_of(rows.iloc[::-1]) == fp  # the index's order does not matter
    assert compare(fp, fp) == []

    other = rows.copy()
    other.loc[2, "sha1"] = "changed"  # b/1.png: other content
    other.loc[1, "label"] = "b"  # a/2.png relabelled: val/a empty, val/b new
    assert compare(fp, fingerprint_of(other)) == [
        "train/b: same count (2), different files or labels",
        "val/a: no images here, 1 on the study's machine",
        "val/b: 1 image here, none on the study's machine",
    ]


def test_the_fingerprint_is_of_the_data_after_the_overrides_and_without_reading_the_images(workspace):
    ws = _workspace(workspace.root)
    before = dataset_fingerprint(ws, "tiny")
    assert before["images"] == 36 and len(before["classes"]) == 9
    (ws.root / "photos" / "cat" / "cat_000.png").unlink()  # not read: the scan's hashes are
    assert dataset_fingerprint(ws, "tiny") == before
    add_overrides(ws, "tiny", ["cat/cat_001.png"], "exclude")
    after = dataset_fingerprint(ws, "tiny")
    assert after["images"] == 35 and after["digest"] != before["digest"]


# ------------------------------------------------------------------ a worker in another workspace
def test_the_same_data_in_another_workspace_starts_quietly(tmp_path, journal, first):
    record = _record(first, journal)
    assert record["images"] == 36 and record["root"] == str(first.root) and record["host"]
    assert "changed" not in record
    second = _workspace(tmp_path / "ws2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetChangedWarning)
        assert check_dataset_here(second, STUDY, journal) == "tiny"
    assert _record(first, journal) == record  # nothing rewritten


def test_one_image_replaced_in_another_workspace_is_refused_naming_its_class(tmp_path, capsys, journal, first):
    second = _workspace(tmp_path / "ws2", replace="cat/cat_005.png")
    with pytest.raises(DatasetError) as info:
        check_dataset_here(second, STUDY, journal)
    text = str(info.value)
    assert "No worker was started" in text and "/cat:" in text
    assert "/bird:" not in text and "/dog:" not in text  # only the class that differs
    assert "datasets rescan tiny" in info.value.fix and "separate study" in info.value.fix
    assert str(first.root) in text  # where the study's copy is

    with pytest.raises(DatasetError):
        launch_workers(second, STUDY, 1, journal)
    assert not (study_local_dir(second, STUDY) / "workers").exists()

    err = assert_error(cli(capsys, second.root, "worker", "--study", STUDY, "--storage", journal),
                       "differs from the one study", "/cat:", "No worker was started", "datasets rescan tiny")
    assert "Traceback" not in err
    assert optuna.load_study(study_name=STUDY, storage=open_storage(first, journal)).get_trials(
        states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE,
                optuna.trial.TrialState.FAIL)) == []  # no trial taken


def test_a_study_without_a_fingerprint_still_starts_workers_anywhere(tmp_path, journal):
    # A study created before the fingerprint was kept: its spec only, as create_study then wrote it.
    first = _workspace(tmp_path / "ws1")
    spec = tiny_spec(STUDY)
    study = optuna.create_study(study_name=STUDY, storage=open_storage(first, journal, create=True))
    study.set_user_attr(attrs.SPEC, spec.to_dict())
    second = _workspace(tmp_path / "ws2", replace="cat/cat_005.png")
    assert check_dataset_here(second, STUDY, journal) == "tiny"
    assert _record(first, journal) is None


# ------------------------------------------------------------------ the creating workspace's own change
def test_a_relabel_where_the_study_was_made_warns_updates_and_then_refuses_the_old_copy(tmp_path, journal, first):
    second = _workspace(tmp_path / "ws2")
    assert check_dataset_here(second, STUDY, journal) == "tiny"
    before = _record(first, journal)

    moved = dataset_splits(first, "tiny").query("relpath == 'cat/cat_003.png'")["split"].item()
    add_overrides(first, "tiny", ["cat/cat_003.png"], "relabel", label="dog")
    said: list[str] = []
    assert check_dataset_here(first, STUDY, journal, warn=said.append) == "tiny"
    assert len(said) == 1
    assert f"{moved}/cat: " in said[0] and f"{moved}/dog: " in said[0] and "now" in said[0] and "before" in said[0]
    assert "compare them with the earlier trials with care" in said[0]
    after = _record(first, journal)
    assert after["digest"] != before["digest"] and after["images"] == before["images"] == 36
    assert after["root"] == str(first.root) and after["changed"]["lines"]

    again: list[str] = []
    check_dataset_here(first, STUDY, journal, warn=again.append)
    assert again == []  # said once: the study now holds the changed data's fingerprint

    with pytest.raises(DatasetError) as info:  # the other machine's copy lacks the relabel
        check_dataset_here(second, STUDY, journal)
    assert f"{moved}/cat:" in str(info.value) and f"{moved}/dog:" in str(info.value)

    add_overrides(second, "tiny", ["cat/cat_003.png"], "relabel", label="dog")  # the same decision there
    assert check_dataset_here(second, STUDY, journal) == "tiny"


def test_the_creating_workspace_moved_is_still_the_creating_one(tmp_path, journal, first):
    """Its root changed, its id did not: a relabel there is its user's own change, warned about, not refused
    as another machine's copy (the record had kept the root it was created at)."""
    import shutil

    moved = Workspace(shutil.move(str(first.root), str(tmp_path / "moved")))
    add_overrides(moved, "tiny", ["cat/cat_003.png"], "relabel", label="dog")
    said: list[str] = []
    assert check_dataset_here(moved, STUDY, journal, warn=said.append) == "tiny"
    assert len(said) == 1 and "/dog: " in said[0]
    assert _record(moved, journal)["root"] == str(moved.root)


def test_a_copy_of_the_creating_workspace_is_another_workspace(tmp_path, journal, first, monkeypatch):
    """``cp -a`` of the creating workspace, made to serve as a second worker's, kept its id: the copy was
    taken for the creating workspace, its changed data accepted and the study's fingerprint switched to it
    (and back when the original's worker started): one study trained on several versions of its data."""
    import shutil

    first_id = first.identity()
    copy = Workspace(shutil.copytree(first.root, tmp_path / "copied", symlinks=True))
    assert copy.identity() != first_id and copy.identity() == copy.identity()  # its own, stable
    assert first.identity() == first_id
    assert check_dataset_here(copy, STUDY, journal) == "tiny"  # the same data: fine anywhere
    add_overrides(copy, "tiny", ["cat/cat_003.png"], "exclude")
    with pytest.raises(DatasetError, match="differs from the one study"):
        check_dataset_here(copy, STUDY, journal)


def test_a_workspace_keeps_its_id_when_moved_and_a_copy_of_a_copy_gets_another(tmp_path):
    import shutil

    ws = Workspace(tmp_path / "a")
    ws.root.mkdir(parents=True)
    made = ws.identity()
    assert made and ws.identity() == made
    moved = Workspace(shutil.move(str(ws.root), str(tmp_path / "b")))
    assert moved.identity() == made
    copies = [Workspace(shutil.copytree(moved.root, tmp_path / f"c{i}")) for i in range(2)]
    ids = {c.identity() for c in copies}
    assert len(ids) == 2 and made not in ids


def test_a_workspace_moved_to_another_file_system_or_restored_keeps_its_id(tmp_path):
    """A move across file systems copies and deletes, so the folder's inode changes as a copy's does: the
    moved workspace got a new id and no longer passed for the study's creating workspace. The id file now
    records the root's path too: when the folder there is gone, this is the workspace itself, moved."""
    import shutil

    ws = Workspace(tmp_path / "a")
    ws.root.mkdir(parents=True)
    made = ws.identity()
    elsewhere = Workspace(shutil.copytree(ws.root, tmp_path / "disk2" / "a"))
    shutil.rmtree(ws.root)  # what mv does across file systems
    assert elsewhere.identity() == made and elsewhere.identity() == made
    backup = shutil.copytree(elsewhere.root, tmp_path / "backup")
    shutil.rmtree(elsewhere.root)
    restored = Workspace(shutil.copytree(backup, elsewhere.root))  # restored in place: a new inode, same path
    assert restored.identity() == made
    copy = Workspace(shutil.copytree(restored.root, tmp_path / "copy"))  # the original is still there
    assert copy.identity() not in (None, made) and restored.identity() == made


def test_an_id_file_without_the_path_still_counts_a_new_inode_as_a_copy(tmp_path):
    ws = Workspace(tmp_path / "a")
    ws.root.mkdir(parents=True)
    made = ws.identity()
    (ws.root / ".workspace-id").write_text((ws.root / ".workspace-id").read_text().splitlines()[0] + "\n")
    assert ws.identity() == made and len((ws.root / ".workspace-id").read_text().splitlines()) == 2  # upgraded
    (ws.root / ".workspace-id").write_text(f"{made} 0:1\n")  # an older file, another folder's inode
    assert ws.identity() not in (None, made)


def test_without_a_callback_the_change_is_a_warning_and_the_cli_worker_prints_it(tmp_path, capsys, monkeypatch,
                                                                                journal, first):
    add_overrides(first, "tiny", ["bird/bird_000.png"], "exclude")
    with pytest.warns(DatasetChangedWarning, match="Trials from now on train on the changed data"):
        check_dataset_here(first, STUDY, journal)

    add_overrides(first, "tiny", ["bird/bird_001.png"], "exclude")
    ran = []
    monkeypatch.setattr("tlcore.search.run_worker", lambda *a, **k: ran.append(a) or SimpleNamespace(reason="done"))
    monkeypatch.setattr("tlcore.startup.start_backend_quietly", lambda: None)
    code, out, err = cli(capsys, first.root, "worker", "--study", STUDY, "--storage", journal)
    assert code == 0 and len(ran) == 1
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and "/bird: " in warned[0] and "Traceback" not in err


# ------------------------------------------------------------------ PostgreSQL
def _with_password(url: str, password: str) -> tuple[str, str]:
    """``url`` with ``password`` in it (the test server trusts any), or as it is when it has one."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{password}@{host}")), password


def test_on_postgresql_the_refusal_names_no_password(tmp_path, capsys, fresh_postgres_url):
    url, secret = _with_password(fresh_postgres_url, "Sekr1tPassw0rd")
    first = _workspace(tmp_path / "ws1")
    create_study(first, tiny_spec(STUDY), url)
    second = _workspace(tmp_path / "ws2", replace="dog/dog_002.png")
    with pytest.raises(DatasetError) as info:
        check_dataset_here(second, STUDY, url)
    # CI's server has the password "postgres", a word the message may hold otherwise: look for it as a password
    leaked = (f":{secret}@", url)
    assert "/dog:" in str(info.value) and not any(s in str(info.value) for s in leaked)
    err = assert_error(cli(capsys, second.root, "worker", "--study", STUDY, "--storage", url), "/dog:")
    assert not any(s in err for s in leaked)
    if secret == "Sekr1tPassw0rd":  # a password of our own: not anywhere
        assert secret not in str(info.value) and secret not in err
