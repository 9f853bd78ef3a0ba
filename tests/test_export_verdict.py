"""The export check's verdict (tlcore.export.agreement_verdict): an agreement fails only when it is
significantly below its threshold (one-sided exact binomial test), and how the CLI table and the
Results page show a pass under the threshold. Fast: no model is trained or converted; the tail is
compared with exact rational arithmetic (``fractions.Fraction``, ``math.comb``)."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tlcore import export, exportcheck
from tlcore.cli._export import check_rows, print_checks
from tlcore.export import MIN_AGREEMENT, SIGNIFICANCE, agreement_verdict, check_note
from tlcore.exportcheck import CheckImages, binomial_tail

NOTE_68_70 = "2 of 70 differ; within what 70 images can tell from 98 %"


def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    """P(X >= k), X ~ Binomial(n, p), exactly: one minus the lower terms (fewer of them to sum)."""
    if k <= 0:
        return Fraction(1)
    return 1 - sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(min(k, n + 1)))


# ------------------------------------------------------------------ the binomial tail
@pytest.mark.parametrize("p", ["0.005", "0.02", "0.1", "0.5", "0.93"])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 30, 70])
def test_the_tail_matches_exact_fractions(n, p):
    for k in range(-1, n + 2):
        expected = float(exact_tail(k, n, Fraction(p)))
        assert binomial_tail(k, n, float(p)) == pytest.approx(expected, rel=1e-10, abs=1e-300), (k, n, p)


def test_known_values_on_the_demo_test_split():
    q = Fraction(98, 100)
    # P(X >= 2) = 1 - q^70 - 70 p q^69, in closed form
    assert binomial_tail(2, 70, 0.02) == pytest.approx(float(1 - q**70 - 70 * (1 - q) * q**69), rel=1e-12)
    assert binomial_tail(2, 70, 0.02) == pytest.approx(0.4095594449342498, rel=1e-12)
    assert binomial_tail(4, 70, 0.02) == pytest.approx(0.0518985996001813, rel=1e-12)
    assert binomial_tail(5, 70, 0.02) == pytest.approx(0.0132298095825730, rel=1e-12)
    assert binomial_tail(1, 70, 0.02) == pytest.approx(float(1 - q**70), rel=1e-12)


@pytest.mark.parametrize(("k", "p"), [(1, "0.005"), (10, "0.005"), (16, "0.005"), (45, "0.02"), (51, "0.02"),
                                      (52, "0.02"), (80, "0.02"), (120, "0.02")])
def test_the_tail_is_exact_on_the_largest_check_set(k, p):
    n = export.MAX_CHECK_IMAGES
    assert binomial_tail(k, n, float(p)) == pytest.approx(float(exact_tail(k, n, Fraction(p))), rel=1e-9)


def test_the_tail_at_its_edges():
    assert binomial_tail(0, 2000, 0.02) == 1.0 and binomial_tail(-3, 5, 0.5) == 1.0
    assert binomial_tail(71, 70, 0.02) == 0.0
    assert binomial_tail(1, 70, 0.0) == 0.0 and binomial_tail(0, 70, 0.0) == 1.0
    assert binomial_tail(70, 70, 1.0) == 1.0
    assert binomial_tail(np.int64(2), np.int64(70), np.float64(0.02)) == pytest.approx(0.4095594449342498)
    far = binomial_tail(2000, 2000, 0.005)  # 0.005^2000 underflows: 0, never NaN or an error
    assert far == 0.0
    assert 0.0 < binomial_tail(200, 2000, 0.02) < 1e-40  # terms far below 1e-308 summed in log space
    tails = [binomial_tail(k, 2000, 0.02) for k in range(0, 2001, 7)]
    assert all(a >= b for a, b in zip(tails, tails[1:])) and all(0.0 <= t <= 1.0 for t in tails)
    with pytest.raises(ValueError):
        binomial_tail(1, -1, 0.5)
    with pytest.raises(ValueError):
        binomial_tail(1, 10, 1.5)


# ------------------------------------------------------------------ the verdict
@pytest.mark.parametrize(("k", "n", "fmt", "passed"), [
    (0, 70, "tflite_dynamic", True),
    (2, 70, "tflite_dynamic", True),    # 97.14 %: p = 0.41, what 70 images cannot tell from 98 %
    (4, 70, "tflite_dynamic", True),    # p = 0.052
    (5, 70, "tflite_dynamic", False),   # p = 0.013
    (10, 70, "tflite_dynamic", False),  # 85.71 %: p = 1.4e-6
    (45, 2000, "tflite_int8", True),    # 97.75 %: p = 0.23
    (51, 2000, "tflite_int8", True),    # p = 0.051
    (52, 2000, "tflite_int8", False),   # 97.40 %: p = 0.037
    (1, 70, "tflite", True),            # 98.57 % at 99.5 %: p = 0.30
    (2, 70, "onnx", False),             # p = 0.048
    (15, 2000, "keras", True),          # p = 0.083
    (16, 2000, "savedmodel", False),    # 99.20 %: p = 0.048
])
def test_a_format_fails_only_when_significantly_below_its_threshold(k, n, fmt, passed):
    expected_p = float(exact_tail(k, n, 1 - Fraction(str(MIN_AGREEMENT[fmt]))))
    verdict, p = agreement_verdict(k, n, MIN_AGREEMENT[fmt])
    assert p == pytest.approx(expected_p, rel=1e-9)
    assert verdict is passed and (expected_p >= SIGNIFICANCE) is passed
    assert SIGNIFICANCE == 0.05


# ------------------------------------------------------------------ the check entries, without a real export
def _checked(tmp_path: Path, monkeypatch, agreements: dict[str, float], n: int = 70):
    """``export._check_all`` on fake files whose checks report the given agreements on ``n`` images."""
    for f in agreements:
        (tmp_path / export.FILE_NAMES[f]).write_bytes(b"x" * 1000)
    model = tmp_path / "source.keras"
    model.write_bytes(b"x" * 4000)
    loaded = SimpleNamespace(model_path=model, num_classes=3)
    images = CheckImages(x=np.zeros((n, 4, 4, 3), np.uint8), y=np.zeros(n, np.int64), split="test", available=n)
    files = {tmp_path / export.FILE_NAMES[f]: f for f in agreements}
    monkeypatch.setattr(exportcheck, "reference_probabilities", lambda loaded, x: np.zeros((len(x), 3), np.float32))
    monkeypatch.setattr(exportcheck, "load_runner", lambda runtime, path: files[Path(path)])
    monkeypatch.setattr(exportcheck, "check_format", lambda runner, images, reference: {
        "images": n, "accuracy": 0.8, "agreement": agreements[runner], "max_abs_prob_diff": 0.25, "latency_ms": 1.0})
    return export._check_all(tmp_path, tuple(agreements), loaded, images, lambda text: None)


def test_the_entry_records_the_numbers_behind_the_verdict(tmp_path, monkeypatch):
    checks, warnings = _checked(tmp_path, monkeypatch, {"tflite": 1.0, "tflite_dynamic": 68 / 70})
    dyn = checks["formats"]["tflite_dynamic"]
    assert dyn["disagreements"] == 2 and dyn["images"] == 70 and dyn["min_agreement"] == 0.98
    assert dyn["p_value"] == pytest.approx(0.4095594449342498) and dyn["passed"] is True
    assert dyn["agreement"] == pytest.approx(68 / 70)
    f32 = checks["formats"]["tflite"]
    assert f32["disagreements"] == 0 and f32["p_value"] == 1.0 and f32["passed"] is True
    assert warnings == []  # the README's own demo example no longer fails on sampling noise
    assert checks["thresholds"]["significance"] == SIGNIFICANCE and "binomial" in checks["thresholds"]["rule"]
    assert check_note(dyn) == NOTE_68_70 and check_note(f32) == ""


def test_a_significant_shortfall_warns_with_its_numbers(tmp_path, monkeypatch):
    checks, warnings = _checked(tmp_path, monkeypatch, {"tflite": 68 / 70, "tflite_dynamic": 60 / 70})
    f32, dyn = checks["formats"]["tflite"], checks["formats"]["tflite_dynamic"]
    assert (f32["disagreements"], f32["passed"]) == (2, False) and f32["p_value"] == pytest.approx(0.0482675967918267)
    assert (dyn["disagreements"], dyn["passed"]) == (10, False) and dyn["p_value"] < 1e-4
    first, second = warnings
    assert first.startswith("tflite (model.tflite) agrees with the Keras model on only 97.14 % of 70 test images "
                            "(2 of 70 differ), significantly below its threshold 99.50 %")
    assert "p = 0.048 < 0.05" in first and "0.250" in first
    assert "85.71 % of 70 test images (10 of 70 differ)" in second and "threshold 98.00 %" in second
    assert "p < 0.0001" in second and check_note(f32) == "" and check_note(dyn) == ""


def test_a_format_that_cannot_be_run_still_fails(tmp_path, monkeypatch):
    (tmp_path / "model.tflite").write_bytes(b"x")
    model = tmp_path / "source.keras"
    model.write_bytes(b"x")
    monkeypatch.setattr(exportcheck, "reference_probabilities", lambda loaded, x: np.zeros((len(x), 3), np.float32))

    def broken(runtime, path):
        raise RuntimeError("Didn't find op for builtin opcode 'FANCY_OP'")

    monkeypatch.setattr(exportcheck, "load_runner", broken)
    images = CheckImages(x=np.zeros((70, 4, 4, 3), np.uint8), y=np.zeros(70, np.int64), split="test", available=70)
    checks, (warning,) = export._check_all(tmp_path, ("tflite",), SimpleNamespace(model_path=model), images,
                                           lambda text: None)
    assert checks["formats"]["tflite"]["passed"] is False and "could not be run" in warning


# ------------------------------------------------------------------ how it is shown
def _checks_section(**dyn) -> dict:
    base = {"bytes": 1_000_000, "size_pct": 26.0, "accuracy": 0.8, "max_abs_prob_diff": 0.3, "latency_ms": 2.0,
            "min_agreement": 0.98, "images": 70}
    return {"checked": True, "split": "test", "images": 70, "size_reference": "tflite", "latency": "median",
            "formats": {"tflite": base | {"bytes": 4_000_000, "size_pct": 100.0, "agreement": 1.0, "min_agreement": 0.995,
                                          "disagreements": 0, "p_value": 1.0, "passed": True},
                        "tflite_dynamic": base | dyn}}


def test_the_cli_shows_a_pass_under_the_threshold_as_ok_with_a_plain_note():
    checks = _checks_section(agreement=68 / 70, disagreements=2, p_value=0.41, passed=True)
    _, rows = check_rows(checks)
    assert rows[0][-1] == "ok" and rows[1][4] == "97.14 %"
    assert rows[1][-1] == f"ok ({NOTE_68_70})"
    out, err = io.StringIO(), io.StringIO()
    print_checks(SimpleNamespace(checks=checks, warnings=(), model_card={}), out=out, err=err)
    line = next(ln for ln in out.getvalue().splitlines() if ln.strip().startswith("tflite_dynamic"))
    assert line.rstrip().endswith(f"ok ({NOTE_68_70})") and "\x1b[" not in out.getvalue()
    assert "significantly below its threshold" in out.getvalue() and err.getvalue() == ""


def test_the_cli_table_reads_cards_written_before_the_new_keys():
    old = _checks_section(agreement=1.0, passed=True)  # no disagreements, images or p_value
    for key in ("images", "min_agreement"):
        old["formats"]["tflite_dynamic"].pop(key)
    _, rows = check_rows(old)
    assert [r[-1] for r in rows] == ["ok", "ok"]
    failed = _checks_section(agreement=0.9, passed=False)
    assert check_rows(failed)[1][1][-1] == "FAILED"
    noted = _checks_section(agreement=68 / 70, passed=True)  # k derived from the agreement when not recorded
    assert check_rows(noted)[1][1][-1] == f"ok ({NOTE_68_70})"


def _page(out: dict) -> None:
    from tlui.export_widgets import checks_view

    checks_view(out)


def test_the_results_page_shows_a_pass_under_the_threshold_as_ok_with_a_note():
    from streamlit.testing.v1 import AppTest

    checks = _checks_section(agreement=68 / 70, disagreements=2, p_value=0.41, passed=True)
    at = AppTest.from_function(_page, args=({"checks": checks, "warnings": []},), default_timeout=60).run()
    assert not at.exception and not at.error and not at.warning
    frame = at.dataframe[0].value
    assert list(frame["check"]) == ["ok", f"ok ({NOTE_68_70})"]
    assert list(frame["agreement %"]) == [100.0, 97.14]
    assert "significantly below its threshold" in at.caption[0].value
