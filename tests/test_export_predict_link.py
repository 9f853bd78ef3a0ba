"""The Results page's export (tlui.export_widgets.export_section): "Try it on Predict" only for an
export that Predict can load.

Predict runs the export's ``model.keras``; an export of TFLite, SavedModel or ONNX files only is
not listed there, and its link opened Predict on another model with "The model export:NAME is no
longer there (deleted, or its files cannot be read)", although it had just been written.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _page(run: str, saved: str, formats: tuple[str, ...]) -> None:
    from tlui import export_widgets, results_widgets

    def fake_export_zip(run_dir, run_version, fmts, name, ws_root=None, press=""):
        return {"zip": b"PK", "card": b"{}", "files": {"labels.txt": {"bytes": 4}}, "formats": tuple(formats),
                "checks": {"checked": False, "reason": "test", "formats": {}}, "warnings": [], "saved": saved}

    from streamlit.delta_generator import DeltaGenerator

    def fake_page_link(self, page, *, label=None, **kwargs):  # a page link needs st.navigation's pages
        return self.markdown(f"LINK {label} {kwargs.get('query_params')}")

    real = (results_widgets.export_zip, DeltaGenerator.page_link)
    results_widgets.export_zip, DeltaGenerator.page_link = fake_export_zip, fake_page_link
    try:
        export_widgets.export_section(__import__("pathlib").Path(run), "demo-run", 1)
    finally:
        results_widgets.export_zip, DeltaGenerator.page_link = real


@pytest.mark.parametrize("formats, linked", [(("keras", "tflite"), True), (("tflite",), False),
                                             (("savedmodel", "onnx"), False)])
def test_the_predict_link_only_for_an_export_predict_can_load(tmp_path, formats, linked):
    saved = tmp_path / "exports" / "demo-run"
    saved.mkdir(parents=True)
    at = AppTest.from_function(_page, args=(str(tmp_path / "run"), str(saved), formats), default_timeout=60)
    at.session_state["rs_formats"] = list(formats)
    at.run()
    at.button(key="rs_export_btn").click().run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Saved in" in captions
    links = [m.value for m in at.markdown if m.value.startswith("LINK ")]
    assert bool(links) is linked
    if linked:
        assert "Try it on Predict" in links[0] and "export:demo-run" in links[0]
    else:
        assert "Keras" in captions and "Predict" in captions
