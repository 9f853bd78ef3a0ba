"""Search: let Optuna find how much of the backbone to freeze and which learning rate to use.

Thin: ``tlcore.search`` creates studies, runs the background workers and reads the
storage; ``tlui.search_widgets`` polls a study and draws its curves. A study is
created from the widgets or from an uploaded spec (YAML), and its workers start
right away as background processes that outlive this page and the server. The
selected study lives in ``st.query_params["study"]``, so a reload, a link or a
restarted server shows it again (its workers are found again through their state
files); without one, the newest study is shown.

The live section is an ``st.fragment`` that reruns every few seconds (a toggle
pauses it): one poll of the storage per refresh. Its buttons act through
callbacks, so their message shows at once and stays for a while across refreshes.
User-controlled text (study, dataset and file names, messages quoting them) is
Markdown-escaped or shown as plain text.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from tlcore import augment as au
from tlcore import backbones as bb
from tlcore.config import METHODS, RESIZE_MODES
from tlcore.errors import TLCoreError
from tlcore.search import (
    StudySpec,
    StudySummary,
    create_study,
    dashboard_command,
    delete_study,
    describe_storage,
    fail_trial,
    launch_workers,
    list_studies,
    load_spec,
    log_tail,
    resume_study,
    stop_workers,
)
from tlcore.search.local import WorkerInfo
from tlcore.search.spec import OBJECTIVES, PRUNERS, SAMPLERS
from tlcore.search.worker_state import WorkerState
from tlcore.workspace import Workspace
from tlui import data
from tlui import scout_widgets as sc
from tlui import search_widgets as sw
from tlui.common import md_escape, open_workspace, show_error, sidebar_nav, sidebar_workspace

DEFAULT_BACKBONE = "efficientnet_lite0"
REFRESH_CHOICES = (1, 2, 5, 10, 30)  # seconds between live refreshes
DEFAULT_REFRESH = 2
NOTE_SECONDS = 60  # how long a button's message stays
LOG_LINES = 40
MAX_LOGS = 6  # worker logs offered (alive workers first, then the newest)
MAX_CRASHED_SHOWN = 3  # crashed workers given a warning with their log's end (the newest)
CRASH_LOG_LINES = 10
MAX_WORKERS = 16
IMAGE_SIZES = (32, 1024)
LR_BOUNDS = (1e-6, 1.0)
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
NO_AUGMENT = "none"
WEIGHTS = {"imagenet": "ImageNet (pretrained)", "none": "random init (tests/offline)"}
OBJECTIVE_LABELS = {"val_accuracy": "validation accuracy (maximise)", "val_loss": "validation loss (minimise)"}
PRUNER_LABELS = {"successive_halving": "successive halving (one epoch on small data subsets first)",
                 "median": "median (stop trials below the median)", "hyperband": "hyperband", "none": "none"}
CLI_HINT = ("python -m tlcore search create --spec study.yaml\n"
            "python -m tlcore search run --study NAME --workers 1")


# ------------------------------------------------------------------- state
def _free_name(names: list[str]) -> str:
    k = 1
    while f"search-{k}" in names:
        k += 1
    return f"search-{k}"


def init_state(names: list[str], datasets: list[str]) -> str | None:
    """Initialise every session-state key of this page; return the selected study."""
    ss = st.session_state
    defaults: dict[str, Any] = {
        "se_flash": [], "se_notes": [],
        "se_new_augment": NO_AUGMENT, "se_new_backbones": [DEFAULT_BACKBONE], "se_new_size": 128,
        "se_new_methods": ["fine_tune"], "se_new_lr_lo": 1e-4, "se_new_lr_hi": 1e-2,
        "se_new_ftf_on": False, "se_new_ftf_lo": 0.01, "se_new_ftf_hi": 0.5,
        "se_new_do_on": False, "se_new_do": (0.1, 0.5), "se_new_bss": [], "se_new_bs": 32,
        "se_new_epochs": 3, "se_new_trials": 20, "se_new_to_on": False, "se_new_to": 60.0,
        "se_new_objective": "val_accuracy", "se_new_sampler": "tpe", "se_new_pruner": PRUNERS[0], "se_new_seed": 0,
        "se_new_workers": 1, "se_new_start": True, "se_new_weights": "imagenet", "se_new_resize": "pad",
        "se_new_cw": False, "se_up_workers": 1, "se_up_start": True,
        "se_auto": True, "se_refresh": DEFAULT_REFRESH, "se_workers": 1,
    }
    for key, value in defaults.items():
        ss.setdefault(key, value)
    if ss.pop("se_clear_form", False) or "se_new_name" not in ss:
        ss["se_new_name"] = _free_name(names)
        ss.pop("se_scout_seed", None)  # a scout's seeds are for the one study created after asking
    if ss.get("se_new_dataset") not in datasets:
        ss["se_new_dataset"] = "demo" if "demo" in datasets else (datasets[0] if datasets else None)

    pending = ss.pop("se_pending_select", None)
    if pending in names:
        ss["se_study"] = pending
    if ss.get("se_study") not in names:
        wanted = st.query_params.get("study")
        if wanted in names:
            ss["se_study"] = wanted
        else:
            if wanted and wanted == ss.get("se_deleted"):
                del st.query_params["study"]
            elif wanted:
                flash("warning", f"There is no study named {md_escape(wanted)} in this workspace"
                                 + ("; showing the newest." if names else "."))
            ss["se_study"] = names[0] if names else None  # list_studies is newest first
    return ss["se_study"]


def flash(kind: str, text: str) -> None:
    """A message for the top of the page, shown once (after the next rerun)."""
    st.session_state["se_flash"] = [*st.session_state.get("se_flash", []), (kind, text)]


def show_flash() -> None:
    for kind, text in st.session_state.get("se_flash", []):
        getattr(st, kind)(text)
    st.session_state["se_flash"] = []


def note(study: str, kind: str, text: str) -> None:
    """A message of the live section: it stays ``NOTE_SECONDS`` across refreshes."""
    now = time.time()
    keep = [n for n in st.session_state.get("se_notes", []) if now - n[2] < NOTE_SECONDS]
    st.session_state["se_notes"] = [*keep, (kind, text, now, study)]


def show_notes(study: str) -> None:
    now = time.time()
    for kind, text, when, about in st.session_state.get("se_notes", []):
        if about == study and now - when < NOTE_SECONDS:
            getattr(st, kind)(text)


# ----------------------------------------------------------------- helpers
def backbone_label(name: str) -> str:
    info = bb.get(name)
    if info.bundled_weights:
        return f"{info.display_name} (ImageNet weights bundled, offline)"
    if bb.imagenet_weights_available(name):
        return f"{info.display_name} (ImageNet weights in the Keras cache)"
    return f"{info.display_name} (ImageNet weights need internet)"


def study_label(s: StudySummary) -> str:
    return f"{s.name}  ·  {s.dataset}  ·  created {s.created.replace('T', ' ')[:16] or '?'}"


# ------------------------------------------------------------ new study
def _create_and_start(ws: Workspace, spec: StudySpec, workers: int) -> None:
    """Create the study, start its workers, select it. Errors show in place."""
    try:
        create_study(ws, spec)
    except TLCoreError as exc:
        show_error(exc)
        return
    msg = f"Created study {md_escape(spec.name)}."
    if workers:
        try:
            ids = launch_workers(ws, spec.name, workers)
        except TLCoreError as exc:
            flash("warning", f"Created study {md_escape(spec.name)}, but its workers did not start: "
                             f"{md_escape(exc)}")
            msg = ""
        else:
            msg += (f" Started {len(ids)} worker(s); the first trial begins once they have loaded "
                    "TensorFlow (up to a minute).")
    else:
        msg += " No worker was started: start some below when you are ready."
    if msg:
        flash("success", msg)
    st.session_state["se_pending_select"] = spec.name
    st.session_state["se_clear_form"] = True
    st.rerun()


def _blocks(names: list[str]) -> tuple[int, list[int]]:
    counts = [bb.get(n).num_blocks for n in names] or [bb.get(DEFAULT_BACKBONE).num_blocks]
    return min(counts), counts


def spec_from_widgets(blocks: int, counts: list[int]) -> StudySpec:
    """The ``StudySpec`` the widgets describe. Raises ``ConfigError`` when it is invalid."""
    ss = st.session_state
    lo, hi = (int(v) for v in ss["se_new_depth"])
    depth = None if (lo, hi) == (0, blocks) and len(set(counts)) > 1 else [lo, hi]  # each backbone's full range
    aug = ss["se_new_augment"]
    return StudySpec(
        name=str(ss["se_new_name"]).strip(),
        dataset=ss["se_new_dataset"] or "",
        augment=None if aug == NO_AUGMENT else aug,
        backbones=list(ss["se_new_backbones"]),
        weights=None if ss["se_new_weights"] == "none" else "imagenet",
        image_size=int(ss["se_new_size"]),
        resize_mode=ss["se_new_resize"],
        methods=list(ss["se_new_methods"]),
        freeze_depth=depth,
        learning_rate=[float(ss["se_new_lr_lo"]), float(ss["se_new_lr_hi"])],
        fine_tune_factor=[float(ss["se_new_ftf_lo"]), float(ss["se_new_ftf_hi"])] if ss["se_new_ftf_on"] else None,
        dropout=[float(v) for v in ss["se_new_do"]] if ss["se_new_do_on"] else None,
        batch_sizes=sorted(int(b) for b in ss["se_new_bss"]) or None,
        batch_size=int(ss["se_new_bs"]),
        epochs=int(ss["se_new_epochs"]),
        n_trials=int(ss["se_new_trials"]),
        timeout_minutes=float(ss["se_new_to"]) if ss["se_new_to_on"] else None,
        objective=ss["se_new_objective"],
        sampler=ss["se_new_sampler"],
        pruner=ss["se_new_pruner"],
        **({} if ss["se_new_pruner"] == "successive_halving" else {"subset_rungs": None}),  # rungs are its own
        **({} if sc.scout_spec_option() is None else {"scout": sc.scout_spec_option()}),  # the Scout step's seeds
        seed=int(ss["se_new_seed"]),
        class_weights=bool(ss["se_new_cw"]),
    )


def from_widgets(ws: Workspace, datasets: list[str]) -> None:
    ss = st.session_state
    c1, c2, c3 = st.columns(3)
    c1.text_input("Study name", key="se_new_name", max_chars=64,
                  help="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    c2.selectbox("Dataset", datasets, key="se_new_dataset", help="Registered datasets (add one on the Datasets page).")
    c3.selectbox("Augmentation", au.pipeline_names(ws), key="se_new_augment",
                 format_func=lambda n: f"{n} (preset)" if n in au.PRESETS and n != NO_AUGMENT
                 else ("none" if n == NO_AUGMENT else f"{n} (saved)"),
                 help="A preset or a pipeline saved on the Augmentations page.")

    st.markdown("**What to search**")
    c1, c2, c3 = st.columns([3, 1, 2])
    c1.multiselect("Backbones", bb.list_backbones(), key="se_new_backbones", format_func=backbone_label,
                   help="More than one makes the backbone a searched parameter.")
    c2.number_input("Image size (px)", min_value=IMAGE_SIZES[0], max_value=IMAGE_SIZES[1], step=16, key="se_new_size")
    c3.multiselect("Methods", list(METHODS), key="se_new_methods",
                   help="fine_tune freezes the first blocks; two_phase trains the head first, then unfreezes; "
                        "feature_extraction freezes the whole backbone.")
    if ss["se_new_weights"] == "imagenet":
        online = [bb.get(n).display_name for n in ss["se_new_backbones"]
                  if not bb.get(n).bundled_weights and not bb.imagenet_weights_available(n)]
        if online:
            st.caption(f"{md_escape(', '.join(online))}: the workers download the ImageNet weights (internet needed).")

    blocks, counts = _blocks(list(ss["se_new_backbones"]))
    lo, hi = ss.get("se_new_depth", (0, blocks))
    ss["se_new_depth"] = (min(int(lo), blocks), min(int(hi), blocks))
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.slider("Frozen blocks (freeze depth)", min_value=0, max_value=blocks, key="se_new_depth",
              help=f"How many of the backbone's {blocks} blocks stay frozen, counted from the input. "
                   "0 trains the whole backbone; all blocks keeps it fixed.")
    c2.number_input("Learning rate from", min_value=LR_BOUNDS[0], max_value=LR_BOUNDS[1], step=1e-5,
                    format="%.1e", key="se_new_lr_lo", help="Searched on a log scale.")
    c3.number_input("to", min_value=LR_BOUNDS[0], max_value=LR_BOUNDS[1], step=1e-3, format="%.1e",
                    key="se_new_lr_hi",
                    help="The high end at full depth. A trial that unfreezes more gets a lower ceiling, down to "
                         "a tenth of this at depth 0 (lr_ceiling_at_depth0 in a YAML spec changes it).")

    with st.expander("More to search: fine-tune factor, dropout, batch size"):
        c1, c2, c3 = st.columns(3)
        with c1:
            on = st.checkbox("Search the fine-tune factor (two_phase)", key="se_new_ftf_on",
                             help="Phase 2's learning rate is the learning rate times this factor. Off: 0.1.")
            a, b = st.columns(2)
            a.number_input("from", min_value=1e-4, max_value=1.0, step=0.01, format="%.3f", key="se_new_ftf_lo",
                           disabled=not on)
            b.number_input("to", min_value=1e-4, max_value=1.0, step=0.01, format="%.3f", key="se_new_ftf_hi",
                           disabled=not on)
        with c2:
            on = st.checkbox("Search the dropout", key="se_new_do_on", help="Off: 0.2.")
            st.slider("Dropout", min_value=0.0, max_value=0.9, step=0.05, key="se_new_do", disabled=not on)
        with c3:
            st.multiselect("Batch sizes to try", BATCH_SIZES, key="se_new_bss", help="Empty: the fixed batch size.")
            st.number_input("Fixed batch size", min_value=1, max_value=4096, key="se_new_bs",
                            disabled=bool(ss["se_new_bss"]))

    st.markdown("**Budget and search**")
    c = st.columns(4)
    c[0].number_input("Epochs per trial", min_value=1, max_value=1000, key="se_new_epochs")
    c[1].number_input("Trials", min_value=1, max_value=100_000, key="se_new_trials",
                      help="The study stops when this many trials finished (complete or pruned).")
    with c[2]:
        on = st.checkbox("Time limit", key="se_new_to_on", help="No new trial starts after this long.")
        st.number_input("Minutes", min_value=1.0, max_value=1e6, step=10.0, key="se_new_to", disabled=not on,
                        label_visibility="collapsed")
    c[3].selectbox("Objective", OBJECTIVES, key="se_new_objective", format_func=OBJECTIVE_LABELS.get)
    c = st.columns(4)
    c[0].selectbox("Sampler", SAMPLERS, key="se_new_sampler",
                   help="tpe learns from the finished trials; random tries settings at random.")
    c[1].selectbox("Pruner", PRUNERS, key="se_new_pruner", format_func=lambda p: PRUNER_LABELS.get(p, p),
                   help="Stops unpromising trials early, after their warm-up epoch.")
    c[2].number_input("Seed", min_value=0, max_value=2**31 - 1, key="se_new_seed")
    c[3].number_input("Local workers", min_value=1, max_value=MAX_WORKERS, key="se_new_workers",
                      help="Background processes on this machine; one per GPU, or 1-2 on a CPU.")

    with st.expander("Advanced"):
        c1, c2, c3 = st.columns(3)
        c1.radio("Weights", list(WEIGHTS), key="se_new_weights", format_func=WEIGHTS.get,
                 help="Random init trains from scratch: only for tests and offline checks.")
        c2.selectbox("Resize mode", RESIZE_MODES, key="se_new_resize",
                     help="pad keeps the aspect ratio (letterbox), crop takes the centre, stretch distorts.")
        c3.checkbox("Class weights", key="se_new_cw", help="Weight classes inversely to their frequency.")

    sc.seed_note()
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    start = c2.checkbox("Start now", key="se_new_start", help="Off: create the study and start workers later.")
    if c1.button("Create study", key="se_new_create", type="primary"):
        try:
            spec = spec_from_widgets(blocks, counts)
        except TLCoreError as exc:
            show_error(exc)
            return
        _create_and_start(ws, spec, int(ss["se_new_workers"]) if start else 0)


def example_spec() -> str:
    return StudySpec(name="pets-search", dataset="demo", image_size=128, freeze_depth=[6, 18],
                     learning_rate=[1e-4, 1e-2], epochs=3, n_trials=20).to_yaml()


def from_upload(ws: Workspace) -> None:
    st.caption("A study spec in YAML, as `python -m tlcore search create --spec FILE` takes. "
               "Fields left out take their defaults.")
    with st.expander("Example"):
        st.code(example_spec(), language="yaml")
    upload = st.file_uploader("Study spec (YAML)", type=["yaml", "yml"], key="se_spec_file")
    if upload is None:
        return
    try:
        spec = sw.parse_spec_text(upload.getvalue())
    except TLCoreError as exc:
        show_error(exc)
        return
    st.caption("The spec, with the defaults filled in:")
    st.code(spec.to_yaml(), language="yaml")
    if not ws.has_dataset(spec.dataset):
        st.warning(f"Its dataset {md_escape(spec.dataset)} is not registered in this workspace: "
                   "add it on the Datasets page first.")
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    c2.number_input("Local workers", min_value=1, max_value=MAX_WORKERS, key="se_up_workers")
    start = c3.checkbox("Start now", key="se_up_start")
    if c1.button("Create study", key="se_up_create", type="primary"):
        _create_and_start(ws, spec, int(st.session_state["se_up_workers"]) if start else 0)


def new_study_section(ws: Workspace, datasets: list[str], expanded: bool) -> None:
    with st.expander("New study", expanded=expanded, icon=":material/add:"):
        if not datasets:
            st.info("No datasets are registered: add one on the Datasets page first.")
            return
        t_widgets, t_upload = st.tabs(["Choose settings", "Upload a spec (YAML)"])
        with t_widgets:
            from_widgets(ws, datasets)
        with t_upload:
            from_upload(ws)


# ------------------------------------------------------------ callbacks
def _on_stop(ws: Workspace, name: str) -> None:
    try:
        n = stop_workers(ws, name)
    except TLCoreError as exc:
        note(name, "error", md_escape(exc))
        return
    note(name, "success", f"Stop requested; {n} local worker(s) signalled. A running trial ends at its next "
                          "batch (marked interrupted) and no new trial starts. Resume queues it again.")


def _on_resume(ws: Workspace, name: str) -> None:
    n = int(st.session_state["se_workers"])
    try:
        again = resume_study(ws, name)
        ids = launch_workers(ws, name, n) if n else []
    except TLCoreError as exc:
        note(name, "error", md_escape(exc))
        return
    note(name, "success", f"Resumed: {again} interrupted trial(s) queued again"
                          + (f", {len(ids)} worker(s) started." if ids else "; no worker started."))


def _on_add(ws: Workspace, name: str) -> None:
    try:
        ids = launch_workers(ws, name, int(st.session_state["se_workers"]))
    except TLCoreError as exc:
        note(name, "error", md_escape(exc))
        return
    note(name, "success", f"Started {len(ids)} worker(s).")


def _on_fail(ws: Workspace, name: str) -> None:
    ss = st.session_state
    number = ss.get(f"se_fail_pick::{name}")
    ss[f"se_fail_ok::{name}"] = False
    if number is None:
        return
    try:
        fail_trial(ws, name, int(number))
    except TLCoreError as exc:
        note(name, "error", md_escape(exc))
        return
    note(name, "success", f"Trial {int(number)} marked failed; its worker moves on to the next trial.")


def _on_delete(ws: Workspace, name: str) -> None:
    ss = st.session_state
    try:
        removed = delete_study(ws, name)
    except TLCoreError as exc:
        note(name, "error", md_escape(exc))
        return
    ss[f"se_del_name::{name}"] = ""
    ss["se_deleted"] = name
    ss.pop("se_study", None)
    flash("success", f"Deleted study {md_escape(name)} and {removed} trial file(s).")


# ------------------------------------------------------------ live section
def progress_section(s: StudySummary, snap: sw.Snapshot, spec: StudySpec | None) -> None:
    kind, text = sw.status_sentence(s, snap)
    getattr(st, kind)(text)
    counts = s.counts
    diverged = len(snap.diverged)
    m = st.columns(5)
    m[0].metric("Finished", f"{s.finished}/{s.n_trials}" if s.n_trials else f"{s.finished}",
                help="Complete and pruned (or diverged) trials, of the study's budget.")
    m[1].metric("Running", s.running)
    m[2].metric("Pruned · diverged", f"{max(0, counts.get('PRUNED', 0) - diverged)} · {diverged}",
                help="Stopped early by the pruner · stopped because they diverged (the loss was not finite, "
                     "or the validation accuracy stayed at chance).")
    m[3].metric("Failed", counts.get("FAIL", 0), help="Errors, interrupted trials and trials marked failed.")
    m[4].metric(f"Best {s.objective}", sw.fmt(s.best_value))
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

    training = [w for w in snap.alive_workers if w.trial is not None]
    for w in training:
        st.progress(w.progress or 0.0, text=md_escape(sw.worker_progress_text(w)))
    elsewhere = sorted(set(snap.running_trials) - {w.trial for w in training})
    if elsewhere:
        st.caption(f"Running on workers elsewhere (or starting): trial(s) {', '.join(map(str, elsewhere))}.")


def trials_section(s: StudySummary, snap: sw.Snapshot) -> None:
    st.markdown("**Trials**")
    table = sw.trial_table(snap.frame)
    if table.empty:
        st.caption("No trials yet: workers load TensorFlow first (up to a minute), then ask for a trial.")
        return
    config: dict[str, Any] = {
        "number": st.column_config.NumberColumn("trial", format="%d"),
        "value": st.column_config.NumberColumn(s.objective, format="%.4f"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.0f"),
    }
    for c in table.columns:
        if c.startswith("params_"):
            fmt = "%.2e" if c in ("params_learning_rate", "params_fine_tune_factor") else None
            config[c] = st.column_config.Column(c.removeprefix("params_")) if fmt is None else \
                st.column_config.NumberColumn(c.removeprefix("params_"), format=fmt)
    st.dataframe(table, hide_index=True, column_config=config, key="se_trials")
    diverged = sw.diverged_table(snap.frame)
    if len(diverged):
        st.markdown(f"**Diverged trials** ({len(diverged)}): stopped at once, counted as pruned.")
        st.dataframe(diverged, hide_index=True, key="se_diverged", column_config={
            "trial": st.column_config.NumberColumn(format="%d"), "reason": st.column_config.TextColumn(width="large")})
    if snap.curves:
        st.plotly_chart(sw.curves_figure(snap.curves, s.objective), key="se_fig_curves")
    elif snap.running_trials:
        st.caption("The per-epoch plot appears after the first epoch.")


def crashed_workers(workers: list[WorkerInfo]) -> None:
    """A warning for each worker that exited without finishing, with the end of its log."""
    crashed = [w for w in workers if w.state == WorkerState.CRASHED]
    for w in crashed[:MAX_CRASHED_SHOWN]:
        tail = log_tail(w.log_path, CRASH_LOG_LINES)
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        st.warning(
            f"Worker {md_escape(w.worker_id)} crashed: it stopped without finishing (pid {w.pid}). "
            + (f"The last line of its log: {md_escape(last)} " if last else "Its log is empty. ")
            + "A trial it was running is queued again when a worker next starts. Fix what the log "
            "shows, then start workers again below (Add workers, or Resume after a stop)."
        )
        if tail:
            st.code(tail, language=None)
    if len(crashed) > MAX_CRASHED_SHOWN:
        st.caption(f"{len(crashed) - MAX_CRASHED_SHOWN} more crashed worker(s): see the table above.")


def workers_section(s: StudySummary, snap: sw.Snapshot) -> None:
    st.markdown("**Workers on this machine**")
    if not snap.workers:
        st.caption("None yet. Start some below; workers on other machines "
                   f"(`python -m tlcore worker --study {s.name} --storage ...`) show in the trial table.")
        return
    rows = [{"worker": w.worker_id, "state": w.state, "alive": w.alive, "trial": w.trial, "pid": w.pid,
             "trials done": w.record.trials_done, "why it stopped": w.record.reason or ""}
            for w in snap.workers]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="se_workers_table")
    crashed_workers(snap.workers)
    shown = sorted(snap.workers, key=lambda w: not w.alive)[:MAX_LOGS]
    for w in shown:
        with st.expander(f"Log of {md_escape(w.worker_id)} ({md_escape(w.state)})"):
            st.code(log_tail(w.log_path, LOG_LINES) or "(empty so far)", language=None)


def control_section(ws: Workspace, s: StudySummary, snap: sw.Snapshot) -> None:
    ss = st.session_state
    name = s.name
    alive = snap.alive_workers
    st.markdown("**Control**")
    c1, c2, c3 = st.columns([1, 2, 2])
    with c1:
        st.button("Stop study", key="se_stop", on_click=_on_stop, args=(ws, name), icon=":material/stop:",
                  disabled=s.stop_requested and not alive,
                  help="Workers end their running trial at its next batch (marked interrupted) and exit.")
    with c2:
        st.number_input("Workers to start", min_value=0, max_value=MAX_WORKERS, key="se_workers",
                        help="For Resume and Add workers. 0 resumes without starting any here.")
        a, b = st.columns(2)
        a.button("Resume", key="se_resume", on_click=_on_resume, args=(ws, name), icon=":material/play_arrow:",
                 help="Clears the stop, queues the interrupted trials again and starts the workers.")
        b.button("Add workers", key="se_add", on_click=_on_add, args=(ws, name), icon=":material/add:",
                 disabled=s.stop_requested or not ss["se_workers"],
                 help="Resume first." if s.stop_requested else "More workers share the same study.")
    with c3:
        running = snap.running_trials
        if running:
            st.selectbox("Running trial", running, key=f"se_fail_pick::{name}")
            ok = st.checkbox("I want to mark it failed", key=f"se_fail_ok::{name}")
            st.button("Mark failed", key="se_fail", on_click=_on_fail, args=(ws, name), disabled=not ok,
                      help="Its worker abandons it and moves on. Use it for a trial that hangs.")
        else:
            st.caption("No trial is running: nothing to mark failed.")
    with st.expander("Delete this study"):
        st.caption("Deletes the study, its trials and their saved models. Stop the study and wait for its "
                   "workers to exit first.")
        typed = st.text_input("Type the study's name to confirm", key=f"se_del_name::{name}")
        st.button("Delete study", key="se_delete", on_click=_on_delete, args=(ws, name), type="primary",
                  disabled=typed.strip() != name, icon=":material/delete:")


def live_section(ws: Workspace, name: str, spec: StudySpec | None) -> None:
    """Everything that changes while the study runs; a fragment that reruns on a timer."""
    full_run = st.session_state.get("se_full_run", False)
    try:
        snap = sw.poll_study(ws, name)
    except TLCoreError as exc:
        show_error(exc)
        return
    if snap.summary is None:
        if not full_run:
            st.rerun()  # deleted (here or elsewhere): redraw the whole page
        st.warning(f"Study {md_escape(name)} no longer exists.")
        return
    s = snap.summary
    show_notes(name)
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
    c1.selectbox("Study", list(by_name), key="se_study", format_func=lambda n: study_label(by_name[n]),
                 help="Newest first.")
    name = ss["se_study"]
    st.query_params["study"] = name
    c2.toggle("Auto-refresh", key="se_auto", help="Read the study again every few seconds.")
    c3.selectbox("Every", REFRESH_CHOICES, key="se_refresh", format_func=lambda v: f"{v} s",
                 disabled=not ss["se_auto"], label_visibility="collapsed")
    try:
        spec = load_spec(ws, name)
    except TLCoreError as exc:
        show_error(exc)
        spec = None

    ss["se_full_run"] = True
    try:
        live = st.fragment(run_every=ss["se_refresh"] if ss["se_auto"] else None)(live_section)
        live(ws, name, spec)
    finally:
        ss["se_full_run"] = False

    if spec is not None:
        with st.expander("Study spec (YAML)"):
            st.code(spec.to_yaml(), language="yaml")
            st.download_button("Download", spec.to_yaml(), file_name=f"{name}.yaml", mime="application/x-yaml",
                               key="se_spec_download", on_click="ignore")
    with st.expander("Open it in optuna-dashboard, or follow it from a terminal"):
        st.caption(f"Storage: {md_escape(describe_storage(ws, None))}")
        st.code(dashboard_command(ws), language="bash")
        st.code(f"python -m tlcore search status --study {name}", language="bash")


def main() -> None:
    st.set_page_config(page_title="Search · Transfer-learning workbench", layout="wide")
    sidebar_nav()
    ws = open_workspace()
    sidebar_workspace(ws)
    st.title("Search")
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
    selected = init_state(names, datasets)
    show_flash()
    sc.scout_section(ws, datasets, expanded=not names)
    new_study_section(ws, datasets, expanded=not names)
    if selected is None:
        st.info("No studies yet. Create one above: choose a dataset, the backbone, the range of frozen blocks "
                "and learning rates, and a budget of trials; or upload a spec file. From a terminal:")
        st.code(CLI_HINT, language="bash")
        return
    study_section(ws, summaries)


main()
