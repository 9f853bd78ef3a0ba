"""Studies built by hand, for page tests that need trials without training any.

``hand_trial`` makes a finished (or running) trial with the user attributes a worker
writes (``tl_history``, ``tl_rungs``, ``tl_diverged``, ...) and start/completion times
set to the second; ``hand_study`` creates a workbench study (its spec stored, on the
workspace journal the pages read) over the tiny dataset and adds such trials to it.
``outcomes_trials`` is the standard set the page tests use: a quick feature-extraction
trial, a diverged one, one pruned at rung 0, one promoted through both rungs to a full
run, and one running its rung-1 epoch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.search import create_study
from tlcore.search.study import DIVERGED_ATTR, RUNGS_ATTR
from tlcore.workspace import Workspace

DISTRIBUTIONS = {"freeze_depth": IntDistribution(12, 18), "learning_rate": FloatDistribution(1e-4, 1e-1, log=True)}
REASON = ("validation accuracy 0.087 after epoch 1 is at chance (majority class 0.100; "
          "needs more than 0.128)")
RUNG0 = {"rung": 0, "fraction": 0.111, "epoch": 1, "value": 0.71, "promoted": True}
RUNG1 = {"rung": 1, "fraction": 0.333, "epoch": 2, "value": 0.78, "promoted": True}


def epoch_record(epoch: int, val_accuracy: float, rung: int | None = None, fraction: float = 1.0) -> dict[str, Any]:
    """One ``tl_history`` record as the trainer writes it (with the rung fields)."""
    return {"epoch": epoch, "phase": 1, "train_loss": 1.0, "train_accuracy": val_accuracy, "val_loss": 1.1,
            "val_accuracy": val_accuracy, "epoch_seconds": 1.0, "rung": rung, "train_fraction": fraction}


def hand_trial(t0: dt.datetime, start: float, end: float | None, *, state: TrialState = TrialState.COMPLETE,
               value: float | None = None, freeze_depth: int = 15, learning_rate: float = 1e-3,
               history: list[dict[str, Any]] | None = None, **user_attrs: Any) -> FrozenTrial:
    """A trial that started ``start`` s after ``t0`` and ended ``end`` s after it (None: still running)."""
    history = history or []
    t = create_trial(
        state=state, value=value, params={"freeze_depth": freeze_depth, "learning_rate": learning_rate},
        distributions=DISTRIBUTIONS, intermediate_values={h["epoch"]: h["val_accuracy"] for h in history},
        user_attrs={"tl_history": history, "tl_worker": "hand", **user_attrs},
    )
    t.datetime_start = t0 + dt.timedelta(seconds=start)
    t.datetime_complete = None if end is None else t0 + dt.timedelta(seconds=end)
    return t


def outcomes_trials(t0: dt.datetime) -> list[FrozenTrial]:
    """Trials 0-4: 0 complete feature extraction (0.62 at 40 s, no rungs); 1 diverged in its
    first rung epoch (``REASON``); 2 pruned at rung 0 (0.41); 3 promoted at rungs 0 and 1,
    then two full-data epochs, complete (0.86 at 170 s); 4 running its rung-1 epoch."""
    return [
        hand_trial(t0, 0, 40, value=0.62, freeze_depth=18,
                   history=[epoch_record(e, v) for e, v in ((1, 0.5), (2, 0.6), (3, 0.62))]),
        hand_trial(t0, 41, 50, state=TrialState.PRUNED, learning_rate=0.09,
                   history=[epoch_record(1, 0.087, 0, 0.111)], **{DIVERGED_ATTR: REASON}),
        hand_trial(t0, 51, 60, state=TrialState.PRUNED, learning_rate=2e-4,
                   history=[epoch_record(1, 0.41, 0, 0.111)],
                   **{RUNGS_ATTR: [{**RUNG0, "value": 0.41, "promoted": False}]}),
        hand_trial(t0, 61, 170, value=0.86, learning_rate=3e-3,
                   history=[epoch_record(1, 0.71, 0, 0.111), epoch_record(2, 0.78, 1, 0.333),
                            epoch_record(3, 0.84), epoch_record(4, 0.86)],
                   **{RUNGS_ATTR: [RUNG0, RUNG1]}),
        hand_trial(t0, 171, None, state=TrialState.RUNNING, learning_rate=5e-3,
                   history=[epoch_record(1, 0.73, 0, 0.111)], **{RUNGS_ATTR: [{**RUNG0, "value": 0.73}]}),
    ]


def hand_study(ws: Workspace, name: str, trials: list[FrozenTrial] = (), **spec_kw: Any) -> optuna.Study:
    """Create study ``name`` over the tiny dataset (successive halving, no queued probe trial, so
    ``trials`` keep their numbers) and add ``trials``."""
    add_tiny_dataset(ws)
    study = create_study(ws, tiny_spec(name, **{"pruner": "successive_halving", "probe_first": False, **spec_kw}))
    for t in trials:
        study.add_trial(t)
    return study
