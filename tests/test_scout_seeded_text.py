"""The Results page's "Seeded from the scout" line names the seed trials that ran: a seed whose
worker died is named with its rerun, and a non-seed trial with the same parameters (the recipe
trial) is not taken for the seed."""

from __future__ import annotations

from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tlcore.search import attrs
from tlui.scout_widgets import _seeded_text

DIST = {"freeze_depth": IntDistribution(0, 18), "learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}


def _t(number, params, state=TrialState.COMPLETE, seeded=False, **system):
    t = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None, params=params,
                     distributions=DIST, user_attrs={attrs.SEEDED: "scout"} if seeded else None,
                     system_attrs={"fixed_params": params, **system})
    t.number = number
    return t


SEED = {"freeze_depth": 8, "learning_rate": 0.000527}
RECIPE = {"freeze_depth": 12, "learning_rate": 0.000681}


def test_a_seed_whose_worker_died_is_named_with_its_rerun():
    trials = [_t(0, {"freeze_depth": 18, "learning_rate": 0.001}), _t(1, RECIPE),
              _t(2, SEED, TrialState.FAIL, seeded=True), _t(5, SEED, seeded=True, failed_trial=2)]
    text = _seeded_text([SEED], trials)
    assert text.startswith("trial 2 (freeze depth 8")
    assert "run again as trial 5" in text


def test_a_seed_with_the_recipe_trials_parameters_is_not_called_the_recipe_trial():
    trials = [_t(0, {"freeze_depth": 18, "learning_rate": 0.001}), _t(1, RECIPE)]
    text = _seeded_text([RECIPE], trials)
    assert not text.startswith("trial 1")
    assert "the same as trial 1" in text


def test_a_seed_not_taken_yet_says_so():
    assert _seeded_text([SEED], []) == "(freeze depth 8, learning rate 0.000527, not run yet)"
