"""The Predict page (pages/5_Predict.py), run headlessly with AppTest."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.imagegen import image_bytes, png_header_bytes
from tests.helpers.runs import tiny_run
from tlcore.datasets import add_dataset

# Shares the session's tiny trained run (tests/test_predict.py): one pytest-xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")

PAGE = "pages/5_Predict.py"


def _page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    at.switch_page(PAGE)
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error).replace("\\", "")


def _result_images(at: AppTest) -> list:
    """The st.image elements drawn for results (each holds one picture)."""
    return list(at.get("image"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture
def with_model(workspace, trained):
    """The workspace with a copy of the tiny run (as models/tiny-run) and its dataset registered."""
    shutil.copytree(trained, workspace.models_dir / "tiny-run")
    shutil.copytree(trained.parent.parent / "photos", workspace.root / "photos")
    add_dataset(workspace, "tiny", workspace.root / "photos")
    return workspace


def test_no_models_explains_how_to_train(workspace):
    at = _page()
    _ok(at)
    assert any("No trained models" in i.value for i in at.info)
    assert any("python -m tlcore train" in c.value for c in at.code)
    assert not at.error


def test_upload_an_image(with_model):
    at = _page()
    _ok(at)
    assert at.selectbox(key="pr_model").value == "tiny-run"
    assert at.query_params["model"] == "tiny-run"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "3" and metrics["Input"] == "64 px"
    at.file_uploader(key="pr_uploads").set_value(("my cat.png", image_bytes((50, 40), seed=1), "image/png"))
    at.run()
    _ok(at)
    assert not at.error
    assert len(at.get("plotly_chart")) == 1
    pictures = _result_images(at)
    assert len(pictures) == 2  # the photo and its Grad-CAM overlay
    assert any("Grad-CAM" in img.proto.imgs[0].caption for img in pictures)
    assert any("my cat.png" in m.value.replace("\\", "") for m in at.markdown)

    at.checkbox(key="pr_gradcam").uncheck().run()
    _ok(at)
    assert len(_result_images(at)) == 1 and len(at.get("plotly_chart")) == 1


def test_bad_uploads_are_reported_and_the_rest_still_shows(with_model):
    at = _page()
    at.file_uploader(key="pr_uploads").set_value([
        ("notes.png", b"these are my notes, not a picture", "image/png"),
        ("good.jpg", image_bytes((30, 30), fmt="JPEG", seed=2), "image/jpeg"),
        ("huge.png", png_header_bytes(30_000, 30_000), "image/png"),
    ])
    at.run()
    _ok(at)
    errors = _errors(at)
    assert "notes.png" in errors and "not an image" in errors
    assert "huge.png" in errors and "downscale" in errors
    assert len(at.get("plotly_chart")) == 1  # good.jpg


def test_pick_an_image_from_a_dataset(with_model):
    at = _page()
    at.radio(key="pr_source").set_value("Pick from a dataset").run()
    _ok(at)
    assert at.selectbox(key="pr_ds").value == "tiny"  # the model's own dataset
    assert at.selectbox(key="pr_cls::tiny").value == "bird"
    assert len(at.get("plotly_chart")) == 1
    assert any("true class" in m.value or "(correct)" in m.value for m in at.markdown)
    at.selectbox(key="pr_cls::tiny").set_value("dog").run()
    _ok(at)
    assert at.selectbox(key="pr_file::tiny::dog").value.startswith("dog/")
    at.button(key="pr_random").click().run()
    _ok(at)
    assert len(at.get("plotly_chart")) == 1


def test_top_k_slider(with_model):
    at = _page()
    at.file_uploader(key="pr_uploads").set_value(("a.png", image_bytes(seed=3), "image/png"))
    at.run()
    at.slider(key="pr_top_k").set_value(1).run()
    _ok(at)
    import json

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(fig["data"][0]["y"]) == 1


def test_a_model_file_that_is_not_a_keras_model(with_model):
    broken = with_model.models_dir / "zz-broken"
    shutil.copytree(with_model.models_dir / "tiny-run", broken)
    (broken / "model.keras").write_bytes(b"definitely not a zip archive")
    at = _page()
    at.selectbox(key="pr_model").set_value("zz-broken").run()
    _ok(at)
    assert "not a Keras model file" in _errors(at) and "train again" in _errors(at)
    assert at.query_params["model"] == "zz-broken"
    at.selectbox(key="pr_model").set_value("tiny-run").run()  # the page keeps working
    at.file_uploader(key="pr_uploads").set_value(("a.png", image_bytes(seed=4), "image/png")).run()
    _ok(at)
    assert not at.error and len(at.get("plotly_chart")) == 1
