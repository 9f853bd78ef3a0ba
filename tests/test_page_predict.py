"""The Predict page (pages/6_Predict.py), run headlessly with AppTest."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.handmodel import upload_trial_run, zip_tree
from tests.helpers.handstudy import epoch_record, hand_study, hand_trial
from tests.helpers.imagegen import image_bytes, png_header_bytes, write_bytes
from tests.helpers.runs import tiny_run, write_tinted_tree
from tlcore.datasets import add_dataset

# Shares the session's tiny trained run (tests/test_predict.py): one pytest-xdist worker trains it once.
pytestmark = pytest.mark.xdist_group("tiny-run")

PAGE = "pages/6_Predict.py"


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
    assert at.selectbox(key="pr_model").value == "run:tiny-run"
    assert at.query_params["model"] == "run:tiny-run"
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


def test_an_image_of_a_class_the_model_does_not_know_is_not_called_wrong(with_model):
    """Picked from another dataset, an image of a class the model never learned was shown as
    "Bag (60.6 %) (wrong, the true class is Ankle boot)"."""
    for cls in ("cat", "zebra"):
        for i in range(2):
            write_bytes(with_model.root / "other" / cls / f"{cls}_{i}.png", image_bytes((40, 30), seed=i))
    add_dataset(with_model, "other", with_model.root / "other")
    at = _page()
    at.radio(key="pr_source").set_value("Pick from a dataset").run()
    at.selectbox(key="pr_ds").set_value("other").run()
    _ok(at)
    assert any("does not know 1 of this dataset's 2 classes (zebra)" in c.value for c in at.caption)
    at.selectbox(key="pr_cls::other").set_value("zebra").run()
    _ok(at)
    heads = [h for h in (m.value.replace("\\", "") for m in at.markdown) if "zebra_" in h]
    assert heads and all("is not one of the model's classes" in h and "wrong" not in h for h in heads), heads
    at.selectbox(key="pr_cls::other").set_value("cat").run()
    assert any("(correct)" in m.value or "wrong, the true class is cat" in m.value for m in at.markdown)


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
    at.selectbox(key="pr_model").set_value("run:zz-broken").run()
    _ok(at)
    assert "not a Keras model file" in _errors(at) and "train again" in _errors(at)
    assert at.query_params["model"] == "run:zz-broken"
    at.selectbox(key="pr_model").set_value("run:tiny-run").run()  # the page keeps working
    at.file_uploader(key="pr_uploads").set_value(("a.png", image_bytes(seed=4), "image/png")).run()
    _ok(at)
    assert not at.error and len(at.get("plotly_chart")) == 1


# ------------------------------------------------------------- any model
def test_an_old_link_with_a_run_name_still_selects_it(with_model):
    shutil.copytree(with_model.models_dir / "tiny-run", with_model.models_dir / "other-run")
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    at.switch_page(PAGE)
    at.query_params["model"] = "other-run"
    at.run()
    _ok(at)
    assert at.selectbox(key="pr_model").value == "run:other-run"
    assert at.query_params["model"] == "run:other-run"


def test_a_model_deleted_under_the_page_is_said_not_swapped_silently(with_model):
    shutil.copytree(with_model.models_dir / "tiny-run", with_model.models_dir / "other-run")
    at = _page()
    at.selectbox(key="pr_model").set_value("run:other-run").run()
    shutil.rmtree(with_model.models_dir / "other-run")  # deleted on disk (another tab, a terminal)
    at.run()
    _ok(at)
    assert at.selectbox(key="pr_model").value == "run:tiny-run"
    assert "The model run:other-run is no longer there" in " ".join(w.value for w in at.warning).replace("\\", "")
    # A link naming a model that is not there says so too.
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    at.switch_page(PAGE)
    at.query_params["model"] = "run:gone-run"
    at.run()
    _ok(at)
    assert "The model run:gone-run is no longer there" in " ".join(w.value for w in at.warning).replace("\\", "")


def test_search_trials_are_listed_and_fetched_when_chosen(with_model):
    ids = upload_trial_run(with_model, with_model.models_dir / "tiny-run", "t")
    t0 = dt.datetime(2026, 1, 1)
    hand_study(with_model, "hs", [
        hand_trial(t0, 0, 5, value=0.6, history=[epoch_record(1, 0.6)], tl_artifacts=ids),
        hand_trial(t0, 6, 9, value=0.8, history=[epoch_record(1, 0.8)], tl_artifacts=ids),
    ])
    at = _page()
    _ok(at)
    box = at.selectbox(key="pr_model")
    assert box.options[0].startswith("tiny-run")
    assert box.options[1:] == ["study hs · trial 1 (best) · val 0.800", "study hs · trial 0 · val 0.600"]
    assert not (with_model.root / "studies" / "local" / "hs").exists()  # listing fetched nothing
    box.set_value("trial:hs:1").run()
    _ok(at)
    assert at.query_params["model"] == "trial:hs:1"
    assert (with_model.root / "studies" / "local" / "hs" / "trials" / "1" / "model.keras").is_file()
    assert any("search trial 1 of study hs" in c.value.replace("\\", "") for c in at.caption)
    at.file_uploader(key="pr_uploads").set_value(("a.png", image_bytes(seed=7), "image/png")).run()
    _ok(at)
    assert not at.error and len(at.get("plotly_chart")) == 1


def test_a_storage_that_cannot_be_read_does_not_break_the_page(with_model):
    (with_model.root / "studies").mkdir(exist_ok=True)
    (with_model.root / "studies" / "journal.log").mkdir()
    at = _page()
    _ok(at)
    assert any("Search trials are not listed" in w.value.replace("\\", "") for w in at.warning)
    assert at.selectbox(key="pr_model").value == "run:tiny-run" and not at.error


# ------------------------------------------------------------------ batch
def _batch_table(at: AppTest):
    """The batch result's dataframe (the page may also show the per-class table), or None."""
    frames = [d.value for d in at.dataframe if "file" in d.value.columns]
    return frames[0] if frames else None


def _batch(at: AppTest) -> AppTest:
    return at.radio(key="pr_source").set_value("Batch: a folder or a zip").run()


def _zip_of_classes(root, tmp_path):
    photos = write_tinted_tree(root, per_class=3)
    shutil.move(photos / "dog" / "dog_000.png", photos / "cat" / "a_dog.png")
    write_bytes(photos / "bird" / "broken.png", b"not a picture")
    return zip_tree(photos, tmp_path / "batch.zip", top="batch")


def test_batch_zip_gives_a_table_with_correct_column_and_a_csv(with_model, tmp_path):
    archive = _zip_of_classes(tmp_path / "batch", tmp_path)
    at = _batch(_page())
    _ok(at)
    at.file_uploader(key="pr_batch_zip").set_value(("batch.zip", archive.read_bytes(), "application/zip")).run()
    _ok(at)
    at.button(key="pr_batch_run").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    progress = at.get("progress")
    assert len(progress) == 1 and "Classified 10 of 10 images" in progress[0].proto.text
    frame = _batch_table(at)
    assert {"file", "label_1", "confidence_1", "true_label", "correct", "error"} <= set(frame.columns)
    assert len(frame) == 10 and frame["error"].notna().sum() == 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "10" and metrics["Could not be read"] == "1"
    assert metrics["Accuracy"].endswith("%")
    [download] = at.get("download_button")
    assert download.proto.label == "Download the table (CSV)"
    # The result stays while nothing changes; the "only the mistakes" filter keeps the wrong rows.
    at.checkbox(key="pr_batch_wrong").check().run()
    _ok(at)
    mistakes = _batch_table(at)
    assert mistakes is not None and (mistakes["correct"] == False).all()  # noqa: E712
    # Another top-k asks for a new run.
    at.slider(key="pr_top_k").set_value(1).run()
    assert _batch_table(at) is None and any("classify again" in c.value for c in at.caption)


def test_batch_folder_outside_the_data_roots_is_refused(with_model, tmp_path):
    outside = write_tinted_tree(tmp_path / "elsewhere", per_class=1)
    at = _batch(_page())
    at.radio(key="pr_batch_kind").set_value("A folder on the server").run()
    at.text_input(key="pr_batch_folder").set_value(str(outside)).run()
    at.button(key="pr_batch_run").click().run()
    _ok(at)
    errors = _errors(at)
    assert "outside the allowed data roots" in errors and "allow-root" in errors
    assert str(with_model.root) in errors
    # A folder inside them works.
    at.text_input(key="pr_batch_folder").set_value(str(with_model.root / "photos")).run()
    at.button(key="pr_batch_run").click().run()
    _ok(at)
    assert not at.error and len(_batch_table(at)) == 36


def test_batch_zip_without_images(with_model, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "no pictures here")
    at = _batch(_page())
    at.file_uploader(key="pr_batch_zip").set_value(("docs.zip", buf.getvalue(), "application/zip")).run()
    at.button(key="pr_batch_run").click().run()
    _ok(at)
    assert "holds no images" in _errors(at) and _batch_table(at) is None


# -------------------------------------------------------------------- TTA
def test_tta_switch_and_its_effect_on_the_test_split(with_model):
    at = _page()
    at.toggle(key="pr_tta").set_value(True).run()
    at.file_uploader(key="pr_uploads").set_value(("a.png", image_bytes(seed=8), "image/png")).run()
    _ok(at)
    assert not at.error and len(at.get("plotly_chart")) == 1
    at.button(key="pr_tta_run").click().run()
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Without TTA"].endswith("%") and metrics["With TTA"].endswith("%")
    assert int(metrics["Test images"]) > 0
    with_tta = next(m for m in at.metric if m.label == "With TTA")
    if metrics["Without TTA"] == metrics["With TTA"]:  # no green "+0.0 points" for no gain
        assert with_tta.delta == "no change" and with_tta.proto.color == 2  # grey ("off"), not green
    else:
        assert with_tta.delta.endswith(" points") and with_tta.delta[0] in "+-"


def test_a_model_made_elsewhere_predicts_without_grad_cam(with_model):
    import keras

    inp = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inp))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    folder = with_model.exports_dir / "made-elsewhere"
    folder.mkdir(parents=True)
    keras.Model(inp, out).save(folder / "model.keras")
    (folder / "labels.txt").write_text("cat\ndog\nowl\n")
    (folder / "model_card.json").write_text('{"classes": ["cat", "dog", "owl"], "input": {"image_size": 64}}')
    at = _page()
    at.selectbox(key="pr_model").set_value("export:made-elsewhere").run()
    _ok(at)
    assert not at.error
    assert at.checkbox(key="pr_gradcam").disabled
    assert any("Grad-CAM is not available" in c.value for c in at.caption)
    at.file_uploader(key="pr_uploads").set_value(("a.png", image_bytes((50, 40), seed=2), "image/png")).run()
    _ok(at)
    assert not at.error and len(at.get("plotly_chart")) == 1 and len(_result_images(at)) == 1


# ------------------------------------------------------------- display size
def test_a_very_tall_narrow_upload_is_drawn_in_a_square_box(with_model, monkeypatch):
    """A 1×5000 image was drawn as a 1×224 picture, which the browser stretched to the column's width
    (a ~14,000 px tall element): it is now letterboxed in a 224×224 square, at its own shape."""
    from PIL import Image
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    sent: dict[str, bytes] = {}  # media file id -> the bytes the browser would get
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            sent[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = _page()
    at.file_uploader(key="pr_uploads").set_value(
        ("receipt.png", image_bytes((1, 5000), seed=11), "image/png")).run()
    _ok(at)
    assert not at.error and len(at.get("plotly_chart")) == 1
    pictures = _result_images(at)
    assert len(pictures) == 2  # the photo and its Grad-CAM overlay
    sizes = {}
    for img in pictures:
        url = img.proto.imgs[0].url
        file_id = url.rsplit("/", 1)[-1].split(".")[0]
        sizes[img.proto.imgs[0].caption] = Image.open(io.BytesIO(sent[file_id])).size
    assert sizes["the image"] == (224, 224)  # was (1, 224): drawn ~14,000 px tall at the column's width
    assert all(w <= 224 and h <= 224 and h <= w for w, h in sizes.values()), sizes


def _away_and_back(at: AppTest) -> AppTest:
    """To Home and back through the sidebar's menu, whose link carries the page's URL."""
    query = {k: at.query_params[k] for k in at.query_params}
    at.query_params.clear()
    at.switch_page("pages/0_Home.py").run()
    _ok(at)
    for k, v in query.items():
        at.query_params[k] = v
    return at.switch_page(PAGE).run()


def test_uploaded_images_and_a_batch_zip_are_still_there_after_another_page(with_model, tmp_path):
    at = _page()
    at.file_uploader(key="pr_uploads").set_value([
        ("my cat.png", image_bytes((50, 40), seed=1), "image/png"),
        ("my dog.png", image_bytes((40, 50), seed=2), "image/png"),
    ]).run()
    _ok(at)
    shown = len(_result_images(at))
    assert shown == 4 and len(at.get("plotly_chart")) == 2  # each photo, its Grad-CAM and its chart
    at = _away_and_back(at)
    _ok(at)
    assert not at.error
    assert len(_result_images(at)) == shown and len(at.get("plotly_chart")) == 2
    assert any("my cat.png, my dog.png" in c.value.replace("\\", "") for c in at.caption)

    archive = _zip_of_classes(tmp_path / "batch", tmp_path)
    at = _batch(at)
    at.file_uploader(key="pr_batch_zip").set_value(("batch.zip", archive.read_bytes(), "application/zip")).run()
    at = _away_and_back(at)
    _ok(at)
    at.button(key="pr_batch_run").click().run()
    _ok(at)
    assert len(_batch_table(at)) == 10
