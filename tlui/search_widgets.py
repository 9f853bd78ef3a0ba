"""Data and drawing helpers for the Search page: one poll of a study, spec uploads, its plots and texts.

Nothing here draws widgets; the Search page and ``tlui.search_form`` do. A poll (``poll_study``)
is what the page's live section runs on every refresh: one ``list_studies``,
one read of the trials from the (already open, process-wide) storage (the trial
table, ``study_frame``, their per-epoch values for the curves, the best value so
far over time, which trials diverged and their successive-halving rungs), and
this machine's worker state files. With the default journal storage each storage
read only replays the log lines added since the last read.

Texts for the page: ``study_label``, ``status_sentence`` (with ``stalled_text``: trials still
RUNNING in the storage whose worker stopped without finishing), ``best_trial_text``,
``worker_progress_text`` (with the rung a worker is on), ``crash_text`` (a crashed
worker and the last line of its log); tables: ``trial_table``, ``diverged_table``,
``workers_table``, with ``trial_table_config``; figures: ``curves_figure``,
``best_figure``. Text returned for Markdown elements is Markdown-escaped where it
quotes user input; numbers and plotly labels go through ``tlui.fmt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from optuna.trial import FrozenTrial

from tlcore._usertext import decode_text
from tlcore.search import (
    StudySpec,
    StudySummary,
    WorkerInfo,
    list_studies,
    list_workers,
    open_storage,
    study_frame,
)
from tlcore.search.heartbeat import DEFAULT_GRACE_PERIOD
from tlcore.search.results import best_so_far, fraction_text, with_outcomes, with_stalled
from tlcore.search.worker_state import GAVE_UP, TRAINING_STATUS, WorkerState
from tlcore.workspace import Workspace
from tlui import fmt as tf
from tlui.common import md_escape

__all__ = ["Snapshot", "poll_study", "parse_spec_text", "curves_figure", "trial_table", "MAX_CURVES",
           "diverged_table", "best_figure", "worker_progress_text", "best_trial_text", "status_sentence",
           "gave_up_text",
           "workers_table", "trial_table_config", "crash_text", "study_label", "stalled_text", "running_metric"]

MAX_CURVES = 150  # trials drawn in the intermediate-values plot (the newest)
SCIENTIFIC = ("learning_rate", "fine_tune_factor")  # parameters shown in scientific notation
_DASH = {"PRUNED": "dash", "FAIL": "dot"}


@dataclass
class Snapshot:
    """What the live section shows of one study, read at one moment."""

    name: str
    summary: StudySummary | None  # None: the study is gone (deleted elsewhere)
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: dict[int, tuple[str, list[int], list[float]]] = field(default_factory=dict)  # number -> state, x, y
    workers: list[WorkerInfo] = field(default_factory=list)
    seconds: float = 0.0  # how long the poll took
    best: pd.DataFrame = field(default_factory=pd.DataFrame)  # ``best_so_far``: seconds, value, number

    @property
    def diverged(self) -> pd.DataFrame:
        """The rows of ``frame`` of the trials that diverged (``frame`` has the ``with_outcomes`` columns)."""
        if self.frame.empty or "diverged" not in self.frame.columns:
            return self.frame.iloc[0:0]
        return self.frame[self.frame["diverged"].notna()]

    @property
    def running_trials(self) -> list[int]:
        """The trials RUNNING in the storage, stalled ones included (they can be marked failed)."""
        if self.frame.empty:
            return []
        return sorted(int(n) for n in self.frame.loc[self.frame["state"] == "RUNNING", "number"])

    @property
    def stalled(self) -> dict[int, str]:
        """The running trials whose worker stopped without finishing: number -> why (``StudySummary.stalled``)."""
        return dict(self.summary.stalled) if self.summary is not None else {}

    @property
    def alive_workers(self) -> list[WorkerInfo]:
        return [w for w in self.workers if w.alive]

    @property
    def training_workers(self) -> list[WorkerInfo]:
        """The live local workers on a trial still RUNNING in the storage: a worker whose trial has just
        ended (told, its files saved, its own state not yet updated) shows no stale progress bar under a
        finished count."""
        running = set(self.running_trials)
        return [w for w in self.alive_workers if w.trial is not None and w.trial in running]

    @property
    def crashed_workers(self) -> list[WorkerInfo]:
        """The local workers that ended without finishing (an error, killed, out of memory)."""
        return [w for w in self.workers if w.state == WorkerState.CRASHED]

    @property
    def active(self) -> bool:
        """Something is going on: a local worker is alive or a trial is running (anywhere; a stalled
        trial, whose worker stopped, is not)."""
        return bool(self.alive_workers) or bool(self.summary and self.summary.live)


def _trials(ws: Workspace, name: str) -> list[FrozenTrial]:
    storage = open_storage(ws)
    try:
        sid = storage.get_study_id_from_name(name)
    except KeyError:
        return []
    return storage.get_all_trials(sid, deepcopy=False)


def _curves(trials: list[FrozenTrial]) -> dict[int, tuple[str, list[int], list[float]]]:
    out = {}
    for t in trials:
        if t.intermediate_values:
            steps = sorted(t.intermediate_values)
            out[t.number] = (t.state.name, steps, [float(t.intermediate_values[s]) for s in steps])
    return out


def poll_study(ws: Workspace, name: str) -> Snapshot:
    """Read study ``name``'s summary, trial table, per-epoch values and local workers.

    Raises ``TLCoreError`` for storage problems; a study that no longer exists gives a
    snapshot whose ``summary`` is None.
    """
    t0 = time.perf_counter()
    summary = next((s for s in list_studies(ws) if s.name == name), None)
    if summary is None:
        return Snapshot(name=name, summary=None, seconds=time.perf_counter() - t0)
    trials = _trials(ws, name)
    frame = with_outcomes(study_frame(trials), trials, outcome_states=True)
    workers = list_workers(ws, name)
    return Snapshot(name=name, summary=summary, frame=frame, curves=_curves(trials), workers=workers,
                    seconds=time.perf_counter() - t0, best=best_so_far(trials, summary.direction))


def parse_spec_text(data: bytes | str) -> StudySpec:
    """A ``StudySpec`` from an uploaded YAML file; every problem is a ``ConfigError``."""
    if isinstance(data, bytes):
        data = decode_text(data, "the spec file", "Save it as a plain-text YAML file (UTF-8).")
    return StudySpec.from_yaml(data)


def trial_table(frame: pd.DataFrame, stalled: dict[int, str] | None = None) -> pd.DataFrame:
    """The columns the page's trial table shows, newest trial first.

    A trial that diverged shows the state ``DIVERGED`` (it is PRUNED in Optuna) and one a stop ended
    ``INTERRUPTED`` (FAIL in Optuna), as ``poll_study``'s frame says (``outcome_states``); a running trial
    whose worker stopped without finishing (a number in ``stalled``) ``STALLED``, and ``rungs`` the
    data it trained on ("11 % → 33 % → full"), when ``frame`` has the ``with_outcomes`` columns.
    """
    if frame.empty:
        return frame
    frame = frame.copy()
    if stalled:
        frame = with_stalled(frame, stalled)
    if "rung_path" in frame.columns:
        frame = frame.drop(columns=["rungs"], errors="ignore").rename(columns={"rung_path": "rungs"})
    params = [c for c in frame.columns if c.startswith("params_")]
    cols = ["number", "state", "value", *params, "epochs", "rungs", "duration_s", "worker", "error"]
    out = frame[[c for c in cols if c in frame.columns]].sort_values("number", ascending=False)
    for c in ("worker", "error"):  # blank, not "None"
        if c in out.columns:
            out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out


def diverged_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials of ``frame`` that diverged: ``trial``, their parameters, ``reason``; newest first."""
    rows = frame[frame["diverged"].notna()] if "diverged" in frame.columns and len(frame) else frame.iloc[0:0]
    params = [c for c in frame.columns if c.startswith("params_")]
    out = rows[["number", *params, "diverged"]] if len(rows) else pd.DataFrame(columns=["number", *params, "diverged"])
    out = out.rename(columns={"number": "trial", "diverged": "reason",
                              **{c: c.removeprefix("params_") for c in params}})
    return out.sort_values("trial", ascending=False).reset_index(drop=True)


def trial_table_config(table: pd.DataFrame, objective: str) -> dict[str, Any]:
    """The ``st.dataframe`` column configuration of a ``trial_table``: parameters by their names,
    learning rates and fine-tune factors in scientific notation."""
    config: dict[str, Any] = {
        "number": st.column_config.NumberColumn("trial", format="%d"),
        "value": st.column_config.NumberColumn(objective, format="%.4f"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.0f"),
    }
    for c in table.columns:
        if c.startswith("params_"):
            name = c.removeprefix("params_")
            config[c] = (st.column_config.NumberColumn(name, format="%.2e") if name in SCIENTIFIC
                         else st.column_config.Column(name))
    return config


def workers_table(workers: list[WorkerInfo]) -> pd.DataFrame:
    """One row per local worker: id, state, alive, trial, pid, trials done, why it stopped."""
    return pd.DataFrame([{"worker": w.worker_id, "state": w.state_text, "alive": w.alive, "trial": w.trial, "pid": w.pid,
                          "trials done": w.record.trials_done, "why it stopped": w.record.reason or ""}
                         for w in workers])


# ------------------------------------------------------------------- texts
def study_label(s: StudySummary) -> str:
    """Plain text naming a study in the menu: name, dataset, when it was created."""
    return f"{s.name}  ·  {s.dataset}  ·  created {s.created.replace('T', ' ')[:16] or '?'}"


def crash_text(w: WorkerInfo, tail: str, *, ended: bool = False) -> str:
    """Markdown saying that worker ``w`` crashed, quoting the last line of its log's ``tail``, and
    what to do. ``ended``: the trial it was running has ended since (``StudySummary.crash_pending``): then
    nothing waits on it any more, and the text says so instead of asking to start workers."""
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    quoted = f"The last line of its log: {md_escape(last)} " if last else "Its log is empty. "
    if w.lost_storage:  # not the worker's fault: nothing to fix but the database, which answers again now
        what = (f"; trial {w.trial}, which it was running, " + ("has been run again since" if ended else
                f"is run again once its heartbeat is missed ({DEFAULT_GRACE_PERIOD} s by default) and a worker starts")
                if w.trial is not None else "")
        return (f"Worker {md_escape(w.worker_id)} stopped when the study database stopped answering for longer "
                f"than its patience (pid {w.pid}){what}. {quoted}The database answers again now: start workers "
                "below (Add workers, or Resume after a stop) to go on.")
    if ended:
        what = (f"while running trial {w.trial}, which has ended since (failed, and run again as another trial)"
                if w.trial is not None else "between trials; no trial is left running")
        return (f"Worker {md_escape(w.worker_id)} crashed earlier: it stopped without finishing (pid {w.pid}) "
                f"{what}. {quoted}Nothing waits on it; check the log if it shows a problem to fix.")
    return (f"Worker {md_escape(w.worker_id)} crashed: it stopped without finishing (pid {w.pid}). "
            + quoted
            + "A trial it was running is queued again when a worker next starts. Fix what the log "
            "shows, then start workers again below (Add workers, or Resume after a stop).")


def stalled_text(stalled: dict[int, str]) -> str:
    """Markdown saying which trials are stalled, why, and what happens to them and what to do."""
    which = "; ".join(f"trial {n}: {md_escape(why)}" for n, why in stalled.items())
    return (f"{'A trial shows' if len(stalled) == 1 else 'Trials show'} as running, but no worker trains "
            f"{'it' if len(stalled) == 1 else 'them'} any more ({which}). A worker of this study marks such a "
            "trial failed and runs it again with the same parameters when it next looks for a trial, once the "
            f"trial has had no heartbeat for the grace period ({DEFAULT_GRACE_PERIOD} s by default): press Add workers below to "
            "continue, or Mark failed to give it up.")


def running_metric(container, s: StudySummary) -> None:
    """The "Running" metric of a study: the trials a worker trains now (``StudySummary.live``), with
    the stalled ones said in its help, not counted."""
    container.metric("Running", s.live, help="Trials a worker is training now."
                     + (f" Not counted: {len(s.stalled)} stalled (their worker stopped)." if s.stalled else ""))


def status_sentence(s: StudySummary, snap: Snapshot) -> tuple[str, str]:
    """(kind, text) saying what the study is doing: kind is an ``st`` message function's name.

    Trials RUNNING in the storage whose worker stopped without finishing (``Snapshot.stalled``) are
    not counted as running: a study with nothing else going on is said to be stalled.
    """
    alive = len(snap.alive_workers)
    if s.complete:
        return "success", f"Finished: {s.finished} of {s.n_trials} trials are done."
    if s.stop_requested:
        extra = f" {alive} worker(s) are still finishing." if alive else ""
        return "warning", "Stopped. Resume to queue the interrupted trials again and continue." + extra
    if s.stalled and not s.live and not alive:
        return "warning", "Stalled. " + stalled_text(s.stalled)
    if s.live or alive:
        text = f"Searching: {s.live} trial(s) running, {alive} local worker(s)."
        return ("warning", f"{text} {stalled_text(s.stalled)}") if s.stalled else ("info", text)
    gave_up = gave_up_text(snap)
    if gave_up:
        return "warning", gave_up
    # A study name is letters, digits and . _ - only: safe inside a code span (where escapes would show).
    return "info", ("Idle: no worker is running. Start workers below, or run "
                    f"`python -m tlcore worker --study {s.name}` where this storage is reachable.")


def gave_up_text(snap: Snapshot) -> str:
    """Markdown saying that the study's last local worker stopped because trial after trial failed
    with an error, quoting the last failed trial's error and saying what to do; "" when it did not."""
    done = [w for w in snap.workers if not w.alive and w.record.finished is not None]
    last = max(done, key=lambda w: w.record.finished, default=None)
    if last is None or GAVE_UP not in (last.record.reason or ""):
        return ""
    failed = snap.frame[snap.frame["state"] == "FAIL"] if "state" in snap.frame.columns else snap.frame.iloc[0:0]
    error = failed.sort_values("number")["error"].dropna().iloc[-1] if "error" in failed and len(failed) else ""
    return (f"Idle: the last worker gave up because {md_escape(last.record.reason.split(';')[0])}"
            + (f". The last one failed with: {md_escape(str(error))}" if error else "")
            + ". Fix that first, then press Add workers below; the failed trials are not run again.")


def _whole(v: Any) -> Any:
    """``v`` as an int when it is a float with no fractional part (a freeze depth read back as 15.0)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def best_trial_text(s: StudySummary, frame: pd.DataFrame) -> str | None:
    """Markdown naming the best trial, its value, test accuracy and parameters; None before one completes."""
    if s.best_trial is None or frame.empty or not (frame["number"] == s.best_trial).any():
        return None
    row = frame.loc[frame["number"] == s.best_trial].iloc[0]
    # A column of integer parameters turns float when another row lacks it (a waiting or retried trial): 15.0
    params = {c.removeprefix("params_"): _whole(row[c]) for c in frame.columns
              if c.startswith("params_") and pd.notna(row[c])}
    test = row.get("test_accuracy")
    return (f"**Best trial {s.best_trial}**: {md_escape(s.objective)} {tf.number(s.best_value)}"
            + (f", test accuracy {tf.number(float(test))}" if test is not None and pd.notna(test) else "")
            + "  \n" + md_escape(" · ".join(f"{k} {tf.number(v)}" for k, v in params.items())))


def worker_progress_text(w: WorkerInfo) -> str:
    """Plain text of a training worker's progress: its trial, the rung it is on (when the
    trial runs a rung epoch on a data subset), the epoch and batch, and its status."""
    rec = w.record
    text = f"Trial {w.trial}"
    if rec.rung is not None:
        text += f" · rung {rec.rung} · {fraction_text(rec.train_fraction)} of the data"
    text += (f" · epoch {rec.epoch or 0}/{rec.epochs or '?'} · "
             f"batch {rec.batch or 0}/{rec.batches or '?'}")
    if rec.status and rec.status != TRAINING_STATUS:
        text += f" · {rec.status}"
    return text


def curves_figure(curves: dict[int, tuple[str, list[int], list[float]]], objective: str) -> go.Figure:
    """The objective after each epoch, one line per trial; pruned trials dashed, failed dotted."""
    fig = go.Figure()
    for number in sorted(curves)[-MAX_CURVES:]:
        state, xs, ys = curves[number]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=f"trial {number} ({state.lower()})",
            line={"dash": _DASH.get(state, "solid")},
            hovertemplate=f"trial {number}, epoch %{{x}}: %{{y:.4f}}<extra>{tf.plot_text(state.lower())}</extra>",
        ))
    fig.update_layout(
        title={"text": f"{tf.plot_text(objective)} after each epoch (pruned dashed, failed dotted)"},
        xaxis={"title": {"text": "epoch"}, "dtick": 1}, yaxis={"title": {"text": tf.plot_text(objective)}},
        margin={"t": 40, "b": 40}, height=360, legend={"font": {"size": 11}},
    )
    return fig


def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds <= 180:
        return "seconds", 1.0
    if seconds <= 3 * 3600:
        return "minutes", 60.0
    return "hours", 3600.0


def best_figure(best: pd.DataFrame, objective: str) -> go.Figure:
    """Best so far: the best ``objective`` of the complete trials against wall-clock time since the
    study started (``tlcore.search.results.best_so_far``), as a step line with a marker at each
    completion; hovering names the trial that holds the best value."""
    unit, scale = _time_unit(float(best["seconds"].max()) if len(best) else 0.0)
    xs = [float(v) / scale for v in best["seconds"]]
    fig = go.Figure(go.Scatter(
        x=xs, y=[float(v) for v in best["value"]], mode="lines+markers", line={"shape": "hv"},
        customdata=[int(n) for n in best["number"]], name="best so far",
        hovertemplate=f"%{{x:.1f}} {unit}: %{{y:.4f}} (trial %{{customdata}})<extra></extra>",
    ))
    fig.update_layout(
        title={"text": f"Best so far: best {tf.plot_text(objective)} since the study started"},
        xaxis={"title": {"text": f"{unit} since the first trial started"}, "rangemode": "tozero"},
        yaxis={"title": {"text": tf.plot_text(objective)}},
        margin={"t": 40, "b": 40}, height=300, showlegend=False,
    )
    if len(best):  # around the values: Plotly's own range for a single point spans a whole unit
        lo, hi = float(best["value"].min()), float(best["value"].max())
        pad = max(0.02, 0.1 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
    return fig
