"""Pieces of the Predict page: the model picker, the model's card, batch prediction, the TTA check.

- ``model_picker``: every model of the workspace (``tlcore.catalog``: trained runs, search
  trials with a saved model, exports) in one selectbox; the choice is the entry's key,
  kept in ``st.query_params["model"]`` (an old link's bare run name still selects the run).
- ``model_folder_for``: the chosen model's folder; a search trial's run folder is fetched
  from the artifact store here, on first use, never to list it.
- ``model_section``: validation/test accuracy, classes, input size and where it comes from; a
  warning for each damaged file beside the model (``LoadedModel.notes``).
- ``batch_section``: the "Batch: a folder or a zip" source: a zip upload (read in memory) or
  a folder under the workspace's data roots; ``tlcore.batch_predict`` runs over every image
  with an ``st.progress`` bar updated after every chunk; the table (top-k, true label and
  correct when the images sit in class folders), the accuracy and a CSV download. The last
  result is kept in session state with the settings that made it.
- ``tta_section``: the model's test-split accuracy without and with test-time augmentation,
  computed when asked (``tlcore.predict.evaluate_run``) and cached.

User-controlled text (model, study, file and class names, messages quoting them) is
Markdown-escaped (``md_escape``) or shown in a dataframe, which renders no Markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from tlcore.batch_predict import BatchResult, open_folder, open_zip, predict_batch, summary_line
from tlcore.catalog import Catalog, CatalogEntry, model_folder
from tlcore.errors import TLCoreError
from tlcore.predict import LoadedModel
from tlcore.workspace import Workspace
from tlui import data, place
from tlui import fmt as tf
from tlui.common import md_escape, show_error

__all__ = ["model_picker", "model_folder_for", "model_section", "batch_section", "tta_section", "BATCH_KINDS"]

BATCH_KINDS = ("Upload a zip", "A folder on the server")
ROWS_SHOWN = 5000  # table rows drawn at most (the CSV has them all)


# ------------------------------------------------------------------- model
def model_picker(cat: Catalog) -> CatalogEntry:
    """The model selectbox over ``cat``; the selection is kept in ``st.query_params["model"]``."""
    ss = st.session_state
    keys = cat.keys
    by_key = {e.key: e for e in cat.entries}
    if ss.get("pr_model") not in keys:
        chosen, linked = ss.get("pr_model"), st.query_params.get("model")
        wanted = cat.find(linked)
        ss["pr_model"] = wanted.key if wanted is not None else keys[0]
        gone = chosen if chosen is not None else (linked if linked and wanted is None else None)
        if gone:  # never predictions from a model the user did not pick, without a word
            st.warning(f"The model {md_escape(gone)} is no longer there (deleted, or its files cannot be read): "
                       f"showing {md_escape(by_key[ss['pr_model']].label)} instead.", icon=":material/warning:")
    st.selectbox("Model", keys, key="pr_model", format_func=lambda k: by_key[k].label,
                 help="Trained runs (newest first), search trials that saved a model (each study's best "
                      "first) and exports under the workspace's exports folder.")
    entry = by_key[ss["pr_model"]]
    place.keep_in_url("model", entry.key)
    return entry


def model_folder_for(ws: Workspace, entry: CatalogEntry) -> Path:
    """The entry's folder; a search trial's run folder is downloaded on first use (with a spinner)."""
    if entry.kind == "trial" and entry.path is None:
        with st.spinner(f"Fetching trial {entry.trial} of study {entry.study} from the artifact store…"):
            return model_folder(ws, entry)
    return model_folder(ws, entry)


def model_section(entry: CatalogEntry, loaded: LoadedModel | None) -> None:
    """What is known about the model: from the listing, completed by the loaded model; a warning for
    each file beside it that cannot be read (``LoadedModel.notes``: e.g. not calibrated, an unknown
    resize rule), since the predictions below are affected."""
    spec = loaded.spec if loaded is not None else {}
    m = st.columns(4)
    m[0].metric("Validation accuracy", tf.pct(entry.val_accuracy), help="Best epoch's validation accuracy.")
    m[1].metric("Test accuracy", tf.pct(entry.test_accuracy), help="On the held-out test split, after training.")
    m[2].metric("Classes", entry.num_classes or (loaded.num_classes if loaded is not None else "?"))
    m[3].metric("Input", f"{entry.image_size or (loaded.image_size if loaded is not None else '?')} px")
    where = {"run": "trained run", "trial": f"search trial {entry.trial} of study {md_escape(entry.study)}"
             + (" (the study's best)" if entry.best else ""), "export": "export"}[entry.kind]
    epochs = (loaded.metrics.get("epochs_run") if loaded is not None else None) or "?"
    saved = f" · saved {md_escape(entry.created.replace('T', ' '))}" if entry.created else ""
    st.caption(
        f"{where} · {md_escape(entry.backbone or spec.get('backbone') or '?')} · "
        f"{md_escape(entry.method or spec.get('method') or '?')} · dataset "
        f"{md_escape(entry.dataset or spec.get('dataset') or '?')} · {md_escape(epochs)} epochs{saved}"
    )
    for note in loaded.notes if loaded is not None else ():
        st.warning(md_escape(note), icon=":material/warning:")


# ------------------------------------------------------------------- batch
def _roots_text(ws: Workspace) -> str:
    """The data roots as code spans (shown literally; a backtick in a path cannot end the span)."""
    return ", ".join("`" + str(r).replace("`", "'") + "`" for r in ws.data_roots)


def batch_section(ws: Workspace, entry: CatalogEntry, loaded: LoadedModel, run_version: int, k: int, tta: bool) -> None:
    """Classify every image of an uploaded zip or a folder under the data roots."""
    kind = st.radio("Batch source", BATCH_KINDS, key="pr_batch_kind", horizontal=True, persist_state=place.KEPT)
    if kind == BATCH_KINDS[0]:
        upload = place.uploader(
            "Zip of images", type=["zip"], key="pr_batch_zip",
            help="A .zip of image files, read in memory (nothing is extracted). Images in sub-folders named "
                 "after the model's classes get a true label, a correct/incorrect column and an accuracy.",
        )
        if upload is None:
            st.caption("Upload a .zip of images; one sub-folder per class adds the accuracy.")
            return
        ident: tuple[Any, ...] = ("zip", getattr(upload, "file_id", None), upload.name, upload.size)

        def opener():
            upload.seek(0)
            return open_zip(upload, name=upload.name)
    else:
        folder = st.text_input("Folder", key="pr_batch_folder", persist_state=place.KEPT,
                               placeholder="a folder of images under one of the data roots")
        st.caption(f"Folders must be under the data roots: {_roots_text(ws)}. Allow another with "
                   "`python -m tlcore datasets allow-root PATH`.")
        if not folder.strip():
            return
        ident = ("folder", folder.strip())

        def opener():
            return open_folder(folder.strip(), ws=ws)

    signature = (entry.key, run_version, ident, k, tta)
    if st.button("Classify every image", key="pr_batch_run", type="primary"):
        bar = st.progress(0.0, text="Reading the images…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total if total else 1.0, text=f"Classified {done} of {total} images")

        try:
            with opener() as source:
                result = predict_batch(loaded, source, top_k=k, tta=tta, progress=progress)
        except TLCoreError as exc:
            bar.empty()
            show_error(exc)
            return
        st.session_state["pr_batch"] = {"signature": signature, "result": result}
    stored = st.session_state.get("pr_batch")
    if stored is None:
        return
    if stored["signature"] != signature:
        st.caption("The model, the images or the settings changed since the last batch: classify again.")
        return
    batch_result(stored["result"])


def batch_result(result: BatchResult) -> None:
    m = st.columns(3)
    m[0].metric("Images", len(result.rows))
    m[1].metric("Could not be read", len(result.failed))
    m[2].metric("Accuracy", tf.pct(result.accuracy) if result.has_truth else "-",
                help="Top-1 accuracy over the images whose class folder (the top-level folder, at any depth) "
                     "names one of the model's classes.")
    if result.has_truth and len(result.labelled) < len(result.rows):
        m[2].caption(md_escape(result.accuracy_basis))  # never a bare 100 % over a third of the images
    st.caption(md_escape(summary_line(result)))
    if not result.has_truth:
        st.caption("No image sits in a folder named after one of the model's classes, so there is no "
                   "accuracy: put each class's images in a sub-folder of that name.")
    table = result.table()
    if result.has_truth and st.checkbox("Only the mistakes", key="pr_batch_wrong", persist_state=place.KEPT):
        table = table[table["correct"].eq(False).fillna(False)]
    config: dict[str, Any] = {f"confidence_{i + 1}": st.column_config.NumberColumn(format="percent")
                              for i in range(result.top_k)}
    if len(table) > ROWS_SHOWN:
        st.caption(f"Showing the first {ROWS_SHOWN:,} of {len(table):,} rows; the CSV has them all.")
    st.dataframe(table.head(ROWS_SHOWN), hide_index=True, column_config=config, key="pr_batch_table")
    st.download_button("Download the table (CSV)", data=result.to_csv(), file_name="predictions.csv",
                       mime="text/csv", key="pr_batch_csv", icon=":material/download:")


# --------------------------------------------------------------------- TTA
@st.cache_data(show_spinner=False, max_entries=32)
def _tta_effect(ws_root: str, model_path: str, run_version: int, dataset_version: str) -> dict[str, Any]:
    """Test-split accuracy without and with the flip average (``evaluate_run``); ``dataset_version``
    (``tlui.data.dataset_token``) is a cache key: a rescan or a decision changes the test split."""
    from tlcore.predict import evaluate_run

    loaded, _ = data.cached_model(model_path, run_version)
    ws = Workspace(ws_root)
    plain = evaluate_run(loaded, ws)
    flipped = evaluate_run(loaded, ws, tta=True)  # decoded images come from the cache
    return {"without": plain["report"]["accuracy"], "with": flipped["report"]["accuracy"],
            "images": plain["report"]["num_samples"], "dataset": plain["dataset"]}


def tta_section(ws: Workspace, entry: CatalogEntry, loaded: LoadedModel, model_path: str, run_version: int) -> None:
    """Whether test-time augmentation helps this model: its test split without and with it, on request."""
    with place.expander("Does test-time augmentation help this model?", key="pr_tta_open"):
        st.caption("Test-time augmentation classifies each image and its mirror image and averages the two "
                   "probabilities: one more pass per image, often a little more accurate.")
        if loaded.run_dir is None or not loaded.data.get("test_files"):
            st.caption("It is measured on the model's test split, which only a run folder names (a trained run "
                       "or a search trial); this model has none.")
            return
        flag = f"pr_tta_eval::{entry.key}::{run_version}"
        if st.button("Measure on the test split", key="pr_tta_run"):
            st.session_state[flag] = True
        if not st.session_state.get(flag):
            return
        try:
            with st.spinner("Evaluating the test split twice…"):
                res = _tta_effect(str(ws.root), model_path, run_version, data.dataset_token(ws, loaded.run_dir))
        except TLCoreError as exc:
            show_error(exc)
            return
        c = st.columns(3)
        c[0].metric("Without TTA", tf.pct(res["without"]))
        points = 100 * (res["with"] - res["without"])
        same = round(points, 1) == 0  # a green "+0.0" told of a gain there was not
        c[1].metric("With TTA", tf.pct(res["with"]), delta="no change" if same else f"{points:+.1f} points",
                    delta_color="off" if same else "normal")
        c[2].metric("Test images", res["images"])
