"""What a finished (or running) study has to show: curves, Optuna's plots, trial runs.

- ``learning_curves``: the per-epoch history of chosen trials as one long table;
- ``study_figures``: Optuna's plotly views, each either a figure or the reason
  it cannot be drawn yet (too few trials, one parameter, ...);
- ``fetch_trial_run``: a trial's run folder (model, labels, metrics, ...) from
  the artifact store into ``<workspace>/studies/local/<study>/trials/<n>/``, so
  everything that takes a trained model (predict, evaluate, Grad-CAM, export)
  takes a trial's model too;
- ``best_trial``, ``get_trial``, ``trial_summary``: the trial ``search best`` prints.

Read-only over ``study`` and ``storage``; used by ``search best`` (``cli._search``)
and the Results page (``tlui.results_widgets``, ``pages/4_Results.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tlcore._fsutil import atomic_directory
from tlcore.errors import ConfigError, NotFoundError, WorkspaceError
from tlcore.search.storage import artifact_store, study_local_dir
from tlcore.search.study import load_study
from tlcore.workspace import Workspace

__all__ = ["learning_curves", "study_figures", "fetch_trial_run", "get_trial", "best_trial", "FIGURES",
           "trial_summary"]

FIGURES = ("optimization history", "parameter importances", "parallel coordinates", "contour", "slice",
           "intermediate values", "timeline")


def get_trial(study: optuna.Study, number: int) -> FrozenTrial:
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            return t
    raise NotFoundError(f"Study {study.study_name!r} has no trial {number}.", received=number)


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best complete trial.

    Raises:
        NotFoundError: no trial has completed yet.
    """
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        raise NotFoundError(f"Study {study.study_name!r} has no complete trial yet.", received=study.study_name,
                            fix="Wait for a trial to finish, or start workers.")
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.value)


def trial_summary(t: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters, outcome and metrics as plain data (JSON-ready)."""
    m = t.user_attrs.get("tl_metrics") or {}
    return {
        "number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
        "best_epoch": m.get("best_epoch"), "test_accuracy": m.get("test_accuracy"),
        "epochs": len(t.user_attrs.get("tl_history") or []),
        "duration_s": (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start else None,
        "artifacts": sorted((t.user_attrs.get("tl_artifacts") or {}).keys()),
    }


def learning_curves(study: optuna.Study, numbers: Sequence[int] | None = None) -> pd.DataFrame:
    """Long table: trial, epoch, phase, split (train/val), metric (loss/accuracy), value."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if numbers is not None and t.number not in numbers:
            continue
        for rec in t.user_attrs.get("tl_history") or []:
            for split in ("train", "val"):
                for metric in ("loss", "accuracy"):
                    v = rec.get(f"{split}_{metric}")
                    if v is not None:
                        rows.append({"trial": t.number, "epoch": rec["epoch"], "phase": rec.get("phase"),
                                     "split": split, "metric": metric, "value": float(v)})
    return pd.DataFrame(rows, columns=["trial", "epoch", "phase", "split", "metric", "value"])


def study_figures(studies: optuna.Study | Sequence[optuna.Study]) -> dict[str, Any]:
    """Optuna's plotly views. Each value is a plotly figure or a string saying why it is not drawn.

    With several studies, only the optimization history compares them (Optuna's
    other views take one study); the rest are drawn for the first.
    """
    from optuna import visualization as vis

    many = list(studies) if isinstance(studies, (list, tuple)) else [studies]
    study = many[0]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    params = sorted({p for t in complete for p in t.params})
    varied = [p for p in params if len({json.dumps(t.params.get(p), default=str) for t in complete}) > 1]
    out: dict[str, Any] = {}

    def draw(name: str, need: int, fn, *args, **kw) -> None:
        if len(complete) < need:
            out[name] = f"Needs at least {need} complete trial(s); {len(complete)} so far."
            return
        try:
            out[name] = fn(*args, **kw)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            out[name] = f"Not available yet: {exc}"

    draw("optimization history", 1, vis.plot_optimization_history, many if len(many) > 1 else study)
    if len(varied) < 1:
        out["parameter importances"] = "Needs a parameter that varies between complete trials."
    else:
        draw("parameter importances", 2, vis.plot_param_importances, study)
    draw("parallel coordinates", 1, vis.plot_parallel_coordinate, study)
    pair = [p for p in ("freeze_depth", "learning_rate") if p in varied]
    if len(pair) == 2:
        draw("contour", 2, vis.plot_contour, study, params=pair)
    elif len(varied) >= 2:
        draw("contour", 2, vis.plot_contour, study, params=varied[:2])
    else:
        out["contour"] = "Needs two parameters that vary between complete trials."
    draw("slice", 1, vis.plot_slice, study)
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        out["intermediate values"] = vis.plot_intermediate_values(study)
    else:
        out["intermediate values"] = "No trial has reported an epoch yet."
    if study.get_trials(deepcopy=False):
        try:
            out["timeline"] = vis.plot_timeline(study)
        except (ValueError, RuntimeError) as exc:
            out["timeline"] = f"Not available yet: {exc}"
    else:
        out["timeline"] = "No trials yet."
    return out


def fetch_trial_run(ws: Workspace, name: str, number: int, storage: str | None = None, *,
                    artifacts: str | None = None) -> Path:
    """The local run folder of trial ``number`` (downloaded once from the artifact store).

    Raises:
        NotFoundError: no such trial, or it saved no model (pruned, failed, still running).
        WorkspaceError: an artifact file is missing from the store.
    """
    study = load_study(ws, name, storage)
    t = get_trial(study, number)
    ids = t.user_attrs.get("tl_artifacts") or {}
    if t.state != TrialState.COMPLETE or "model.keras" not in ids:
        raise NotFoundError(f"Trial {number} has no saved model ({t.state.name.lower()}).", received=number,
                            fix="Only complete trials save their model; choose a complete trial.")
    for fname in ids:  # names come from the storage, which other machines write: check them all first
        if not isinstance(fname, str) or not fname or "/" in fname or "\\" in fname or fname.startswith("."):
            raise ConfigError("A trial artifact has an unsafe file name.", received=repr(fname),
                              fix="The storage was not written by this workbench's workers (they save "
                                  "plain file names); run the trial again, or open a storage you trust.")
    target = study_local_dir(ws, name) / "trials" / str(number)
    if (target / "model.keras").exists() and all((target / f).exists() for f in ids):
        return target
    store = artifact_store(ws, artifacts)
    with atomic_directory(target, replace=True) as tmp:
        for fname, aid in ids.items():
            try:
                with store.open_reader(str(aid)) as src, open(tmp / fname, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            except optuna.artifacts.exceptions.ArtifactNotFound as exc:
                raise WorkspaceError(f"Trial {number}'s file {fname} is missing from the artifact store.",
                                     received=str(aid), fix="Point --artifacts at the folder the workers "
                                     "wrote to (the workspace's studies/artifacts by default).") from exc
    return target
