"""tlui.fmt: the display text every page shares (numbers, seconds, Plotly labels).

Banners (flash messages) are ``tlui.place``'s: tests/test_place.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tlui import fmt as tf


@pytest.mark.parametrize("value, text", [
    (0.81234, "0.8123"), (0.0003, "3.00e-04"), (0.0, "0.0000"), (12, "12"), (None, "–"), (math.nan, "–"),
    (np.float64(0.5), "0.5000"), ("adam", "adam"),
])
def test_number_writes_objective_values_and_parameters(value, text):
    assert tf.number(value) == text


@pytest.mark.parametrize("value, text", [
    (0.81234, "0.8123"), (0.0003, "3.000e-04"), (123456.0, "1.235e+05"), (True, "yes"), (False, "no"),
    (7, "7"), (None, "–"), (math.nan, "–"),
])
def test_cell_writes_a_table_cell_of_any_kind(value, text):
    assert tf.cell(value) == text


@pytest.mark.parametrize("value, text", [
    (0.8333, "83.3 %"), (1, "100.0 %"), (np.float32(0.5), "50.0 %"), (None, "–"), (math.nan, "–"),
    (True, "–"), ("0.5", "–"),
])
def test_pct_writes_a_fraction_as_a_percentage(value, text):
    assert tf.pct(value) == text


def test_fixed_seconds_and_finite_share_one_missing_rule():
    assert tf.fixed(0.12345, 2) == "0.12" and tf.fixed(None, 2) == tf.MISSING == "–"
    assert tf.fixed(math.inf, 3) == "–" and tf.fixed(math.nan, 2, missing="—") == "—"
    assert tf.seconds(41.6) == "42 s" and tf.seconds(1.25, 1) == "1.2 s" and tf.seconds(None) == "–"
    assert tf.pct(0.5, 0) == "50 %"
    assert tf.finite(3) == 3.0 and tf.finite(np.int64(2)) == 2.0
    assert tf.finite(None) is None and tf.finite(math.nan) is None and tf.finite(False) is None


def test_plot_text_shows_html_literally():
    assert tf.plot_text("<b>cat</b> & dog") == "&lt;b&gt;cat&lt;/b&gt; &amp; dog"
    assert tf.plot_text('say "hi"') == 'say "hi"'  # labels are not attributes: quotes stay
    assert tf.plot_text(3) == "3"

