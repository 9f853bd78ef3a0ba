"""The Datasets page (pages/1_Datasets.py), run headlessly with AppTest.

The page is opened the way a user reaches it: the app's main script, then
``switch_page``. Uploads go through AppTest's own ``file_uploader`` support.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import expander_path, is_open, open_tab, shown_text, tab_path
from tlcore.datasets import (
    add_dataset,
    add_overrides,
    add_zip_dataset,
    find_fashion_mnist,
    load_index,
    overrides_path,
)
from tlui import datasets_widgets as dw

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
    assert "dataset" not in at.query_params  # the default is not written: one history entry per visit
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
    at.selectbox(key="ds_selected").set_value("demo").run()
    assert at.query_params["dataset"] == "demo"  # back to the default: the URL says so, not tiny


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
    # said, as the other pages do (it fell back in silence)
    assert [w.value.replace("\\", "") for w in at.warning] == [
        "There is no dataset named no-such-dataset in this workspace; showing demo."]


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


def _copy_groups(at: AppTest) -> list:
    """The Problems tab's groups of identical images: one image list each, captioned "path · class"."""
    return [img for img in at.get("image") if " · class " in img.proto.imgs[0].caption.replace("\\", "")]


def test_problems_tab_shows_identical_images_side_by_side_and_what_to_do(workspace, tiny_dataset):
    shutil.copy(tiny_dataset / "cat" / "cat_001.png", tiny_dataset / "dog" / "clash.png")  # in cat and in dog
    shutil.copy(tiny_dataset / "cat" / "cat_000.png", tiny_dataset / "cat" / "copy.png")
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    _ok(at)
    # What to do is beside each file, before the long message, and summed up per kind.
    table = next(df for df in at.dataframe if "message" in df.value.columns)
    order = list(table.proto.column_order)
    assert order.index("relpath") < order.index("fix") < order.index("message"), order
    counts = next(df.value for df in at.dataframe if "count" in df.value.columns).set_index("kind")
    assert "Decide which class" in counts.loc["conflicting_labels", "fix"]
    # A group per content, label conflicts first: the copies side by side (thumbnails letter-boxed
    # by tlui.data.thumb), each captioned with its path and class, under what to do about them.
    groups = _copy_groups(at)
    assert [[i.caption.replace("\\", "") for i in g.proto.imgs] for g in groups] == [
        ["cat/cat_001.png · class cat", "dog/clash.png · class dog"],
        ["cat/cat_000.png · class cat", "cat/copy.png · class cat"],
    ]
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "Decide which class the image belongs to" in text and "Delete the extra copies" in text
    # The filters choose the groups too.
    at.multiselect(key="ds_prob_kind::tiny").set_value(["conflicting_labels"]).run()
    _ok(at)
    assert len(_copy_groups(at)) == 1


def test_many_identical_groups_are_shown_a_page_at_a_time(workspace, tiny_dataset):
    for src in sorted((tiny_dataset / "cat").glob("*.png")) + sorted((tiny_dataset / "bird").glob("*.png")):
        shutil.copy(src, tiny_dataset / "dog" / f"copy-{src.name}")  # 10 label conflicts
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    _ok(at)
    assert len(_copy_groups(at)) == dw.GROUPS_PER_PAGE < 10
    at.number_input(key="ds_copies_page::tiny").set_value(2).run()
    _ok(at)
    assert len(_copy_groups(at)) == 10 - dw.GROUPS_PER_PAGE


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


def test_the_split_preview_counts_what_training_will_see_after_decisions(workspace, tiny_dataset):
    """Excluded and relabelled images (the override manifest) move the split table, as they move
    training; a corrupt manifest is an error box, not a traceback."""
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    _ok(at)

    def totals():
        table = next(df.value for df in at.dataframe if "train" in df.value.columns)
        return {cls: int(table.loc[cls, "total"]) for cls in table.index}

    before = totals()
    index = load_index(workspace, "tiny")
    cats = sorted(index.loc[index["label"] == "cat", "relpath"])
    add_overrides(workspace, "tiny", cats[:2], "exclude")
    add_overrides(workspace, "tiny", cats[2:3], "relabel", label="dog")
    at.run()
    _ok(at)
    after = totals()
    assert after["cat"] == before["cat"] - 3
    assert after["dog"] == before["dog"] + 1
    assert after["all classes"] == before["all classes"] - 2

    overrides_path(workspace, "tiny").write_text("{not json\n")
    at.run()
    _ok(at)
    assert "Line 1 of the override manifest" in _error_text(at)


def test_an_out_of_range_split_field_says_so_and_nothing_is_saved(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    at.number_input(key="ds_split_val::tiny").set_value(0.95).run()
    _ok(at)
    assert "Validation fraction must be between 0 and 0.9 (it is 0.95)." in _error_text(at)
    assert "out of range" in shown_text(at.caption)
    assert not [b for b in at.button if b.key == "ds_split_save"]
    assert not (workspace.root / "datasets" / "tiny" / "split.yaml").exists()


def test_split_fractions_that_leave_nothing_to_train_on(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    at.number_input(key="ds_split_val::tiny").set_value(0.6)
    at.number_input(key="ds_split_test::tiny").set_value(0.5)
    at.run()
    _ok(at)
    assert ("Validation fraction + test fraction is 1.10: it must stay below 1, so that some images are left "
            "to train on.") in _error_text(at)
    assert "val_fraction" not in _error_text(at)  # the fields' labels, not the spec's names


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
    assert not is_open(at, "Add a dataset")  # and closed: the new dataset is below


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


def test_upload_a_zip_with_a_link_and_an_empty_class_reports_both_on_the_problems_tab(workspace, tmp_path,
                                                                                      make_image_tree):
    buf = io.BytesIO(_zip_of(make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(zipfile.ZipInfo("pets/owl/"), b"")
        link = zipfile.ZipInfo("pets/cat/link.jpg")
        link.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(link, b"/etc/passwd")
    at = _upload_zip(_page(), "pets.zip", buf.getvalue())
    _ok(at)
    assert not at.error and workspace.get_dataset("pets").num_images == 6  # skipped, not refused
    assert "1 entry of the zip file was not extracted" in " ".join(w.value for w in at.warning).replace("\\", "")
    problems = next(df.value for df in at.dataframe if "message" in df.value.columns)
    rows = set(zip(problems["kind"], problems["relpath"]))
    assert {("archive_skipped", "cat/link.jpg"), ("empty_class", "owl")} <= rows


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
    at.number_input(key="ds_fm_test").set_value(5000)  # out of range: refused, never the previous value
    at.button(key="ds_fm_btn").click().run()
    assert "Nothing was imported. Fix the fields first: Test images per class must be between 0 and 1,000 " \
           "(it is 5,000)." in _error_text(at)
    assert "fm" not in [d.name for d in workspace.list_datasets()]
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


# --------------------------------------------------------- keeping the place
def test_a_banner_moves_nothing_after_it_and_shows_once(workspace):
    """The browser tells unkeyed elements apart by their place: a banner that comes and goes
    must not move the tabs or the expanders after it (they would close, or go back to Overview)."""
    at = _page()
    labels = ("Overview", "Split")
    tabs = {label: tab_path(at, label) for label in labels}
    remove = expander_path(at, "Remove this dataset")
    assert None not in tabs.values() and remove is not None
    at.button(key="ds_rescan_btn").click().run()
    _ok(at)
    assert "Rescanned demo" in shown_text(at.success)
    assert {label: tab_path(at, label) for label in labels} == tabs
    assert expander_path(at, "Remove this dataset") == remove
    at.run()  # the next interaction
    assert "Rescanned" not in shown_text(at.success)  # a banner shows once
    assert {label: tab_path(at, label) for label in labels} == tabs
    assert expander_path(at, "Remove this dataset") == remove


def test_the_open_tab_and_the_remove_expander_stay_as_left(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _page(dataset="tiny")
    assert open_tab(at, "Split") == "Overview" and not is_open(at, "Remove this dataset")
    at.session_state["ds_tab"] = 3  # what opening the Split tab and the expander leave (tlui.place)
    at.session_state["ds_rm_open"] = True
    at.run()
    problems = next(t.label for t in at.tabs if t.label.startswith("Problems"))
    # A rescan that finds a problem: a banner, and the Problems tab's label changes.
    (tiny_dataset / "cat" / "broken.png").write_bytes(b"not an image")
    at.button(key="ds_rescan_btn").click().run()
    _ok(at)
    assert "Rescanned tiny" in shown_text(at.success)
    assert next(t.label for t in at.tabs if t.label.startswith("Problems")) != problems
    assert open_tab(at, "Split") == "Split" and is_open(at, "Remove this dataset")
    at.number_input(key="ds_split_val::tiny").set_value(0.3).run()  # the next interaction
    assert open_tab(at, "Split") == "Split" and is_open(at, "Remove this dataset")
    at.checkbox(key="ds_rm_confirm::tiny").check().run()
    assert is_open(at, "Remove this dataset") and not at.button(key="ds_rm_btn").disabled
    at.button(key="ds_rm_btn").click().run()
    _ok(at)
    assert not is_open(at, "Remove this dataset")  # closed once the dataset is gone
    assert open_tab(at, "Split") == "Split"  # the tab stays for the dataset selected now


def test_the_remove_section_names_the_decisions_it_deletes(workspace, tiny_dataset):
    """The CLI's remove says what goes with a dataset; the page's Remove said only "the index, problem
    report and split settings", and the user's relabels and exclusions went without a word."""
    from tlcore.datasets import add_overrides, load_index

    name = "tiny"
    add_dataset(workspace, name, tiny_dataset)
    rel = load_index(workspace, name)["relpath"].iloc[0]
    add_overrides(workspace, name, [rel], "exclude")
    at = _page(name)
    _ok(at)
    text = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "deletes its 1 keep/relabel/exclude decision" in text and "--overwrite" in text, text
