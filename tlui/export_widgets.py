"""The Results page's export: choose formats, build the zip, and show what the checks found.

``export_section(run, name, run_version, ws_root=None)`` (keys ``rs_formats``, ``rs_export_btn``,
``rs_export_req``, ``rs_export_press``, ``rs_dl_export``, ``rs_dl_card``): the formats
(``FORMAT_LABELS``), a button that exports through ``results_widgets.export_zip`` (cached
per press, for the page's reruns) into ``<workspace>/exports/`` (a new folder each time: ``NAME``,
``NAME-2``…), where the Predict page lists it, with a link there; the downloads, the
files, and ``checks_view``. ``ws_root`` is the
workspace holding the run's dataset (None: the one a run under ``<workspace>/models/`` lies in).
The formats chosen are kept across a visit to another page (``persist_state=place.KEPT``).

``checks_view(out)``: every format's check (``tlcore.export``: run in its own runtime on
the run's test split and compared with the Keras model) as a table; each warning (a
format whose agreement is significantly below its threshold, or that cannot be run) as
``st.error``; a format that passed with its agreement under its threshold (not significantly
below it: ``tlcore.export.agreement_verdict``) as "ok (2 of 70 differ; within what 70 images
can tell from 98 %)" in the table, with a caption saying why; a run that
could not be checked as ``st.warning`` with the reason. Shares are rounded so that a
figure never looks better than it is (agreement and accuracy down, size up).
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from tlcore.catalog import export_key
from tlcore.errors import TLCoreError
from tlcore.export import FORMATS, SIGNIFICANCE, rule_text, verdict_text
from tlcore.runfolder import RunFolder
from tlcore.runtime import backend_name
from tlui import place
from tlui import results_widgets as rw
from tlui.common import md_escape, page, show_error

__all__ = ["export_section", "checks_view", "checks_frame", "FORMAT_LABELS"]

FORMAT_LABELS = {
    "keras": "Keras 3 (.keras)",
    "savedmodel": "TensorFlow SavedModel",
    "tflite": "TFLite, float32",
    "tflite_dynamic": "TFLite, dynamic-range quantized",
    "tflite_float16": "TFLite, float16 weights",
    "tflite_int8": "TFLite, full integer (int8; uint8 input)",
    "onnx": "ONNX",
}


def _down(x: Any) -> float | None:
    return None if x is None else math.floor(10000 * x) / 100


def _up(x: Any) -> float | None:
    return None if x is None else math.ceil(10 * x) / 10


def checks_frame(checks: dict[str, Any]) -> pd.DataFrame:
    """One row per format: size, its share of the reference file, accuracy, agreement, largest
    probability difference, latency, verdict ("ok (2 of 70 differ; …)" for a pass under the threshold)."""
    rows = []
    for fmt, c in (checks.get("formats") or {}).items():
        rows.append({
            "format": FORMAT_LABELS.get(fmt, fmt),
            "bytes": c.get("bytes"),
            "size %": _up(c.get("size_pct")),
            "accuracy %": _down(c.get("accuracy")),
            "agreement %": _down(c.get("agreement")),
            "max |Δp|": c.get("max_abs_prob_diff"),
            "latency ms": c.get("latency_ms"),
            "check": verdict_text(c),
        })
    return pd.DataFrame(rows)


def checks_view(out: dict[str, Any]) -> None:
    """What the checks found: a table, ``st.error`` per warning, ``st.warning`` when nothing was checked."""
    checks = out.get("checks") or {}
    for w in out.get("warnings") or ():
        st.error(md_escape(w), icon=":material/error:")
    if not checks.get("checked"):
        st.warning(md_escape(f"Nothing was checked against data: {checks.get('reason') or 'unknown'}. "
                             "Sizes and latency only."))
    frame = checks_frame(checks)
    if not len(frame):
        return
    ref = "the float32 TFLite file" if checks.get("size_reference") == "tflite" else "the Keras file"
    cc = st.column_config
    st.dataframe(frame, hide_index=True, column_config={
        "bytes": cc.NumberColumn(format="compact"),
        "size %": cc.NumberColumn(format="%.1f %%", help=f"The file's size as a share of {ref}."),
        "accuracy %": cc.NumberColumn(format="%.2f %%"),
        "agreement %": cc.NumberColumn(format="%.2f %%", help="Images on which this file's top class is the "
                                       "Keras model's."),
        "max |Δp|": cc.NumberColumn(format="%.4f", help="The largest difference of any class probability."),
        "latency ms": cc.NumberColumn(format="%.1f", help="One image at a time, median, on the server."),
        "check": cc.TextColumn(help="FAILED: the agreement is significantly below the format's threshold "
                               f"(one-sided binomial test, p < {SIGNIFICANCE:g}), or the file could not be run."),
    })
    if checks.get("checked"):
        st.caption(md_escape(f"Each file run by its own runtime on the run's {checks['images']} {checks['split']} "
                             f"images and compared with the run's Keras model. Latency: {checks.get('latency')}."
                             + (f" {rule}" if (rule := rule_text(checks)) else "")
                             + (f" {checks['note']}" if checks.get("note") else "")))


def export_section(run: Path, name: str, run_version: int, ws_root: str | None = None) -> None:
    """Export the run for serving in the chosen formats, as a zip with the model card; show the checks."""
    folder = RunFolder(run)
    card = folder.model_card_file.name
    with place.expander("Export for serving: Keras, SavedModel, TFLite, ONNX, checked, with the model card",
                        key="rs_export_open"):
        tf_ok = backend_name() == "tensorflow"  # which backend decides the formats offered
        options = list(FORMATS) if tf_ok else ["keras"]
        rw.keep_valid("rs_formats", options, [f for f in ("keras", "tflite") if f in options], many=True)
        st.multiselect("Formats", options, key="rs_formats", format_func=lambda f: FORMAT_LABELS.get(f, f),
                       persist_state=place.KEPT)
        if not tf_ok:
            st.caption("SavedModel, TFLite and ONNX need the TensorFlow backend (KERAS\\_BACKEND=tensorflow).")
        st.caption(f"Every export holds {md_escape(folder.labels_file.name)} and {md_escape(card)} (what the "
                   "model expects and returns, how it was trained, its metrics), and every format is run on the "
                   "test split and compared with the Keras model. TFLite conversion takes a minute or more.")
        formats = tuple(f for f in FORMATS if f in st.session_state["rs_formats"])
        request = [str(run), run_version, list(formats)]
        if st.button("Build the export", key="rs_export_btn", disabled=not formats):
            st.session_state["rs_export_req"] = request
            st.session_state["rs_export_press"] = uuid.uuid4().hex  # each press exports anew
        if st.session_state.get("rs_export_req") != request:
            return
        try:
            with st.spinner("Exporting and checking…"):
                out = rw.export_zip(str(run), run_version, formats, name, ws_root, st.session_state["rs_export_press"])
        except TLCoreError as exc:
            st.session_state.pop("rs_export_req", None)
            show_error(exc)
            return
        checks_view(out)
        saved = Path(out["saved"])
        if saved.is_dir() and "keras" in out.get("formats", ()):  # it stays in the workspace: Predict lists it
            c1, c2 = st.columns([3, 1])
            c1.caption(f"Saved in {md_escape(saved)}.")
            c2.page_link(page("Predict").script, label="Try it on Predict", icon=":material/image_search:",
                         query_params={"model": export_key(saved.name)})
        elif saved.is_dir():  # Predict runs model.keras: an export without it is not listed there
            st.caption(f"Saved in {md_escape(saved)}. The Predict page runs the Keras file, so it does not list "
                       f"this export: add {md_escape(FORMAT_LABELS['keras'])} to the formats to try it there, or "
                       "try the run itself on Predict.")
        c1, c2 = st.columns(2)
        c1.download_button("Download the export (.zip)", data=out["zip"], file_name=f"{name}-export.zip",
                           mime="application/zip", key="rs_dl_export", on_click="ignore", type="primary",
                           icon=":material/download:")
        c2.download_button(card, data=out["card"], file_name=f"{name}-{card}",
                           mime="application/json", key="rs_dl_card", on_click="ignore")
        files = pd.DataFrame([{"file": f, "bytes": v.get("bytes")} for f, v in out["files"].items()])
        st.dataframe(files, hide_index=True, column_config={"bytes": st.column_config.NumberColumn(format="compact")})
