"""Number fields whose bounds are checked by the page, never silently by the browser.

``st.number_input(min_value=1)`` refuses a typed 0 in the browser: the field turns red but
the widget keeps its previous value, so a *Create* pressed next uses a number the user
never saw there (Trials = 0 created a study with the old trial count). ``number`` draws
the field without bounds in the browser, so the typed value always reaches the page,
and checks the bounds itself: out of range, the field's own slot (always drawn, so the
widgets below never move) says what is allowed. ``out_of_range(prefix)`` lists the
fields of a form that are out of range right now (read from the session state, so a
button callback can use it too); the form's action refuses to run while it is not
empty and says why.

A choice can vanish too: a dataset or a saved pipeline removed on another tab.
``fall_back(key, choices, fallback, what)`` then puts ``fallback`` in the field and
remembers the change, so that the action pressed on that very rerun (the one that found
the choice gone) is refused by ``refused``, with the reason, instead of running on a
dataset or pipeline the user never chose; ``show_fallbacks(prefix)``, drawn after the
action's button, says what changed when nothing was pressed.

Example:

>>> fields.number(c, "Trials", lo=1, hi=100_000, key="se_new_trials")
>>> if fields.refused("se_new_", "Nothing was created."):
...     return
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from tlui import place
from tlui.common import md_escape

__all__ = ["number", "out_of_range", "refused", "range_problem", "page_start", "fall_back", "show_fallbacks"]

_BOUNDS_KEY = "tl_field_bounds"  # session state: widget key -> (label, lo, hi, disabled when last drawn)
_FALLBACKS_KEY = "tl_field_fallbacks"  # session state: widget key -> what fall_back changed there


def _bounds() -> dict[str, tuple[str, float | None, float | None, bool]]:
    return st.session_state.setdefault(_BOUNDS_KEY, {})


def _show(v: float | None) -> str:
    if v is None:
        return ""
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:g}"


def range_problem(label: str, value: Any, lo: float | None, hi: float | None) -> str | None:
    """What is wrong with ``value`` for the field ``label`` (None when it is within [lo, hi])."""
    if value is None:
        return f"{label}: enter a number."
    v = float(value)
    if math.isnan(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        if lo is not None and hi is not None:
            allowed = f"between {_show(lo)} and {_show(hi)}"
        elif lo is not None:
            allowed = f"at least {_show(lo)}"
        else:
            allowed = f"at most {_show(hi)}"
        return f"{label} must be {allowed} (it is {_show(v)})."
    return None


def number(container: Any, label: str, *, lo: float | None, hi: float | None, key: str, **kw: Any) -> Any:
    """A number input with the bounds ``lo``..``hi`` checked here, not in the browser.

    The field's message slot under it is always drawn (empty when the value is fine), so
    that a message appearing or going never moves the widgets below. ``kw`` goes to
    ``st.number_input`` (``step``, ``format``, ``help``, ``disabled``, ...). With whole-number
    bounds and no ``format``, the step defaults to 1, so the field holds and shows whole numbers.
    """
    if "min_value" in kw or "max_value" in kw:
        raise TypeError("fields.number takes lo= and hi=, checked by the page, not min_value/max_value")
    if all(isinstance(b, int) and not isinstance(b, bool) for b in (lo, hi)) and "format" not in kw:
        kw.setdefault("step", 1)  # a whole-number field (epochs, seeds): drawn as "5", not Streamlit's float "5.00"
    value = container.number_input(label, key=key, **kw)
    disabled = bool(kw.get("disabled"))
    _bounds()[key] = (label, lo, hi, disabled)
    slot = container.empty()
    problem = None if disabled else range_problem(label, value, lo, hi)
    if problem:
        slot.error(problem, icon=":material/error:")
    return value


def out_of_range(prefix: str = "") -> list[str]:
    """The problems of the enabled fields drawn by ``number`` whose key starts with ``prefix``,
    with their values as they are in the session state now (a disabled field is not used)."""
    ss = st.session_state
    out = []
    for key, (label, lo, hi, disabled) in _bounds().items():
        if key.startswith(prefix) and key in ss and not disabled:
            problem = range_problem(label, ss[key], lo, hi)
            if problem:
                out.append(problem)
    return out


def refused(prefix: str, outcome: str) -> bool:
    """Whether a form's action must not run because a field whose key starts with ``prefix`` is
    out of range, or had its choice replaced on this rerun (``fall_back``); if so, an error says
    ``outcome`` ("Nothing was created.") and what to fix."""
    changed = _pop_fallbacks(prefix)
    if changed:  # never a dataset or pipeline the user did not choose
        st.error(f"{outcome} " + " ".join(changed) + " Check the form, then press the button again.",
                 icon=":material/error:")
        return True
    problems = out_of_range(prefix)
    if problems:  # never a value the field no longer shows
        st.error(f"{outcome} Fix the fields first: " + " ".join(problems), icon=":material/error:")
    return bool(problems)


def fall_back(key: str, choices: list[Any], fallback: Any, what: str) -> None:
    """Put ``fallback`` in the choice field ``key`` when its value is no longer among ``choices``
    (``what`` names it in the notice: "dataset"); an empty field just gets ``fallback``."""
    ss = st.session_state
    old = ss.get(key)
    if old in choices:
        return
    ss[key] = fallback
    if old is not None:
        ss.setdefault(_FALLBACKS_KEY, {})[key] = (  # Markdown-escaped: my_data_set must not turn italic
            f"The {what} {md_escape(repr(str(old)))} is no longer there (removed, perhaps on another tab): the form "
            f"now shows {md_escape(repr(str(fallback)))}.")


def _pop_fallbacks(prefix: str) -> list[str]:
    notes = st.session_state.get(_FALLBACKS_KEY) or {}
    return [notes.pop(k) for k in sorted(notes) if k.startswith(prefix)]


def show_fallbacks(prefix: str) -> None:
    """Say once what ``fall_back`` changed in the fields whose keys start with ``prefix``."""
    for note in _pop_fallbacks(prefix):
        st.warning(note, icon=":material/warning:")



def page_start(total: int, per_page: int, key: str, *, where: Any = None) -> int:
    """The index of the first item on the page the user is on: a "Page (of N)" field (``key``) when
    ``total`` items take more than one page of ``per_page``. A page number left out of range (the
    filters left fewer pages, a number typed) is brought back into range, never refused: it only
    chooses what to look at. The page is kept across a visit to another page (``tlui.place.KEPT``)."""
    pages = max(1, -(-total // per_page))
    ss = st.session_state
    try:
        current = int(ss.get(key, 1))
    except (TypeError, ValueError):
        current = 1
    ss[key] = min(max(1, current), pages)
    if pages == 1:
        return 0
    dg = st.columns([1, 4])[0] if where is None else where
    page = int(dg.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=key,
                               persist_state=place.KEPT))
    return (page - 1) * per_page
