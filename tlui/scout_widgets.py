"""The scout on the pages: the Search page's Scout step and the Results page's "Scout vs the trials".

Search page (``scout_section``, keys ``se_scout_*``): the scout of ``tlcore.scout``
on the New-study form's dataset, backbones and image size (read from its session
keys ``se_new_*``), run in the background (``launch_scout``) and followed by an
``st.fragment`` on a timer. A scout of those settings running though this session did not
start it (a reload, a second tab or browser, another server) is found from its record on disk
(``running_scouts``) and followed the same way, with Run scout off meanwhile; a press that
``launch_scout`` refuses because one just started elsewhere follows that one. The newest
saved result for those settings (``latest_result``: also after the page is reopened) is drawn as each per-depth
score against the depth and as the ranked table; saved files that cannot be read (damaged,
not a scout) are named in a warning and left as they are, and a damaged status file of a
running scout reads as a failed scout, never a traceback (``tlcore.scout.scout_status``). Two buttons act on the form
through callbacks (which run before the next rerun, so before its widgets exist):
"Narrow" sets the freeze-depth slider (``se_new_depth``) to the top depths, and
"Start the study with the top K" asks the form (``scout_spec_option``) to give the
new study a scout that reuses these cached features and seeds its first K trials. The
section's banners show in its own slot (``SLOT``); it opens (``OPEN``, ``tlui.place``) while a
scout runs or when it has a banner or an error to show.

Results page (``agreement_section``, keys ``re_scout_*``): a study's scout record
(``tlcore.search.attrs.scout_record``) and ``tlcore.search.seeding.scout_agreement``: Kendall's tau between each
score and the trials' validation accuracy. When the scout seeded no trial, ``unseeded_text`` gives the
reason the scout recorded (``unseeded``).

User text (dataset and study names, error messages) is Markdown-escaped, or
HTML-escaped in plotly labels; numbers and labels go through ``tlui.fmt``.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from tlcore import backbones as bb
from tlcore.errors import TLCoreError
from tlcore.scout import (
    DEPTH_SCORES,
    SCORES,
    ScoutAlreadyRunning,
    ScoutResult,
    latest_result,
    launch_scout,
    ranking_scores,
    running_scouts,
    scout_cost_for,
    scout_status,
)
from tlcore.search import StudySpec, attrs, load_spec
from tlcore.search.seeding import scout_agreement
from tlcore.search.spec import SCOUT_DEFAULTS
from tlcore.workspace import Workspace
from tlui import fields, place
from tlui import fmt as tf
from tlui.common import md_escape

__all__ = ["SLOT", "OPEN", "scout_section", "scout_spec_option", "seed_note", "depth_figure", "ranked_view",
           "agreement_section", "agreement_table", "unseeded_text", "SCORE_LABELS", "skipped_text"]

TITLE = "Scout: rank the depths before training"
DEFAULT_IMAGES = SCOUT_DEFAULTS["images"]
SLOT = "scout"  # the section's banner slot (tlui.place)
OPEN = "se_scout_open"  # whether the section's expander is open (tlui.place)
DEFAULT_K = 3
NARROW_TOP = 3  # depths the "Narrow" button keeps the range around
MAX_K = 20
REFRESH_S = 1  # seconds between reads of a running scout's progress
MAX_SKIPPED_SHOWN = 3  # unreadable saved scout files named in the warning
SCORE_LABELS = {"logme_stack": "stacked LogME", "logme": "LogME", "transrate": "TransRate", "leep": "LEEP",
                "nce": "NCE", "combined": "combined"}
COLUMNS = ["backbone", "depth", "width", *SCORES, "combined_rank"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
EXPLAIN = (
    "One forward pass over a sample of the training images scores every freeze depth of the chosen backbones: "
    "**stacked LogME** (the features of every block a trial at that depth trains, from the depth to the top), "
    "which ranks them, beside four published scores (LogME and TransRate of the frozen features at each "
    "depth; LEEP and NCE once per backbone, from its ImageNet head): seconds, not the hours of training "
    "every depth."
)
CAVEAT = (
    "A hint for the search, not its answer: on our benchmarks the stacked score ranked the depths the right "
    "way round but far from perfectly (Kendall τ 0.55 on Fashion-MNIST, 0.87 on drawn shapes), and "
    "LogME and TransRate of the frozen features favour the deepest depths, which fine-tune worst on data "
    "unlike ImageNet. The Results page measures how well each score ranked your own trials."
)
TAU_CAPTION = ("τ = 1: the score ranked the finished trials exactly as their validation accuracy did; "
               "0: no better than chance; below 0: the wrong way round.")


# ------------------------------------------------------------------ helpers
def _display(backbone: str) -> str:
    try:
        return bb.get(backbone).display_name
    except TLCoreError:
        return backbone


def _settings_key(dataset: str, size: int, backbones: list[str]) -> str:
    return f"{dataset}|{size}|{','.join(sorted(backbones))}"


def _only(result: ScoutResult, backbones: list[str]) -> ScoutResult:
    """``result`` with only the rows of ``backbones`` (a scout may have covered more)."""
    table = result.table[result.table["backbone"].isin(backbones)].reset_index(drop=True)
    return ScoutResult(dataset=result.dataset, image_size=result.image_size, images=result.images, table=table,
                       notes=list(result.notes), seconds=result.seconds, feature_seconds=result.feature_seconds,
                       cached=list(result.cached))


def skipped_text(dataset: str, skipped: list[str]) -> str:
    """Markdown saying which saved scout files could not be read (``load_results``' ``skipped``), that
    they were left as they are, and what to do."""
    shown = "; ".join(x.rstrip(". ") for x in skipped[:MAX_SKIPPED_SHOWN]) + (
        f"; and {len(skipped) - MAX_SKIPPED_SHOWN} more" if len(skipped) > MAX_SKIPPED_SHOWN else "")
    return md_escape(f"{len(skipped)} saved scout file(s) of {dataset} could not be read and are not shown "
                     f"(they are left as they are): {shown}. Restore them from a backup or delete them; Run "
                     "scout makes a new one.")


# ------------------------------------------------------------------ figure and table
def depth_figure(table: pd.DataFrame, top: list[dict[str, Any]] | None = None) -> go.Figure:
    """Each per-depth score (LogME, TransRate) against the freeze depth: one subplot per score, one
    line per backbone; the ``top`` configurations (``top_configs``) are starred."""
    fig = make_subplots(rows=1, cols=len(DEPTH_SCORES), subplot_titles=[SCORE_LABELS[s] for s in DEPTH_SCORES],
                        horizontal_spacing=0.08)
    top_keys = {(c["backbone"], int(c["freeze_depth"])) for c in top or []}
    for i, backbone in enumerate(dict.fromkeys(table["backbone"])):
        part = table[table["backbone"] == backbone].sort_values("depth")
        color = PALETTE[i % len(PALETTE)]
        name = tf.plot_text(_display(backbone))
        depths = [int(d) for d in part["depth"]]
        for j, score in enumerate(DEPTH_SCORES):
            ys = [tf.finite(v) for v in part[score]]
            fig.add_trace(go.Scatter(
                x=depths, y=ys, mode="lines+markers", name=name, legendgroup=backbone, showlegend=j == 0,
                line={"color": color}, marker={"size": 5},
                hovertemplate=f"{name}, depth %{{x}}: %{{y:.4g}}<extra>{SCORE_LABELS[score]}</extra>",
            ), row=1, col=j + 1)
            starred = [(d, y) for d, y in zip(depths, ys) if (backbone, d) in top_keys and y is not None]
            if starred:
                fig.add_trace(go.Scatter(
                    x=[d for d, _ in starred], y=[y for _, y in starred], mode="markers",
                    name=f"top {len(top_keys)} (combined rank)", legendgroup="top",
                    showlegend=i == 0 and j == 0, marker={"symbol": "star", "size": 13, "color": color,
                                                          "line": {"width": 1, "color": "black"}},
                    hoverinfo="skip",
                ), row=1, col=j + 1)
    fig.update_xaxes(title_text="freeze depth (blocks frozen)", dtick=2)
    fig.update_layout(title={"text": "Each score against the freeze depth (higher is better)"},
                      height=360, margin={"t": 70, "b": 40}, legend={"font": {"size": 11}})
    return fig


def ranked_view(table: pd.DataFrame) -> pd.DataFrame:
    """The ranked table as shown: best first, the scores and the combined rank."""
    view = table[[c for c in COLUMNS if c in table]].copy()
    return view.sort_values(["combined_rank", "backbone", "depth"], na_position="last").reset_index(drop=True)


def _table_config() -> dict[str, Any]:
    cc = st.column_config
    return {
        "backbone": cc.TextColumn("backbone"),
        "depth": cc.NumberColumn("depth", format="%d", help="Blocks frozen, counted from the input."),
        "width": cc.NumberColumn("width", format="%d", help="Channels of the pooled features at this depth."),
        "logme_stack": cc.NumberColumn("stacked LogME", format="%.4f", help="LogME of the pooled features of "
                                       "every block from this depth to the top, each block weighted equally: "
                                       "what a trial at this depth trains can build on. Ranks the depths."),
        "logme": cc.NumberColumn("LogME", format="%.3f", help="Evidence of a linear model on the frozen features "
                                 "at this depth (You et al., 2021)."),
        "transrate": cc.NumberColumn("TransRate", format="%.3f", help="How well the features separate the "
                                     "classes, as a coding rate (Huang et al., 2022); per depth."),
        "leep": cc.NumberColumn("LEEP", format="%.3f", help="From the ImageNet head's predictions (Nguyen et al., "
                                "2020): one value per backbone; empty without the head."),
        "nce": cc.NumberColumn("NCE", format="%.3f", help="Negative conditional entropy of the labels given the "
                               "ImageNet head's labels (Tran et al., 2019): one value per backbone."),
        "combined_rank": cc.NumberColumn("rank", format="%d", help="By the mean of the ranks under stacked LogME, "
                                         "and LEEP and NCE where they differ between rows (1 = best)."),
    }


# ------------------------------------------------------------------ callbacks (Search page)
def _weights() -> str | None:
    """The New study form's weights, as the scout takes them."""
    return None if st.session_state.get("se_new_weights") == "none" else "imagenet"


def _resize() -> str:
    return str(st.session_state.get("se_new_resize") or StudySpec.resize_mode)


def _clock(t: float) -> str:
    """When ``t`` (seconds since the epoch) was: its time of day, with the date unless it was today."""
    when = time.localtime(t)
    today = time.strftime("%Y-%m-%d") == time.strftime("%Y-%m-%d", when)
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M", when)


def _follow(run: dict[str, Any], dataset: str, backbones: list[str], size: int, *, found: bool) -> None:
    """Follow the scout ``run`` here (``se_scout_run``): one this session started (``launch_scout``'s
    state), or one ``found`` running for these settings (another tab, a reload, another server:
    ``running_scouts``)."""
    ss = st.session_state
    images = int(run.get("images") or ss.get("se_scout_images", DEFAULT_IMAGES))
    ss["se_scout_run"] = {**run, "dataset": dataset, "backbones": list(backbones), "size": size, "images": images,
                          "found": found}
    asked = dict(ss.get("se_scout_asked", {}))
    asked[_settings_key(dataset, size, backbones)] = images
    ss["se_scout_asked"] = asked


def _find_running(ws: Workspace, dataset: str, backbones: list[str], size: int) -> None:
    """Follow a scout of these settings that is running though this session did not start it (a reload, a
    second tab or browser, another server): found from its record on disk (``running_scouts``)."""
    try:
        runs = running_scouts(ws, dataset, image_size=size, backbones=backbones, weights=_weights(),
                              resize_mode=_resize())
    except (TLCoreError, OSError):
        return  # nothing to follow: the launch itself refuses a second one of the same settings
    if runs:
        _follow(runs[0], dataset, backbones, size, found=True)


def _on_run(ws: Workspace, dataset: str, backbones: list[str], size: int) -> None:
    ss = st.session_state
    ss.pop("se_scout_error", None)
    problems = fields.out_of_range("se_scout_images")
    if problems:  # never the count the field showed before the one typed
        ss["se_scout_error"] = "The scout did not start. " + " ".join(problems)
        return
    images = int(ss.get("se_scout_images", DEFAULT_IMAGES))
    try:
        state = launch_scout(ws, dataset, backbones=backbones, image_size=size, images=images,
                             weights=_weights(), resize_mode=_resize())
    except ScoutAlreadyRunning as exc:  # started meanwhile in another tab or browser: follow that one
        _follow(exc.run, dataset, backbones, size, found=True)
        place.flash("info", f"A scout of these settings was already running (started {_clock(exc.run['started'])}, "
                            "in another tab, browser or session): no second one was started; its progress shows "
                            "here.", slot=SLOT)
        return
    except (TLCoreError, OSError) as exc:
        ss["se_scout_error"] = f"The scout did not start: {exc} Fix that, then press Run scout again."
        return
    _follow({**state, "images": images}, dataset, backbones, size, found=False)


def _on_narrow(result: ScoutResult) -> None:
    ss = st.session_state
    lo, hi = (int(v) for v in ss.get("se_new_depth", (0, 10**6)))
    top = result.top_configs(NARROW_TOP, depth_range=[lo, hi])
    if not top:
        place.flash("warning", f"None of the scored depths lies within the current range {lo}–{hi} (below the "
                                "full depth): widen the freeze-depth range in the New study form, then narrow "
                                "again.", slot=SLOT)
        return
    depths = sorted({c["freeze_depth"] for c in top})
    ss["se_new_depth"] = (depths[0], depths[-1])
    place.flash("success", f"Freeze-depth range set to {depths[0]}–{depths[-1]} in the New study form below: it "
                            f"spans the scout's top {len(top)} depth(s) ({', '.join(map(str, depths))}).", slot=SLOT)


def _on_seed(images: int) -> None:
    ss = st.session_state
    problems = fields.out_of_range("se_scout_k")
    if problems:
        place.flash("error", "No configuration was queued. " + " ".join(problems), slot=SLOT)
        return
    k = int(ss.get("se_scout_k", DEFAULT_K))
    ss["se_scout_seed"] = {"images": int(images), "seed_trials": k}
    place.flash("success", f"The next study you create in the New study form below starts with the scout's top "
                            f"{k} configuration(s) as its first trials (its worker reuses these cached features).",
                slot=SLOT)


def _on_unseed() -> None:
    st.session_state.pop("se_scout_seed", None)


# ------------------------------------------------------------------ the New-study form's side
def scout_spec_option() -> dict[str, Any] | None:
    """The ``scout`` option the New-study form gives its StudySpec, or None for the spec's default."""
    seed = st.session_state.get("se_scout_seed")
    if not seed:
        return None
    return {"images": int(seed["images"]), "seed_trials": int(seed["seed_trials"]), "max_seconds": None}


def seed_note() -> None:
    """A line in the New-study form when the study will start from the scout's top configurations."""
    seed = st.session_state.get("se_scout_seed")
    if not seed:
        return
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.info(f"The study will start with the scout's top {int(seed['seed_trials'])} depth(s) as its first trials, "
            "each trained in full (never stopped at a successive-halving rung), after the quick linear-probe and "
            "recipe trials (its first worker scouts "
            f"{int(seed['images'])} images again, from the cache when the settings match the scout above); then "
            "the sampler takes over.", icon=":material/travel_explore:")
    c2.button("Don't seed", key="se_scout_unseed", on_click=_on_unseed,
              help="Create the study with the default scout instead: it ranks the depths for the Results page "
                   "but seeds no trial (run only when estimated under a minute).")


# ------------------------------------------------------------------ the Scout section (Search page)
def _settle(run: dict[str, Any]) -> dict[str, Any] | None:
    """The status of the scout ``run``; when it has ended, forget it and keep its outcome to show (None)."""
    ss = st.session_state
    status = scout_status(run)
    if status["state"] not in ("finished", "failed"):
        return status
    ss.pop("se_scout_run", None)
    if status["state"] == "failed":
        ss["se_scout_error"] = ("The scout failed: " + str(status.get("error") or "no message")
                                + f" (its log: {run.get('log')}). Check the dataset on the Datasets page (the "
                                "scout needs two classes and two training images per class) and the "
                                "backbones (ImageNet weights need internet unless bundled or cached), then "
                                "run it again.")
    else:
        place.flash("success", f"Scout finished in {tf.seconds(float(status.get('seconds') or 0), 1)}.", slot=SLOT)
    return None


def _progress_view() -> None:
    """A running scout's progress (a fragment on a timer); a full rerun once it has ended."""
    ss = st.session_state
    run = ss.get("se_scout_run")
    if not run:
        return
    status = _settle(run)
    if status is None:
        if not ss.get("se_scout_full", False):
            st.rerun()  # redraw the whole page, with the result or the error
        return
    done, total = int(status.get("done") or 0), int(status.get("total") or 0)
    text = str(status.get("text") or "")
    if status["state"] == "starting" or not total:
        text = "Starting: loading TensorFlow and the images (up to a minute)…"
    elif done >= total:
        text = f"{text}: done; scoring every depth…"
    else:
        text = f"{text}: {done} of {total} images"
    st.progress(min(1.0, done / total) if total else 0.0, text=md_escape(text))
    st.caption(f"Scouting {md_escape(run['dataset'])} at {int(run['size'])} px on {int(run['images'])} images; "
               f"running for {tf.seconds(time.time() - float(run.get('started') or time.time()))}.")
    if run.get("found"):
        st.caption(f"This scout was started at {_clock(float(run.get('started') or time.time()))} in another tab, "
                   "browser or session (or before this page was reloaded): Run scout is off until it ends, "
                   "and its result shows here then.")


def _show_result(result: ScoutResult, backbones: list[str], asked: int | None) -> None:
    ss = st.session_state
    result = _only(result, backbones)
    table = result.table
    lo, hi = (int(v) for v in ss.get("se_new_depth", (0, 10**6)))
    top = result.top_configs(NARROW_TOP, depth_range=[lo, hi])
    st.plotly_chart(depth_figure(table, top), key="se_scout_fig")
    st.markdown("**Ranked, best first**")
    st.dataframe(ranked_view(table), hide_index=True, column_config=_table_config(), key="se_scout_table")
    used = ranking_scores(table)
    st.caption(f"{result.images} training images at {result.image_size} px, scored in {tf.seconds(result.seconds, 1)} "
               f"(features {tf.seconds(result.feature_seconds, 1)}{', from the cache' if result.cached else ''}). "
               f"Rank = the mean rank under {', '.join(SCORE_LABELS[s] for s in used) or 'no score'}"
               + ("" if {"leep", "nce"} & set(used) else "; LEEP and NCE rank backbones, not depths") + ".")
    for note in result.notes:
        st.caption(md_escape(note))

    st.markdown("**Use it in the New study form below**")
    c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
    c1.button("Narrow the freeze-depth range to the top depths", key="se_scout_narrow", on_click=_on_narrow,
              args=(result,), icon=":material/compress:",
              help=f"Sets the form's Frozen blocks range to span the scout's top {NARROW_TOP} depths within "
                   "the current range (the full depth, feature extraction, is left out).")
    ss.setdefault("se_scout_k", DEFAULT_K)
    k = fields.number(c2, "K", lo=1, hi=MAX_K, key="se_scout_k", persist_state=place.KEPT, step=1,
                      help="How many of the scout's best configurations become the study's first trials.")
    c3.button(f"Start the study with the top {tf.cell(k)} configurations", key="se_scout_seed_btn", on_click=_on_seed,
              args=(asked or result.images,), icon=":material/playlist_add:",
              help="The study's first worker scouts again (from these cached features) and queues the best "
                   f"{k} configurations within the study's ranges as its next trials, each at the recipe trial's "
                   "learning rate for its depth.")


def scout_section(ws: Workspace, datasets: list[str], expanded: bool = False) -> None:
    """The Scout step, before the New-study form: run a scout on the form's settings and use its ranking."""
    ss = st.session_state
    ss.setdefault("se_scout_images", DEFAULT_IMAGES)
    if ss.get("se_scout_run"):
        _settle(ss["se_scout_run"])  # ended since the last rerun: show its outcome now
    dataset = ss.get("se_new_dataset")
    backbones = [b for b in ss.get("se_new_backbones") or [] if b in bb.list_backbones()]
    size = int(ss.get("se_new_size") or 0)
    if not ss.get("se_scout_run") and datasets and dataset and backbones:
        _find_running(ws, dataset, backbones, size)  # started elsewhere: this session follows it too
    running = bool(ss.get("se_scout_run"))
    if running or place.pending(SLOT) or "se_scout_error" in ss:
        ss[OPEN] = True  # something to see here
    with place.expander(TITLE, key=OPEN, expanded=expanded, icon=":material/travel_explore:"):
        st.caption(EXPLAIN)
        st.caption(CAVEAT)
        place.banners(SLOT)
        if not datasets or not dataset:
            st.info("No dataset is registered yet: add one on the Datasets page, then scout it here.")
            return
        if not backbones:
            st.info("Choose at least one backbone in the New study form below; the scout ranks its depths.")
            return
        st.markdown(f"Scouts **{md_escape(dataset)}** with {md_escape(', '.join(_display(b) for b in backbones))} "
                    f"at {size} px: the dataset, backbones and image size of the New study form below (change "
                    "them there).")
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        images = fields.number(c1, "Images to score", lo=2, hi=1_000_000, step=500, key="se_scout_images", persist_state=place.KEPT,
                               help="At most this many training images, stratified by class. More is steadier "
                                    "and slower; 2,000 is plenty for a ranking.")
        c2.button("Run scout", key="se_scout_go", type="primary", on_click=_on_run, args=(ws, dataset, backbones, size),
                  disabled=running, icon=":material/play_arrow:",
                  help="A scout is running (its progress is below): one at a time." if running else
                  "Runs in the background; the result is saved and shown here when it is done.")
        if not running and not fields.range_problem("Images to score", images, 2, 1_000_000):
            est = scout_cost_for(ws, dataset, int(images), size, backbones)
            st.caption(f"About {tf.seconds(est)} on one CPU core the first time (a GPU is much faster); "
                       "seconds once its features are cached.")
        if "se_scout_error" in ss:
            st.error(md_escape(ss["se_scout_error"]))
        if running:
            ss["se_scout_full"] = True
            try:
                st.fragment(run_every=REFRESH_S)(_progress_view)()
            finally:
                ss["se_scout_full"] = False
        skipped: list[str] = []
        try:
            result = latest_result(ws, dataset, image_size=size, backbones=backbones, weights=_weights(),
                                   resize_mode=_resize(), skipped=skipped)
        except (TLCoreError, OSError) as exc:
            st.warning(md_escape(f"The saved scouts of {dataset} could not be read: {exc}"))
            return
        if skipped:
            st.warning(skipped_text(dataset, skipped))
        if result is None:
            if not ss.get("se_scout_run"):
                st.caption(f"No scout of {md_escape(dataset)} at {size} px with these backbones yet: press "
                           "Run scout.")
            return
        asked = ss.get("se_scout_asked", {}).get(_settings_key(dataset, size, backbones))
        _show_result(result, backbones, asked)


# ------------------------------------------------------------------ Results page
def agreement_table(agreement: pd.DataFrame) -> pd.DataFrame:
    """``scout_agreement``'s frame as shown: score names, τ to two decimals (or "—")."""
    return pd.DataFrame({
        "score": [SCORE_LABELS.get(s, s) for s in agreement["score"]],
        "Kendall τ": [tf.fixed(v, 2, missing="—") for v in agreement["tau"]],
        "trials": [int(n) for n in agreement["trials"]],
        "note": [str(n or "") for n in agreement["note"]],
    })


def _seeded_text(seeded: list[dict[str, Any]], trials: list[Any]) -> str:
    """Which trials the scout seeded, with their parameters."""
    def words(p: dict[str, Any]) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {f'{v:.3g}' if isinstance(v, float) else v}" for k, v in p.items())

    parts = []
    for p in seeded:
        same = [t for t in trials if t.system_attrs.get("fixed_params") == p]
        mine = [t for t in same if attrs.seeded(t)]  # a seed, and its reruns (a dead worker, a resume)
        if mine:
            again = [str(t.number) for t in mine[1:]]
            parts.append(f"trial {mine[0].number} ({words(p)})"
                         + (f", run again as trial {', '.join(again)}" if again else ""))
        elif same:  # the recipe trial (or another queued one) had these parameters: not queued twice
            parts.append(f"({words(p)}: the same as trial {same[0].number}, so not queued again)")
        else:
            parts.append(f"({words(p)}, not run yet)")
    return "; ".join(parts)


def unseeded_text(attr: dict[str, Any], spec: StudySpec | None) -> str:
    """Markdown: why a study's scout (its record ``attr``) seeded no trial, as the scout recorded it
    (``unseeded``: ``tlcore.search.seeding.UNSEEDED_REASONS``). A record from before the reason was
    kept says only "not asked for" when the spec shows it."""
    opts = spec.scout if spec is not None and isinstance(spec.scout, dict) else None
    reason = attr.get("unseeded")
    if opts is None and reason is None:
        return "The scout seeded no trial."
    asked = int((opts or {}).get("seed_trials") or 0)
    if reason == "not_asked" or (reason is None and asked <= 0):
        return ("The scout seeded no trial: seeding was not asked for (the study's `scout.seed_trials` is 0, the "
                "default, so its scout only ranked the depths, for this comparison). To seed a new study, press "
                "\"Start the study with the top K configurations\" on the Search page's Scout step before "
                "creating it, or set `scout.seed_trials` in its spec.")
    head = f"The scout seeded no trial, though the study asked for {asked}: " if asked else "The scout seeded no trial: "
    budget = f" ({spec.n_trials})" if spec is not None and spec.n_trials is not None else ""
    return head + {
        "feature_extraction_only": "a seed fine-tunes from a freeze depth, and the study trains by feature "
                                   "extraction only.",
        "no_depth_in_range": "no scored depth lies within the study's freeze-depth ranges (below the full depth).",
        "nothing_searched": "the study searches no backbone, freeze depth or learning rate, so a seed would fix "
                            "nothing.",
        "no_room": f"its trial budget{budget} had no trial left for them when it scouted.",
    }.get(reason, "the study's record does not say why (it scouted before the reason was recorded).")


def agreement_section(ws: Workspace, storage: str | None, studies: dict[str, Any]) -> None:
    """How well each of the scout's scores ranked a study's finished trials (the study's ``attrs.scout_record``)."""
    ss = st.session_state
    st.subheader("Scout vs the trials")
    names = list(studies)
    if not names:
        return
    if len(names) > 1:
        if ss.get("re_scout_study") not in names:
            ss["re_scout_study"] = names[0]
        st.selectbox("Study", names, key="re_scout_study", persist_state=place.KEPT, help="One study at a time: each has its own scout.")
    name = ss["re_scout_study"] if len(names) > 1 else names[0]
    study = studies[name]
    attr = attrs.scout_record(study.user_attrs)
    who = f"Study {md_escape(name)}"
    if not isinstance(attr, dict):
        st.info(f"{who} did not scout, so there is nothing to compare. A study scouts when its spec has a "
                "`scout` option (the default for new studies; run one first on the Search page's Scout step).")
        return
    if "skipped" in attr:
        st.info(f"{who} skipped its scout: {md_escape(attr['skipped'])}. Its trials were sampled without seeds; "
                "to scout anyway, create the study with a higher scout.max\\_seconds (or none).")
        return
    if "error" in attr:
        st.warning(f"{who}'s scout failed: {md_escape(attr['error'])}. Its trials ran without seeds.")
        return
    if not attr.get("rows"):
        st.info(f"{who}'s scout holds no scores, so there is nothing to compare.")
        return
    trials = study.get_trials(deepcopy=False)
    spec = load_spec(ws, name, storage)
    agreement = scout_agreement(trials, attr, spec)
    st.dataframe(agreement_table(agreement), hide_index=True, key="re_scout_table",
                 column_config={"note": st.column_config.TextColumn(width="large")})
    st.caption(TAU_CAPTION + " Each trial is scored at its backbone and freeze depth and compared by its best "
               "validation accuracy; only complete trials count.")
    seeded = attr.get("seeded") or []
    if seeded:
        st.caption(md_escape(f"Seeded from the scout: {_seeded_text(seeded, trials)}."))
    else:
        st.caption(unseeded_text(attr, spec))
    facts = (f"Scored {attr.get('images', '?')} training images at {attr.get('image_size', '?')} px in "
             f"{tf.seconds(tf.finite(attr.get('seconds')) or 0, 1)}")
    used = [SCORE_LABELS.get(s, s) for s in attr.get("combined_from") or []]
    st.caption(md_escape(facts + (f"; combined = the mean rank under {', '.join(used)}" if used else "") + "."))
    for note in attr.get("notes") or []:
        st.caption(md_escape(note))
    with place.expander("The scout's ranking", key="re_scout_rows_open"):
        st.dataframe(ranked_view(pd.DataFrame(attr["rows"])), hide_index=True, column_config=_table_config(),
                     key="re_scout_rows")
