"""Predict: try any model of the workspace on new photos, with Grad-CAM to show where it looked.

Thin: ``tlcore.catalog`` lists the models (trained runs, search trials that saved a
model, exports; a trial's run folder is fetched only when chosen), ``tlcore.predict``
loads them and prepares images (the same decoding and resize rule as training),
``tlcore.gradcam`` explains, ``tlcore.batch_predict`` classifies a whole folder or zip
(``tlui.predict_widgets`` draws the picker, the batch source and the TTA check). The
model is loaded once per server process with ``st.cache_resource`` keyed by its path and
modification time (so a retrained or replaced file is picked up) and never mutated;
per-image results are cached with ``st.cache_data`` by model, image content and the
test-time-augmentation switch. The selected model's key lives in
``st.query_params["model"]`` (the sidebar's menu brings it back, ``tlui.place``); every other
choice (image source, dataset, class, image, top-k, Grad-CAM, TTA, the batch's source and
folder) is drawn with ``persist_state=place.KEPT`` ("session"), so that it is still there after a visit
to another page (Streamlit otherwise forgets the value of a widget a run does not draw).
User-controlled text (file, class and model names, messages quoting them) is Markdown-escaped
or shown as plain text.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from tlcore.catalog import list_catalog
from tlcore.datasets import load_rgb
from tlcore.errors import TLCoreError
from tlcore.gradcam import overlay
from tlcore.predict import DEFAULT_TOP_K, LoadedModel, predict_arrays, prepare_image, top_predictions
from tlcore.runfolder import RunFolder
from tlcore.tta import mirror
from tlcore.workspace import Workspace
from tlui import data, place
from tlui import fmt as tf
from tlui import predict_widgets as pw
from tlui.common import md_escape, page, show_error, workspace

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
DISPLAY_PX = 224  # side of the images drawn on the page
MAX_IMAGES = 24  # uploads analysed per run
TOP_K_MAX = 10
SOURCES = ("Upload images", "Pick from a dataset", "Batch: a folder or a zip")
TRAIN_HINT = "python -m tlcore train --data demo --epochs 5 --image-size 96"


# ------------------------------------------------------------------- state
def init_state() -> None:
    """Initialise the session-state keys of this page (the model's: ``pw.model_picker``)."""
    ss = st.session_state
    ss.setdefault("pr_top_k", DEFAULT_TOP_K)
    ss.setdefault("pr_gradcam", True)
    ss.setdefault("pr_tta", False)
    ss.setdefault("pr_source", SOURCES[0])
    ss.setdefault("pr_pick_seed", 0)


def init_dataset_state(names: list[str], preferred: str | None) -> None:
    ss = st.session_state
    if ss.get("pr_ds") not in names:
        ss["pr_ds"] = preferred if preferred in names else ("demo" if "demo" in names else names[0])


# ------------------------------------------------------------------ caches
@st.cache_data(show_spinner=False, max_entries=256)
def analyse(model_path: str, run_version: int, source: str | bytes, version: int = 0, tta: bool = False) -> dict[str, Any]:
    """Decode one image (a path or an upload's bytes), classify it and explain the top class.

    ``version`` is the image file's modification time (0 for uploads, keyed by content),
    so an edited file is analysed again. With ``tta`` the probabilities are the average of
    the image's and its mirror image's (``tlcore.tta``); Grad-CAM explains the image itself.

    Returns the image for display (``DISPLAY_PX``×``DISPLAY_PX``×4 uint8: the image scaled
    so that its longer side is ``DISPLAY_PX``, centred on transparent padding, so that a
    very tall or wide image is drawn at its own shape in a square box, never stretched to the
    column's width into a page-long strip), the model's input (S×S×3 uint8, resized by the
    training rule), the probabilities and the Grad-CAM heatmap of the most probable class.
    Raises ``TLCoreError`` for an image that cannot be used (not cached).
    """
    loaded, cam = data.cached_model(model_path, run_version)
    rgb = load_rgb(source)
    x = prepare_image(loaded, rgb)
    res = cam.explain(x[None]) if cam is not None else None  # None: a model Grad-CAM cannot explain
    probs = res.probabilities[0] if res is not None else predict_arrays(loaded, x[None])[0]
    if tta:
        probs = (probs + predict_arrays(loaded, mirror(x[None]))[0]) / 2.0
    shown = Image.fromarray(rgb)
    scale = DISPLAY_PX / max(shown.size)  # small images are enlarged too, so results line up
    shown = shown.resize((max(1, round(shown.width * scale)), max(1, round(shown.height * scale))),
                         Image.Resampling.BILINEAR)
    box = Image.new("RGBA", (DISPLAY_PX, DISPLAY_PX), (0, 0, 0, 0))  # letterbox: the page's background shows
    box.paste(shown, ((DISPLAY_PX - shown.width) // 2, (DISPLAY_PX - shown.height) // 2))
    return {
        "display": np.asarray(box),
        "input": x,
        "probs": probs,
        "heatmap": res.heatmaps[0] if res is not None else None,
        "explained": int(res.class_indices[0]) if res is not None else int(np.argmax(probs)),
    }


# ----------------------------------------------------------------- drawing
def top_k_chart(probs: np.ndarray, class_names: list[str], k: int) -> go.Figure:
    preds = top_predictions(probs, class_names, k)
    fig = go.Figure(
        go.Bar(
            x=[p.probability for p in preds],
            y=[tf.plot_text(p.label) for p in preds],
            orientation="h",
            text=[tf.pct(p.probability) for p in preds],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=70 + 34 * len(preds),
        margin={"t": 10, "b": 30, "l": 10, "r": 10},
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": {"text": "confidence"}},
        yaxis={"autorange": "reversed"},
    )
    return fig


def per_class_table(loaded: LoadedModel) -> None:
    rows = ((loaded.metrics.get("test") or {}).get("per_class") or []) if isinstance(loaded.metrics, dict) else []
    if rows:
        with place.expander("Per-class results on the test split", key="pr_per_class_open"):
            st.dataframe(rows, hide_index=True, column_order=["class", "precision", "recall", "f1", "support"])


def upload_items() -> list[tuple[str, str | bytes, str | None]]:
    """``(name, content, true label = None)`` for each uploaded file."""
    uploads = place.uploader(
        "Images to classify", type=UPLOAD_TYPES, accept_multiple_files=True, key="pr_uploads",
        help="JPEG, PNG, WebP, BMP, GIF or TIFF. They are resized exactly as the training images were.",
    ) or []
    if len(uploads) > MAX_IMAGES:
        st.caption(f"Showing the first {MAX_IMAGES} of {len(uploads)} images.")
    return [(u.name, u.getvalue(), None) for u in uploads[:MAX_IMAGES]]


def _random_pick(files_key: str, options: list[str]) -> None:
    if options:
        st.session_state[files_key] = random.choice(options)


def dataset_items(ws: Workspace, loaded: LoadedModel) -> list[tuple[str, str | bytes, str | None]]:
    """``(name, path, true label)`` for the image picked from a registered dataset."""
    records = ws.list_datasets()
    if not records:
        st.info("No datasets are registered: add one on the Datasets page, or upload images instead.")
        return []
    names = [r.name for r in records]
    init_dataset_state(names, loaded.data.get("dataset") or loaded.spec.get("dataset"))
    c1, c2, c3, c4 = st.columns([2, 2, 3, 1], vertical_alignment="bottom")
    ds = c1.selectbox("Dataset", names, key="pr_ds", persist_state=place.KEPT)
    rec = next(r for r in records if r.name == ds)
    idx = data.index(str(ws.root), ds, data.dataset_version(ws, rec))
    usable = idx[idx["usable"].astype(bool)] if len(idx) else idx
    classes = sorted(usable["label"].astype(str).unique()) if len(usable) else []
    if not classes:
        st.info("This dataset has no usable images.")
        return []
    cls = c2.selectbox("Class", classes, key=f"pr_cls::{ds}", persist_state=place.KEPT)
    rows = usable[usable["label"] == cls].sort_values("relpath")
    relpaths = rows["relpath"].astype(str).tolist()
    files_key = f"pr_file::{ds}::{cls}"
    rel = c3.selectbox("Image", relpaths, key=files_key, format_func=lambda r: Path(r).name, persist_state=place.KEPT)
    c4.button("Random", key="pr_random", on_click=_random_pick, args=(files_key, relpaths),
              help="Pick a random image of this class.")
    if rel is None:
        return []
    path = str(rows.loc[rows["relpath"] == rel, "path"].iloc[0])
    unknown = [c for c in classes if c not in loaded.class_names]
    if unknown:
        trained_on = loaded.data.get("dataset") or loaded.spec.get("dataset")
        st.caption(f"The model {'was trained on ' + md_escape(str(trained_on)) + ' and ' if trained_on else ''}"
                   f"does not know {len(unknown)} of this dataset's {len(classes)} classes "
                   f"({md_escape(', '.join(unknown[:5]))}{', …' if len(unknown) > 5 else ''}): its images of "
                   "them cannot be judged right or wrong.")
    if loaded.data.get("dataset") == ds:
        in_test = rel in set(loaded.data.get("test_files") or [])
        st.caption("A test image: the model never saw it in training." if in_test else
                   "The model may have seen this image in training or validation; its test images are a fairer check.")
    return [(Path(rel).name, path, cls)]


def image_result(i: int, name: str, res: dict[str, Any], loaded: LoadedModel, true: str | None,
                 k: int, show_cam: bool) -> None:
    probs = res["probs"]
    best = top_predictions(probs, loaded.class_names, 1)[0]
    with st.container(border=True):
        head = f"**{md_escape(name)}**: {md_escape(str(best))}"
        if true is not None and true not in loaded.class_names:  # picked from a dataset the model did not learn
            head += f" (its folder's class {md_escape(true)} is not one of the model's classes)"
        elif true is not None:
            verdict = "correct" if best.label == true else f"wrong, the true class is {md_escape(true)}"
            head += f" ({verdict})"
        st.markdown(head)
        cols = st.columns([1, 2, 1] if show_cam else [1, 3], vertical_alignment="center")
        cols[0].image(res["display"], caption="the image")
        cols[1].plotly_chart(top_k_chart(probs, loaded.class_names, k), key=f"pr_chart::{i}",
                             config={"displayModeBar": False})
        if show_cam and res["heatmap"] is not None:
            seen = np.asarray(Image.fromarray(res["input"]).resize((DISPLAY_PX, DISPLAY_PX), Image.Resampling.BILINEAR))
            label = loaded.class_names[res["explained"]]
            cols[2].image(overlay(seen, res["heatmap"], alpha=0.45), caption=f"Grad-CAM: {md_escape(label)}")


def bad_image(name: str, exc: BaseException) -> None:
    if isinstance(exc, TLCoreError):
        text = f"{exc.message} {exc.fix or ''}".strip()
    else:
        text = f"It could not be read ({exc}). Try another file, or convert it to JPEG or PNG."
    st.error(f"{md_escape(name)} was not classified: {md_escape(text)}")


# -------------------------------------------------------------------- page
def main() -> None:
    ws = workspace()
    init_state()
    try:
        cat = list_catalog(ws)
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
    for note in cat.notes:
        st.warning(md_escape(note))
    if not cat.entries:
        st.info(
            "No trained models in this workspace yet. Train one on the Train page (the demo dataset works "
            "offline) and it appears here when it finishes; the Search page finds the best settings for you, "
            "and its trials appear here too. From a terminal:"
        )
        st.page_link(page("Train").script, label="Train a model", icon=page("Train").icon)
        st.code(TRAIN_HINT, language="bash")
        return
    entry = pw.model_picker(cat)
    try:
        folder = pw.model_folder_for(ws, entry)
        run_version = RunFolder(folder).load_version()
        loaded, cam = data.cached_model(str(folder), run_version)
    except TLCoreError as exc:
        pw.model_section(entry, None)
        show_error(exc)
        st.caption("Pick another model, or train this one again.")
        return
    pw.model_section(entry, loaded)
    per_class_table(loaded)
    pw.tta_section(ws, entry, loaded, str(folder), run_version)

    st.subheader("Images")
    st.radio("Source", SOURCES, key="pr_source", horizontal=True, label_visibility="collapsed", persist_state=place.KEPT)
    c2, c3, c4 = st.columns([3, 2, 2], vertical_alignment="bottom")
    max_k = min(TOP_K_MAX, loaded.num_classes)
    if st.session_state["pr_top_k"] > max_k:
        st.session_state["pr_top_k"] = max_k
    k = c2.slider("Top classes shown", min_value=1, max_value=max(2, max_k), key="pr_top_k", persist_state=place.KEPT)
    k = min(int(k), loaded.num_classes)
    tta = c4.toggle("Test-time augmentation", key="pr_tta", persist_state=place.KEPT,
                    help="Average each image's probabilities with its mirror image's (one more pass per image).")
    source = st.session_state["pr_source"]
    if source == SOURCES[2]:
        pw.batch_section(ws, entry, loaded, run_version, k, tta)
        return
    show_cam = c3.checkbox("Show Grad-CAM", key="pr_gradcam", disabled=cam is None, persist_state=place.KEPT,
                           help=data.GRADCAM_MISSING if cam is None else None) and cam is not None
    if cam is None:
        st.caption(data.GRADCAM_MISSING)
    if show_cam:
        st.caption(
            "Grad-CAM colours the parts of the image that raised the predicted class's score the most "
            "(red strongest, blue none), on the image as the model saw it."
        )
    try:
        items = upload_items() if source == SOURCES[0] else dataset_items(ws, loaded)
    except TLCoreError as exc:
        show_error(exc)
        return
    if not items:
        if source == SOURCES[0]:
            st.caption("Upload one or more images to see what the model makes of them.")
        return
    for i, (name, src, true) in enumerate(items):
        try:
            version = os.stat(src).st_mtime_ns if isinstance(src, str) else 0
            res = analyse(str(folder), run_version, src, version, tta)
        except (TLCoreError, ValueError, OSError) as exc:
            bad_image(name, exc)
            continue
        image_result(i, name, res, loaded, true, k, show_cam)


main()
