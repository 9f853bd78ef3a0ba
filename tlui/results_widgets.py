"""Pieces of the Results page: trial labels and tables, cached study data, charts, evaluation, exports.

Trials of several studies appear side by side (``tlcore.search.compare.TrialSet``),
named by their key ``"<study>/<number>"``. Cached loaders take plain strings and
numbers so Streamlit hashes their keys cheaply:

- ``study_figures_cached``: Optuna's views, keyed by the studies' names and a token
  that changes whenever one of their trials changes (state, value, epochs reported);
- models load through ``tlui.data.cached_model`` (shared with the Predict page);
- ``cached_evaluation``: ``tlcore.predict.evaluate_run`` keyed by the run folder, the
  run folder's version (RunFolder.load_version) and the dataset's version (a rescan evaluates again);
- ``gradcam_overlays``: Grad-CAM of some test images, keyed likewise;
- ``export_zip``: ``tlcore.export.export_model`` written into the workspace's exports folder and
  returned as the bytes of a zip archive.

How a trial ended, in words: ``state_word`` ("diverged" for a pruned trial that
diverged), ``not_tested_reason`` (why it has no model, with the divergence reason),
``rungs_frame`` (its successive-halving rungs: data, epoch, value, promoted or not),
``trial_table`` (a study's ``study_frame`` with the state DIVERGED and a
``rungs`` column such as "11 % → 33 % → full").

For the page's sections: ``studies_frame`` (the chosen studies' counts),
``trial_label`` (a trial in menus and legends, ★ on the best), ``trials_frame`` (the
trial tables of all chosen studies, stacked) with ``table_config``, ``keep_states``
and ``shown_trials`` (its state and value filters, best first), ``facts_table`` (two
trials' facts side by side), ``keep_valid`` (a widget's value kept only while still
offered), ``FIGURE_HELP`` (a line on each of Optuna's views). The page's choices are drawn with
``persist_state=tlui.place.KEPT``, so a visit to another page keeps them. The evaluation section
and the test reports are ``tlui.evaluate_widgets``.

Numbers are formatted and user text in plotly labels escaped by ``tlui.fmt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from optuna.trial import TrialState
from PIL import Image

from tlcore.errors import TLCoreError
from tlcore.gradcam import overlay
from tlcore.predict import evaluate_run, prepare_image
from tlcore.runfolder import RunFolder
from tlcore.search import StudySummary, attrs, study_frame
from tlcore.search._urls import scrub_secrets
from tlcore.search.compare import TrialSet, parse_key
from tlcore.search.results import (
    DIVERGED,
    diverged_reason,
    fraction_text,
    outcome,
    rung_path,
    trial_rungs,
    with_outcomes,
)
from tlcore.workspace import Workspace
from tlui import data
from tlui import fmt as tf
from tlui.common import md_escape

__all__ = [
    "study_token", "study_figures_cached", "FIGURE_HELP",
    "curves_figure", "confusion_figure", "per_class_frame", "cached_evaluation",
    "gradcam_overlays", "export_zip", "run_version", "guard", "storage_error", "DISPLAY_PX",
    "STATE_WORDS", "state_word", "not_tested_reason", "rungs_frame", "rung_facts", "trial_table",
    "studies_frame", "trial_label", "trials_frame", "table_config", "keep_states", "shown_trials",
    "trial_facts", "facts_table", "keep_valid",
]

DISPLAY_PX = 160  # side of the top-loss images and their Grad-CAM overlays
STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", DIVERGED: "diverged", "FAIL": "failed",
               "INTERRUPTED": "interrupted", "RUNNING": "running", "WAITING": "waiting"}
REASON_CHARS = 300  # of an error or divergence reason shown in a sentence
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
FIGURE_HELP = {  # a line above each of Optuna's views (``tlcore.search.results.FIGURES``)
    "optimization history": "Each trial's objective value in the order the trials ran, and the best so far.",
    "parameter importances": "How much of the variation in the objective each parameter explains (fANOVA).",
    "parallel coordinates": "Every complete trial as a line through its parameters to its objective value.",
    "contour": "The objective over two parameters, interpolated between the trials tried.",
    "slice": "The objective against each parameter on its own.",
    "intermediate values": "The objective after each epoch: what the pruner compares.",
    "timeline": "When each trial ran, on which worker slot, and how it ended.",
}


# ------------------------------------------------------------ study data
def study_token(study) -> str:
    """Changes whenever a trial of ``study`` is added, ends, reports an epoch or gets a value."""
    h = hashlib.sha1()
    for t in study.get_trials(deepcopy=False):
        h.update(repr((t.number, t.state.name, t.value, len(t.intermediate_values),
                       t.datetime_complete)).encode())
    return h.hexdigest()


@st.cache_data(show_spinner="Drawing Optuna's views…", max_entries=16)
def study_figures_cached(ws_root: str, storage: str | None, names: tuple[str, ...],
                         tokens: tuple[str, ...]) -> dict[str, Any]:
    """``tlcore.search.study_figures`` of the studies ``names`` (the first is the one the
    single-study views show); ``tokens`` (``study_token`` of each) is the cache version."""
    from tlcore.search import load_study, study_figures

    ws = Workspace(ws_root)
    studies = [load_study(ws, n, storage) for n in names]
    return study_figures(studies if len(studies) > 1 else studies[0])


def storage_error(exc: BaseException | str, storage: str | None) -> None:
    """``show_error`` for a failure reading ``storage``, its password scrubbed from the message (a
    database driver's error may quote it)."""
    st.error(md_escape(scrub_secrets(str(exc), storage)))


@contextlib.contextmanager
def guard(what: str, storage: str | None = None) -> Iterator[None]:
    """Show a failure inside the block as an error box (never a traceback) and go on with the page.

    ``TLCoreError`` shows its message and fix; anything else its type and message, since a
    study written by other Optuna code may hold what this page does not expect. ``storage``: the
    study storage the block reads; its password is scrubbed from the message (``scrub_secrets``:
    a database driver's error may quote it).
    """
    try:
        yield
    except TLCoreError as exc:
        storage_error(exc, storage)
    except Exception as exc:  # noqa: BLE001 - the page must go on; st.stop/st.rerun are BaseExceptions
        storage_error(f"{what} failed ({type(exc).__name__}: {exc}).", storage)


# ------------------------------------------------------------- trial state
def state_word(t: Any) -> str:
    """How trial ``t`` ended (or where it is), in a word: "diverged" rather than "pruned" for a
    trial stopped because it diverged."""
    name = outcome(t)
    return STATE_WORDS.get(name, name.lower())


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0][:REASON_CHARS] if text else ""


def not_tested_reason(t: Any, *, retried_as: int | None = None) -> str:
    """Why a trial has no model or test report, in words (Markdown-escaped). ``retried_as``: the
    trial queued again for it because its worker died (``TrialSet.retried_as``)."""
    n = t.number
    epochs = attrs.epochs(t)
    why_diverged = diverged_reason(t)
    rungs = trial_rungs(t)
    if t.state == TrialState.PRUNED and why_diverged is not None:
        text = (f"Trial {n} diverged after {epochs} epoch(s): {_first_line(why_diverged)}. It was stopped "
                "at once, so it saved no model and was never tested.")
    elif t.state == TrialState.PRUNED and rungs and rungs[-1].get("promoted") is False:
        r = rungs[-1]
        text = (f"Trial {n} was pruned at rung {r.get('rung', '?')} ({fraction_text(r.get('fraction'))} of the "
                f"data, value {tf.cell(r.get('value'))}): successive halving kept better trials, so it saved no "
                "model and was never tested.")
    elif t.state == TrialState.PRUNED:
        text = (f"Trial {n} was pruned after {epochs} epoch(s): the pruner stopped it early, so it saved no "
                "model and was never tested.")
    elif t.state == TrialState.FAIL:
        why = attrs.failure_reason(t, retried_as=retried_as) or ""
        text = f"Trial {n} failed ({_first_line(why) or 'no reason recorded'}), so it saved no model."
    elif t.state in (TrialState.RUNNING, TrialState.WAITING):
        text = (f"Trial {n} is still {STATE_WORDS[t.state.name]} ({epochs} epoch(s) so far): its model is saved "
                "when it completes.")
    else:
        text = f"Trial {n} saved no test report."
    return md_escape(text + " Choose a complete trial to see its results.")


def _judged(r: dict[str, Any]) -> str:
    promoted = r.get("promoted")
    return "promoted" if promoted is True else ("pruned" if promoted is False else "being judged")


def rungs_frame(t: Any) -> pd.DataFrame:
    """Trial ``t``'s successive-halving rungs: ``rung``, ``data`` ("11 %"), ``epoch``, ``value``
    (the objective after the rung's epoch) and ``outcome`` (promoted, pruned, being judged)."""
    rows = []
    for r in trial_rungs(t):
        value = r.get("value")
        rows.append({"rung": r.get("rung"), "data": fraction_text(r.get("fraction")), "epoch": r.get("epoch"),
                     "value": float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                     else None, "outcome": _judged(r)})
    return pd.DataFrame(rows, columns=["rung", "data", "epoch", "value", "outcome"])


def rung_facts(t: Any) -> dict[str, str]:
    """Rows for a side-by-side facts table: the rung path and each rung's value and outcome."""
    rungs = trial_rungs(t)
    if not rungs:
        return {}
    out = {"rungs": rung_path(t)}
    for r in rungs:
        label = f"rung {r.get('rung', '?')} ({fraction_text(r.get('fraction'))})"
        out[label] = f"{tf.cell(r.get('value'))} · {_judged(r)}"
    return out


def trial_table(frame: pd.DataFrame, trials: Sequence[Any]) -> pd.DataFrame:
    """A study's ``study_frame`` for the page's table: a trial that diverged has the state
    DIVERGED and its reason in ``diverged``, one a stop ended INTERRUPTED; ``rungs`` is the data it
    trained on, stage by stage."""
    out = with_outcomes(frame, trials, outcome_states=True)
    out = out.drop(columns=["rungs"]).rename(columns={"rung_path": "rungs"})
    cols = [c for c in out.columns if c not in ("rungs", "diverged")]
    at = cols.index("epochs") + 1 if "epochs" in cols else len(cols)
    cols[at:at] = ["rungs"]
    cols.insert(cols.index("error") + 1 if "error" in cols else len(cols), "diverged")
    return out[cols]


# ------------------------------------------------------- the page's tables
def studies_frame(summaries: Iterable[StudySummary]) -> pd.DataFrame:
    """One row per study: dataset, objective and direction, trial counts, best value and trial."""
    rows = [{"study": s.name, "dataset": s.dataset, "objective": f"{s.objective} ({s.direction})",
             "finished": s.finished, "budget": s.n_trials, "running": s.live,
             "stalled": len(s.stalled),
             "complete": s.counts.get("COMPLETE", 0), "pruned": s.counts.get("PRUNED", 0),
             "failed": s.counts.get("FAIL", 0), "interrupted": s.counts.get("INTERRUPTED", 0),
             "best value": s.best_value, "best trial": s.best_trial}
            for s in summaries]
    return pd.DataFrame(rows)


def trial_label(ts: TrialSet, key: str) -> str:
    """Plain text naming a trial in menus and legends: "trial 3 · 0.8123" ("study #3 · ..." when
    several studies are chosen), its state when it is not complete, and ★ on the best."""
    study, number = parse_key(key)
    t = ts.trials[key]
    head = f"{study} #{number}" if ts.many else f"trial {number}"
    parts = [head] + ([tf.fixed(t.value, 4)] if t.value is not None else [])
    if t.state != TrialState.COMPLETE:
        parts.append(state_word(t))
    return " · ".join(parts) + (" ★" if ts.is_best(key) else "")


def trials_frame(ts: TrialSet) -> pd.DataFrame:
    """The ``trial_table`` of every chosen study, stacked (with a ``study`` column when several)."""
    frames = []
    for n in ts.names:
        trials = ts.studies[n].get_trials(deepcopy=False)
        f = trial_table(study_frame(trials), trials)
        if ts.many:
            f.insert(0, "study", n)
        frames.append(f)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["number", "state", "value"])


def table_config(df: pd.DataFrame) -> dict[str, Any]:
    """The ``st.dataframe`` column configuration of a ``trials_frame``."""
    cc = st.column_config
    cfg: dict[str, Any] = {
        "number": cc.NumberColumn("trial", format="%d"),
        "value": cc.NumberColumn("value", format="%.4f", help="The study's objective."),
        "best_val_accuracy": cc.NumberColumn("best val accuracy", format="percent"),
        "test_accuracy": cc.NumberColumn("test accuracy", format="percent",
                                         help="Of the best epoch's weights, on the held-out test split."),
        "duration_s": cc.NumberColumn("duration", format="%.0f s"),
        "started": cc.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
        "completed": cc.DatetimeColumn("completed", format="YYYY-MM-DD HH:mm:ss"),
        "retry_of": cc.NumberColumn("retry of", format="%d"),
        "rungs": cc.TextColumn("rungs", help="The data it trained on: one epoch on each subset (a successive-"
                               "halving rung), then all of it if promoted. A scout seed is never pruned."),
        "diverged": cc.TextColumn("why it diverged"),
    }
    for col in df.columns:
        if str(col).startswith("params_"):
            label = str(col)[len("params_"):].replace("_", " ")
            floats = pd.api.types.is_float_dtype(df[col])
            cfg[col] = cc.NumberColumn(label, format="%.2e") if floats else label
    return cfg


def keep_states(key: str, states: list[str]) -> None:
    """Keep the multiselect ``key``'s chosen states among ``states`` (all of them at first), and
    choose a state that appeared since the last run (a trial completed) too."""
    ss = st.session_state
    seen = ss.get(f"{key}_seen")
    keep_valid(key, states, states, many=True)
    if seen is not None:
        ss[key] = ss[key] + [s for s in states if s not in seen and s not in ss[key]]
    ss[f"{key}_seen"] = states


def shown_trials(ts: TrialSet, table: pd.DataFrame, states: list[str], at_least: float | None) -> pd.DataFrame:
    """The rows of a ``trials_frame`` in ``states`` and with a value of at least ``at_least`` (None:
    any, missing values too), best first."""
    view = table[table["state"].isin(states)] if len(table) else table
    if at_least is not None and len(view):
        view = view[view["value"].notna() & (view["value"] >= at_least)]
    return ts.best_first(view)


def trial_facts(t: Any) -> dict[str, str]:
    """A trial's facts as text, by row name: state, value, parameters, epochs, best epoch, test
    accuracy, duration and its rungs (``rung_facts``)."""
    m = attrs.metrics(t)
    out = {"state": state_word(t), "value": tf.cell(t.value)}
    out.update({p.replace("_", " "): tf.cell(v) for p, v in sorted(t.params.items())})
    out.update({
        "epochs": tf.cell(attrs.epochs(t)),
        "best epoch": tf.cell(m.get("best_epoch")),
        "test accuracy": tf.pct(m.get("test_accuracy")),
        "duration": tf.seconds(attrs.duration_seconds(t)),
        **rung_facts(t),
    })
    return out


def facts_table(ts: TrialSet, a: str, b: str) -> pd.DataFrame:
    """Trials ``a`` and ``b``'s ``trial_facts`` side by side, one row per fact ("–" where one has none)."""
    fa, fb = trial_facts(ts.trials[a]), trial_facts(ts.trials[b])
    rows = list(dict.fromkeys([*fa, *fb]))
    return pd.DataFrame({"": rows, trial_label(ts, a): [fa.get(r, tf.MISSING) for r in rows],
                         trial_label(ts, b): [fb.get(r, tf.MISSING) for r in rows]})


def keep_valid(key: str, options: list[Any], default: Any, *, many: bool = False) -> None:
    """Set widget ``key`` to ``default`` unless its value is still among ``options``
    (for a multiselect: drop the values that are gone)."""
    ss = st.session_state
    if many:
        ss[key] = [v for v in ss[key] if v in options] if key in ss else list(default)
    elif ss.get(key) not in options:
        ss[key] = default


# ------------------------------------------------------------------ charts
def curves_figure(curves: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Loss (left) and accuracy (right) per epoch, one colour per trial, train solid and val dashed.

    ``curves``: ``tlcore.search.learning_curves`` rows with a ``key`` column (the trial key);
    ``labels``: key -> legend text.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    for i, key in enumerate(dict.fromkeys(curves["key"])):
        colour = PALETTE[i % len(PALETTE)]
        rows = curves[curves["key"] == key]
        first = True
        for split, dash in (("train", "solid"), ("val", "dash")):
            for col, metric in ((1, "loss"), (2, "accuracy")):
                part = rows[(rows["split"] == split) & (rows["metric"] == metric)].sort_values("epoch")
                if part.empty:
                    continue
                name = tf.plot_text(labels.get(key, key))
                fig.add_trace(
                    go.Scatter(
                        x=part["epoch"].tolist(), y=part["value"].tolist(), mode="lines+markers",
                        line={"color": colour, "dash": dash}, marker={"size": 5},
                        name=name, legendgroup=key, showlegend=first,
                        hovertemplate=f"{name} · {split} {metric}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                    ),
                    row=1, col=col,
                )
                first = False
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", row=1, col=2)
    fig.update_layout(height=380, margin={"t": 40, "b": 40, "l": 10, "r": 10}, legend={"title": {"text": "trial"}})
    return fig


def confusion_figure(cm: Sequence[Sequence[int]], class_names: Sequence[str], title: str = "") -> go.Figure:
    """A confusion-matrix heatmap: rows true class, columns predicted class, counts written in.

    No colorscale of its own: Streamlit's chart theme gives heatmaps its sequential scale for the
    light or the dark theme (a fixed "Blues" painted the empty cells near-white in dark mode),
    and plotly writes each count in black or white to contrast with its cell.
    """
    z = np.asarray(cm, dtype=int)
    names = [tf.plot_text(c) for c in class_names] if len(class_names) == len(z) else [str(i) for i in range(len(z))]
    fig = go.Figure(
        go.Heatmap(
            z=z.tolist(), x=names, y=names, showscale=False,
            texttemplate="%{z}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    side = 160 + 36 * len(names)
    fig.update_layout(
        title={"text": tf.plot_text(title)} if title else None, height=min(700, max(260, side)),
        margin={"t": 40 if title else 10, "b": 40, "l": 10, "r": 10},
        xaxis={"title": {"text": "predicted"}, "type": "category"},
        yaxis={"title": {"text": "true"}, "type": "category", "autorange": "reversed"},
    )
    return fig


def per_class_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support of a ``classification_report``."""
    rows = report.get("per_class") or []
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def report_class_names(report: dict[str, Any]) -> list[str]:
    """The class names of a stored report (its per-class rows); indices when it has none."""
    rows = report.get("per_class") or []
    names = [str(r.get("class")) for r in rows if isinstance(r, dict)]
    n = len(report.get("confusion_matrix") or [])
    return names if len(names) == n else [str(i) for i in range(n)]


# ------------------------------------------------------- model, evaluation
def run_version(run_dir: str | Path) -> int:
    """The run folder's version for the model caches (``RunFolder.load_version``: the model file's
    time with labels.txt's, metrics.json's, ...); 0 when the model file cannot be read."""
    return RunFolder(run_dir).load_version()


@st.cache_data(show_spinner="Evaluating on the test split…", max_entries=8)
def cached_evaluation(ws_root: str, run_dir: str, run_version: int, dataset_version: str) -> dict[str, Any]:
    """``evaluate_run`` of the trial's model on its own test images (see ``tlcore.predict``)."""
    loaded, _ = data.cached_model(run_dir, run_version)
    return evaluate_run(loaded, Workspace(ws_root))


@st.cache_data(show_spinner="Computing Grad-CAM…", max_entries=32)
def gradcam_overlays(run_dir: str, run_version: int, files: tuple[str, ...],
                     classes: tuple[int, ...]) -> list[np.ndarray | None]:
    """Grad-CAM of class ``classes[i]`` on image ``files[i]``, drawn over the image as the model
    saw it (``DISPLAY_PX`` square); None for an image that can no longer be read."""
    loaded, cam = data.cached_model(run_dir, run_version)
    if cam is None:  # a model Grad-CAM cannot explain (not the workbench's head)
        return [None] * len(files)
    prepared: list[np.ndarray | None] = []
    for f in files:
        try:
            prepared.append(prepare_image(loaded, f))
        except (TLCoreError, OSError, ValueError):
            prepared.append(None)
    ok = [i for i, x in enumerate(prepared) if x is not None]
    out: list[np.ndarray | None] = [None] * len(files)
    if not ok:
        return out
    res = cam.explain(np.stack([prepared[i] for i in ok]), np.asarray([classes[i] for i in ok]))
    for j, i in enumerate(ok):
        seen = np.asarray(Image.fromarray(prepared[i]).resize((DISPLAY_PX, DISPLAY_PX), Image.Resampling.BILINEAR))
        out[i] = overlay(seen, res.heatmaps[j], alpha=0.45)
    return out


# ----------------------------------------------------------------- exports
def claim_export_dir(exports: Path, name: str) -> Path:
    """Create and return ``exports/name``, or ``name-2``, ``name-3``… when taken: an export never
    replaces another. The name is claimed by creating the (empty) folder, which only one process
    can do, so two exports started at once (two tabs) get two folders."""
    exports.mkdir(parents=True, exist_ok=True)
    target, n = exports / name, 2
    while True:
        try:
            target.mkdir()
            return target
        except FileExistsError:
            target, n = exports / f"{name}-{n}", n + 1


@st.cache_data(show_spinner=False, max_entries=2)
def export_zip(run_dir: str, run_version: int, formats: tuple[str, ...], name: str,
               ws_root: str | None = None, press: str = "") -> dict[str, Any]:
    """Export the run with ``tlcore.export.export_model`` into the workspace's exports folder
    (``<workspace>/exports/<name>``, or ``<name>-2``… when taken: the Predict page lists it) and
    return the zip archive of that folder (``zip``, its files under ``<name>/``), where it was saved
    (``saved``), the model card as JSON bytes (``card``), the files written with their sizes
    (``files``), and what the checks found (``checks``, ``warnings``: the dataset's images are
    looked up in the workspace ``ws_root``, by default the one a run under ``models/`` lies in).
    ``press`` names the button press: each press exports anew (the cache serves only the reruns
    of that press, never another press or another session an export that may be gone since)."""
    from tlcore.export import export_model, workspace_for
    from tlcore.predict import load_model

    loaded = load_model(run_dir)
    ws = workspace_for(loaded, ws_root)
    target = claim_export_dir(ws.exports_dir, name)
    try:
        result = export_model(loaded, target, formats=formats, workspace=ws, overwrite=True)  # the claimed folder
    except BaseException:
        with contextlib.suppress(OSError):
            target.rmdir()  # still the empty claim: the export left nothing
        raise
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for p in sorted(result.out_dir.rglob("*")):
            if p.is_file():
                zf.write(p, f"{name}/{p.relative_to(result.out_dir).as_posix()}")
    card = json.dumps(result.model_card, indent=2, default=str).encode("utf-8")
    return {"zip": buf.getvalue(), "card": card, "files": dict(result.files), "formats": result.formats,
            "checks": result.checks, "warnings": list(result.warnings), "saved": str(result.out_dir)}
