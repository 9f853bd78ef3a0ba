"""Pieces of the Train page: the new-run form, the job list, one job's curves, epochs and result.

The form (session keys ``tr_*``, set by ``init_form`` from ``TrainSpec``'s own
defaults): dataset, augmentation, backbone, image size, method (the three of the
classic recipe, each explained in a line), freeze depth in blocks with the
backbone's block names, learning rate, epochs, batch size, and every other
``TrainSpec`` field under *Advanced*. ``spec_from_widgets`` builds the ``TrainSpec``,
whose validation explains a bad value; ``start`` launches it as a background job
(``tlcore.train_jobs.launch_training``).

A job is read from its folder only (``tlcore.train_jobs``): ``jobs_frame`` (the
list), ``epochs_frame`` (one row per epoch) and ``curves_frame`` (the rows
``results_widgets.curves_figure`` draws, as for a search's trials), ``status_box``
(where it is, in words: the error and the end of its log when it crashed),
``result_section`` (a finished run's test report and the links to Results and
Predict). Banners (``tlui.place``): the page's own at its top; a job's in its live section's
slot (``live_slot``: a button's outcome, kept across the live refreshes). The form's expanders
keep their state in ``FORM_OPEN`` and ``tr_adv_open``; a started job closes the form. The form's
fields are drawn with ``persist_state=place.KEPT``, so a form half filled in is still there after a visit
to another page (a dataset or pipeline removed meanwhile is said by ``fields.fall_back``); the job
shown is the URL's (``?job=``), so that a link to another job wins.
User text (dataset, class and file names, messages quoting them) is Markdown-escaped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import Any

import pandas as pd
import streamlit as st

from tlcore import augment as au
from tlcore import backbones as bb
from tlcore import train_jobs as tj
from tlcore._usertext import counted
from tlcore.config import BATCHNORM_MODES, HEAD_INITS, LR_SCHEDULES, METHODS, RESIZE_MODES, TrainSpec
from tlcore.errors import TLCoreError
from tlcore.runfolder import RunFolder
from tlcore.workspace import Workspace
from tlui import evaluate_widgets as ev
from tlui import fields, place
from tlui import fmt as tf
from tlui import results_widgets as rw
from tlui.common import md_escape, page, show_error
from tlui.search_form import RESIZE_HELP, backbone_label

__all__ = ["init_form", "form_section", "spec_from_widgets", "start", "select_job", "jobs_frame", "epochs_frame",
           "curves_frame", "status_box", "stop_buttons", "result_section", "live_slot", "FORM_OPEN",
           "METHOD_HELP"]

NO_AUGMENT = "none"
RANDOM_WEIGHTS = "none"
WEIGHTS = {"imagenet": "ImageNet (pretrained)", RANDOM_WEIGHTS: "random init (tests/offline)"}
METHOD_LABELS = {"feature_extraction": "Feature extraction", "fine_tune": "Fine-tune from depth k",
                 "two_phase": "Two-phase (head first, then fine-tune)"}
METHOD_HELP = {
    "feature_extraction": "The whole backbone stays frozen; only the new head trains. Fastest; a good first run.",
    "fine_tune": "The first k blocks stay frozen; the later blocks train together with the head.",
    "two_phase": "The head trains first with everything frozen, then blocks from depth k on unfreeze and "
                 "training goes on at a lower learning rate: one continuous learning curve.",
}
STOP_GRACE_S = 60  # after a stop request, a job still running this long is offered "Terminate"
NOTE_SECONDS = 60  # how long a button's banner stays in a job's live section
FORM_OPEN = "tr_form_open"  # whether the New training run expander is open (tlui.place)


def _default(name: str) -> Any:
    return next(f for f in dataclasses.fields(TrainSpec) if f.name == name).default


# ------------------------------------------------------------------ messages
def live_slot(job_id: str) -> str:
    """The banner slot at the top of the live section of job ``job_id`` (``tlui.place.banners``)."""
    return f"tr_live::{job_id}"


def _note(job_id: str, kind: place.Kind, text: str) -> None:
    """A banner of the job's live section: it stays ``NOTE_SECONDS`` across refreshes."""
    place.flash(kind, text, slot=live_slot(job_id), seconds=NOTE_SECONDS)


# ------------------------------------------------------------------ the form
def init_form(datasets: list[str]) -> None:
    """The form's session keys, at ``TrainSpec``'s defaults; a dataset still registered ("demo" first)."""
    d = _default
    defaults: dict[str, Any] = {
        "tr_augment": d("augment") or NO_AUGMENT, "tr_backbone": d("backbone"), "tr_size": d("image_size"),
        "tr_method": d("method"), "tr_lr": d("learning_rate"), "tr_epochs": d("epochs"), "tr_bs": d("batch_size"),
        "tr_weights": d("weights") or RANDOM_WEIGHTS, "tr_resize": d("resize_mode"), "tr_ftf": d("fine_tune_factor"),
        "tr_head_on": False, "tr_head_epochs": 1, "tr_schedule": d("lr_schedule"), "tr_dropout": d("dropout"),
        "tr_smoothing": d("label_smoothing"), "tr_copies": d("aug_copies"), "tr_fcache": d("feature_cache"),
        "tr_cw": d("class_weights"), "tr_es": d("early_stopping"), "tr_bn": d("batchnorm"),
        "tr_head_init": d("head_init"), "tr_warmup": float(d("warmup_epochs")), "tr_guard": d("divergence_guard"),
        "tr_seed": d("seed"), "tr_split_on": False, "tr_val": 0.15, "tr_test": 0.15, "tr_split_seed": 0,
    }
    ss = st.session_state
    for key, value in defaults.items():
        ss.setdefault(key, value)
    fields.fall_back("tr_dataset", datasets, "demo" if "demo" in datasets else (datasets[0] if datasets else None),
                     "dataset")


def depth_label(names: tuple[str, ...], k: int) -> str:
    """A freeze depth with the last block it freezes: "12 · up to block_11", "0 · none frozen"."""
    if k == 0:
        return "0 · none frozen"
    return f"{k} · up to {names[k - 1]}" + (" (all)" if k == len(names) else "")


def _augment_label(name: str) -> str:
    return "none" if name == NO_AUGMENT else f"{name} (preset)" if name in au.PRESETS else f"{name} (saved)"


def _main_fields(ws: Workspace, datasets: list[str]) -> None:
    ss = st.session_state
    c = st.columns([2, 2, 3, 1])
    c[0].selectbox("Dataset", datasets, key="tr_dataset", persist_state=place.KEPT,
                   help="Registered datasets (add one on the Datasets page).")
    augments = [NO_AUGMENT, *(n for n in au.pipeline_names(ws) if n != NO_AUGMENT)]
    fields.fall_back("tr_augment", augments, NO_AUGMENT, "augmentation pipeline")  # a saved one deleted since
    c[1].selectbox("Augmentation", augments, key="tr_augment", persist_state=place.KEPT, format_func=_augment_label,
                   help="A preset or a pipeline saved on the Augmentations page.")
    c[2].selectbox("Backbone", bb.list_backbones(), key="tr_backbone", persist_state=place.KEPT,
                   format_func=backbone_label)
    fields.number(c[3], "Image size (px)", lo=32, hi=1024, step=16, key="tr_size", persist_state=place.KEPT)

    info = bb.get(ss["tr_backbone"])
    n = info.num_blocks
    ss["tr_depth"] = min(int(ss.get("tr_depth", n - n // 3)), n)
    left, right = st.columns([3, 2])
    left.radio("Method", list(METHODS), key="tr_method", persist_state=place.KEPT, format_func=METHOD_LABELS.get,
               captions=[METHOD_HELP[m] for m in METHODS])
    with right:
        frozen_all = ss["tr_method"] == "feature_extraction"
        st.select_slider("Frozen blocks (freeze depth k)", options=list(range(n + 1)), key="tr_depth",
                         persist_state=place.KEPT,
                         format_func=lambda k: depth_label(info.block_names, k), disabled=frozen_all,
                         help=f"{info.display_name} has {n} blocks, counted from the input: blocks [0, k) stay "
                              "frozen. 0 trains the whole backbone.")
        st.caption(f"Feature extraction keeps all {n} blocks frozen." if frozen_all else
                   f"Blocks: {md_escape(', '.join(info.block_names))}.")
    c = st.columns(3)
    fields.number(c[0], "Learning rate", lo=1e-6, hi=1.0, step=1e-4, format="%.1e", key="tr_lr",
                  persist_state=place.KEPT,
                  help="Adam's learning rate (two-phase: of the head phase).")
    fields.number(c[1], "Epochs", lo=1, hi=1000, key="tr_epochs", persist_state=place.KEPT,
                  help="Two-phase: both phases together.")
    fields.number(c[2], "Batch size", lo=1, hi=4096, key="tr_bs", persist_state=place.KEPT)


def _advanced_fields() -> None:
    with place.expander("Advanced", key="tr_adv_open"):
        c = st.columns(4)
        c[0].radio("Weights", list(WEIGHTS), key="tr_weights", persist_state=place.KEPT, format_func=WEIGHTS.get,
                   help="Random init trains from scratch: only for tests and offline checks.")
        c[1].selectbox("Resize mode", RESIZE_MODES, key="tr_resize", persist_state=place.KEPT, help=RESIZE_HELP)
        c[2].selectbox("Learning-rate schedule", LR_SCHEDULES, key="tr_schedule", persist_state=place.KEPT,
                       help="cosine: each phase decays its rate to 0 along a half cosine.")
        fields.number(c[3], "Warm-up epochs", lo=0.0, hi=1000.0, step=0.5, key="tr_warmup", persist_state=place.KEPT,
                      help="The rate rises linearly at the start of a phase that unfreezes blocks.")
        c = st.columns(4)
        fields.number(c[0], "Fine-tune factor (two-phase)", lo=1e-4, hi=1.0, step=0.05, format="%.3f",
                      key="tr_ftf", persist_state=place.KEPT,
                      help="Phase 2's learning rate is the learning rate times this.")
        with c[1]:
            on = st.checkbox("Set the head phase's epochs", key="tr_head_on", persist_state=place.KEPT,
                             help="Off: half of the epochs.")
            fields.number(st, "Head epochs (two-phase)", lo=1, hi=1000, key="tr_head_epochs", persist_state=place.KEPT,
                          disabled=not on)
        fields.number(c[2], "Dropout", lo=0.0, hi=0.95, step=0.05, key="tr_dropout", persist_state=place.KEPT)
        fields.number(c[3], "Label smoothing", lo=0.0, hi=0.5, step=0.05, key="tr_smoothing", persist_state=place.KEPT)
        c = st.columns(4)
        fields.number(c[0], "Augmented copies cached (K)", lo=0, hi=64, key="tr_copies", persist_state=place.KEPT,
                      help="0 augments exactly, on the fly, through the frozen part (slower).")
        fields.number(c[1], "Early stopping patience", lo=0, hi=1000, key="tr_es", persist_state=place.KEPT,
                      help="Stop after this many epochs without a better validation accuracy; 0 = off.")
        c[2].selectbox("BatchNorm in unfrozen blocks", BATCHNORM_MODES, key="tr_bn", persist_state=place.KEPT)
        c[3].selectbox("Head starts from", HEAD_INITS, key="tr_head_init", persist_state=place.KEPT,
                       help="linear_probe: a softmax regression fitted on the frozen features (shared by every run "
                            "on the same data and backbone); random: from scratch.")
        c = st.columns(4)
        c[0].checkbox("Cache the frozen part's output", key="tr_fcache", persist_state=place.KEPT)
        c[1].checkbox("Class weights", key="tr_cw", persist_state=place.KEPT,
                      help="Weight classes inversely to their frequency.")
        c[2].checkbox("Divergence guard", key="tr_guard", persist_state=place.KEPT,
                      help="Stop when the loss is not finite or validation accuracy stays at chance.")
        fields.number(c[3], "Seed", lo=0, hi=2**31 - 1, key="tr_seed", persist_state=place.KEPT)
        on = st.checkbox("Use another split than the dataset's", key="tr_split_on", persist_state=place.KEPT)
        c = st.columns(3)
        fields.number(c[0], "Validation share", lo=0.0, hi=0.9, step=0.05, key="tr_val", persist_state=place.KEPT,
                      disabled=not on)
        fields.number(c[1], "Test share", lo=0.0, hi=0.9, step=0.05, key="tr_test", persist_state=place.KEPT,
                      disabled=not on)
        fields.number(c[2], "Split seed", lo=0, hi=2**31 - 1, key="tr_split_seed", persist_state=place.KEPT,
                      disabled=not on)


def spec_from_widgets() -> TrainSpec:
    """The ``TrainSpec`` the form describes. Raises ``ConfigError`` (TrainSpec's message) when invalid."""
    ss = st.session_state
    method = ss["tr_method"]
    split = ss["tr_split_on"]
    return TrainSpec.from_dict({
        "dataset": ss["tr_dataset"] or "", "backbone": ss["tr_backbone"],
        "weights": None if ss["tr_weights"] == RANDOM_WEIGHTS else "imagenet",
        "image_size": int(ss["tr_size"]), "resize_mode": ss["tr_resize"], "method": method,
        "freeze_depth": None if method == "feature_extraction" else int(ss["tr_depth"]),
        "learning_rate": float(ss["tr_lr"]), "fine_tune_factor": float(ss["tr_ftf"]),
        "lr_schedule": ss["tr_schedule"], "epochs": int(ss["tr_epochs"]),
        "head_epochs": int(ss["tr_head_epochs"]) if ss["tr_head_on"] and method == "two_phase" else None,
        "batch_size": int(ss["tr_bs"]), "dropout": float(ss["tr_dropout"]),
        "label_smoothing": float(ss["tr_smoothing"]),
        "augment": None if ss["tr_augment"] == NO_AUGMENT else ss["tr_augment"], "aug_copies": int(ss["tr_copies"]),
        "feature_cache": bool(ss["tr_fcache"]), "class_weights": bool(ss["tr_cw"]), "early_stopping": int(ss["tr_es"]),
        "batchnorm": ss["tr_bn"], "head_init": ss["tr_head_init"], "warmup_epochs": float(ss["tr_warmup"]),
        "divergence_guard": bool(ss["tr_guard"]), "seed": int(ss["tr_seed"]),
        "val_fraction": float(ss["tr_val"]) if split else None, "test_fraction": float(ss["tr_test"]) if split else None,
        "split_seed": int(ss["tr_split_seed"]) if split else None,
    })


def start(ws: Workspace) -> None:
    """Validate the form, launch the job and select it; errors show in place."""
    if fields.refused("tr_", "Nothing was started."):
        return
    try:
        job = tj.launch_training(ws, spec_from_widgets())
    except TLCoreError as exc:
        show_error(exc)
        return
    place.flash("success", f"Started job {job.id}: the process loads TensorFlow first (up to a minute), then the "
                            "epochs appear below as they finish.")
    st.session_state["tr_pending"] = job.id
    st.session_state[FORM_OPEN] = False  # the job is below now
    st.rerun()


def form_section(ws: Workspace, datasets: list[str], *, expanded: bool) -> None:
    with place.expander("New training run", key=FORM_OPEN, expanded=expanded, icon=":material/add:"):
        if not datasets:
            st.info("No datasets are registered: add one on the Datasets page first.")
            return
        _main_fields(ws, datasets)
        _advanced_fields()
        if st.button("Train", key="tr_start", type="primary",
                     help="Starts a background process: it keeps running when you close the page."):
            start(ws)
        fields.show_fallbacks("tr_")


# ------------------------------------------------------------------ the jobs
def select_job(ids: list[str]) -> str:
    """Settle ``tr_job`` among ``ids`` (newest first): a job just started, the one in the URL when a
    link or a reload put it there (``?job=``; ``tr_job_url`` is what this page last wrote), the one
    still chosen, else the newest. The URL then names it."""
    ss = st.session_state
    pending = ss.pop("tr_pending", None)
    wanted = st.query_params.get("job")
    if pending in ids:
        ss["tr_job"] = pending
    elif wanted in ids and wanted != ss.get("tr_job_url"):
        ss["tr_job"] = wanted
    elif ss.get("tr_job") not in ids:
        if wanted and wanted not in ids:
            st.warning(f"There is no training job {md_escape(wanted)} in this workspace; showing the newest.")
        ss["tr_job"] = ids[0]
    ss["tr_job_url"] = ss["tr_job"]
    place.keep_in_url("job", ss["tr_job"])
    return ss["tr_job"]


def job_label(s: tj.JobStatus) -> str:
    """A job in the menu: its id and what it trains (its status is in the box below, always fresh)."""
    spec = s.spec
    return f"{s.id} · {spec.dataset} · {spec.backbone} · {spec.method}" if spec else s.id


def _when(t: Any) -> Any:
    return _dt.datetime.fromtimestamp(t) if isinstance(t, (int, float)) else None


def jobs_frame(jobs: list[tj.JobStatus]) -> pd.DataFrame:
    rows = []
    for s in jobs:
        spec, m = s.spec, s.state.get("metrics") or {}
        start, end = s.number("started"), s.number("ended")
        rows.append({
            "job": s.id, "status": s.status, "dataset": spec.dataset if spec else None,
            "backbone": spec.backbone if spec else None, "method": spec.method if spec else None,
            "size": spec.image_size if spec else None,
            "epochs": f"{s.state.get('epoch', 0)}/{s.state.get('epochs', '?')}",
            "best val accuracy": m.get("best_val_accuracy"), "test accuracy": m.get("test_accuracy"),
            "started": _when(start), "duration": (end or time.time()) - start if start else None,
            "from": s.state.get("source"),
        })
    return pd.DataFrame(rows)


JOBS_CONFIG = {
    "best val accuracy": st.column_config.NumberColumn(format="percent"),
    "test accuracy": st.column_config.NumberColumn(format="percent"),
    "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    "duration": st.column_config.NumberColumn(format="%.0f s"),
}


def epochs_frame(epochs: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["epoch", "phase", "freeze_depth", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
            "epoch_seconds"]
    return pd.DataFrame([{c: e.get(c) for c in cols} for e in epochs], columns=cols)


EPOCHS_CONFIG = {
    "freeze_depth": st.column_config.NumberColumn("frozen blocks", format="%d"),
    "train_loss": st.column_config.NumberColumn("train loss", format="%.4f"),
    "train_accuracy": st.column_config.NumberColumn("train accuracy", format="percent"),
    "val_loss": st.column_config.NumberColumn("val loss", format="%.4f"),
    "val_accuracy": st.column_config.NumberColumn("val accuracy", format="percent"),
    "epoch_seconds": st.column_config.NumberColumn("epoch time", format="%.1f s"),
}


def curves_frame(epochs: list[dict[str, Any]], key: str) -> pd.DataFrame:
    """The epochs as ``results_widgets.curves_figure`` rows (split, metric, value per epoch), keyed ``key``."""
    rows = [{"trial": 0, "epoch": e.get("epoch"), "phase": e.get("phase"), "split": split, "metric": metric,
             "value": float(e[f"{split}_{metric}"]), "key": key}
            for e in epochs for split in ("train", "val") for metric in ("loss", "accuracy")
            if tf.finite(e.get(f"{split}_{metric}")) is not None]
    return pd.DataFrame(rows, columns=["trial", "epoch", "phase", "split", "metric", "value", "key"])


def status_box(s: tj.JobStatus) -> None:
    """Where the job is, in words; a crashed job's error and the end of its log."""
    state, spec = s.state, s.spec
    epochs = state.get("epochs") or (spec.epochs if spec else "?")
    done = int(state.get("epoch") or 0)
    if s.status == "queued":
        st.info("Queued: the training process is starting (loading TensorFlow takes up to a minute).")
    elif s.status == "running":
        text = f"Running: {done} of {epochs} epochs done"
        if state.get("batch") and state.get("batches"):
            text += f"; epoch {state.get('running_epoch', done + 1)}, batch {state['batch']}/{state['batches']}"
        st.info(md_escape(text + "."))
        total = epochs if isinstance(epochs, int) and epochs else None
        frac = (done + (state.get("batch") or 0) / (state.get("batches") or 1)) / total if total else 0.0
        st.progress(max(0.0, min(1.0, frac)), text=md_escape(str(state.get("status_text") or "training")))
    elif s.status == "finished":
        # a note: its process ended after the run was saved, before it recorded so (train_jobs)
        st.success(md_escape(f"Finished: {counted(done, 'epoch')}. {state.get('note') or ''}".strip()))
    elif s.status == "stopped":
        st.warning(md_escape(f"Stopped after {done} epoch(s). {state.get('note') or ''}".strip()))
    else:
        st.error(md_escape(f"Crashed: {s.error or 'no reason recorded'}"))
        if s.log_tail:
            st.code(s.log_tail, language=None)


def _on_stop(ws: Workspace, job_id: str, force: bool) -> None:
    try:
        status = tj.stop_job(tj.open_job(ws, job_id), force=force)
    except TLCoreError as exc:
        _note(job_id, "error", md_escape(exc))
        return
    _note(job_id, "success", "Terminated." if force and status != "running" else
         "Stop requested: the run stops after its current batch, keeps the best epoch so far and saves it.")


def stop_buttons(ws: Workspace, s: tj.JobStatus) -> None:
    if s.final:
        return
    asked = s.stop_requested
    c1, c2 = st.columns([1, 4])
    c1.button("Stop", key="tr_stop", icon=":material/stop:", on_click=_on_stop, args=(ws, s.id, False),
              disabled=asked is not None, help="Ends after the current batch; the best epoch so far is saved.")
    if asked is not None and s.alive and time.time() - asked > STOP_GRACE_S:
        c2.button("Terminate", key="tr_kill", on_click=_on_stop, args=(ws, s.id, True),
                  help=f"It has not stopped {STOP_GRACE_S} s after the request: end the process (nothing is saved).")


def result_section(s: tj.JobStatus) -> None:
    """A saved run: its numbers, its test report, and the links to Results and Predict."""
    run = s.run_dir
    if run is None:
        return
    folder = RunFolder(run)
    if not folder.model_file.is_file():
        st.warning(f"The run folder {md_escape(run)} is gone (deleted or moved).")
        return
    m = folder.read_metrics()
    st.subheader("Result")
    c = st.columns(3)  # the test accuracy is the report's, below
    c[0].metric("Best epoch", tf.cell(m.get("best_epoch")))
    c[1].metric("Best val accuracy", tf.pct(m.get("best_val_accuracy")))
    c[2].metric("Training time", tf.seconds(m.get("train_seconds")))
    c = st.columns(2)
    c[0].page_link(page("Results").script, label="Open in Results", icon=":material/query_stats:",
                   query_params={"run": folder.name}, help="Its curves, evaluation with top losses and Grad-CAM, export.")
    c[1].page_link(page("Predict").script, label="Try it on Predict", icon=":material/image_search:",
                   query_params={"model": f"run:{folder.name}"}, help="Classify new photos with it.")
    st.caption(f"Run folder: {md_escape(run)}")
    report = m.get("test")
    if isinstance(report, dict) and report.get("confusion_matrix"):
        st.markdown("**On the test split**")
        ev.report_view(report, rw.report_class_names(report), "tr_report")
    else:
        st.caption("The run has no test report (its dataset's test split is empty).")
