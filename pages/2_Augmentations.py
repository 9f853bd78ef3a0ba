"""Augmentations: start from a preset or a saved pipeline, edit its steps, preview it, save it.

The page's layout: on the left the image to preview on (a dataset image or an upload) and the
pipeline's steps; on the right the preview; below, the pipeline serialized and the save form.
The catalogue, validation, previews and storage are ``tlcore.augment``; the editor's session
state and the buttons' callbacks are ``tlui.augment_editor``; the widgets for catalogue
parameters and the cached image loaders are ``tlui.augment_widgets``. The image, the preview's
settings, the transform to add and the name to save under are drawn with ``persist_state=place.KEPT``,
so they are still there after a visit to another page; the pipeline being edited is kept by the
editor (``aug_steps``), the one started from by the URL, and "Overwrite" is asked again. User-controlled text
(dataset, class and file names, pipeline names) appears only in selectboxes, code blocks or
Markdown-escaped.
"""

from __future__ import annotations

import json
import os

import numpy as np
import streamlit as st

from tlcore import augment as au
from tlcore import datasets as tds
from tlcore.config import RESIZE_MODES, RESIZE_RULES
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui import augment_editor as ed
from tlui import augment_widgets as aw
from tlui import data, fields, place
from tlui.common import md_escape, show_error, workspace

N_RANGE = (4, 24)
PREVIEW_SIZES = (96, 128, 160, 192, 224, 256, 299, 320, 384, 448, 512)
PER_ROW = 5
MAX_LISTED = 300  # images offered in the picker per class (evenly spread over the sorted list)
ALL_CLASSES = "(all classes)"
SOURCE_DATASET, SOURCE_UPLOAD = "A dataset image", "Upload an image"


# ------------------------------------------------------------------- image
def dataset_image(ws: Workspace, names: list[str], size: int, mode: str) -> tuple[np.ndarray | None, str]:
    """Pick a dataset, a class and an image; return it decoded and resized, and its name."""
    ss = st.session_state
    if ss.get("aug_ds") not in names:
        ss["aug_ds"] = names[0]
    name = st.selectbox("Dataset", names, key="aug_ds", persist_state=place.KEPT)
    try:
        rec = ws.get_dataset(name)
        idx = data.index(str(ws.root), name, data.dataset_version(ws, rec))
    except TLCoreError as exc:
        show_error(exc)
        st.caption("Scan the dataset on the Datasets page, or upload an image instead.")
        return None, ""
    usable = idx[idx["usable"].astype(bool)] if len(idx) else idx
    if not len(usable):
        st.warning("This dataset has no usable images. Pick another one or upload an image.")
        return None, ""
    classes = sorted(usable["label"].astype(str).unique().tolist())
    cls = st.selectbox("Class", [ALL_CLASSES, *classes], key=f"aug_cls::{name}", persist_state=place.KEPT)
    rows = usable if cls == ALL_CLASSES else usable[usable["label"].astype(str) == cls]
    paths = dict(zip(rows["relpath"].astype(str), rows["path"].astype(str)))
    listed = ed.spread(sorted(paths), MAX_LISTED)
    key = f"aug_img::{name}::{cls}"
    if ss.get(key) not in listed:
        ss[key] = listed[0]
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    relpath = c1.selectbox("Image", listed, key=key, persist_state=place.KEPT)
    c2.button("Random", key=f"aug_rand::{name}::{cls}", on_click=ed.on_random_image, args=(key, listed),
              help="Pick a random image of this class.", icon=":material/casino:")
    if len(paths) > len(listed):
        st.caption(f"{len(listed)} of {len(paths):,} images are offered, spread evenly over the list.")
    path = paths[relpath]
    try:
        mtime = os.stat(path).st_mtime_ns
        return aw.source_from_file(path, mtime, size, mode), relpath
    except OSError as exc:
        gone = tds.folder_missing(rec, then=f"{relpath} cannot be read: pick another dataset or upload an image.")
        if gone is not None:  # "cannot read" alone sent users to rescan, which is refused then
            show_error(gone)
        else:
            st.error(md_escape(f"Cannot read {relpath}: {exc.strerror or exc}. The file changed since the last "
                               "scan: rescan the dataset on the Datasets page."))
    except TLCoreError as exc:
        show_error(exc)
    return None, ""


def uploaded_image(size: int, mode: str) -> tuple[np.ndarray | None, str]:
    up = place.uploader("Upload an image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"],
                        key="aug_upload")  # every format a dataset takes
    if up is None:
        st.info("Upload a photo (PNG, JPEG, WebP, BMP, GIF or TIFF) to see the pipeline applied to it.")
        return None, ""
    try:
        return aw.source_from_upload(up.getvalue(), size, mode), up.name
    except TLCoreError as exc:
        st.error(md_escape(f"{up.name}: {exc}"))
        return None, ""


def image_section(ws: Workspace) -> tuple[np.ndarray | None, str]:
    st.subheader("Image")
    try:
        names = [r.name for r in ws.list_datasets()]
    except TLCoreError as exc:
        show_error(exc)
        names = []
    c1, c2 = st.columns(2)
    size = c1.select_slider("Input size (pixels)", options=list(PREVIEW_SIZES), key="aug_size", persist_state=place.KEPT,
                            help="Images are resized to the model's input size before augmentation, as in training.")
    mode = c2.selectbox("Resize mode", list(RESIZE_MODES), key="aug_mode", persist_state=place.KEPT,
                        help="; ".join(f"{m}: {rule}" for m, rule in RESIZE_RULES.items()) + ".")
    if not names:
        st.info("No datasets are registered yet. Add one on the Datasets page, or upload an image below.")
        return uploaded_image(size, mode)
    source = st.radio("Preview on", [SOURCE_DATASET, SOURCE_UPLOAD], key="aug_img_src", horizontal=True,
                      persist_state=place.KEPT)
    if source == SOURCE_UPLOAD:
        return uploaded_image(size, mode)
    return dataset_image(ws, names, size, mode)


# ---------------------------------------------------------------- pipeline
def step_editor(step: dict, pos: int, total: int) -> None:
    info = au.CATALOGUE[step["name"]]
    sid = step["id"]
    with place.expander(f"{pos + 1}. {info.name}  ·  p={step['params'].get('p', 1.0):g}", key=ed.open_key(sid)):
        st.caption(f"{au.GROUPS[info.group]}: {info.description}")
        for ps in info.params:
            aw.param_widget(ps, ed.wkey(sid, ps.name))
        b1, b2, b3 = st.columns(3)
        b1.button("Up", key=f"aug_up::{sid}", icon=":material/arrow_upward:", disabled=pos == 0,
                  on_click=ed.on_move, args=(sid, -1), width="stretch")
        b2.button("Down", key=f"aug_down::{sid}", icon=":material/arrow_downward:", disabled=pos == total - 1,
                  on_click=ed.on_move, args=(sid, 1), width="stretch")
        b3.button("Remove", key=f"aug_rm::{sid}", icon=":material/delete:",
                  on_click=ed.on_remove, args=(sid,), width="stretch")


def pipeline_section(ws: Workspace, options: list[str]) -> au.AugmentSpec | None:
    ss = st.session_state
    root = str(ws.root)
    st.subheader("Pipeline")
    saved = set(au.list_pipelines(ws))
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    source = c1.selectbox(
        "Start from", options, key="aug_source", on_change=ed.on_source, args=(root,),
        format_func=lambda n: f"{n} (saved)" if n in saved else f"{n} (preset)",
        help="Choosing a pipeline replaces the steps below with its steps.",
    )
    if source in au.PRESET_DESCRIPTIONS:
        st.caption(au.PRESET_DESCRIPTIONS[source])
    elif source in saved:
        with c2.popover("Delete", icon=":material/delete:", help="Delete this saved pipeline."):
            st.write("Delete the saved pipeline below? This cannot be undone. Studies and training jobs "
                     "that use it keep their own copy and go on training with it.")
            st.code(source, language=None)
            st.button("Delete it", key="aug_delete", type="primary", on_click=ed.on_delete, args=(root, source))

    steps = ss["aug_steps"]
    spec: au.AugmentSpec | None
    try:
        spec = ed.current_spec()
    except TLCoreError as exc:
        show_error(exc)
        spec = None
    if ed.is_edited(ws, spec):
        loaded = ss.get("aug_loaded")
        c1, c2 = st.columns([3, 2], vertical_alignment="center")
        c1.caption("Edited" + (" (changes not saved)" if loaded else ""))
        if loaded:
            c2.button("Discard changes", key="aug_reload", on_click=ed.on_reload, args=(root,),
                      icon=":material/undo:", width="stretch")

    if not steps:
        st.caption("No steps: images pass through unchanged. Add a transform below.")
    for pos, step in enumerate(steps):
        step_editor(step, pos, len(steps))

    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    choice = c1.selectbox(
        "Add a transform", list(au.CATALOGUE), key="aug_add_choice", persist_state=place.KEPT,
        format_func=lambda n: f"{au.GROUPS[au.CATALOGUE[n].group]} · {n}",
    )
    c2.button("Add", key="aug_add", on_click=ed.on_add, icon=":material/add:", width="stretch")
    st.caption(au.CATALOGUE[choice].description)
    return spec


# ----------------------------------------------------------------- preview
def preview_section(image: np.ndarray | None, label: str, spec: au.AugmentSpec | None) -> None:
    st.subheader("Preview")
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    n = c1.slider("Versions", min_value=N_RANGE[0], max_value=N_RANGE[1], key="aug_n", persist_state=place.KEPT)
    seed = fields.number(c2, "Seed", lo=0, hi=2**31 - 1, step=1, key="aug_seed", persist_state=place.KEPT,
                         help="The same seed shows the same versions.")
    c3.button("Re-roll", key="aug_reroll", on_click=ed.on_reroll, icon=":material/casino:", width="stretch",
              help="Draw a new seed.")
    if image is None:
        st.info("Pick an image (or upload one) to see the preview.")
        return
    if spec is None:
        st.warning("Fix the pipeline's error to see the preview.")
        st.image(image, caption=md_escape(f"Original: {label}"))
        return
    if fields.range_problem("Seed", seed, 0, 2**31 - 1):
        return  # the field says what is allowed; no preview with a seed it does not show
    try:
        images = aw.augmented(json.dumps(spec.to_dict(), sort_keys=True), image, int(n), int(seed))
    except TLCoreError as exc:
        show_error(exc)
        return
    cells = [(image, md_escape(f"Original: {label}"))] + [(im, f"#{i}") for i, im in enumerate(images, start=1)]
    for start in range(0, len(cells), PER_ROW):
        cols = st.columns(PER_ROW)
        for col, (im, caption) in zip(cols, cells[start : start + PER_ROW]):
            col.image(im, caption=caption, width="stretch")
    st.caption(f"{image.shape[1]}×{image.shape[0]} pixels; {len(spec.steps)} steps; seed {int(seed)}.")


# ------------------------------------------------------- serialized, save
def serialized_section(spec: au.AugmentSpec | None, image: np.ndarray | None) -> None:
    st.subheader("Serialized pipeline")
    if spec is None:
        st.info("The pipeline has an error; fix it to see its serialization.")
        return
    size = tuple(image.shape[:2]) if image is not None else au.DEFAULT_IMAGE_SIZE
    pipeline = au.build_pipeline(spec, image_size=size)
    as_yaml, as_json = au.pipeline_to_yaml(pipeline), au.pipeline_to_json(pipeline)
    t1, t2, t3 = place.tabs(["albumentations YAML", "albumentations JSON", "Workbench spec"], key="aug_format_tab")
    with t1:
        st.code(as_yaml, language="yaml")
    with t2:
        st.code(as_json, language="json")
    with t3:
        st.code(spec.to_yaml(), language="yaml")
    st.caption(
        f"Load it with albumentations: `A.from_dict(yaml.safe_load(text))`. Size-setting transforms use "
        f"{size[0]}×{size[1]}; training uses the model's input size."
    )
    st.download_button("Download albumentations YAML", as_yaml, file_name="pipeline.yaml", mime="application/x-yaml",
                       key="aug_download", icon=":material/download:", on_click="ignore")


def save_section(ws: Workspace) -> None:
    st.subheader("Save")
    with st.form("aug_save_form", border=True):
        st.text_input("Name", key="aug_save_name", placeholder="e.g. my-pipeline", persist_state=place.KEPT,
                      help="1-64 letters, digits, '.', '_' or '-'; not a preset's name.")
        st.checkbox("Overwrite a pipeline saved under that name", key="aug_save_overwrite",
                    help="Studies and training jobs already made with the old one keep their own copy of it.")
        st.form_submit_button("Save", type="primary", on_click=ed.on_save, args=(str(ws.root),),
                              icon=":material/save:")
    place.banners(ed.SAVE_SLOT)
    st.caption("Saved pipelines can be chosen for training and used from the command line: "
               "`python -m tlcore augment show NAME`.")


# -------------------------------------------------------------------- page
def main() -> None:
    ws = workspace()
    st.caption("Start from a preset or a saved pipeline, tune its steps, preview them on your images, save the result.")
    try:
        data.ensure_demo_registered(ws)
    except TLCoreError as exc:
        show_error(exc)

    options = au.pipeline_names(ws)
    ed.init_state(ws, options)
    place.banners()

    left, right = st.columns([2, 3], gap="large")
    with left:
        image, label = image_section(ws)
        spec = pipeline_section(ws, options)
    with right:
        preview_section(image, label, spec)
    st.divider()
    c1, c2 = st.columns([3, 2], gap="large")
    with c1:
        serialized_section(spec, image)
    with c2:
        save_section(ws)


main()
