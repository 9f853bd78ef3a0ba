"""Small helpers every page shares: navigation, the workspace, safe text, error boxes.

``PAGES`` and ``sidebar_nav`` draw the sidebar's links (Streamlit's own page list
is off in ``.streamlit/config.toml``); ``open_workspace`` opens
``tlcore.workspace.Workspace`` (``$TLCORE_HOME`` or ``./workspace``) and
``sidebar_workspace`` shows where it is; ``show_error`` shows a ``TLCoreError`` as
an error box, never a traceback.

User-controlled strings (class names, file names, paths, error messages that
quote them) never reach a Markdown-rendering element unescaped: ``md_escape``
backslash-escapes every ASCII punctuation character, which CommonMark (and
Streamlit's ``:color[...]``, ``:emoji:`` and ``$math$`` extensions) then show
literally. HTML is never enabled (no ``unsafe_allow_html`` anywhere).
"""

from __future__ import annotations

import re
import string

import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace

__all__ = ["PAGES", "md_escape", "show_error", "open_workspace", "sidebar_nav", "sidebar_workspace"]

# The app's pages in navigation order: (script, label, icon). Streamlit's automatic sidebar
# navigation is off (.streamlit/config.toml), because it would label Home by its file name
# ("streamlit app"); every page draws this list instead with ``sidebar_nav``.
PAGES = [
    ("streamlit_app.py", "Home", ":material/home:"),
    ("pages/1_Datasets.py", "Datasets", ":material/folder_open:"),
    ("pages/2_Augmentations.py", "Augmentations", ":material/auto_fix_high:"),
    ("pages/3_Search.py", "Search", ":material/tune:"),
    ("pages/4_Results.py", "Results", ":material/query_stats:"),
    ("pages/5_Predict.py", "Predict", ":material/image_search:"),
]

_MD_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


def md_escape(text: object) -> str:
    """``text`` as Markdown that displays literally: every ASCII punctuation character
    is backslash-escaped and line breaks become spaces, so ``cat_*1*.jpg`` shows as
    typed rather than in italics."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", s)


def show_error(exc: BaseException, *, where=None) -> None:
    """Show a ``TLCoreError`` (or any expected failure) as ``st.error``, never a traceback."""
    (where or st).error(md_escape(str(exc)))


def open_workspace() -> Workspace:
    """The workspace of this session ($TLCORE_HOME or ./workspace); on failure the page stops
    with an error that says how to fix it."""
    try:
        return Workspace()
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
        raise  # unreachable: st.stop() raises


def sidebar_nav() -> None:
    """The navigation links at the top of the sidebar (call it right after ``st.set_page_config``)."""
    for script, label, icon in PAGES:
        st.sidebar.page_link(script, label=label, icon=icon)
    st.sidebar.divider()


def sidebar_workspace(ws: Workspace) -> None:
    """A note in the sidebar of where the workspace lives."""
    st.sidebar.caption("Workspace")
    st.sidebar.code(str(ws.root), language=None)
