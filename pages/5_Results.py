"""Results: compare the trials of one or more searches, look at a trial's mistakes, download it.

Thin: ``tlcore.search`` reads the studies (``compare.TrialSet``: the chosen studies'
trials, ranked across studies, and their learning curves; Optuna's views; a trial's
run folder); ``tlui.results_widgets`` holds the cached loaders, the charts and the
trial labels and tables; ``tlui.evaluate_widgets`` the test reports and the
"Evaluate a trial" section (evaluation again, Grad-CAM, export); ``tlui.scout_widgets``
the scout's agreement with the trials; ``tlui.run_widgets`` the same views over single
trained runs of ``<workspace>/models`` ("Trained runs", offered when there are any:
``?run=NAME`` opens one, as the Train page links). Heavy work (loading a model, evaluating,
exporting) waits for a button and is cached. The chosen studies live in
``st.query_params["study"]`` (repeated for several), so that a link naming other studies wins; the
other choices (the storage, the filters, the trials drawn, compared and evaluated, the export's
formats) are drawn with ``persist_state=place.KEPT``, so they are still there after a visit to another
page; the storage is never in the URL. A password in a storage URL is never shown: the field shows
``***`` for it (``sidebar_storage``), the URL as typed lives in the session's state only, and the
messages that quote the storage are scrubbed of it. Which view shows (``rs_source``) follows the URL
too (``?run=``). User-controlled text (study, class and file names, messages quoting them) is
Markdown-escaped, HTML-escaped in plotly labels (``tlui.fmt.plot_text``), or shown as plain text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.predict import ModelSummary, scan_models
from tlcore.search import StudySummary, check_storage_location, dashboard_command, list_studies
from tlcore.search._urls import redact_url
from tlcore.search.compare import TrialSet, comparable
from tlcore.workspace import Workspace
from tlui import evaluate_widgets as ev
from tlui import fmt as tf
from tlui import place
from tlui import results_widgets as rw
from tlui import run_widgets as rn
from tlui import scout_widgets as sc
from tlui import search_widgets as sw
from tlui.common import md_escape, page, show_error, workspace

APP_DIR = Path(__file__).resolve().parent.parent
CURVES_DEFAULT = 5  # trials whose curves are drawn at first (the best ones)
SEARCH_HINT = ("python -m tlcore search create --spec study.yaml\n"
               "python -m tlcore search run --study NAME --workers 2")
SOURCES = ("Searches", "Trained runs")  # what the page shows: rs_source
STORAGE_URL = "rs_storage_url"  # session key: the storage URL as typed, password included (never shown)
_PASSWORD_PARAM = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#]*)", re.IGNORECASE)  # as _urls's


# ---------------------------------------------------------------- sections
def choose_source(has_studies: bool, models: list[ModelSummary]) -> bool:
    """Whether to show the trained runs rather than the searches (a choice offered when there are runs)."""
    if not models:
        return False
    ss = st.session_state
    if ss.get("rs_source") not in SOURCES or rn.linked_runs():  # first visit, or a link to a run (?run=)
        ss["rs_source"] = SOURCES[1] if "run" in st.query_params or not has_studies else SOURCES[0]
    st.radio("Show", SOURCES, key="rs_source", horizontal=True, label_visibility="collapsed",
             help="The trials of Optuna searches, or single runs trained on the Train page or with "
                  "python -m tlcore train.")
    runs = ss["rs_source"] == SOURCES[1]
    if not runs:
        place.keep_in_url("run", None)
    return runs


def _password_back(shown: str, url: str) -> str:
    """``shown`` (what the Storage field holds) with each ``***`` that stands for a password put back as
    the password of ``url`` (the URL as typed): ``postgresql://tl:***@db/other`` and the typed
    ``postgresql://tl:s3cret@db/studies`` give ``postgresql://tl:s3cret@db/other``, so the rest of the
    URL can be edited in the field. A ``***`` where ``url`` has no password stays as it is. The URL is
    split as ``tlcore.search._urls`` splits it (user info up to the last ``@``)."""
    def credentials(u: str) -> tuple[str, str] | None:  # ("scheme://user:", password), or None
        scheme, found, rest = u.partition("://")
        if not found or "@" not in rest:
            return None
        user, sep, password = rest.rsplit("@", 1)[0].partition(":")
        return (f"{scheme}://{user}:", password) if sep else None

    out = shown
    mine, theirs = credentials(shown), credentials(url)
    if mine and theirs and mine[1] == "***" and theirs[1]:
        out = mine[0] + theirs[1] + "@" + shown.rsplit("@", 1)[1]
    typed = [m.group(2) for m in _PASSWORD_PARAM.finditer(url) if m.group(2)]
    if typed:
        out = _PASSWORD_PARAM.sub(lambda m: m.group(1) + (typed[0] if m.group(2) == "***" else m.group(2)), out)
    return out


def _hide_password() -> None:
    """Keep the password of a URL typed in the Storage field out of the field: the URL goes to
    ``STORAGE_URL`` and the field shows it with ``***`` for the password (``redact_url``). A field
    that shows ``***`` where the kept URL's password was (the user edited the host or the database)
    gets that password back in the URL used. Text without a password (a journal path) is left as typed."""
    ss = st.session_state
    shown = str(ss.get("rs_storage") or "")
    kept = ss.get(STORAGE_URL)
    url = _password_back(shown.strip(), kept) if kept else shown.strip()
    if redact_url(url) == url:  # no password: nothing to keep
        ss.pop(STORAGE_URL, None)
        return
    ss[STORAGE_URL] = url
    if shown != redact_url(url):
        ss["rs_storage"] = redact_url(url)


def sidebar_storage() -> str | None:
    """The Study storage field, in the sidebar; returns the storage it names (None: the workspace's).

    A password typed in a URL is never shown (``_hide_password``): the field, and everything the page
    says about the storage, show ``***`` in its place; the URL with the password lives only in this
    session's state (``STORAGE_URL``), never in the page's URL."""
    _hide_password()
    with st.sidebar.expander("Study storage"):
        st.text_input(
            "Storage", key="rs_storage", placeholder="the workspace's own journal", persist_state=place.KEPT,
            autocomplete="off",
            help="Leave empty for the workspace's studies. A path to a journal .log file, or a database URL "
            "(postgresql://USER:PASSWORD@HOST/DB) that remote workers share. The password is never shown: "
            "*** stands for it.",
        )
        if STORAGE_URL in st.session_state:
            st.caption("The password is kept for this session and not shown; *** stands for it. Edit the rest "
                       "of the URL as it is, or type the whole URL again to change the password.")
    return st.session_state.get(STORAGE_URL) or str(st.session_state.get("rs_storage") or "").strip() or None


def no_studies(storage: str | None) -> None:
    where = "this storage" if storage else "this workspace"
    st.info(
        f"No studies in {where} yet. A study is an Optuna search: it trains many models with different "
        "freeze depths and learning rates and keeps each trial's model, learning curves and test results. "
        "Start one on the Search page; its trials appear here as they finish."
    )
    if (APP_DIR / page("Search").script).is_file():
        st.page_link(page("Search").script, label="Go to the Search page", icon=":material/tune:")
    else:
        st.caption("Or start one from a terminal:")
    st.code(SEARCH_HINT, language="bash")


def linked_studies(summaries: list[StudySummary], storage: str | None) -> None:
    """Say which studies a link or a reload names (``?study=``) that are not in the storage (deleted
    since, or in another storage), and drop them from the URL, so that it is said once."""
    linked = list(dict.fromkeys(st.query_params.get_all("study")))
    names = {s.name for s in summaries}
    gone = [n for n in linked if n not in names]
    if not gone:
        return
    where = "this storage" if storage else "this workspace"
    st.warning(f"There is no study named {', '.join(md_escape(n) for n in gone)} in {where}"
               + (" (deleted, or in another storage: see Study storage in the sidebar)." if not storage else "."),
               icon=":material/warning:")
    kept = [n for n in linked if n in names]
    place.keep_in_url("study", kept)


def choose_studies(by_name: dict[str, StudySummary]) -> list[str]:
    names = list(by_name)
    if "rs_studies" in st.session_state:
        rw.keep_valid("rs_studies", names, [], many=True)
    else:  # a link or a reload: the studies in the URL, else the newest
        wanted = [n for n in st.query_params.get_all("study") if n in names]
        st.session_state["rs_studies"] = list(dict.fromkeys(wanted)) or names[:1]
    c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
    c1.multiselect(
        "Studies", names, key="rs_studies",
        format_func=lambda n: f"{n}  ·  {by_name[n].dataset}  ·  {by_name[n].finished} finished",
        help="Newest first. Choose several to compare their optimization histories and stack their trials.",
    )
    c2.button("Refresh", key="rs_refresh", help="Read the studies again (running trials move on).")
    chosen = list(st.session_state["rs_studies"])
    place.keep_in_url("study", chosen)
    return chosen


def overview(ts: TrialSet) -> None:
    if ts.many:
        st.dataframe(rw.studies_frame(ts.summaries.values()), hide_index=True,
                     column_config={"best value": st.column_config.NumberColumn(format="%.4f")})
        return
    s = next(iter(ts.summaries.values()))
    m = st.columns(5)
    m[0].metric("Trials finished", f"{s.finished}" + (f" of {s.n_trials}" if s.n_trials else ""),
                help="Complete and pruned trials; the study's budget after 'of'.")
    m[1].metric("Complete", s.counts.get("COMPLETE", 0))
    m[2].metric("Pruned · failed · interrupted",
                f"{s.counts.get('PRUNED', 0)} · {s.counts.get('FAIL', 0)} · {s.counts.get('INTERRUPTED', 0)}",
                help="Interrupted: ended by a stop or a signal, not by an error; run again on resume or at once.")
    sw.running_metric(m[3], s)
    m[4].metric(f"Best {s.objective}", tf.fixed(s.best_value, 4),
                help=f"Trial {s.best_trial}." if s.best_trial is not None else "No complete trial yet.")
    diverged = sum(rw.state_word(t) == "diverged" for t in ts.trials.values())
    st.caption(f"Dataset {md_escape(s.dataset)} · {md_escape(s.direction)} {md_escape(s.objective)}"
               + (f" · {diverged} of the pruned trials diverged" if diverged else "")
               + (" · stop requested" if s.stop_requested else ""))
    if s.data_note:
        st.warning(md_escape(s.data_note), icon=":material/difference:")


def figures_section(ts: TrialSet) -> None:
    st.subheader("Optuna's views")
    order = list(ts.names)
    if ts.many:
        rw.keep_valid("rs_focus", order, order[0])
        st.selectbox("Study of the single-study views", order, key="rs_focus", persist_state=place.KEPT,
                     help="The optimization history compares every chosen study; Optuna's other views show one.")
        focus = st.session_state["rs_focus"]
        order = [focus] + [n for n in order if n != focus]
    tokens = tuple(rw.study_token(ts.studies[n]) for n in order)
    figs = rw.study_figures_cached(str(ts.ws.root), ts.storage, tuple(order), tokens)
    tabs = place.tabs([name.capitalize() for name in figs], key="rs_views_tab")
    for tab, (name, fig) in zip(tabs, figs.items()):
        with tab:
            if rw.FIGURE_HELP.get(name):
                st.caption(rw.FIGURE_HELP[name])
            if isinstance(fig, str):
                st.info(md_escape(fig))
            else:
                st.plotly_chart(fig, key=f"rs_fig::{name}")


def table_section(ts: TrialSet) -> None:
    st.subheader("Trials")
    df = rw.trials_frame(ts)
    states = sorted(df["state"].astype(str).unique()) if len(df) else []
    rw.keep_states("rs_states", states)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.multiselect("States", states, key="rs_states", format_func=lambda s: rw.STATE_WORDS.get(s, s.lower()),
                   persist_state=place.KEPT)
    c2.number_input("Value at least", value=None, format="%.4f", step=0.01, key="rs_min_value", persist_state=place.KEPT,
                    placeholder="any", help="Hide trials whose objective value is lower (or missing).")
    view = rw.shown_trials(ts, df, st.session_state["rs_states"], st.session_state.get("rs_min_value"))
    st.dataframe(view, hide_index=True, column_config=rw.table_config(view))
    apart = "" if comparable(ts.summaries) else (" study by study (their datasets or objectives differ, so their"
                                                  " values are not ranked against each other)")
    st.caption(f"{len(view)} of {len(df)} trials shown, best first{apart}; click a column's header to sort by it.")
    stem = "-".join(ts.names) if len(ts.names) <= 3 else f"{len(ts.names)}-studies"
    st.download_button("Download the table (CSV)", data=view.to_csv(index=False), file_name=f"{stem}-trials.csv",
                       mime="text/csv", key="rs_csv", on_click="ignore", icon=":material/download:")


def curves_section(ts: TrialSet) -> None:
    st.subheader("Learning curves")
    with_history = ts.with_history()
    if not with_history:
        st.info("No trial has finished an epoch yet.")
        return
    default = [k for k in ts.ranked() if k in with_history][:CURVES_DEFAULT] or with_history[:CURVES_DEFAULT]
    rw.keep_valid("rs_curves", with_history, default, many=True)
    label = functools.partial(rw.trial_label, ts)
    st.multiselect("Trials", with_history, key="rs_curves", format_func=label, persist_state=place.KEPT,
                   help="Any trial that finished an epoch, pruned and running ones too. ★ marks the best.")
    keys = list(st.session_state["rs_curves"])
    if not keys:
        st.caption("Choose trials to draw their curves.")
        return
    st.plotly_chart(rw.curves_figure(ts.curves(keys), {k: label(k) for k in keys}), key="rs_curves_fig")
    st.caption("Solid lines: the training split; dashed: validation. One colour per trial; click a legend "
               "entry to hide a trial.")


def compare_section(ts: TrialSet) -> None:
    st.subheader("Compare two trials")
    keys = list(ts.trials)
    if len(keys) < 2:
        st.info("Comparing needs two trials; this study has fewer so far.")
        return
    defaults = list(dict.fromkeys([*ts.ranked(), *keys]))
    rw.keep_valid("rs_cmp_a", keys, defaults[0])
    rw.keep_valid("rs_cmp_b", keys, next(k for k in defaults if k != st.session_state["rs_cmp_a"]))
    label = functools.partial(rw.trial_label, ts)
    c1, c2 = st.columns(2)
    c1.selectbox("First trial", keys, key="rs_cmp_a", format_func=label, persist_state=place.KEPT)
    c2.selectbox("Second trial", keys, key="rs_cmp_b", format_func=label, persist_state=place.KEPT)
    a, b = st.session_state["rs_cmp_a"], st.session_state["rs_cmp_b"]
    if a == b:
        st.info("Choose two different trials.")
        return
    st.dataframe(rw.facts_table(ts, a, b), hide_index=True)
    curves = ts.curves([a, b])
    if len(curves):
        st.plotly_chart(rw.curves_figure(curves, {k: label(k) for k in (a, b)}), key="rs_cmp_curves")
    for slot, (col, key) in enumerate(zip(st.columns(2), (a, b))):
        with col:
            ev.report_card(ts, key, slot)
    st.caption("As measured on each trial's test split when it finished (the best epoch's weights).")


def dashboard_section(ws: Workspace, storage: str | None) -> None:
    """The optuna-dashboard command for the storage: without its password (``dashboard_command``: the
    dashboard's client reads it from ~/.pgpass or PGPASSWORD)."""
    with place.expander("Open the studies in optuna-dashboard", key="rs_dashboard_open"):
        st.caption("optuna-dashboard shows the same studies live, with more of Optuna's views. Run in a terminal:")
        try:
            st.code(dashboard_command(ws, storage), language="bash")
        except TLCoreError as exc:
            rw.storage_error(exc, storage)


# -------------------------------------------------------------------- page
def main() -> None:
    ws = workspace()
    storage = sidebar_storage()
    try:
        summaries = list_studies(ws, check_storage_location(ws, storage))
    except TLCoreError as exc:
        rw.storage_error(exc, storage)
        st.stop()
    try:
        models, notes = scan_models(ws)
    except TLCoreError as exc:
        show_error(exc)
        models, notes = [], []
    for note in notes:
        st.warning(md_escape(note))
    linked_studies(summaries, storage)
    if choose_source(bool(summaries), models):
        rn.runs_section(ws, models)
        return
    if not summaries:
        no_studies(storage)
        return
    by_name = {s.name: s for s in summaries}
    names = choose_studies(by_name)
    if not names:
        st.info("Choose one or more studies above.")
        return
    try:
        ts = TrialSet.load(ws, names, by_name, storage)
    except TLCoreError as exc:
        rw.storage_error(exc, storage)
        return
    overview(ts)
    with rw.guard("Drawing Optuna's views", storage):
        figures_section(ts)
    with rw.guard("Reading the trial table", storage):
        table_section(ts)
    with rw.guard("Comparing the scout with the trials", storage):
        sc.agreement_section(ws, storage, ts.studies)
    with rw.guard("Drawing the learning curves", storage):
        curves_section(ts)
    with rw.guard("Comparing the trials", storage):
        compare_section(ts)
    with rw.guard("Evaluating the trial", storage):
        ev.evaluate_section(ts)
    dashboard_section(ws, storage)


main()
