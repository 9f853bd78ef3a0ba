"""The Search page's session state: which study it shows, its messages, and what its buttons do.

Session keys (the New-study form's ``se_new_*`` are ``tlui.search_form``'s, the
Scout step's ``se_scout_*`` ``tlui.scout_widgets``'):

- ``se_study``: the study shown (its selectbox). ``select_study`` settles it on every
  run: a study just created (``se_pending_select``, set by ``select_next``), else the
  one still selected, else the one in the URL (``?study=``), else the newest. A name
  in the URL that is not a study gets a warning, unless it is the study just deleted
  here (``se_deleted``), which leaves the URL quietly;
- banners (``tlui.place``): the page's own at its top; the live section's, about one study,
  in its slot (``live_slot``), kept ``NOTE_SECONDS`` across its timed refreshes;
- ``se_auto``, ``se_refresh``: whether and how often the live section refreshes;
  ``se_workers``: how many workers Resume and Add workers start;
  ``se_full_run``: True while the whole page draws the live fragment (``full_run``), False
  when the fragment reruns alone on its timer (``in_full_run``);
- per study: ``se_fail_pick::<study>`` / ``se_fail_ok::<study>`` (the trial to mark
  failed and its confirmation), ``se_del_name::<study>`` (the name typed to delete it),
  ``se_budget::<study>`` (the new trial budget of a finished study);
- ``se_del_open``: whether the "Delete this study" expander is open (``tlui.place``).

The button callbacks (``on_stop``, ``on_resume``, ``on_add``, ``on_fail``, ``on_delete``, ``on_budget``)
run before the next rerun and leave their outcome as a banner in the live section's slot (or,
for a deleted study, at the top of the page): user text in them is Markdown-escaped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.search import delete_study, fail_trial, launch_workers, raise_budget, resume_study, stop_workers
from tlcore.workspace import Workspace
from tlui import fields, place
from tlui.common import md_escape

__all__ = ["select_study", "select_next", "live_slot", "fail_keys", "delete_key", "budget_key", "DELETE_OPEN",
           "full_run", "in_full_run",
           "on_stop", "on_resume", "on_add", "on_fail", "on_delete", "on_budget", "REFRESH_CHOICES", "NOTE_SECONDS",
           "MAX_WORKERS"]

REFRESH_CHOICES = (1, 2, 5, 10, 30)  # seconds between live refreshes
DEFAULT_REFRESH = 2
NOTE_SECONDS = 60  # how long a button's message stays
MAX_WORKERS = 16  # local workers one click starts at most
DELETE_OPEN = "se_del_open"


# ------------------------------------------------------------- messages
def live_slot(study: str) -> str:
    """The banner slot at the top of the live section of ``study`` (``tlui.place.banners``)."""
    return f"se_live::{study}"


def _note(study: str, kind: place.Kind, text: str) -> None:
    """A banner of the live section of ``study``: it stays ``NOTE_SECONDS`` across refreshes."""
    place.flash(kind, text, slot=live_slot(study), seconds=NOTE_SECONDS)


# ------------------------------------------------------------- selection
def select_study(names: list[str]) -> str | None:
    """Initialise the live section's keys and settle ``se_study`` among ``names`` (newest first);
    return it (None without studies)."""
    ss = st.session_state
    for key, value in (("se_auto", True), ("se_refresh", DEFAULT_REFRESH), ("se_workers", 1)):
        ss.setdefault(key, value)
    pending = ss.pop("se_pending_select", None)
    if pending in names:
        ss["se_study"] = pending
    if ss.get("se_study") not in names:
        wanted = st.query_params.get("study")
        if wanted in names:
            ss["se_study"] = wanted
        else:
            if wanted and wanted == ss.get("se_deleted"):
                place.keep_in_url("study", None)
            elif wanted:
                place.flash("warning", f"There is no study named {md_escape(wanted)} in this workspace"
                                 + ("; showing the newest." if names else "."))
            ss["se_study"] = names[0] if names else None
    return ss["se_study"]


def select_next(name: str) -> None:
    """Show study ``name`` from the next run on (one just created)."""
    st.session_state["se_pending_select"] = name


@contextlib.contextmanager
def full_run() -> Iterator[None]:
    """Mark the live fragment drawn inside as drawn by a run of the whole page."""
    st.session_state["se_full_run"] = True
    try:
        yield
    finally:
        st.session_state["se_full_run"] = False


def in_full_run() -> bool:
    """Whether the whole page is running (False when the live fragment reruns on its own)."""
    return bool(st.session_state.get("se_full_run", False))


def fail_keys(study: str) -> tuple[str, str]:
    """The keys of the running trial to mark failed and of its confirmation checkbox."""
    return f"se_fail_pick::{study}", f"se_fail_ok::{study}"


def delete_key(study: str) -> str:
    """The key of the text input where the study's name is typed to delete it."""
    return f"se_del_name::{study}"


def budget_key(study: str) -> str:
    """The key of the number input holding a finished study's new trial budget."""
    return f"se_budget::{study}"


# ------------------------------------------------------------ callbacks
_FAILED = object()


def _attempt(study: str, action: Callable[[], Any]) -> Any:
    """``action()``'s result; when it raises a ``TLCoreError``, a banner about ``study`` with the
    error, and ``_FAILED``."""
    try:
        return action()
    except TLCoreError as exc:
        _note(study, "error", md_escape(exc))
        return _FAILED


def on_stop(ws: Workspace, name: str) -> None:
    n = _attempt(name, lambda: stop_workers(ws, name))
    if n is not _FAILED:
        _note(name, "success", f"Stop requested; {n} local worker(s) signalled. A running trial ends at its next "
                              "batch (marked interrupted) and no new trial starts. Resume queues it again.")


def _workers_refused(name: str, outcome: str) -> bool:
    """Whether "Workers to start" is out of range; if so, the study's section says so and why."""
    problems = fields.out_of_range("se_workers")
    if problems:  # never the value the field showed before the one typed
        _note(name, "error", f"{outcome} " + " ".join(problems))
    return bool(problems)


def on_resume(ws: Workspace, name: str) -> None:
    if _workers_refused(name, "Nothing was resumed."):
        return
    n = int(st.session_state["se_workers"])
    changed: list[str] = []
    done = _attempt(name, lambda: (resume_study(ws, name),
                                   launch_workers(ws, name, n, warn=changed.append) if n else []))
    if done is not _FAILED:
        again, ids = done
        _started_note(name, f"Resumed: {again} interrupted trial(s) queued again"
                            + (f", {len(ids)} worker(s) started." if ids else "; no worker started."), changed)


def _started_note(name: str, text: str, changed: list[str]) -> None:
    """The success banner of starting workers; a warning naming what changed when the study's dataset
    changed in this workspace since the study recorded it (``launch_workers``' ``warn``)."""
    if changed:
        _note(name, "warning", f"{text} {md_escape(' '.join(changed))}")
    else:
        _note(name, "success", text)


def on_add(ws: Workspace, name: str) -> None:
    if _workers_refused(name, "No worker was started."):
        return
    changed: list[str] = []
    ids = _attempt(name, lambda: launch_workers(ws, name, int(st.session_state["se_workers"]), warn=changed.append))
    if ids is not _FAILED:
        _started_note(name, f"Started {len(ids)} worker(s).", changed)


def on_budget(ws: Workspace, name: str) -> None:
    value = st.session_state.get(budget_key(name))
    problem = fields.range_problem("New trial budget", value, 1, 100_000)  # raise_budget checks the rest
    if problem:  # never the value the field showed before the one typed
        _note(name, "error", f"The budget was not changed. {problem}")
        return
    spec = _attempt(name, lambda: raise_budget(ws, name, n_trials=int(value)))
    if spec is not _FAILED:
        _note(name, "success", f"Budget raised to {spec.n_trials} trials: start workers (Add workers) to run "
                              "the rest.")


def on_fail(ws: Workspace, name: str) -> None:
    ss = st.session_state
    pick, ok = fail_keys(name)
    number = ss.get(pick)
    ss[ok] = False
    if number is not None and _attempt(name, lambda: fail_trial(ws, name, int(number))) is not _FAILED:
        _note(name, "success", f"Trial {int(number)} marked failed; its worker moves on to the next trial.")


def on_delete(ws: Workspace, name: str) -> None:
    ss = st.session_state
    removed = _attempt(name, lambda: delete_study(ws, name))
    if removed is _FAILED:
        return
    ss[delete_key(name)] = ""
    ss["se_deleted"] = name
    ss.pop("se_study", None)
    ss[DELETE_OPEN] = False
    place.flash("success", f"Deleted study {md_escape(name)} and {removed} trial file(s).")
