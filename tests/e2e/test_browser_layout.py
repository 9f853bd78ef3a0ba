"""One odd image cannot wreck a layout, in Chromium: thumbnails keep to a bounded box."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.e2e import ui
from tests.helpers import auditgen as ag
from tlcore.datasets import add_dataset
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

NAME = "slivers"


def test_a_4_by_3000_pixel_image_keeps_the_samples_tab_short(page, app):
    """A 4 × 3,000 px image once made the Samples tab 18,444 px tall; letter-boxed thumbnails
    keep every image to its box, so the tab is as tall as with ordinary photos."""
    ws = Workspace(app.workspace)
    root = ag.photo_tree(ws.root / NAME, {"cat": 4, "dog": 4}, size=(48, 40))
    Image.fromarray(np.full((3000, 4, 3), (200, 0, 0), np.uint8)).save(root / "cat" / "sliver.png")
    Image.fromarray(np.full((4, 3000, 3), (0, 0, 200), np.uint8)).save(root / "dog" / "ribbon.png")
    add_dataset(ws, NAME, root)
    ui.goto(page, app.url, f"Datasets?dataset={NAME}")
    ui.open_tab(page, "Samples")
    ui.wait_idle(page, 60)
    images = page.locator('[data-testid="stTabPanel"]:visible img')
    assert images.count() >= 10  # every sample, the two odd ones included
    heights = [box["height"] for box in (images.nth(i).bounding_box() for i in range(images.count())) if box]
    widths = [box["width"] for box in (images.nth(i).bounding_box() for i in range(images.count())) if box]
    assert max(heights) <= 260, heights  # a bounded box, whatever the image's shape
    assert max(widths) <= 400, widths
    panel = page.locator('[data-testid="stTabPanel"]:visible').first.bounding_box()
    assert panel and panel["height"] < 2500, panel
    ui.assert_no_errors(page)
