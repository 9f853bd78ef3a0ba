"""Home: what the workbench does, what the workspace holds, where to start.

"Where to start" lists every other page of ``tlui.common.PAGES``, in order, with the line the
declaration gives it. The registry table is ``tlcore.datasets.registry_table``, as on the
Datasets page.
"""

from __future__ import annotations

import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui.common import PAGES, show_error, workspace

HOME_COLUMNS = ("name", "images", "classes", "problems", "source", "path")


def saved_pipelines(ws: Workspace) -> int:
    return sum(1 for _ in ws.augmentations_dir.glob("*.yaml"))


def main() -> None:
    ws = workspace()
    # Imported once the frame has drawn the title: Home is a fresh server's first page, and these load pandas.
    from tlcore import datasets as tds
    from tlui import data

    st.markdown(
        "Get the best image classifier a pretrained ImageNet backbone can give you, without writing "
        "training code.  \nLook at your data, try augmentations, let Optuna search how much of the backbone "
        "to freeze and which learning rate to use, then compare the trials and try the best model."
    )
    try:
        data.ensure_demo_registered(ws)
    except TLCoreError as exc:
        show_error(exc)

    st.caption("Workspace (set TLCORE\\_HOME to use another folder)")
    st.code(str(ws.root), language=None)

    try:
        table = tds.registry_table(ws.list_datasets(), HOME_COLUMNS)
        pipelines = saved_pipelines(ws)
    except (TLCoreError, OSError) as exc:
        show_error(exc)
        st.stop()
    c1, c2, c3 = st.columns(3)
    c1.metric("Datasets registered", len(table))
    c2.metric("Images", f"{int(table['images'].sum()):,}")
    c3.metric("Saved augmentation pipelines", pipelines)

    st.subheader("Datasets")
    if len(table):
        st.dataframe(table, hide_index=True)
    else:
        st.info("No datasets yet: add one on the Datasets page.")

    st.subheader("Where to start")
    for i, page in enumerate((p for p in PAGES if not p.is_home), start=1):
        c1, c2 = st.columns([1, 4], vertical_alignment="center")
        with c1:
            st.page_link(page.script, label=f"{i}. {page.title}", icon=page.icon)
        c2.markdown(page.what)
    st.caption("Everything here also works from the command line: `python -m tlcore --help`.")


main()
