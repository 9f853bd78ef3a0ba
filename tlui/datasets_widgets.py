"""Session state, button actions and charts of the Datasets page.

- ``init_state`` and ``init_dataset_state`` set every ``ds_*`` session key in one place: the
  page-wide ones, and the per-dataset widget keys (classes shown, split settings, problem
  filters), kept valid when a rescan drops a class or a problem kind.
- ``run_add``, ``rescan``, ``save_split`` and ``remove`` are what the page's buttons do: the work in
  ``tlcore.datasets`` behind a progress bar, then a banner (``tlui.place.flash``) and a rerun, or the
  error in a box (a removal refused while a job uses the dataset too; ``in_use_note`` names those
  users beside the Remove button before any click). After an add, the add form closes
  (``ADD_OPEN``); after a removal, the Remove expander (``REMOVE_OPEN``). ``TAB`` keeps the
  dataset's open tab, ``ADD_TAB`` the add form's (``tlui.place``).
- ``class_chart``, ``size_chart`` and ``aspect_chart`` are the Overview tab's figures, over
  the small tables of ``tlui.data.overview``; ``imbalance_warning`` is its advice.
- The Problems tab's report: ``COUNTS_COLUMNS`` and ``PROBLEM_COLUMNS`` lay out its tables so
  what to do sits beside each file, not off-screen after the long message; ``copies_view``
  shows its duplicates and label conflicts as groups, every copy of an image side by side.

The selected dataset is ``ds_selected``, mirrored in ``st.query_params["dataset"]`` by the page.
The page's other choices are drawn with ``persist_state=place.KEPT`` ("session"): Streamlit keeps them
while the user is on another page (never ``ds_selected``: the URL carries it, so that a link naming
another dataset wins). ``remove`` forgets the removed dataset's ones (``forget_dataset_state``), so
that a dataset added later under its name starts afresh.
Everything here may import streamlit; the sentences about a scan come from ``tlcore.datasets``
(numbers and fixed words); names the user chose are Markdown-escaped here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from tlcore import datasets as tds
from tlcore.config import SplitSpec
from tlcore.dataset_users import dataset_users, how_to_stop, remove_if_unused, users_text
from tlcore.datasets import ScanResult
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui import data, fields, place
from tlui import fmt as tf
from tlui.common import md_escape, show_error

__all__ = [
    "ADD_OPEN",
    "ADD_TAB",
    "REMOVE_OPEN",
    "TAB",
    "default_dataset",
    "init_state",
    "init_dataset_state",
    "forget_dataset_state",
    "next_samples",
    "run_add",
    "rescan",
    "save_split",
    "in_use_note",
    "remove",
    "class_chart",
    "size_chart",
    "aspect_chart",
    "imbalance_warning",
    "THUMB_PX",
    "GROUPS_PER_PAGE",
    "COUNTS_COLUMNS",
    "PROBLEM_ORDER",
    "PROBLEM_COLUMNS",
    "copies_view",
]

# The session keys of the page's expanders and tabs (tlui.place): open or not, the open tab's index.
ADD_OPEN, ADD_TAB, REMOVE_OPEN, TAB = "ds_add_open", "ds_add_tab", "ds_rm_open", "ds_tab"
DEFAULT_CLASSES_SHOWN = 5
IMBALANCE_WARN = 3.0  # largest / smallest class size from which the Overview warns


# ------------------------------------------------------------------- state
def default_dataset(names: list[str]) -> str:
    """The dataset the page shows for a URL without ``?dataset=``: the demo, else the first."""
    return tds.DEMO_NAME if tds.DEMO_NAME in names else names[0]


def init_state(names: list[str]) -> str | None:
    """Initialise the page-wide session keys; return the selected dataset (None when there is none).

    A dataset just added or left after a removal (``ds_pending_select``) wins, then the one
    already selected, then ``?dataset=``, then the demo, then the first.
    """
    ss = st.session_state
    defaults = {
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
            ss["ds_selected"] = default_dataset(names)
            if wanted:  # a stale or mistyped link: said, as the other pages do
                place.flash("warning", f"There is no dataset named {md_escape(wanted)} in this workspace; "
                                       f"showing {md_escape(ss['ds_selected'])}.")
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
    ss.setdefault(f"ds_copies_page::{name}", 1)


def forget_dataset_state(name: str) -> None:
    """Drop the session keys of dataset ``name``'s widgets and sections (``ds_*::name``, ``aud_*::name``,
    ``aud_sim::name::audit``, ``aud_to::list::name::file``): its choices are kept across pages (``tlui.place.KEPT``),
    so they would otherwise greet a dataset added later under the same name with the removed one's
    classes, filters and split settings."""
    ss = st.session_state
    for key in [k for k in ss if isinstance(k, str) and k.startswith(("ds_", "aud_"))]:
        parts = key.split("::")
        if len(parts) > 1 and (parts[1] == name or (parts[0] == "aud_to" and parts[2:3] == [name])):
            del ss[key]


def next_samples() -> None:
    """The Samples tab's "Show other images": a new seed for the random pick."""
    st.session_state["ds_sample_seed"] += 1


# ----------------------------------------------------------------- actions
def _progress(bar) -> Callable[[int, int], None]:
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


def run_add(name: str, label: str, verb: str, add: Callable[..., ScanResult], source: str = "folder") -> None:
    """Run one way of adding a dataset, ``add(progress)``, behind a progress bar titled ``label``.

    On success: say "{verb} {name}: what the scan found", warn about its problems, select the
    new dataset, clear the add form and rerun. On failure: the error, in a box.
    """
    bar = st.progress(0.0, text=label)
    try:
        result = add(_progress(bar))
    except TLCoreError as exc:
        bar.empty()
        show_error(exc)
        return
    # The sentences about the scan hold numbers and fixed words only; the name is the user's.
    place.flash("success", f"{verb} {md_escape(name)}: {tds.scan_summary(result)} It is selected below.")
    advice = tds.problems_advice(result, source)
    if advice:
        place.flash("warning", advice)
    st.session_state["ds_pending_select"] = name
    st.session_state[ADD_OPEN] = False
    st.session_state["ds_clear_add_form"] = True
    st.rerun()


def rescan(ws: Workspace, name: str) -> None:
    """Rescan ``name`` behind a progress bar; report the files read and reused, and rerun."""
    bar = st.progress(0.0, text="Rescanning…")
    try:
        result = tds.rescan_dataset(ws, name, progress=_progress(bar))
    except TLCoreError as exc:
        bar.empty()
        show_error(exc)
        return
    s = result.stats
    place.flash(
        "success",
        f"Rescanned {md_escape(name)}: {s.get('files_read', 0):,} files read, "
        f"{s.get('files_reused', 0):,} unchanged and reused, {len(result.problems):,} problems "
        f"({s.get('seconds', 0.0):.1f} s).",
    )
    st.rerun()


def save_split(ws: Workspace, name: str, spec: SplitSpec) -> None:
    """Save ``spec`` as the split settings of ``name``, say so and rerun."""
    try:
        tds.save_split_spec(ws, name, spec)
    except TLCoreError as exc:
        show_error(exc)
        return
    place.flash("success", f"Saved the split settings of {md_escape(name)}.")
    st.rerun()


def in_use_note(ws: Workspace, name: str) -> None:
    """Before the Remove click: a warning naming what on this machine uses ``name`` now (running
    training jobs, search studies with live workers, scouts, audits: ``tlcore.dataset_users``, a
    few milliseconds), since removing is refused while they run; nothing when none does."""
    users = dataset_users(ws, name)
    if not users:
        return
    one = len(users) == 1
    st.warning(md_escape(
        f"In use now: {users_text(users)}. Removing the dataset is refused until {'it ends' if one else 'they end'}"
        f" (it would make {'it' if one else 'them'} fail). To end {'it' if one else 'them'}: "
        + "; ".join(how_to_stop(users)) + "."), icon=":material/lock:")


def remove(ws: Workspace, name: str, names: list[str], delete_files: bool) -> None:
    """Remove ``name`` (and its files, when the workbench made them and ``delete_files``); select
    the demo or the first one left, drop the cached data, and rerun."""
    try:
        remove_if_unused(ws, name, delete_files=delete_files)
    except TLCoreError as exc:
        show_error(exc)
        return
    data.forget_dataset()
    forget_dataset_state(name)
    st.session_state[REMOVE_OPEN] = False
    rest = [n for n in names if n != name]
    if rest:
        st.session_state["ds_pending_select"] = tds.DEMO_NAME if tds.DEMO_NAME in rest else rest[0]
    place.flash("success", f"Removed {md_escape(name)}" + (" and deleted its files." if delete_files else "."))
    st.rerun()


# ------------------------------------------------------------------ charts
# graph_objects, not plotly.express: px spends ~90 ms per figure on every rerun, go ~3 ms.
def _layout(title: str, x: str, y: str) -> dict:
    return {"title": {"text": title}, "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
            "margin": {"t": 40, "b": 40}, "bargap": 0.1}


def class_chart(classes: pd.DataFrame) -> go.Figure:
    """Images per class: a bar per row of ``classes`` (class, images)."""
    fig = go.Figure(
        go.Bar(x=[tf.plot_text(c) for c in classes["class"]], y=classes["images"].tolist(),
               hovertemplate="%{x}: %{y:,} images<extra></extra>"),
        layout=_layout("Images per class", "class", "images"),
    )
    if len(classes) > 8:
        fig.update_xaxes(tickangle=-45)
    return fig


def size_chart(sizes: pd.DataFrame) -> go.Figure:
    """Image sizes: a marker per distinct (width, height), its area growing with its images."""
    counts = sizes["images"].to_numpy(dtype=float)
    marker_px = (6 + 24 * np.sqrt(counts / counts.max())).tolist() if len(counts) else []
    return go.Figure(
        go.Scatter(x=sizes["width"].tolist(), y=sizes["height"].tolist(), mode="markers",
                   marker={"size": marker_px, "opacity": 0.7}, customdata=sizes["images"].tolist(),
                   hovertemplate="%{x}×%{y} px: %{customdata:,} images<extra></extra>"),
        layout=_layout("Image sizes (marker area ∝ images)", "width (px)", "height (px)"),
    )


def aspect_chart(aspect: pd.DataFrame) -> go.Figure:
    """The aspect-ratio histogram: a bar per bin of ``aspect`` (from, to, images)."""
    return go.Figure(
        go.Bar(x=((aspect["from"] + aspect["to"]) / 2).tolist(), y=aspect["images"].tolist(),
               width=(aspect["to"] - aspect["from"]).tolist(),
               customdata=list(zip(aspect["from"].tolist(), aspect["to"].tolist())),
               hovertemplate="%{customdata[0]:.2f}–%{customdata[1]:.2f}: %{y:,} images<extra></extra>"),
        layout=_layout("Aspect ratio", "width / height", "images"),
    )


def imbalance_warning(summary: dict) -> str | None:
    """Markdown advice when the largest class has ``IMBALANCE_WARN``× the images of the smallest."""
    ratio = summary.get("imbalance_ratio")
    if not ratio or ratio < IMBALANCE_WARN:
        return None
    counts = summary["class_counts"]
    big, small = max(counts, key=counts.get), min(counts, key=counts.get)
    return (
        f"The classes are imbalanced: the largest, {md_escape(big)} ({counts[big]:,} images), has "
        f"{ratio:.1f}× the images of the smallest, {md_escape(small)} ({counts[small]:,}). "
        "Turn on class weights when training (class\\_weights), or collect more images of the small classes."
    )


# ---------------------------------------------------------- problem report
THUMB_PX = 128  # the letter-boxed thumbnails of the identical copies (tlui.data.thumb)
GROUPS_PER_PAGE = 8  # groups of identical copies drawn at a time: a large report stays fast
COPIES_SHOWN = 8  # thumbnails per group; the other copies are counted
COUNTS_COLUMNS = {"fix": st.column_config.TextColumn("what to do", width="large")}
PROBLEM_ORDER = ["severity", "kind", "relpath", "fix", "message"]
PROBLEM_COLUMNS = {
    "severity": st.column_config.TextColumn(width="small"),
    "relpath": st.column_config.TextColumn("file", width="medium"),
    "fix": st.column_config.TextColumn("what to do", width="large"),
    "message": st.column_config.TextColumn(width="large"),
}


def copies_view(root: str, name: str, version: str, view: pd.DataFrame) -> None:
    """The duplicates and label conflicts among the problems shown (``view``): a bordered group per
    image, what to do about it above its copies side by side, each a ``THUMB_PX`` letter-boxed
    thumbnail captioned with its path and class; label conflicts first, ``GROUPS_PER_PAGE`` groups a
    page (``ds_copies_page::<name>``)."""
    shown = view.loc[view["kind"].isin(tds.COPY_KINDS), "relpath"]
    if shown.empty:
        return
    copies = data.copies(root, name, version)
    ids = copies.loc[copies["relpath"].isin(shown), "group"].unique().tolist()
    if not ids:
        return
    st.markdown(f"**Identical images**: {len(ids):,} images saved more than once, each group below one "
                "image with what to do about its copies.")
    start = fields.page_start(len(ids), GROUPS_PER_PAGE, f"ds_copies_page::{name}", where=st)
    for gid in ids[start:start + GROUPS_PER_PAGE]:
        _copy_group(copies[copies["group"] == gid])


def _copy_group(group: pd.DataFrame) -> None:
    """One image's copies: what they are and what to do, then their thumbnails in a row."""
    classes = sorted(group["label"].astype(str).unique())
    if group["kind"].iloc[0] == "conflicting_labels":
        head = (f"**Label conflict**: one image in {len(group):,} files, in classes "
                + ", ".join(md_escape(c) for c in classes))
    else:
        head = f"**Duplicate**: one image in {len(group):,} files of class {md_escape(classes[0])}"
    fix = str(group["fix"].iloc[0])
    with st.container(border=True):
        st.markdown(head + (f". **What to do**: {md_escape(fix)}" if fix else "."))
        first = group.head(COPIES_SHOWN)
        arrays = data.thumbs(first["path"].astype(str).tolist(), THUMB_PX)
        pics = [(a, f"{rel} · class {label}") for a, rel, label in zip(arrays, first["relpath"], first["label"])
                if a is not None]
        if pics:
            st.image([a for a, _ in pics], caption=[md_escape(c) for _, c in pics], width=THUMB_PX)
        notes = []
        if len(group) > len(first):
            notes.append(f"{len(group) - len(first):,} more copies are not shown.")
        if len(pics) < len(first):
            notes.append(f"{len(first) - len(pics):,} of these files could not be read: they changed since the "
                         "scan. Rescan the dataset.")
        if notes:
            st.caption(" ".join(notes))
