"""Confidence calibration: temperature scaling and the expected calibration error.

A classifier is *calibrated* when, of the images it labels with confidence 0.8,
80 % are right. Fine-tuned networks are usually over-confident. Temperature
scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017)
divides the logits by one scalar ``T`` fitted on the validation split by
minimising the negative log-likelihood (NLL); ``T > 1`` softens the
probabilities, ``T < 1`` sharpens them, and the predicted class never changes,
so accuracy is untouched.

The workbench's models output softmax probabilities, not logits. Since softmax
is invariant to adding a constant to every logit, ``log p`` equals the logits up
to such a constant, and ``softmax(log(p) / T)`` is exactly temperature scaling of
the logits: the exports stay raw softmax and document this post-processing
(``POST_PROCESSING``).

- ``fit_temperature(probs, labels)``: T minimising the NLL summed over the samples
  plus ``½ (log T / LOG_T_PRIOR_SD)²``, searched on ``log T`` in ``TEMPERATURE_RANGE``:
  the most probable T under a prior centred on 1. The prior matters only on a small
  validation split: on two images, one of them wrong, the plain fit can run to the
  range's end (T = 20) and flatten every later prediction towards uniform; with 100
  images or more it moves T by under 1 % (``tests/test_calibration.py``). 1.0 when there is nothing to fit
  (no samples, a non-finite probability, or no mistake at all: the NLL then falls
  without bound as T shrinks, and one-hot outputs would be the "fit").
- ``apply_temperature(probs, T)``: the calibrated probabilities (``T = 1``: unchanged).
- ``expected_calibration_error(probs, labels, bins=15)``: ECE with equal-width
  confidence bins, ``Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|``.
- ``reliability(probs, labels, bins=15)``: per-bin confidence, accuracy and count
  (``Reliability``), what a reliability diagram draws.
- ``negative_log_likelihood(probs, labels)``: the mean NLL.
- ``calibration_report(...)``: everything the trainer stores in ``metrics.json``
  under ``calibration``; ``evaluate_temperature`` the same figures for a known T
  (``tlcore.predict.evaluate_run``); ``stored_temperature`` reads T back from a
  run's metrics or an export's model card; ``card_entry`` is the model card's block.

Numpy only: the trainer, ``predict``, ``export``, the pages and the benchmarks
share it. Degenerate input (no samples, one class, all correct) gives finite
figures, never NaN.

Example:

>>> T = fit_temperature(val_probs, val_labels)
>>> calibrated = apply_temperature(test_probs, T)
>>> expected_calibration_error(calibrated, test_labels) <= expected_calibration_error(test_probs, test_labels)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlcore.errors import ConfigError

__all__ = [
    "DEFAULT_BINS",
    "TEMPERATURE_RANGE",
    "LOG_T_PRIOR_SD",
    "POST_PROCESSING",
    "Reliability",
    "fit_temperature",
    "apply_temperature",
    "negative_log_likelihood",
    "expected_calibration_error",
    "reliability",
    "evaluate_temperature",
    "calibration_report",
    "stored_temperature",
    "card_entry",
]

DEFAULT_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)
LOG_T_PRIOR_SD = 1.0  # the prior on log T: T within e^±2 (0.14 to 7.4) at 95 %
POST_PROCESSING = "probs = softmax(log(output) / temperature)"
_LOG_FLOOR = 1e-12  # probabilities are clipped here before the log (a float32 softmax can underflow to 0)
_GRID = 41  # coarse grid over log T before the golden-section refinement
_TOL = 1e-6  # on log T


# ----------------------------------------------------------------- inputs
def _check(probs: Any, labels: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``probs`` as an N×C float64 array (and ``labels`` as N ints), or a ConfigError saying why not."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or (p.shape[0] and p.shape[1] < 1):
        raise ConfigError("Class probabilities must be an N×C array.", received=f"shape={p.shape}",
                          fix="Pass one row of class probabilities per image.")
    if labels is None:
        return p, None
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(p):
        raise ConfigError("One true label per row of probabilities is needed.",
                          received=f"labels shape={y.shape}, probabilities shape={p.shape}")
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]):
        raise ConfigError("Labels must be class indices from 0 to C-1.",
                          received=f"labels from {y.min()} to {y.max()} ({y.dtype}), C={p.shape[1]}")
    return p, y.astype(np.int64)


def _check_temperature(temperature: Any) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        t = float("nan")
    if isinstance(temperature, bool) or not math.isfinite(t) or t <= 0:
        raise ConfigError("The temperature must be a positive, finite number.", received=f"temperature={temperature!r}",
                          fix="Use the temperature the run stored (1.0: no calibration).")
    return t


def _log_probs(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, _LOG_FLOOR, 1.0))


def _scaled(logp: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logp / T)`` row by row, in float64."""
    z = logp / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll_at(logp: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logp / temperature
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


# -------------------------------------------------------------- the maths
def apply_temperature(probs: Any, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities: ``softmax(log(probs) / temperature)`` per row.

    Args:
        probs: N×C class probabilities (a softmax output).
        temperature: T > 0; 1.0 returns the probabilities unchanged.

    Returns:
        An N×C array of the input's float dtype (float64 for other dtypes).

    Raises:
        ConfigError: not an N×C array, or T not a positive finite number.
    """
    t = _check_temperature(temperature)
    arr = np.asarray(probs)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    p, _ = _check(arr)
    if t == 1.0 or len(p) == 0:
        return np.array(arr, dtype=dtype, copy=True)
    return _scaled(_log_probs(p), t).astype(dtype, copy=False)


def negative_log_likelihood(probs: Any, labels: Any) -> float:
    """The mean negative log-probability of the true class (probabilities clipped at 1e-12); 0.0 for no samples."""
    p, y = _check(probs, labels)
    if len(p) == 0:
        return 0.0
    return float(-np.mean(_log_probs(p[np.arange(len(y)), y])))


def fit_temperature(probs: Any, labels: Any, *, bounds: tuple[float, float] = TEMPERATURE_RANGE,
                    prior_sd: float | None = LOG_T_PRIOR_SD) -> float:
    """The most probable temperature for ``softmax(log(probs) / T)`` on these labels.

    It minimises ``N · NLL(T) + ½ (log T / prior_sd)²``: the NLL summed over the N
    samples, and a normal prior on log T centred on 0 (T = 1), whose weight against the
    data shrinks as N grows. The NLL is convex in 1/T, hence unimodal in log T: a grid
    over log T in ``bounds`` brackets the minimum, a golden-section search refines it.

    Args:
        probs: N×C validation probabilities (the model's softmax output).
        labels: N true class indices.
        bounds: the range searched. Defaults to ``TEMPERATURE_RANGE`` (0.05 to 20).
        prior_sd: the prior's standard deviation on log T; None fits the NLL alone
            (Guo et al.'s plain fit). Defaults to ``LOG_T_PRIOR_SD`` (1.0).

    Returns:
        T within ``bounds``; 1.0 when there is nothing to fit: no samples, a
        non-finite probability, or no misclassified sample (the NLL then keeps
        falling as T shrinks towards one-hot outputs).
    """
    p, y = _check(probs, labels)
    lo, hi = float(bounds[0]), float(bounds[1])
    if not 0 < lo < hi or not math.isfinite(hi):
        raise ConfigError("Temperature bounds must satisfy 0 < low < high.", received=f"bounds={bounds!r}")
    if prior_sd is not None and (isinstance(prior_sd, bool) or not isinstance(prior_sd, (int, float))
                                 or not 0 < prior_sd < math.inf):
        raise ConfigError("The prior's standard deviation must be a positive number (or None).",
                          received=f"prior_sd={prior_sd!r}")
    if len(p) == 0 or not np.isfinite(p).all() or np.all(p.argmax(axis=1) == y):
        return 1.0
    logp = _log_probs(p)
    n = len(y)
    weight = 0.0 if prior_sd is None else 0.5 / (float(prior_sd) ** 2 * n)  # the prior per sample

    def f(u: float) -> float:
        return _nll_at(logp, y, math.exp(u)) + weight * u * u

    grid = np.linspace(math.log(lo), math.log(hi), _GRID)
    values = [f(u) for u in grid]
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, _GRID - 1)]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > _TOL:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    best_u, best_f = (a + b) / 2.0, f((a + b) / 2.0)
    if values[i] < best_f:  # a grid point on the boundary can beat the bracket's middle
        best_u = float(grid[i])
    return float(min(max(math.exp(best_u), lo), hi))


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's data: equal-width bins of the top-class confidence.

    Attributes:
        edges: the ``bins + 1`` bin edges, 0 to 1; bin ``b`` holds confidences in
            ``(edges[b], edges[b+1]]`` (the first bin also holds 0).
        count: samples per bin.
        confidence: the mean top-class confidence per bin (0.0 in an empty bin: look at ``count``).
        accuracy: the share of correct predictions per bin (0.0 in an empty bin).
    """

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def num_samples(self) -> int:
        return int(self.count.sum())

    def ece(self) -> float:
        """The expected calibration error of these bins (0.0 with no samples)."""
        n = self.num_samples
        if n == 0:
            return 0.0
        return float(np.sum(self.count / n * np.abs(self.accuracy - self.confidence)))

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per bin: ``lo``, ``hi``, ``count``, ``confidence``, ``accuracy`` (None in an empty bin)."""
        return [{"lo": float(self.edges[b]), "hi": float(self.edges[b + 1]), "count": int(self.count[b]),
                 "confidence": float(self.confidence[b]) if self.count[b] else None,
                 "accuracy": float(self.accuracy[b]) if self.count[b] else None}
                for b in range(len(self.count))]


def reliability(probs: Any, labels: Any, bins: int = DEFAULT_BINS) -> Reliability:
    """Per-bin confidence, accuracy and count of the top-class predictions (``Reliability``).

    Args:
        probs: N×C class probabilities.
        labels: N true class indices.
        bins: equal-width confidence bins over [0, 1]. Defaults to 15.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ConfigError("bins must be a positive integer.", received=f"bins={bins!r}")
    p, y = _check(probs, labels)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    count = np.zeros(bins, dtype=np.int64)
    conf_sum = np.zeros(bins)
    correct = np.zeros(bins)
    if len(p):
        conf = np.nan_to_num(p.max(axis=1), nan=0.0)
        hit = (p.argmax(axis=1) == y).astype(np.float64)
        idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
        np.add.at(count, idx, 1)
        np.add.at(conf_sum, idx, conf)
        np.add.at(correct, idx, hit)
    safe = np.maximum(count, 1)
    return Reliability(edges=edges, count=count, confidence=np.where(count > 0, conf_sum / safe, 0.0),
                       accuracy=np.where(count > 0, correct / safe, 0.0))


def expected_calibration_error(probs: Any, labels: Any, bins: int = DEFAULT_BINS) -> float:
    """ECE: ``Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|`` over equal-width confidence bins; 0.0 for no samples."""
    return reliability(probs, labels, bins).ece()


# ------------------------------------------------------ what a run stores
def evaluate_temperature(probs: Any, labels: Any, temperature: float, *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """ECE, NLL and accuracy of ``probs`` before and after scaling by ``temperature``, with the reliability bins.

    Returns:
        ``{"temperature", "num_samples", "accuracy", "ece_before", "ece_after",
        "nll_before", "nll_after", "bins": [{"lo", "hi", "before": {count,
        confidence, accuracy}, "after": {...}}, ...]}``; every figure finite (accuracy
        is None with no samples, a bin's confidence and accuracy None when it is empty).
    """
    t = _check_temperature(temperature)
    p, y = _check(probs, labels)
    q = apply_temperature(p, t)
    before, after = reliability(p, y, bins), reliability(q, y, bins)
    strip = ("lo", "hi")
    return {
        "temperature": t,
        "num_samples": int(len(p)),
        "accuracy": float(np.mean(p.argmax(axis=1) == y)) if len(p) else None,
        "ece_before": before.ece(),
        "ece_after": after.ece(),
        "nll_before": negative_log_likelihood(p, y),
        "nll_after": negative_log_likelihood(q, y),
        "bins": [{"lo": b["lo"], "hi": b["hi"],
                  "before": {k: v for k, v in b.items() if k not in strip},
                  "after": {k: v for k, v in a.items() if k not in strip}}
                 for b, a in zip(before.to_records(), after.to_records())],
    }


def calibration_report(val_probs: Any, val_labels: Any, test_probs: Any | None = None, test_labels: Any | None = None,
                       *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Fit T on the validation split and measure it: what ``metrics.json`` holds under ``calibration``.

    The headline figures (``ece_*``, ``nll_*``, ``bins``) are on the test split
    (``split: "test"``); without test samples they are on the validation split
    (``split: "val"``, the split T was fitted on, so optimistic). ``val`` holds the
    validation figures in both cases.

    Returns:
        ``{"method": "temperature scaling", "fitted_on": "val", "temperature",
        "split", "num_samples", "accuracy", "ece_before", "ece_after", "nll_before",
        "nll_after", "bins", "val": {...the same figures on the validation split, without bins}}``.
    """
    t = fit_temperature(val_probs, val_labels)
    val = evaluate_temperature(val_probs, val_labels, t, bins=bins)
    has_test = test_probs is not None and test_labels is not None and len(np.asarray(test_labels)) > 0
    main = evaluate_temperature(test_probs, test_labels, t, bins=bins) if has_test else val
    return {
        "method": "temperature scaling",
        "fitted_on": "val",
        "split": "test" if has_test else "val",
        **main,
        "val": {k: v for k, v in val.items() if k != "bins"},
    }


def stored_temperature(record: Mapping[str, Any] | None) -> float | None:
    """The temperature under ``record["calibration"]["temperature"]`` (a run's metrics or an export's card).

    None when there is none or it is not a positive finite number (a run written
    before calibration, or a damaged file): the caller then uses 1.0.
    """
    cal = record.get("calibration") if isinstance(record, Mapping) else None
    t = cal.get("temperature") if isinstance(cal, Mapping) else None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        return None
    return float(t)


def card_entry(temperature: float, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The model card's ``calibration`` block: the temperature and how to apply it to the exported output.

    ``metrics`` (the run's) adds the ECE before and after and the split they were measured on.
    """
    t = _check_temperature(temperature)
    cal = (metrics or {}).get("calibration") if isinstance(metrics, Mapping) else None
    entry: dict[str, Any] = {
        "method": "temperature scaling" if t != 1.0 or cal else "none (not calibrated)",
        "temperature": t,
        "post_processing": POST_PROCESSING,
        "applied_inside_model": False,
    }
    if isinstance(cal, Mapping):
        entry.update({k: cal.get(k) for k in ("split", "ece_before", "ece_after")})
    return entry
