"""Small helpers every page shares: the page list, the frame, the workspace, safe text, errors.

``PAGES`` declares every page of the app once: its file, title, icon, URL path and the line
Home shows about it. ``frame`` turns it into ``st.Page`` objects for ``st.navigation``
(Streamlit's own sidebar menu), sets the tab title and layout, opens the workspace and notes
it in the sidebar; ``streamlit_app.py`` calls it and runs the page it returns. Home's "Where
to start" list reads ``PAGES`` too. To add a page: write ``pages/N_Name.py``, whose first call is
``workspace()``, and add one ``PageSpec`` here.

A page gets the workspace from ``workspace()``: the one the frame opened in this run
(``open_workspace``, which stops the run with an error box when the workspace cannot be
opened), or one opened on demand when the page file runs on its own
(``AppTest.from_file("pages/…")``). When Streamlit ran a page without ``streamlit_app.py``
(the first request of a server process for a page other than Home; every ``AppTest`` run),
``workspace()`` draws the frame itself. ``sidebar_workspace`` shows where the workspace is;
``show_error`` shows a ``TLCoreError`` as an error box, never a traceback.

User-controlled strings (class names, file names, paths, error messages that
quote them) never reach a Markdown-rendering element unescaped: ``md_escape``
backslash-escapes every ASCII punctuation character, which CommonMark (and
Streamlit's ``:color[...]``, ``:emoji:`` and ``$math$`` extensions) then show
literally. HTML is never enabled (no ``unsafe_allow_html`` anywhere).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui import place

__all__ = [
    "APP_TITLE",
    "PAGES",
    "PageSpec",
    "page",
    "md_escape",
    "show_error",
    "frame",
    "open_workspace",
    "workspace",
    "sidebar_workspace",
]

APP_TITLE = "Transfer-learning workbench"


@dataclass(frozen=True)
class PageSpec:
    """One page of the app, everything the navigation and Home say about it.

    Attributes:
        script: the page's file, relative to the app folder (``pages/1_Datasets.py``).
        title: its name in the navigation, on Home and in the browser tab.
        icon: a Material icon (``:material/name:``) or an emoji.
        url_path: its URL (``/Datasets``), "" for Home, the root URL. The paths are the ones
            Streamlit derived from the file names before ``st.navigation``, so old links and
            bookmarks (``/Search?study=…``) keep working.
        what: what a person does there, one or two Markdown sentences for Home.
    """

    script: str
    title: str
    icon: str
    url_path: str
    what: str

    @property
    def is_home(self) -> bool:
        return self.url_path == ""


# The app's pages in navigation order; Home first, at the root URL.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/0_Home.py", "Home", ":material/home:", "",
             "What the workspace holds and where to start."),
    PageSpec("pages/1_Datasets.py", "Datasets", ":material/folder_open:", "Datasets",
             "Add your folder of labelled photos (one sub-folder per class), check its problems, classes "
             "and split. The demo dataset is there already."),
    PageSpec("pages/2_Augmentations.py", "Augmentations", ":material/auto_fix_high:", "Augmentations",
             "Pick or build an augmentation pipeline and preview it on your images."),
    PageSpec("pages/3_Train.py", "Train", ":material/model_training:", "Train",
             "Train one model with the method you choose (feature extraction, fine-tuning from depth k, or "
             "two-phase) and watch its loss and accuracy epoch by epoch; then try it on Predict."),
    PageSpec("pages/4_Search.py", "Search", ":material/tune:", "Search",
             "Let Optuna search how many backbone blocks to freeze and which learning rate to use; watch the "
             "trials come in, stop and resume."),
    PageSpec("pages/5_Results.py", "Results", ":material/query_stats:", "Results",
             "Compare the trials of a search, look at the best model's mistakes and download it."),
    PageSpec("pages/6_Predict.py", "Predict", ":material/image_search:", "Predict",
             "Try any model of the workspace (a trained run, a search trial, an export) on new photos, one "
             "or a whole folder or zip: top-k labels with calibrated confidence and a Grad-CAM heat map."),
)


def page(title: str) -> PageSpec:
    """The page called ``title`` in ``PAGES`` (its ``script`` is what ``st.page_link`` takes): pages
    link to each other by title, so a page's file can be renamed in ``PAGES`` alone."""
    for spec in PAGES:
        if spec.title == title:
            return spec
    raise KeyError(f"no page titled {title!r}; the pages are {[s.title for s in PAGES]}")

_WORKSPACE_KEY = "tl_workspace"
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


def frame() -> StreamlitPage:
    """The frame every page runs in; returns the page to run (``st.navigation``'s choice).

    Declares the pages (``st.navigation`` over ``PAGES``, its own menu hidden) and draws the
    sidebar's menu: a link per page (``st.page_link``, the current one highlighted) that carries
    the URL parameters the page had when it was last left in this session (``tlui.place``), so
    going back to a page shows the dataset, study or model chosen there at once, in the URL too,
    and leaves one browser history entry (Streamlit's menu opened the bare URL, and the page's
    own write of its choice made a second: Back then stayed on the page once). It sets the
    browser tab's title and the wide layout, opens the workspace (``open_workspace``), draws the
    page's title (the pages do not: it shows before a page's imports run) and notes in the
    sidebar where the workspace is. ``streamlit_app.py`` calls it, then runs the page; a page that
    Streamlit ran without ``streamlit_app.py`` gets it from ``workspace`` instead.
    """
    pages = [
        # Home's url_path stays unset: as the default page it is served at the root URL anyway.
        st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path or None, default=p.is_home)
        for p in PAGES
    ]
    page = st.navigation(pages, position="hidden")
    place.arrive(page.url_path)
    with st.sidebar.container(key="tl_menu"):
        for spec, pg in zip(PAGES, pages):
            st.page_link(pg, label=spec.title, icon=spec.icon, query_params=place.url_of(spec.url_path) or None)
    st.set_page_config(page_title=APP_TITLE if page.url_path == "" else f"{page.title} · {APP_TITLE}",
                       layout="wide")
    ws = open_workspace()
    # The page's title, drawn here: before the page file runs and imports what it needs (pandas,
    # Plotly, Optuna: a second or more on a busy machine), so every page paints at once.
    st.title(APP_TITLE if page.url_path == "" else page.title)
    sidebar_workspace(ws)
    return page


def open_workspace() -> Workspace:
    """Open the workspace of this session ($TLCORE_HOME or ./workspace) and keep it for the
    page (``workspace``); on failure the run stops with an error that says how to fix it."""
    try:
        ws = Workspace()
    except TLCoreError as exc:
        show_error(exc)
        st.stop()
        raise  # unreachable: st.stop() raises
    st.session_state[_WORKSPACE_KEY] = ws
    return ws


def workspace() -> Workspace:
    """The workspace for the page: the one the frame opened in this run (``open_workspace``),
    or, when the page file runs on its own, one opened now.

    Call it first thing in a page: when Streamlit ran the page without ``streamlit_app.py``
    (``_skipped_the_frame``), it draws the frame here.
    """
    ctx = get_script_run_ctx()
    alone = _run_as_the_main_script(ctx)
    if alone is not None:  # ``streamlit run pages/1_Datasets.py``: no frame at all, but its title
        st.title(APP_TITLE if alone.is_home else alone.title)
    elif ctx is not None and _skipped_the_frame():
        # st.navigation makes the main script's hash the active one (the frame's elements carry it
        # when streamlit_app.py draws them); the page's own elements and widgets keep the page's,
        # as when streamlit_app.py runs the page, so their ids and state carry over to later runs.
        with ctx.run_with_active_hash(ctx.pages_manager.current_page_script_hash):
            frame()  # opens the workspace too
    ws = st.session_state.get(_WORKSPACE_KEY)
    return ws if isinstance(ws, Workspace) else open_workspace()


def _run_as_the_main_script(ctx) -> PageSpec | None:
    """The page whose file Streamlit runs as the app's main script (``streamlit run
    pages/1_Datasets.py``, ``AppTest.from_file`` of a page), else None."""
    if ctx is None or not getattr(ctx, "main_script_path", None):
        return None
    main = Path(ctx.main_script_path).resolve()
    app = Path(__file__).resolve().parent.parent
    return next((p for p in PAGES if (app / p.script).resolve() == main), None)


def _skipped_the_frame() -> bool:
    """Whether Streamlit ran this page file directly instead of through ``streamlit_app.py``.

    While a ``pages/`` folder lies beside the main script and nothing in the server process has
    called ``st.navigation`` yet, Streamlit (1.67) runs "multipage v1": the first request for
    ``/Datasets`` after the server started runs ``pages/1_Datasets.py`` alone, without the
    frame. ``st.navigation`` switches that off for the whole process
    (``PagesManager.uses_pages_directory = False``), so this happens once per server, but
    ``AppTest`` starts every run that way. A page file run as the main script (no ``pages/``
    beside it) is not in that mode.
    """
    return bool(PagesManager.uses_pages_directory)


def sidebar_workspace(ws: Workspace) -> None:
    """A note in the sidebar of where the workspace lives."""
    st.sidebar.caption("Workspace")
    st.sidebar.code(str(ws.root), language=None)
