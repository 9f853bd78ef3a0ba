"""tlcore.export: every format round-trips to the same predictions; the model card; atomicity."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers.runs import TINY_CLASSES, tiny_run
from tests.helpers.tflite import tflite_predict
from tlcore.errors import ConfigError, WorkspaceError
from tlcore.export import DEFAULT_FORMATS, FILE_NAMES, FORMATS, export_model
from tlcore.predict import load_model, predict_arrays, prepare_image

pytestmark = [
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="SavedModel and TFLite export need the TensorFlow backend"),
    # Shares the session's tiny trained run (tests/helpers/runs.py) with other modules' tests.
    pytest.mark.xdist_group("tiny-run"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_model(run_dir)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """The default formats (keras, savedmodel, tflite, tflite_dynamic), exported once for the module."""
    out = tmp_path_factory.mktemp("exports") / "tiny-export"
    steps: list[str] = []
    result = export_model(run_dir, out, on_status=steps.append)
    assert steps  # progress was reported
    return result


@pytest.fixture(scope="module")
def x(loaded) -> np.ndarray:
    photos = loaded.run_dir.parent.parent / "photos"
    files = [f for c in TINY_CLASSES for f in sorted((photos / c).glob("*.png"))]
    noise = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    return np.concatenate([np.stack([prepare_image(loaded, f) for f in files]), noise]).astype(np.float32)


@pytest.fixture(scope="module")
def reference(loaded, x) -> np.ndarray:
    return predict_arrays(loaded, x)


def test_files_written(exported):
    out = exported.out_dir
    assert exported.formats == DEFAULT_FORMATS
    names = {p.name for p in out.iterdir()}
    assert names == {"model.keras", "saved_model", "model.tflite", "model_dynamic_range.tflite", "labels.txt",
                     "model_card.json"}
    assert (out / "labels.txt").read_text().splitlines() == list(TINY_CLASSES)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_keras_round_trip(exported, x, reference):
    model = keras.saving.load_model(exported.path("keras"), safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), reference, atol=1e-6)
    # The export folder is itself loadable for prediction, with the run's resize rule.
    again = load_model(exported.out_dir)
    assert (again.class_names, again.image_size, again.resize_mode) == (list(TINY_CLASSES), 64, "pad")
    assert again.spec["dataset"] == "tiny"


def test_savedmodel_round_trip(exported, x, reference):
    import tensorflow as tf

    sm = tf.saved_model.load(str(exported.path("savedmodel")))
    serve = sm.signatures["serving_default"]
    out = serve(image=tf.constant(x))
    probs = next(iter(out.values())).numpy()
    np.testing.assert_allclose(probs, reference, atol=1e-5)


def test_tflite_float_round_trip(exported, x, reference):
    probs = tflite_predict(exported.path("tflite"), x)
    np.testing.assert_array_equal(probs.argmax(1), reference.argmax(1))
    np.testing.assert_allclose(probs, reference, atol=1e-4)


def test_tflite_dynamic_range(exported, x, reference):
    probs = tflite_predict(exported.path("tflite_dynamic"), x)
    agree = float((probs.argmax(1) == reference.argmax(1)).mean())
    assert agree >= 0.9, agree
    sizes = exported.files
    assert sizes["model_dynamic_range.tflite"]["bytes"] < 0.5 * sizes["model.tflite"]["bytes"]


def test_model_card(exported, loaded, run_dir):
    card = json.loads((exported.out_dir / "model_card.json").read_text())
    assert card == exported.model_card | {"files": card["files"]}
    assert card["input"]["shape"] == [64, 64, 3] and card["input"]["resize_mode"] == "pad"
    assert "0-255" in card["input"]["range"] and "letterbox" in card["input"]["resize_rule"]
    assert card["output"]["shape"] == [3] and card["classes"] == list(TINY_CLASSES)
    assert card["backbone"]["name"] == "efficientnet_lite0" and card["backbone"]["weights"] is None
    assert "weights_source" in card["backbone"]
    data = json.loads((run_dir / "data.json").read_text())
    assert card["dataset"] == {"name": "tiny", "fingerprint": data["fingerprint"]}
    m = card["metrics"]
    assert m["best_val_accuracy"] == loaded.metrics["best_val_accuracy"]
    assert m["test_accuracy"] == loaded.metrics.get("test_accuracy")
    assert set(m["test_per_class_f1"]) == set(TINY_CLASSES)
    assert card["training"]["image_size"] == 64 and card["versions"]["backend"] == "tensorflow"
    assert card["exported_at"] and card["versions"]["tlcore"]
    # Every exported file is listed with its size and checksum (the SavedModel's files too).
    files = card["files"]
    assert "model_card.json" not in files and any(k.startswith("saved_model/") for k in files)
    for rel, info in files.items():
        path = exported.out_dir / rel
        assert path.stat().st_size == info["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]


def test_existing_folder_refused_unless_overwrite(run_dir, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(WorkspaceError, match="already exists"):
        export_model(run_dir, out, ["keras"])
    assert (out / "old.txt").exists()
    # Not an earlier export: --overwrite would have deleted old.txt (a user's folder, the workspace's data).
    with pytest.raises(WorkspaceError, match="not an earlier export"):
        export_model(run_dir, out, "keras", overwrite=True)
    assert (out / "old.txt").read_text() == "old"
    (out / "old.txt").unlink()
    res = export_model(run_dir, out, "keras", overwrite=True)  # an empty folder
    assert res.formats == ("keras",)
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "model.keras", "model_card.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    (out / "notes.txt").write_text("mine")  # an earlier export: replaced whole, as --overwrite says
    export_model(run_dir, out, "keras", overwrite=True)
    assert not (out / "notes.txt").exists() and (out / "model_card.json").is_file()


@pytest.mark.parametrize("formats", [["coreml"], [], "keras,tflite_int4"])
def test_unknown_formats(run_dir, tmp_path, formats):
    with pytest.raises(ConfigError, match="keras, savedmodel, tflite, tflite_dynamic"):
        export_model(run_dir, tmp_path / "exp", formats)
    assert not (tmp_path / "exp").exists()


def test_an_unknown_format_is_refused_before_keras_is_imported(tmp_path):
    """A mistyped --format costs a second, not TensorFlow's start-up."""
    import subprocess
    import sys

    code = ("import sys; from tlcore.errors import ConfigError; from tlcore.export import export_model\n"
            f"try: export_model({str(tmp_path / 'no-run')!r}, {str(tmp_path / 'exp')!r}, 'banana')\n"
            "except ConfigError as e: print('refused', 'keras' in sys.modules, str(e).splitlines()[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[:3] == ["refused", "False", "Unknown"], done.stderr
    assert not (tmp_path / "exp").exists()


def test_tensorflow_formats_need_the_tensorflow_backend(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match="KERAS_BACKEND=tensorflow"):
        export_model(run_dir, tmp_path / "exp", ["keras", "tflite"])
    assert not (tmp_path / "exp").exists()
    export_model(run_dir, tmp_path / "exp", ["keras"])  # the Keras file needs no TensorFlow


def test_a_failed_export_leaves_nothing(run_dir, tmp_path, monkeypatch):
    import tlcore.export as export

    def boom(*args, **kwargs):
        raise ConfigError("Writing the SavedModel failed (simulated).")

    monkeypatch.setattr(export, "_saved_model", boom)
    with pytest.raises(ConfigError, match="simulated"):
        export_model(run_dir, tmp_path / "exp", ["keras", "tflite"])
    assert list(tmp_path.iterdir()) == []


def test_file_names_are_documented():
    assert set(FILE_NAMES) == set(FORMATS)


def test_never_replaces_the_models_own_folder(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for out in (copy, tmp_path):
        with pytest.raises(WorkspaceError, match="replace the folder of the model"):
            export_model(copy, out, ["keras"], overwrite=True)
    assert (copy / "spec.yaml").is_file() and (copy / "history.json").is_file()


def test_the_intermediate_savedmodel_is_built_inside_the_export_being_made(run_dir, tmp_path, monkeypatch):
    """It was made beside the export (``.savedmodel.*`` in the exports folder), where an export killed
    mid-conversion left it for good; inside the temporary ``.partial`` folder a later sweep removes it."""
    import tlcore.export as export

    seen = []
    convert = export._tflite

    def spy(source, target, **kw):
        seen.append((Path(source), sorted(p.name for p in tmp_path.iterdir())))
        return convert(source, target, **kw)

    monkeypatch.setattr(export, "_tflite", spy)
    export_model(run_dir, tmp_path / "exp", ["keras", "tflite"])
    [(source, beside)] = seen
    assert source.parent.name == ".scratch" and source.parent.parent.name.endswith(".partial"), source
    assert len(beside) == 1 and beside[0].startswith(".exp.")  # nothing beside the folder being built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    assert not (tmp_path / "exp" / ".scratch").exists()
