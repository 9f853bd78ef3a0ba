"""The Search page's "New study" section: a study from widgets or from an uploaded spec, created and started.

Two tabs. "Choose settings": widgets for the dataset, augmentation, backbones,
image size, methods, the searched ranges (freeze depth, learning rate, and on request
fine-tune factor, dropout, batch size), the budget, objective, sampler, pruner and
seed; ``spec_from_widgets`` turns them into a ``StudySpec``, whose validation explains
any bad value. "Upload a spec (YAML)": a spec file, shown with its defaults filled in.
Either way ``create_and_start`` creates the study, starts its local workers and selects
it (``tlui.search_state``).

Session keys ``se_new_*`` (widgets) and ``se_up_*`` (upload), set by ``init_form``:
their first values are ``StudySpec``'s defaults (``spec_default``), so the form and a
YAML spec that leaves a field out start alike; only the ranges offered when an
optional search is switched on (fine-tune factor, dropout, time limit) are the form's
own. A created study clears the form for the next (``se_clear_form``: a new free name,
the scout's seeds dropped) and closes it. Its expanders and tabs keep their state in
``NEW_OPEN`` and the ``se_*_open`` / ``se_new_tab`` keys (``tlui.place``). The Scout step (``tlui.scout_widgets``) reads the form's
dataset, backbones, size, weights and resize mode, and can set its freeze-depth range
(``se_new_depth``) and seeds. User text is Markdown-escaped.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import streamlit as st

from tlcore import augment as au
from tlcore import backbones as bb
from tlcore.config import METHODS, RESIZE_MODES, RESIZE_RULES, TrainSpec
from tlcore.errors import ConfigError, TLCoreError
from tlcore.search import StudySpec, create_study, launch_workers
from tlcore.search.spec import DROPOUT_RANGE, OBJECTIVES, PRUNERS, SAMPLERS
from tlcore.search.spec import FINE_TUNE_FACTOR_RANGE as FTF_RANGE
from tlcore.workspace import Workspace
from tlui import fields, place
from tlui import scout_widgets as sc
from tlui import search_state as state
from tlui import search_widgets as sw
from tlui.common import md_escape, show_error

__all__ = ["init_form", "form_problems", "new_study_section", "spec_from_widgets", "spec_default", "create_and_start",
           "example_spec", "NEW_OPEN"]

IMAGE_SIZES = (32, 1024)
LR_BOUNDS = (1e-6, 1.0)
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
TIMEOUT_MINUTES = 60.0  # offered when a time limit is set
NEW_OPEN = "se_new_open"  # whether the New study expander is open (tlui.place)
NO_AUGMENT = "none"
RANDOM_WEIGHTS = "none"  # the Weights option of StudySpec.weights None
WEIGHTS = {"imagenet": "ImageNet (pretrained)", RANDOM_WEIGHTS: "random init (tests/offline)"}
OBJECTIVE_LABELS = {"val_accuracy": "validation accuracy (maximise)", "val_loss": "validation loss (minimise)"}
PRUNER_LABELS = {"successive_halving": "successive halving (one epoch on small data subsets first)",
                 "median": "median (stop trials below the median)", "hyperband": "hyperband", "none": "none"}
RESIZE_HELP = "; ".join(f"{mode}: {rule}" for mode, rule in RESIZE_RULES.items()) + "."


def spec_default(name: str) -> Any:
    """``StudySpec``'s default for field ``name`` (read from the dataclass: no spec is built)."""
    field = next(f for f in dataclasses.fields(StudySpec) if f.name == name)
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _free_name(names: list[str]) -> str:
    k = 1
    while f"search-{k}" in names:
        k += 1
    return f"search-{k}"


def init_form(names: list[str], datasets: list[str]) -> None:
    """Initialise the form's session keys (``StudySpec``'s defaults); after a study was created, a new
    free name; a dataset that is still registered ("demo" at first)."""
    ss = st.session_state
    d = spec_default
    ftf, dropout, timeout = d("fine_tune_factor"), d("dropout"), d("timeout_minutes")
    lr_lo, lr_hi = d("learning_rate")
    defaults: dict[str, Any] = {
        "se_new_augment": d("augment") or NO_AUGMENT, "se_new_backbones": d("backbones"),
        "se_new_size": d("image_size"), "se_new_methods": d("methods"), "se_new_lr_lo": lr_lo, "se_new_lr_hi": lr_hi,
        "se_new_ftf_on": ftf is not None, "se_new_ftf_lo": (ftf or FTF_RANGE)[0],
        "se_new_ftf_hi": (ftf or FTF_RANGE)[1],
        "se_new_do_on": dropout is not None, "se_new_do": tuple(dropout or DROPOUT_RANGE),
        "se_new_bss": d("batch_sizes") or [], "se_new_bs": d("batch_size"), "se_new_epochs": d("epochs"),
        "se_new_trials": d("n_trials"), "se_new_to_on": timeout is not None, "se_new_to": timeout or TIMEOUT_MINUTES,
        "se_new_objective": d("objective"), "se_new_sampler": d("sampler"), "se_new_pruner": d("pruner"),
        "se_new_seed": d("seed"), "se_new_workers": 1, "se_new_start": True,
        "se_new_weights": d("weights") or RANDOM_WEIGHTS, "se_new_resize": d("resize_mode"),
        "se_new_cw": d("class_weights"), "se_up_workers": 1, "se_up_start": True,
    }
    for key, value in defaults.items():
        ss.setdefault(key, value)
    if ss.pop("se_clear_form", False) or "se_new_name" not in ss:
        ss["se_new_name"] = _free_name(names)
        ss.pop("se_scout_seed", None)  # a scout's seeds are for the one study created after asking
    fields.fall_back("se_new_dataset", datasets,
                     "demo" if "demo" in datasets else (datasets[0] if datasets else None), "dataset")


def backbone_label(name: str) -> str:
    info = bb.get(name)
    if info.bundled_weights:
        return f"{info.display_name} (ImageNet weights bundled, offline)"
    if bb.imagenet_weights_available(name):
        return f"{info.display_name} (ImageNet weights in the Keras cache)"
    return f"{info.display_name} (ImageNet weights need internet)"


def _augment_label(name: str) -> str:
    if name == NO_AUGMENT:
        return "none"
    return f"{name} (preset)" if name in au.PRESETS else f"{name} (saved)"


# ------------------------------------------------------------ create
JUST_CREATED = "se_just_created"  # (name, spec YAML, time, workers started) of this session's last creation
DOUBLE_PRESS_S = 15.0  # a second press of Create this soon after, with the same spec, is the same press


def page_drawn() -> None:
    """Call at the end of a whole run of the page: a run that got this far showed what the last
    Create did, so a later press of Create is a new press, not the second half of a double click."""
    st.session_state.pop(JUST_CREATED, None)


def _second_press(spec: StudySpec) -> tuple | None:
    """This session's record of creating ``spec`` a moment ago (a double click on Create), or None."""
    rec = st.session_state.get(JUST_CREATED)
    if (isinstance(rec, tuple) and len(rec) == 4 and rec[0] == spec.name and rec[1] == spec.to_yaml()
            and 0 <= time.time() - rec[2] <= DOUBLE_PRESS_S):
        return rec
    return None


def create_and_start(ws: Workspace, spec: StudySpec, workers: int) -> None:
    """Create the study, start its workers, select it. Errors show in place.

    A second press of Create with the same spec a moment later, before any run of the page got to its
    end (``page_drawn``; a double click: the first press created the study and its rerun was cut
    short by the second) selects the study the first press
    created, and starts its workers if the first press did not get that far, instead of saying that
    the study exists and should be deleted."""
    ss = st.session_state
    try:
        create_study(ws, spec)
    except TLCoreError as exc:
        rec = _second_press(spec)
        if rec is None:
            show_error(exc)
            return
        if workers and not rec[3]:
            _launch_and_select(ws, spec, workers, f"Created study {md_escape(spec.name)}.")
        else:
            place.flash("info", f"Study {md_escape(spec.name)} was created by your first press of Create; it is "
                                "selected below.")
            _select(spec.name)
        return
    ss[JUST_CREATED] = (spec.name, spec.to_yaml(), time.time(), False)
    msg = f"Created study {md_escape(spec.name)}."
    _launch_and_select(ws, spec, workers, msg)


def _select(name: str) -> None:
    state.select_next(name)
    st.session_state["se_clear_form"] = True
    st.session_state[NEW_OPEN] = st.session_state[sc.OPEN] = False  # the study is below now
    st.rerun()


def _launch_and_select(ws: Workspace, spec: StudySpec, workers: int, msg: str) -> None:
    if workers:
        try:
            ids = launch_workers(ws, spec.name, workers)
            rec = st.session_state.get(JUST_CREATED)
            if isinstance(rec, tuple) and len(rec) == 4 and rec[0] == spec.name:
                st.session_state[JUST_CREATED] = (*rec[:3], True)
        except TLCoreError as exc:
            place.flash("warning", f"Created study {md_escape(spec.name)}, but its workers did not start: "
                                    f"{md_escape(exc)}")
            msg = ""
        else:
            msg += (f" Started {len(ids)} worker(s); the first trial begins once they have loaded "
                    "TensorFlow (up to a minute).")
    else:
        msg += " No worker was started: start some below when you are ready."
    if msg:
        place.flash("success", msg)
    _select(spec.name)


def _blocks(names: list[str]) -> tuple[int, list[int]]:
    counts = [bb.get(n).num_blocks for n in names] or [bb.get(b).num_blocks for b in spec_default("backbones")]
    return min(counts), counts


def spec_from_widgets(blocks: int, counts: list[int]) -> StudySpec:
    """The ``StudySpec`` the widgets describe. Raises ``ConfigError`` when it is invalid."""
    ss = st.session_state
    if not str(ss["se_new_name"]).strip():  # the spec's own message speaks of a YAML line
        raise ConfigError("A study needs a name.", received="Study name (empty)",
                          fix="Type one in 'Study name': 1-64 letters, digits, '.', '_' or '-'.")
    lo, hi = (int(v) for v in ss["se_new_depth"])
    depth = None if (lo, hi) == (0, blocks) and len(set(counts)) > 1 else [lo, hi]  # each backbone's full range
    aug = ss["se_new_augment"]
    return StudySpec(
        name=str(ss["se_new_name"]).strip(),
        dataset=ss["se_new_dataset"] or "",
        augment=None if aug == NO_AUGMENT else aug,
        backbones=list(ss["se_new_backbones"]),
        weights=None if ss["se_new_weights"] == RANDOM_WEIGHTS else "imagenet",
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


def form_problems() -> list[str]:
    """What the form's choices get wrong together, in the form's labels: nothing chosen in a
    list, a range whose 'from' is above its 'to'."""
    ss = st.session_state
    out = []
    if not ss["se_new_backbones"]:
        out.append("Choose at least one backbone.")
    if not ss["se_new_methods"]:
        out.append("Choose at least one method.")
    ranges = [("Learning rate", "se_new_lr_lo", "se_new_lr_hi", ".1e")]
    if ss["se_new_ftf_on"]:
        ranges.append(("Fine-tune factor", "se_new_ftf_lo", "se_new_ftf_hi", ".3f"))
    for label, lo_key, hi_key, fmt in ranges:
        lo, hi = float(ss[lo_key]), float(ss[hi_key])
        if lo > hi:
            out.append(f"{label}: 'from' ({lo:{fmt}}) is above 'to' ({hi:{fmt}}); swap them.")
    return out


# ------------------------------------------------------------ widgets
def _what_to_search(ws: Workspace, datasets: list[str]) -> tuple[int, list[int]]:
    """Name, data, backbones, methods and the searched ranges; returns the blocks of the backbones."""
    ss = st.session_state
    c1, c2, c3 = st.columns(3)
    c1.text_input("Study name", key="se_new_name", persist_state=place.KEPT, max_chars=64,
                  help="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    c2.selectbox("Dataset", datasets, key="se_new_dataset", persist_state=place.KEPT,
                 help="Registered datasets (add one on the Datasets page).")
    augments = au.pipeline_names(ws)
    fields.fall_back("se_new_augment", augments, NO_AUGMENT, "augmentation pipeline")  # a saved one deleted since
    c3.selectbox("Augmentation", augments, key="se_new_augment", persist_state=place.KEPT, format_func=_augment_label,
                 help="A preset or a pipeline saved on the Augmentations page.")

    st.markdown("**What to search**")
    c1, c2, c3 = st.columns([3, 1, 2])
    c1.multiselect("Backbones", bb.list_backbones(), key="se_new_backbones", persist_state=place.KEPT, format_func=backbone_label,
                   help="More than one makes the backbone a searched parameter.")
    fields.number(c2, "Image size (px)", lo=IMAGE_SIZES[0], hi=IMAGE_SIZES[1], step=16, key="se_new_size", persist_state=place.KEPT)
    c3.multiselect("Methods", list(METHODS), key="se_new_methods", persist_state=place.KEPT,
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
    c1.slider("Frozen blocks (freeze depth)", min_value=0, max_value=blocks, key="se_new_depth", persist_state=place.KEPT,
              help=f"How many of the backbone's {blocks} blocks stay frozen, counted from the input. "
                   "0 trains the whole backbone; all blocks keeps it fixed.")
    fields.number(c2, "Learning rate from", lo=LR_BOUNDS[0], hi=LR_BOUNDS[1], step=1e-5,
                  format="%.1e", key="se_new_lr_lo", persist_state=place.KEPT, help="Searched on a log scale.")
    fields.number(c3, "to", lo=LR_BOUNDS[0], hi=LR_BOUNDS[1], step=1e-3, format="%.1e",
                  key="se_new_lr_hi", persist_state=place.KEPT,
                    help="The high end at full depth. A trial that unfreezes more gets a lower ceiling, down to "
                         f"{spec_default('lr_ceiling_at_depth0'):g} times this at depth 0 (lr_ceiling_at_depth0 "
                         "in a YAML spec changes it).")

    with place.expander("More to search: fine-tune factor, dropout, batch size", key="se_more_open"):
        c1, c2, c3 = st.columns(3)
        with c1:
            on = st.checkbox("Search the fine-tune factor (two_phase)", key="se_new_ftf_on", persist_state=place.KEPT,
                             help="Phase 2's learning rate is the learning rate times this factor. "
                                  f"Off: {TrainSpec.fine_tune_factor:g}.")
            a, b = st.columns(2)
            fields.number(a, "from", lo=1e-4, hi=1.0, step=0.01, format="%.3f", key="se_new_ftf_lo", persist_state=place.KEPT,
                          disabled=not on)
            fields.number(b, "to", lo=1e-4, hi=1.0, step=0.01, format="%.3f", key="se_new_ftf_hi", persist_state=place.KEPT,
                          disabled=not on)
        with c2:
            on = st.checkbox("Search the dropout", key="se_new_do_on", persist_state=place.KEPT, help=f"Off: {TrainSpec.dropout:g}.")
            st.slider("Dropout", min_value=0.0, max_value=0.9, step=0.05, key="se_new_do", persist_state=place.KEPT, disabled=not on)
        with c3:
            st.multiselect("Batch sizes to try", BATCH_SIZES, key="se_new_bss", persist_state=place.KEPT,
                           help="Empty: the fixed batch size.")
            fields.number(st, "Fixed batch size", lo=1, hi=4096, key="se_new_bs", persist_state=place.KEPT, disabled=bool(ss["se_new_bss"]))
    return blocks, counts


def _budget_and_search() -> None:
    """Epochs, trials, time limit, objective, sampler, pruner, seed, workers; the advanced settings."""
    st.markdown("**Budget and search**")
    c = st.columns(4)
    fields.number(c[0], "Epochs per trial", lo=1, hi=1000, key="se_new_epochs", persist_state=place.KEPT,
                  help="Full-data epochs of a fine-tuning trial. With successive halving (the default pruner) "
                  "it first trains one short epoch on 11 % of the data, then on 33 %, before these, so the "
                  "trials table counts up to two more. A feature-extraction trial (every block frozen, about a "
                  "second an epoch) trains up to 20 epochs with early stopping instead (fe_epochs in a spec).")
    fields.number(c[1], "Trials", lo=1, hi=100_000, key="se_new_trials", persist_state=place.KEPT,
                  help="The study stops when this many trials finished (complete or pruned).")
    with c[2]:
        on = st.checkbox("Time limit", key="se_new_to_on", persist_state=place.KEPT, help="No new trial starts after this long.")
        fields.number(st, "Minutes", lo=1.0, hi=1e6, step=10.0, key="se_new_to", persist_state=place.KEPT, disabled=not on,
                      label_visibility="collapsed")
    c[3].selectbox("Objective", OBJECTIVES, key="se_new_objective", persist_state=place.KEPT, format_func=OBJECTIVE_LABELS.get)
    c = st.columns(4)
    c[0].selectbox("Sampler", SAMPLERS, key="se_new_sampler", persist_state=place.KEPT,
                   help="tpe learns from the finished trials; random tries settings at random.")
    c[1].selectbox("Pruner", PRUNERS, key="se_new_pruner", persist_state=place.KEPT, format_func=lambda p: PRUNER_LABELS.get(p, p),
                   help="Stops unpromising trials early, after their warm-up epoch.")
    fields.number(c[2], "Seed", lo=0, hi=2**31 - 1, key="se_new_seed", persist_state=place.KEPT)
    fields.number(c[3], "Local workers", lo=1, hi=state.MAX_WORKERS, key="se_new_workers", persist_state=place.KEPT,
                  help="Background processes on this machine; one per GPU, or 1-2 on a CPU.")

    with place.expander("Advanced", key="se_adv_open"):
        c1, c2, c3 = st.columns(3)
        c1.radio("Weights", list(WEIGHTS), key="se_new_weights", persist_state=place.KEPT, format_func=WEIGHTS.get,
                 help="Random init trains from scratch: only for tests and offline checks.")
        c2.selectbox("Resize mode", RESIZE_MODES, key="se_new_resize", persist_state=place.KEPT, help=RESIZE_HELP)
        c3.checkbox("Class weights", key="se_new_cw", persist_state=place.KEPT, help="Weight classes inversely to their frequency.")


def from_widgets(ws: Workspace, datasets: list[str]) -> None:
    """The "Choose settings" tab."""
    blocks, counts = _what_to_search(ws, datasets)
    _budget_and_search()
    sc.seed_note()
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    start = c2.checkbox("Start now", key="se_new_start", persist_state=place.KEPT, help="Off: create the study and start workers later.")
    if c1.button("Create study", key="se_new_create", type="primary"):
        if fields.refused("se_new_", "Nothing was created."):
            return
        problems = form_problems()
        if problems:  # in the form's words, before the spec's field names would say it
            st.error("Nothing was created. " + " ".join(problems), icon=":material/error:")
            return
        try:
            spec = spec_from_widgets(blocks, counts)
        except TLCoreError as exc:
            show_error(exc)
            return
        create_and_start(ws, spec, int(st.session_state["se_new_workers"]) if start else 0)
    fields.show_fallbacks("se_new_")


def example_spec() -> str:
    """An example spec file: a study of the demo dataset, the other fields at their defaults."""
    return StudySpec(name="pets-search", dataset="demo", freeze_depth=[6, 18]).to_yaml()


def from_upload(ws: Workspace) -> None:
    """The "Upload a spec (YAML)" tab."""
    st.caption("A study spec in YAML, as `python -m tlcore search create --spec FILE` takes. "
               "Fields left out take their defaults.")
    with place.expander("Example", key="se_example_open"):
        st.code(example_spec(), language="yaml")
    upload = place.uploader("Study spec (YAML)", type=["yaml", "yml"], key="se_spec_file")
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
    fields.number(c2, "Local workers", lo=1, hi=state.MAX_WORKERS, key="se_up_workers", persist_state=place.KEPT)
    start = c3.checkbox("Start now", key="se_up_start", persist_state=place.KEPT)
    if c1.button("Create study", key="se_up_create", type="primary"):
        if fields.refused("se_up_", "Nothing was created."):
            return
        create_and_start(ws, spec, int(st.session_state["se_up_workers"]) if start else 0)


def new_study_section(ws: Workspace, datasets: list[str], expanded: bool) -> None:
    """The "New study" expander with its two tabs."""
    with place.expander("New study", key=NEW_OPEN, expanded=expanded, icon=":material/add:"):
        if not datasets:
            st.info("No datasets are registered: add one on the Datasets page first.")
            return
        t_widgets, t_upload = place.tabs(["Choose settings", "Upload a spec (YAML)"], key="se_new_tab")
        with t_widgets:
            from_widgets(ws, datasets)
        with t_upload:
            from_upload(ws)
