"""Home: what the workbench does, what the workspace holds, where to start.

The other pages come from ``pages/`` (Streamlit's multipage directory; ``st.navigation``
is deliberately not used); the sidebar's links are drawn by ``tlui.common.sidebar_nav``.
Run it with ``streamlit run streamlit_app.py``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from tlui import data
from tlui.common import PAGES, open_workspace, show_error, sidebar_nav, sidebar_workspace

APP_DIR = Path(__file__).resolve().parent

# What to do on each page (the pages, labels and icons come from tlui.common.PAGES).
WHAT = {
    "Datasets": "Add your folder of labelled photos (one sub-folder per class), check its problems, classes "
                "and split. The demo dataset is there already.",
    "Augmentations": "Pick or build an augmentation pipeline and preview it on your images.",
    "Search": "Let Optuna search how many backbone blocks to freeze and which learning rate to use; watch the "
              "trials come in, stop and resume.",
    "Results": "Compare the trials of a search, look at the best model's mistakes and download it.",
    "Predict": "Try a trained model on new photos: top-k labels with confidence and a Grad-CAM heat map. "
               "Train one with `python -m tlcore train --data demo`.",
}
STEPS = [(page, label, icon, WHAT[label]) for page, label, icon in PAGES if label in WHAT]


def saved_pipelines(ws: Workspace) -> int:
    return sum(1 for _ in ws.augmentations_dir.glob("*.yaml"))


def datasets_table(ws: Workspace) -> pd.DataFrame:
    rows = [
        {"name": r.name, "images": r.num_images, "classes": r.num_classes, "problems": r.num_problems,
         "source": r.source, "path": r.path}
        for r in ws.list_datasets()
    ]
    return pd.DataFrame(rows, columns=["name", "images", "classes", "problems", "source", "path"])


def main() -> None:
    st.set_page_config(page_title="Transfer-learning workbench", layout="wide")
    sidebar_nav()
    ws = open_workspace()
    sidebar_workspace(ws)

    st.title("Transfer-learning workbench")
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
        table = datasets_table(ws)
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
    for i, (page, label, icon, what) in enumerate(STEPS, start=1):
        c1, c2 = st.columns([1, 4], vertical_alignment="center")
        with c1:
            if (APP_DIR / page).is_file():
                st.page_link(page, label=f"{i}. {label}", icon=icon)
            else:
                st.markdown(f"{i}\\. {label}")
        c2.markdown(what)
    st.caption("Everything here also works from the command line: `python -m tlcore --help`.")


main()
