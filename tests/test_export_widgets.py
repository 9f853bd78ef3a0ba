"""The Results page's export checks (tlui.export_widgets.checks_view): failed checks are error boxes."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _checks(passed_int8: bool | None, checked: bool = True) -> dict:
    def fmt(agreement, passed, size_pct):
        return {"bytes": 4_000_000, "size_pct": size_pct, "accuracy": 0.8286 if checked else None,
                "agreement": agreement if checked else None, "max_abs_prob_diff": 0.35 if checked else None,
                "latency_ms": 6.7, "passed": passed if checked else None}

    return {
        "checked": checked, "reason": None if checked else "the model was not exported from its run folder",
        "split": "test" if checked else None, "images": 70 if checked else 0, "size_reference": "tflite",
        "latency": "median of 20 single-image calls", "formats": {
            "tflite": fmt(1.0, True, 100.0),
            # 5 of 70 differ: significantly below 98 % (p = 0.013); a pass here agrees on all 70
            "tflite_int8": fmt(65 / 70 if passed_int8 is False else 1.0, passed_int8, 29.58),
        },
    }


def _page(out: dict) -> None:
    from tlui.export_widgets import checks_view

    checks_view(out)


def test_a_failed_check_is_an_error_box_and_a_failed_row():
    warning = ("tflite_int8 (model_int8.tflite) agrees with the Keras model on only 92.85 % of 70 test images "
               "(5 of 70 differ), significantly below its threshold 98.00 % (one-sided binomial test, p = 0.013 < 0.05)")
    at = AppTest.from_function(_page, args=({"checks": _checks(False), "warnings": [warning]},), default_timeout=60).run()
    assert not at.exception
    assert [e.value.replace("\\", "") for e in at.error] == [warning]
    frame = at.dataframe[0].value
    assert list(frame["check"]) == ["ok", "FAILED"]
    assert list(frame["agreement %"]) == [100.0, 92.85]  # rounded down, never up
    assert list(frame["size %"]) == [100.0, 29.6]  # rounded up, never down
    assert "70 test images" in at.caption[0].value


def test_all_checks_passed_shows_no_error():
    at = AppTest.from_function(_page, args=({"checks": _checks(True), "warnings": []},), default_timeout=60).run()
    assert not at.exception and not at.error and not at.warning
    assert list(at.dataframe[0].value["check"]) == ["ok", "ok"]


def test_an_unchecked_export_says_so():
    at = AppTest.from_function(_page, args=({"checks": _checks(None, checked=False), "warnings": []},), default_timeout=60).run()
    assert not at.exception and not at.error
    assert "Nothing was checked" in at.warning[0].value and "run folder" in at.warning[0].value
    assert list(at.dataframe[0].value["check"]) == ["not checked", "not checked"]
