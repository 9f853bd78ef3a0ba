"""Careless use of the CLI and the library, refused in one line before any work (no traceback, nothing
of the user's changed): a damaged workspace.yaml, a workspace below a file, audit --limit 0, train flags
that were refused only after the decoding or the training, a spec file without a dataset, training jobs
refused before they start, and a zip of one class folder."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.helpers.handmodel import zip_tree
from tests.helpers.runs import write_tinted_tree
from tlcore import train_jobs as tj
from tlcore.cli import build_parser, main
from tlcore.config import TrainSpec
from tlcore.datasets import add_dataset, add_zip_dataset
from tlcore.errors import ConfigError, DatasetError, WorkspaceError


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ------------------------------------------------------------------ the workspace
@pytest.mark.parametrize(("content", "words"), [
    (b"data_roots: [/d\xe9j\xe0]\n", "workspace.yaml is not UTF-8 text"),
    (b"data_roots: 5\n", "workspace.yaml's data_roots must be a list of folders"),
])
def test_a_damaged_workspace_yaml_is_one_error_line_and_left_alone(workspace, capsys, content, words):
    workspace.settings_path.write_bytes(content)
    photos = write_tinted_tree(workspace.root / "photos", per_class=3)
    for argv in (["datasets", "allow-root", workspace.root], ["datasets", "add", "pets", photos]):
        code, _, err = run(capsys, "--workspace", workspace.root, *argv)
        line = one_error_line(err)
        assert code == 2 and words in line and str(workspace.settings_path) in line
    assert workspace.settings_path.read_bytes() == content
    assert not workspace.has_dataset("pets")


def test_a_workspace_below_a_file_is_one_error_line(tmp_path, capsys):
    f = tmp_path / "somefile"
    f.write_text("x")
    code, _, err = run(capsys, "--workspace", f / "ws", "datasets", "list")
    assert code == 2 and "The workspace path cannot be a folder" in one_error_line(err) and f"{f} above it" in err


# ------------------------------------------------------------------ audit
@pytest.mark.parametrize("extra", [[], ["--show"], ["--list"]])
@pytest.mark.parametrize("limit", ["0", "-3"])
def test_audit_limit_below_one_is_refused_before_any_work(workspace, capsys, limit, extra):
    # --limit 0 ran the whole audit, then raised ValueError printing the report.
    code, _, err = run(capsys, "--workspace", workspace.root, "datasets", "audit", "demo", "--limit", limit,
                       "--weights", "none", *extra)
    assert code == 2 and f"--limit must be at least 1. Received: --limit {limit}." in one_error_line(err)
    assert not workspace.has_dataset("demo")  # refused before the workspace was even opened


def test_an_audit_spec_that_is_not_yaml_is_one_error_line(workspace, capsys, tmp_path):
    spec = tmp_path / "audit.yaml"
    spec.write_text("folds: [\n")
    code, _, err = run(capsys, "--workspace", workspace.root, "datasets", "audit", "demo", "--spec", spec)
    assert code == 2 and "The AuditSpec is not valid YAML" in one_error_line(err) and "line 2" in err


# ------------------------------------------------------------------ train
@pytest.mark.parametrize(("flags", "words"), [
    (["--backbone", "nosuch"], "Unknown backbone. Received: name='nosuch'."),
    (["--out", "{existing}"], "The target folder already exists. Received: {existing}."),
    (["--out", "{existing}/mine.txt/run"], "The target folder cannot be made: {existing}/mine.txt above it is a file"),
    (["--augment", "nosuch"], "No augmentation pipeline is saved under that name."),
    (["--method", "fine_tune", "--freeze-depth", "99"], "freeze_depth must be between 0 and 18"),
])
def test_train_refuses_at_once_before_decoding_or_keras(workspace, tmp_path, flags, words):
    """These were refused after the dataset was decoded (the backbone, augmentation, depth) or the model
    trained (--out): now before Keras is even imported, and no job is left behind."""
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("mine")
    flags = [f.format(existing=existing) for f in flags]
    code = (f"import sys; from tlcore.cli import main; rc = main(['train', '--data', 'demo', '--weights', 'none', "
            f"'--image-size', '32', '--epochs', '1', *{flags!r}]); print(rc, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert words.format(existing=existing) in one_error_line(done.stderr)
    assert "Decoding" not in done.stderr
    assert tj.list_jobs(workspace) == []  # a refused run is no job
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]


def train_args(*argv):
    return build_parser().parse_args(["train", *map(str, argv)])


def test_data_fills_in_or_overrides_the_spec_files_dataset(workspace, tmp_path):
    from tlcore.cli._train import _train_spec

    add_dataset(workspace, "tiny", write_tinted_tree(workspace.root / "photos", per_class=3))
    no_data = tmp_path / "no-data.yaml"
    no_data.write_text(yaml.safe_dump({"epochs": 3, "image_size": 32}))
    spec, _ = _train_spec(train_args("--spec", no_data, "--data", "tiny"), workspace)  # refused before
    assert (spec.dataset, spec.epochs, spec.image_size) == ("tiny", 3, 32)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"dataset": "demo", "epochs": 3}))
    assert _train_spec(train_args("--spec", other, "--data", "tiny"), workspace)[0].dataset == "tiny"  # flags win
    with pytest.raises(ConfigError, match="No dataset to train on: the spec file names none") as e:
        _train_spec(train_args("--spec", no_data), workspace)
    assert e.value.received == f"--spec {no_data}" and "--data" in e.value.fix


def test_the_spec_file_is_checked_with_the_flags_over_it(workspace, tmp_path):
    """A spec file is validated once the flags are in: its epochs, too few for two_phase alone, are replaced."""
    from tlcore.cli._train import _train_spec

    spec_file = tmp_path / "two-phase.yaml"
    spec_file.write_text(yaml.safe_dump({"dataset": "demo", "method": "two_phase", "epochs": 1}))
    assert _train_spec(train_args("--spec", spec_file, "--epochs", "3"), workspace)[0].epochs == 3
    with pytest.raises(ConfigError, match="two_phase needs at least 2 epochs"):
        _train_spec(train_args("--spec", spec_file), workspace)


# ------------------------------------------------------------------ training jobs
def test_a_job_refused_before_it_starts_leaves_no_entry(workspace, tmp_path, monkeypatch):
    add_dataset(workspace, "tiny", write_tinted_tree(workspace.root / "photos", per_class=3))
    spec = TrainSpec(dataset="tiny", image_size=32, epochs=1, weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ConfigError, match="The weights file does not exist"):  # launched, then crashed: an entry
        tj.launch_training(workspace, spec)
    assert tj.list_jobs(workspace) == []

    def no_process(*a, **k):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tj.background, "spawn", no_process)
    with pytest.raises(ConfigError, match="The training process did not start"):
        tj.launch_training(workspace, TrainSpec(dataset="tiny", image_size=32, epochs=1, weights=None))
    assert tj.list_jobs(workspace) == [] and list(tj.jobs_dir(workspace).iterdir()) == []


# ------------------------------------------------------------------ uploads
def test_a_zip_of_one_class_folder_says_it_found_one_class(workspace, tmp_path):
    photos = write_tinted_tree(tmp_path / "photos", per_class=3)
    archive = zip_tree(photos / "cat", tmp_path / "cat.zip", top="cat")
    with pytest.raises(DatasetError) as e:
        add_zip_dataset(workspace, "cats", archive)
    assert "only one class ('cat') has usable images; a classifier needs at least two" in e.value.message
    assert "no class sub-folders" not in str(e.value)
    assert not workspace.has_dataset("cats") and list(workspace.data_dir.iterdir()) == []
    # A folder wrapping the class folders is still unwrapped, and a lone class in it named the same way.
    wrapped = zip_tree(photos, tmp_path / "photos.zip", top="photos")
    assert add_zip_dataset(workspace, "pets", wrapped).classes == ["bird", "cat", "dog"]
    one = zip_tree(photos / "dog", tmp_path / "dog.zip", top="photos/dog")
    with pytest.raises(DatasetError, match=r"only one class \('dog'\)"):
        add_zip_dataset(workspace, "dogs", one)


def test_the_trainer_refuses_an_existing_run_folder_before_decoding(workspace, tmp_path):
    from tlcore.trainer import ProgressHooks, train

    existing = tmp_path / "run"
    existing.mkdir()
    said = []
    with pytest.raises(WorkspaceError, match="The target folder already exists"):
        train(TrainSpec(dataset="demo", weights="none", image_size=32, epochs=1), workspace, run_dir=existing,
              hooks=ProgressHooks(on_status=said.append))
    assert said == [] and list(existing.iterdir()) == []


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(workspace):
    """``python -m tlcore ... | head -2`` printed a BrokenPipeError traceback when head left."""
    proc = subprocess.Popen([sys.executable, "-m", "tlcore", "--workspace", str(workspace.root), "augment",
                             "catalogue"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_numbers_written_with_an_exponent_are_numbers_in_every_spec():
    """YAML 1.1 reads 1e-4 as text: 'learning_rate: 1e-4' was refused as "must be a number"."""
    from tlcore.search import StudySpec

    assert TrainSpec.from_yaml("dataset: demo\nlearning_rate: 1e-4\n").learning_rate == pytest.approx(1e-4)
    spec = StudySpec.from_yaml("name: x\ndataset: demo\nlearning_rate: [1e-5, 3.0e-3]\n")
    assert tuple(spec.learning_rate) == pytest.approx((1e-5, 3e-3))
    assert yaml.safe_load("a: 1e-4") == {"a": "1e-4"}  # PyYAML's own loader is left as it is
