"""``predict --folder / --zip / --csv / --tta``, ``models list`` over every kind, ``models evaluate --tta``,
``export`` into the workspace's exports folder: on a hand-made model (and the session's tiny run)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest

from tests.helpers.handmodel import channel_model, upload_trial_run, write_model_folder, zip_tree
from tests.helpers.handstudy import epoch_record, hand_study, hand_trial
from tests.helpers.imagegen import write_bytes
from tests.helpers.runs import TINY_CLASSES, tiny_run, write_tinted_tree
from tlcore.cli import main

# models evaluate uses the session's tiny trained run (tests/helpers/runs.py): one xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ws(workspace):
    model = write_model_folder(workspace.models_dir / "hand", channel_model(3, 8), TINY_CLASSES)
    photos = write_tinted_tree(workspace.root / "photos", per_class=3)
    shutil.move(photos / "dog" / "dog_000.png", photos / "cat" / "a_dog.png")  # filed under the wrong class
    write_bytes(photos / "bird" / "broken.jpg", b"not a jpeg at all")
    return workspace, model, photos


def test_predict_a_folder_to_csv(ws, capsys, tmp_path):
    workspace, _, photos = ws
    out_csv = tmp_path / "out.csv"
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", "run:hand", "--folder", photos,
                         "--csv", out_csv, "--top-k", "2")
    assert code == 0, err  # an unreadable file is a row, not a failure of the batch
    assert out.startswith("Wrote 10 rows to ") and "accuracy 88.9 % on 9 labelled images" in out
    assert "1 could not be read" in out and "error: bird/broken.jpg:" in err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert list(rows[0]) == ["file", "label_1", "confidence_1", "label_2", "confidence_2", "true_label", "correct",
                             "error"]
    by_file = {r["file"]: r for r in rows}
    assert by_file["cat/a_dog.png"]["label_1"] == "dog" and by_file["cat/a_dog.png"]["correct"] == "False"
    assert by_file["bird/broken.jpg"]["error"] and not by_file["bird/broken.jpg"]["label_1"]


def test_predict_a_zip_with_tta_as_json(ws, capsys, tmp_path):
    workspace, model, photos = ws
    archive = zip_tree(photos, tmp_path / "photos.zip", top="photos")
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", model, "--zip", archive, "--tta",
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tta"] is True and doc["num_images"] == 10 and doc["failed"] == 1
    assert doc["accuracy"] == pytest.approx(8 / 9)
    good = [r for r in doc["results"] if "predictions" in r]
    assert len(good) == 9 and all(r["true_label"] in TINY_CLASSES for r in good)


def test_predict_lines_show_the_truth(ws, capsys):
    workspace, _, photos = ws
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", "hand", "--folder", photos / "cat")
    assert code == 0
    # One class's folder given: its images are labelled by it.
    assert re.search(r"^a_dog\.png: dog \(\d+\.\d %\), .*  \[true: cat, wrong\]$", out, re.M)
    assert re.search(r"^cat_000\.png: cat .*\[true: cat, correct\]$", out, re.M)
    assert "4 images" in err and "accuracy 75.0 % on 4 labelled images" in err


def test_predict_with_a_two_class_model_shows_both_classes(workspace, capsys):
    """The default --top-k (3) fits a model with fewer classes; an explicit one still must fit."""
    model = write_model_folder(workspace.models_dir / "pair", channel_model(2, 8), ["cat", "dog"])
    photos = write_tinted_tree(workspace.root / "photos", per_class=1)
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", "run:pair", photos / "cat" / "cat_000.png")
    assert code == 0, err
    assert re.fullmatch(r".*/cat_000\.png: (cat|dog) \(\d+\.\d %\), (cat|dog) \(\d+\.\d %\)\n", out)
    code, _, err = run(capsys, "--workspace", workspace.root, "predict", model, photos / "cat" / "cat_000.png",
                       "--top-k", "3")
    assert code == 2 and "--top-k must be between 1 and the number of classes (2)" in err


def test_images_after_an_option_are_images_too(ws, capsys):
    """``predict MODEL --top-k 2 A.png`` said "unrecognized arguments: A.png" (with the top level's usage)."""
    workspace, _, photos = ws
    images = [photos / "cat" / "cat_000.png", photos / "dog" / "dog_001.png"]
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", "run:hand", "--top-k", "2", *images)
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == [str(p) for p in images]
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", "run:hand", images[0], "--top-k", "2",
                         images[1])
    assert code == 0 and len(out.splitlines()) == 2, err
    with pytest.raises(SystemExit) as info:  # an unknown option is still refused
        run(capsys, "--workspace", workspace.root, "predict", "run:hand", "--top-k", "2", images[0], "--bogus")
    assert info.value.code == 2 and "unrecognized arguments:" in capsys.readouterr().err


def test_predict_source_errors(ws, capsys, tmp_path):
    workspace, model, photos = ws
    code, _, err = run(capsys, "--workspace", workspace.root, "predict", model)
    assert code == 2 and "No images to classify" in err and "--folder" in err
    code, _, err = run(capsys, "--workspace", workspace.root, "predict", model, photos / "cat" / "a_dog.png",
                       "--folder", photos)
    assert code == 2 and "not several" in err
    empty = tmp_path / "docs.zip"
    import zipfile

    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("notes.txt", "hello")
    code, _, err = run(capsys, "--workspace", workspace.root, "predict", model, "--zip", empty)
    assert code == 2 and "holds no images" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["predict", str(model), "--folder", str(photos), "--zip", str(empty)])
    capsys.readouterr()


def test_models_list_every_kind(ws, capsys):
    workspace, model, _ = ws
    ids = upload_trial_run(workspace, model, "a")
    t0 = __import__("datetime").datetime(2026, 1, 1)
    hand_study(workspace, "hs", [hand_trial(t0, 0, 5, value=0.9, history=[epoch_record(1, 0.9)], tl_artifacts=ids)])
    code, out, err = run(capsys, "--workspace", workspace.root, "export", "trial:hs:0", "--format", "keras")
    assert code == 0, err
    assert (workspace.root / "exports" / "hs-trial-0" / "model_card.json").is_file()
    code, out, _ = run(capsys, "--workspace", workspace.root, "models", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "DATASET", "BACKBONE", "METHOD"] and lines[1].startswith("hand ")
    assert "Search trials with a saved model (give the KEY as the model):" in lines
    assert any(ln.startswith("trial:hs:0 (best)") and "90.0 %" in ln for ln in lines)
    assert any(ln.startswith("export:hs-trial-0") for ln in lines)
    code, out, _ = run(capsys, "--workspace", workspace.root, "models", "list", "--json")
    entries = json.loads(out)
    assert [e["key"] for e in entries] == ["run:hand", "trial:hs:0", "export:hs-trial-0"]
    assert entries[0]["name"] == "hand" and entries[0]["num_classes"] == 3  # a run keeps its old fields
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", "export:hs-trial-0", "--folder",
                         workspace.root / "photos", "--csv", workspace.root / "p.csv")
    assert code == 0, err


def test_models_evaluate_with_tta(tmp_path_factory, capsys):
    run_dir = tiny_run(tmp_path_factory)
    root = run_dir.parent.parent
    code, out, err = run(capsys, "--workspace", root, "models", "evaluate", run_dir, "--tta")
    assert code == 0, err
    assert re.search(r"accuracy \d+\.\d % with test-time augmentation \(\d+\.\d % without\)", out.splitlines()[0])
    code, out, _ = run(capsys, "--workspace", root, "models", "evaluate", run_dir, "--tta", "--json")
    doc = json.loads(out)
    assert doc["tta"] is True and 0 <= doc["accuracy_without_tta"] <= 1


def test_an_empty_image_argument_is_refused_not_read_as_the_current_folder(ws, capsys, monkeypatch):
    """``predict RUN "$IMG"`` with an unset variable predicted every image under the working folder."""
    workspace, model, photos = ws
    monkeypatch.chdir(photos)  # images under the current folder: the old code predicted all of them
    code, out, err = run(capsys, "--workspace", workspace.root, "predict", model, "")
    assert code == 2 and "An image argument is empty" in err and out == ""


def test_export_reads_a_trial_from_the_storage_it_is_given(ws, capsys, tmp_path, monkeypatch):
    """``export`` had no ``--storage`` (predict and models list have): a trial of a study in another storage
    was "No study named ..." unless $TLCORE_STORAGE was set."""
    from tlcore.search import storage as storage_mod

    workspace, model, _ = ws
    ids = upload_trial_run(workspace, model, "a")
    t0 = __import__("datetime").datetime(2026, 1, 1)
    hand_study(workspace, "hs", [hand_trial(t0, 0, 5, value=0.9, history=[epoch_record(1, 0.9)], tl_artifacts=ids)])
    shared = tmp_path / "shared.log"
    (workspace.root / "studies" / "journal.log").rename(shared)
    monkeypatch.setattr(storage_mod, "_OPEN", {})
    monkeypatch.delenv("TLCORE_STORAGE", raising=False)
    code, out, err = run(capsys, "--workspace", workspace.root, "export", "trial:hs:0", "--format", "keras",
                         "--storage", shared)
    assert code == 0, err
    assert (workspace.root / "exports" / "hs-trial-0" / "model_card.json").is_file()
