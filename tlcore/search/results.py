"""What a finished (or running) study has to show: curves, Optuna's plots, trial runs.

- ``learning_curves``: the per-epoch history of chosen trials as one long table;
- ``study_figures``: Optuna's plotly views, each either a figure or the reason
  it cannot be drawn yet (too few trials, one parameter, ...);
- ``fetch_trial_run``: a trial's run folder (model, labels, metrics, ...) from
  the artifact store into ``<workspace>/studies/local/<study>/trials/<n>/``, so
  everything that takes a trained model (predict, evaluate, Grad-CAM, export)
  takes a trial's model too;
- ``best_trial``, ``get_trial``, ``trial_summary``: the trial ``search best`` prints;
- ``best_so_far``: the best objective value against wall-clock time since the study started;
- how a trial went: ``diverged_reason`` (the ``tl_diverged`` sentence of a trial that
  diverged; it ended PRUNED), ``outcome`` (its state name, or ``DIVERGED``),
  ``trial_rungs`` (the successive-halving rungs it ran, ``tl_rungs``), ``rung_path``
  ("11 % → 33 % → full") and, for a whole trial table, ``trial_outcomes`` /
  ``with_outcomes``, and ``with_stalled`` (``STALLED``: a running trial whose worker stopped).

Trial attributes are read through ``tlcore.search.attrs``, the best value by
``tlcore.search.direction``. Read-only over ``study``, ``storage`` and ``artifacts``; used by
``search best`` (``cli._search``), the Search page (``tlui.search_widgets``: best so far,
diverged trials, rungs) and the Results page (``tlui.results_widgets``, ``pages/5_Results.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tlcore._fsutil import atomic_directory
from tlcore.errors import ConfigError, NotFoundError, WorkspaceError
from tlcore.runfolder import MODEL_FILE, RunFolder
from tlcore.search import attrs
from tlcore.search.artifacts import artifact_store, artifacts_dir
from tlcore.search.direction import best_of, comparator
from tlcore.search.storage import study_local_dir
from tlcore.search.study import load_study
from tlcore.workspace import Workspace

__all__ = ["learning_curves", "study_figures", "fetch_trial_run", "get_trial", "best_trial", "FIGURES",
           "trial_summary", "best_so_far", "BEST_SO_FAR_COLUMNS", "diverged_reason", "outcome", "DIVERGED",
           "trial_rungs", "rung_path", "fraction_text", "trial_outcomes", "with_outcomes", "OUTCOME_COLUMNS",
           "STALLED", "with_stalled"]

DIVERGED = "DIVERGED"  # ``outcome`` of a pruned trial that diverged (not an Optuna state)
STALLED = "STALLED"  # a trial table's state of a RUNNING trial whose worker stopped (``with_stalled``)
INTERRUPTED = "INTERRUPTED"  # ``outcome`` of a failed trial a stop or a signal ended (not an Optuna state)
BEST_SO_FAR_COLUMNS = ("seconds", "value", "number")
OUTCOME_COLUMNS = ("diverged", "rungs", "rung_path")
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
    best = best_of(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), study.direction)
    if best is None:
        raise NotFoundError(f"Study {study.study_name!r} has no complete trial yet.", received=study.study_name,
                            fix="Wait for a trial to finish, or start workers.")
    return best


def trial_summary(t: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters, outcome and metrics as plain data (JSON-ready)."""
    m = attrs.metrics(t)
    return {
        "number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
        "best_epoch": m.get("best_epoch"), "test_accuracy": m.get("test_accuracy"),
        "epochs": attrs.epochs(t),
        "duration_s": attrs.duration_seconds(t),
        "artifacts": sorted(attrs.artifacts(t).keys()),
        "diverged": diverged_reason(t), "rungs": trial_rungs(t),
    }


# ------------------------------------------------------------- how it went
def diverged_reason(t: FrozenTrial) -> str | None:
    """Why trial ``t`` diverged (one sentence, as the worker recorded it), or None if it did not."""
    return attrs.diverged(t)


def outcome(t: FrozenTrial) -> str:
    """``t``'s state name ("COMPLETE", "PRUNED", "FAIL", ...), ``DIVERGED`` for a pruned trial
    that diverged (the word the pages show instead of "pruned") or ``INTERRUPTED`` for a failed
    trial that a stop or a signal ended (not an error: it is, or will be, run again)."""
    if t.state == TrialState.PRUNED and diverged_reason(t) is not None:
        return DIVERGED
    if t.state == TrialState.FAIL and attrs.interrupted(t):
        return INTERRUPTED
    return t.state.name


def trial_rungs(t: FrozenTrial) -> list[dict[str, Any]]:
    """The successive-halving rungs trial ``t`` completed (``tl_rungs``), in order; [] without any.

    Each is ``{"rung", "fraction", "epoch", "value", "promoted"}``; ``promoted`` is False on
    the rung where the trial was pruned and missing on a rung still being judged.
    Entries that are not dicts (a storage written by other code) are left out.
    """
    return attrs.rungs(t)


def fraction_text(fraction: Any) -> str:
    """A data fraction as a percentage: 0.111 -> "11 %", 0.005 -> "0.5 %", 1.0 -> "full"."""
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        return "?"
    if not math.isfinite(f):
        return "?"
    if f >= 1.0:
        return "full"
    return f"{100 * f:.0f} %" if f >= 0.01 else f"{100 * f:.1g} %"


def rung_path(t: FrozenTrial) -> str:
    """The data trial ``t`` trained on, stage by stage: "11 % → 33 % → full", "11 % (pruned)",
    "11 % → 33 % (diverged)", "11 % → 33 % → full (scout seed)" (never pruned); "" for a trial
    without rungs (feature extraction, or a study without successive halving).

    The stages are its judged rungs (``tl_rungs``), then any rung epoch it ran but that was
    not judged (it diverged there), then "full" once it trained on all the data.
    """
    rungs = trial_rungs(t)
    hist = attrs.history(t)
    parts = [fraction_text(r.get("fraction")) for r in rungs]
    seen = {r.get("rung") for r in rungs}
    last_rung_epoch = max((_epoch(r) for r in rungs), default=0)
    for h in hist:
        r = h.get("rung")
        if r is not None:
            last_rung_epoch = max(last_rung_epoch, _epoch(h))
            if r not in seen:
                seen.add(r)
                parts.append(fraction_text(h.get("train_fraction")))
    if not parts:
        return ""
    if rungs and rungs[-1].get("promoted") is False and len(parts) == len(rungs):
        return " → ".join(parts) + " (pruned)"
    # Full-data epochs after the rungs (two_phase's first phase, before them, does not count).
    if t.state == TrialState.COMPLETE or any(h.get("rung") is None and _epoch(h) > last_rung_epoch for h in hist):
        parts.append("full")
    text = " → ".join(parts)
    if t.state == TrialState.PRUNED:
        text += " (diverged)" if diverged_reason(t) is not None else " (pruned)"
    elif attrs.seeded(t):
        text += " (scout seed)"
    return text


def _epoch(rec: dict[str, Any]) -> int:
    try:
        return int(rec.get("epoch") or 0)
    except (TypeError, ValueError):
        return 0


def trial_outcomes(trials: Iterable[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: ``number``, ``outcome`` (see ``outcome``), ``diverged`` (the reason or
    None), ``rungs`` (how many rungs it completed) and ``rung_path`` (see ``rung_path``)."""
    rows = [{"number": t.number, "outcome": outcome(t), "diverged": diverged_reason(t),
             "rungs": len(trial_rungs(t)), "rung_path": rung_path(t)} for t in trials]
    return pd.DataFrame(rows, columns=["number", "outcome", *OUTCOME_COLUMNS])


def with_stalled(frame: pd.DataFrame, stalled: Iterable[int]) -> pd.DataFrame:
    """A copy of a ``load_study_frame`` table whose RUNNING trials numbered in ``stalled``
    (``study.stalled_trials``: their worker stopped without finishing) show the state ``STALLED``."""
    out = frame.copy()
    if len(out):
        out.loc[out["number"].isin(list(stalled)) & (out["state"] == "RUNNING"), "state"] = STALLED
    return out


def with_outcomes(frame: pd.DataFrame, trials: Iterable[FrozenTrial], *, outcome_states: bool = False) -> pd.DataFrame:
    """A copy of a ``load_study_frame`` table with the columns ``diverged`` (reason or None),
    ``rungs`` (rungs completed) and ``rung_path``, matched on ``number``; columns it has
    already are replaced in place. ``trials`` are the study's trials. ``outcome_states``: the
    ``state`` column says ``DIVERGED`` and ``INTERRUPTED`` (``outcome``) instead of Optuna's
    PRUNED and FAIL, as the pages show them."""
    out = frame.copy()
    extra = trial_outcomes(trials).set_index("number")
    numbers = out["number"] if "number" in out.columns else pd.Series([], dtype=int)
    if outcome_states and "state" in out.columns:
        shown = [extra.at[n, "outcome"] if n in extra.index else None for n in numbers]
        out["state"] = [o if o in (DIVERGED, INTERRUPTED) else st for o, st in zip(shown, out["state"])]
    for col in OUTCOME_COLUMNS:
        values = [extra.at[n, col] if n in extra.index else None for n in numbers]
        if col == "rungs":
            values = [0 if v is None else int(v) for v in values]
        elif col == "diverged":
            values = [v if isinstance(v, str) else None for v in values]
        else:
            values = ["" if v is None else v for v in values]
        out[col] = pd.Series(values, index=out.index, dtype=int if col == "rungs" else object)
    return out


def best_so_far(study_or_trials: optuna.Study | Iterable[FrozenTrial], direction: Any = None) -> pd.DataFrame:
    """The best objective value so far against wall-clock time since the study started.

    One row per COMPLETE trial, in the order they completed: ``seconds`` (from the earliest
    trial start to its completion), ``value`` (the best value of the complete trials so far,
    by the study's direction, so the column only ever improves) and ``number`` (the trial
    holding it; the earlier one on a tie). Pruned, failed and running trials add no row but
    their start counts for the study's start. An empty table (same columns) when nothing
    has completed.

    Args:
        study_or_trials: an ``optuna.Study`` or its trials.
        direction: "maximize" / "minimize" (or a ``StudyDirection``). Defaults to the study's;
            for bare trials, to "maximize".

    Raises:
        ConfigError: ``direction`` is neither.
    """
    if isinstance(study_or_trials, optuna.Study):
        trials = study_or_trials.get_trials(deepcopy=False)
        if direction is None:
            direction = study_or_trials.direction
    else:
        trials = list(study_or_trials)
    better = comparator(direction)
    empty = pd.DataFrame({"seconds": pd.Series(dtype=float), "value": pd.Series(dtype=float),
                          "number": pd.Series(dtype=int)})
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.datetime_complete is not None
                   and t.value is not None and math.isfinite(t.value)),
                  key=lambda t: (t.datetime_complete, t.number))
    if not done:
        return empty
    t0 = min(starts + [t.datetime_complete for t in done])
    rows, best = [], None
    for t in done:
        if best is None or better(t.value, best.value):
            best = t
        rows.append({"seconds": (t.datetime_complete - t0).total_seconds(), "value": float(best.value),
                     "number": int(best.number)})
    return pd.DataFrame(rows, columns=list(BEST_SO_FAR_COLUMNS)).astype({"seconds": float, "value": float,
                                                                       "number": int})


def learning_curves(study: optuna.Study, numbers: Sequence[int] | None = None) -> pd.DataFrame:
    """Long table: trial, epoch, phase, split (train/val), metric (loss/accuracy), value."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if numbers is not None and t.number not in numbers:
            continue
        for rec in attrs.history(t):
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


def _artifact_missing(ws: Workspace, number: int, fname: str, aid: str, artifacts: str | None) -> WorkspaceError:
    """The error for a trial file that is not in the artifact folder looked in: which folder, and how to
    point this command at the one the trial's worker wrote to (the way differs: ``search best`` and
    ``search delete`` take ``--artifacts``; the pages, ``predict`` and ``models`` read the workspace's own
    folder only)."""
    folder = artifacts_dir(ws, artifacts)
    msg = (f"Trial {number}'s file {fname} is not in the artifact folder {folder}: its worker stored it in "
           "another one (the --artifacts it was started with, maybe on another machine).")
    if artifacts:
        return WorkspaceError(msg, received=str(folder / aid),
                              fix="Give --artifacts the folder the study's workers were given as --artifacts.")
    default = artifacts_dir(ws)
    return WorkspaceError(msg, received=str(folder / aid),
                          fix="Give that folder as --artifacts (search best, search delete); for the Results and "
                              f"Predict pages and the predict and models commands, which read {default} only, "
                              f"mount or symlink it there (an empty {default.name} folder in its place must be "
                              "removed first).")


def fetch_trial_run(ws: Workspace, name: str, number: int, storage: str | None = None, *,
                    artifacts: str | None = None) -> Path:
    """The local run folder of trial ``number`` (downloaded once from the artifact store).

    Raises:
        NotFoundError: no such trial, or it saved no model (pruned, failed, still running).
        WorkspaceError: an artifact file is missing from the store.
    """
    study = load_study(ws, name, storage)
    t = get_trial(study, number)
    ids = attrs.artifacts(t)
    if t.state != TrialState.COMPLETE or MODEL_FILE not in ids:
        raise NotFoundError(f"Trial {number} has no saved model ({t.state.name.lower()}).", received=number,
                            fix="Only complete trials save their model; choose a complete trial.")
    for fname in ids:  # names come from the storage, which other machines write: check them all first
        if not isinstance(fname, str) or not fname or "/" in fname or "\\" in fname or fname.startswith("."):
            raise ConfigError("A trial artifact has an unsafe file name.", received=repr(fname),
                              fix="The storage was not written by this workbench's workers (they save "
                                  "plain file names); run the trial again, or open a storage you trust.")
    target = study_local_dir(ws, name) / "trials" / str(number)
    if RunFolder(target).model_file.exists() and all((target / f).exists() for f in ids):
        return target
    store = artifact_store(ws, artifacts)
    with atomic_directory(target, replace=True) as tmp:
        for fname, aid in ids.items():
            try:
                with store.open_reader(str(aid)) as src, open(tmp / fname, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            except optuna.artifacts.exceptions.ArtifactNotFound as exc:
                raise _artifact_missing(ws, number, fname, str(aid), artifacts) from exc
    return target
