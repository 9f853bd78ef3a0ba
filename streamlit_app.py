"""The app's entry point: ``streamlit run streamlit_app.py``.

It draws the frame every page runs in and runs the page the URL names: ``tlui.common.frame``
declares the pages with ``st.navigation`` (Streamlit's sidebar menu) from
``tlui.common.PAGES``, the one list of the app's pages (file, title, icon, URL, Home's line
about it), sets the browser tab's title and the wide layout, opens the workspace once and
notes in the sidebar where it is; a page reads the workspace with ``tlui.common.workspace``.
Home (``pages/0_Home.py``) is at the root URL, every other page at the URL its file name
gives (``/Datasets``, ``/Search?study=…``). The page files stay in ``pages/``: once
``st.navigation`` has been called, Streamlit no longer lists that folder by itself.
"""

from __future__ import annotations

from tlui.common import frame

frame().run()
