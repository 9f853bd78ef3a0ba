"""The Results page's trial reports: "Evaluate a trial" and the test reports of "Compare two trials".

``evaluate_section`` (keys ``rs_eval*``, ``rs_dl_*``, ``rs_export*``, ``rs_top_n``,
``rs_cam``): the chosen trial's successive-halving rungs, or why it has no model;
for a complete trial its run folder (``tlcore.search.fetch_trial_run``) with a warning for
each of its files that cannot be read (``tlcore.predict.read_run_files``), downloads of its
files (``downloads``: the model is read when its button is pressed; a model file gone since
the page was drawn is said on the page, never a generic download error), its stored test
report and calibration (temperature, ECE before → after, reliability diagram:
``tlui.calibration_widgets``), and on request its evaluation again on the test split
(``results_widgets.cached_evaluation``: the report, the most confused classes and the
top losses with Grad-CAM) and an export for serving, every format checked against the Keras model (``tlui.export_widgets``, through
``results_widgets.export_zip``). Loading a model, evaluating and exporting wait for
a button, and are cached by the run folder and its version (RunFolder.load_version). The trial
chosen, the images shown and the Grad-CAM switch are drawn with ``persist_state=place.KEPT``: still
there after a visit to another page.

``report_view`` draws a test report (accuracy, macro F1, confusion matrix,
per-class table); ``report_card`` a trial's stored one, for the side-by-side
comparison. File names come from ``tlcore.runfolder.RunFolder``; user text (class
and file names, error messages) is Markdown-escaped.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from optuna.trial import TrialState

from tlcore.calibration import expected_calibration_error
from tlcore.errors import NotFoundError, TLCoreError
from tlcore.evaluate import most_confused, top_losses
from tlcore.predict import read_run_files
from tlcore.runfolder import RunFolder
from tlcore.search import attrs, fetch_trial_run, rung_path
from tlcore.search.compare import TrialSet, parse_key
from tlcore.workspace import Workspace
from tlui import calibration_widgets as cw
from tlui import data, place
from tlui import fmt as tf
from tlui import results_widgets as rw
from tlui.common import md_escape, show_error
from tlui.export_widgets import FORMAT_LABELS, export_section

__all__ = ["evaluate_section", "evaluate_run_view", "report_view", "report_card", "FORMAT_LABELS"]

TOP_LOSSES_DEFAULT = 8
TOP_LOSSES_MAX = 32
GALLERY_COLUMNS = 4
MOST_CONFUSED = 10  # pairs of classes listed


# ---------------------------------------------------------------- reports
def report_view(report: dict[str, Any], class_names: list[str], key: str) -> None:
    """A test report: accuracy, macro F1 and images, the confusion matrix, the per-class table."""
    m = st.columns(3)
    m[0].metric("Test accuracy", tf.pct(report.get("accuracy")))
    m[1].metric("Macro F1", tf.fixed(report.get("macro_f1"), 3),
                help="The mean of the classes' F1 scores: every class counts the same, however many images it has.")
    m[2].metric("Test images", report.get("num_samples", tf.MISSING))
    st.plotly_chart(rw.confusion_figure(report["confusion_matrix"], class_names), key=f"{key}::cm",
                    config={"displayModeBar": False})
    pc = rw.per_class_frame(report)
    if len(pc):
        cc = st.column_config
        st.dataframe(pc, hide_index=True, column_config={
            "precision": cc.NumberColumn(format="percent",
                                         help="Of the images predicted as this class, the share that are."),
            "recall": cc.NumberColumn(format="percent", help="Of this class's images, the share found."),
            "f1": cc.NumberColumn("F1", format="%.3f"),
        })


def report_card(ts: TrialSet, key: str, slot: int) -> None:
    """Trial ``key``'s stored test report under its label, or why it has none; ``slot`` keeps the
    widget keys of the two compared trials apart."""
    t = ts.trials[key]
    st.markdown(f"**{md_escape(rw.trial_label(ts, key))}**")
    report = attrs.metrics(t).get("test")
    if not isinstance(report, dict) or not report.get("confusion_matrix"):
        st.info(rw.not_tested_reason(t, retried_as=ts.retried_as(key)))
        return
    report_view(report, rw.report_class_names(report), f"rs_cmp::{slot}")


# -------------------------------------------------------------- downloads
DL_GONE = "rs_dl_gone"  # session key: the model file that could not be read when its Download was pressed


def _model_problem(path: Path) -> str | None:
    """Why the model file cannot be downloaded (gone, or unreadable), or None when it can."""
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return "is gone (deleted or moved on disk)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _model_bytes(path: Path) -> bytes:
    """The model file's bytes, read when Download is pressed (a deferred download: the file may be
    gone since the page was drawn; the rerun the press starts says so on the page)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"The model file can no longer be read ({exc.strerror or exc}).", received=str(path),
                            fix="Restore the run folder from a copy, or train the model again.") from exc


def _download_pressed(path: str) -> None:
    """The model Download's callback, run first in the rerun the press starts: note a model file that
    cannot be read, so that ``downloads`` says why nothing was downloaded."""
    if _model_problem(Path(path)) is not None:
        st.session_state[DL_GONE] = path


def downloads(run: Path, name: str) -> None:
    """Download buttons for the run's model, labels and metrics files.

    The model is read only when its button is pressed. A model file that is gone (deleted on disk
    since the page was drawn) or cannot be read gets a warning saying so and what to do instead of
    the button; a press after it went reruns the page (``_download_pressed``), which says it (a
    trial's file is fetched again from the artifact store on that rerun, and the button comes back)."""
    folder = RunFolder(run)
    model = folder.model_file
    pressed_gone = st.session_state.pop(DL_GONE, None) == str(model)
    problem = _model_problem(model)
    if problem is not None:
        st.warning(md_escape(f"The model file {model} {problem}, so it cannot be downloaded, evaluated or "
                             "exported. Restore the run folder from a copy, or train the model again."),
                   icon=":material/warning:")
    elif pressed_gone:
        st.info(md_escape(f"{model.name} could not be read when Download was pressed, so nothing was downloaded; "
                          "it is back now (a search trial's model is fetched again from the artifact store): press "
                          "Download again."), icon=":material/info:")
    c = st.columns([2, 1, 1, 3])
    if problem is None:
        c[0].download_button(
            f"Download {model.name}", data=functools.partial(_model_bytes, model),
            file_name=f"{name}{model.suffix}", mime="application/octet-stream", key="rs_dl_model",
            on_click=_download_pressed, args=(str(model),), type="primary", icon=":material/download:",
            help="The Keras 3 model: raw RGB 0-255 images in, class probabilities out (any Keras backend).",
        )
    labels = folder.labels_file
    if labels.is_file():
        c[1].download_button(labels.name, data=labels.read_bytes(), file_name=f"{name}-{labels.name}",
                             mime="text/plain", key="rs_dl_labels", on_click="ignore",
                             help="The class names, one per line, in the model's output order.")
    metrics = folder.metrics_file
    if metrics.is_file():
        c[2].download_button(metrics.name, data=metrics.read_bytes(), file_name=f"{name}-{metrics.name}",
                             mime="application/json", key="rs_dl_metrics", on_click="ignore")


# ------------------------------------------------------------- evaluation
def _image_version(path: str) -> int:
    """The image file's mtime in nanoseconds (the thumbnail's cache key); 0 when it cannot be read."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0


def _prob(p: float) -> str:
    return "< 0.1 %" if p < 0.0005 else tf.pct(p)


def _top_loss_caption(rank: int, file: str, item: dict[str, Any], class_names: Sequence[str]) -> str:
    """One top loss's caption (Markdown; names escaped), what orders the list first:
    ``**1.** loss 3.00 · true cat at 5.0 % · predicted dog at 90.0 % · img0.png``.

    Args:
        rank: its place in the list, from 1.
        file: the image's file name.
        item: a row of ``tlcore.evaluate.top_losses`` (``loss``, ``true``, ``prob_true``, ``pred``,
            ``prob_pred``).
        class_names: the model's classes, in output order.
    """
    true, pred = class_names[item["true"]], class_names[item["pred"]]
    return (f"**{rank}.** loss {item['loss']:.2f} · true {md_escape(true)} at {_prob(item['prob_true'])} · "
            f"predicted {md_escape(pred)} at {_prob(item['prob_pred'])} · {md_escape(file)}")


def top_losses_view(res: dict[str, Any], run: str, run_version: int) -> None:
    """The test images the model got most confidently wrong, with Grad-CAM on request.

    Both rows are drawn ``DISPLAY_PX`` wide (their arrays' width): ``st.image``'s default width
    ("content") fits the element to its caption's line, so a long caption (the top loss's) stretched its
    image to the column and a short one (the Grad-CAM's) drew its image only as wide as the words."""
    st.markdown("**Top losses**: the test images the model got most confidently wrong, highest loss first. "
                "The loss grows as the probability the model gave the true class falls, so that probability "
                "rises along the list; what it predicted instead comes after.")
    probs, y_true = res["probabilities"], res["y_true"]
    mistakes = int((probs.argmax(axis=1) != y_true).sum()) if len(y_true) else 0
    if not mistakes:
        st.success("No mistakes on the test split.")
        return
    hi = min(TOP_LOSSES_MAX, mistakes)
    ss = st.session_state
    ss.setdefault("rs_top_n", TOP_LOSSES_DEFAULT)
    ss["rs_top_n"] = max(1, min(int(ss["rs_top_n"]), hi))
    ss.setdefault("rs_cam", True)
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    if hi > 1:
        k = c1.slider("Images shown", min_value=1, max_value=hi, key="rs_top_n", persist_state=place.KEPT,
                      help=f"{mistakes} of the {len(y_true)} test images are misclassified.")
    else:
        k = 1
        c1.caption(f"1 of the {len(y_true)} test images is misclassified.")
    show_cam = c2.toggle("Grad-CAM", key="rs_cam", persist_state=place.KEPT,
                         help="Colour the parts of each image that raised the wrongly predicted class the most "
                         "(red strongest, blue none), on the image as the model saw it.")
    losses = top_losses(y_true, probs, int(k))
    names = res["class_names"]
    files = [res["files"][x["index"]] for x in losses]
    cams = rw.gradcam_overlays(run, run_version, tuple(files), tuple(int(x["pred"]) for x in losses)) if show_cam else None
    cols = st.columns(GALLERY_COLUMNS)
    for i, item in enumerate(losses):
        rel = res["relpaths"][item["index"]]
        with cols[i % GALLERY_COLUMNS].container(border=True):
            version = _image_version(files[i])
            picture = data.thumb(files[i], version, rw.DISPLAY_PX) if version else None
            caption = _top_loss_caption(i + 1, Path(rel).name, item, names)
            if picture is not None:
                st.image(picture, caption=caption, width=rw.DISPLAY_PX)
            else:
                st.caption(caption + " (the image can no longer be read)")
            if cams is not None and cams[i] is not None:
                st.image(cams[i], caption=f"Grad-CAM: where it saw {md_escape(names[item['pred']])}",
                         width=rw.DISPLAY_PX)


def evaluation_view(res: dict[str, Any], run: str, run_version: int, *, metrics: Mapping[str, Any] | None = None,
                    damaged: bool = False) -> None:
    """The trial evaluated again: its report, the most confused classes, the top losses.
    ``metrics``: the run's metrics as ``read_run_files`` read them (for its stored calibration);
    ``damaged``: its stored calibration cannot be read (``calibration_widgets.calibration_view``)."""
    report = res["report"]
    if not report.get("num_samples"):
        st.info("None of this trial's test images are in the dataset any more, so there is nothing to evaluate.")
        return
    if res["missing"]:
        n = len(res["missing"])
        st.warning(f"{n} of the run's test images {'is' if n == 1 else 'are'} gone from the dataset, excluded by a "
                   f"decision or no longer usable; these results are on the other {report['num_samples']}.")
    elif not res["same_test_set"]:
        st.caption("The test images changed since training (the dataset was edited and rescanned).")
    st.caption(f"Evaluated again on the run's {report['num_samples']} test images:")
    left, right = st.columns([3, 2])
    with left:
        report_view(report, res["class_names"], "rs_eval")
    with right:
        pairs = most_confused(report["confusion_matrix"], res["class_names"], MOST_CONFUSED)
        if pairs:
            st.markdown("**Most confused**")
            st.dataframe(pd.DataFrame(pairs, columns=["true", "predicted", "images"]), hide_index=True)
    cw.calibration_view(cw.stored_calibration(metrics or {}), "rs_eval",
                        ece_now=expected_calibration_error(res["probabilities"], res["y_true"]), damaged=damaged)
    top_losses_view(res, run, run_version)


def evaluate_run_view(ws: Workspace, run: Path, run_version: int, report: Any) -> None:
    """The stored report and the Evaluate button; once pressed (for this model file), the evaluation.
    Also the Results page's trained runs' (``tlui.run_widgets``).

    A warning for each file of the run that exists but cannot be read (``tlcore.predict.read_run_files``:
    which file, what that changes, how to fix it), read without loading the model."""
    files = read_run_files(run)
    for note in files.notes:
        st.warning(md_escape(note), icon=":material/warning:")
    eval_id = f"{run}|{run_version}"
    ss = st.session_state
    ss.setdefault("rs_evaluated", [])
    if eval_id not in ss["rs_evaluated"]:
        if isinstance(report, dict) and report.get("confusion_matrix"):
            st.caption("As measured when it finished training:")
            report_view(report, rw.report_class_names(report), "rs_stored")
        cw.calibration_view(cw.stored_calibration(files.metrics), "rs_stored", damaged=files.calibration_unknown)
        if st.button("Evaluate on the test split", key="rs_eval_btn", type="primary",
                     help="Load the model, classify its test images again, and show its worst mistakes "
                     "with Grad-CAM."):
            ss["rs_evaluated"] = [*ss["rs_evaluated"], eval_id]
            st.rerun()
        return
    try:
        res = rw.cached_evaluation(str(ws.root), str(run), run_version, data.dataset_token(ws, run))
    except TLCoreError as exc:
        show_error(exc)
    else:
        evaluation_view(res, str(run), run_version, metrics=files.metrics, damaged=files.calibration_unknown)


def evaluate_section(ts: TrialSet) -> None:
    """Choose a trial (the best at first); show its rungs, its files, its evaluation and the export."""
    st.subheader("Evaluate a trial")
    keys = list(ts.trials)
    if not keys:
        st.info("The study has no trials yet.")
        return
    ranked = ts.ranked()
    rw.keep_valid("rs_eval", keys, ranked[0] if ranked else keys[0])
    st.selectbox("Trial", keys, key="rs_eval", format_func=functools.partial(rw.trial_label, ts),
                 persist_state=place.KEPT,
                 help="The best trial (★) at first; any complete trial has its model and can be evaluated.")
    key = st.session_state["rs_eval"]
    study, number = parse_key(key)
    t = ts.trials[key]
    rungs = rw.rungs_frame(t)
    if len(rungs):
        st.caption(md_escape(f"Successive halving: {rung_path(t)}. Its value after each rung's epoch:"))
        st.dataframe(rungs, hide_index=True, key="rs_rungs",
                     column_config={"value": st.column_config.NumberColumn(format="%.4f")})
    if t.state != TrialState.COMPLETE:
        st.info(rw.not_tested_reason(t, retried_as=ts.retried_as(key)))
        return
    m = attrs.metrics(t)
    try:
        run = fetch_trial_run(ts.ws, study, number, ts.storage)
    except NotFoundError as exc:
        st.info(md_escape(f"{exc.message} {exc.fix or ''}".strip()))
        return
    name = f"{study}-trial{number}"
    params = ", ".join(f"{p.replace('_', ' ')} {tf.cell(v)}" for p, v in sorted(t.params.items()))
    st.caption(md_escape(f"{params} · best epoch {m.get('best_epoch', '?')} of "
                         f"{attrs.epochs(t)} · run folder {run}"))
    downloads(run, name)
    run_version = rw.run_version(run)
    evaluate_run_view(ts.ws, run, run_version, m.get("test"))
    export_section(run, name, run_version, str(ts.ws.root))
