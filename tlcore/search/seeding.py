"""A study's scout: rank (backbone, depth) pairs before sampling and seed the first trials with the best.

``maybe_scout`` is called by every worker before it asks for a trial. When the spec
asks for a scout (``StudySpec.scout``) and the study has none yet, it waits until
the trials already queued (the probe and the recipe trial: the first usable model
and the first fine-tuned one come first) have been taken, runs
``tlcore.scout.scout`` on the study's data (its features are cached and built under
a cross-process lock, so two workers compute them once), stores a summary in the
study's ``tl_scout`` attribute (``attrs.SCOUT``), saves the full result where the
Search page finds it, and enqueues the best ``seed_trials`` pairs within the
study's ranges as the next trials (each at the geometric middle of its depth's learning-rate
range, as the recipe trial), never more than the trial budget has left. A seed is marked
(``attrs.SEEDED``) and never pruned at a rung: the first rung is one epoch on a tenth of the
data, where a shallow depth, which trains more blocks, has not caught up yet, so it would stop
exactly the configurations the scout was asked to try.
When it seeds nothing, the record says why (``unseeded``, one of ``UNSEEDED_REASONS``).
A scout whose estimated cost is above ``max_seconds`` is recorded as skipped. A
scout that fails is recorded with its error and never stops the search.

``scout_agreement`` (the Results page) measures, once trials have finished, how
well each score ranked them: Kendall's tau between the score of each trial's
(backbone, depth) and its best validation accuracy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tlcore.errors import TLCoreError
from tlcore.scout import SCORES as _SCORES
from tlcore.search import attrs
from tlcore.search.spec import StudySpec
from tlcore.workspace import Workspace

__all__ = ["SCOUT_ATTR", "UNSEEDED_REASONS", "maybe_scout", "seed_params", "scout_agreement"]

SCOUT_ATTR = attrs.SCOUT  # the key under its older name (``tlcore.search.attrs`` owns it)
_ROW_KEYS = ("backbone", "depth", "width", *_SCORES, "combined_rank")


def seed_params(spec: StudySpec, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixed parameters of the seeded trials (only those the spec searches): the scout's
    backbone and depth, at the geometric middle of that depth's learning-rate range, as the
    recipe trial takes it (a random draw would often be too low to survive the first rung, and
    the seed would say nothing about its depth)."""
    methods = [m for m in spec.methods if m != "feature_extraction"]
    if not methods:
        return []
    method = "fine_tune" if "fine_tune" in methods else methods[0]
    out = []
    for c in configs:
        p: dict[str, Any] = {}
        if len(spec.backbones) > 1:
            p["backbone"] = c["backbone"]
        if len(spec.methods) > 1:
            p["method"] = method
        lo, hi = spec.depth_range(c["backbone"])
        if lo < hi:
            p["freeze_depth"] = int(c["freeze_depth"])
        lr = spec.middle_lr(c["backbone"], method, int(c["freeze_depth"]))
        if lr is not None:
            p["learning_rate"] = lr
        if p and p not in out:
            out.append(p)
    return out


def _queue_waiting(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def maybe_scout(ws: Workspace, study: optuna.Study, spec: StudySpec, storage: Any,
                log: Callable[[str], None] = print) -> None:
    """Run the study's scout if it wants one and has none yet (see the module docstring)."""
    from tlcore.scout import save_result, scout, scout_cost_for

    if spec.scout is None:
        return
    if attrs.SCOUT in storage.get_study_user_attrs(study._study_id):
        return
    if _queue_waiting(study):
        return  # the queued trials (the probe and the recipe trial) go first
    opts = spec.scout
    estimate = scout_cost_for(ws, spec.dataset, opts["images"], spec.image_size, spec.backbones)
    if opts["max_seconds"] is not None and estimate > opts["max_seconds"]:
        record = {"skipped": f"estimated {estimate:.0f} s, above its {opts['max_seconds']:g} s limit "
                             "(scout.max_seconds)"}
        study.set_user_attr(attrs.SCOUT, record)
        log(f"scout: skipped, {record['skipped']}")
        return
    log(f"scout: scoring every depth of {', '.join(spec.backbones)} on up to {opts['images']} images")
    t0 = time.time()
    try:
        result = scout(ws, spec.dataset, backbones=spec.backbones, image_size=spec.image_size,
                       images=opts["images"], weights=spec.weights, resize_mode=spec.resize_mode, seed=spec.seed,
                       val_fraction=spec.val_fraction, test_fraction=spec.test_fraction, split_seed=spec.split_seed)
    except TLCoreError as exc:
        study.set_user_attr(attrs.SCOUT, {"error": str(exc)})
        log(f"scout: failed: {exc}")
        return
    if attrs.SCOUT in storage.get_study_user_attrs(study._study_id):
        return  # another worker finished first: its seeds stand
    configs = []
    for backbone in spec.backbones:
        sub = [c for c in result.top_configs(len(result.table), depth_range=spec.depth_range(backbone))
               if c["backbone"] == backbone]
        configs.extend(sub)
    ranked = sorted(configs, key=lambda c: _rank_of(result.table, c))
    trials = study.get_trials(deepcopy=False)
    room = opts["seed_trials"]
    if spec.n_trials is not None:  # never queue trials the budget will not run
        room = min(room, spec.n_trials - sum(t.state != TrialState.FAIL for t in trials))
    candidates = seed_params(spec, ranked)
    seeds = candidates[: max(0, room)]
    rows = [{k: _plain(r.get(k)) for k in _ROW_KEYS} for r in result.table.to_dict("records")]
    record = {
        "images": result.images, "image_size": result.image_size, "seconds": round(time.time() - t0, 2),
        "feature_seconds": round(result.feature_seconds, 2), "notes": result.notes,
        "combined_from": list(result.table.attrs.get("combined_from") or []), "rows": rows, "seeded": seeds,
    }
    if not seeds:
        record["unseeded"] = _unseeded_reason(spec, ranked, candidates)
    study.set_user_attr(attrs.SCOUT, record)
    for p in seeds:
        study.enqueue_trial(p, user_attrs={attrs.SEEDED: "scout"}, skip_if_exists=True)
    try:
        save_result(ws, result)
    except OSError:
        pass  # the study holds the summary; the saved copy is only for the Search page's Scout step
    log(f"scout: {time.time() - t0:.1f}s; seeded {len(seeds)} trial(s): {seeds}")


UNSEEDED_REASONS = ("not_asked", "feature_extraction_only", "no_depth_in_range", "nothing_searched", "no_room")


def _unseeded_reason(spec: StudySpec, ranked: list[dict[str, Any]], candidates: list[dict[str, Any]]) -> str:
    """Why the scout seeded no trial (one of ``UNSEEDED_REASONS``, kept in the study's scout record as
    ``unseeded``), in the order the decision above meets them: seeding not asked for
    (``seed_trials`` 0, the default); no fine-tuning method to seed; no scored depth within the
    study's ranges (below the full depth); nothing searched that a seed would fix; else the trial
    budget had no room left."""
    if int(spec.scout.get("seed_trials") or 0) <= 0:
        return "not_asked"
    if all(m == "feature_extraction" for m in spec.methods):
        return "feature_extraction_only"
    if not ranked:
        return "no_depth_in_range"
    if not candidates:
        return "nothing_searched"
    return "no_room"


def _rank_of(table: pd.DataFrame, config: dict[str, Any]) -> float:
    row = table[(table["backbone"] == config["backbone"]) & (table["depth"] == config["freeze_depth"])]
    return float(row["combined_rank"].iloc[0]) if len(row) and row["combined_rank"].notna().iloc[0] else math.inf


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def scout_agreement(trials: list[FrozenTrial], scout_attr: dict[str, Any] | None,
                    spec: StudySpec) -> pd.DataFrame:
    """Per score: Kendall's tau between the scout's score of each COMPLETE trial's (backbone, depth)
    and the trial's best validation accuracy; columns score, tau, trials, note."""
    from tlcore import backbones as bb
    from tlcore.scout import SCORES, kendall_tau

    cols = ["score", "tau", "trials", "note"]
    if not scout_attr or not scout_attr.get("rows"):
        return pd.DataFrame(columns=cols)
    by_key = {(r["backbone"], int(r["depth"])): r for r in scout_attr["rows"]}
    pairs = []
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        backbone = t.params.get("backbone", spec.backbones[0])
        method = t.params.get("method", spec.methods[0])
        depth = t.params.get("freeze_depth")
        if method == "feature_extraction" or depth is None:
            depth = bb.get(backbone).num_blocks
        acc = attrs.best_val_accuracy(t)
        if acc is None and spec.objective == "val_accuracy":
            acc = t.value
        row = by_key.get((backbone, int(depth)))
        if row is not None and acc is not None:
            pairs.append((row, float(acc)))
    out = []
    for score in (*SCORES, "combined_rank"):
        xs = [(-r[score] if score == "combined_rank" and r.get(score) is not None else r.get(score))
              for r, _ in pairs]
        tau = kendall_tau(xs, [a for _, a in pairs])
        note = ""
        if tau is None:
            note = ("fewer than 3 finished trials with a score" if len([x for x in xs if x is not None]) < 3
                    else "the score is the same for every trial (it ranks backbones, not depths)"
                    if score in ("leep", "nce") else "undefined (a constant side)")
        out.append({"score": "combined" if score == "combined_rank" else score, "tau": tau,
                    "trials": len(pairs), "note": note})
    return pd.DataFrame(out, columns=cols)
