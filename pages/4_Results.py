"""Results: compare the trials of one or more searches, look at a trial's mistakes, download it.

Thin: ``tlcore.search`` reads the studies (trial table, learning curves, Optuna's
views, a trial's run folder), ``tlcore.predict``/``tlcore.evaluate`` evaluate a
trial's model again, ``tlcore.gradcam`` explains its mistakes and ``tlcore.export``
packs it for serving; the cached loaders and charts are in ``tlui.results_widgets``.
Heavy work (loading a model, evaluating, exporting) waits for a button and is
cached. The chosen studies live in ``st.query_params["study"]`` (repeated for
several). User-controlled text (study, class and file names, messages quoting
them) is Markdown-escaped, HTML-escaped in plotly labels, or shown as plain text.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import streamlit as st
from optuna.trial import FrozenTrial, TrialState

from tlcore.errors import NotFoundError, TLCoreError
from tlcore.evaluate import most_confused, top_losses
from tlcore.export import FORMATS
from tlcore.runfolder import LABELS_FILE, METRICS_FILE, MODEL_CARD_FILE, MODEL_FILE, RunFolder
from tlcore.search import (
    StudySummary,
    attrs,
    check_storage_location,
    dashboard_command,
    fetch_trial_run,
    learning_curves,
    list_studies,
    load_study,
    load_study_frame,
    rung_path,
)
from tlcore.search.direction import maximizes, rank_key
from tlcore.workspace import Workspace
from tlui import data
from tlui import results_widgets as rw
from tlui import scout_widgets as sc
from tlui.common import md_escape, open_workspace, show_error, sidebar_nav, sidebar_workspace

APP_DIR = Path(__file__).resolve().parent.parent
SEARCH_PAGE = "pages/3_Search.py"
CURVES_DEFAULT = 5  # trials whose curves are drawn at first (the best ones)
TOP_LOSSES_DEFAULT = 8
TOP_LOSSES_MAX = 32
GALLERY_COLUMNS = 4
STATE_WORDS = rw.STATE_WORDS  # state -> word; DIVERGED (a pruned trial that diverged) -> "diverged"
FORMAT_LABELS = {
    "keras": "Keras 3 (.keras)",
    "savedmodel": "TensorFlow SavedModel",
    "tflite": "TFLite, float32",
    "tflite_dynamic": "TFLite, dynamic-range quantized",
}
VIEW_HELP = {
    "optimization history": "Each trial's objective value in the order the trials ran, and the best so far.",
    "parameter importances": "How much of the variation in the objective each parameter explains (fANOVA).",
    "parallel coordinates": "Every complete trial as a line through its parameters to its objective value.",
    "contour": "The objective over two parameters, interpolated between the trials tried.",
    "slice": "The objective against each parameter on its own.",
    "intermediate values": "The objective after each epoch: what the pruner compares.",
    "timeline": "When each trial ran, on which worker slot, and how it ended.",
}
SEARCH_HINT = ("python -m tlcore search create --spec study.yaml\n"
               "python -m tlcore search run --study NAME --workers 2")


# ------------------------------------------------------------------ context
class Chosen:
    """The chosen studies and their trials, read once per rerun.

    Attributes:
        names: the chosen studies, in the order chosen.
        summaries: name -> ``StudySummary``.
        studies: name -> ``optuna.Study``.
        trials: trial key ("study/number") -> ``FrozenTrial``, study by study, by number.
    """

    def __init__(self, ws: Workspace, storage: str | None, names: list[str], summaries: dict[str, StudySummary]):
        self.ws, self.storage, self.names = ws, storage, names
        self.summaries = {n: summaries[n] for n in names}
        self.studies: dict[str, optuna.Study] = {n: load_study(ws, n, storage) for n in names}
        self.trials: dict[str, FrozenTrial] = {
            rw.trial_key(n, t.number): t
            for n in names for t in sorted(self.studies[n].get_trials(deepcopy=False), key=lambda t: t.number)
        }
        self._ranked = self._rank()

    @property
    def many(self) -> bool:
        return len(self.names) > 1

    def label(self, key: str) -> str:
        """Plain text naming a trial in menus and legends."""
        study, number = rw.parse_key(key)
        t = self.trials[key]
        head = f"{study} #{number}" if self.many else f"trial {number}"
        parts = [head] + ([f"{t.value:.4f}"] if t.value is not None else [])
        if t.state != TrialState.COMPLETE:
            parts.append(rw.state_word(t))
        return " · ".join(parts) + (" ★" if self._ranked[:1] == [key] else "")

    def ranked(self) -> list[str]:
        """Complete trials best first (a copy)."""
        return list(self._ranked)

    def _rank(self) -> list[str]:
        """Complete trials best first. Across studies only when they share objective and direction;
        otherwise study by study, in the order chosen."""
        comparable = len({(s.objective, s.direction) for s in self.summaries.values()}) == 1

        def order(key: str) -> tuple[int, float]:
            study, _ = rw.parse_key(key)
            v = float(self.trials[key].value)
            return (0 if comparable else self.names.index(study), rank_key(v, self.summaries[study].direction))

        done = [k for k, t in self.trials.items() if t.state == TrialState.COMPLETE and t.value is not None]
        return sorted(done, key=order)


def keep_valid(key: str, options: list[Any], default: Any, *, many: bool = False) -> None:
    """Set widget ``key`` to ``default`` unless its value is still among ``options``
    (for a multiselect: drop the values that are gone)."""
    ss = st.session_state
    if many:
        ss[key] = [v for v in ss[key] if v in options] if key in ss else list(default)
    elif ss.get(key) not in options:
        ss[key] = default


# ---------------------------------------------------------------- sections
def sidebar_storage() -> str | None:
    with st.sidebar.expander("Study storage"):
        st.text_input(
            "Storage", key="rs_storage", placeholder="the workspace's own journal",
            help="Leave empty for the workspace's studies. A path to a journal .log file, or a database URL "
            "(postgresql://USER:PASSWORD@HOST/DB) that remote workers share.",
        )
    value = str(st.session_state.get("rs_storage") or "").strip()
    return value or None


def no_studies(storage: str | None) -> None:
    where = "this storage" if storage else "this workspace"
    st.info(
        f"No studies in {where} yet. A study is an Optuna search: it trains many models with different "
        "freeze depths and learning rates and keeps each trial's model, learning curves and test results. "
        "Start one on the Search page; its trials appear here as they finish."
    )
    if (APP_DIR / SEARCH_PAGE).is_file():
        st.page_link(SEARCH_PAGE, label="Go to the Search page", icon=":material/tune:")
    else:
        st.caption("Or start one from a terminal:")
    st.code(SEARCH_HINT, language="bash")


def choose_studies(by_name: dict[str, StudySummary]) -> list[str]:
    names = list(by_name)
    ss = st.session_state
    if "rs_studies" in ss:
        ss["rs_studies"] = [n for n in ss["rs_studies"] if n in names]
    else:
        wanted = [n for n in st.query_params.get_all("study") if n in names]
        ss["rs_studies"] = list(dict.fromkeys(wanted)) or names[:1]
    c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
    c1.multiselect(
        "Studies", names, key="rs_studies",
        format_func=lambda n: f"{n}  ·  {by_name[n].dataset}  ·  {by_name[n].finished} finished",
        help="Newest first. Choose several to compare their optimization histories and stack their trials.",
    )
    c2.button("Refresh", key="rs_refresh", help="Read the studies again (running trials move on).")
    chosen = list(ss["rs_studies"])
    if chosen:
        st.query_params["study"] = chosen
    elif "study" in st.query_params:
        del st.query_params["study"]
    return chosen


def overview(ch: Chosen) -> None:
    if ch.many:
        rows = [{"study": s.name, "dataset": s.dataset, "objective": f"{s.objective} ({s.direction})",
                 "finished": s.finished, "budget": s.n_trials, "running": s.running,
                 "complete": s.counts.get("COMPLETE", 0), "pruned": s.counts.get("PRUNED", 0),
                 "failed": s.counts.get("FAIL", 0), "best value": s.best_value, "best trial": s.best_trial}
                for s in ch.summaries.values()]
        st.dataframe(pd.DataFrame(rows), hide_index=True,
                     column_config={"best value": st.column_config.NumberColumn(format="%.4f")})
        return
    s = next(iter(ch.summaries.values()))
    m = st.columns(5)
    m[0].metric("Trials finished", f"{s.finished}" + (f" of {s.n_trials}" if s.n_trials else ""),
                help="Complete and pruned trials; the study's budget after 'of'.")
    m[1].metric("Complete", s.counts.get("COMPLETE", 0))
    m[2].metric("Pruned · failed", f"{s.counts.get('PRUNED', 0)} · {s.counts.get('FAIL', 0)}")
    m[3].metric("Running", s.running)
    m[4].metric(f"Best {s.objective}", f"{s.best_value:.4f}" if s.best_value is not None else "–",
                help=f"Trial {s.best_trial}." if s.best_trial is not None else "No complete trial yet.")
    diverged = sum(rw.state_word(t) == "diverged" for t in ch.trials.values())
    st.caption(f"Dataset {md_escape(s.dataset)} · {md_escape(s.direction)} {md_escape(s.objective)}"
               + (f" · {diverged} of the pruned trials diverged" if diverged else "")
               + (" · stop requested" if s.stop_requested else ""))


def figures_section(ch: Chosen) -> None:
    st.subheader("Optuna's views")
    order = list(ch.names)
    if ch.many:
        keep_valid("rs_focus", order, order[0])
        st.selectbox("Study of the single-study views", order, key="rs_focus",
                     help="The optimization history compares every chosen study; Optuna's other views show one.")
        focus = st.session_state["rs_focus"]
        order = [focus] + [n for n in order if n != focus]
    tokens = tuple(rw.study_token(ch.studies[n]) for n in order)
    figs = rw.study_figures_cached(str(ch.ws.root), ch.storage, tuple(order), tokens)
    tabs = st.tabs([name.capitalize() for name in figs])
    for tab, (name, fig) in zip(tabs, figs.items()):
        with tab:
            if VIEW_HELP.get(name):
                st.caption(VIEW_HELP[name])
            if isinstance(fig, str):
                st.info(md_escape(fig))
            else:
                st.plotly_chart(fig, key=f"rs_fig::{name}")


def trial_table(ch: Chosen) -> pd.DataFrame:
    frames = []
    for n in ch.names:
        f = rw.trial_table(load_study_frame(ch.ws, n, ch.storage), ch.studies[n].get_trials(deepcopy=False))
        if ch.many:
            f.insert(0, "study", n)
        frames.append(f)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["number", "state", "value"])


def table_config(df: pd.DataFrame) -> dict[str, Any]:
    cc = st.column_config
    cfg: dict[str, Any] = {
        "number": cc.NumberColumn("trial", format="%d"),
        "value": cc.NumberColumn("value", format="%.4f", help="The study's objective."),
        "best_val_accuracy": cc.NumberColumn("best val accuracy", format="percent"),
        "test_accuracy": cc.NumberColumn("test accuracy", format="percent",
                                         help="Of the best epoch's weights, on the held-out test split."),
        "duration_s": cc.NumberColumn("duration", format="%.0f s"),
        "started": cc.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
        "completed": cc.DatetimeColumn("completed", format="YYYY-MM-DD HH:mm:ss"),
        "retry_of": cc.NumberColumn("retry of", format="%d"),
        "rungs": cc.TextColumn("rungs", help="The data it trained on: one epoch on each subset (a successive-"
                               "halving rung), then all of it if promoted."),
        "diverged": cc.TextColumn("why it diverged"),
    }
    for col in df.columns:
        if str(col).startswith("params_"):
            label = str(col)[len("params_"):].replace("_", " ")
            floats = pd.api.types.is_float_dtype(df[col])
            cfg[col] = cc.NumberColumn(label, format="%.2e") if floats else label
    return cfg


def table_section(ch: Chosen) -> None:
    st.subheader("Trials")
    df = trial_table(ch)
    states = sorted(df["state"].astype(str).unique()) if len(df) else []
    ss = st.session_state
    seen = ss.get("rs_states_seen")
    keep_valid("rs_states", states, states, many=True)
    if seen is not None:  # a state that appeared since the last rerun (a trial completed) is shown
        ss["rs_states"] = ss["rs_states"] + [s for s in states if s not in seen and s not in ss["rs_states"]]
    ss["rs_states_seen"] = states
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.multiselect("States", states, key="rs_states", format_func=lambda s: STATE_WORDS.get(s, s.lower()))
    c2.number_input("Value at least", value=None, format="%.4f", step=0.01, key="rs_min_value",
                    placeholder="any", help="Hide trials whose objective value is lower (or missing).")
    view = df[df["state"].isin(ss["rs_states"])] if len(df) else df
    low = ss.get("rs_min_value")
    if low is not None and len(view):
        view = view[view["value"].notna() & (view["value"] >= low)]
    if len(view):
        maximize = all(maximizes(s.direction) for s in ch.summaries.values())
        view = view.sort_values(["value", "number"], ascending=[not maximize, True], na_position="last")
    st.dataframe(view, hide_index=True, column_config=table_config(view))
    st.caption(f"{len(view)} of {len(df)} trials shown, best first; click a column's header to sort by it.")
    stem = "-".join(ch.names) if len(ch.names) <= 3 else f"{len(ch.names)}-studies"
    st.download_button("Download the table (CSV)", data=view.to_csv(index=False), file_name=f"{stem}-trials.csv",
                       mime="text/csv", key="rs_csv", on_click="ignore", icon=":material/download:")


def curves_frame(ch: Chosen, keys: list[str]) -> pd.DataFrame:
    """``learning_curves`` of the trials ``keys`` (any studies), with their key, in that order."""
    by_study: dict[str, list[int]] = {}
    for k in keys:
        s, n = rw.parse_key(k)
        by_study.setdefault(s, []).append(n)
    tables = {s: learning_curves(ch.studies[s], nums) for s, nums in by_study.items()}
    parts = []
    for k in keys:
        s, n = rw.parse_key(k)
        part = tables[s][tables[s]["trial"] == n]
        parts.append(part.assign(key=k))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["trial", "epoch", "phase", "split", "metric", "value", "key"])


def curves_section(ch: Chosen) -> None:
    st.subheader("Learning curves")
    with_history = [k for k, t in ch.trials.items() if attrs.history(t)]
    if not with_history:
        st.info("No trial has finished an epoch yet.")
        return
    default = [k for k in ch.ranked() if k in with_history][:CURVES_DEFAULT] or with_history[:CURVES_DEFAULT]
    keep_valid("rs_curves", with_history, default, many=True)
    st.multiselect("Trials", with_history, key="rs_curves", format_func=ch.label,
                   help="Any trial that finished an epoch, pruned and running ones too. ★ marks the best.")
    keys = list(st.session_state["rs_curves"])
    if not keys:
        st.caption("Choose trials to draw their curves.")
        return
    st.plotly_chart(rw.curves_figure(curves_frame(ch, keys), {k: ch.label(k) for k in keys}), key="rs_curves_fig")
    st.caption("Solid lines: the training split; dashed: validation. One colour per trial; click a legend "
               "entry to hide a trial.")


def report_card(ch: Chosen, key: str, slot: int) -> None:
    """A trial's stored test report: accuracy, confusion matrix, per-class table."""
    t = ch.trials[key]
    st.markdown(f"**{md_escape(ch.label(key))}**")
    report = attrs.metrics(t).get("test")
    if not isinstance(report, dict) or not report.get("confusion_matrix"):
        st.info(rw.not_tested_reason(t))
        return
    report_view(report, rw.report_class_names(report), f"rs_cmp::{slot}")


def report_view(report: dict[str, Any], class_names: list[str], key: str) -> None:
    m = st.columns(3)
    m[0].metric("Test accuracy", rw.pct(report.get("accuracy")))
    m[1].metric("Macro F1", f"{report['macro_f1']:.3f}" if report.get("macro_f1") is not None else "–",
                help="The mean of the classes' F1 scores: every class counts the same, however many images it has.")
    m[2].metric("Test images", report.get("num_samples", "–"))
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


def params_table(ch: Chosen, a: str, b: str) -> pd.DataFrame:
    ta, tb = ch.trials[a], ch.trials[b]

    def facts(t: FrozenTrial) -> dict[str, str]:
        m = attrs.metrics(t)
        dur = attrs.duration_seconds(t)
        out = {"state": rw.state_word(t), "value": rw.fmt(t.value)}
        out.update({p.replace("_", " "): rw.fmt(v) for p, v in sorted(t.params.items())})
        out.update({
            "epochs": rw.fmt(attrs.epochs(t)),
            "best epoch": rw.fmt(m.get("best_epoch")),
            "test accuracy": rw.pct(m.get("test_accuracy")),
            "duration": f"{dur:.0f} s" if dur is not None else "–",
            **rw.rung_facts(t),
        })
        return out

    fa, fb = facts(ta), facts(tb)
    rows = list(dict.fromkeys([*fa, *fb]))
    return pd.DataFrame({"": rows, ch.label(a): [fa.get(r, "–") for r in rows],
                         ch.label(b): [fb.get(r, "–") for r in rows]})


def compare_section(ch: Chosen) -> None:
    st.subheader("Compare two trials")
    keys = list(ch.trials)
    if len(keys) < 2:
        st.info("Comparing needs two trials; this study has fewer so far.")
        return
    ranked = ch.ranked()
    defaults = list(dict.fromkeys([*ranked, *keys]))
    keep_valid("rs_cmp_a", keys, defaults[0])
    keep_valid("rs_cmp_b", keys, next(k for k in defaults if k != st.session_state["rs_cmp_a"]))
    c1, c2 = st.columns(2)
    c1.selectbox("First trial", keys, key="rs_cmp_a", format_func=ch.label)
    c2.selectbox("Second trial", keys, key="rs_cmp_b", format_func=ch.label)
    a, b = st.session_state["rs_cmp_a"], st.session_state["rs_cmp_b"]
    if a == b:
        st.info("Choose two different trials.")
        return
    st.dataframe(params_table(ch, a, b), hide_index=True)
    curves = curves_frame(ch, [a, b])
    if len(curves):
        st.plotly_chart(rw.curves_figure(curves, {k: ch.label(k) for k in (a, b)}), key="rs_cmp_curves")
    cols = st.columns(2)
    for slot, (col, key) in enumerate(zip(cols, (a, b))):
        with col:
            report_card(ch, key, slot)
    st.caption("As measured on each trial's test split when it finished (the best epoch's weights).")


# ------------------------------------------------------------- evaluation
def downloads(run: Path, name: str) -> None:
    folder = RunFolder(run)
    c = st.columns([2, 1, 1, 3])
    c[0].download_button(
        f"Download {MODEL_FILE}", data=functools.partial(folder.model_file.read_bytes),
        file_name=f"{name}.keras", mime="application/octet-stream", key="rs_dl_model", on_click="ignore",
        type="primary", icon=":material/download:",
        help="The Keras 3 model: raw RGB 0-255 images in, class probabilities out (any Keras backend).",
    )
    labels = folder.labels_file
    if labels.is_file():
        c[1].download_button(LABELS_FILE, data=labels.read_bytes(), file_name=f"{name}-{LABELS_FILE}",
                             mime="text/plain", key="rs_dl_labels", on_click="ignore",
                             help="The class names, one per line, in the model's output order.")
    metrics = folder.metrics_file
    if metrics.is_file():
        c[2].download_button(METRICS_FILE, data=metrics.read_bytes(), file_name=f"{name}-{METRICS_FILE}",
                             mime="application/json", key="rs_dl_metrics", on_click="ignore")


def export_section(run: Path, name: str, mtime: int) -> None:
    import keras

    with st.expander("Export for serving: Keras, SavedModel, TFLite, with the model card"):
        tf_ok = keras.backend.backend() == "tensorflow"
        options = list(FORMATS) if tf_ok else ["keras"]
        keep_valid("rs_formats", options, [f for f in ("keras", "tflite") if f in options], many=True)
        st.multiselect("Formats", options, key="rs_formats", format_func=lambda f: FORMAT_LABELS.get(f, f))
        if not tf_ok:
            st.caption("SavedModel and TFLite need the TensorFlow backend (KERAS\\_BACKEND=tensorflow).")
        st.caption("Every export holds labels.txt and model\\_card.json (what the model expects and returns, "
                   "how it was trained, its metrics). TFLite conversion takes a minute or more.")
        formats = tuple(f for f in FORMATS if f in st.session_state["rs_formats"])
        request = [str(run), mtime, list(formats)]
        if st.button("Build the export", key="rs_export_btn", disabled=not formats):
            st.session_state["rs_export_req"] = request
        if st.session_state.get("rs_export_req") != request:
            return
        try:
            with st.spinner("Exporting…"):
                out = rw.export_zip(str(run), mtime, formats, name)
        except TLCoreError as exc:
            st.session_state.pop("rs_export_req", None)
            show_error(exc)
            return
        c1, c2 = st.columns(2)
        c1.download_button("Download the export (.zip)", data=out["zip"], file_name=f"{name}-export.zip",
                           mime="application/zip", key="rs_dl_export", on_click="ignore", type="primary",
                           icon=":material/download:")
        c2.download_button(MODEL_CARD_FILE, data=out["card"], file_name=f"{name}-{MODEL_CARD_FILE}",
                           mime="application/json", key="rs_dl_card", on_click="ignore")
        files = pd.DataFrame([{"file": f, "bytes": v.get("bytes")} for f, v in out["files"].items()])
        st.dataframe(files, hide_index=True, column_config={"bytes": st.column_config.NumberColumn(format="compact")})


def top_losses_view(res: dict[str, Any], run: str, mtime: int) -> None:
    st.markdown("**Top losses**: the test images the model got most confidently wrong.")
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
        k = c1.slider("Images shown", min_value=1, max_value=hi, key="rs_top_n",
                      help=f"{mistakes} of the {len(y_true)} test images are misclassified.")
    else:
        k = 1
        c1.caption(f"1 of the {len(y_true)} test images is misclassified.")
    show_cam = c2.toggle("Grad-CAM", key="rs_cam",
                         help="Colour the parts of each image that raised the wrongly predicted class the most "
                         "(red strongest, blue none), on the image as the model saw it.")
    losses = top_losses(y_true, probs, int(k))
    names = res["class_names"]
    files = [res["files"][x["index"]] for x in losses]
    cams = rw.gradcam_overlays(run, mtime, tuple(files), tuple(int(x["pred"]) for x in losses)) if show_cam else None
    cols = st.columns(GALLERY_COLUMNS)
    for i, item in enumerate(losses):
        path = files[i]
        rel = res["relpaths"][item["index"]]
        with cols[i % GALLERY_COLUMNS].container(border=True):
            try:
                version = Path(path).stat().st_mtime_ns
            except OSError:
                version = 0
            picture = data.thumb(path, version, rw.DISPLAY_PX) if version else None
            true, pred = names[item["true"]], names[item["pred"]]
            caption = (f"{md_escape(Path(rel).name)}: true {md_escape(true)}, predicted {md_escape(pred)} "
                       f"({100 * item['prob_pred']:.0f} %)")
            if picture is not None:
                st.image(picture, caption=caption)
            else:
                st.caption(caption + " (the image can no longer be read)")
            if cams is not None and cams[i] is not None:
                st.image(cams[i], caption=f"Grad-CAM: where it saw {md_escape(pred)}")


def evaluation_view(res: dict[str, Any], run: str, mtime: int) -> None:
    report = res["report"]
    if not report.get("num_samples"):
        st.info("None of this trial's test images are in the dataset any more, so there is nothing to evaluate.")
        return
    if res["missing"]:
        st.warning(f"{len(res['missing'])} of the run's test images are gone from the dataset or no longer usable; "
                   f"these results are on the other {report['num_samples']}.")
    elif not res["same_test_set"]:
        st.caption("The test images changed since training (the dataset was edited and rescanned).")
    st.caption(f"Evaluated again on the run's {report['num_samples']} test images:")
    left, right = st.columns([3, 2])
    with left:
        report_view(report, res["class_names"], "rs_eval")
    with right:
        pairs = most_confused(report["confusion_matrix"], res["class_names"], 10)
        if pairs:
            st.markdown("**Most confused**")
            st.dataframe(pd.DataFrame(pairs, columns=["true", "predicted", "images"]), hide_index=True)
    top_losses_view(res, run, mtime)


def evaluate_section(ch: Chosen) -> None:
    st.subheader("Evaluate a trial")
    keys = list(ch.trials)
    if not keys:
        st.info("The study has no trials yet.")
        return
    ranked = ch.ranked()
    keep_valid("rs_eval", keys, ranked[0] if ranked else keys[0])
    st.selectbox("Trial", keys, key="rs_eval", format_func=ch.label,
                 help="The best trial (★) at first; any complete trial has its model and can be evaluated.")
    key = st.session_state["rs_eval"]
    study, number = rw.parse_key(key)
    t = ch.trials[key]
    rungs = rw.rungs_frame(t)
    if len(rungs):
        st.caption(md_escape(f"Successive halving: {rung_path(t)}. Its value after each rung's epoch:"))
        st.dataframe(rungs, hide_index=True, key="rs_rungs",
                     column_config={"value": st.column_config.NumberColumn(format="%.4f")})
    if t.state != TrialState.COMPLETE:
        st.info(rw.not_tested_reason(t))
        return
    m = attrs.metrics(t)
    try:
        run = fetch_trial_run(ch.ws, study, number, ch.storage)
    except NotFoundError as exc:
        st.info(md_escape(f"{exc.message} {exc.fix or ''}".strip()))
        return
    name = f"{study}-trial{number}"
    params = ", ".join(f"{p.replace('_', ' ')} {rw.fmt(v)}" for p, v in sorted(t.params.items()))
    st.caption(md_escape(f"{params} · best epoch {m.get('best_epoch', '?')} of "
                         f"{attrs.epochs(t)} · run folder {run}"))
    downloads(run, name)
    mtime = rw.model_mtime(run)
    eval_id = f"{run}|{mtime}"
    ss = st.session_state
    ss.setdefault("rs_evaluated", [])
    if eval_id not in ss["rs_evaluated"]:
        report = m.get("test") if isinstance(m, dict) else None
        if isinstance(report, dict) and report.get("confusion_matrix"):
            st.caption("As measured when the trial finished:")
            report_view(report, rw.report_class_names(report), "rs_stored")
        if st.button("Evaluate on the test split", key="rs_eval_btn", type="primary",
                     help="Load the model, classify its test images again, and show its worst mistakes "
                     "with Grad-CAM."):
            ss["rs_evaluated"] = [*ss["rs_evaluated"], eval_id]
            st.rerun()
    else:
        try:
            res = rw.cached_evaluation(str(ch.ws.root), str(run), mtime, rw.dataset_token(ch.ws, run))
        except TLCoreError as exc:
            show_error(exc)
        else:
            evaluation_view(res, str(run), mtime)
    export_section(run, name, mtime)


def dashboard_section(ws: Workspace, storage: str | None) -> None:
    with st.expander("Open the studies in optuna-dashboard"):
        st.caption("optuna-dashboard shows the same studies live, with more of Optuna's views. Run in a terminal:")
        try:
            st.code(dashboard_command(ws, storage), language="bash")
        except TLCoreError as exc:
            show_error(exc)


# -------------------------------------------------------------------- page
def main() -> None:
    st.set_page_config(page_title="Results · Transfer-learning workbench", layout="wide")
    sidebar_nav()
    ws = open_workspace()
    sidebar_workspace(ws)
    storage = sidebar_storage()
    st.title("Results")
    try:
        summaries = list_studies(ws, check_storage_location(ws, storage))
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
    if not summaries:
        no_studies(storage)
        return
    by_name = {s.name: s for s in summaries}
    names = choose_studies(by_name)
    if not names:
        st.info("Choose one or more studies above.")
        return
    try:
        ch = Chosen(ws, storage, names, by_name)
    except TLCoreError as exc:
        show_error(exc)
        return
    overview(ch)
    with rw.guard("Drawing Optuna's views"):
        figures_section(ch)
    with rw.guard("Reading the trial table"):
        table_section(ch)
    with rw.guard("Comparing the scout with the trials"):
        sc.agreement_section(ch.ws, ch.storage, ch.studies)
    with rw.guard("Drawing the learning curves"):
        curves_section(ch)
    with rw.guard("Comparing the trials"):
        compare_section(ch)
    with rw.guard("Evaluating the trial"):
        evaluate_section(ch)
    dashboard_section(ws, storage)


main()
