"""tlcore.runfolder: a run folder's file names, its tolerant readers and its atomic writer.

The model here is a stand-in with Keras' ``save(path)``: the writer needs nothing
else of it (the trainer's tests save a real model through the same writer).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tlcore import runfolder
from tlcore.config import TrainSpec
from tlcore.errors import ConfigError, WorkspaceError
from tlcore.predict import read_labels
from tlcore.runfolder import (
    DATA_FILE,
    LABELS_FILE,
    MODEL_FILE,
    RUN_FILES,
    RunFolder,
    labels_text,
    split_labels,
)

MODEL_BYTES = b"PK\x03\x04 a stand-in for a Keras archive"


class FakeModel:
    """Writes a fixed byte string where Keras would write its archive."""

    def save(self, filepath):
        Path(filepath).write_bytes(MODEL_BYTES)


SPEC = TrainSpec(dataset="tiny", epochs=1)
HISTORY = [{"epoch": 0, "val_accuracy": 0.5, "val_loss": 1.25}, {"epoch": 1, "val_accuracy": 0.75, "val_loss": 0.5}]
METRICS = {"best_epoch": 1, "best_val_accuracy": 0.75, "test_accuracy": 0.5}
CLASSES = ["bird", "cat", "dog"]
DATA = {"dataset": "tiny", "fingerprint": {"train": "abc", "val": "def", "test": "0123"}, "image_size": 224,
        "resize_mode": "pad", "test_files": ["bird/0.png", "cat/1.png"]}


def write(target: Path, **overrides) -> RunFolder:
    kwargs = {"model": FakeModel(), "history": HISTORY, "metrics": METRICS, "spec": SPEC, "class_names": CLASSES,
              "data": DATA, **overrides}
    return RunFolder.write(target, **kwargs)


def test_paths_of_each_file(tmp_path):
    run = RunFolder(str(tmp_path / "run-1"))  # a str becomes a Path
    assert run.path == tmp_path / "run-1" and isinstance(run.path, Path)
    assert run.name == "run-1"
    assert run.model_file == run.path / "model.keras"
    assert run.history_file == run.path / "history.json"
    assert run.metrics_file == run.path / "metrics.json"
    assert run.spec_file == run.path / "spec.yaml"
    assert run.labels_file == run.path / "labels.txt"
    assert run.data_file == run.path / "data.json"
    assert run.model_card_file == run.path / "model_card.json"
    assert RUN_FILES == ("model.keras", "history.json", "metrics.json", "spec.yaml", "labels.txt", "data.json")
    assert run.files() == tuple(run.path / f for f in RUN_FILES)
    assert RunFolder(tmp_path) == RunFolder(str(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.path = tmp_path  # type: ignore[misc]


def test_search_worker_uploads_the_run_files():
    from tlcore.search import worker

    assert worker.RUN_FILES is RUN_FILES


def test_write_then_read_round_trip(tmp_path):
    target = tmp_path / "models" / "run"
    run = write(target)
    assert run == RunFolder(target)
    assert sorted(p.name for p in target.iterdir()) == sorted(RUN_FILES)
    assert run.is_complete()
    assert run.model_file.read_bytes() == MODEL_BYTES
    assert run.read_history() == HISTORY
    assert run.read_metrics() == METRICS
    assert run.read_data() == DATA
    assert TrainSpec.from_dict(run.read_spec()) == SPEC
    assert run.read_labels() == CLASSES
    assert run.read_model_card() == {}  # a run folder has none; export folders do
    version = run.load_version()
    assert version != 0 and version == run.load_version()
    # Loading reads labels.txt and metrics.json (the temperature) too: a change there is a new version.
    run.labels_file.write_text("bird\ncat\nhound\n")
    assert run.load_version() not in (0, version)
    run.labels_file.write_text("bird\ncat\ndog\n")
    # The formats the trainer has always written.
    assert run.labels_file.read_text() == "bird\ncat\ndog\n"
    assert run.metrics_file.read_text() == json.dumps(METRICS, indent=2, sort_keys=True) + "\n"
    assert run.spec_file.read_text() == SPEC.to_yaml()
    # Nothing is left beside the folder (no temporary or partial folders).
    assert [p.name for p in target.parent.iterdir()] == ["run"]


def test_missing_files_give_empty_values(tmp_path):
    run = RunFolder(tmp_path / "nothing-here")
    assert run.read_history() == [] and run.read_metrics() == {} and run.read_data() == {}
    assert run.read_spec() == {} and run.read_labels() == [] and run.read_model_card() == {}
    assert run.load_version() == 0
    assert not run.is_complete()


def test_a_missing_optional_file_leaves_the_others_readable(tmp_path):
    run = write(tmp_path / "run")
    run.metrics_file.unlink()
    run.history_file.unlink()
    assert run.read_metrics() == {} and run.read_history() == []
    assert run.read_data() == DATA and run.read_labels() == CLASSES
    assert not run.is_complete()


@pytest.mark.parametrize(("name", "content"), [
    ("metrics.json", "{ not json"),
    ("metrics.json", "[1, 2, 3]"),  # JSON, but not a mapping
    ("data.json", b"\xff\xfe\x00 binary"),
    ("history.json", '{"epoch": 0}'),  # JSON, but not a list of records
    ("history.json", ""),
    ("spec.yaml", "dataset: [unclosed"),
    ("spec.yaml", "- just\n- a list\n"),
    ("spec.yaml", "a: &x 1\nb: *x\n"),  # aliases are refused (tlcore._yaml)
    ("labels.txt", "bird\n\ncat\n"),  # a blank line between names
    ("labels.txt", "\n\n"),
    ("model_card.json", "null"),
])
def test_corrupt_file_gives_an_empty_value(tmp_path, name, content):
    run = write(tmp_path / "run")
    path = run.path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    readers = {"metrics.json": run.read_metrics, "data.json": run.read_data, "history.json": run.read_history,
               "spec.yaml": run.read_spec, "labels.txt": run.read_labels, "model_card.json": run.read_model_card}
    value = readers[name]()
    assert value in ({}, []) and not value
    others = [reader() for other, reader in readers.items() if other not in (name, "model_card.json")]
    assert all(others)  # only the damaged file reads as empty


def test_labels_format_both_ways():
    assert labels_text(CLASSES) == "bird\ncat\ndog\n"
    assert split_labels(labels_text(CLASSES)) == CLASSES
    assert split_labels("  bird \r\ncat\n \n\n") == ["  bird ", "cat"]  # a name keeps its spaces
    spaced = ["  spaced  name ", "Café au lait", "猫 cat"]  # class folders as a user named them
    assert split_labels(labels_text(spaced)) == spaced
    assert split_labels("bird\n\ncat") == ["bird", "", "cat"]  # the callers refuse the gap


def test_strict_reader_still_says_what_is_wrong(tmp_path):
    run = write(tmp_path / "run")
    run.labels_file.write_text("bird\n\ncat\n")
    assert run.read_labels() == []
    with pytest.raises(ConfigError, match="one non-empty class name per line"):
        read_labels(run.labels_file)


def test_interrupted_write_leaves_no_folder(tmp_path, monkeypatch):
    written = []
    real = runfolder.atomic_write_json

    def interrupted(path, obj):
        if Path(path).name == DATA_FILE:  # the last file: everything else is already written
            written.extend(sorted(p.name for p in Path(path).parent.iterdir()))
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(runfolder, "atomic_write_json", interrupted)
    target = tmp_path / "models" / "run"
    with pytest.raises(KeyboardInterrupt):
        write(target)
    assert MODEL_FILE in written and LABELS_FILE in written  # it was interrupted late
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temporary (.partial) folder is gone too


def test_failed_model_save_leaves_no_folder(tmp_path):
    class Broken:
        def save(self, filepath):
            Path(filepath).write_bytes(b"half an archive")
            raise OSError(28, "No space left on device")

    target = tmp_path / "run"
    with pytest.raises(WorkspaceError, match="disk is full"):
        write(target, model=Broken())
    assert list(tmp_path.iterdir()) == []


def test_an_existing_run_is_never_overwritten(tmp_path):
    run = write(tmp_path / "run")
    with pytest.raises(WorkspaceError, match="already exists"):
        write(run.path, metrics={"best_epoch": 99})
    assert run.read_metrics() == METRICS
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
