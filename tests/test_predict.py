"""tlcore.predict: loading runs and model files, classifying images, listing runs, re-evaluating.

One tiny model (random weights, 64 px, one epoch on a generated three-class tree) is
trained once per session (``tiny_run``, tests/helpers/runs.py) and shared by the predict,
Grad-CAM, export, CLI and page tests.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.imagegen import png_header_bytes
from tests.helpers.runs import TINY_CLASSES, tiny_run
from tlcore.catalog import list_catalog
from tlcore.errors import ConfigError, DatasetError, ImageDecodeError, NotFoundError
from tlcore.pipeline import decode_resized
from tlcore.predict import (
    Prediction,
    check_top_k,
    evaluate_run,
    list_models,
    load_model,
    predict_arrays,
    predict_images,
    prepare_image,
    resolve_model_path,
    scan_models,
    top_predictions,
)
from tlcore.workspace import Workspace

# Shares the session's tiny trained run (tests/helpers/runs.py): one pytest-xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_model(run_dir)


@pytest.fixture(scope="module")
def images(run_dir) -> list[Path]:
    photos = run_dir.parent.parent / "photos"
    return [sorted((photos / c).glob("*.png"))[0] for c in TINY_CLASSES]


# ------------------------------------------------------------------ loading
def test_load_a_run_folder(loaded, run_dir):
    assert loaded.class_names == list(TINY_CLASSES)
    assert (loaded.image_size, loaded.resize_mode, loaded.num_classes) == (64, "pad", 3)
    assert loaded.run_dir == run_dir and loaded.model_path == run_dir / "model.keras"
    assert loaded.spec["dataset"] == "tiny" and loaded.data["dataset"] == "tiny"
    assert "best_val_accuracy" in loaded.metrics
    assert loaded.name == "tiny-run"


def test_class_names_keep_their_spaces(run_dir, tmp_path):
    # A class folder named "  spaced  name " is that label in the dataset's index; labels.txt read
    # back stripped made evaluate_run count its test images as gone and Predict never "correct".
    spaced = ["  spaced  name ", "Café au lait", "猫 cat"]
    run = shutil.copytree(run_dir, tmp_path / "spaced-run")
    (run / "labels.txt").write_text("\n".join(spaced) + "\n", encoding="utf-8")
    assert load_model(run).class_names == spaced


def test_load_the_keras_file_of_a_run(run_dir):
    m = load_model(run_dir / "model.keras")
    assert m.run_dir == run_dir and m.class_names == list(TINY_CLASSES)


def test_a_lone_keras_file_needs_labels(run_dir, tmp_path):
    lone = tmp_path / "mine.keras"
    shutil.copyfile(run_dir / "model.keras", lone)
    with pytest.raises(NotFoundError, match="labels.txt"):
        load_model(lone)
    assert load_model(lone, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]
    (tmp_path / "labels.txt").write_text("x\ny\nz\n\n")
    m = load_model(lone)
    assert m.class_names == ["x", "y", "z"] and m.run_dir is None and m.name == "mine"
    assert (m.image_size, m.resize_mode, m.spec, m.metrics) == (64, "pad", {}, {})


def test_resolve_by_run_name(run_dir):
    ws = Workspace(run_dir.parent.parent)
    assert resolve_model_path(ws, "tiny-run") == run_dir
    with pytest.raises(NotFoundError, match="models list"):
        resolve_model_path(ws, "no-such-run")


# ------------------------------------------------------------ bad models
def test_missing_model(tmp_path):
    with pytest.raises(NotFoundError) as info:
        load_model(tmp_path / "nope.keras")
    assert "nope.keras" in str(info.value)
    (tmp_path / "run").mkdir()
    with pytest.raises(NotFoundError) as info:
        load_model(tmp_path / "run")
    assert str(tmp_path / "run" / "model.keras") in str(info.value)
    edge = tmp_path / "edge"  # an export of edge formats only: it said "Give ... an export folder", as given
    edge.mkdir()
    for name in ("model.onnx", "model_int8.tflite", "labels.txt"):
        (edge / name).write_bytes(b"x")
    with pytest.raises(NotFoundError) as info:
        load_model(edge)
    assert "It holds model.onnx, model_int8.tflite, which this workbench does not predict with" in info.value.fix
    assert "--format keras" in info.value.fix


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(0).bytes(4000),
        b"I am a text file that someone renamed to .keras\n",
        b"",
        "zip",
    ],
    ids=["random-bytes", "text", "empty", "zip-without-config"],
)
def test_not_a_keras_model(tmp_path, content):
    path = tmp_path / "model.keras"
    if content == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("notes.txt", "hello")
    else:
        path.write_bytes(content)
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError) as info:
        load_model(tmp_path)
    msg = str(info.value)
    assert "not a Keras model file" in msg and "re-export" in msg.lower() and str(path) in msg


def test_other_model_formats_are_refused(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ConfigError, match=r"\.keras"):
        load_model(tmp_path / "model.h5")


def test_class_count_mismatch(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "labels.txt").write_text("bird\ncat\n")
    with pytest.raises(ConfigError) as info:
        load_model(copy)
    msg = str(info.value)
    assert "3 outputs" in msg and "2 classes" in msg and "labels.txt" in msg


def test_unexpected_input_shape(tmp_path):
    import keras

    inputs = keras.Input((10,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError, match="H×W×3"):
        load_model(tmp_path / "model.keras")


# ------------------------------------------------------------- predicting
def test_prediction_string():
    assert str(Prediction("cat", 1, 0.931)) == "cat (93.1 %)"
    assert str(Prediction("Ankle boot", 0, 1.0)) == "Ankle boot (100.0 %)"


def test_top_k_ordering_and_format(loaded, images):
    results = predict_images(loaded, images, top_k=3)
    assert len(results) == 3
    for preds in results:
        probs = [p.probability for p in preds]
        assert probs == sorted(probs, reverse=True)
        assert sorted(p.index for p in preds) == [0, 1, 2]
        assert all(loaded.class_names[p.index] == p.label for p in preds)
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert all(re.fullmatch(r"(bird|cat|dog) \(\d{1,3}\.\d %\)", str(p)) for p in preds)
    assert [len(p) for p in predict_images(loaded, images, top_k=1)] == [1, 1, 1]


def test_paths_bytes_and_arrays_give_the_same_answer(loaded, images):
    path = images[1]
    by_path = predict_images(loaded, [path], top_k=3)[0]
    by_str = predict_images(loaded, [str(path)], top_k=3)[0]
    by_bytes = predict_images(loaded, [path.read_bytes()], top_k=3)[0]
    by_array = predict_images(loaded, [np.asarray(Image.open(path).convert("RGB"))], top_k=3)[0]
    for other in (by_str, by_bytes, by_array):
        assert [p.label for p in other] == [p.label for p in by_path]
        assert [p.probability for p in other] == pytest.approx([p.probability for p in by_path], abs=1e-6)


def test_images_are_resized_by_the_training_rule(loaded, images):
    x = prepare_image(loaded, images[0])
    assert x.shape == (64, 64, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, decode_resized(images[0], 64, "pad"))
    assert x[:8].max() == 0  # 40×30 letterboxed: black bars top and bottom


def test_probabilities_match_keras_predict(loaded, images):
    x = np.stack([prepare_image(loaded, p) for p in images])
    ours = predict_arrays(loaded, x, batch_size=2, calibrated=False)
    ref = loaded.model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    top = top_predictions(ours[0], loaded.class_names, 2)
    assert top[0].index == int(ref[0].argmax())


def test_undecodable_image(loaded, images, tmp_path):
    text = tmp_path / "holiday.png"
    text.write_text("not a picture")
    with pytest.raises(ImageDecodeError) as info:
        predict_images(loaded, [images[0], text])
    assert "holiday.png" in str(info.value) and "not an image" in str(info.value)


def test_missing_image_file(loaded, tmp_path):
    with pytest.raises(ImageDecodeError, match="gone.jpg"):
        predict_images(loaded, [tmp_path / "gone.jpg"])


def test_huge_image_is_refused_undecoded(loaded):
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        predict_images(loaded, [png_header_bytes(20_000, 20_000)])


def test_the_default_top_k_fits_a_model_with_fewer_classes():
    """Three classes unless asked; a two-class model (cats and dogs) shows its two, not an error."""
    assert [p.label for p in top_predictions(np.array([0.3, 0.7]), ["cat", "dog"])] == ["dog", "cat"]
    assert len(top_predictions(np.full(5, 0.2), list("abcde"))) == 3
    assert check_top_k(None, 2) == 2 and check_top_k(None, 10) == 3 and check_top_k(2, 10) == 2
    with pytest.raises(ConfigError, match="from 1 to the number of classes"):
        check_top_k(3, 2)


@pytest.mark.parametrize("top_k", [0, 4, -1, True, 1.5])
def test_top_k_out_of_range(loaded, images, top_k):
    with pytest.raises(ConfigError) as info:
        predict_images(loaded, images[:1], top_k=top_k)
    assert "top_k" in str(info.value) and "3" in str(info.value)


def test_bad_array_shape(loaded):
    with pytest.raises(ConfigError, match=r"\(H, W, 3\)"):
        predict_images(loaded, [np.zeros((8, 8, 5), np.uint8)])


# ---------------------------------------------------------------- listing
def test_list_models_skips_partial_and_broken(run_dir, tmp_path):
    ws = Workspace(tmp_path / "ws")
    models = ws.models_dir
    shutil.copytree(run_dir, models / "good")
    shutil.copytree(run_dir, models / ".good2.partial")
    shutil.copytree(run_dir, models / "half.partial")
    (models / "empty").mkdir()
    no_spec = models / "no-spec"
    shutil.copytree(run_dir, no_spec)
    (no_spec / "spec.yaml").unlink()
    bad_metrics = models / "bad-metrics"
    shutil.copytree(run_dir, bad_metrics)
    (bad_metrics / "metrics.json").write_text("{ not json")
    (models / "stray.txt").write_text("x")
    found = {m.name: m for m in list_models(ws)}
    assert set(found) == {"good", "bad-metrics"}
    good = found["good"]
    assert (good.dataset, good.backbone, good.method, good.image_size) == ("tiny", "efficientnet_lite0",
                                                                           "feature_extraction", 64)
    assert good.num_classes == 3 and good.epochs_run == 1 and good.path == models / "good"
    assert isinstance(good.best_val_accuracy, float) and good.created
    assert found["bad-metrics"].best_val_accuracy is None
    assert good.to_dict()["path"] == str(models / "good")


def test_scan_models_says_why_a_run_is_not_listed(run_dir, tmp_path):
    ws = Workspace(tmp_path / "ws")
    models = ws.models_dir
    shutil.copytree(run_dir, models / "good")
    (models / "empty").mkdir()
    (models / "notes").mkdir()
    (models / "notes" / "readme.md").write_text("mine")
    latin = models / "latin1-labels"
    shutil.copytree(run_dir, latin)
    (latin / "labels.txt").write_bytes("caf\xe9\nna\xefve\nx\n".encode("latin-1"))
    no_model = models / "no-model"
    shutil.copytree(run_dir, no_model)
    (no_model / "model.keras").unlink()
    bad_spec = models / "bad-spec"
    shutil.copytree(run_dir, bad_spec)
    (bad_spec / "spec.yaml").write_text("- just\n- a list\n")
    bad_metrics = models / "bad-metrics"
    shutil.copytree(run_dir, bad_metrics)
    (bad_metrics / "metrics.json").write_text("{ not json")
    runs, notes = scan_models(ws)
    assert {m.name for m in runs} == {"good", "bad-metrics"}
    by_run = {n.split("'")[1]: n for n in notes}
    assert set(by_run) == {"latin1-labels", "no-model", "bad-spec", "bad-metrics"}  # not the stray folders
    assert "labels.txt is not UTF-8 text" in by_run["latin1-labels"]
    assert "model.keras is missing" in by_run["no-model"] and str(no_model) in by_run["no-model"]
    assert "spec.yaml is not a YAML mapping" in by_run["bad-spec"]
    assert "metrics.json is not a JSON object" in by_run["bad-metrics"] and "accuracies" in by_run["bad-metrics"]
    cat = list_catalog(ws)
    assert {e.name for e in cat.entries} == {"good", "bad-metrics"} and cat.notes == notes


def test_list_models_of_an_empty_workspace(tmp_path):
    assert list_models(Workspace(tmp_path / "empty")) == []


# ------------------------------------------------------------- evaluation
def test_evaluate_run_reproduces_the_test_accuracy(loaded, run_dir):
    ws = Workspace(run_dir.parent.parent)
    res = evaluate_run(loaded, ws)
    n = len(loaded.data["test_files"])
    assert res["probabilities"].shape == (n, 3) and res["y_true"].shape == (n,)
    assert len(res["files"]) == n and all(Path(f).is_file() for f in res["files"])
    assert res["missing"] == [] and res["same_test_set"] is True
    assert res["report"]["accuracy"] == pytest.approx(loaded.metrics["test_accuracy"])
    assert res["report"]["confusion_matrix"] == loaded.metrics["test"]["confusion_matrix"]


def test_evaluate_run_of_a_model_whose_dataset_was_removed_says_so(loaded, tmp_path):
    """It said only "No dataset is registered under that name", as if a name had been mistyped."""
    with pytest.raises(NotFoundError) as info:
        evaluate_run(loaded, Workspace(tmp_path / "elsewhere"))
    err = info.value
    assert "the dataset it was trained on, 'tiny', is no longer registered" in err.message
    assert "python -m tlcore datasets add tiny FOLDER" in err.fix


def test_evaluate_run_of_a_model_whose_dataset_folder_is_gone_says_so(loaded, tmp_path):
    """It named one image and said to rescan the dataset, which is refused for a missing folder."""
    from tests.helpers.runs import write_tinted_tree
    from tlcore.datasets import add_dataset

    ws = Workspace(tmp_path / "ws")
    add_dataset(ws, "tiny", write_tinted_tree(ws.root / "photos"))  # the run's file names, no image cache yet
    (ws.root / "photos").rename(ws.root / "moved")
    with pytest.raises(DatasetError) as info:
        evaluate_run(loaded, ws)
    err = info.value
    assert "The folder of dataset 'tiny' is missing" in err.message and str(ws.root / "photos") in str(err.received)
    assert "The test images cannot be read." in err.message
    assert "datasets add tiny NEW_PATH --overwrite" in err.fix and "rescan" not in err.fix
    (ws.root / "moved").rename(ws.root / "photos")  # back where it was: evaluated as before
    assert evaluate_run(loaded, ws)["missing"] == []


def test_evaluate_run_needs_a_run_folder(run_dir, tmp_path):
    lone = tmp_path / "m.keras"
    shutil.copyfile(run_dir / "model.keras", lone)
    m = load_model(lone, class_names=list(TINY_CLASSES))
    with pytest.raises(ConfigError, match="run folder"):
        evaluate_run(m, Workspace(tmp_path / "ws"))
