"""The Augmentations page with the files a careless user has (helper B)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tlcore.datasets import add_dataset


def _page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page("pages/2_Augmentations.py")
    return at.run()


@pytest.fixture
def no_demo(workspace):
    workspace.save_settings({"demo_removed": True})
    return workspace


def test_the_upload_takes_every_format_a_dataset_takes(no_demo):
    """GIF and TIFF photos are dataset images (the scanner reads them), but the upload refused them."""
    at = _page()
    accepted = {t.lstrip(".").lower() for t in at.file_uploader(key="aug_upload").proto.type}
    assert {"png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"} <= accepted
    for fmt, mime in (("GIF", "image/gif"), ("TIFF", "image/tiff")):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, format=fmt)
        at.file_uploader(key="aug_upload").set_value((f"photo.{fmt.lower()}", buf.getvalue(), mime)).run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert len([img for el in at.get("image") for img in el.proto.imgs]) == 1 + 8


def test_a_dataset_whose_folder_is_gone_says_so(no_demo, make_image_tree):
    root = make_image_tree(no_demo.root / "pets", {"cat": 3, "dog": 3})
    add_dataset(no_demo, "pets", root)
    root.rename(no_demo.root / "pets_moved")
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "folder of dataset" in errors and "missing" in errors, errors
