"""The Datasets page (pages/1_Datasets.py), run headlessly with AppTest.

The page is opened the way a user reaches it: the app's main script, then
``switch_page``. Uploads go through AppTest's own ``file_uploader`` support.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from tlcore.datasets import add_dataset, add_zip_dataset, find_fashion_mnist

PAGE = "pages/1_Datasets.py"


def _page(dataset: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=60)
    at.switch_page(PAGE)
    if dataset is not None:
        at.query_params["dataset"] = dataset
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, Path(folder.name) / f.relative_to(folder))
    return buf.getvalue()


def _error_text(at: AppTest) -> str:
    return " ".join(e.value for e in at.error).replace("\\", "")


# ------------------------------------------------------------------ viewing
def test_loads_with_the_demo(workspace):
    at = _page()
    _ok(at)
    assert not at.error
    assert at.query_params["dataset"] == "demo"
    assert at.selectbox(key="ds_selected").value == "demo"
    assert len(at.get("plotly_chart")) >= 3  # classes, sizes, aspect
    assert {m.label: m.value for m in at.metric}["Images"] == "500"
    # Samples: the first five classes, eight thumbnails each, file names as captions.
    images = at.get("image")
    assert len(images) == 5
    assert all(len(img.proto.imgs) == 8 for img in images)
    assert images[0].proto.imgs[0].caption.replace("\\", "").endswith(".png")
    # Problems tab renders (the demo has none) and the split table is there.
    assert any(t.label.startswith("Problems") for t in at.tabs)
    assert any("no problems" in s.value for s in at.success)
    assert any(list(df.value.columns)[:4] == ["train", "val", "test", "total"] for df in at.dataframe)


def test_rerun_is_stable_and_cached(workspace):
    at = _page()
    at.run()
    _ok(at)
    assert len(at.get("image")) == 5


def test_select_a_dataset_with_the_selectbox(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page()
    at.selectbox(key="ds_selected").set_value("tiny").run()
    _ok(at)
    assert at.query_params["dataset"] == "tiny"
    assert at.multiselect(key="ds_classes::tiny").value == ["bird", "cat", "dog"]
    assert {m.label: m.value for m in at.metric}["Images"] == "15"
    assert [len(img.proto.imgs) for img in at.get("image")] == [4, 6, 5]  # fewer than 8 in each class


def test_query_param_selects_the_dataset(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    _ok(at)
    assert at.selectbox(key="ds_selected").value == "tiny"


def test_unknown_query_param_falls_back_to_demo(workspace):
    at = _page(dataset="no-such-dataset")
    _ok(at)
    assert at.selectbox(key="ds_selected").value == "demo"
    assert at.query_params["dataset"] == "demo"


def test_samples_controls(workspace):
    at = _page()
    at.multiselect(key="ds_classes::demo").set_value(["Bag"])
    at.slider(key="ds_n_samples").set_value(12)
    at.run()
    _ok(at)
    images = at.get("image")
    assert len(images) == 1 and len(images[0].proto.imgs) == 12
    before = [i.caption for i in images[0].proto.imgs]
    at.button(key="ds_shuffle_btn").click().run()
    _ok(at)
    assert [i.caption for i in at.get("image")[0].proto.imgs] != before


def test_user_text_is_escaped(workspace, make_image_tree):
    root = make_image_tree(workspace.root / "odd", {"*bold*": 3, "plain": 3})
    (root / "plain" / "plain_000.png").rename(root / "plain" / "[x](javascript:alert(1)).png")
    add_dataset(workspace, "odd", root)
    at = _page(dataset="odd")
    _ok(at)
    headers = [m.value for m in at.markdown if "images" in m.value]
    assert any(h.startswith("**\\*bold\\***") for h in headers)
    captions = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert "\\[x\\]\\(javascript\\:alert\\(1\\)\\)\\.png" in captions


def test_imbalance_warning(workspace, make_image_tree):
    root = make_image_tree(workspace.root / "skewed", {"many": 9, "few": 3})
    add_dataset(workspace, "skewed", root)
    at = _page(dataset="skewed")
    _ok(at)
    assert any("class weights" in w.value.replace("\\", "") for w in at.warning)


def test_problems_tab_filters_and_download(workspace, tiny_dataset):
    (tiny_dataset / "cat" / "broken.png").write_bytes(b"this is not a png")
    (tiny_dataset / "dog" / "notes.txt").write_text("hello")
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    _ok(at)
    problems = next(df.value for df in at.dataframe if "message" in df.value.columns)
    assert "cat/broken.png" in set(problems["relpath"])
    assert {m.label: m.value for m in at.metric}["Unusable files"] == "1"
    assert at.get("download_button")
    at.text_input(key="ds_prob_text::tiny").set_value("BROKEN").run()
    _ok(at)
    shown = next(df.value for df in at.dataframe if "message" in df.value.columns)
    assert list(shown["relpath"]) == ["cat/broken.png"]
    at.text_input(key="ds_prob_text::tiny").set_value("")
    at.multiselect(key="ds_prob_sev::tiny").set_value(["warning"]).run()
    shown = next(df.value for df in at.dataframe if "message" in df.value.columns)
    assert set(shown["severity"]) == {"warning"}


def test_split_settings_preview_and_save(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    at.number_input(key="ds_split_val::tiny").set_value(0.25)
    at.number_input(key="ds_split_seed::tiny").set_value(3)
    at.run()
    _ok(at)
    assert at.button(key="ds_split_save").disabled is False
    at.button(key="ds_split_save").click().run()
    _ok(at)
    saved = yaml.safe_load((workspace.root / "datasets" / "tiny" / "split.yaml").read_text())
    assert saved == {"val_fraction": 0.25, "test_fraction": 0.15, "seed": 3}
    assert at.button(key="ds_split_save").disabled is True
    table = next(df.value for df in at.dataframe if "train" in df.value.columns)
    assert int(table.loc["all classes", "total"]) == 15


def test_split_fractions_that_leave_nothing_to_train_on(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    at.number_input(key="ds_split_val::tiny").set_value(0.6)
    at.number_input(key="ds_split_test::tiny").set_value(0.5)
    at.run()
    _ok(at)
    assert "leave something to train on" in _error_text(at)


# ------------------------------------------------------------------- adding
def test_add_from_a_folder(workspace, tiny_dataset):
    at = _page()
    at.text_input(key="ds_add_name").set_value("tiny")
    at.text_input(key="ds_add_path").set_value(str(tiny_dataset))
    at.button(key="ds_add_btn").click().run()
    _ok(at)
    assert not at.error
    assert workspace.get_dataset("tiny").num_images == 15
    assert any("Added" in s.value for s in at.success)
    assert at.selectbox(key="ds_selected").value == "tiny"  # the new dataset is selected
    assert at.query_params["dataset"] == "tiny"
    assert sorted(at.dataframe[0].value["name"]) == ["demo", "tiny"]
    assert at.text_input(key="ds_add_name").value == ""  # the form is ready for the next one


def test_add_outside_the_data_roots_is_refused(workspace):
    at = _page()
    at.text_input(key="ds_add_name").set_value("etc")
    at.text_input(key="ds_add_path").set_value("/etc")
    at.button(key="ds_add_btn").click().run()
    _ok(at)
    assert "outside the allowed data roots" in _error_text(at)
    assert not workspace.has_dataset("etc")


@pytest.mark.parametrize("how", ["dots", "symlink"])
def test_a_path_that_leaves_the_data_roots_by_dots_or_a_symlink_is_refused(workspace, tmp_path, make_image_tree,
                                                                            how):
    outside = make_image_tree(tmp_path / "outside", {"cat": 3, "dog": 3})
    if how == "dots":
        path = f"{workspace.root}/../outside"
    else:
        (workspace.root / "photos").symlink_to(outside)
        path = str(workspace.root / "photos")
    at = _page()
    at.text_input(key="ds_add_name").set_value("sneaky")
    at.text_input(key="ds_add_path").set_value(path)
    at.button(key="ds_add_btn").click().run()
    _ok(at)
    errors = _error_text(at)
    assert "outside the allowed data roots" in errors and f"resolves to {outside}" in errors
    assert "allow-root" in errors  # the way out
    assert not workspace.has_dataset("sneaky")
    inside = make_image_tree(workspace.root / "mine", {"cat": 3, "dog": 3})  # the page keeps working
    at.text_input(key="ds_add_path").set_value(str(inside))
    at.button(key="ds_add_btn").click().run()
    _ok(at)
    assert not at.error and workspace.get_dataset("sneaky").num_images == 6


@pytest.mark.parametrize("bad", ["", "../up", "has space", "-dash"])
def test_add_with_a_bad_name_is_refused(workspace, tiny_dataset, bad):
    at = _page()
    at.text_input(key="ds_add_name").set_value(bad)
    at.text_input(key="ds_add_path").set_value(str(tiny_dataset))
    at.button(key="ds_add_btn").click().run()
    _ok(at)
    assert "Invalid dataset name" in _error_text(at)
    assert [r.name for r in workspace.list_datasets()] == ["demo"]


def test_add_a_duplicate_name_is_refused(workspace, tiny_dataset):
    at = _page()
    at.text_input(key="ds_add_name").set_value("demo")
    at.text_input(key="ds_add_path").set_value(str(tiny_dataset))
    at.button(key="ds_add_btn").click().run()
    _ok(at)
    assert "already registered" in _error_text(at)


def test_upload_a_zip(workspace, tmp_path, make_image_tree):
    folder = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    at = _page()
    at.file_uploader(key="ds_zip_file").set_value(("pets.zip", _zip_of(folder), "application/zip"))
    at.run()
    at.button(key="ds_zip_btn").click().run()  # no name given: taken from the file name
    _ok(at)
    assert not at.error
    rec = workspace.get_dataset("pets")
    assert (rec.source, rec.num_images, rec.num_classes) == ("upload", 6, 2)
    assert Path(rec.path) == workspace.data_dir / "pets"
    assert at.selectbox(key="ds_selected").value == "pets"


def _upload_zip(at: AppTest, filename: str, payload: bytes, name: str = "") -> AppTest:
    at.file_uploader(key="ds_zip_file").set_value((filename, payload, "application/zip"))
    at.text_input(key="ds_zip_name").set_value(name)
    at.run()
    return at.button(key="ds_zip_btn").click().run()


def test_upload_something_that_is_not_a_zip(workspace, tmp_path, make_image_tree):
    at = _upload_zip(_page(), "bad.zip", b"not a zip at all", "bad")
    _ok(at)
    assert "not a valid zip file" in _error_text(at) and "Upload a .zip archive of a folder" in _error_text(at)
    assert not workspace.has_dataset("bad")
    assert not (workspace.data_dir / "bad").exists()
    # The page keeps working: the next upload goes through.
    _upload_zip(at, "pets.zip", _zip_of(make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})))
    _ok(at)
    assert not at.error and workspace.get_dataset("pets").num_images == 6


def test_upload_a_zip_with_damaged_and_non_image_files(workspace, tmp_path, make_image_tree):
    folder = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    (folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 then nothing a JPEG needs")
    (folder / "dog" / "notes.txt").write_text("bought in May")
    at = _upload_zip(_page(), "pets.zip", _zip_of(folder))
    _ok(at)
    assert not at.error
    rec = workspace.get_dataset("pets")
    assert (rec.num_images, rec.num_classes) == (6, 2)  # the good images are in
    assert "6 images in 2 classes, 2 problems" in " ".join(s.value for s in at.success).replace("\\", "")
    warning = " ".join(w.value for w in at.warning)
    assert "1 file(s) it cannot use" in warning and "Problems tab" in warning and "upload it again" in warning
    problems = next(df.value for df in at.dataframe if "message" in df.value.columns)
    assert {"cat/broken.jpg", "dog"} <= set(problems["relpath"])
    at.button(key="ds_rescan_btn").click().run()  # the page keeps working
    _ok(at)
    assert "Rescanned pets" in " ".join(s.value for s in at.success).replace("\\", "")


@pytest.mark.parametrize("evil", ["../evil.jpg", "pets/../../evil.jpg", "ABSOLUTE"])
def test_upload_a_zip_whose_entries_escape_the_target(workspace, tmp_path, make_image_tree, evil):
    folder = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    if evil == "ABSOLUTE":
        evil = str(tmp_path / "abs" / "evil.jpg")
    buf = io.BytesIO(_zip_of(folder))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(evil, b"\xff\xd8 not really a photo")
    at = _upload_zip(_page(), "pets.zip", buf.getvalue())
    _ok(at)
    errors = _error_text(at)
    assert "would be written outside the target folder" in errors and evil in errors
    assert "Re-create the archive" in errors  # what to do
    assert not workspace.has_dataset("pets")
    assert list(workspace.data_dir.iterdir()) == []
    assert not [p for p in tmp_path.rglob("*") if p.name == "evil.jpg"]  # nothing written, inside or out
    _upload_zip(at, "pets.zip", _zip_of(folder))  # the page keeps working
    _ok(at)
    assert not at.error and workspace.get_dataset("pets").num_images == 6


@pytest.mark.skipif(find_fashion_mnist() is None, reason="Fashion-MNIST (dataset-fashion-mnist) is not installed")
def test_import_fashion_mnist(workspace):
    at = _page()
    at.text_input(key="ds_fm_name").set_value("fm")
    at.number_input(key="ds_fm_train").set_value(3)
    at.number_input(key="ds_fm_test").set_value(1)
    at.button(key="ds_fm_btn").click().run()
    _ok(at)
    assert not at.error
    rec = workspace.get_dataset("fm")
    assert (rec.source, rec.layout, rec.num_images, rec.num_classes) == ("idx", "presplit", 40, 10)
    assert any("pre-split" in i.value for i in at.info)  # the split tab explains who decides


# --------------------------------------------------------- rescan / remove
def test_rescan_reports_files_read_and_reused(workspace, tiny_dataset, make_image_tree):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    make_image_tree(tiny_dataset, {"owl": 2}, seed=5)
    at.button(key="ds_rescan_btn").click().run()
    _ok(at)
    msg = " ".join(s.value for s in at.success).replace("\\", "")
    assert "2 files read" in msg and "15 unchanged" in msg
    assert workspace.get_dataset("tiny").num_classes == 4
    assert {m.label: m.value for m in at.metric}["Classes"] == "4"  # the page shows the new scan


def test_remove_needs_confirmation(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    assert at.button(key="ds_rm_btn").disabled
    at.checkbox(key="ds_rm_confirm::tiny").check().run()
    assert not at.button(key="ds_rm_btn").disabled
    at.button(key="ds_rm_btn").click().run()
    _ok(at)
    assert not workspace.has_dataset("tiny")
    assert tiny_dataset.is_dir()  # a folder the user owns is never deleted
    assert not (workspace.root / "datasets" / "tiny").exists()
    assert at.selectbox(key="ds_selected").value == "demo"
    assert any("Removed" in s.value for s in at.success)


def test_remove_an_upload_with_its_files(workspace, tmp_path, make_image_tree):
    folder = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    add_zip_dataset(workspace, "pets", io.BytesIO(_zip_of(folder)))
    at = _page(dataset="pets")
    at.checkbox(key="ds_rm_confirm::pets").check()
    at.checkbox(key="ds_rm_files::pets").check()
    at.run()
    at.button(key="ds_rm_btn").click().run()
    _ok(at)
    assert not workspace.has_dataset("pets")
    assert not (workspace.data_dir / "pets").exists()


def test_no_delete_files_option_for_user_folders(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    assert "ds_rm_files::tiny" not in [c.key for c in at.checkbox]
