"""The Augmentations page's pipeline editor: its session state and what its buttons do.

The pipeline being edited lives in ``st.session_state["aug_steps"]``, a list of
``{"id", "name", "params"}``. Each parameter has a keyed widget (``wkey(step id, param)``,
``aug_w::<step id>::<param>``) whose value ``sync_steps`` copies into the step at the start
of every run, so reordering or removing steps never mixes up widget values; step ids are
never reused. ``aug_loaded`` names the pipeline the steps were loaded from (or last saved
as), and so does ``st.query_params["pipeline"]``, so a link opens the same pipeline. The steps
outlive a visit to another page: they are not a widget's state, and ``sync_steps`` gives a
parameter widget Streamlit dropped its value back. The page's other choices use ``tlui.place.KEPT``.

- ``init_state`` sets every ``aug_*`` session key in one place and loads the first pipeline;
  ``current_spec`` is the edited pipeline as an ``AugmentSpec``; ``is_edited`` says whether
  it differs from the pipeline it was loaded from.
- ``on_*`` are the widgets' callbacks (choose a pipeline, discard changes, add, move and
  remove steps, re-roll the seed, pick a random image, save, delete). They run before the
  page, so their messages wait as banners (``tlui.place.flash``, Markdown-escaped): at the top
  of the page, and what a save said in the slot ``SAVE_SLOT`` under the save form. Each step's
  expander keeps its state under ``open_key(step id)`` (``tlui.place``).
- ``spread`` picks the images the image picker offers from a long list.

Everything here may import streamlit; the catalogue, validation and storage are
``tlcore.augment``, the parameter widgets ``tlui.augment_widgets``.
"""

from __future__ import annotations

import random

import numpy as np
import streamlit as st

from tlcore import augment as au
from tlcore.errors import NotFoundError, TLCoreError
from tlcore.workspace import Workspace
from tlui import augment_widgets as aw
from tlui import place
from tlui.common import md_escape

__all__ = [
    "DEFAULT_SOURCE",
    "wkey",
    "init_state",
    "sync_steps",
    "SAVE_SLOT",
    "open_key",
    "current_spec",
    "is_edited",
    "spread",
    "on_source",
    "on_reload",
    "on_add",
    "on_remove",
    "on_move",
    "on_reroll",
    "on_random_image",
    "on_save",
    "on_delete",
]

DEFAULT_SOURCE = "light"
SAVE_SLOT = "aug_save"  # the banner slot under the save form (tlui.place)


def wkey(step_id: int, param: str) -> str:
    """The session key of a step's parameter widget."""
    return f"aug_w::{step_id}::{param}"


# ------------------------------------------------------------------- state
def _new_step(name: str, params: dict) -> dict:
    """A step of the editor, its widget values put in session state."""
    ss = st.session_state
    step_id = ss["aug_next_id"]
    ss["aug_next_id"] = step_id + 1
    info = au.CATALOGUE[name]
    for ps in info.params:
        ss[wkey(step_id, ps.name)] = aw.to_widget(ps, params[ps.name])
    return {"id": step_id, "name": name, "params": {ps.name: aw.from_widget(ps, aw.to_widget(ps, params[ps.name]))
                                                     for ps in info.params}}


def open_key(step_id: int) -> str:
    """The session key of whether a step's expander is open (``tlui.place.expander``)."""
    return f"aug_exp::{step_id}"


def _drop_widgets(step: dict) -> None:
    st.session_state.pop(open_key(step["id"]), None)
    for ps in au.CATALOGUE[step["name"]].params:
        st.session_state.pop(wkey(step["id"], ps.name), None)


def _set_steps(spec: au.AugmentSpec, loaded: str | None) -> None:
    ss = st.session_state
    for step in ss.get("aug_steps", []):
        _drop_widgets(step)
    ss["aug_steps"] = [_new_step(s.name, s.params) for s in spec.steps]
    ss["aug_loaded"] = loaded


def _load_source(ws_root: str, name: str) -> bool:
    try:
        _set_steps(au.get_spec(Workspace(ws_root), name), name)
    except NotFoundError:  # deleted since (on another tab): said in this page's terms
        place.flash("error", f"The pipeline {md_escape(name)} is no longer saved (deleted, perhaps on another tab), "
                             "so there is nothing to go back to. Save the steps shown under a name, or choose "
                             "another pipeline in Start from.")
        return False
    except TLCoreError as exc:
        place.flash("error", md_escape(exc))
        return False
    place.keep_in_url("pipeline", name, DEFAULT_SOURCE)
    return True


def init_state(ws: Workspace, options: list[str]) -> None:
    """Initialise every session-state key of the page (once per session) and sync the steps.

    The pipeline to start from: one just saved or chosen after a deletion
    (``aug_pending_source``), else the one chosen before, else ``?pipeline=``, else
    ``DEFAULT_SOURCE``; ``options`` are the pipelines there are (presets and saved ones).
    """
    ss = st.session_state
    defaults = {
        "aug_next_id": 0,
        "aug_n": 8,
        "aug_seed": 0,
        "aug_size": 224,
        "aug_mode": "pad",
        "aug_add_choice": next(iter(au.CATALOGUE)),
        "aug_save_name": "",
        "aug_save_overwrite": False,
        "aug_loaded": None,
    }
    for key, value in defaults.items():
        ss.setdefault(key, value)
    pending = ss.pop("aug_pending_source", None)
    if pending in options:
        ss["aug_source"] = pending
    if ss.get("aug_source") not in options:
        wanted = st.query_params.get("pipeline")
        ss["aug_source"] = wanted if wanted in options else DEFAULT_SOURCE
    if "aug_steps" not in ss:
        ss["aug_steps"] = []
        if not _load_source(str(ws.root), ss["aug_source"]):
            _load_source(str(ws.root), DEFAULT_SOURCE)
            ss["aug_source"] = DEFAULT_SOURCE
    sync_steps()


def sync_steps() -> None:
    """Copy each parameter widget's value into its step (or restore a widget Streamlit dropped)."""
    ss = st.session_state
    for step in ss["aug_steps"]:
        for ps in au.CATALOGUE[step["name"]].params:
            key = wkey(step["id"], ps.name)
            if key in ss:
                step["params"][ps.name] = aw.from_widget(ps, ss[key])
            else:
                ss[key] = aw.to_widget(ps, step["params"][ps.name])


def current_spec() -> au.AugmentSpec:
    """The edited pipeline; raises ``AugmentationError`` when a step is invalid."""
    return au.AugmentSpec(steps=[(s["name"], s["params"]) for s in st.session_state["aug_steps"]])


def is_edited(ws: Workspace, spec: au.AugmentSpec | None) -> bool:
    """Whether ``spec`` (None: invalid) differs from the pipeline the steps were loaded from."""
    loaded = st.session_state.get("aug_loaded")
    if loaded is None or spec is None:
        return True
    try:
        return au.get_spec(ws, loaded) != spec
    except TLCoreError:
        return True


def spread(items: list[str], k: int) -> list[str]:
    """At most ``k`` items evenly spread over ``items`` (all of them when fewer)."""
    if len(items) <= k:
        return items
    idx = np.linspace(0, len(items) - 1, k).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


# --------------------------------------------------------------- callbacks
def on_source(ws_root: str) -> None:
    """The "Start from" choice changed: replace the steps with the chosen pipeline's. When it cannot be
    loaded (a damaged saved file), the choice goes back to the pipeline the steps came from, so that
    "Start from" never names a pipeline other than the steps shown."""
    ss = st.session_state
    if _load_source(ws_root, ss["aug_source"]):
        return
    back = ss.get("aug_loaded")
    if back is not None and (back in au.PRESET_DESCRIPTIONS or back in au.list_pipelines(Workspace(ws_root))):
        ss["aug_source"] = back


def on_reload(ws_root: str) -> None:
    """The "Discard changes" button: load the pipeline the steps came from again."""
    name = st.session_state.get("aug_loaded") or st.session_state["aug_source"]
    _load_source(ws_root, name)


def on_add() -> None:
    """Append the transform chosen in "Add a transform", with its default parameters."""
    name = st.session_state["aug_add_choice"]
    st.session_state["aug_steps"].append(_new_step(name, au.CATALOGUE[name].defaults))


def on_remove(step_id: int) -> None:
    steps = st.session_state["aug_steps"]
    for step in [s for s in steps if s["id"] == step_id]:
        _drop_widgets(step)
        steps.remove(step)


def on_move(step_id: int, delta: int) -> None:
    """Move a step ``delta`` places (-1 up, 1 down); a step at the end stays."""
    steps = st.session_state["aug_steps"]
    i = next(i for i, s in enumerate(steps) if s["id"] == step_id)
    j = i + delta
    if 0 <= j < len(steps):
        steps[i], steps[j] = steps[j], steps[i]


def on_reroll() -> None:
    """A new preview seed, never the current one."""
    ss = st.session_state
    old = int(ss.get("aug_seed", 0))
    new = old
    while new == old:
        new = random.randrange(0, 1_000_000)
    ss["aug_seed"] = new


def on_random_image(key: str, choices: list[str]) -> None:
    st.session_state[key] = random.choice(choices)


def on_save(ws_root: str) -> None:
    """Save the edited pipeline under the form's name; it becomes the one loaded."""
    ss = st.session_state
    name = str(ss.get("aug_save_name", "")).strip()
    try:
        sync_steps()
        spec = current_spec()
        path = au.save_pipeline(Workspace(ws_root), name, spec, overwrite=bool(ss.get("aug_save_overwrite")))
    except TLCoreError as exc:
        place.flash("error", md_escape(exc), slot=SAVE_SLOT)
        return
    place.flash("success", md_escape(f"Saved the pipeline {name} ({len(spec.steps)} steps) to {path}."),
                slot=SAVE_SLOT)
    ss["aug_pending_source"] = name
    ss["aug_loaded"] = name
    place.keep_in_url("pipeline", name, DEFAULT_SOURCE)


def on_delete(ws_root: str, name: str) -> None:
    """Delete the saved pipeline ``name`` and go back to ``DEFAULT_SOURCE``."""
    try:
        au.delete_pipeline(Workspace(ws_root), name)
    except TLCoreError as exc:
        place.flash("error", md_escape(exc))
        return
    place.flash("success", md_escape(f"Deleted the saved pipeline {name}."))
    if _load_source(ws_root, DEFAULT_SOURCE):
        st.session_state["aug_pending_source"] = DEFAULT_SOURCE
