"""The Results page draws the top losses and their Grad-CAM overlays at one width.

Both are ``DISPLAY_PX`` square arrays, but ``st.image``'s default width ("content") makes the
browser fit the element to its caption's line: the top loss's long caption stretched its image to
the column, the Grad-CAM's short one drew its overlay only as wide as the words (narrower, and
each overlay its own width). The page now gives both the same pixel width. Checked twice: the
arrays and ``width`` the page passes to ``st.image``, and the width each image element sends to
the browser (its ``width_config``, which AppTest's element tree does not keep: read from the
run's messages).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import streamlit
from streamlit.testing.v1 import AppTest, local_script_runner

from tests.helpers.pagetest import assert_ok
from tests.helpers.searchfix import STUDY, copy_workspace, tiny_study
from tlui.results_widgets import DISPLAY_PX

# Shares the session's tiny study (tests/helpers/searchfix.py): one pytest-xdist worker runs it once.
pytestmark = pytest.mark.xdist_group("tiny-study")


@pytest.fixture
def study_ws(tmp_path_factory, tmp_path, monkeypatch):
    ws = copy_workspace(tiny_study(tmp_path_factory), tmp_path / "ws")
    monkeypatch.setenv("TLCORE_HOME", str(ws.root))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    return ws


@pytest.fixture
def drawn(monkeypatch) -> dict[str, list[dict[str, Any]]]:
    """What the page's runs draw as images: ``passed``, each ``st.image`` call's caption, array shape
    and ``width``; ``sent``, each image element's caption and width as the browser gets them (the
    last run's)."""
    seen: dict[str, list[dict[str, Any]]] = {"passed": [], "sent": []}
    real_image, real_parse = streamlit.image, local_script_runner.parse_tree_from_messages

    def image(img, caption=None, width="content", **kw):
        seen["passed"].append({"caption": caption, "shape": np.asarray(img).shape, "width": width})
        return real_image(img, caption=caption, width=width, **kw)

    def parse(messages):
        seen["sent"] = []
        for msg in messages:
            if msg.HasField("delta") and msg.delta.WhichOneof("type") == "new_element":
                elt = msg.delta.new_element
                if elt.WhichOneof("type") == "imgs":
                    wc = elt.width_config
                    seen["sent"].append({"caption": elt.imgs.imgs[0].caption,
                                         "width": getattr(wc, wc.WhichOneof("width_spec") or "use_content")})
        return real_parse(messages)

    monkeypatch.setattr(streamlit, "image", image)  # the widgets call st.image: this module's attribute
    monkeypatch.setattr(local_script_runner, "parse_tree_from_messages", parse)
    return seen


def test_top_losses_and_their_gradcam_are_drawn_at_one_width(study_ws, drawn):
    at = AppTest.from_file("../streamlit_app.py", default_timeout=300)
    at.query_params["study"] = STUDY
    at.switch_page("pages/5_Results.py").run()
    at.button(key="rs_eval_btn").click()
    drawn["passed"].clear()
    at.run()
    assert_ok(at)
    passed, sent = drawn["passed"], drawn["sent"]
    if not passed:  # pragma: no cover - a perfect tiny model has no top losses
        pytest.skip("the tiny model made no mistakes")
    cams = [p for p in passed if p["caption"].startswith("Grad-CAM")]
    losses = [p for p in passed if p["caption"].startswith("**")]
    assert losses and len(cams) == len(losses) and len(passed) == 2 * len(losses)
    # Both rows: DISPLAY_PX square arrays (RGBA letter-boxed thumbnails, RGB overlays)...
    assert {p["shape"][:2] for p in passed} == {(DISPLAY_PX, DISPLAY_PX)}
    # ...passed and sent at that width, whatever their captions' lengths.
    assert {p["width"] for p in passed} == {DISPLAY_PX}
    assert len(sent) == len(passed) == len(at.get("image"))
    assert {s["width"] for s in sent} == {DISPLAY_PX}
