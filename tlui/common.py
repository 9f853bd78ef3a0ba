"""Small helpers every page shares: the workspace, safe text, error boxes.

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

__all__ = ["md_escape", "show_error", "open_workspace", "sidebar_workspace"]

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


def sidebar_workspace(ws: Workspace) -> None:
    """A note in the sidebar of where the workspace lives."""
    st.sidebar.caption("Workspace")
    st.sidebar.code(str(ws.root), language=None)
