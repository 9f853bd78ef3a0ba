"""Train: one model with a chosen method, watched epoch by epoch, then tried and compared.

The classic recipe on one page: pick feature extraction, fine-tuning from depth k or
two-phase, a backbone, a size and the training settings (``tlui.train_widgets``'s
form, validated by ``TrainSpec``), and *Train* starts a background job
(``tlcore.train_jobs.launch_training``: ``python -m tlcore train --job ID``, never this
process) that keeps running when the page closes. Runs started from a terminal with
``python -m tlcore train`` register a job too and show here.

Everything shown is read from the job's folder (``<workspace>/train-jobs/<id>/``), so a
reload or a restarted server shows the same; the chosen job lives in
``st.query_params["job"]``. While it runs, an ``st.fragment`` rereads it every few
seconds: the per-epoch loss and accuracy curves (train solid, validation dashed) and
the table with each epoch's time; *Stop* ends it after the current batch with the
best epoch so far saved. A finished run shows its test report and links to Results
(the run opened like a trial) and Predict. User text is Markdown-escaped.
"""

from __future__ import annotations

import time

import streamlit as st

from tlcore import train_jobs as tj
from tlcore.background import log_tail
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui import data, place
from tlui import results_widgets as rw
from tlui import train_widgets as tw
from tlui.common import md_escape, show_error, workspace

REFRESH_S = 2  # seconds between rereads of a running job
EVENTS_SHOWN = 12  # stage messages in the job's log expander
LOG_LINES = 40
CLI_HINT = "python -m tlcore train --data demo --method fine_tune --freeze-depth 12 --epochs 5 --image-size 96"


def live_section(ws: Workspace, job_id: str, was_active: bool) -> None:
    """Everything that changes while the job runs; a fragment rerun every ``REFRESH_S`` seconds then."""
    try:
        s = tj.job_status(tj.open_job(ws, job_id))
    except TLCoreError as exc:
        show_error(exc)
        return
    if was_active and s.final and not st.session_state.get("tr_full_run"):
        st.rerun()  # it ended: draw the whole page again (the result, and no more timer)
    place.banners(tw.live_slot(job_id))
    tw.status_box(s)
    tw.stop_buttons(ws, s)
    progress = tj.read_progress(s.job)
    if progress.epochs:
        curves = tw.curves_frame(progress.epochs, job_id)
        st.plotly_chart(rw.curves_figure(curves, {job_id: "this run"}), key="tr_curves")
        st.caption("Solid: the training split; dashed: validation.")
        st.dataframe(tw.epochs_frame(progress.epochs), hide_index=True, column_config=tw.EPOCHS_CONFIG,
                     key="tr_epochs_table")
    elif not s.final:
        st.caption("The curves and the epoch table appear when the first epoch ends.")
    with place.expander("What it is doing (stage messages and log)", key="tr_log_open"):
        for e in progress.events[-EVENTS_SHOWN:]:
            when = time.strftime("%H:%M:%S", time.localtime(e.get("time", 0)))
            st.text(f"{when}  {e.get('text', '')}")
        tail = log_tail(s.job.log_file, LOG_LINES) if s.job.log_file.is_file() else ""
        if tail:
            st.code(tail, language=None)
    st.caption(f"Read at {time.strftime('%H:%M:%S')}" + (f", again every {REFRESH_S} s" if not s.final else ""))


def job_section(ws: Workspace, jobs: list[tj.JobStatus]) -> None:
    by_id = {s.id: s for s in jobs}
    st.subheader("Training jobs")
    job_id = tw.select_job(list(by_id))
    st.selectbox("Job", list(by_id), key="tr_job", format_func=lambda i: tw.job_label(by_id[i]),
                 help="Newest first; runs started from a terminal are here too.")
    with place.expander(f"All jobs ({len(jobs)})", key="tr_jobs_open"):
        st.dataframe(tw.jobs_frame(jobs), hide_index=True, column_config=tw.JOBS_CONFIG, key="tr_jobs_table")
    s = by_id[job_id]
    spec = s.spec
    if spec is not None:
        depth = "all" if spec.freeze_depth is None or spec.method == "feature_extraction" else spec.freeze_depth
        st.caption(md_escape(f"{spec.dataset} · {spec.backbone} at {spec.image_size} px · {spec.method}, "
                             f"frozen blocks {depth} · learning rate {spec.learning_rate:g} · epochs {spec.epochs} "
                             f"· batch {spec.batch_size}"))
    st.session_state["tr_full_run"] = True
    try:
        st.fragment(run_every=None if s.final else REFRESH_S)(live_section)(ws, job_id, not s.final)
    finally:
        st.session_state["tr_full_run"] = False
    if s.final:
        tw.result_section(s)
    if spec is not None:
        with place.expander("The run's spec (YAML)", key="tr_spec_open"):
            st.code(spec.to_yaml(), language="yaml")


def main() -> None:
    ws = workspace()
    st.caption("Train one model with the method you choose, and watch its loss and accuracy epoch by epoch. "
               "The run goes on in the background when you close the page.")
    try:
        data.ensure_demo_registered(ws)
    except TLCoreError as exc:
        show_error(exc)
    try:
        datasets = [r.name for r in ws.list_datasets()]
        jobs = tj.list_jobs(ws)
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
    tw.init_form(datasets)
    place.banners()
    tw.form_section(ws, datasets, expanded=not jobs)
    if not jobs:
        st.info("No training runs yet. Choose the settings above and press Train, or from a terminal:")
        st.code(CLI_HINT, language="bash")
        return
    job_section(ws, jobs)


main()
