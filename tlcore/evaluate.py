"""Evaluation: accuracy, per-class precision/recall/F1, confusion matrix, top losses.

All functions take plain numpy arrays (true label indices and predicted class
probabilities), so they serve the trainer, the search and the pages alike:
``classification_report`` is what ``metrics.json`` holds under ``test`` (written by
``tlcore.trainer``, recomputed by ``tlcore.predict.evaluate_run``); ``top_losses``
and ``most_confused`` feed the Results page's mistakes view. No Keras, no I/O.

Example:

>>> report = classification_report(np.array([0, 1, 1]), np.array([[.9, .1], [.2, .8], [.6, .4]]), ["cat", "dog"])
>>> round(report["accuracy"], 3), report["confusion_matrix"]
(0.667, [[1, 0], [1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "classification_report", "top_losses", "most_confused"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_report(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, loss, confusion matrix and per-class precision/recall/F1/support."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    n = len(class_names)
    if len(y_true) == 0:
        return {"accuracy": None, "loss": None, "num_samples": 0, "confusion_matrix": [[0] * n for _ in range(n)],
                "per_class": [], "macro_f1": None}
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    pred_tot = cm.sum(axis=0).astype(float)
    true_tot = cm.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_tot > 0, tp / pred_tot, 0.0)
        recall = np.where(true_tot > 0, tp / true_tot, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0))))
    per_class = [
        {"class": str(c), "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(class_names, precision, recall, f1, true_tot)
    ]
    present = true_tot > 0
    return {
        "accuracy": float((y_pred == y_true).mean()),
        "loss": loss,
        "num_samples": int(len(y_true)),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
    }


def top_losses(y_true: np.ndarray, probs: np.ndarray, k: int = 16, *, mistakes_only: bool = True) -> list[dict[str, Any]]:
    """The ``k`` samples with the highest loss, highest first.

    The loss is ``-log(prob_true)``, so the order is the probability given to the true class,
    lowest first; the predicted class's own probability (``prob_pred``) need not be ordered, so
    show the loss or ``prob_true`` beside each sample for the list to read in order.

    Returns dicts with ``index``, ``true``, ``pred``, ``prob_true``, ``prob_pred``, ``loss``.
    """
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y_true) == 0:
        return []
    p_true = probs[np.arange(len(y_true)), y_true]
    pred = probs.argmax(axis=1)
    loss = -np.log(np.clip(p_true, 1e-7, 1.0))
    order = np.argsort(-loss, kind="stable")
    if mistakes_only:
        order = order[pred[order] != y_true[order]]
    return [
        {"index": int(i), "true": int(y_true[i]), "pred": int(pred[i]), "prob_true": float(p_true[i]),
         "prob_pred": float(probs[i, pred[i]]), "loss": float(loss[i])}
        for i in order[:k]
    ]


def most_confused(cm: np.ndarray | list[list[int]], class_names: Sequence[str], k: int = 10) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent (true, predicted, count) confusions."""
    cm = np.asarray(cm)
    pairs = [(class_names[i], class_names[j], int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    return sorted(pairs, key=lambda t: -t[2])[:k]
