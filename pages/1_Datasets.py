"""Datasets: add image datasets to the workspace, look at them, fix their problems, split them.

The page's layout, top to bottom: add a dataset (folder, zip upload, Fashion-MNIST), the
registered datasets (select, rescan, remove), then the selected one's Overview, Samples,
Problems, Split and Audit tabs (``tlui.audit_widgets``: suspected label errors, near-duplicates,
photo quality, and the keep / relabel / exclude decisions). ``tlcore.datasets`` does the work
and words what a scan found; ``tlui.data`` caches the reads; ``tlui.datasets_widgets`` holds
the session state, what the buttons do and the charts. The selected dataset lives in
``st.query_params["dataset"]`` so a link to the page shows the same dataset; the other choices (the
add forms' fields, the classes shown, the problem filters, the split settings, the audit's) are
drawn with ``persist_state=place.KEPT``, so they are still there after a visit to another page.
A confirmation ("I understand", "Also delete its files") is not kept: it is asked again. User-controlled
text (class and file names, paths, messages quoting them) is shown as plain text, in tables,
or Markdown-escaped.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from tlcore import datasets as tds
from tlcore.config import SplitSpec
from tlcore.errors import TLCoreError
from tlcore.workspace import DatasetRecord, Workspace
from tlui import audit_widgets as aw
from tlui import data, fields, place
from tlui import datasets_widgets as dw
from tlui.common import md_escape, show_error, workspace

SAMPLE_PX = 128


# ------------------------------------------------------------ add section
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
    c1.text_input("Name", key="ds_add_name", placeholder="pets", persist_state=place.KEPT,
                  help="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    c2.text_input("Folder", key="ds_add_path", placeholder=str(ws.root / "data" / "pets"), persist_state=place.KEPT)
    if st.button("Add and scan", key="ds_add_btn", type="primary"):
        name = st.session_state["ds_add_name"].strip()
        path = st.session_state["ds_add_path"].strip()
        dw.run_add(name, "Scanning…", "Added", lambda progress: tds.add_dataset(ws, name, path, progress=progress))


def add_from_zip(ws: Workspace) -> None:
    st.caption(
        "A .zip of a dataset folder (one sub-folder per class). It is extracted safely into the "
        "workspace's data folder and scanned."
    )
    upload = place.uploader("Zip archive", type=["zip"], key="ds_zip_file")
    st.text_input("Name", key="ds_zip_name", placeholder="defaults to the archive's name", persist_state=place.KEPT)
    if st.button("Upload and scan", key="ds_zip_btn", type="primary", disabled=upload is None):
        name = st.session_state["ds_zip_name"].strip() or tds.name_from_filename(upload.name)
        upload.seek(0)
        dw.run_add(name, "Extracting…", "Added the upload as",
                   lambda progress: tds.add_zip_dataset(ws, name, upload, progress=progress), source="upload")


def add_fashion_mnist(ws: Workspace, found: dict) -> None:
    folder = next(iter(found.values()))[0].parent
    st.caption(
        "Fashion-MNIST (MIT licence): 60,000 training and 10,000 test images of 10 clothing "
        "classes, 28×28 grayscale. Imported as a pre-split dataset (train/ and test/ folders) from:"
    )
    st.code(str(folder), language=None)
    c1, c2, c3 = st.columns(3)
    c1.text_input("Name", key="ds_fm_name", persist_state=place.KEPT)
    fields.number(c2, "Training images per class", lo=0, hi=6000, step=100, key="ds_fm_train",
                  help="0 imports all 6,000.", persist_state=place.KEPT)
    fields.number(c3, "Test images per class", lo=0, hi=1000, step=50, key="ds_fm_test",
                  help="0 imports all 1,000.", persist_state=place.KEPT)
    if st.button("Import", key="ds_fm_btn", type="primary"):
        if fields.refused("ds_fm_", "Nothing was imported."):
            return
        ss = st.session_state
        name = ss["ds_fm_name"].strip()
        limits = {"train": int(ss["ds_fm_train"]), "test": int(ss["ds_fm_test"])}
        per_class = {k: v for k, v in limits.items() if v > 0} or None
        with st.spinner("Writing the images…"):
            dw.run_add(name, "Importing…", "Imported Fashion-MNIST as",
                       lambda progress: tds.add_fashion_mnist(ws, name, per_class=per_class, progress=progress))


def add_section(ws: Workspace, expanded: bool) -> None:
    with place.expander("Add a dataset", key=dw.ADD_OPEN, expanded=expanded, icon=":material/add:"):
        found = tds.find_fashion_mnist()
        labels = ["From a folder", "Upload a .zip"] + (["Import Fashion-MNIST"] if found else [])
        tabs = place.tabs(labels, key=dw.ADD_TAB)
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
    place.keep_in_url("dataset", name, dw.default_dataset(names))
    st.dataframe(tds.registry_table(records), hide_index=True)
    rec = next(r for r in records if r.name == name)

    c1, c2 = st.columns([1, 3])
    if c1.button("Rescan", key="ds_rescan_btn", help="Read the files that changed since the last scan."):
        dw.rescan(ws, name)
    with place.expander("Remove this dataset", key=dw.REMOVE_OPEN, where=c2):
        owned = rec.source in tds.OWNED_SOURCES
        kept = tds.kept_with_dataset(ws, name)
        st.caption(
            "Removing forgets the dataset's index, problem report and split settings"
            + (f", and deletes its {md_escape(kept)} (to point it at a moved folder and keep them: "
               f"python -m tlcore datasets add {md_escape(name)} NEW_PATH --overwrite). " if kept else ". ")
            + ("The workbench created its files; tick below to delete them too."
               if owned else "Its image folder is not touched.")
            + (" The demo stays removed from this workspace; bring it back with "
               "'python -m tlcore datasets restore-demo'."
               if rec.source == "demo" else "")
        )
        dw.in_use_note(ws, name)
        confirm = st.checkbox("I understand", key=f"ds_rm_confirm::{name}")
        delete_files = owned and st.checkbox("Also delete its files", key=f"ds_rm_files::{name}")
        if st.button("Remove", key="ds_rm_btn", disabled=not confirm):
            dw.remove(ws, name, names, delete_files=bool(delete_files))
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
    warning = dw.imbalance_warning(s)
    if warning:
        st.warning(warning)
    st.plotly_chart(dw.class_chart(ov["classes"]), key="ds_fig_classes")
    c1, c2 = st.columns(2)
    c1.plotly_chart(dw.size_chart(ov["sizes"]), key="ds_fig_sizes")
    c2.plotly_chart(dw.aspect_chart(ov["aspect"]), key="ds_fig_aspect")
    wr, hr = s["width_range"], s["height_range"]
    st.caption(
        f"Median size {s['width_median']:.0f}×{s['height_median']:.0f} px (width {wr[0]}–{wr[1]}, "
        f"height {hr[0]}–{hr[1]}), median aspect {s['aspect_median']:.2f}, "
        f"{s['total_bytes'] / 1e6:,.1f} MB in all."
    )
    c1, c2 = st.columns(2)
    c1.dataframe(ov["modes"], hide_index=True)
    c2.dataframe(ov["formats"], hide_index=True)


def samples_tab(root: str, name: str, version: str, classes: list[str], *, folder_gone: bool = False) -> None:
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Classes", classes, key=f"ds_classes::{name}", persist_state=place.KEPT)
    n = c2.slider("Images per class", min_value=4, max_value=16, key="ds_n_samples", persist_state=place.KEPT)
    c3.button("Show other images", key="ds_shuffle_btn", on_click=dw.next_samples)
    if not chosen:
        st.info("Pick one or more classes to see their images.")
        return
    picks = data.samples(root, name, version, tuple(chosen), int(n), int(st.session_state["ds_sample_seed"]))
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
            st.caption(f"{missing} of these images could not be read: the dataset's folder is missing (see above)."
                       if folder_gone else
                       f"{missing} of these images could not be read: they changed since the scan. Rescan the dataset.")


def problems_tab(root: str, name: str, version: str, probs: pd.DataFrame) -> None:
    if probs.empty:
        st.success("The scan found no problems.")
    else:
        scan_problems(root, name, version, probs)
    aw.problems_near_duplicates(Workspace(root), name)


def scan_problems(root: str, name: str, version: str, probs: pd.DataFrame) -> None:
    st.dataframe(tds.problem_counts(probs), hide_index=True, column_config=dw.COUNTS_COLUMNS)
    f1, f2, f3 = st.columns(3)
    sev = f1.multiselect("Severity", sorted(probs["severity"].astype(str).unique()), key=f"ds_prob_sev::{name}",
                         persist_state=place.KEPT)
    kinds = f2.multiselect("Kind", sorted(probs["kind"].astype(str).unique()), key=f"ds_prob_kind::{name}",
                           persist_state=place.KEPT)
    text = f3.text_input("File name contains", key=f"ds_prob_text::{name}", persist_state=place.KEPT)
    view = tds.filter_problems(probs, sev, kinds, text)
    st.caption(f"{len(view):,} of {len(probs):,} problems shown.")
    st.dataframe(view, hide_index=True, column_order=dw.PROBLEM_ORDER, column_config=dw.PROBLEM_COLUMNS)
    st.download_button("Download the report (CSV)", data.problems_csv(root, name, version),
                       file_name=f"{name}-problems.csv", mime="text/csv", key="ds_prob_csv", on_click="ignore")
    dw.copies_view(root, name, version, view)


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
    split_fields = (("Validation fraction", 0.0, 0.9, "val", {"step": 0.05, "format": "%.2f"}),
                    ("Test fraction", 0.0, 0.9, "test", {"step": 0.05, "format": "%.2f"}),
                    ("Seed", 0, 2**31 - 1, "seed", {"step": 1}))
    val, test, seed = values = [fields.number(c, label, lo=lo, hi=hi, key=f"ds_split_{k}::{name}",
                                              persist_state=place.KEPT, **kw)
                                for c, (label, lo, hi, k, kw) in zip(st.columns(3), split_fields)]
    if any(fields.range_problem(label, v, lo, hi) for v, (label, lo, hi, _, _) in zip(values, split_fields)):
        st.caption("Nothing is previewed or saved while a field above is out of range.")  # the field says why
        return
    if round(float(val) + float(test), 4) >= 1:  # in the fields' words (SplitSpec says val_fraction + ...)
        st.error(f"Validation fraction + test fraction is {float(val) + float(test):.2f}: it must stay below 1, so "
                 "that some images are left to train on. Lower one of them.", icon=":material/error:")
        return
    try:
        spec = SplitSpec(val_fraction=round(float(val), 4), test_fraction=round(float(test), 4), seed=int(seed))
    except TLCoreError as exc:
        show_error(exc)
        return
    try:
        table = data.split_table(root, name, version, spec.val_fraction, spec.test_fraction, spec.seed,
                                 data.decisions_version(root, name)).copy()
    except TLCoreError as exc:  # a corrupt override manifest: training refuses it too
        show_error(exc)
        return
    if len(table):
        table.loc["all classes"] = table.sum(axis=0)
    st.dataframe(table)
    if spec != saved:
        st.caption(
            f"Not saved: training uses the saved settings (validation {saved.val_fraction:.2f}, "
            f"test {saved.test_fraction:.2f}, seed {saved.seed})."
        )
    if st.button("Save split settings", key="ds_split_save", disabled=spec == saved):
        dw.save_split(ws, name, spec)


def dataset_section(ws: Workspace, rec: DatasetRecord) -> None:
    root, name = str(ws.root), rec.name
    version = data.dataset_version(ws, rec)
    st.subheader("Selected dataset")
    st.text(f"{name} · {rec.source} · {rec.layout} · scanned {rec.scanned_at or 'never'}\n{rec.path}")
    gone = tds.folder_missing(rec, then="What is shown below is its last scan; its images cannot be shown, trained "
                                    "on or rescanned.")
    folder_gone = gone is not None
    if gone is not None:  # say why before "could not be read"
        st.warning(md_escape(f"{gone.message} {gone.fix}"), icon=":material/folder_off:")
    try:
        ov = data.overview(root, name, version)
        probs = data.problems(root, name, version)
    except TLCoreError as exc:
        show_error(exc)
        st.caption("Rescan the dataset above, or remove it.")
        return
    classes = list(ov["summary"]["class_counts"])
    dw.init_dataset_state(ws, name, classes, probs)
    t_over, t_samples, t_probs, t_split, t_audit = place.tabs(
        ["Overview", "Samples", f"Problems ({len(probs):,})", "Split", "Audit"], key=dw.TAB)
    with t_over:
        overview_tab(ov, probs)
    with t_samples:
        samples_tab(root, name, version, classes, folder_gone=folder_gone)
    with t_probs:
        problems_tab(root, name, version, probs)
    with t_split:
        split_tab(ws, rec, root, version)
    with t_audit:
        aw.audit_tab(ws, name, version, classes)


# -------------------------------------------------------------------- page
def main() -> None:
    ws = workspace()
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
    selected = dw.init_state(names)
    place.banners()

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
