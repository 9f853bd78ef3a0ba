"""tlcore.calibration (temperature scaling, ECE, reliability) and where it is applied.

The maths on hand-worked and synthetic cases; then, on the session's tiny trained run
(tests/helpers/runs.py), that ``predict`` applies the run's temperature, that runs from
before calibration predict the raw softmax, that an export folder's model card carries
the temperature, and the Results page's calibration view.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from tlcore.calibration import (
    POST_PROCESSING,
    apply_temperature,
    calibration_report,
    card_entry,
    evaluate_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    stored_temperature,
)
from tlcore.errors import ConfigError


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated_set(n: int = 20000, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from the softmax of those logits: a perfectly calibrated model's output."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, classes))
    p = softmax(z)
    u = rng.random(n)[:, None]
    y = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(y, classes - 1)


# ------------------------------------------------------------- hand-worked
HAND_PROBS = np.array([[0.9, 0.1], [0.65, 0.35], [0.85, 0.15], [0.3, 0.7]])
HAND_LABELS = np.array([0, 1, 0, 1])  # right, wrong, right, right


def test_ece_of_a_tiny_case_by_hand():
    # 5 bins of 0.2: 0.9 and 0.85 share (0.8, 1] (mean 0.875, both right: gap 0.125), 0.65 and 0.7 share
    # (0.6, 0.8] (mean 0.675, one right: gap 0.175); ECE = 2/4 · 0.125 + 2/4 · 0.175 = 0.15.
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, bins=5) == pytest.approx(0.15, abs=1e-12)
    rel = reliability(HAND_PROBS, HAND_LABELS, bins=5)
    assert rel.count.tolist() == [0, 0, 0, 2, 2]
    assert rel.confidence[3:] == pytest.approx([0.675, 0.875]) and rel.accuracy[3:] == pytest.approx([0.5, 1.0])
    assert rel.edges == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # 15 bins: each sample alone, gaps 0.1, 0.65, 0.15, 0.3 -> 1.2 / 4.
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS) == pytest.approx(0.3, abs=1e-12)
    records = reliability(HAND_PROBS, HAND_LABELS).to_records()
    assert len(records) == 15 and sum(r["count"] for r in records) == 4
    assert records[0] == {"lo": 0.0, "hi": pytest.approx(1 / 15), "count": 0, "confidence": None, "accuracy": None}


def test_nll_by_hand():
    expected = -np.mean(np.log([0.9, 0.35, 0.85, 0.7]))
    assert negative_log_likelihood(HAND_PROBS, HAND_LABELS) == pytest.approx(expected, rel=1e-12)


def test_an_exactly_calibrated_set_has_zero_ece():
    # In each confidence group the share right equals the confidence: 1/2, 3/4, 9/10, 1.
    groups = [(0.5, 2, 1), (0.75, 4, 3), (0.9, 10, 9), (1.0, 3, 3)]
    probs = np.array([[c, 1 - c] for c, n, _ in groups for _ in range(n)])
    labels = np.array([0 if i < right else 1 for _, n, right in groups for i in range(n)])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probs, 1 - labels) > 0.5  # and the figure can move


# ----------------------------------------------------------------- fitting
def test_temperature_one_leaves_probabilities_unchanged():
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=50).astype(np.float32)
    same = apply_temperature(p, 1.0)
    assert same.dtype == np.float32 and np.array_equal(same, p) and same is not p
    soft = apply_temperature(p, 2.0)
    assert soft.dtype == np.float32 and soft.sum(axis=1) == pytest.approx(np.ones(50), abs=1e-6)
    assert np.array_equal(soft.argmax(axis=1), p.argmax(axis=1))
    assert np.all(soft.max(axis=1) <= p.max(axis=1) + 1e-7)  # T > 1 softens


@pytest.mark.parametrize("t", [0.5, 3.0])
def test_scaling_log_probabilities_is_scaling_the_logits(t):
    z = np.random.default_rng(2).normal(0, 3, (40, 6))
    np.testing.assert_allclose(apply_temperature(softmax(z), t), softmax(z / t), atol=1e-9)


def test_a_calibrated_model_keeps_t_near_one_and_a_low_ece():
    z, y = calibrated_set(n=50000)
    p = softmax(z)
    assert expected_calibration_error(p, y) < 0.015
    assert fit_temperature(p, y) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("sharpen, expected", [(3.0, 3.0), (0.5, 0.5)])
def test_over_and_under_confidence_are_undone(sharpen, expected):
    z, y = calibrated_set(seed=3)
    p = softmax(z * sharpen)  # sharpen > 1: over-confident; < 1: under-confident
    t = fit_temperature(p, y)
    assert t == pytest.approx(expected, rel=0.06)
    q = apply_temperature(p, t)
    assert negative_log_likelihood(q, y) < negative_log_likelihood(p, y)
    assert expected_calibration_error(q, y) < expected_calibration_error(p, y) / 2
    assert np.array_equal(q.argmax(axis=1), p.argmax(axis=1))  # accuracy never changes


def test_the_fitted_temperature_minimises_the_nll():
    z, y = calibrated_set(n=3000, seed=4)
    p = softmax(2.2 * z)
    t = fit_temperature(p, y, prior_sd=None)
    best = negative_log_likelihood(apply_temperature(p, t), y)
    for other in (t * 0.97, t * 1.03, 1.0, 2.0, 3.0):
        assert negative_log_likelihood(apply_temperature(p, other), y) >= best - 1e-12


def test_the_prior_holds_a_small_split_near_one_and_leaves_a_large_one_alone():
    """Two images, as confident when wrong as when right: the plain fit flattens everything (T = 20)."""
    p, y = np.array([[0.6, 0.4], [0.6, 0.4]]), np.array([0, 1])
    assert fit_temperature(p, y, prior_sd=None) == pytest.approx(20.0)
    t = fit_temperature(p, y)
    assert 1.0 < t < 3.0
    # The most probable T: N·NLL + ½ (log T)² is lowest there.
    def objective(temp: float) -> float:
        return 2 * negative_log_likelihood(apply_temperature(p, temp), y) + 0.5 * math.log(temp) ** 2

    assert all(objective(t) <= objective(other) + 1e-9 for other in (t * 0.97, t * 1.03, 1.0, 20.0))
    # A narrower prior holds it nearer 1; with 100 images or more the prior moves T by under 1 %.
    assert fit_temperature(p, y, prior_sd=0.3) < t
    for n in (100, 438):
        for seed in range(5):
            z, labels = calibrated_set(n=n, seed=seed)
            q = softmax(1.34 * z)
            assert fit_temperature(q, labels) == pytest.approx(fit_temperature(q, labels, prior_sd=None), rel=0.01)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_a_bad_prior_is_refused(bad):
    with pytest.raises(ConfigError, match="prior's standard deviation"):
        fit_temperature(HAND_PROBS, HAND_LABELS, prior_sd=bad)


# --------------------------------------------------------------- degenerate
def test_degenerate_inputs_give_finite_figures():
    empty = np.zeros((0, 3))
    assert fit_temperature(empty, []) == 1.0
    assert expected_calibration_error(empty, []) == 0.0 and negative_log_likelihood(empty, []) == 0.0
    assert reliability(empty, []).count.sum() == 0
    assert apply_temperature(empty, 2.0).shape == (0, 3)
    # All right: the NLL falls without bound as T shrinks; nothing to fit.
    right = np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    assert fit_temperature(right, [0, 1, 0]) == 1.0
    # One class present, some wrong; exact zeros (a saturated float32 softmax): finite, within bounds.
    one = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.2, 0.8]])
    t = fit_temperature(one, [0, 0, 0, 0])
    assert math.isfinite(t) and 0.05 <= t <= 20.0
    assert math.isfinite(negative_log_likelihood(one, [0, 0, 0, 0]))
    assert fit_temperature(np.array([[np.nan, 0.5], [0.5, 0.5]]), [0, 1]) == 1.0
    for probs, labels in ((empty, []), (right, [0, 1, 0]), (one, [0, 0, 0, 0])):
        report = calibration_report(probs, labels, probs, labels)
        json.dumps(report, allow_nan=False)  # no NaN or infinity anywhere


def test_bad_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="positive, finite"):
        apply_temperature(HAND_PROBS, 0.0)
    with pytest.raises(ConfigError, match="positive, finite"):
        apply_temperature(HAND_PROBS, float("nan"))
    with pytest.raises(ConfigError, match="class indices"):
        expected_calibration_error(HAND_PROBS, [0, 1, 2, 0])
    with pytest.raises(ConfigError, match="One true label per row"):
        fit_temperature(HAND_PROBS, [0, 1])
    with pytest.raises(ConfigError, match="N×C"):
        reliability(np.ones(4), [0, 0, 0, 0])
    with pytest.raises(ConfigError, match="bins"):
        reliability(HAND_PROBS, HAND_LABELS, bins=0)


# ------------------------------------------------------- what a run stores
def test_calibration_report_fits_on_val_and_measures_on_test():
    zv, yv = calibrated_set(n=2000, seed=5)
    zt, yt = calibrated_set(n=1500, seed=6)
    rep = calibration_report(softmax(2 * zv), yv, softmax(2 * zt), yt)
    assert rep["split"] == "test" and rep["fitted_on"] == "val" and rep["num_samples"] == 1500
    assert rep["temperature"] == pytest.approx(fit_temperature(softmax(2 * zv), yv))
    assert rep["ece_after"] < rep["ece_before"] and rep["nll_after"] < rep["nll_before"]
    assert rep["val"]["num_samples"] == 2000 and "bins" not in rep["val"]
    assert rep["accuracy"] == pytest.approx(np.mean(softmax(zt).argmax(axis=1) == yt))
    assert len(rep["bins"]) == 15
    for side in ("before", "after"):
        assert sum(b[side]["count"] for b in rep["bins"]) == 1500
    same = evaluate_temperature(softmax(2 * zt), yt, rep["temperature"])
    assert same["ece_after"] == rep["ece_after"]
    # Without a test split the figures are the validation split's.
    val_only = calibration_report(softmax(2 * zv), yv, None, None)
    assert val_only["split"] == "val" and val_only["ece_after"] == val_only["val"]["ece_after"]


def test_stored_temperature_and_the_card_entry():
    assert stored_temperature({}) is None and stored_temperature(None) is None
    assert stored_temperature({"calibration": {"temperature": 2.5}}) == 2.5
    for bad in (0, -1.0, float("nan"), float("inf"), True, "2", None):
        assert stored_temperature({"calibration": {"temperature": bad}}) is None
    entry = card_entry(1.7, {"calibration": {"temperature": 1.7, "split": "test", "ece_before": 0.1,
                                             "ece_after": 0.02}})
    assert entry["temperature"] == 1.7 and entry["post_processing"] == POST_PROCESSING
    assert entry["method"] == "temperature scaling" and not entry["applied_inside_model"]
    assert (entry["ece_before"], entry["ece_after"], entry["split"]) == (0.1, 0.02, "test")
    assert card_entry(1.0, {})["method"] == "none (not calibrated)"
    assert stored_temperature({"calibration": card_entry(1.7)}) == 1.7  # the card reads back


# ------------------------------------------------------ applied by predict
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from tests.helpers.runs import tiny_run

    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def x(run_dir) -> np.ndarray:
    from tlcore.predict import load_model, prepare_image

    loaded = load_model(run_dir)
    photos = run_dir.parent.parent / "photos"
    return np.stack([prepare_image(loaded, f) for f in sorted(photos.glob("*/*.png"))[::4]])


@pytest.mark.xdist_group("tiny-run")
def test_predict_applies_the_runs_temperature(run_dir, x):
    from tlcore.predict import load_model, predict_arrays

    loaded = load_model(run_dir)
    cal = json.loads((run_dir / "metrics.json").read_text())["calibration"]
    assert loaded.temperature == pytest.approx(cal["temperature"])
    raw = predict_arrays(loaded, x, calibrated=False)
    np.testing.assert_allclose(predict_arrays(loaded, x), apply_temperature(raw, loaded.temperature), atol=1e-6)
    # A temperature far from 1 changes the probabilities, never the predicted class.
    moved = 0.0
    for t in (0.25, 4.0):
        other = dataclasses.replace(loaded, temperature=t)
        scaled = predict_arrays(other, x)
        np.testing.assert_allclose(scaled, apply_temperature(raw, t), atol=1e-6)
        assert np.array_equal(scaled.argmax(axis=1), raw.argmax(axis=1))
        np.testing.assert_allclose(predict_arrays(other, x, calibrated=False), raw, rtol=0, atol=1e-7)
        moved = max(moved, float(np.abs(scaled - raw).max()))
    assert moved > 1e-3


@pytest.mark.xdist_group("tiny-run")
def test_a_run_from_before_calibration_predicts_the_raw_softmax(run_dir, x, tmp_path):
    from tlcore.predict import load_model, predict_arrays

    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old)
    metrics = json.loads((old / "metrics.json").read_text())
    del metrics["calibration"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    loaded = load_model(old)
    assert loaded.temperature == 1.0 and not loaded.calibrated
    np.testing.assert_allclose(predict_arrays(loaded, x), predict_arrays(loaded, x, calibrated=False), rtol=0, atol=1e-7)


@pytest.mark.xdist_group("tiny-run")
def test_the_model_card_carries_the_temperature_and_an_export_folder_reads_it(run_dir, x, tmp_path):
    from tlcore.export import export_model
    from tlcore.predict import load_model, predict_arrays

    loaded = load_model(run_dir)
    folder = export_model(loaded, tmp_path / "export", formats=("keras",)).out_dir
    card = json.loads((folder / "model_card.json").read_text())
    assert card["calibration"]["temperature"] == loaded.temperature
    assert card["calibration"]["post_processing"] == "probs = softmax(log(output) / temperature)"
    assert card["calibration"]["ece_after"] == loaded.metrics["calibration"]["ece_after"]
    assert load_model(folder).temperature == loaded.temperature
    card["calibration"]["temperature"] = 3.0
    (folder / "model_card.json").write_text(json.dumps(card))
    exported = load_model(folder)
    assert exported.temperature == 3.0
    raw = predict_arrays(exported, x, calibrated=False)
    np.testing.assert_allclose(predict_arrays(exported, x), apply_temperature(raw, 3.0), atol=1e-6)


# ------------------------------------------------------------- Results page
def test_reliability_figure_draws_the_diagonal_and_both_sides():
    from tlui.calibration_widgets import reliability_figure

    z, y = calibrated_set(n=500, seed=7)
    rep = calibration_report(softmax(3 * z), y, softmax(3 * z), y)
    fig = reliability_figure(rep["bins"])
    assert [t.name for t in fig.data] == ["perfectly calibrated", "before (raw softmax)",
                                          "after temperature scaling"]
    before = fig.data[1]
    assert len(before.x) == sum(1 for b in rep["bins"] if b["before"]["count"])  # empty bins not drawn
    assert sum(before.customdata) == 500


def test_calibration_view_on_a_page():
    from streamlit.testing.v1 import AppTest

    def page():
        import numpy as np

        from tlcore.calibration import calibration_report
        from tlui.calibration_widgets import calibration_view

        rng = np.random.default_rng(0)
        p = rng.dirichlet(np.ones(3) * 0.3, size=200)
        y = rng.integers(0, 3, 200)
        calibration_view(calibration_report(p, y, p, y), "new", ece_now=0.0123)
        calibration_view(None, "old")

    at = AppTest.from_function(page).run(timeout=60)
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert labels == ["Temperature", "ECE (test)", "Log-loss (test)"]
    assert len(at.get("plotly_chart")) == 1  # the reliability diagram (none for the uncalibrated run)
    captions = " ".join(c.value for c in at.caption)
    assert "This evaluation's expected calibration error: 1.23 %" in captions
    assert "Not calibrated" in captions and "ECE " in captions
