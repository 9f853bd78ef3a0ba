"""Which objective value is better: the study's direction, as one rule.

A study either maximizes its objective (validation accuracy) or minimizes it
(validation loss). Everything that compares values or picks the best trial asks
here: ``maximizes`` (read a direction), ``is_better`` (strictly better, so on a tie
the earlier value stands) and ``comparator`` (the same test as a function, for a loop),
``best_of`` (the best complete trial of a list), ``rank_key`` (a sort key that puts
the best first).

A direction is "maximize" or "minimize" (any case), an Optuna ``StudyDirection``,
or None, which means "maximize" (the default of a bare list of trials). Anything
else is a ``ConfigError``.

Users: ``study`` (``StudySummary.best_value``), ``results`` (``best_trial``,
``best_so_far``), ``pruners`` (``RungPruner``), and ``compare`` (the Results page's ranking).

Example:

>>> is_better(0.9, 0.8, "maximize"), is_better(0.9, 0.8, "minimize"), is_better(0.8, 0.8, "maximize")
(True, False, False)
>>> sorted([0.2, 0.9, 0.5], key=lambda v: rank_key(v, "maximize"))
[0.9, 0.5, 0.2]
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from tlcore.errors import ConfigError

__all__ = ["MAXIMIZE", "MINIMIZE", "DIRECTIONS", "maximizes", "is_better", "comparator", "best_of", "rank_key"]

MAXIMIZE = "maximize"
MINIMIZE = "minimize"
DIRECTIONS = (MAXIMIZE, MINIMIZE)


def maximizes(direction: Any) -> bool:
    """Whether ``direction`` ("maximize" / "minimize", a ``StudyDirection``, or None for
    "maximize") maximizes.

    Raises:
        ConfigError: it is neither.
    """
    if direction is None:
        return True
    name = str(getattr(direction, "name", direction)).lower()
    if name not in DIRECTIONS:
        raise ConfigError("The study direction must be maximize or minimize.", received=repr(direction),
                          fix="Pass the study itself, or direction='maximize' / 'minimize'.")
    return name == MAXIMIZE


def comparator(direction: Any) -> Callable[[float, float], bool]:
    """``better(a, b)``: whether value ``a`` is strictly better than ``b`` under ``direction``
    (``>`` when it maximizes, ``<`` when it minimizes; a tie is not better)."""
    return operator.gt if maximizes(direction) else operator.lt


def is_better(a: float, b: float, direction: Any) -> bool:
    """Whether value ``a`` is strictly better than ``b`` under ``direction`` (a tie is not better)."""
    return comparator(direction)(a, b)


def best_of(trials: Iterable[FrozenTrial], direction: Any) -> FrozenTrial | None:
    """The best COMPLETE trial with a value among ``trials`` (the first of equals, in the order
    given), or None when there is none."""
    better = comparator(direction)
    best: FrozenTrial | None = None
    for t in trials:
        if t.state != TrialState.COMPLETE or t.value is None:
            continue
        if best is None or better(t.value, best.value):
            best = t
    return best


def rank_key(value: float, direction: Any) -> float:
    """A sort key that puts the best value first under ``direction`` (ascending sort)."""
    return -value if maximizes(direction) else value
