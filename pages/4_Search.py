"""Search: let Optuna find how much of the backbone to freeze and which learning rate to use.

Thin: ``tlcore.search`` creates studies, runs the background workers and reads the
storage; ``tlui.search_form`` is the New-study form (from widgets or an uploaded spec
YAML) and ``tlui.scout_widgets`` the Scout step before it; ``tlui.search_state`` holds
the page's session state, messages and button callbacks; ``tlui.search_widgets`` polls
a study and shapes its tables, texts and plots. A new study's workers start right away
as background processes that outlive this page and the server. The selected study
lives in ``st.query_params["study"]``, so a reload, a link or a restarted server shows
it again (its workers are found again through their state files); without one, the
newest study is shown.

The live section is an ``st.fragment`` that reruns every few seconds (a toggle
pauses it): one poll of the storage per refresh. A trial still RUNNING in the storage
whose worker stopped without finishing is shown as stalled, with what happens to it and
what to do; a finished study offers a larger trial budget (Raise the budget), and Add
workers on a stopped or finished study says why nothing would run. Its buttons act through
callbacks, so their message shows at once and stays for a while across refreshes.
User-controlled text (study, dataset and file names, messages quoting them) is
Markdown-escaped or shown as plain text.
"""

from __future__ import annotations

import time

import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.search import (
    StudySpec,
    StudySummary,
    dashboard_command,
    describe_storage,
    list_studies,
    load_spec,
    log_tail,
)
from tlcore.workspace import Workspace
from tlui import data, fields, place
from tlui import fmt as tf
from tlui import scout_widgets as sc
from tlui import search_form as form
from tlui import search_state as state
from tlui import search_widgets as sw
from tlui.common import md_escape, show_error, workspace

LOG_LINES = 40
MAX_LOGS = 6  # worker logs offered (alive workers first, then the newest)
MAX_CRASHED_SHOWN = 3  # crashed workers given a warning with their log's end (the newest)
CRASH_LOG_LINES = 10
CLI_HINT = ("python -m tlcore search create --spec study.yaml\n"
            "python -m tlcore search run --study NAME --workers 1")


# ------------------------------------------------------------ live section
def progress_section(s: StudySummary, snap: sw.Snapshot, spec: StudySpec | None) -> None:
    kind, text = sw.status_sentence(s, snap)
    getattr(st, kind)(text)
    counts = s.counts
    diverged = len(snap.diverged)
    m = st.columns(5)
    m[0].metric("Finished", f"{s.finished}/{s.n_trials}" if s.n_trials else f"{s.finished}",
                help="Complete and pruned (or diverged) trials, of the study's budget.")
    sw.running_metric(m[1], s)
    m[2].metric("Pruned · diverged", f"{max(0, counts.get('PRUNED', 0) - diverged)} · {diverged}",
                help="Stopped early by the pruner · stopped because they diverged (the loss was not finite, "
                     "or the validation accuracy stayed at chance).")
    m[3].metric("Failed · interrupted", f"{counts.get('FAIL', 0)} · {counts.get('INTERRUPTED', 0)}",
                help="Failed: an error, or marked failed. Interrupted: ended by a stop (queued again on "
                     "resume) or by a signal to its worker (queued again at once).")
    m[4].metric(f"Best {s.objective}", tf.number(s.best_value))
    if s.n_trials:
        st.progress(min(1.0, s.finished / s.n_trials), text=f"{s.finished} of {s.n_trials} trials finished")
    if spec is not None and spec.timeout_minutes:
        st.caption(f"Time limit: no new trial starts {spec.timeout_minutes:g} min after the first one began.")

    best = sw.best_trial_text(s, snap.frame)
    if best:
        st.markdown(best)
    else:
        st.caption("No trial has completed yet.")
    if len(snap.best):
        st.plotly_chart(sw.best_figure(snap.best, s.objective), key="se_fig_best")

    training = snap.training_workers
    for w in training:
        st.progress(w.progress or 0.0, text=md_escape(sw.worker_progress_text(w)))
    elsewhere = sorted(set(snap.running_trials) - {w.trial for w in training} - set(snap.stalled))
    if elsewhere:
        st.caption(f"Running on workers elsewhere (or starting): trial(s) {', '.join(map(str, elsewhere))}.")


def trials_section(s: StudySummary, snap: sw.Snapshot) -> None:
    st.markdown("**Trials**")
    table = sw.trial_table(snap.frame, snap.stalled)
    if table.empty:
        st.caption("No trials yet: workers load TensorFlow first (up to a minute), then ask for a trial.")
        return
    st.dataframe(table, hide_index=True, column_config=sw.trial_table_config(table, s.objective), key="se_trials")
    if s.data_note:
        st.caption(md_escape(s.data_note))
    diverged = sw.diverged_table(snap.frame)
    if len(diverged):
        st.markdown(f"**Diverged trials** ({len(diverged)}): stopped at once, counted as pruned.")
        st.dataframe(diverged, hide_index=True, key="se_diverged", column_config={
            "trial": st.column_config.NumberColumn(format="%d"), "reason": st.column_config.TextColumn(width="large")})
    if snap.curves:
        st.plotly_chart(sw.curves_figure(snap.curves, s.objective), key="se_fig_curves")
    elif snap.running_trials:
        st.caption("The per-epoch plot appears after the first epoch.")


def workers_section(s: StudySummary, snap: sw.Snapshot) -> None:
    st.markdown("**Workers on this machine**")
    if not snap.workers:
        st.caption("None yet. Start some below; workers on other machines "
                   f"(`python -m tlcore worker --study {s.name} --storage ...`) show in the trial table.")
        return
    st.dataframe(sw.workers_table(snap.workers), hide_index=True, key="se_workers_table")
    crashed = snap.crashed_workers
    for w in crashed[:MAX_CRASHED_SHOWN]:  # each with the end of its log
        tail = log_tail(w.log_path, CRASH_LOG_LINES)
        st.warning(sw.crash_text(w, tail, ended=not (snap.summary or s).crash_pending(w.trial)))
        if tail:
            st.code(tail, language=None)
    if len(crashed) > MAX_CRASHED_SHOWN:
        st.caption(f"{len(crashed) - MAX_CRASHED_SHOWN} more crashed worker(s): see the table above.")
    for w in sorted(snap.workers, key=lambda w: not w.alive)[:MAX_LOGS]:
        with place.expander(f"Log of {md_escape(w.worker_id)} ({md_escape(w.state)})",
                            key=f"se_log_open::{w.worker_id}"):
            st.code(log_tail(w.log_path, LOG_LINES) or "(empty so far)", language=None)


def control_section(ws: Workspace, s: StudySummary, snap: sw.Snapshot) -> None:
    name = s.name
    st.markdown("**Control**")
    c1, c2, c3 = st.columns([1, 2, 2])
    with c1:
        st.button("Stop study", key="se_stop", on_click=state.on_stop, args=(ws, name), icon=":material/stop:",
                  disabled=(s.stop_requested or s.complete) and not snap.alive_workers,
                  help="Workers end their running trial at its next batch (marked interrupted) and exit."
                  + (" This study has finished its trials: there is nothing to stop." if s.complete else ""))
    with c2:
        fields.number(st, "Workers to start", lo=0, hi=state.MAX_WORKERS, key="se_workers", persist_state=place.KEPT, step=1,
                      help="For Resume and Add workers. 0 resumes without starting any here.")
        a, b = st.columns(2)
        a.button("Resume", key="se_resume", on_click=state.on_resume, args=(ws, name), icon=":material/play_arrow:",
                 help="Clears the stop, queues the interrupted trials again and starts the workers.")
        b.button("Add workers", key="se_add", on_click=state.on_add, args=(ws, name), icon=":material/add:",
                 disabled=s.stop_requested or not st.session_state["se_workers"],
                 help="Resume first." if s.stop_requested else "More workers share the same study.")
    with c3:
        if snap.running_trials:
            pick, confirm = state.fail_keys(name)
            st.selectbox("Running trial", snap.running_trials, key=pick)
            ok = st.checkbox("I want to mark it failed", key=confirm)
            st.button("Mark failed", key="se_fail", on_click=state.on_fail, args=(ws, name), disabled=not ok,
                      help="Its worker abandons it and moves on. Use it for a trial that hangs.")
        else:
            st.caption("No trial is running: nothing to mark failed.")
    if s.complete:
        budget_row(ws, s)
    with place.expander("Delete this study", key=state.DELETE_OPEN):
        st.caption("Deletes the study, its trials and their saved models. Stop the study and wait for its "
                   "workers to exit first.")
        typed = st.text_input("Type the study's name to confirm", key=state.delete_key(name))
        st.button("Delete study", key="se_delete", on_click=state.on_delete, args=(ws, name), type="primary",
                  disabled=typed.strip() != name, icon=":material/delete:")


def budget_row(ws: Workspace, s: StudySummary) -> None:
    """A finished study's way to run further: a larger trial budget, then Add workers."""
    key = state.budget_key(s.name)
    st.session_state.setdefault(key, s.finished + 10)
    b1, b2 = st.columns([1, 2], vertical_alignment="bottom")
    fields.number(b1, "New trial budget", lo=s.finished + 1, hi=100_000, key=key, step=1,
                  help=f"The study has finished its {s.n_trials} trials. With a larger budget its workers run "
                       "more trials, on what the earlier ones found.")
    b2.button("Raise the budget", key="se_budget_go", on_click=state.on_budget, args=(ws, s.name),
              icon=":material/add_circle:", help="Then start workers with Add workers.")


def live_section(ws: Workspace, name: str, spec: StudySpec | None) -> None:
    """Everything that changes while the study runs; a fragment that reruns on a timer."""
    try:
        snap = sw.poll_study(ws, name)
    except TLCoreError as exc:
        show_error(exc)
        return
    if snap.summary is None:
        if not state.in_full_run():
            st.rerun()  # deleted (here or elsewhere): redraw the whole page
        st.warning(f"Study {md_escape(name)} no longer exists.")
        return
    s = snap.summary
    place.banners(state.live_slot(name))
    progress_section(s, snap, spec)
    trials_section(s, snap)
    workers_section(s, snap)
    control_section(ws, s, snap)
    st.caption(f"Read at {time.strftime('%H:%M:%S')} in {1000 * snap.seconds:.0f} ms"
               + ("" if st.session_state["se_auto"] else " · auto-refresh paused"))


# -------------------------------------------------------------------- page
def study_section(ws: Workspace, summaries: list[StudySummary]) -> None:
    ss = st.session_state
    by_name = {s.name: s for s in summaries}
    st.subheader("Study")
    c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="bottom")
    c1.selectbox("Study", list(by_name), key="se_study", format_func=lambda n: sw.study_label(by_name[n]),
                 help="Newest first.")
    name = ss["se_study"]
    place.keep_in_url("study", name)
    c2.toggle("Auto-refresh", key="se_auto", persist_state=place.KEPT, help="Read the study again every few seconds.")
    c3.selectbox("Every", state.REFRESH_CHOICES, key="se_refresh", persist_state=place.KEPT, format_func=lambda v: f"{v} s",
                 disabled=not ss["se_auto"], label_visibility="collapsed")
    try:
        spec = load_spec(ws, name)
    except TLCoreError as exc:
        show_error(exc)
        spec = None

    with state.full_run():
        st.fragment(run_every=ss["se_refresh"] if ss["se_auto"] else None)(live_section)(ws, name, spec)

    if spec is not None:
        with place.expander("Study spec (YAML)", key="se_spec_open"):
            st.code(spec.to_yaml(), language="yaml")
            st.download_button("Download", spec.to_yaml(), file_name=f"{name}.yaml", mime="application/x-yaml",
                               key="se_spec_download", on_click="ignore")
    with place.expander("Open it in optuna-dashboard, or follow it from a terminal", key="se_dash_open"):
        st.caption(f"Storage: {md_escape(describe_storage(ws, None))}")
        st.code(dashboard_command(ws), language="bash")
        st.code(f"python -m tlcore search status --study {name}", language="bash")


def main() -> None:
    ws = workspace()
    st.caption("Optuna tries freeze depths and learning rates (and whatever else you choose) on your dataset, "
               "in background workers that keep running when you close the page.")
    try:
        data.ensure_demo_registered(ws)
    except TLCoreError as exc:
        show_error(exc)
    try:
        summaries = list_studies(ws)
        datasets = [r.name for r in ws.list_datasets()]
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
    names = [s.name for s in summaries]
    form.init_form(names, datasets)
    selected = state.select_study(names)
    place.banners()
    sc.scout_section(ws, datasets, expanded=not names)
    form.new_study_section(ws, datasets, expanded=not names)
    if selected is None:
        st.info("No studies yet. Create one above: choose a dataset, the backbone, the range of frozen blocks "
                "and learning rates, and a budget of trials; or upload a spec file. From a terminal:")
        st.code(CLI_HINT, language="bash")
        form.page_drawn()
        return
    study_section(ws, summaries)
    form.page_drawn()


main()
