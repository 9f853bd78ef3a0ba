"""Optuna studies in PostgreSQL (``RDBStorage`` with a postgresql URL), as ``--storage`` uses."""

from __future__ import annotations

import optuna


def test_rdbstorage_roundtrip_in_fresh_postgres_database(fresh_postgres_url):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert fresh_postgres_url.startswith("postgresql")

    storage = optuna.storages.RDBStorage(fresh_postgres_url)
    study = optuna.create_study(study_name="roundtrip", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("x", -10.0, 10.0) ** 2, n_trials=3)

    # A second storage instance (its own engine and connections) reads the same rows.
    other = optuna.storages.RDBStorage(fresh_postgres_url)
    try:
        assert [s.study_name for s in optuna.get_all_study_summaries(storage=other)] == ["roundtrip"]
        loaded = optuna.load_study(study_name="roundtrip", storage=other)
        trials = loaded.get_trials(deepcopy=False)
        assert len(trials) == 3
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        for t in trials:
            assert t.value == t.params["x"] ** 2
        assert [t.params for t in trials] == [t.params for t in study.trials]
        assert loaded.best_value == min(t.value for t in trials)
    finally:
        other.engine.dispose()
        storage.engine.dispose()
