"""The linear probe: a softmax regression fitted to convergence on frozen features.

Linear probe, then fine-tune (Kumar et al., ICLR 2022, "LP-FT"): a head fitted
first on the frozen backbone's pooled features, then used as the starting head of
every fine-tuning run, beats fine-tuning from a random head and distorts the
pretrained features less (the random head's first large gradients no longer flow
into the unfrozen blocks). On the cached full-depth features the fit costs
seconds, so ``tlcore.trainer`` fits it once per (train/val data, backbone,
weights, image size, resize rule) and keeps it in the feature cache, where every
later run and every search trial on the same data finds it.

``fit_softmax_regression`` is plain numpy + SciPy's L-BFGS: the multinomial
log-likelihood with an L2 penalty, the penalty chosen among a few strengths by
validation log-loss, then refitted. ``head_weights`` packs the result as the
``(kernel, bias)`` pair of the classifier's dense layer (the softmax follows it).

Example:

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 8)); y = (x[:, 0] > 0).astype(int)
>>> fit = fit_softmax_regression(x, y, x, y, num_classes=2)
>>> fit.val_accuracy > 0.95
True
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from tlcore.errors import ConfigError

__all__ = ["ProbeFit", "fit_softmax_regression", "PROBE_VERSION", "DEFAULT_L2_GRID"]

PROBE_VERSION = 1
# Penalties on the mean log-loss; the features are backbone activations of order 1.
DEFAULT_L2_GRID = (1e-4, 1e-3, 1e-2)


@dataclasses.dataclass
class ProbeFit:
    """A fitted probe: ``logits = x @ kernel + bias``."""

    kernel: np.ndarray  # D x C float32
    bias: np.ndarray  # C float32
    l2: float
    val_accuracy: float
    val_loss: float
    train_accuracy: float
    iterations: int

    def pack(self) -> np.ndarray:
        """One (D + 1) x C float32 array (the bias as the last row), for the array cache."""
        return np.concatenate([self.kernel, self.bias[None, :]]).astype(np.float32)

    @staticmethod
    def unpack(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(arr, dtype=np.float32)
        return arr[:-1], arr[-1]


def _loss_grad(w: np.ndarray, x: np.ndarray, onehot: np.ndarray, sw: np.ndarray, l2: float):
    d, c = x.shape[1], onehot.shape[1]
    kernel, bias = w[: d * c].reshape(d, c), w[d * c :]
    logp = log_softmax(x @ kernel + bias, axis=1)
    loss = -float(np.sum(sw * np.sum(onehot * logp, axis=1))) + 0.5 * l2 * float(np.sum(kernel * kernel))
    diff = (np.exp(logp) - onehot) * sw[:, None]
    g_kernel = x.T @ diff + l2 * kernel
    return loss, np.concatenate([g_kernel.ravel(), diff.sum(axis=0)])


def _evaluate(x: np.ndarray, y: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> tuple[float, float]:
    logp = log_softmax(x @ kernel + bias, axis=1)
    return float(np.mean(np.argmax(logp, axis=1) == y)), float(-np.mean(logp[np.arange(len(y)), y]))


def fit_softmax_regression(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    num_classes: int,
    class_weight: np.ndarray | None = None,
    l2_grid: tuple[float, ...] = DEFAULT_L2_GRID,
    max_iter: int = 500,
) -> ProbeFit:
    """Fit ``softmax(x @ kernel + bias)`` to the labels by L-BFGS, to convergence.

    Args:
        x_train, y_train: N x D features and N integer labels.
        x_val, y_val: validation features and labels, which pick the L2 strength.
        num_classes: C.
        class_weight: per-class sample weights (C,), or None for equal weights.
        l2_grid: L2 strengths tried (on the mean loss). Defaults to ``DEFAULT_L2_GRID``.
        max_iter: L-BFGS iterations at most. Defaults to 500.

    Returns:
        The ``ProbeFit`` with the lowest validation log-loss.
    """
    if not l2_grid:
        raise ConfigError("The linear probe needs at least one L2 strength to try.", received="l2_grid=()",
                          fix="Pass l2_grid=(1e-3,) or leave the default.")
    x = np.asarray(x_train, dtype=np.float64)
    xv = np.asarray(x_val, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.int64)
    yv = np.asarray(y_val, dtype=np.int64)
    n, d = x.shape
    onehot = np.eye(num_classes)[y]
    sw = np.ones(n) if class_weight is None else np.asarray(class_weight, dtype=np.float64)[y]
    sw = sw / sw.sum()  # the mean loss: the L2 grid does not depend on N
    best: ProbeFit | None = None
    w0 = np.zeros(d * num_classes + num_classes)
    for l2 in l2_grid:
        res = minimize(_loss_grad, w0, args=(x, onehot, sw, l2), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter})
        kernel = res.x[: d * num_classes].reshape(d, num_classes)
        bias = res.x[d * num_classes :]
        val_acc, val_loss = _evaluate(xv, yv, kernel, bias)
        train_acc, _ = _evaluate(x, y, kernel, bias)
        fit = ProbeFit(kernel=kernel.astype(np.float32), bias=bias.astype(np.float32), l2=float(l2),
                       val_accuracy=val_acc, val_loss=val_loss, train_accuracy=train_acc, iterations=int(res.nit))
        if best is None or (val_loss, -val_acc) < (best.val_loss, -best.val_accuracy):
            best = fit
        w0 = res.x  # warm start the next strength
    return best  # type: ignore[return-value]  # the grid is not empty
