"""The Datasets page with a dataset whose folder moved away (helper B)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tlcore.datasets import add_dataset


def _page(dataset: str) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = dataset
    return at.run()


def test_a_dataset_whose_folder_is_gone_says_so_not_rescan(workspace, make_image_tree):
    """Its samples said 'they changed since the scan. Rescan the dataset.', and a rescan is refused:
    the page must say that the folder is missing, and how to get out."""
    root = make_image_tree(workspace.root / "pets", {"cat": 3, "dog": 3})
    add_dataset(workspace, "pets", root)
    root.rename(workspace.root / "pets_moved")
    at = _page("pets")
    at.multiselect(key="ds_classes::pets").set_value(["cat"])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("folder of dataset" in w.value and "missing" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    assert not any("changed since the scan" in c.value for c in at.caption)
