"""Successive halving over nested data subsets (asynchronous, as in ASHA).

A fine-tuning trial's first epochs are its *rungs*: one epoch on a small nested
subset of the training split, then one on a larger one (``StudySpec.subset_rungs``,
``TrainSpec.subset_rungs``). After each, the worker records the rung's validation
value in the trial's ``tl_rungs`` attribute and asks the pruner. ``RungPruner``
promotes the trial when its value ranks among the best ``max(1, n //
reduction_factor)`` of the ``n`` trials judged at that rung so far (itself
included, whatever their state): the first trials of a study go on only when they
are the best yet, and later each rung keeps one trial in ``reduction_factor``.
A promoted trial continues where it was, on more data; the rest are pruned.

Optuna's ``SuccessiveHalvingPruner`` ranks the values reported at fixed steps
(1, rf, rf², ... in one resource unit); here a rung is an epoch over a subset and
the trials without rungs (feature extraction, cheap on cached features) must not
compete with them, so the rung values live in their own attribute. Epochs that
are not rungs are never pruned here, and neither is a trial the scout seeded
(``attrs.seeded``): it is the configuration the user asked to see trained, and a
shallow depth is slow on the first rung's tenth of the data; its rung values still
count when the trials after it are judged.

Example:

>>> pruner = RungPruner(reduction_factor=3, direction="maximize")
>>> pruner.promotes(0.8, [0.7, 0.9, 0.6])   # n = 4, keeps the best 1: 0.9 is better
False
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial

from tlcore.search import attrs
from tlcore.search.direction import MAXIMIZE, MINIMIZE, is_better, maximizes

__all__ = ["RungPruner"]


class RungPruner(optuna.pruners.BasePruner):
    """Prunes at the rungs recorded in ``tl_rungs``; see the module docstring.

    Args:
        reduction_factor: one trial in this many is promoted at each rung. Defaults to 3.
        direction: "maximize" or "minimize", the study's. Defaults to "maximize".

    Raises:
        ConfigError: ``direction`` is neither (see ``tlcore.search.direction``).
    """

    def __init__(self, reduction_factor: int = 3, direction: str = MAXIMIZE):
        self.reduction_factor = int(reduction_factor)
        self.direction = MAXIMIZE if maximizes(direction) else MINIMIZE

    def promotes(self, value: float, others: Sequence[float]) -> bool:
        """Whether ``value`` ranks among the best ``max(1, n // reduction_factor)`` of itself and ``others``."""
        keep = max(1, (len(others) + 1) // self.reduction_factor)
        better = sum(is_better(v, value, self.direction) for v in others)
        return better < keep

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        rungs = attrs.rungs(trial)
        if not rungs or rungs[-1].get("epoch") != trial.last_step or "promoted" in rungs[-1]:
            return False  # not a rung epoch, or already judged
        if attrs.seeded(trial):
            return False
        r = len(rungs) - 1
        others = []
        for t in study.get_trials(deepcopy=False):
            theirs = attrs.rungs(t)
            if t.number != trial.number and len(theirs) > r and theirs[r].get("value") is not None:
                others.append(float(theirs[r]["value"]))
        return not self.promotes(float(rungs[-1]["value"]), others)
