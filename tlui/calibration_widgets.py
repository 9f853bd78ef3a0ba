"""A run's calibration on the Results page: the temperature, ECE before → after, a reliability diagram.

``calibration_view(cal, key)`` draws the ``calibration`` block a run stores in its
``metrics.json`` (``tlcore.calibration.calibration_report``: temperature scaling fitted
on the validation split, figures on the test split): three metrics and
``reliability_figure``, confidence against accuracy per confidence bin before and
after scaling, with the diagonal of perfect calibration. A run written before
calibration existed has no such block: it says "not calibrated" (its predictions are
the raw softmax, temperature 1). A run whose block cannot be read (a damaged
``metrics.json``: ``tlcore.predict.RunFiles.calibration_unknown``) is not said to predate
calibration: ``damaged=True`` says that its calibration cannot be read (the page's warning
says which file and how to fix it). ``stored_calibration`` takes the block from a run's
metrics as ``tlcore.predict.read_run_files`` read them (the page reads a run's files once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from tlcore.calibration import stored_temperature
from tlui import fmt as tf

__all__ = ["calibration_view", "reliability_figure", "stored_calibration", "NOT_CALIBRATED", "UNREADABLE"]

NOT_CALIBRATED = ("Not calibrated: this run was trained before temperature scaling was added, so its "
                  "confidences are the raw softmax (temperature 1).")
UNREADABLE = ("Not calibrated: the calibration this run stored cannot be read (see the warning above), so its "
              "confidences are the raw softmax (temperature 1).")
SIDES = {"before": ("before (raw softmax)", "#d62728"), "after": ("after temperature scaling", "#1f77b4")}


def stored_calibration(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``calibration`` block of a run's metrics (``metrics.json``, as ``tlcore.predict.read_run_files``
    read it); None when there is none, or when its temperature is not one that predictions apply
    (``tlcore.calibration.stored_temperature``)."""
    cal = metrics.get("calibration")
    return cal if isinstance(cal, dict) and stored_temperature(metrics) is not None else None


def _points(bins: Sequence[Any], side: str) -> tuple[list[float], list[float], list[int]]:
    """(confidence, accuracy, count) of the non-empty bins of one side; malformed entries skipped."""
    xs, ys, ns = [], [], []
    for b in bins:
        part = b.get(side) if isinstance(b, Mapping) else None
        if not isinstance(part, Mapping):
            continue
        x, y, n = tf.finite(part.get("confidence")), tf.finite(part.get("accuracy")), part.get("count")
        if x is None or y is None or not isinstance(n, int) or n <= 0:
            continue
        xs.append(x)
        ys.append(y)
        ns.append(n)
    return xs, ys, ns


def reliability_figure(bins: Sequence[Any]) -> go.Figure:
    """Confidence (x) against accuracy (y) per confidence bin, before and after, with the diagonal.

    ``bins`` is the stored list (``{"lo", "hi", "before": {"count", "confidence",
    "accuracy"}, "after": {...}}``); empty bins are not drawn, and a marker's area
    grows with its bin's image count.
    """
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line={"dash": "dot", "color": "#7f7f7f"}, hoverinfo="skip"))
    for side, (name, colour) in SIDES.items():
        xs, ys, ns = _points(bins, side)
        if not xs:
            continue
        top = max(ns)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=name, customdata=ns, line={"color": colour},
            marker={"size": [6 + 14 * (n / top) ** 0.5 for n in ns], "color": colour},
            hovertemplate="confidence %{x:.1%}<br>accuracy %{y:.1%}<br>%{customdata} images"
                          f"<extra>{name}</extra>",
        ))
    fig.update_layout(
        height=340, margin={"t": 10, "b": 40, "l": 10, "r": 10},
        xaxis={"title": {"text": "confidence (top class)"}, "range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"title": {"text": "accuracy"}, "range": [0, 1.02], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def calibration_view(cal: Mapping[str, Any] | None, key: str, *, ece_now: float | None = None,
                     damaged: bool = False) -> None:
    """The temperature, ECE and NLL before → after, and the reliability diagram; "not calibrated" without ``cal``.

    ``ece_now``: the ECE of an evaluation just made (with the run's calibration applied), said in a line.
    ``damaged``: the run's calibration exists but cannot be read (``RunFiles.calibration_unknown``):
    without ``cal`` it says so (``UNREADABLE``) rather than that the run predates calibration.
    """
    st.markdown("**Calibration**")
    if ece_now is not None:
        st.caption(f"This evaluation's expected calibration error: {tf.pct(ece_now, 2)}.")
    if not isinstance(cal, Mapping) or tf.finite(cal.get("temperature")) is None:
        st.caption(UNREADABLE if damaged else NOT_CALIBRATED)
        return
    split = "test" if cal.get("split") == "test" else "validation"
    m = st.columns(3)
    m[0].metric("Temperature", tf.fixed(cal.get("temperature"), 3),
                help="Fitted on the validation split by minimising its log-loss (Guo et al., 2017), with a prior "
                "centred on 1 that matters only on a few images: above 1 the "
                "model was over-confident and its probabilities are softened, below 1 sharpened. Predictions "
                "(Predict page, predict, evaluate) apply it; the predicted class never changes.")
    m[1].metric(f"ECE ({split})", tf.pct(cal.get("ece_after"), 2),
                delta=_delta(cal.get("ece_before"), cal.get("ece_after")), delta_color="inverse",
                help="Expected calibration error: the gap between confidence and accuracy, averaged over 15 "
                f"confidence bins weighted by their images. Before scaling: {tf.pct(cal.get('ece_before'), 2)}.")
    m[2].metric(f"Log-loss ({split})", tf.fixed(cal.get("nll_after"), 3),
                delta=_delta(cal.get("nll_before"), cal.get("nll_after"), pct=False), delta_color="inverse",
                help=f"Negative log-likelihood. Before scaling: {tf.fixed(cal.get('nll_before'), 3)}.")
    st.caption(f"ECE {tf.pct(cal.get('ece_before'), 2)} → {tf.pct(cal.get('ece_after'), 2)} on the "
               f"{split} split ({cal.get('num_samples', tf.MISSING)} images)"
               + (" — the split the temperature was fitted on, so optimistic." if split == "validation" else "."))
    bins = cal.get("bins")
    if isinstance(bins, list) and bins:
        st.plotly_chart(reliability_figure(bins), key=f"{key}::reliability", config={"displayModeBar": False})
        st.caption("Reliability diagram: each point is a confidence bin; on the dotted diagonal, confidence "
                   "equals accuracy. Below it the model is over-confident.")


def _delta(before: Any, after: Any, *, pct: bool = True) -> str | None:
    b, a = tf.finite(before), tf.finite(after)
    if a is None or b is None:
        return None
    return f"{100 * (a - b):+.2f} points" if pct else f"{a - b:+.3f}"
