"""The scout: rank backbones and freeze depths on the user's data before any training.

One forward pass over up to ``images`` stratified training images gives, for each
backbone, the globally pooled output at **every block boundary** (depth d = the
first d blocks, the part a trial at freeze depth d keeps frozen) and, where the
backbone's ImageNet head is available offline, its 1,000-class probabilities.
From those, four published transferability scores and one built on LogME for the
question a freeze depth asks:

- **Stacked LogME** (``logme_stack``): LogME of the pooled features of every boundary
  from d to the top side by side, each block standardized to the same total variance.
  A trial at freeze depth d trains every block after d, so it can build on all of
  them, not on the boundary at d alone; Head2Toe (Evci et al., ICML 2022) found that
  a linear probe on many layers' pooled features comes close to fine-tuning, and the
  evidence's Occam factor keeps shallow blocks that add little from raising the
  score by their columns alone. Per depth; the score the ranking uses for depths.
- **LogME** (You et al., ICML 2021): the log marginal evidence of a Bayesian
  linear regression from the features to each one-hot label column, its prior
  and noise precisions (alpha, beta) maximised by MacKay's fixed point, averaged
  over classes and divided by the number of images. Per depth.
- **TransRate** (Huang et al., ICML 2022): the coding rate of the features minus
  the mean coding rate within each class, ``R(Z) - mean_c R(Z_c)``, with
  ``R(Z) = 1/2 logdet(I + ZᵀZ / (n eps))``, ``eps = 1e-4``, on centred features
  scaled to a mean squared row norm of 1 (so that depths with different widths and
  scales compare). Per depth; designed to rank layers as well as models.
- **LEEP** (Nguyen et al., ICML 2020): the mean log-likelihood of the *empirical
  predictor* ``p(y|x) = sum_z P(y|z) theta_z(x)``, with ``P(y|z)`` from the joint of
  the labels and the source head's soft predictions. Per backbone (the head sits
  after the last block), so it ranks backbones, not depths.
- **NCE** (Tran et al., ICCV 2019): the negative conditional entropy ``-H(Y|Z)`` of
  the labels given the source head's hard predictions. Per backbone.

LogME and TransRate of the boundary alone say how well the *frozen* features at d
separate the classes: what feature extraction at d would give. On data far from
ImageNet they rise with depth while fine-tuning from the deepest boundaries does
worst (BENCHMARKS.md, issue 12), so they are shown but do not rank. No single score
wins on every dataset (Agostinelli et al., ECCV 2022): the table shows them all, and
``combined`` is the mean of each row's rank under the ranking scores
(``RANK_SCORES``: stacked LogME, LEEP, NCE) that every row has and that differ. The Results page measures, per study, how well each score
ranked the trials that were actually trained (Kendall's tau).

The pooled features are cached (``<workspace>/cache/features``, kind
``scout_features``, one atomic entry per backbone with every depth side by side),
and so are the stacked LogME scores computed from them (kind ``scout_logme_stack``),
so a second scout of the same data costs only the per-boundary scores.

The Search page runs a scout in the background (``launch_scout``): its record
(``run-*.run.json``: pid, host and settings), status file and log lie under
``<workspace>/scouts/<dataset>``, so a reload, another tab or server finds it while it
runs (``running_scouts``), and a second scout of the same settings is refused meanwhile
(``ScoutAlreadyRunning``). A scout run in a terminal (``python -m tlcore scout``) records
itself the same way (``claim_terminal_scout``).

Example:

>>> result = scout(ws, "flowers", backbones=["efficientnet_lite0"], image_size=96, images=2000)
>>> result.table.head(3)[["backbone", "depth", "logme", "transrate", "combined_rank"]]
>>> result.top_configs(3)          # [{"backbone": ..., "freeze_depth": ...}, ...]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tlcore.errors import ConfigError, DatasetError, TLCoreError

__all__ = ["ScoutResult", "scout", "logme", "logme_stack", "leep", "nce", "transrate", "kendall_tau", "SCORES",
           "DEPTH_SCORES", "RANK_SCORES", "ranking_scores",
           "scout_cost_estimate", "scout_cost_for", "running_scouts", "ScoutAlreadyRunning", "claim_terminal_scout"]

SCORES = ("logme_stack", "logme", "transrate", "leep", "nce")
# Scores computed per depth; the others are one value per backbone.
DEPTH_SCORES = ("logme_stack", "logme", "transrate")
# The scores the ranking (``combined``) averages: the ones that score what a trial at
# (backbone, depth) trains. LogME and TransRate of the boundary alone score the frozen
# features there (what feature extraction at that depth gives) and are shown beside them.
RANK_SCORES = ("logme_stack", "leep", "nce")
TRANSRATE_EPS = 1e-4


# ------------------------------------------------------------------ scores
def _clean(features: np.ndarray) -> np.ndarray:
    """float64, finite, without constant columns (they carry no information and only make the
    evidence and the coding rate degenerate)."""
    f = np.asarray(features, dtype=np.float64)
    f = np.where(np.isfinite(f), f, 0.0)
    if f.ndim != 2:
        raise ValueError(f"features must be a 2-D matrix, got shape {f.shape}")
    keep = f.std(axis=0) > 1e-12
    return f[:, keep]


def logme(features: np.ndarray, labels: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6) -> float | None:
    """LogME (You et al., ICML 2021) of ``features`` (n × D) for integer ``labels``; None when undefined.

    For each class c, y = [label == c] is regressed on the features; alpha and beta maximise
    the evidence by the fixed point gamma = sum beta s_i² / (alpha + beta s_i²),
    alpha = gamma / |m|², beta = (n - gamma) / |F m - y|², computed in the SVD basis of F.
    The log evidence per image, averaged over classes, is returned.
    """
    f = _clean(features)
    n = f.shape[0]
    if n < 2 or f.shape[1] == 0:
        return None
    onehot = _one_hot(labels)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    s, u = _nonzero(s, u)
    return _logme_from_spectrum(u.T @ onehot, s ** 2, f.shape[1], onehot.sum(axis=0), n,
                                max_iter=max_iter, tol=tol)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    return (y[:, None] == np.unique(y)[None, :]).astype(np.float64)


def _logme_from_spectrum(proj: np.ndarray, s2: np.ndarray, d: int, counts: np.ndarray, n: int, *,
                         max_iter: int = 100, tol: float = 1e-6) -> float | None:
    """LogME from the SVD ``F = U S Vᵀ`` of an n × d feature matrix: ``proj = Uᵀ Y`` (r × classes,
    Y the one-hot labels, U over the r non-zero singular values), ``s2`` their squares, and
    ``counts`` the images per class (``|y_c|²``)."""
    r = len(s2)
    values = []
    for c in range(proj.shape[1]):
        x2 = proj[:, c] ** 2
        out_of_span = max(float(counts[c] - x2.sum()), 0.0)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            t = alpha / beta
            gamma = float((s2 / (s2 + t)).sum())
            m2 = float((s2 * x2 / (s2 + t) ** 2).sum())
            res2 = float((x2 * (t / (s2 + t)) ** 2).sum()) + out_of_span
            new_alpha = gamma / (m2 + 1e-12)
            new_beta = (n - gamma) / (res2 + 1e-12)
            done = abs(new_alpha / alpha - 1) < tol and abs(new_beta / beta - 1) < tol
            alpha, beta = max(new_alpha, 1e-12), max(new_beta, 1e-12)
            if done:
                break
        t = alpha / beta
        m2 = float((s2 * x2 / (s2 + t) ** 2).sum())
        res2 = float((x2 * (t / (s2 + t)) ** 2).sum()) + out_of_span
        logdet = float(np.log(alpha + beta * s2).sum()) + (d - r) * math.log(alpha)
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - alpha / 2 * m2 - beta / 2 * res2
                    - logdet / 2 - n / 2 * math.log(2 * math.pi))
        values.append(evidence / n)
    out = float(np.mean(values))
    return out if math.isfinite(out) else None


def _standardized_block(features: np.ndarray) -> np.ndarray:
    """A block's columns z-scored and scaled by 1/sqrt(width): every block then carries the same
    total variance (one unit), whatever its width or scale."""
    f = _clean(features)
    if f.shape[1] == 0:
        return f
    f = (f - f.mean(axis=0)) / f.std(axis=0)
    return f / math.sqrt(f.shape[1])


def _nonzero(lam: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values above 1e-10 of the largest (singular values or eigenvalues), with their vectors."""
    keep = lam > lam.max(initial=0.0) * 1e-10
    return lam[keep], vectors[:, keep]


def logme_stack(blocks: Sequence[np.ndarray], labels: np.ndarray, *,
                progress: Callable[[int, int], None] | None = None) -> list[float | None]:
    """Stacked LogME of each depth: entry ``i`` is the LogME of blocks ``i, i+1, …, last`` side by side.

    Fine-tuning from freeze depth d trains every block after d, so what it can build on is
    not the boundary at d alone (what ``logme`` scores) but everything from there to the top.
    Head2Toe (Evci et al., ICML 2022) showed that a linear probe on the pooled features of
    many layers gets close to fine-tuning; the stacked score is LogME's evidence for that
    probe restricted to the layers a trial at depth d trains. Each block is standardized
    (``_standardized_block``) so that a wide block does not outweigh a narrow one; the
    evidence's Occam factor is what stops shallow blocks that add little from raising the
    score merely by adding columns.

    Args:
        blocks: pooled features per boundary (n × width each), shallowest first.
        labels: n integer labels.
        progress: ``progress(done, total)`` after each depth.

    Returns:
        One score per block (None where every block from it on is constant). Computed from
        the deepest block up, one block at a time: while the stack is narrower than n, from
        its D × D covariance, grown by the new block's rows and columns; from then on, from
        the n × n Gram matrix, grown by the new block's outer product. Each depth costs one
        eigendecomposition of the smaller of the two.
    """
    y_all = np.asarray(labels)
    n = len(y_all)
    out: list[float | None] = [None] * len(blocks)
    if n < 2:
        return out
    onehot = _one_hot(y_all)
    counts = onehot.sum(axis=0)
    stack: np.ndarray | None = None  # the standardized blocks so far (the covariance route)
    cov = fty = gram = None
    d = 0
    for i in range(len(blocks) - 1, -1, -1):
        z = _standardized_block(blocks[i])
        if z.shape[0] != n:
            raise ValueError(f"block {i} has {z.shape[0]} rows for {n} labels")
        if z.shape[1] == 0:
            out[i] = out[i + 1] if i + 1 < len(blocks) else None  # the same stack as the next depth
        elif gram is None and d + z.shape[1] < n:
            if stack is None:
                cov, fty, stack = z.T @ z, z.T @ onehot, z
            else:
                cross = z.T @ stack
                cov = np.block([[z.T @ z, cross], [cross.T, cov]])
                fty = np.vstack([z.T @ onehot, fty])
                stack = np.concatenate([z, stack], axis=1)
            d += z.shape[1]
            s2, v = _nonzero(*np.linalg.eigh(cov))
            out[i] = _logme_from_spectrum((v.T @ fty) / np.sqrt(s2)[:, None], s2, d, counts, n)
        else:
            if gram is None:
                full = z if stack is None else np.concatenate([z, stack], axis=1)
                gram, stack, cov, fty = full @ full.T, None, None, None
            else:
                gram += z @ z.T
            d += z.shape[1]
            s2, u = _nonzero(*np.linalg.eigh(gram))
            out[i] = _logme_from_spectrum(u.T @ onehot, s2, d, counts, n)
        if progress is not None:
            progress(len(blocks) - i, len(blocks))
    return out


def _coding_rate(z: np.ndarray, eps: float) -> float:
    n, d = z.shape
    small = z @ z.T if n < d else z.T @ z  # det(I_d + c ZᵀZ) = det(I_n + c Z Zᵀ)
    sign, rate = np.linalg.slogdet(np.eye(small.shape[0]) + small / (n * eps))
    return 0.5 * float(rate) if sign > 0 else float("nan")


def transrate(features: np.ndarray, labels: np.ndarray, *, eps: float = TRANSRATE_EPS) -> float | None:
    """TransRate (Huang et al., ICML 2022): R(Z, eps) - mean over classes of R(Z_c, eps); None when undefined.

    Z is centred and scaled to a mean squared row norm of 1 first.
    """
    z = _clean(features)
    y = np.asarray(labels)
    if z.shape[1] == 0 or len(np.unique(y)) < 2:
        return None
    z = z - z.mean(axis=0, keepdims=True)
    scale = math.sqrt(float((z ** 2).sum(axis=1).mean()))
    if not scale > 0:
        return None
    z = z / scale
    within = [_coding_rate(z[y == c], eps) for c in np.unique(y)]
    out = _coding_rate(z, eps) - float(np.mean(within))
    return out if math.isfinite(out) else None


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float | None:
    """LEEP (Nguyen et al., ICML 2020) of the source model's class probabilities (n × Z) for ``labels``.

    The empirical joint P(y, z) = mean_i theta_z(x_i) [y_i = y] gives P(y | z); LEEP is the mean
    log-likelihood of the empirical predictor sum_z P(y_i | z) theta_z(x_i). None when undefined.
    """
    p = np.asarray(source_probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or len(p) != len(y) or len(p) == 0:
        return None
    p = np.clip(np.where(np.isfinite(p), p, 0.0), 0.0, None)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    classes, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((len(classes), p.shape[1]))
    np.add.at(joint, yi, p)
    joint /= len(y)
    p_z = joint.sum(axis=0)
    cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)  # P(y | z)
    eep = np.einsum("nz,nz->n", p, cond[yi])
    out = float(np.mean(np.log(np.maximum(eep, 1e-300))))
    return out if math.isfinite(out) else None


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float | None:
    """NCE (Tran et al., ICCV 2019): -H(Y | Z) of the labels given the source model's hard labels."""
    z = np.asarray(source_labels)
    y = np.asarray(labels)
    if len(z) != len(y) or len(y) == 0:
        return None
    _, zi = np.unique(z, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((zi.max() + 1, yi.max() + 1))
    np.add.at(joint, (zi, yi), 1.0)
    joint /= len(y)
    p_z = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / p_z), 0.0)
    return float(terms.sum())


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b between two sequences (pairs with a missing value dropped); None when undefined
    (fewer than 3 pairs, or one side constant)."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b)
             if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
    if len(pairs) < 3:
        return None
    from scipy.stats import kendalltau

    xs, ys = zip(*pairs)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    tau = kendalltau(xs, ys).statistic
    return float(tau) if math.isfinite(tau) else None


# ------------------------------------------------------------------ features
def _head_available(backbone: str, image_size: int, weights: Any) -> tuple[bool, str | None]:
    """Whether the backbone's ImageNet head (for LEEP and NCE) can be used offline, and a note if not."""
    from tlcore import backbones as bb

    info = bb.get(backbone)
    if weights != "imagenet":
        return False, f"{info.display_name}: no ImageNet head with these weights, so LEEP and NCE are skipped for it."
    fixed_size = info.family != "efficientnet_lite"  # keras.applications heads need their own input size
    if bb.imagenet_weights_available(backbone, include_top=True, size=image_size) and \
            (not fixed_size or image_size == info.default_size):
        return True, None
    return False, (f"{info.display_name}: its ImageNet head is not available offline at {image_size}px, "
                   "so LEEP and NCE are skipped for it.")


def _pooled_outputs(model: Any, info: Any) -> list[Any]:
    import keras

    from tlcore import backbones as bb

    outs = []
    for depth in range(1, info.num_blocks + 1):
        t = bb.block_output(model, info, depth)
        outs.append(keras.layers.GlobalAveragePooling2D(name=f"scout_pool_{depth}")(t) if len(t.shape) == 4 else t)
    return outs


def _boundary_model(backbone: str, image_size: int, weights: Any, cache_dir: Any, has_head: bool) -> Any:
    """A model image -> [pooled boundary 1, ..., pooled boundary N] (+ the ImageNet probabilities)."""
    import keras

    from tlcore import backbones as bb

    model = bb.build(backbone, input_shape=(image_size, image_size, 3), include_top=has_head,
                     weights=weights, cache_dir=cache_dir, pooling=None)
    outs = _pooled_outputs(model, bb.get(backbone))
    if has_head:
        outs.append(keras.layers.Activation("softmax", dtype="float32", name="scout_softmax")(model.outputs[0]))
    return keras.Model(model.inputs, outs, name=f"scout_{backbone}")


def _widths(backbone: str, image_size: int) -> list[int]:
    """The pooled width at each boundary (from the architecture alone: no weights are loaded)."""
    from tlcore import backbones as bb

    model = bb.build(backbone, input_shape=(image_size, image_size, 3), weights=None, pooling=None)
    return [int(o.shape[-1]) for o in _pooled_outputs(model, bb.get(backbone))]


def _forward(model: Any, images: np.ndarray, batch_size: int,
             progress: Callable[[int, int], None] | None) -> np.ndarray:
    from tlcore.runtime import forward_batches

    outs = forward_batches(model, [images], batch_size, on_batch=progress)
    return np.concatenate([np.asarray(o, dtype=np.float32) for o in (outs if isinstance(outs, list) else [outs])],
                          axis=1)


# ------------------------------------------------------------------ the scout
@dataclasses.dataclass
class ScoutResult:
    """What a scout found.

    Attributes:
        dataset, image_size, images: what was scored (``images`` = the number used).
        table: one row per (backbone, depth): the scores, each score's rank (1 = best),
            ``combined`` (the mean of the ranks under the ranking scores every row has, see
            ``rank_table``) and ``combined_rank``; sorted by it.
        notes: what was skipped or undefined, in words.
        seconds: wall time, with ``feature_seconds`` of it spent in the forward passes.
        cached: backbones whose features came from the cache.
        weights, resize_mode: as scored ("imagenet" or a file, None for random; "pad", ...).
    """

    dataset: str
    image_size: int
    images: int
    table: pd.DataFrame
    notes: list[str]
    seconds: float
    feature_seconds: float
    cached: list[str]
    weights: str | None = "imagenet"
    resize_mode: str = "pad"

    def top_configs(self, k: int, *, depth_range: Sequence[int] | None = None,
                    exclude_full_depth: bool = True) -> list[dict[str, Any]]:
        """The best ``k`` (backbone, freeze depth) pairs by combined rank, as trial parameters.

        ``depth_range`` [lo, hi] keeps only depths a study searches; the full depth (feature
        extraction, which a study's probe trial already covers) is left out unless asked.
        """
        from tlcore import backbones as bb

        out = []
        for row in self.table.itertuples():
            full = bb.get(row.backbone).num_blocks
            if exclude_full_depth and row.depth == full:
                continue
            if depth_range is not None and not depth_range[0] <= row.depth <= depth_range[1]:
                continue
            out.append({"backbone": row.backbone, "freeze_depth": int(row.depth)})
            if len(out) == k:
                break
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "image_size": self.image_size, "images": self.images,
                "seconds": self.seconds, "feature_seconds": self.feature_seconds, "cached": self.cached,
                "notes": self.notes, "weights": self.weights, "resize_mode": self.resize_mode,
                "rows": _jsonable_rows(self.table)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoutResult:
        """A saved scout (``to_dict``). A score column an older file lacks reads as empty.

        Raises:
            ValueError: not a saved scout (not an object, no rows, a row without its backbone and
                depth, a score that is not a number); the message says which.
        """
        if not isinstance(data, dict):
            raise ValueError(f"not a saved scout (a JSON {type(data).__name__}, not an object)")
        try:
            return cls(dataset=str(data["dataset"]), image_size=int(data["image_size"]), images=int(data["images"]),
                       table=_checked_table(data.get("rows")), notes=_texts(data.get("notes")),
                       seconds=float(data["seconds"]), feature_seconds=float(data.get("feature_seconds") or 0.0),
                       cached=_texts(data.get("cached")), weights=data.get("weights", "imagenet"),
                       resize_mode=str(data.get("resize_mode", "pad")))
        except KeyError as exc:
            raise ValueError(f"not a saved scout (no {exc.args[0]!r})") from exc
        except TypeError as exc:
            raise ValueError(f"not a saved scout ({exc})") from exc


def _number(v: Any) -> bool:
    """Whether ``v`` is a number (not a bool) or None, as a saved score may be."""
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _texts(v: Any) -> list[str]:
    """A saved list of texts (notes, cached backbones); anything else reads as none."""
    return [str(x) for x in v] if isinstance(v, list) else []


def _checked_table(rows: Any) -> pd.DataFrame:
    """The ranked table of a saved scout's ``rows``: each a (backbone, depth) with its scores.

    Raises:
        ValueError: ``rows`` is not a non-empty list of such objects (what the page and the seeding read).
    """
    if not isinstance(rows, list) or not rows:
        raise ValueError("not a saved scout (no rows of scores)")
    for i, row in enumerate(rows, start=1):
        ok = (isinstance(row, dict) and isinstance(row.get("backbone"), str) and isinstance(row.get("depth"), int)
              and not isinstance(row.get("depth"), bool)
              and all(_number(row.get(k)) for k in (*SCORES, "width", "combined", "combined_rank")))
        if not ok:
            raise ValueError(f"not a saved scout (row {i} is not a backbone, a depth and numeric scores)")
    table = pd.DataFrame(rows)
    for col in (*SCORES, "combined", "combined_rank"):
        if col not in table.columns:
            table[col] = np.nan
    return table


def _jsonable_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for rec in table.to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                         v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()})
    return rows


def ranking_scores(table: pd.DataFrame) -> list[str]:
    """The scores the combined rank averages: the ranking scores (``RANK_SCORES``) that every row
    has and that differ between rows; when there is none, every score that does."""
    usable = [s for s in SCORES if s in table and table[s].notna().all() and table[s].nunique() > 1]
    return [s for s in usable if s in RANK_SCORES] or usable


def rank_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rank each score (1 = best, ties share the lower rank) and combine those ``ranking_scores`` names."""
    table = pd.DataFrame(rows)
    for score in SCORES:
        if score not in table:
            table[score] = np.nan
        table[score] = pd.to_numeric(table[score], errors="coerce")
        table[f"{score}_rank"] = table[score].rank(ascending=False, method="min")
    complete = ranking_scores(table)
    if complete:
        table["combined"] = table[[f"{s}_rank" for s in complete]].mean(axis=1)
    else:
        table["combined"] = np.nan
    table["combined_rank"] = table["combined"].rank(method="min")
    table.attrs["combined_from"] = complete
    return table.sort_values(["combined_rank", "backbone", "depth"], na_position="last").reset_index(drop=True)


def scout_cost_estimate(images: int, image_size: int, backbones: Sequence[str]) -> float:
    """A rough estimate of a cold scout's seconds on one core, for deciding whether a default study
    scouts. Calibrated on EfficientNet-Lite0 and 2,000 Fashion-MNIST images at 96 px: 16.4 s on one
    core for the model, the forward pass and the per-boundary scores (the per-image cost grows with
    the pixel count), plus about 0.9 s a depth for stacked LogME (one eigendecomposition of a
    matrix as large as the images or the stack's width, whichever is smaller: cubic in it)."""
    from tlcore import backbones as bb

    per_image = 0.004 * (image_size / 96) ** 2
    stacked = sum(bb.get(b).num_blocks for b in backbones) * 0.9 * (min(images, 3000) / 2000) ** 3
    return len(backbones) * images * per_image + 3.0 * len(backbones) + 5.0 + stacked


def scout_cost_for(ws: Any, dataset: str, images: int, image_size: int, backbones: Sequence[str]) -> float:
    """``scout_cost_estimate`` for ``dataset``: no more images than it has are counted (the scout
    scores at most its training split)."""
    try:
        have = ws.get_dataset(dataset).num_images
    except TLCoreError:
        have = 0
    return scout_cost_estimate(min(images, have) if have > 0 else images, image_size, backbones)


def _sample_positions(data: Any, images: int) -> np.ndarray:
    """The positions in ``data``'s training split of the images the scout scores: about
    ``images`` (each class its share, rounded up, at least one), stratified by class and nested by content hash, as the search's subsets are
    (``tlcore.pipeline.nested_subset``); every image when there are no more than that."""
    from tlcore.pipeline import nested_subset

    y = data.y["train"]
    subset = nested_subset(data.rows["train"], y, min(1.0, images / len(y)))
    return np.arange(len(y)) if subset is None else subset


def scout(ws: Any, dataset: str, *, backbones: Sequence[str] = ("efficientnet_lite0",), image_size: int = 128,
          images: int = 2000, weights: str | None = "imagenet", resize_mode: str = "pad", seed: int = 0,
          batch_size: int = 64, progress: Callable[[str, int, int], None] | None = None,
          val_fraction: float | None = None, test_fraction: float | None = None,
          split_seed: int | None = None) -> ScoutResult:
    """Score every (backbone, depth) on up to ``images`` stratified training images of ``dataset``.

    Args:
        ws: the workspace.
        dataset: a registered dataset.
        backbones: backbone names. Defaults to EfficientNet-Lite0.
        image_size, resize_mode, weights: as in ``TrainSpec``.
        images: about this many training images (each class its share, rounded up, at least
            one), stratified by class (nested, by content hash, as the search's subsets).
            Defaults to 2,000.
        seed: for the random weights of tests (``weights=None``).
        batch_size: images per forward call.
        progress: ``progress(text, done, total)`` while features are computed.
        val_fraction, test_fraction, split_seed: the split (None = the dataset's).

    Raises:
        DatasetError: fewer than two classes, or fewer than two images per class on average.
        ConfigError: an unknown backbone, or weights that are unavailable.
    """
    from tlcore import backbones as bb
    from tlcore.config import _check_int

    t0 = time.perf_counter()
    ws.get_dataset(dataset)  # a clear message for an unknown name, before TensorFlow starts
    _check_int("images", images, 2, 1_000_000)
    backbones = list(dict.fromkeys(backbones))
    if not backbones:
        raise ConfigError("Choose at least one backbone to scout.", received="backbones=[]",
                          fix=f"For example: {bb.list_backbones()[0]}.")
    for name in backbones:
        bb.get(name)
    from tlcore.config import TrainSpec

    # The options and the weights file, checked before TensorFlow starts.
    spec = TrainSpec(dataset=dataset, image_size=image_size, resize_mode=resize_mode, weights=weights, seed=seed,
                     val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed)
    weights_id = bb.weights_identity(weights, seed)
    from tlcore.cache import ArrayCache
    from tlcore.runtime import configure, set_seed

    configure()  # the backend starts here (quietly), before the trainer's Keras import
    set_seed(seed)
    from tlcore.trainer import prepare_data

    img_cache = ArrayCache(ws.cache_dir / "images")
    feat_cache = ArrayCache(ws.cache_dir / "features")
    data = prepare_data(ws, spec, cache=img_cache)
    y_all = data.y["train"]
    n_classes = len(np.unique(y_all))
    if n_classes < 2:
        raise DatasetError("The scout needs at least two classes in the training split: with one, every "
                           "score is undefined.", received=f"dataset {dataset!r}: classes {data.class_names}",
                           fix="Add images of another class.")
    if len(y_all) < 2 * n_classes:
        raise DatasetError("The scout needs at least two training images per class (on average): its "
                           "scores are undefined on fewer.",
                           received=f"{len(y_all)} training images for {n_classes} classes",
                           fix="Add images, or give the training split a larger share on the Datasets page.")
    pos = _sample_positions(data, images)
    x, y = data.x["train"][pos], y_all[pos]

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    cached: list[str] = []
    feature_seconds = 0.0
    for name in backbones:
        info = bb.get(name)
        parts = {"kind": "scout_features", "version": 1, "backbone": name, "weights": weights_id,
                 "size": image_size, "resize": resize_mode, "data": data.fingerprint["train"],
                 "rows": int(len(pos)), "images": int(images)}
        has_head, note = _head_available(name, image_size, weights)
        parts["head"] = has_head

        def make(name=name, has_head=has_head) -> np.ndarray:
            model = _boundary_model(name, image_size, weights, ws.cache_dir, has_head)
            cb = (lambda d, t: progress(f"{bb.get(name).display_name}: features at every depth", d, t)) \
                if progress is not None else None
            return _forward(model, x, batch_size, cb)

        f0 = time.perf_counter()
        if feat_cache.contains(parts):
            cached.append(name)
        feats = np.asarray(feat_cache.get_or_create(parts, make, exclusive=True), dtype=np.float32)
        feature_seconds += time.perf_counter() - f0
        widths = _widths(name, image_size)
        if note:
            notes.append(note)
        offsets = np.cumsum([0, *widths])
        source = feats[:, offsets[-1]:] if has_head else None
        leep_v = leep(source, y) if source is not None else None
        nce_v = nce(source.argmax(axis=1), y) if source is not None else None
        blocks = [feats[:, offsets[k]:offsets[k + 1]] for k in range(info.num_blocks)]
        cb = (lambda d, t, name=name: progress(f"{bb.get(name).display_name}: stacked LogME", d, t)) \
            if progress is not None else None
        def make_stacked(blocks=blocks, cb=cb) -> np.ndarray:
            return np.asarray([np.nan if v is None else v for v in logme_stack(blocks, y, progress=cb)])

        # cached beside the features (the eigendecompositions cost more than a warm forward pass)
        stacked = [float(v) if np.isfinite(v) else None for v in feat_cache.get_or_create(
            {**parts, "kind": "scout_logme_stack", "version": 1}, make_stacked, exclusive=True)]
        for depth in range(1, info.num_blocks + 1):
            f = blocks[depth - 1]
            row = {"backbone": name, "depth": depth, "width": widths[depth - 1], "logme_stack": stacked[depth - 1],
                   "logme": logme(f, y), "transrate": transrate(f, y), "leep": leep_v, "nce": nce_v}
            for score in DEPTH_SCORES:
                if row[score] is None:
                    notes.append(f"{info.display_name} depth {depth}: {score} is undefined on these features "
                                 "(constant or degenerate); it is left out of that depth's ranks.")
            rows.append(row)
    table = rank_table(rows)
    return ScoutResult(dataset=dataset, image_size=image_size, images=int(len(pos)), table=table, notes=notes,
                       seconds=time.perf_counter() - t0, feature_seconds=feature_seconds, cached=cached,
                       weights=weights, resize_mode=resize_mode)


# ------------------------------------------------------------------ saved scouts and background runs
def scouts_dir(ws: Any, dataset: str, *, create: bool = True) -> Any:
    """``<workspace>/scouts/<dataset>``: one JSON per finished scout, and the state of running ones.

    Args:
        create: make the folder if missing; readers pass False. Defaults to True.
    """
    from pathlib import Path

    path = Path(ws.root) / "scouts" / dataset
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def save_result(ws: Any, result: ScoutResult) -> Any:
    """Store a finished scout (atomically) under ``scouts_dir``; returns its path."""
    from tlcore._fsutil import atomic_write_json

    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = "+".join(sorted(result.table["backbone"].unique()))
    path = scouts_dir(ws, result.dataset) / f"{stamp}-{result.image_size}px-{result.images}-{names}.json"
    atomic_write_json(path, result.to_dict())
    return path


def load_results(ws: Any, dataset: str, *, skipped: list[str] | None = None) -> list[ScoutResult]:
    """The saved scouts of ``dataset``, newest first.

    A file that cannot be read (not UTF-8, not JSON, not a saved scout, unreadable) is skipped and
    left as it is; each is added to ``skipped`` as "NAME: why", for the caller to show. Nothing is
    created (a dataset never scouted has no folder).
    """
    from tlcore._fsutil import read_json

    folder = scouts_dir(ws, dataset, create=False)
    out = []
    for path in sorted(folder.glob("2*.json"), reverse=True) if folder.is_dir() else []:
        try:
            out.append(ScoutResult.from_dict(read_json(path, default=None)))
        except TLCoreError as exc:  # read_json: not UTF-8, not JSON, a folder, permissions
            why = exc.message
        except ValueError as exc:
            why = str(exc)
        else:
            continue
        if skipped is not None:
            skipped.append(why if path.name in why else f"{path.name}: {why}")
    return out


_ANY: Any = object()


def latest_result(ws: Any, dataset: str, *, image_size: int | None = None,
                  backbones: Sequence[str] | None = None, weights: Any = _ANY,
                  resize_mode: str | None = None, skipped: list[str] | None = None) -> ScoutResult | None:
    """The newest saved scout of ``dataset`` (at ``image_size``, covering ``backbones``, with these
    ``weights`` and ``resize_mode`` when given), or None. Files that cannot be read go to ``skipped``
    (``load_results``)."""
    for res in load_results(ws, dataset, skipped=skipped):
        if image_size is not None and res.image_size != image_size:
            continue
        if weights is not _ANY and res.weights != weights:
            continue
        if resize_mode is not None and res.resize_mode != resize_mode:
            continue
        if backbones is not None and not set(backbones) <= set(res.table["backbone"]):
            continue
        return res
    return None


RUN_SUFFIX = ".run.json"  # a launched scout's record, beside its status file and log


class ScoutAlreadyRunning(ConfigError):
    """``launch_scout`` refused: a scout of the same settings is running. ``run`` is its record
    (``running_scouts``), so a caller can follow that one instead."""

    def __init__(self, message: str, *, run: dict[str, Any], received: object = None, fix: str | None = None):
        self.run = run
        super().__init__(message, received=received, fix=fix)


def _settings_text(dataset: str, backbones: Sequence[str], image_size: int, images: int, weights: Any,
                   resize_mode: str) -> str:
    return (f"dataset={dataset!r}, backbones={','.join(backbones)}, image_size={image_size}, images={images}, "
            f"weights={'none' if weights is None else weights}, resize_mode={resize_mode}")


def _read_run(path: Any) -> dict[str, Any] | None:
    """A launched scout's record (``launch_scout``), or None when it is missing, unreadable or not one.
    Its ``status`` and ``log`` are recorded as names beside the record (the workspace may be moved or
    copied) and returned as paths there; an absolute one (an older record's) is returned as it is."""
    from pathlib import Path

    from tlcore._fsutil import read_json

    try:
        rec = read_json(path, default=None)
    except TLCoreError:
        return None
    if not isinstance(rec, dict):
        return None
    texts = ("status", "log", "dataset", "resize_mode")
    ok = (isinstance(rec.get("pid"), int) and not isinstance(rec.get("pid"), bool) and rec["pid"] > 0
          and all(isinstance(rec.get(k), str) for k in texts)
          and isinstance(rec.get("image_size"), int) and isinstance(rec.get("images"), int)
          and isinstance(rec.get("backbones"), list) and all(isinstance(b, str) for b in rec["backbones"])
          and (rec.get("weights") is None or isinstance(rec.get("weights"), str))
          and _number(rec.get("started")) and rec.get("started") is not None
          and isinstance(rec.get("host", ""), str))
    if not ok:
        return None
    here = Path(path).parent
    rec = {**rec, **{k: str(here / rec[k]) for k in ("status", "log") if not Path(rec[k]).is_absolute()}}
    root = rec.get("root")  # the workspace its process works in: another one when this was copied or moved since
    if isinstance(root, str) and root and not Path(path).is_relative_to(root):
        rec["elsewhere"] = root
    return rec


def running_scouts(ws: Any, dataset: str, *, image_size: int | None = None,
                   backbones: Sequence[str] | None = None, weights: Any = _ANY, resize_mode: str | None = None,
                   images: int | None = None) -> list[dict[str, Any]]:
    """The scouts of ``dataset`` running now, newest first, whichever page, tab, server or session
    launched them (``launch_scout``), each as its record: ``launch_scout``'s state with the settings
    (``dataset``, ``backbones``, ``image_size``, ``images``, ``weights``, ``resize_mode``) and ``host``.

    Filters as ``latest_result`` (``backbones``: the scout covers them) and, when given, ``images``.
    A scout is running while its status says neither finished nor failed and its process lives
    (``scout_status``: the pid on this host, still a tlcore process); one on another host cannot
    be checked from here and counts as running until its status says it ended. A record that cannot
    be read is skipped. Nothing is written.
    """
    folder = scouts_dir(ws, dataset, create=False)
    out = []
    for path in sorted(folder.glob(f"run-*{RUN_SUFFIX}"), reverse=True) if folder.is_dir() else []:
        rec = _read_run(path)
        if rec is None or rec["dataset"] != dataset:
            continue
        if image_size is not None and rec["image_size"] != image_size:
            continue
        if weights is not _ANY and rec.get("weights") != weights:
            continue
        if resize_mode is not None and rec["resize_mode"] != resize_mode:
            continue
        if images is not None and rec["images"] != images:
            continue
        if backbones is not None and not set(backbones) <= set(rec["backbones"]):
            continue
        if scout_status(rec)["state"] == "running":
            out.append({**rec, "record": str(path)})
    return sorted(out, key=lambda r: -float(r.get("started") or 0.0))


@contextlib.contextmanager
def _launch_lock(folder: Any) -> Iterator[None]:
    """An exclusive lock on launching scouts into ``folder`` across processes (two tabs, two servers):
    the check for a running scout and the new one's record happen under it."""
    import fcntl

    with open(folder / ".launch.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def launch_scout(ws: Any, dataset: str, *, backbones: Sequence[str], image_size: int, images: int,
                 weights: str | None = "imagenet", resize_mode: str = "pad") -> dict[str, Any]:
    """Run ``python -m tlcore scout`` in the background (its own session, as search workers are);
    returns its state: ``{"pid", "host", "log", "status", "started", "record"}`` and its settings,
    as ``running_scouts`` finds it again (a reload, another tab or server) from its record
    (``record``: ``run-*.run.json`` beside its status file). ``scout_status`` follows it.

    Raises:
        ScoutAlreadyRunning: a scout of the same dataset, backbones, image size, images, weights
            and resize mode is running (its record is the error's ``run``); nothing was started.
    """
    import sys

    from tlcore import background

    def start(status: Any, log: Any) -> int:
        cmd = [sys.executable, "-m", "tlcore", "--workspace", str(ws.root), "scout", "--data", dataset,
               "--backbones", ",".join(backbones), "--image-size", str(image_size), "--images", str(images),
               "--weights", "none" if weights is None else str(weights), "--resize", resize_mode,
               "--status-file", str(status)]
        return background.spawn(cmd, log, cwd=ws.root, env=background.child_env()).pid

    return _claim_run(ws, dataset, backbones=backbones, image_size=image_size, images=images, weights=weights,
                      resize_mode=resize_mode, start=start)


def claim_terminal_scout(ws: Any, dataset: str, *, backbones: Sequence[str], image_size: int, images: int,
                         weights: str | None = "imagenet", resize_mode: str = "pad") -> dict[str, Any]:
    """Record a scout this process runs itself (``python -m tlcore scout`` in a terminal) as
    ``launch_scout`` records one it starts, so the Search page follows it and no identical scout
    starts beside it; the caller writes its progress to the returned state's ``status`` file
    (its ``log`` names no file: the terminal shows the output).

    Raises:
        ScoutAlreadyRunning: as ``launch_scout``; nothing was recorded.
    """
    import os

    return _claim_run(ws, dataset, backbones=backbones, image_size=image_size, images=images, weights=weights,
                      resize_mode=resize_mode, start=lambda status, log: os.getpid())


def _claim_run(ws: Any, dataset: str, *, backbones: Sequence[str], image_size: int, images: int,
               weights: str | None, resize_mode: str, start: Callable[[Any, Any], int]) -> dict[str, Any]:
    """Under the launch lock: refuse when a scout of the same settings runs, else write a starting
    status, run ``start(status_path, log_path)`` (the pid of the process that scouts) and write the
    run's record; returns the record as ``launch_scout`` does."""
    import os
    import socket

    from tlcore._fsutil import atomic_write_json

    backbones = list(dict.fromkeys(backbones))
    folder = scouts_dir(ws, dataset)
    with _launch_lock(folder):
        same = [r for r in running_scouts(ws, dataset, image_size=image_size, backbones=backbones, weights=weights,
                                          resize_mode=resize_mode, images=images)
                if set(r["backbones"]) == set(backbones)]
        if same:
            run = same[0]
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(run["started"])))
            where = "" if run.get("host") in (None, socket.gethostname()) else f" on {run['host']}"
            raise ScoutAlreadyRunning(
                f"A scout of {dataset} with the same settings is already running (started {when}, process "
                f"{run['pid']}{where}); a second one would only compute the same result again.",
                run=run, received=_settings_text(dataset, backbones, image_size, images, weights, resize_mode),
                fix="Wait for it to end: its result is saved and shown on the Search page, which follows its "
                    f"progress (also in {run['status']})." + (
                        f" If that machine's process has ended without a word, delete {run['record']}."
                        if where else ""))
        run_id = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.urandom(2).hex()}"
        status = folder / f"{run_id}.status.json"
        log = folder / f"{run_id}.log"
        atomic_write_json(status, {"state": "starting", "started": time.time(), "done": 0, "total": 0, "text": ""})
        pid = start(status, log)
        state = {"pid": pid, "host": socket.gethostname(), "root": str(ws.root), "log": str(log), "status": str(status),
                 "started": time.time(), "dataset": dataset, "backbones": backbones, "image_size": int(image_size),
                 "images": int(images), "weights": weights, "resize_mode": resize_mode}
        record = folder / f"{run_id}{RUN_SUFFIX}"
        # the scouting process never writes it (its status file is its own); its files by name, beside it
        atomic_write_json(record, {**state, "log": log.name, "status": status.name})
    return {**state, "record": str(record)}


_STATUS_NUMBERS = ("done", "total", "started", "seconds")


def _read_status(path: Any) -> tuple[dict[str, Any], str | None]:
    """A scout's status file as ``scout_status`` returns it (numbers as numbers, texts as text; a key of
    the wrong type left out), and why it could not be read (None when it could: a missing file is {})."""
    from tlcore._fsutil import read_json

    try:
        data = read_json(path, default=None)
    except TLCoreError as exc:  # not UTF-8, not JSON, a folder, permissions: never a traceback on the page
        return {}, exc.message
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, f"its status file {path} is not a scout's status (a JSON {type(data).__name__})"
    info: dict[str, Any] = {}
    for k, v in data.items():
        if k in _STATUS_NUMBERS:
            if _number(v) and v is not None and math.isfinite(v):
                info[k] = v
        elif isinstance(v, str):
            info[k] = v
    return info, None


def scout_status(state: dict[str, Any]) -> dict[str, Any]:
    """Where a launched scout is: ``{"state": running|finished|failed, "done", "total", "text",
    "error", "result"}`` (``result``: the saved path once finished). Never raises for a damaged
    status file (it is left as it is): the scout is running while its process lives (``pid`` on
    this ``host``, still a tlcore process: ``background.pid_alive``; a ``host`` that is another
    machine's cannot be checked, so it counts as running), else failed, with ``error`` saying the
    file could not be read."""
    import os
    import socket

    from tlcore.background import log_tail, pid_alive

    info, problem = _read_status(state["status"])
    if info.get("state") in ("finished", "failed"):
        return info
    if state.get("elsewhere"):  # this workspace was copied or moved while it ran (``_read_run``)
        return {**info, "state": "failed",
                "error": f"This scout was running in {state['elsewhere']} when this workspace was copied or moved "
                         "from there: its result is saved there, not here. Run it again here."}
    if state.get("host") not in (None, socket.gethostname()):
        return {**info, "state": "running"}  # another machine's process: nothing to check from here
    if not pid_alive(int(state["pid"])):
        again, problem = _read_status(state["status"])  # it may have finished since the first read
        info = again or info
        if info.get("state") in ("finished", "failed"):
            return info
        tail = log_tail(state["log"], 1).strip()
        if problem:
            error = f"The scout's status could not be read: {problem}" + (f" Its log ends: {tail}" if tail else "")
        else:
            error = tail or ("The scout stopped without a result (see its log)." if os.path.exists(state["log"])
                             else "The scout's process ended without a result (stopped, or its terminal closed).")
        return {**info, "state": "failed", "error": error}
    return {**info, "state": "running"}
