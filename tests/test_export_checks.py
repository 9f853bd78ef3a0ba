"""tlcore.export's new formats (float16, full-integer int8, ONNX) and the checks every export gets.

Each new format is run here by its runtime independently of ``tlcore.exportcheck``
(``tests/helpers/tflite.py``, ONNX Runtime directly), so the figures the card reports are
compared with figures computed another way. Faults: a full disk, int8 without readable
training images, a file that is not a model, ONNX without its converter.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers.runs import TINY_CLASSES, tiny_run, write_tinted_tree
from tests.helpers.tflite import tflite_interpreter, tflite_predict
from tlcore import exportcheck
from tlcore.cli import main
from tlcore.datasets import add_dataset
from tlcore.errors import ConfigError, WorkspaceError
from tlcore.export import FILE_NAMES, MIN_AGREEMENT, SIGNIFICANCE, export_model
from tlcore.predict import load_model
from tlcore.workspace import Workspace

pytestmark = [
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="TFLite and ONNX export need the TensorFlow backend"),
    pytest.mark.xdist_group("tiny-run"),  # the session's tiny trained run (tests/helpers/runs.py)
]

NEW = ("tflite", "tflite_float16", "tflite_int8", "onnx")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def ws(run_dir) -> Workspace:
    return Workspace(run_dir.parent.parent)


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_model(run_dir)


@pytest.fixture(scope="module")
def steps() -> list[str]:
    """The status messages of the module's export."""
    return []


@pytest.fixture(scope="module")
def exported(run_dir, ws, tmp_path_factory, steps):
    """float32, float16 and int8 TFLite and ONNX, exported (and checked) once for the module."""
    out = tmp_path_factory.mktemp("exports") / "tiny-new"
    return export_model(run_dir, out, NEW, workspace=ws, on_status=steps.append)


@pytest.fixture(scope="module")
def held_out(loaded, ws):
    """The run's test images and labels, gathered here without tlcore.exportcheck."""
    from tlcore.datasets import load_index
    from tlcore.pipeline import decode_resized

    index = load_index(ws, "tiny").set_index("relpath")
    rels = loaded.data["test_files"]
    x = np.stack([decode_resized(index.at[r, "path"], 64, "pad") for r in rels])
    y = np.array([loaded.class_names.index(index.at[r, "label"]) for r in rels])
    ref = np.asarray(loaded.model(x.astype(np.float32), training=False))
    return x, y, ref


# ------------------------------------------------------------------ formats
def test_new_formats_are_written(exported, steps):
    assert exported.formats == NEW
    names = {p.name for p in exported.out_dir.iterdir()}
    assert names == {"model.tflite", "model_float16.tflite", "model_int8.tflite", "model.onnx", "labels.txt",
                     "model_card.json"}
    assert not [p for p in exported.out_dir.parent.iterdir() if p.name.startswith(".")]  # no scratch left
    assert any("int8" in s for s in steps) and any(s.startswith("Checking onnx") for s in steps)


def test_float16_round_trip(exported, held_out):
    x, _, ref = held_out
    probs = tflite_predict(exported.path("tflite_float16"), x.astype(np.float32))
    np.testing.assert_array_equal(probs.argmax(1), ref.argmax(1))
    np.testing.assert_allclose(probs, ref, atol=2e-2)
    files = exported.files
    assert files["model_float16.tflite"]["bytes"] <= 0.55 * files["model.tflite"]["bytes"]


def test_int8_takes_raw_uint8_pixels_and_returns_probabilities(exported, held_out):
    x, _, ref = held_out
    interp = tflite_interpreter(exported.path("tflite_int8"))
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["dtype"] == np.uint8 and tuple(inp["quantization"]) == (1.0, 0)  # raw pixels, exactly
    assert out["dtype"] == np.float32
    # Full integer: every tensor inside is int8 (int32 biases); float32 only at the output's end.
    kinds = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    floats = [t["name"] for t in interp.get_tensor_details() if t["dtype"] == np.float32]
    assert "int8" in kinds and len(floats) <= 1, floats
    probs = tflite_predict(exported.path("tflite_int8"), x)
    assert probs.shape == ref.shape
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)
    files = exported.files
    assert files["model_int8.tflite"]["bytes"] <= 0.35 * files["model.tflite"]["bytes"]
    q = exported.model_card["quantization"]["tflite_int8"]
    assert q["tensors"]["input"] == {"dtype": "uint8", "scale": 1.0, "zero_point": 0}
    assert "uint8" in q["input"] and "exactly" in q["input"] and "float32" in q["output"]
    rep = q["representative_data"]
    assert rep["split"] == "train" and rep["same_as_training"] is True
    assert 0 < rep["images"] <= rep["train_images"]
    assert exported.model_card["input"]["dtype_by_format"]["tflite_int8"] == "uint8"
    rounding = q["weight_rounding"]  # data-aware rounding by default (tlcore.quantize)
    assert rounding["layers"] > 0 and rounding["images"] == min(32, rep["images"]) and "data-aware" in rounding["method"]
    import io

    from tlcore.cli._export import print_checks

    out, err = io.StringIO(), io.StringIO()
    print_checks(exported, out=out, err=err)  # the CLI says how the int8 weights were rounded
    assert "int8 weights: data-aware rounding" in out.getvalue() and f"{rounding['layers']} convolution(s)" in out.getvalue()


def test_onnx_round_trip(exported, held_out):
    import onnxruntime as ort

    x, _, ref = held_out
    session = ort.InferenceSession(str(exported.path("onnx")), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape[1:] == [64, 64, 3] and not isinstance(inp.shape[0], int)  # any batch size
    probs = session.run(None, {inp.name: x.astype(np.float32)})[0]
    np.testing.assert_array_equal(probs.argmax(1), ref.argmax(1))
    np.testing.assert_allclose(probs, ref, atol=1e-4)


# ------------------------------------------------------------------- checks
def test_checks_are_computed_and_written_to_the_card(exported, held_out, loaded):
    x, y, ref = held_out
    card = json.loads((exported.out_dir / "model_card.json").read_text())
    assert card["checks"] == exported.checks and card["warnings"] == list(exported.warnings)
    checks = card["checks"]
    assert checks["checked"] is True and checks["reason"] is None
    assert checks["split"] == "test" and checks["images"] == len(loaded.data["test_files"]) == len(x)
    assert checks["same_images_as_training"] is True and checks["missing_images"] == 0
    assert checks["size_reference"] == "tflite"
    assert checks["thresholds"]["min_agreement"] == {f: MIN_AGREEMENT[f] for f in NEW}
    assert checks["thresholds"]["significance"] == SIGNIFICANCE == 0.05
    assert "median of 20 single-image calls" in checks["latency"]
    assert set(checks["formats"]) == set(NEW)
    tflite_bytes = exported.files["model.tflite"]["bytes"]
    for fmt, c in checks["formats"].items():
        probs = (tflite_predict(exported.path(fmt), x if fmt == "tflite_int8" else x.astype(np.float32))
                 if fmt.startswith("tflite") else None)
        if probs is not None:  # the card's figures, computed again another way
            assert c["agreement"] == pytest.approx(float((probs.argmax(1) == ref.argmax(1)).mean()))
            assert c["accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
            assert c["max_abs_prob_diff"] == pytest.approx(float(np.abs(probs - ref).max()), abs=1e-5)
        assert c["bytes"] == exported.files[FILE_NAMES[fmt]]["bytes"]
        assert c["size_pct"] == pytest.approx(100.0 * c["bytes"] / tflite_bytes)
        assert c["latency_ms"] > 0 and c["images"] == len(x) and "error" not in c
        # The verdict: fail only when significantly below the threshold (one-sided exact binomial test),
        # recomputed here with exact fractions from the disagreements counted above.
        k = (int((probs.argmax(1) != ref.argmax(1)).sum()) if probs is not None
             else round((1 - c["agreement"]) * len(x)))
        p = 1 - sum(math.comb(len(x), i) * Fraction(str(1 - MIN_AGREEMENT[fmt])) ** i
                    * Fraction(str(MIN_AGREEMENT[fmt])) ** (len(x) - i) for i in range(k))
        assert c["disagreements"] == k and c["p_value"] == pytest.approx(float(p), rel=1e-9, abs=1e-12)
        assert c["passed"] is (float(p) >= 0.05)
    for fmt in ("tflite", "tflite_float16", "onnx"):  # the float formats compute the same function
        assert checks["formats"][fmt]["agreement"] == 1.0 and checks["formats"][fmt]["passed"] is True
    assert checks["formats"]["tflite"]["size_pct"] == 100.0
    failed = [f for f, c in checks["formats"].items() if not c["passed"]]
    assert len(exported.warnings) == len(failed)  # every failed check is a warning, and nothing else is


def test_a_disagreeing_export_warns_loudly(run_dir, ws, tmp_path, monkeypatch, capsys):
    real = exportcheck.check_format

    def poor(runner, images, reference, **kw):
        return real(runner, images, reference, latency_calls=2) | {"agreement": 0.5, "max_abs_prob_diff": 0.61}

    monkeypatch.setattr(exportcheck, "check_format", poor)
    result = export_model(run_dir, tmp_path / "exp", ["keras"], workspace=ws)
    (warning,) = result.warnings
    n = result.checks["images"]
    assert "keras (model.keras) agrees with the Keras model on only 50.00 %" in warning
    assert f"({n // 2} of {n} differ), significantly below its threshold 99.50 %" in warning and "0.610" in warning
    assert "p < 0.0001" in warning or "p = 0.0" in warning
    card = json.loads((tmp_path / "exp" / "model_card.json").read_text())
    assert card["warnings"] == [warning] and card["checks"]["formats"]["keras"]["passed"] is False
    entry = card["checks"]["formats"]["keras"]
    assert entry["images"] == n and entry["disagreements"] == n // 2 and entry["p_value"] < SIGNIFICANCE
    # The CLI prints the table, the warning on stderr, and exits 1 (the files are written).
    code = main(["--workspace", str(ws.root), "export", str(run_dir), "--format", "keras",
                 "--out", str(tmp_path / "cli")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "AGREEMENT" in out and "FAILED" in out and "50.00 %" in out
    assert f"warning: {warning}" in err.splitlines()
    assert (tmp_path / "cli" / "model.keras").is_file()


def test_an_export_its_runtime_cannot_run_warns(run_dir, ws, tmp_path, monkeypatch):
    def broken(runtime, path, **kw):
        raise RuntimeError("Didn't find op for builtin opcode 'FANCY_OP'")

    monkeypatch.setattr(exportcheck, "load_runner", broken)
    result = export_model(run_dir, tmp_path / "exp", ["keras"], workspace=ws)
    (warning,) = result.warnings
    assert warning.startswith("keras (model.keras) could not be run by keras: RuntimeError: Didn't find op")
    assert result.checks["formats"]["keras"]["passed"] is False


def test_the_cli_prints_the_check_table(run_dir, ws, tmp_path, capsys):
    code = main(["--workspace", str(ws.root), "export", str(run_dir), "--format", "keras,tflite",
                 "--out", str(tmp_path / "exp")])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    header = next(ln for ln in lines if "FORMAT" in ln)
    assert header.split()[:3] == ["FORMAT", "SIZE", "%"] and "AGREEMENT" in header and "LATENCY" in header
    rows = {ln.split()[0]: ln for ln in lines if ln.strip().split()[:1] in (["keras"], ["tflite"])}
    assert set(rows) == {"keras", "tflite"}
    assert " 100.0 % " in rows["tflite"] and "100.00 %" in rows["tflite"]  # size share; agreement
    assert rows["tflite"].rstrip().endswith("ok") and " ms" in rows["tflite"]
    share = 100.0 * (tmp_path / "exp" / "model.keras").stat().st_size / (tmp_path / "exp" / "model.tflite").stat().st_size
    assert f" {math.ceil(10 * share) / 10:.1f} % " in rows["keras"]
    assert any(ln.startswith("Checked on ") and "test images" in ln for ln in lines)
    assert "warning:" not in err


def test_a_lone_model_file_is_exported_but_says_nothing_was_checked(run_dir, tmp_path, capsys):
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("model.keras", "labels.txt"):
        shutil.copyfile(run_dir / name, lone / name)
    result = export_model(lone / "model.keras", tmp_path / "exp", ["keras"])
    assert result.checks["checked"] is False and "run folder" in result.checks["reason"]
    c = result.checks["formats"]["keras"]
    assert c["agreement"] is None and c["passed"] is None and c["latency_ms"] > 0
    assert result.warnings == ()
    code = main(["--workspace", str(tmp_path / "ws"), "export", str(lone / "model.keras"), "--format", "keras",
                 "--out", str(tmp_path / "cli")])
    out, err = capsys.readouterr()
    assert code == 0 and "warning: nothing was checked against data" in err and "not checked" in out


def test_a_run_without_a_test_split_is_checked_on_its_validation_split(run_dir, ws, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    data = json.loads((copy / "data.json").read_text())
    (copy / "data.json").write_text(json.dumps({**data, "test_files": []}))
    result = export_model(copy, tmp_path / "exp", ["keras"], workspace=ws)
    assert result.checks["checked"] is True and result.checks["split"] == "val"
    assert result.checks["images"] > 0 and "validation split" in result.checks["note"]


def test_the_check_set_is_capped_stratified(run_dir, ws, tmp_path):
    result = export_model(run_dir, tmp_path / "exp", ["keras"], workspace=ws, max_check_images=3)
    checks = result.checks
    assert checks["split_images"] > 3 and 3 <= checks["images"] <= 3 + len(TINY_CLASSES)


@pytest.mark.parametrize(("scale", "zero", "dtype"), [(1.0, 0, np.uint8), (0.5, 3, np.uint8), (1.0, -128, np.int8)])
def test_inputs_are_quantized_with_the_tensors_own_parameters(scale, zero, dtype):
    x = np.array([[0, 1, 127, 255]], np.uint8)
    q = exportcheck._quantize(x, {"dtype": dtype, "quantization": (scale, zero)})
    info = np.iinfo(dtype)
    assert q.dtype == dtype
    np.testing.assert_array_equal(q, np.clip(np.round(x / scale) + zero, info.min, info.max))
    y = exportcheck._dequantize(np.array([[0, 10]], np.int8), {"quantization": (0.25, -2)})
    np.testing.assert_allclose(y, [[0.5, 3.0]])


# ---------------------------------------------------------------- faults
@pytest.mark.parametrize("existing", [False, True])
def test_a_full_disk_leaves_nothing_and_names_the_folder(run_dir, ws, tmp_path, monkeypatch, existing):
    import tlcore.export as export

    out = tmp_path / "exp"
    if existing:  # an earlier export, which --overwrite replaces
        out.mkdir()
        (out / "old.txt").write_text("old")
        (out / "model_card.json").write_text("{}")

    def full(src, dst, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(export.shutil, "copyfile", full)
    with pytest.raises(WorkspaceError, match="disk is full") as info:
        export_model(run_dir, out, ["keras"], workspace=ws, overwrite=existing)
    assert "exp" in str(info.value) and str(tmp_path) in str(info.value)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["exp"] if existing else [])  # no temporary folder, no half export
    if existing:
        assert sorted(p.name for p in out.iterdir()) == ["model_card.json", "old.txt"]  # the old export is intact


def test_a_full_disk_while_writing_tflite(run_dir, ws, tmp_path, monkeypatch):
    import pathlib

    real = pathlib.Path.write_bytes

    def full(self, data):
        if self.suffix == ".tflite":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(WorkspaceError, match="disk is full") as info:
        export_model(run_dir, tmp_path / "exp", ["keras", "tflite"], workspace=ws)
    assert "exp" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the export nor the scratch SavedModel


def _workspace_with_copied_photos(tmp_path) -> tuple[Workspace, Path]:
    """A second workspace whose "tiny" dataset is a fresh copy of the tiny run's images."""
    ws2 = Workspace(tmp_path / "ws2")
    photos = write_tinted_tree(ws2.root / "photos")
    add_dataset(ws2, "tiny", photos)
    return ws2, photos


@pytest.mark.parametrize("damage", ["gone", "unreadable"])
def test_int8_without_readable_training_images_is_refused_clearly(loaded, tmp_path, damage):
    ws2, photos = _workspace_with_copied_photos(tmp_path)
    if damage == "gone":
        shutil.rmtree(photos)
    else:
        for p in photos.rglob("*.png"):
            p.write_bytes(b"not a png")
    with pytest.raises(ConfigError) as info:
        export_model(loaded, tmp_path / "exp", ["keras", "tflite_int8"], workspace=ws2)
    text = str(info.value)
    assert "int8 export needs the run's training images" in text and "'tiny'" in text
    assert "tflite_dynamic" in text and "rescan" in text
    assert not (tmp_path / "exp").exists()


def test_int8_of_a_model_without_its_run_folder_is_refused(run_dir, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("model.keras", "labels.txt"):
        shutil.copyfile(run_dir / name, lone / name)
    with pytest.raises(ConfigError, match="no run folder naming its dataset"):
        export_model(lone / "model.keras", tmp_path / "exp", ["tflite_int8"])
    assert not (tmp_path / "exp").exists()


def test_int8_needs_the_dataset_registered(loaded, tmp_path):
    with pytest.raises(ConfigError, match="No dataset is registered under that name"):
        export_model(loaded, tmp_path / "exp", ["tflite_int8"], workspace=Workspace(tmp_path / "empty"))


@pytest.mark.parametrize("content", [b"", b"just text", b"PK\x03\x04 truncated zip"])
def test_a_file_that_is_not_a_model_is_refused(tmp_path, content):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.keras").write_bytes(content)
    (bad / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError, match="not a Keras model file"):
        export_model(bad, tmp_path / "exp", ["keras", "tflite"])
    assert not (tmp_path / "exp").exists()


def test_onnx_without_its_converter_is_refused_up_front(run_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    with pytest.raises(ConfigError, match="tf2onnx") as info:
        export_model(run_dir, tmp_path / "exp", ["keras", "onnx"])
    assert "pip install" in str(info.value)
    assert not (tmp_path / "exp").exists()
