"""Keeping the user's place across reruns: banners in fixed slots, expanders and tabs that stay as left.

The browser tells a page's unkeyed elements apart by their position. A banner that shows on
one run and not on the next moves every element after it by one place, and the browser then
draws new ones there: the open expander closes, the tab goes back to the first, the form
being filled in collapses. So this module owns the two ways a page keeps the user's place:

- Banners. ``flash(kind, text)`` queues ``st.<kind>(text)`` ("success", "info", "warning",
  "error"; ``text`` is Markdown, user text in it escaped by the caller) for a slot;
  ``banners(slot)`` draws the slot: one container, drawn on every run whether it holds a
  banner or not, so nothing after it ever moves. A banner shows once, at the slot's next
  drawing (a callback, or code that calls ``st.rerun()`` next, flashes its outcome and the
  page shows it on the following run); one given ``seconds`` shows at every drawing for that
  long, for a section that reruns on a timer and would otherwise show a button's outcome for
  one refresh only. A new banner replaces the ones its slot has already shown. ``PAGE`` is
  the slot at the top of each page; a section names its own (``"scout"``, a study's live
  section). ``pending(slot)``: whether a slot has something to show. One queue for the app,
  the session key ``BANNERS``.
- Expanders and tabs. ``expander`` and ``tabs`` keep their state in the session key the page
  gives them: ``st.session_state[key]`` is True while the expander is open, or the index of
  the open tab. The element tracks its state (``on_change``), so the state survives reruns,
  a moved element, a label that changes ("Problems (12)"), and a visit to another page; code
  opens or closes one by setting the key (the New study form closes once its study exists).
- Widgets. ``KEPT`` is the ``persist_state`` every page's choices are drawn with, so they
  are still there after a visit to another page. ``st.file_uploader`` has no such option, and
  the browser drops its files when the page is left: ``uploader`` keeps a copy of what was
  uploaded (up to ``KEEP_UPLOAD_MB``) and hands it back when the page is drawn again, saying so
  and offering to forget it.
- The URL. A page's choices (the dataset, the study, the model) live in its URL's query
  parameters, so a reload or a link shows them again. ``keep_in_url(param, value, default)``
  writes one (a list for a repeated one, empty or None to drop it), but leaves a URL without
  ``param`` alone while the choice is ``default``, what the page shows without it: each write
  is a browser history entry. Every page's parameters are kept for the session
  (``url_of(url_path)``), and the sidebar's menu (``tlui.common.frame``) links each page with
  them, so going back to a page opens it at its place in one history entry; ``arrive``, which
  the frame calls, keeps what the URL has on arrival.

Example::

    place.banners()                              # right under the page's title
    with place.expander("Remove this dataset", key="ds_rm_open"):
        if st.button("Remove"):
            place.flash("success", "Removed pets.")
            st.rerun()
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any, Literal

import streamlit as st

__all__ = ["PAGE", "BANNERS", "KEPT", "KEEP_UPLOAD_MB", "Kind", "KeptFile", "flash", "pending", "banners", "expander",
           "tabs", "uploader", "upload_of", "keep_in_url", "arrive", "url_of"]

PAGE = "page"  # the slot at the top of each page
# The ``persist_state`` of a page's keyed widgets: Streamlit forgets the value of a widget a run does
# not draw, so without it a visit to another page put every choice back to its default. Never for a
# widget whose value the URL carries (a link naming another dataset, study, run or model must win),
# nor for a confirmation tick, which is asked again.
KEPT = "session"
BANNERS = "tl_banners"  # session key: the queued banners, a list of dicts
Kind = Literal["success", "info", "warning", "error"]
_KINDS = ("success", "info", "warning", "error")
_WIDGET = "{}::w"  # the widget key of an expander or tabs whose state lives under the page's key


# ------------------------------------------------------------------ banners
def flash(kind: Kind, text: str, *, slot: str = PAGE, seconds: float = 0.0) -> None:
    """Queue ``st.<kind>(text)`` for the next drawing of ``slot`` (``banners``).

    Args:
        kind: "success", "info", "warning" or "error".
        text: Markdown; escape user text in it (``tlui.common.md_escape``).
        slot: where it shows. Defaults to ``PAGE``, the top of the page.
        seconds: 0 (the default) shows it once; more shows it at every drawing for that long.
    """
    if kind not in _KINDS:
        raise ValueError(f"A banner's kind is one of {_KINDS}. Received: kind={kind!r}")
    queue = [b for b in st.session_state.get(BANNERS, []) if not (b["slot"] == slot and b["shown"])]
    until = time.time() + seconds if seconds > 0 else None
    st.session_state[BANNERS] = [*queue, {"slot": slot, "kind": kind, "text": text, "until": until, "shown": False}]


def pending(slot: str = PAGE) -> bool:
    """Whether ``slot`` has a banner to show."""
    now = time.time()
    return any(b["slot"] == slot and (b["until"] is None or b["until"] > now)
               for b in st.session_state.get(BANNERS, []))


def banners(slot: str = PAGE) -> None:
    """Draw ``slot`` here: a container, always, with the banners queued for it.

    A banner without ``seconds`` is shown this once; a timed one until it expires.
    """
    now = time.time()
    box = st.container()
    kept = []
    for b in st.session_state.get(BANNERS, []):
        if b["slot"] != slot:
            kept.append(b)
            continue
        if b["until"] is not None and b["until"] <= now:
            continue
        getattr(box, b["kind"])(b["text"])
        if b["until"] is not None:
            kept.append({**b, "shown": True})
    st.session_state[BANNERS] = kept


# ------------------------------------------------------- expanders and tabs
def _keep(key: str, labels: Sequence[str] | None = None) -> None:
    """The callback of a state-tracking expander or tabs: copy its state to the page's key."""
    value = st.session_state[_WIDGET.format(key)]
    if labels is None:
        st.session_state[key] = bool(value)
    else:
        st.session_state[key] = labels.index(value) if value in labels else 0


def expander(label: str, *, key: str, expanded: bool = False, icon: str | None = None, where=None):
    """``st.expander`` that stays open or closed as the user left it; ``st.session_state[key]``
    says which (True: open) and can be set to open or close it.

    Args:
        label: its label; it may change from run to run.
        key: the session key of its state.
        expanded: its state when the session has none yet. Defaults to False.
        icon: as ``st.expander``'s.
        where: the container to draw it in (a column). Defaults to the current one.
    """
    ss = st.session_state
    ss[_WIDGET.format(key)] = bool(ss.setdefault(key, expanded))
    dg = st if where is None else where
    return dg.expander(label, key=_WIDGET.format(key), icon=icon, on_change=_keep, args=(key,))


def tabs(labels: Sequence[str], *, key: str, where=None):
    """``st.tabs`` that keeps the tab the user opened; ``st.session_state[key]`` is its index
    and can be set to open another.

    Args:
        labels: the tabs' labels; they may change from run to run (a count in one).
        key: the session key of the open tab's index.
        where: the container to draw them in. Defaults to the current one.
    """
    ss = st.session_state
    labels = list(labels)
    index = ss.setdefault(key, 0)
    ss[_WIDGET.format(key)] = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else labels[0]
    dg = st if where is None else where
    return dg.tabs(labels, key=_WIDGET.format(key), on_change=_keep, args=(key, tuple(labels)))


# ------------------------------------------------------------------ uploads
KEEP_UPLOAD_MB = 200  # an uploader's files, all together, kept after the page is left up to this size
_KEPT_FILES = "{}::kept"  # session key: what the uploader under the page's key last held


class KeptFile(io.BytesIO):
    """A copy of an uploaded file, handed back after its uploader was left: the bytes (a binary
    file, ``getvalue()``) and the ``name``, ``size``, ``type`` and ``file_id`` of the upload."""

    def __init__(self, name: str, data: bytes, type: str, file_id: str) -> None:
        super().__init__(data)
        self.name, self.size, self.type, self.file_id = name, len(data), type, file_id


def _keep_files(key: str) -> None:
    """The uploader's callback: copy what it holds now (nothing: forget the copy)."""
    value = st.session_state.get(key)
    files = [f for f in (value if isinstance(value, list) else [value]) if f is not None]
    size = sum(f.size for f in files)
    if not files:
        st.session_state.pop(_KEPT_FILES.format(key), None)
    elif size > KEEP_UPLOAD_MB * 1024 * 1024:
        st.session_state[_KEPT_FILES.format(key)] = {"files": [], "too_big": size}
    else:
        st.session_state[_KEPT_FILES.format(key)] = {
            "files": [(f.name, f.getvalue(), f.type, f.file_id) for f in files], "too_big": 0}


def _forget_files(key: str) -> None:
    st.session_state.pop(_KEPT_FILES.format(key), None)


def _kept_files(key: str) -> list[KeptFile]:
    kept = st.session_state.get(_KEPT_FILES.format(key))
    return [KeptFile(*f) for f in kept["files"]] if kept else []


def upload_of(key: str, *, accept_multiple_files: bool = False):
    """What the ``uploader`` under ``key`` gives: its files, or the copies kept since the page was
    left; for a callback, which runs before the page draws the uploader.

    Returns:
        Like ``st.file_uploader``: one file or None, or a list of files.
    """
    value = st.session_state.get(key)
    if value:
        return value
    files = _kept_files(key)
    return files if accept_multiple_files else (files[0] if files else None)


def uploader(label: str, *, key: str, accept_multiple_files: bool = False, where=None, **kwargs: Any):
    """``st.file_uploader`` whose files are still there after a visit to another page.

    While the uploader holds files it returns them, as ``st.file_uploader`` does. Drawn again
    after the page was left (the browser has dropped its files), it returns ``KeptFile`` copies
    of what it last held, says so under it, and offers a button to forget them; uploading other
    files replaces the copies, removing them from the uploader forgets them. Files over
    ``KEEP_UPLOAD_MB`` in all are not kept, and the page says to upload them again.

    Args:
        label, accept_multiple_files, kwargs: as ``st.file_uploader``'s (not ``on_change``).
        key: the uploader's key; the copies live under ``key + "::kept"``.
        where: the container to draw it in (a column). Defaults to the current one.

    Returns:
        Like ``st.file_uploader``: one file or None, or a list of files.
    """
    dg = st if where is None else where
    value = dg.file_uploader(label, key=key, accept_multiple_files=accept_multiple_files,
                             on_change=_keep_files, args=(key,), **kwargs)
    kept = st.session_state.get(_KEPT_FILES.format(key))
    if value or not kept:
        return value
    if not kept["files"]:
        dg.info(f"The upload ({kept['too_big'] / 1024 / 1024:,.0f} MB) was too large to keep when you left this "
                f"page (over {KEEP_UPLOAD_MB} MB): upload it again.")
        _forget_files(key)
        return value
    from tlui.common import md_escape  # tlui.common draws the frame with this module

    files = _kept_files(key)
    names = ", ".join(md_escape(f.name) for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    row = dg.columns([5, 1], vertical_alignment="center")
    row[0].caption(f"Still using what you uploaded before leaving this page: {names}. "
                   "Upload other files to replace it.")
    row[1].button("Forget it", key=f"{key}::forget", on_click=_forget_files, args=(key,))
    return files if accept_multiple_files else files[0]


# ------------------------------------------------------------------ the URL
_PLACES = "tl_places"  # session key: {url_path: {param: [values]}}, each page's URL as last left
_HERE = "tl_here"  # session key: the url_path of the page this run draws


def _snapshot() -> None:
    here = st.session_state.get(_HERE)
    if here is not None:
        params = {k: st.query_params.get_all(k) for k in st.query_params}
        st.session_state[_PLACES] = {**st.session_state.get(_PLACES, {}), here: params}


def arrive(url_path: str) -> None:
    """Note that this run draws the page at ``url_path`` and keep its URL's parameters as they came."""
    st.session_state[_HERE] = url_path
    _snapshot()


def url_of(url_path: str) -> dict[str, list[str]]:
    """The query parameters the page at ``url_path`` had when last left in this session ({} if none)."""
    return dict(st.session_state.get(_PLACES, {}).get(url_path, {}))


def keep_in_url(param: str, value: str | Sequence[str] | None, default: str | Sequence[str] | None = None) -> None:
    """Mirror ``value`` in ``st.query_params[param]``, unless the URL has no ``param`` and
    ``value`` is ``default``, what the page shows without it.

    Args:
        param: the query parameter.
        value: the page's choice now: a string, a list for a repeated parameter, or empty or None
            to drop the parameter.
        default: the choice the page makes for a URL without ``param``. Defaults to None: the
            choice is always written.
    """
    def values(v: str | Sequence[str] | None) -> list[str]:
        return [] if v is None else [v] if isinstance(v, str) else list(v)

    wanted, now = values(value), st.query_params.get_all(param)
    if wanted != now and not (not now and default is not None and wanted == values(default)):
        if wanted:
            st.query_params[param] = wanted
        else:
            del st.query_params[param]
    _snapshot()
