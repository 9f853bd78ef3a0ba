"""The Results page's "Trained runs": single runs of ``<workspace>/models`` opened like a search's trials.

A run trained on the Train page or with ``python -m tlcore train`` has the folder a
trial has (``tlcore.runfolder.RunFolder``), so it gets the trial views over that
folder: the runs table (``tlcore.predict.list_models``), learning curves of the chosen
runs side by side (``results_widgets.curves_figure``), and for one run its downloads,
stored test report, evaluation again with top losses and Grad-CAM
(``evaluate_widgets.evaluate_run_view``) and the export with its checks (``export_widgets.export_section``).
The chosen runs live in ``st.query_params["run"]`` (repeated for several; the Train
page links ``?run=NAME``: a link followed within the session wins over the runs chosen
before, ``linked_runs``); session keys ``rs_runs`` (with ``rs_runs_url``, the URL this page
last wrote) and ``rs_run_eval`` (drawn with ``persist_state=place.KEPT``, as the trial views' own keys the
runs share, never drawn at the same time: still there after a visit to another page). A run
chosen before (or named by a link) that is no longer listed (deleted on disk, or its files cannot be
read) is said in a warning, with the run shown instead, never swapped silently. User text is Markdown-escaped.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tlcore.predict import ModelSummary
from tlcore.runfolder import RunFolder
from tlcore.workspace import Workspace
from tlui import evaluate_widgets as ev
from tlui import export_widgets as xw
from tlui import fmt as tf
from tlui import place
from tlui import results_widgets as rw
from tlui.common import md_escape

__all__ = ["runs_section", "runs_frame", "run_curves", "linked_runs"]

CURVES_DEFAULT = 5


def runs_frame(models: list[ModelSummary]) -> pd.DataFrame:
    return pd.DataFrame([{
        "run": m.name, "dataset": m.dataset, "backbone": m.backbone, "method": m.method, "size": m.image_size,
        "frozen blocks": m.freeze_depth, "epochs": m.epochs_run, "best val accuracy": m.best_val_accuracy,
        "test accuracy": m.test_accuracy, "created": m.created.replace("T", " "),
    } for m in models])


def run_curves(models: list[ModelSummary]) -> pd.DataFrame:
    """The runs' ``history.json`` as ``curves_figure`` rows, keyed by run name."""
    rows = [{"trial": 0, "epoch": h.get("epoch"), "phase": h.get("phase"), "split": split, "metric": metric,
             "value": float(h[f"{split}_{metric}"]), "key": m.name}
            for m in models for h in RunFolder(m.path).read_history() if isinstance(h, dict)
            for split in ("train", "val") for metric in ("loss", "accuracy")
            if tf.finite(h.get(f"{split}_{metric}")) is not None]
    return pd.DataFrame(rows, columns=["trial", "epoch", "phase", "split", "metric", "value", "key"])


def linked_runs() -> bool:
    """Whether the URL names runs this session did not put there: a link (the Train page's ``?run=``)."""
    return bool(st.query_params.get_all("run")) and st.query_params.get_all("run") != st.session_state.get(
        "rs_runs_url")


def _gone_warning(gone: list[str], instead: str | None) -> None:
    """Say that the runs ``gone`` (chosen before, or named by a link) are no longer listed, and which
    run is shown instead (None: none), as the Predict page says a model it no longer finds."""
    many = len(gone) > 1
    st.warning(f"The run{'s' if many else ''} {', '.join(md_escape(n) for n in gone)} {'are' if many else 'is'} no "
               f"longer there (deleted, or {'their' if many else 'its'} files cannot be read)"
               + (f": showing {md_escape(instead)} instead." if instead is not None else "."),
               icon=":material/warning:")


def _choose(names: list[str]) -> list[str]:
    """The runs chosen (``rs_runs``); runs chosen before or linked that are gone are said, never
    dropped or replaced without a word."""
    ss = st.session_state
    if "rs_runs" in ss and not linked_runs():
        gone = [n for n in ss["rs_runs"] if n not in names]
        rw.keep_valid("rs_runs", names, [], many=True)
        instead = None
    else:  # a link or a reload: the runs in the URL, else the newest
        linked = list(dict.fromkeys(st.query_params.get_all("run")))
        gone = [n for n in linked if n not in names]
        wanted = [n for n in linked if n in names]
        ss["rs_runs"] = wanted or names[:1]
        instead = None if wanted else (names[:1] or [None])[0]
    if instead is None and ss.get("rs_run_eval") in gone and ss["rs_runs"]:
        instead = ss["rs_runs"][0]  # the run evaluated is gone: "Evaluate a run" falls back to the first chosen
    if gone:
        _gone_warning(gone, instead)
    st.multiselect("Runs", names, key="rs_runs", help="Newest first. Choose several to compare their curves.")
    chosen = list(ss["rs_runs"])
    place.keep_in_url("run", chosen)  # always: a URL without ?run= opens the Searches view
    ss["rs_runs_url"] = chosen
    return chosen


def evaluate_run(ws: Workspace, m: ModelSummary) -> None:
    """One run like a trial: its facts, downloads, stored report, evaluation and export."""
    run = m.path
    spec = RunFolder(run).read_spec()
    metrics = RunFolder(run).read_metrics()
    depth = spec.get("freeze_depth")
    st.caption(md_escape(f"{m.backbone} · {m.method} · frozen blocks {'all' if depth is None else depth} · "
                         f"learning rate {tf.cell(spec.get('learning_rate'))} · best epoch "
                         f"{metrics.get('best_epoch', '?')} of {m.epochs_run} · run folder {run}"))
    ev.downloads(run, m.name)
    run_version = rw.run_version(run)
    ev.evaluate_run_view(ws, run, run_version, metrics.get("test"))
    xw.export_section(run, m.name, run_version, str(ws.root))


def runs_section(ws: Workspace, models: list[ModelSummary]) -> None:
    """The trained runs: choose some, their table and curves, then one evaluated like a trial."""
    by_name = {m.name: m for m in models}
    chosen = _choose(list(by_name))
    st.dataframe(runs_frame(models), hide_index=True, key="rs_runs_table", column_config={
        "best val accuracy": st.column_config.NumberColumn(format="percent"),
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "frozen blocks": st.column_config.NumberColumn(format="%d")})
    if not chosen:
        st.info("Choose one or more runs above.")
        return
    st.subheader("Learning curves")
    curves = run_curves([by_name[n] for n in chosen])
    if len(curves):
        st.plotly_chart(rw.curves_figure(curves, {n: n for n in chosen}), key="rs_run_curves")
        st.caption("Solid lines: the training split; dashed: validation. One colour per run.")
    else:
        st.info("The chosen runs recorded no epochs.")
    st.subheader("Evaluate a run")
    rw.keep_valid("rs_run_eval", chosen, chosen[0])
    st.selectbox("Run", chosen, key="rs_run_eval", persist_state=place.KEPT)
    with rw.guard("Evaluating the run"):
        evaluate_run(ws, by_name[st.session_state["rs_run_eval"]])
