"""The Augmentations page (pages/2_Augmentations.py), run headlessly with AppTest.

The page is opened the way a user reaches it: the app's main script, then
``switch_page``. ``TLCORE_HOME`` points at a fresh workspace (the ``workspace``
fixture); uploads go through AppTest's own ``file_uploader`` support.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import yaml
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.helpers.imagegen import png_header_bytes
from tlcore import augment as au
from tlcore.datasets import add_dataset
from tlcore.workspace import DatasetRecord

PAGE = "pages/2_Augmentations.py"


def _page(pipeline: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page(PAGE)
    if pipeline is not None:
        at.query_params["pipeline"] = pipeline
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error).replace("\\", "")


def _png(shape=(40, 60, 3), seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _image_ids(at: AppTest) -> list[str]:
    return [img.url for el in at.get("image") for img in el.proto.imgs]


def _steps(at: AppTest) -> list[str]:
    return [e.label.split(". ", 1)[1].split("  ·")[0] for e in at.expander]


@pytest.fixture
def no_demo(workspace):
    """A workspace where the user removed the demo dataset: no dataset at all."""
    workspace.save_settings({"demo_removed": True})
    return workspace


# ------------------------------------------------------------------ loading
def test_loads_without_datasets_and_guides_to_upload(no_demo):
    at = _page()
    _ok(at)
    assert not at.error
    assert at.title[0].value == "Augmentations"
    infos = " ".join(i.value for i in at.info)
    assert "No datasets are registered yet" in infos and "Upload" in infos
    assert at.file_uploader(key="aug_upload") is not None
    # the default pipeline is loaded and serialized even without an image
    assert at.selectbox(key="aug_source").value == "light"
    assert _steps(at) == ["HorizontalFlip", "RandomBrightnessContrast"]
    assert any("RandomBrightnessContrast" in c.value for c in at.code)
    assert not at.get("image")


def test_upload_an_image_and_preview(no_demo):
    at = _page()
    at.file_uploader(key="aug_upload").set_value(("photo.png", _png(), "image/png")).run()
    _ok(at)
    assert not at.error
    assert len(_image_ids(at)) == 1 + 8  # the original and eight versions
    at.slider(key="aug_n").set_value(12).run()
    _ok(at)
    assert len(_image_ids(at)) == 13


def test_a_huge_image_is_refused_undecoded_and_the_next_upload_works(no_demo):
    at = _page()
    at.file_uploader(key="aug_upload").set_value(("huge.png", png_header_bytes(30_000, 30_000), "image/png")).run()
    _ok(at)
    errors = _errors(at)
    assert errors.startswith("huge.png: The file was not decoded") and "900,000,000 pixels" in errors
    assert "downscale it" in errors  # what to do
    assert not at.get("image")
    at.file_uploader(key="aug_upload").set_value(("photo.png", _png(), "image/png")).run()
    _ok(at)
    assert not at.error and len(_image_ids(at)) == 1 + 8


def test_an_upload_that_is_not_an_image_shows_an_error(no_demo):
    at = _page()
    at.file_uploader(key="aug_upload").set_value(("photo.png", b"this is not a png", "image/png")).run()
    _ok(at)
    assert at.error and _errors(at).startswith("photo.png: The file is not an image")
    assert not at.get("image")


# ---------------------------------------------------------------- pipelines
def test_pick_a_preset(no_demo):
    at = _page()
    at.selectbox(key="aug_source").set_value("heavy").run()
    _ok(at)
    assert _steps(at) == au.preset_spec("heavy").names
    assert at.query_params["pipeline"] == "heavy"
    yaml_code = next(c.value for c in at.code if c.language == "yaml" and "__version__" in c.value)
    assert au.spec_from_albu_dict(yaml.safe_load(yaml_code)) == au.preset_spec("heavy")


def test_query_param_chooses_the_pipeline(no_demo):
    at = _page(pipeline="medium")
    _ok(at)
    assert at.selectbox(key="aug_source").value == "medium"
    assert _steps(at) == au.preset_spec("medium").names


def test_seed_and_reroll_change_the_preview(no_demo):
    at = _page()
    at.file_uploader(key="aug_upload").set_value(("photo.png", _png(), "image/png")).run()
    first = _image_ids(at)
    at.number_input(key="aug_seed").set_value(5).run()
    _ok(at)
    second = _image_ids(at)
    assert second[0] == first[0] and second[1:] != first[1:]  # same original, other versions
    at.number_input(key="aug_seed").set_value(0).run()
    assert _image_ids(at)[1:] == first[1:]  # seed 0 again: the same versions
    at.button(key="aug_reroll").click().run()
    _ok(at)
    assert at.number_input(key="aug_seed").value != 0
    assert _image_ids(at)[1:] != first[1:]


def test_edit_add_move_remove_steps(no_demo):
    at = _page()
    at.slider(key="aug_w::0::p").set_value(0.9).run()
    _ok(at)
    spec_code = next(c.value for c in at.code if c.value.startswith("steps:"))
    assert yaml.safe_load(spec_code)["steps"][0]["params"]["p"] == 0.9
    assert any("Edited" in c.value for c in at.caption)

    at.selectbox(key="aug_add_choice").set_value("CoarseDropout").run()
    at.button(key="aug_add").click().run()
    _ok(at)
    assert _steps(at) == ["HorizontalFlip", "RandomBrightnessContrast", "CoarseDropout"]
    new_id = 2
    at.slider(key=f"aug_w::{new_id}::num_holes_range").set_value((2, 5)).run()
    at.button(key=f"aug_up::{new_id}").click().run()
    _ok(at)
    assert _steps(at) == ["HorizontalFlip", "CoarseDropout", "RandomBrightnessContrast"]
    assert at.slider(key=f"aug_w::{new_id}::num_holes_range").value == (2, 5)  # values travel with the step
    at.button(key="aug_rm::0").click().run()
    _ok(at)
    assert _steps(at) == ["CoarseDropout", "RandomBrightnessContrast"]
    spec = yaml.safe_load(next(c.value for c in at.code if c.value.startswith("steps:")))
    assert spec["steps"][0]["params"]["num_holes_range"] == [2, 5]

    at.button(key="aug_reload").click().run()  # discard changes: back to the preset
    _ok(at)
    assert _steps(at) == ["HorizontalFlip", "RandomBrightnessContrast"]


# --------------------------------------------------------------------- save
def test_save_a_pipeline(no_demo):
    at = _page()
    at.selectbox(key="aug_source").set_value("medium").run()
    at.text_input(key="aug_save_name").set_value("my-pipeline")
    at.button(key="FormSubmitter:aug_save_form-Save").click().run()
    _ok(at)
    path = no_demo.augmentations_dir / "my-pipeline.yaml"
    assert path.is_file()
    assert au.load_pipeline(no_demo, "my-pipeline") == au.preset_spec("medium")
    assert any("Saved the pipeline" in s.value for s in at.success)
    assert at.selectbox(key="aug_source").value == "my-pipeline"
    assert "my-pipeline" in at.selectbox(key="aug_source").options[-1]

    # the same name again: refused unless "overwrite" is ticked
    at.text_input(key="aug_save_name").set_value("my-pipeline")
    at.button(key="FormSubmitter:aug_save_form-Save").click().run()
    _ok(at)
    assert "already saved" in _errors(at)
    at.checkbox(key="aug_save_overwrite").check()
    at.button(key="FormSubmitter:aug_save_form-Save").click().run()
    _ok(at)
    assert not at.error and at.success


@pytest.mark.parametrize("name, message", [("bad name!", "Invalid pipeline name"), ("heavy", "preset"), ("", "Invalid")])
def test_save_with_a_bad_name_shows_an_error(no_demo, name, message):
    at = _page()
    at.text_input(key="aug_save_name").set_value(name)
    at.button(key="FormSubmitter:aug_save_form-Save").click().run()
    _ok(at)
    assert message in _errors(at)
    assert au.list_pipelines(no_demo) == []


def test_delete_a_saved_pipeline(no_demo):
    au.save_pipeline(no_demo, "old", au.preset_spec("heavy"))
    at = _page(pipeline="old")
    _ok(at)
    assert _steps(at) == au.preset_spec("heavy").names
    at.button(key="aug_delete").click().run()
    _ok(at)
    assert au.list_pipelines(no_demo) == []
    assert at.selectbox(key="aug_source").value == "light"
    assert any("Deleted" in s.value for s in at.success)


def test_discard_changes_after_the_pipeline_was_deleted_on_another_tab(no_demo):
    au.save_pipeline(no_demo, "old", au.preset_spec("heavy"))
    at = _page(pipeline="old")
    at.button(key="aug_rm::0").click().run()
    au.delete_pipeline(no_demo, "old")  # on another tab
    at.button(key="aug_reload").click().run()
    _ok(at)
    text = _errors(at)
    assert "The pipeline old is no longer saved (deleted, perhaps on another tab)" in text
    assert "Save the steps shown under a name" in text and "augment save" not in text
    assert len(_steps(at)) == len(au.preset_spec("heavy").names) - 1  # the edited steps are kept


def test_a_damaged_saved_pipeline_is_an_error_not_a_traceback(no_demo):
    (no_demo.augmentations_dir / "broken.yaml").write_text("steps: [{name: Nope}]\n")
    at = _page(pipeline="broken")
    _ok(at)
    assert "unknown transform" in _errors(at)
    assert at.selectbox(key="aug_source").value == "light"


def test_choosing_a_damaged_saved_pipeline_keeps_start_from_on_the_steps_shown(no_demo):
    """Start from said "broken (saved)" while the steps below were still the previous pipeline's, and the
    error named the pipeline twice ("The saved pipeline 'broken' is invalid: The saved pipeline ...")."""
    (no_demo.augmentations_dir / "broken.yaml").write_text("steps: [unclosed\n")
    at = _page()
    at.selectbox(key="aug_source").set_value("heavy").run()
    at.selectbox(key="aug_source").set_value("broken").run()
    _ok(at)
    text = _errors(at)
    assert "The saved pipeline 'broken' is invalid: its text is not valid YAML or JSON." in text, text
    assert text.count("'broken'") == 1
    assert at.selectbox(key="aug_source").value == "heavy"  # the steps shown are heavy's
    assert _steps(at) == au.preset_spec("heavy").names


# ------------------------------------------------------------------ dataset
def test_preview_an_image_of_a_dataset(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page()
    _ok(at)
    assert set(at.selectbox(key="aug_ds").options) >= {"tiny"}
    at.selectbox(key="aug_ds").set_value("tiny").run()
    _ok(at)
    assert at.selectbox(key="aug_cls::tiny").options == ["(all classes)", "bird", "cat", "dog"]
    at.selectbox(key="aug_cls::tiny").set_value("cat").run()
    _ok(at)
    images = at.selectbox(key="aug_img::tiny::cat")
    assert images.options == [f"cat/cat_{i:03d}.png" for i in range(6)]
    assert len(_image_ids(at)) == 9
    at.selectbox(key="aug_img::tiny::cat").set_value("cat/cat_003.png").run()
    _ok(at)
    caption = at.get("image")[0].proto.imgs[0].caption.replace("\\", "")
    assert caption == "Original: cat/cat_003.png"
    at.button(key="aug_rand::tiny::cat").click().run()
    _ok(at)
    assert at.selectbox(key="aug_img::tiny::cat").value in images.options
    # the input size follows the model's input size
    at.select_slider(key="aug_size").set_value(96).run()
    _ok(at)
    assert any("96×96 pixels" in c.value for c in at.caption)


def test_an_unscanned_dataset_is_explained(no_demo, tiny_dataset):
    no_demo.put_dataset(DatasetRecord(name="raw", path=str(tiny_dataset)))
    at = _page()
    _ok(at)
    assert "has no index yet" in _errors(at)
    at.radio(key="aug_img_src").set_value("Upload an image").run()
    _ok(at)
    assert at.file_uploader(key="aug_upload") is not None


# ------------------------------------------------------------------ careless-user rounds
def test_the_upload_takes_every_format_a_dataset_takes(no_demo):
    """GIF and TIFF photos are dataset images (the scanner reads them), but the upload refused them."""
    at = _page()
    accepted = {t.lstrip(".").lower() for t in at.file_uploader(key="aug_upload").proto.type}
    assert {"png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"} <= accepted
    for fmt, mime in (("GIF", "image/gif"), ("TIFF", "image/tiff")):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, format=fmt)
        at.file_uploader(key="aug_upload").set_value((f"photo.{fmt.lower()}", buf.getvalue(), mime)).run()
        assert not at.exception and not at.error, _errors(at)
        assert len(_image_ids(at)) == 1 + 8


def test_a_dataset_whose_folder_is_gone_says_so(no_demo, make_image_tree):
    """It said only "Cannot read X: No such file or directory", which sent users to rescan (refused then)."""
    root = make_image_tree(no_demo.root / "pets", {"cat": 3, "dog": 3})
    add_dataset(no_demo, "pets", root)
    root.rename(no_demo.root / "pets_moved")
    at = _page()
    _ok(at)
    errors = _errors(at)
    assert "The folder of dataset 'pets' is missing" in errors and "cannot be read" in errors, errors

