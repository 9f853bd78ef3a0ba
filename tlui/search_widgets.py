"""Data and drawing helpers for the Search page: one poll of a study, spec uploads, the curves plot.

Nothing here draws widgets; ``pages/3_Search.py`` does. A poll (``poll_study``)
is what the page's live section runs on every refresh: one ``list_studies``,
one ``load_study_frame``, one read of the trials' intermediate values from the
(already open, process-wide) storage, and this machine's worker state files.
With the default journal storage each storage read only replays the log lines
added since the last read.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from tlcore.errors import ConfigError
from tlcore.search import (
    StudySpec,
    StudySummary,
    WorkerInfo,
    list_studies,
    list_workers,
    load_study_frame,
    open_storage,
)
from tlcore.workspace import Workspace

__all__ = ["Snapshot", "poll_study", "parse_spec_text", "curves_figure", "trial_table", "MAX_CURVES"]

MAX_CURVES = 150  # trials drawn in the intermediate-values plot (the newest)
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

    @property
    def running_trials(self) -> list[int]:
        if self.frame.empty:
            return []
        return sorted(int(n) for n in self.frame.loc[self.frame["state"] == "RUNNING", "number"])

    @property
    def alive_workers(self) -> list[WorkerInfo]:
        return [w for w in self.workers if w.alive]

    @property
    def active(self) -> bool:
        """Something is going on: a local worker is alive or a trial is running (anywhere)."""
        return bool(self.alive_workers) or bool(self.summary and self.summary.running)


def _curves(ws: Workspace, name: str) -> dict[int, tuple[str, list[int], list[float]]]:
    storage = open_storage(ws)
    try:
        sid = storage.get_study_id_from_name(name)
    except KeyError:
        return {}
    out = {}
    for t in storage.get_all_trials(sid, deepcopy=False):
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
    frame = load_study_frame(ws, name)
    curves = _curves(ws, name)
    workers = list_workers(ws, name)
    return Snapshot(name=name, summary=summary, frame=frame, curves=curves, workers=workers,
                    seconds=time.perf_counter() - t0)


def parse_spec_text(data: bytes | str) -> StudySpec:
    """A ``StudySpec`` from an uploaded YAML file; every problem is a ``ConfigError``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("The spec file is not UTF-8 text.", received=f"byte {exc.start}",
                              fix="Save it as a plain-text YAML file (UTF-8).") from None
    return StudySpec.from_yaml(data)


def trial_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the page's trial table shows, newest trial first."""
    if frame.empty:
        return frame
    params = [c for c in frame.columns if c.startswith("params_")]
    cols = ["number", "state", "value", *params, "epochs", "duration_s", "worker", "error"]
    out = frame[[c for c in cols if c in frame.columns]].sort_values("number", ascending=False)
    for c in ("worker", "error"):  # blank, not "None"
        if c in out.columns:
            out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out


def _text(s: Any) -> str:
    """Plotly renders a little HTML in labels; make text show literally."""
    return html.escape(str(s), quote=False)


def curves_figure(curves: dict[int, tuple[str, list[int], list[float]]], objective: str) -> go.Figure:
    """The objective after each epoch, one line per trial; pruned trials dashed, failed dotted."""
    fig = go.Figure()
    for number in sorted(curves)[-MAX_CURVES:]:
        state, xs, ys = curves[number]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=f"trial {number} ({state.lower()})",
            line={"dash": _DASH.get(state, "solid")},
            hovertemplate=f"trial {number}, epoch %{{x}}: %{{y:.4f}}<extra>{_text(state.lower())}</extra>",
        ))
    fig.update_layout(
        title={"text": f"{_text(objective)} after each epoch (pruned dashed, failed dotted)"},
        xaxis={"title": {"text": "epoch"}, "dtick": 1}, yaxis={"title": {"text": _text(objective)}},
        margin={"t": 40, "b": 40}, height=360, legend={"font": {"size": 11}},
    )
    return fig
