"""Trials of several studies side by side: trial keys, one ranking across studies, their curves.

The Results page shows the trials of one or more studies together, so a trial is
named by a *key* ``"<study>/<number>"`` (``trial_key``, ``parse_key``; a study name
never holds a '/'). ``TrialSet`` reads the chosen studies once and holds their
trials by key, study by study in the order chosen and each study's by number, and:

- ``ranked``: the complete trials best first (``rank_trials``). The values of two
  studies are compared only when the studies share dataset, objective and direction
  (``comparable``: a 3-class study's accuracy is not better than a 10-class study's);
  otherwise the ranking goes study by study, in the order chosen. Which value is
  better is ``tlcore.search.direction``'s rule;
- ``best_first``: the rows of a trial table sorted best value first;
- ``with_history``: the trials that finished an epoch; ``curves``: their
  ``results.learning_curves`` rows, from any of the studies, with their key.

Read-only over the studies, like ``results``. The words and labels the page shows
for a trial are ``tlui.results_widgets``'.

Example:

>>> parse_key(trial_key("pets", 7))
('pets', 7)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tlcore.search import attrs
from tlcore.search.direction import maximizes, rank_key
from tlcore.search.results import learning_curves
from tlcore.search.study import StudySummary, load_study
from tlcore.workspace import Workspace

__all__ = ["trial_key", "parse_key", "comparable", "rank_trials", "TrialSet", "CURVE_COLUMNS"]

CURVE_COLUMNS = ("trial", "epoch", "phase", "split", "metric", "value", "key")


def trial_key(study: str, number: int) -> str:
    """The key naming trial ``number`` of ``study`` among the trials of several studies."""
    return f"{study}/{int(number)}"


def parse_key(key: str) -> tuple[str, int]:
    """(study, number) of a ``trial_key``."""
    study, number = key.rsplit("/", 1)
    return study, int(number)


def comparable(summaries: Mapping[str, Any]) -> bool:
    """Whether the values of these studies' trials can be ranked against each other: every study
    has the same dataset, objective and direction. ``summaries``: study name -> anything with
    ``objective``, ``direction`` and ``dataset`` (a ``StudySummary``; a missing dataset counts as one)."""
    return len({(s.objective, s.direction, getattr(s, "dataset", None)) for s in summaries.values()}) <= 1


def rank_trials(trials: Mapping[str, FrozenTrial], summaries: Mapping[str, Any]) -> list[str]:
    """The keys of the complete trials with a value, best first.

    ``trials``: key -> trial; ``summaries``: study name -> anything with ``objective``,
    ``direction`` and ``dataset`` (a ``StudySummary``), in the order chosen. When the studies are
    ``comparable`` (one dataset, objective and direction), the trials are ranked together;
    otherwise study by study, in that order. Equal values keep the order of ``trials``.
    """
    names = list(summaries)
    together = comparable(summaries)

    def order(key: str) -> tuple[int, float]:
        study, _ = parse_key(key)
        value = float(trials[key].value)
        return (0 if together else names.index(study), rank_key(value, summaries[study].direction))

    done = [k for k, t in trials.items() if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=order)


class TrialSet:
    """The chosen studies and their trials, read once.

    Attributes:
        names: the studies, in the order chosen.
        summaries: name -> ``StudySummary``.
        studies: name -> ``optuna.Study``.
        trials: key -> ``FrozenTrial``, study by study, each study's by number.
        ws, storage: where the studies were read from (None when built from studies in hand).
    """

    def __init__(self, summaries: Mapping[str, StudySummary], studies: Mapping[str, optuna.Study],
                 ws: Workspace | None = None, storage: str | None = None):
        self.ws, self.storage = ws, storage
        self.names = list(summaries)
        self.summaries = dict(summaries)
        self.studies = {n: studies[n] for n in self.names}
        self.trials: dict[str, FrozenTrial] = {
            trial_key(n, t.number): t
            for n in self.names for t in sorted(self.studies[n].get_trials(deepcopy=False), key=lambda t: t.number)
        }
        self._ranked = rank_trials(self.trials, self.summaries)

    @classmethod
    def load(cls, ws: Workspace, names: Sequence[str], summaries: Mapping[str, StudySummary],
             storage: str | None = None) -> TrialSet:
        """The studies ``names`` of ``storage`` (None: the workspace's), with their ``summaries``.

        Raises:
            TLCoreError: a study cannot be read.
        """
        return cls({n: summaries[n] for n in names}, {n: load_study(ws, n, storage) for n in names}, ws, storage)

    @property
    def many(self) -> bool:
        """More than one study."""
        return len(self.names) > 1

    def ranked(self) -> list[str]:
        """The complete trials best first (a copy; see ``rank_trials``)."""
        return list(self._ranked)

    def is_best(self, key: str) -> bool:
        """Whether ``key`` is the first of the ranking."""
        return self._ranked[:1] == [key]

    def retried_as(self, key: str) -> int | None:
        """The number of the trial queued again for trial ``key`` because its worker died, or None
        (``attrs.retries``)."""
        study, number = parse_key(key)
        return attrs.retries(self.studies[study].get_trials(deepcopy=False)).get(number)

    def with_history(self) -> list[str]:
        """The trials that have finished an epoch (any state), in ``trials`` order."""
        return [k for k, t in self.trials.items() if attrs.history(t)]

    def best_first(self, table: pd.DataFrame) -> pd.DataFrame:
        """Rows of a trial table (``value`` and ``number`` columns) best value first, then by
        number; rows without a value last. When the studies are not ``comparable`` and the table
        has a ``study`` column, study by study in the order chosen, each best first by its own
        direction (as ``ranked``)."""
        if not len(table):
            return table
        if "study" in table.columns and not comparable(self.summaries):
            order = {n: i for i, n in enumerate(self.names)}
            parts = [self._sorted(part, self.summaries[n].direction)
                     for n, part in sorted(table.groupby("study", sort=False), key=lambda g: order.get(g[0], len(order)))
                     if n in self.summaries]
            return pd.concat(parts) if parts else table
        maximize = all(maximizes(s.direction) for s in self.summaries.values())
        return table.sort_values(["value", "number"], ascending=[not maximize, True], na_position="last")

    @staticmethod
    def _sorted(table: pd.DataFrame, direction: Any) -> pd.DataFrame:
        return table.sort_values(["value", "number"], ascending=[not maximizes(direction), True], na_position="last")

    def curves(self, keys: Sequence[str]) -> pd.DataFrame:
        """``learning_curves`` rows of the trials ``keys`` (of any of the studies), with a ``key``
        column, in the order of ``keys``; an empty table with ``CURVE_COLUMNS`` when there are none."""
        by_study: dict[str, list[int]] = {}
        for k in keys:
            study, number = parse_key(k)
            by_study.setdefault(study, []).append(number)
        tables = {s: learning_curves(self.studies[s], numbers) for s, numbers in by_study.items()}
        parts = []
        for k in keys:
            study, number = parse_key(k)
            part = tables[study][tables[study]["trial"] == number]
            parts.append(part.assign(key=k))
        if not parts:
            return pd.DataFrame(columns=list(CURVE_COLUMNS))
        return pd.concat(parts, ignore_index=True)
