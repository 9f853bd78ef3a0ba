"""Datasets: add image datasets to the workspace, look at them, fix their problems, split them.

Thin: widgets in, ``tlcore.datasets`` does the work, cached reads come from
``tlui.data``. The selected dataset lives in ``st.query_params["dataset"]`` so a
link to the page shows the same dataset. User-controlled text (class and file
names, paths, messages quoting them) is shown as plain text, in tables, or
Markdown-escaped.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from tlcore import datasets as tds
from tlcore.config import SplitSpec
from tlcore.errors import TLCoreError
from tlcore.workspace import DatasetRecord, Workspace
from tlui import data
from tlui.common import md_escape, open_workspace, show_error, sidebar_nav, sidebar_workspace

SAMPLE_PX = 128
IMBALANCE_WARN = 3.0
DEFAULT_CLASSES_SHOWN = 5
OWNED_SOURCES = ("upload", "idx")  # folders the workbench created; removal may delete them


# ------------------------------------------------------------------- state
def init_state(names: list[str]) -> str | None:
    """Initialise every session-state key of this page; return the selected dataset."""
    ss = st.session_state
    defaults = {
        "ds_flash": [],
        "ds_n_samples": 8,
        "ds_sample_seed": 0,
        "ds_add_name": "",
        "ds_add_path": "",
        "ds_zip_name": "",
        "ds_fm_name": "fashion-mnist",
        "ds_fm_train": 500,
        "ds_fm_test": 100,
    }
    for key, value in defaults.items():
        ss.setdefault(key, value)
    pending = ss.pop("ds_pending_select", None)
    if pending in names:
        ss["ds_selected"] = pending
    if ss.pop("ds_clear_add_form", False):
        ss["ds_add_name"] = ss["ds_add_path"] = ss["ds_zip_name"] = ""
    if ss.get("ds_selected") not in names:
        wanted = st.query_params.get("dataset")
        if wanted in names:
            ss["ds_selected"] = wanted
        elif names:
            ss["ds_selected"] = tds.DEMO_NAME if tds.DEMO_NAME in names else names[0]
        else:
            ss["ds_selected"] = None
    return ss["ds_selected"]


def init_dataset_state(ws: Workspace, name: str, classes: list[str], probs: pd.DataFrame) -> None:
    """Initialise the per-dataset widget keys (classes shown, split settings, problem filters)."""
    ss = st.session_state
    key = f"ds_classes::{name}"
    if key in ss:
        ss[key] = [c for c in ss[key] if c in classes]  # a rescan may have dropped a class
    else:
        ss[key] = classes[:DEFAULT_CLASSES_SHOWN]
    if f"ds_split_val::{name}" not in ss:
        spec = tds.load_split_spec(ws, name)
        ss[f"ds_split_val::{name}"] = float(spec.val_fraction)
        ss[f"ds_split_test::{name}"] = float(spec.test_fraction)
        ss[f"ds_split_seed::{name}"] = int(spec.seed)
    for col, key in (("severity", f"ds_prob_sev::{name}"), ("kind", f"ds_prob_kind::{name}")):
        present = sorted(probs[col].astype(str).unique()) if len(probs) else []
        ss[key] = [v for v in ss[key] if v in present] if key in ss else present
    ss.setdefault(f"ds_prob_text::{name}", "")


def flash(kind: str, text: str) -> None:
    """Queue a message for the top of the page after the next rerun."""
    st.session_state["ds_flash"] = [*st.session_state.get("ds_flash", []), (kind, text)]


def show_flash() -> None:
    for kind, text in st.session_state.get("ds_flash", []):
        getattr(st, kind)(text)
    st.session_state["ds_flash"] = []


def _bump_seed() -> None:
    st.session_state["ds_sample_seed"] += 1


# ----------------------------------------------------------------- helpers
def progress_callback(bar) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` for tlcore that updates ``bar`` at most ~10 times a second."""
    last = [0.0]

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.1:
            return
        last[0] = now
        frac = min(1.0, done / total) if total else 1.0
        bar.progress(frac, text=f"Scanning: {done:,} of {total:,} files")

    return update


def scan_sentence(result) -> str:
    idx = result.index
    images = int(idx["usable"].sum()) if len(idx) else 0
    return (
        f"{images:,} images in {len(result.classes)} classes, {len(result.problems):,} problems. "
        "It is selected below."
    )


def name_from_file(filename: str) -> str:
    """A dataset name from an upload's file name: ``My pets (2).zip`` → ``My-pets-2``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(filename).stem).strip("-._")
    return stem[:64]


def plot_text(s: object) -> str:
    """Plotly renders a little HTML in labels; make user text show literally."""
    return html.escape(str(s), quote=False)


def _layout(title: str, x: str, y: str) -> dict:
    return {"title": {"text": title}, "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
            "margin": {"t": 40, "b": 40}, "bargap": 0.1}


def registry_table(records: list[DatasetRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": r.name,
                "images": r.num_images,
                "classes": r.num_classes,
                "problems": r.num_problems,
                "source": r.source,
                "layout": r.layout,
                "scanned": r.scanned_at or "",
                "path": r.path,
            }
            for r in records
        ],
        columns=["name", "images", "classes", "problems", "source", "layout", "scanned", "path"],
    )


# ------------------------------------------------------------ add section
def problems_warning(result, source: str) -> str | None:
    """What to do about the problems a new dataset's scan found, or None when there were none."""
    errors = int((result.problems["severity"] == "error").sum()) if len(result.problems) else 0
    warnings = len(result.problems) - errors
    if not errors and not warnings:
        return None
    if errors:
        found = (f"{errors:,} file(s) it cannot use (damaged, unreadable or not images), left out; "
                 "the good images were added")
        if warnings:
            found += f", with {warnings:,} warning(s)"
    else:
        found = f"{warnings:,} warning(s) (such as skipped non-image files or duplicates)"
    redo = ("remove this dataset, fix or delete those files in the archive and upload it again"
            if source == "upload" else "fix or delete those files in the folder, then press Rescan")
    return f"The scan found {found}. The Problems tab below names each file and what to do: {redo}."


def _added(name: str, result, what: str, source: str = "folder") -> None:
    flash("success", f"{what} {md_escape(name)}: " + scan_sentence(result))
    warning = problems_warning(result, source)
    if warning:
        flash("warning", warning)
    st.session_state["ds_pending_select"] = name
    st.session_state["ds_clear_add_form"] = True
    st.rerun()


def _run_add(name: str, label: str, verb: str, add, source: str = "folder") -> None:
    """Run one way of adding a dataset with a progress bar; report success or the error."""
    bar = st.progress(0.0, text=label)
    try:
        result = add(progress_callback(bar))
    except TLCoreError as exc:
        bar.empty()
        show_error(exc)
    else:
        _added(name, result, verb, source)


def add_from_folder(ws: Workspace) -> None:
    st.caption(
        "A folder with one sub-folder per class (photos/cat/\\*.jpg, photos/dog/\\*.jpg), or with "
        "train/ and val/ or test/ folders that hold the class folders. It must lie under one of "
        "these data roots:"
    )
    try:
        roots = ws.data_roots
    except TLCoreError as exc:
        show_error(exc)
        return
    st.code("\n".join(str(r) for r in roots), language=None)
    st.caption(
        "To allow another root, add it to the data\\_roots list in workspace.yaml, set "
        "TLCORE\\_DATA\\_ROOTS, or run `python -m tlcore datasets allow-root PATH`."
    )
    c1, c2 = st.columns([1, 2])
    c1.text_input("Name", key="ds_add_name", placeholder="pets",
                  help="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    c2.text_input("Folder", key="ds_add_path", placeholder=str(ws.root / "data" / "pets"))
    if st.button("Add and scan", key="ds_add_btn", type="primary"):
        name = st.session_state["ds_add_name"].strip()
        path = st.session_state["ds_add_path"].strip()
        _run_add(name, "Scanning…", "Added", lambda progress: tds.add_dataset(ws, name, path, progress=progress))


def add_from_zip(ws: Workspace) -> None:
    st.caption(
        "A .zip of a dataset folder (one sub-folder per class). It is extracted safely into the "
        "workspace's data folder and scanned."
    )
    upload = st.file_uploader("Zip archive", type=["zip"], key="ds_zip_file")
    st.text_input("Name", key="ds_zip_name", placeholder="defaults to the archive's name")
    if st.button("Upload and scan", key="ds_zip_btn", type="primary", disabled=upload is None):
        name = st.session_state["ds_zip_name"].strip() or name_from_file(upload.name)
        upload.seek(0)
        _run_add(name, "Extracting…", "Added the upload as",
                 lambda progress: tds.add_zip_dataset(ws, name, upload, progress=progress), source="upload")


def add_fashion_mnist(ws: Workspace, found: dict) -> None:
    folder = next(iter(found.values()))[0].parent
    st.caption(
        "Fashion-MNIST (MIT licence): 60,000 training and 10,000 test images of 10 clothing "
        "classes, 28×28 grayscale. Imported as a pre-split dataset (train/ and test/ folders) from:"
    )
    st.code(str(folder), language=None)
    c1, c2, c3 = st.columns(3)
    c1.text_input("Name", key="ds_fm_name")
    c2.number_input("Training images per class", min_value=0, max_value=6000, step=100, key="ds_fm_train",
                    help="0 imports all 6,000.")
    c3.number_input("Test images per class", min_value=0, max_value=1000, step=50, key="ds_fm_test",
                    help="0 imports all 1,000.")
    if st.button("Import", key="ds_fm_btn", type="primary"):
        ss = st.session_state
        name = ss["ds_fm_name"].strip()
        limits = {"train": int(ss["ds_fm_train"]), "test": int(ss["ds_fm_test"])}
        per_class = {k: v for k, v in limits.items() if v > 0} or None
        with st.spinner("Writing the images…"):
            _run_add(name, "Importing…", "Imported Fashion-MNIST as",
                     lambda progress: tds.add_fashion_mnist(ws, name, per_class=per_class, progress=progress))


def add_section(ws: Workspace, expanded: bool) -> None:
    with st.expander("Add a dataset", expanded=expanded, icon=":material/add:"):
        found = tds.find_fashion_mnist()
        labels = ["From a folder", "Upload a .zip"] + (["Import Fashion-MNIST"] if found else [])
        tabs = st.tabs(labels)
        with tabs[0]:
            add_from_folder(ws)
        with tabs[1]:
            add_from_zip(ws)
        if found:
            with tabs[2]:
                add_fashion_mnist(ws, found)


# ------------------------------------------------------- registered section
def registered_section(ws: Workspace, records: list[DatasetRecord], names: list[str]) -> DatasetRecord:
    st.subheader("Registered datasets")
    name = st.selectbox("Dataset", names, key="ds_selected")
    st.query_params["dataset"] = name
    st.dataframe(registry_table(records), hide_index=True)
    rec = next(r for r in records if r.name == name)

    c1, c2 = st.columns([1, 3])
    if c1.button("Rescan", key="ds_rescan_btn", help="Read the files that changed since the last scan."):
        bar = st.progress(0.0, text="Rescanning…")
        try:
            result = tds.rescan_dataset(ws, name, progress=progress_callback(bar))
        except TLCoreError as exc:
            bar.empty()
            show_error(exc)
        else:
            s = result.stats
            flash(
                "success",
                f"Rescanned {md_escape(name)}: {s.get('files_read', 0):,} files read, "
                f"{s.get('files_reused', 0):,} unchanged and reused, {len(result.problems):,} problems "
                f"({s.get('seconds', 0.0):.1f} s).",
            )
            st.rerun()

    with c2.expander("Remove this dataset"):
        owned = rec.source in OWNED_SOURCES
        st.caption(
            "Removing forgets the dataset's index, problem report and split settings. "
            + ("The workbench created its files; tick below to delete them too."
               if owned else "Its image folder is not touched.")
            + (" The demo stays removed from this workspace; bring it back with "
               "'python -m tlcore datasets restore-demo'."
               if rec.source == "demo" else "")
        )
        confirm = st.checkbox("I understand", key=f"ds_rm_confirm::{name}")
        delete_files = owned and st.checkbox("Also delete its files", key=f"ds_rm_files::{name}")
        if st.button("Remove", key="ds_rm_btn", disabled=not confirm):
            try:
                tds.remove_dataset(ws, name, delete_files=bool(delete_files))
            except TLCoreError as exc:
                show_error(exc)
            else:
                data.forget_dataset()
                rest = [n for n in names if n != name]
                if rest:
                    st.session_state["ds_pending_select"] = tds.DEMO_NAME if tds.DEMO_NAME in rest else rest[0]
                flash("success", f"Removed {md_escape(name)}" + (" and deleted its files." if delete_files else "."))
                st.rerun()
    return rec


# ------------------------------------------------------------ dataset tabs
def overview_tab(ov: dict, probs: pd.DataFrame) -> None:
    s = ov["summary"]
    m = st.columns(4)
    m[0].metric("Images", f"{s['num_images']:,}", help="Usable images (decoded without errors).")
    m[1].metric("Classes", len(s["class_counts"]))
    m[2].metric("Problems", f"{len(probs):,}", help="See the Problems tab.")
    m[3].metric("Unusable files", f"{s['num_unusable']:,}", help="Image files that cannot be used for training.")
    if not s["num_images"]:
        st.info("No usable images: see the Problems tab.")
        return

    ratio = s.get("imbalance_ratio")
    if ratio and ratio >= IMBALANCE_WARN:
        counts = s["class_counts"]
        big = max(counts, key=counts.get)
        small = min(counts, key=counts.get)
        st.warning(
            f"The classes are imbalanced: the largest, {md_escape(big)} ({counts[big]:,} images), has "
            f"{ratio:.1f}× the images of the smallest, {md_escape(small)} ({counts[small]:,}). "
            "Turn on class weights when training (class\\_weights), or collect more images of the small classes."
        )

    # graph_objects, not plotly.express: px spends ~90 ms per figure on every rerun, go ~3 ms.
    classes = ov["classes"]
    fig = go.Figure(
        go.Bar(x=[plot_text(c) for c in classes["class"]], y=classes["images"].tolist(),
               hovertemplate="%{x}: %{y:,} images<extra></extra>"),
        layout=_layout("Images per class", "class", "images"),
    )
    if len(classes) > 8:
        fig.update_xaxes(tickangle=-45)
    st.plotly_chart(fig, key="ds_fig_classes")

    c1, c2 = st.columns(2)
    sizes = ov["sizes"]
    counts = sizes["images"].to_numpy(dtype=float)
    marker_px = (6 + 24 * np.sqrt(counts / counts.max())).tolist() if len(counts) else []
    fig = go.Figure(
        go.Scatter(x=sizes["width"].tolist(), y=sizes["height"].tolist(), mode="markers",
                   marker={"size": marker_px, "opacity": 0.7}, customdata=sizes["images"].tolist(),
                   hovertemplate="%{x}×%{y} px: %{customdata:,} images<extra></extra>"),
        layout=_layout("Image sizes (marker area ∝ images)", "width (px)", "height (px)"),
    )
    c1.plotly_chart(fig, key="ds_fig_sizes")
    aspect = ov["aspect"]
    fig = go.Figure(
        go.Bar(x=((aspect["from"] + aspect["to"]) / 2).tolist(), y=aspect["images"].tolist(),
               width=(aspect["to"] - aspect["from"]).tolist(),
               customdata=list(zip(aspect["from"].tolist(), aspect["to"].tolist())),
               hovertemplate="%{customdata[0]:.2f}–%{customdata[1]:.2f}: %{y:,} images<extra></extra>"),
        layout=_layout("Aspect ratio", "width / height", "images"),
    )
    c2.plotly_chart(fig, key="ds_fig_aspect")

    wr, hr = s["width_range"], s["height_range"]
    st.caption(
        f"Median size {s['width_median']:.0f}×{s['height_median']:.0f} px (width {wr[0]}–{wr[1]}, "
        f"height {hr[0]}–{hr[1]}), median aspect {s['aspect_median']:.2f}, "
        f"{s['total_bytes'] / 1e6:,.1f} MB in all."
    )
    c1, c2 = st.columns(2)
    c1.dataframe(ov["modes"], hide_index=True)
    c2.dataframe(ov["formats"], hide_index=True)


def samples_tab(root: str, name: str, version: str, classes: list[str]) -> None:
    ss = st.session_state
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Classes", classes, key=f"ds_classes::{name}")
    n = c2.slider("Images per class", min_value=4, max_value=16, key="ds_n_samples")
    c3.button("Show other images", key="ds_shuffle_btn", on_click=_bump_seed)
    if not chosen:
        st.info("Pick one or more classes to see their images.")
        return
    picks = data.samples(root, name, version, tuple(chosen), int(n), int(ss["ds_sample_seed"]))
    for cls in chosen:
        pick = picks[cls]
        st.markdown(f"**{md_escape(cls)}** · {pick['total']:,} images")
        files = pick["files"]
        arrays = data.thumbs([p for _, p in files], SAMPLE_PX)
        shown = [(a, Path(rel).name) for a, (rel, _) in zip(arrays, files) if a is not None]
        if shown:
            st.image([a for a, _ in shown], caption=[md_escape(c) for _, c in shown], width=SAMPLE_PX)
        missing = len(files) - len(shown)
        if missing:
            st.caption(f"{missing} of these images could not be read: they changed since the scan. Rescan the dataset.")


def problems_tab(root: str, name: str, version: str, probs: pd.DataFrame) -> None:
    if probs.empty:
        st.success("The scan found no problems.")
        return
    per_kind = (
        probs.groupby(["kind", "severity"]).size().rename("count").reset_index()
        .sort_values(["severity", "count"], ascending=[True, False])
    )
    c1, c2 = st.columns([1, 3])
    c1.dataframe(per_kind, hide_index=True)
    with c2:
        f1, f2, f3 = st.columns(3)
        sev = f1.multiselect("Severity", sorted(probs["severity"].astype(str).unique()), key=f"ds_prob_sev::{name}")
        kinds = f2.multiselect("Kind", sorted(probs["kind"].astype(str).unique()), key=f"ds_prob_kind::{name}")
        text = f3.text_input("File name contains", key=f"ds_prob_text::{name}")
        view = probs[probs["severity"].isin(sev) & probs["kind"].isin(kinds)]
        if text.strip():
            view = view[view["relpath"].astype(str).str.contains(text.strip(), case=False, regex=False, na=False)]
        st.caption(f"{len(view):,} of {len(probs):,} problems shown.")
        st.dataframe(view, hide_index=True, column_order=["severity", "kind", "relpath", "message", "fix"])
        st.download_button(
            "Download the report (CSV)",
            data.problems_csv(root, name, version),
            file_name=f"{name}-problems.csv",
            mime="text/csv",
            key="ds_prob_csv",
            on_click="ignore",
        )


def split_tab(ws: Workspace, rec: DatasetRecord, root: str, version: str) -> None:
    name = rec.name
    saved = tds.load_split_spec(ws, name)
    if rec.layout == "presplit":
        st.info(
            "This dataset is pre-split: its train/, val/ and test/ folders decide each image's split. "
            "When it has no val/ folder, the validation share below is carved out of train/."
        )
    else:
        st.caption(
            "Each image's split follows from the seed and the image's content alone: the same settings always "
            "give the same split, adding images never moves the others, and duplicates stay together."
        )
    c1, c2, c3 = st.columns(3)
    val = c1.number_input("Validation fraction", min_value=0.0, max_value=0.9, step=0.05, format="%.2f",
                          key=f"ds_split_val::{name}")
    test = c2.number_input("Test fraction", min_value=0.0, max_value=0.9, step=0.05, format="%.2f",
                           key=f"ds_split_test::{name}")
    seed = c3.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=f"ds_split_seed::{name}")
    try:
        spec = SplitSpec(val_fraction=round(float(val), 4), test_fraction=round(float(test), 4), seed=int(seed))
    except TLCoreError as exc:
        show_error(exc)
        return
    table = data.split_table(root, name, version, spec.val_fraction, spec.test_fraction, spec.seed).copy()
    if len(table):
        table.loc["all classes"] = table.sum(axis=0)
    st.dataframe(table)
    if spec != saved:
        st.caption(
            f"Not saved: training uses the saved settings (validation {saved.val_fraction:.2f}, "
            f"test {saved.test_fraction:.2f}, seed {saved.seed})."
        )
    if st.button("Save split settings", key="ds_split_save", disabled=spec == saved):
        try:
            tds.save_split_spec(ws, name, spec)
        except TLCoreError as exc:
            show_error(exc)
        else:
            flash("success", f"Saved the split settings of {md_escape(name)}.")
            st.rerun()


def dataset_section(ws: Workspace, rec: DatasetRecord) -> None:
    root, name = str(ws.root), rec.name
    version = data.dataset_version(ws, rec)
    st.subheader("Selected dataset")
    st.text(f"{name} · {rec.source} · {rec.layout} · scanned {rec.scanned_at or 'never'}\n{rec.path}")
    try:
        ov = data.overview(root, name, version)
        probs = data.problems(root, name, version)
    except TLCoreError as exc:
        show_error(exc)
        st.caption("Rescan the dataset above, or remove it.")
        return
    classes = list(ov["summary"]["class_counts"])
    init_dataset_state(ws, name, classes, probs)
    t_over, t_samples, t_probs, t_split = st.tabs(["Overview", "Samples", f"Problems ({len(probs):,})", "Split"])
    with t_over:
        overview_tab(ov, probs)
    with t_samples:
        samples_tab(root, name, version, classes)
    with t_probs:
        problems_tab(root, name, version, probs)
    with t_split:
        split_tab(ws, rec, root, version)


# -------------------------------------------------------------------- page
def main() -> None:
    st.set_page_config(page_title="Datasets · Transfer-learning workbench", layout="wide")
    sidebar_nav()
    ws = open_workspace()
    sidebar_workspace(ws)
    st.title("Datasets")
    try:
        data.ensure_demo_registered(ws)
    except TLCoreError as exc:
        show_error(exc)
    try:
        records = ws.list_datasets()
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
    names = [r.name for r in records]
    selected = init_state(names)
    show_flash()

    add_section(ws, expanded=len(names) <= 1)
    if selected is None:
        st.info("No datasets are registered yet: add one above.")
        return
    try:
        rec = registered_section(ws, records, names)
        dataset_section(ws, ws.get_dataset(rec.name))
    except TLCoreError as exc:
        show_error(exc)


main()
