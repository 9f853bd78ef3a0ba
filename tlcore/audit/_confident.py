"""Confident learning: which given labels are probably wrong, from out-of-fold probabilities.

Written from the paper (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 2021), in plain numpy; cleanlab is not used.
Notation: n images, m classes, ``labels`` the given (noisy) labels ỹ, ``probs`` the n × m
out-of-fold predicted probabilities p̂(ỹ = j; x).

- **Per-class thresholds** (section 3.1): ``t_j`` = the mean of
  p̂(ỹ = j; x) over the images whose given label is j (the class's expected self-confidence).
- **Confident joint** ``C`` (section 3.1): ``C[i, j]`` counts the images labelled i whose
  probability of j reaches ``t_j``; an image above the threshold of several classes counts
  once, for the one of those with the largest probability; an image above none counts nowhere.
- **Calibrated joint** ``Q`` (section 3.1): each row of ``C`` rescaled to the number of images
  given that label, then the whole matrix divided by its sum: the estimated joint
  distribution of given and true labels. ``n * (1 - trace(Q))`` estimates how many labels are
  wrong.
- **Finding the issues** (section 3.2): ``prune_by_noise_rate`` (the default: for each
  off-diagonal cell (i, j), the ``round(n Q[i, j])`` images labelled i with the largest margin
  p̂_j − p̂_i), ``prune_by_class`` (for each class i, the ``round(n Σ_{j≠i} Q[i, j])`` images
  labelled i with the lowest self-confidence), ``both`` (their intersection, the paper's
  C+NR), ``confident_joint`` (the images counted off the diagonal of C) and ``argmax``
  (C_confusion: the prediction disagrees with the label). An image whose given label is the
  model's top prediction is never flagged (``keep_agreeing=False`` turns that off).
- **The out-of-class check** (not in the paper; ``out_of_class=True``, the audit's default):
  an image labelled i is flagged only if p̂(ỹ = i; x) is below ``u_i``, the mean probability of
  class i over the images *not* labelled i. Confident learning counts every image that looks
  confidently like another class; with a weak classifier (80 % on Fashion-MNIST's features)
  that includes many Shirts that look like T-shirts, a confusion of the classes rather than a
  wrong label (those are reported as a whole, ``confused_pairs``). Their given class keeps
  some probability; a wrong label usually keeps almost none. On 3,000 Fashion-MNIST images
  with 5 % of the labels flipped (``bench/bench_audit.py``, three seeds) it raised the
  precision of prune-by-noise-rate's flags from 0.30-0.31 to 0.67-0.73, recall going from
  0.77-0.87 to 0.65-0.77; on the clean images it cut the flags from 243 to 47.
- **Ranking** (section 3.2, "rank by"): ``self_confidence`` p̂(ỹ = given; x), or
  ``normalized_margin`` p̂_given − max_{k≠given} p̂_k; lower is more suspicious.

``out_of_fold_probabilities`` makes the probabilities: a stratified k-fold multinomial
logistic regression (``tlcore.probe.fit_softmax_regression``, L-BFGS) on frozen features,
each image predicted by the model that did not see it.

Example (three images of class 0, two of class 1; the last is labelled 0 but looks like 1):

>>> labels = np.array([0, 0, 1, 1, 0])
>>> probs = np.array([[.9, .1], [.8, .2], [.2, .8], [.1, .9], [.3, .7]])
>>> confident_joint(labels, probs)      # t = (0.667, 0.85): image 4 is not confident of 1
array([[2, 0],
       [0, 1]])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from tlcore._usertext import counted
from tlcore.errors import ConfigError, DatasetError

__all__ = [
    "ISSUE_METHODS",
    "RANKINGS",
    "per_class_thresholds",
    "out_of_class_thresholds",
    "confident_joint",
    "calibrate_joint",
    "find_label_issues",
    "label_quality_scores",
    "suggested_labels",
    "confused_pairs",
    "stratified_folds",
    "out_of_fold_probabilities",
]

IssueMethod = Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"]
Ranking = Literal["self_confidence", "normalized_margin"]
# Measured on Fashion-MNIST features (bench/bench_audit.py): the held-out log-loss is lowest near 0.1.
DEFAULT_L2_GRID = (0.03, 0.1, 0.3, 1.0)
ISSUE_METHODS: tuple[str, ...] = ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax")
RANKINGS: tuple[str, ...] = ("self_confidence", "normalized_margin")


def _check(labels: np.ndarray, probs: np.ndarray, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1 or len(y) != len(p):
        raise ConfigError("labels must be a vector and probs a matrix with one row per label.",
                          received=f"labels {y.shape}, probs {p.shape}")
    m = int(num_classes if num_classes is not None else p.shape[1])
    if p.shape[1] != m:
        raise ConfigError("probs needs one column per class.", received=f"{p.shape[1]} columns for {m} classes")
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= m):
        raise ConfigError(f"labels must be integers in [0, {m}).", received=f"{y.min()}..{y.max()}")
    return y.astype(np.int64), p, m


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray, *, num_classes: int | None = None) -> np.ndarray:
    """``t_j``: the mean probability of class j over the images labelled j (``inf`` for a class
    without images, so that no image is ever confident of it)."""
    y, p, m = _check(labels, probs, num_classes)
    counts = np.bincount(y, minlength=m).astype(np.float64)
    sums = np.zeros(m)
    np.add.at(sums, y, p[np.arange(len(y)), y])
    return np.divide(sums, counts, out=np.full(m, np.inf), where=counts > 0)


def out_of_class_thresholds(labels: np.ndarray, probs: np.ndarray, *, num_classes: int | None = None) -> np.ndarray:
    """``u_i``: the mean probability of class i over the images *not* labelled i (how much of class i the
    model sees, on average, in other classes' images); 0 for a class that every image carries."""
    y, p, m = _check(labels, probs, num_classes)
    others = np.bincount(y, minlength=m).astype(np.float64)
    others = len(y) - others
    sums = p.sum(axis=0) - np.bincount(y, weights=p[np.arange(len(y)), y], minlength=m)
    return np.divide(sums, others, out=np.zeros(m), where=others > 0)


def _confident_classes(y: np.ndarray, p: np.ndarray, m: int) -> np.ndarray:
    """Per image, the class it is confidently counted for in C (-1: above no threshold)."""
    t = per_class_thresholds(y, p, num_classes=m)
    above = p >= t[None, :]
    masked = np.where(above, p, -np.inf)
    out = np.argmax(masked, axis=1)
    return np.where(above.any(axis=1), out, -1)


def confident_joint(labels: np.ndarray, probs: np.ndarray, *, num_classes: int | None = None) -> np.ndarray:
    """The m × m confident joint ``C`` (integer counts; rows: given label, columns: true label).

    Args:
        labels: n given labels, integers in [0, m).
        probs: n × m out-of-fold predicted probabilities.
        num_classes: m. Defaults to the number of columns of ``probs``.
    """
    y, p, m = _check(labels, probs, num_classes)
    cls = _confident_classes(y, p, m)
    c = np.zeros((m, m), dtype=np.int64)
    keep = cls >= 0
    np.add.at(c, (y[keep], cls[keep]), 1)
    return c


def calibrate_joint(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """``Q``: each row of the confident joint rescaled to the number of images with that given
    label, then normalised to sum to 1. A row with no confident image (no evidence either way)
    is taken as all correct: its count goes on the diagonal."""
    c = np.asarray(joint, dtype=np.float64)
    counts = np.asarray(label_counts, dtype=np.float64)
    rows = c.sum(axis=1)
    q = np.where(rows[:, None] > 0, c / np.where(rows > 0, rows, 1.0)[:, None], np.eye(len(c))) * counts[:, None]
    total = q.sum()
    return q / total if total > 0 else q


def label_quality_scores(labels: np.ndarray, probs: np.ndarray, *, method: Ranking = "self_confidence") -> np.ndarray:
    """A score per image, lower = more likely mislabelled.

    ``self_confidence``: p̂(ỹ = given; x). ``normalized_margin``: p̂_given − max_{k≠given} p̂_k,
    in [-1, 1].
    """
    y, p, _ = _check(labels, probs, None)
    if method not in RANKINGS:
        raise ConfigError("Unknown ranking.", received=repr(method), fix=f"Use one of {', '.join(RANKINGS)}.")
    own = p[np.arange(len(y)), y]
    if method == "self_confidence":
        return own
    other = p.copy()
    other[np.arange(len(y)), y] = -np.inf
    return own - other.max(axis=1)


def suggested_labels(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per image, the most probable class other than its given label (what it looks like instead)."""
    y, p, _ = _check(labels, probs, None)
    other = p.copy()
    other[np.arange(len(y)), y] = -np.inf
    return np.argmax(other, axis=1)


def _prune_by_class(y: np.ndarray, p: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    own = p[np.arange(n), y]
    for i in range(q.shape[0]):
        k = int(round(n * (q[i].sum() - q[i, i])))
        members = np.flatnonzero(y == i)
        if k <= 0 or len(members) == 0:
            continue
        order = members[np.argsort(own[members], kind="stable")]
        out[order[:k]] = True
    return out


def _prune_by_noise_rate(y: np.ndarray, p: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    m = q.shape[0]
    for i in range(m):
        members = np.flatnonzero(y == i)
        if len(members) == 0:
            continue
        for j in range(m):
            if i == j:
                continue
            k = int(round(n * q[i, j]))
            if k <= 0:
                continue
            margin = p[members, j] - p[members, i]
            order = members[np.argsort(-margin, kind="stable")]
            out[order[:k]] = True
    return out


def find_label_issues(labels: np.ndarray, probs: np.ndarray, *, method: IssueMethod = "prune_by_noise_rate",
                      num_classes: int | None = None, keep_agreeing: bool = False,
                      out_of_class: bool = False) -> np.ndarray:
    """A boolean mask of the images whose given label confident learning doubts.

    Args:
        labels: n given labels.
        probs: n × m out-of-fold probabilities.
        method: one of ``ISSUE_METHODS`` (see the module docstring). Defaults to
            "prune_by_noise_rate".
        num_classes: m. Defaults to the number of columns of ``probs``.
        keep_agreeing: also flag images whose given label is the model's top prediction.
            Defaults to False (they are never flagged).
        out_of_class: flag only images whose given label i gets less probability than class i
            gets, on average, in images labelled otherwise (``out_of_class_thresholds``; the
            mirror image of the paper's per-class threshold, not in the paper). With a weak
            classifier, confident learning also counts images of two classes the model cannot
            tell apart; this keeps the images that look like nothing of their label. Defaults to
            False (the paper's method as written).
    """
    y, p, m = _check(labels, probs, num_classes)
    if method not in ISSUE_METHODS:
        raise ConfigError("Unknown label-issue method.", received=repr(method),
                          fix=f"Use one of {', '.join(ISSUE_METHODS)}.")
    n = len(y)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if method == "argmax":
        out = np.argmax(p, axis=1) != y
    elif method == "confident_joint":
        cls = _confident_classes(y, p, m)
        out = (cls >= 0) & (cls != y)
    else:
        q = calibrate_joint(confident_joint(y, p, num_classes=m), np.bincount(y, minlength=m))
        if method == "prune_by_class":
            out = _prune_by_class(y, p, q, n)
        elif method == "prune_by_noise_rate":
            out = _prune_by_noise_rate(y, p, q, n)
        else:
            out = _prune_by_class(y, p, q, n) & _prune_by_noise_rate(y, p, q, n)
    if not keep_agreeing:
        out &= np.argmax(p, axis=1) != y
    if out_of_class:
        out &= p[np.arange(n), y] < out_of_class_thresholds(y, p, num_classes=m)[y]
    return out


def confused_pairs(joint: np.ndarray, class_names: list[str], *, min_count: int = 1) -> list[dict[str, object]]:
    """Classes confused as a whole: for each unordered pair, the images of the confident joint's
    off-diagonal cells between them, most first.

    Returns ``[{"a", "b", "a_as_b", "b_as_a", "count", "text"}, ...]`` with ``count`` =
    ``C[a, b] + C[b, a]`` and ``text`` such as "Shirt vs T-shirt: 41 images look swapped".
    """
    c = np.asarray(joint)
    out = []
    for i in range(len(c)):
        for j in range(i + 1, len(c)):
            count = int(c[i, j] + c[j, i])
            if count < max(1, min_count):
                continue
            a, b = (i, j) if c[i, j] >= c[j, i] else (j, i)
            out.append({"a": class_names[a], "b": class_names[b], "a_as_b": int(c[a, b]), "b_as_a": int(c[b, a]),
                        "count": count,
                        "text": f"{class_names[a]} vs {class_names[b]}: {counted(count, 'image')} "
                                f"look{'' if count != 1 else 's'} swapped"})
    return sorted(out, key=lambda d: (-int(d["count"]), str(d["a"]), str(d["b"])))


# ------------------------------------------------------------------ out-of-fold probabilities
def stratified_folds(labels: np.ndarray, folds: int, *, seed: int = 0) -> np.ndarray:
    """A fold number in [0, folds) per image: each class shuffled (seeded) and dealt round the folds,
    so every fold holds each class in proportion."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    start = 0
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        members = members[rng.permutation(len(members))]
        out[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds  # the next class continues where this one stopped
    return out


def _reduce(x: np.ndarray, dims: int | None) -> np.ndarray:
    """Standardised features, projected on their first ``dims`` principal components (unsupervised,
    so done once on all images; not whitened, which would blow up the noise directions); None or
    dims >= D keeps every column."""
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isfinite(x), x, 0.0)
    x = x - x.mean(axis=0, keepdims=True)
    x = x / np.maximum(x.std(axis=0, keepdims=True), 1e-6)
    if dims is None or dims >= min(x.shape):
        return x
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:dims].T


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, *, num_classes: int, folds: int = 5,
                              seed: int = 0, dims: int | None = 256, l2_grid: tuple[float, ...] = DEFAULT_L2_GRID,
                              max_iter: int = 200,
                              progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, dict]:
    """Each image's class probabilities from a multinomial logistic regression that never saw it.

    The features are standardised and reduced to ``dims`` principal components; the L2 strength
    is chosen on the first fold (lowest held-out log-loss among ``l2_grid``) and used for all.

    Args:
        features: n × D frozen features.
        labels: n integer labels in [0, num_classes).
        num_classes: m.
        folds: k. Defaults to 5. Every class needs at least k images.
        seed: the fold assignment's seed. Defaults to 0.
        dims: principal components kept (None: all). Defaults to 256.
        l2_grid: L2 strengths tried on the first fold (on the mean loss of standardised features).
            Defaults to ``DEFAULT_L2_GRID``.
        max_iter: L-BFGS iterations per fit. Defaults to 200.
        progress: ``progress(done, total)`` after each fit.

    Returns:
        ``(probs, info)``: n × m float64 probabilities and ``{"folds", "l2", "dims",
        "oof_accuracy", "oof_log_loss"}``.

    Raises:
        DatasetError: fewer than two classes, or a class with fewer than ``folds`` images.
    """
    from scipy.special import softmax

    from tlcore.probe import fit_softmax_regression

    y = np.asarray(labels, dtype=np.int64)
    check_foldable(y, num_classes=num_classes, folds=folds)
    x = _reduce(features, dims)
    fold = stratified_folds(y, folds, seed=seed)
    probs = np.zeros((len(y), num_classes))
    total = folds + len(l2_grid) - 1
    done = 0
    l2 = None
    for f in range(folds):
        test = fold == f
        grid = tuple(l2_grid) if l2 is None else (l2,)
        fit = fit_softmax_regression(x[~test], y[~test], x[test], y[test], num_classes=num_classes,
                                     l2_grid=grid, max_iter=max_iter)
        l2 = fit.l2
        probs[test] = softmax(x[test] @ fit.kernel.astype(np.float64) + fit.bias.astype(np.float64), axis=1)
        done += len(grid)
        if progress is not None:
            progress(done, total)
    own = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    info = {"folds": int(folds), "l2": float(l2), "dims": int(x.shape[1]),
            "oof_accuracy": float(np.mean(np.argmax(probs, axis=1) == y)),
            "oof_log_loss": float(-np.mean(np.log(own)))}
    return probs, info


def check_foldable(labels: np.ndarray, *, num_classes: int, folds: int, class_names: list[str] | None = None,
                   where: str = "") -> None:
    """Refuse data that k-fold cross-validation cannot use, with what to do about it (``where``: which
    images were counted, e.g. "in the train and val splits")."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError("The label audit needs at least 2 folds.", received=f"folds={folds!r}",
                          fix="Use folds=5 (the default) or any whole number from 2 up.")
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes)
    names = class_names or [str(i) for i in range(num_classes)]
    present = [names[i] for i in range(num_classes) if counts[i] > 0]
    if len(present) < 2:
        raise DatasetError("The label audit needs at least two classes with images: with one, every label "
                           "agrees with every other.", received=f"classes {present}{' ' + where if where else ''}",
                           fix="Add a folder of images for at least one more class.")
    small = [f"{names[i]} ({counts[i]})" for i in range(num_classes) if 0 < counts[i] < folds]
    if small:
        lowest = int(min(counts[counts > 0]))
        hint = (f"Add images to those classes, or audit with fewer folds (at least 2; {lowest} would fit)"
                if lowest >= 2 else "Add images to those classes (a class needs at least 2 for any audit)")
        raise DatasetError(f"The label audit's {folds}-fold cross-validation needs at least {folds} images in "
                           "every class.", received=f"too few in {', '.join(small)}{' ' + where if where else ''}",
                           fix=f"{hint}, or exclude the class's images.")
