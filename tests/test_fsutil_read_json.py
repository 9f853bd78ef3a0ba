"""``read_json``: a missing file gives the default; every other failure is a WorkspaceError.

A state file overwritten with bytes that are not UTF-8, a folder in a file's place or an
unreadable file used to escape as ``UnicodeDecodeError`` / ``IsADirectoryError`` /
``PermissionError``, past the pages' ``except TLCoreError`` (a traceback on the Train,
Search and Datasets pages). These tests pin each case, and a few callers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tlcore import train_jobs as tj
from tlcore._fsutil import read_json
from tlcore.errors import TLCoreError, WorkspaceError
from tlcore.search.worker_state import WorkerRecord, list_workers, workers_dir
from tlcore.workspace import Workspace

BAD_BYTES = b"\xff\xfe\x00garbage\x9c\n"


def _check(err: WorkspaceError, path: Path) -> None:
    assert err.received == str(path)
    assert err.fix
    assert str(path) in str(err)
    assert path.name in err.message


def test_missing_file_gives_the_default(tmp_path):
    assert read_json(tmp_path / "nope.json") is None
    assert read_json(tmp_path / "nope.json", default={"a": 1}) == {"a": 1}


def test_valid_json_is_read(tmp_path):
    p = tmp_path / "ok.json"
    p.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(p) == {"a": [1, 2]}


def test_ascii_garbage_is_a_workspace_error(tmp_path):
    p = tmp_path / "state.json"
    p.write_text("not json at all", encoding="utf-8")
    with pytest.raises(WorkspaceError, match=r"state\.json is not valid JSON \(Expecting value at line 1\)") as ei:
        read_json(p)
    _check(ei.value, p)
    assert "Restore it from a backup or delete it" in ei.value.fix


@pytest.mark.parametrize("data", [BAD_BYTES, b'{"a": "caf\xe9"}', b"\x80"])
def test_bytes_that_are_not_utf8_are_a_workspace_error(tmp_path, data):
    p = tmp_path / "state.json"
    p.write_bytes(data)
    with pytest.raises(WorkspaceError, match=r"state\.json is not UTF-8 text \(byte 0x") as ei:
        read_json(p, default={})
    _check(ei.value, p)
    assert "Restore it from a backup or delete it" in ei.value.fix
    assert isinstance(ei.value.__cause__, UnicodeDecodeError)


def test_a_folder_in_place_of_the_file_is_a_workspace_error(tmp_path):
    p = tmp_path / "registry.json"
    p.mkdir()
    with pytest.raises(WorkspaceError, match=r"registry\.json is a folder") as ei:
        read_json(p, default={})
    _check(ei.value, p)


def test_an_unreadable_file_is_a_workspace_error(tmp_path, monkeypatch):
    p = tmp_path / "state.json"
    p.write_text("{}", encoding="utf-8")

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(WorkspaceError, match=r"state\.json cannot be read: permission denied") as ei:
        read_json(p)
    _check(ei.value, p)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_workspace_error_for_real(tmp_path):
    p = tmp_path / "state.json"
    p.write_text("{}", encoding="utf-8")
    p.chmod(0)
    try:
        with pytest.raises(WorkspaceError, match="permission denied"):
            read_json(p)
    finally:
        p.chmod(0o600)


def test_a_file_in_place_of_a_folder_is_a_workspace_error(tmp_path):
    (tmp_path / "jobs").write_text("x", encoding="utf-8")
    p = tmp_path / "jobs" / "state.json"
    with pytest.raises(WorkspaceError, match=r"state\.json cannot be read") as ei:
        read_json(p)
    _check(ei.value, p)


def test_a_number_too_long_to_convert_is_a_workspace_error(tmp_path):
    p = tmp_path / "big.json"
    p.write_text("9" * 5000, encoding="utf-8")
    with pytest.raises(WorkspaceError, match=r"big\.json is not valid JSON"):
        read_json(p)


def test_every_failure_is_still_an_oserror_for_callers_that_catch_that(tmp_path):
    p = tmp_path / "state.json"
    p.write_bytes(BAD_BYTES)
    with pytest.raises(OSError):
        read_json(p)


# ---------------------------------------------------------------- callers
def test_datasets_registry_with_bad_bytes_is_a_tlcore_error(tmp_path):
    ws = Workspace(tmp_path / "ws")
    reg = ws.datasets_dir / "registry.json"
    reg.parent.mkdir(parents=True, exist_ok=True)
    reg.write_bytes(BAD_BYTES)
    with pytest.raises(TLCoreError, match=r"registry\.json is not UTF-8 text") as ei:
        ws.list_datasets()
    assert ei.value.received == str(reg)


def test_train_job_state_with_bad_bytes_reads_as_empty(tmp_path):
    job = tj.TrainJob(tmp_path / "job1")
    job.folder.mkdir()
    job.state_file.write_bytes(BAD_BYTES)
    assert job.read_state() == {}


def test_worker_state_file_with_bad_bytes_is_a_workspace_error(tmp_path):
    ws = Workspace(tmp_path / "ws")
    wdir = workers_dir(ws, "s1")
    wdir.mkdir(parents=True)
    bad = wdir / "w1.json"
    bad.write_bytes(BAD_BYTES)
    with pytest.raises(WorkspaceError, match=r"w1\.json is not UTF-8 text"):
        WorkerRecord.read(bad)
    with pytest.raises(TLCoreError, match=r"w1\.json is not UTF-8 text"):
        list_workers(ws, "s1")
