"""Batch prediction (tlcore.batch_predict) and test-time augmentation (tlcore.tta), on hand-made models."""

from __future__ import annotations

import io
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from tests.helpers.handmodel import channel_model, loaded, mirror_sensitive_model, zip_tree
from tests.helpers.imagegen import image_bytes, write_bytes
from tests.helpers.runs import TINY_CLASSES, write_tinted_tree
from tlcore.batch_predict import open_files, open_folder, open_zip, predict_batch, summary_line
from tlcore.errors import DatasetError, NotFoundError, PathNotAllowedError, UnsafeArchiveError
from tlcore.predict import predict_arrays
from tlcore.tta import flip_average, mirror


@pytest.fixture(scope="module")
def model():
    return loaded(channel_model(3, 8), TINY_CLASSES)


@pytest.fixture
def tree(workspace):
    """<workspace>/batch: bird, cat, dog (4 each) tinted by class; 2 dogs filed under cat (wrong folder);
    a note that is not an image; a damaged .png; an image outside any class folder."""
    root = write_tinted_tree(workspace.root / "batch", per_class=4)
    for i in (0, 1):
        shutil.move(root / "dog" / f"dog_{i:03d}.png", root / "cat" / f"moved_dog_{i:03d}.png")
    (root / "notes.txt").write_text("not an image")
    write_bytes(root / "bird" / "broken.png", b"\x89PNG\r\n\x1a\n this is not really a png")
    write_bytes(root / "loose.png", image_bytes((20, 20), seed=5))
    return root


def test_a_folder_of_class_folders_gives_true_labels_and_accuracy(model, tree, workspace):
    calls = []
    with open_folder(tree, ws=workspace) as src:
        assert src.skipped == 1 and len(src) == 14
        result = predict_batch(model, src, top_k=2, chunk_size=5, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 14), (5, 14), (10, 14), (14, 14)]  # before the first chunk and after each one
    rows = {r.file: r for r in result.rows}
    assert [r.file for r in result.rows] == sorted(rows)
    assert rows["bird/broken.png"].error and rows["bird/broken.png"].predictions == ()
    assert rows["bird/broken.png"].correct is None
    assert rows["loose.png"].true_label is None and rows["loose.png"].correct is None
    assert rows["cat/moved_dog_000.png"].predictions[0].label == "dog" and rows["cat/moved_dog_000.png"].correct is False
    assert rows["dog/dog_002.png"].correct is True and len(rows["dog/dog_002.png"].predictions) == 2
    # 12 labelled and classified images (the broken one and the loose one aside); the 2 moved dogs wrong.
    assert len(result.labelled) == 12 and result.accuracy == pytest.approx(10 / 12)
    table = result.table()
    assert list(table.columns) == ["file", "label_1", "confidence_1", "label_2", "confidence_2", "true_label",
                                   "correct", "error"]
    assert table["correct"].sum() == 10 and table["error"].notna().sum() == 1
    csv = pd.read_csv(io.BytesIO(result.to_csv()))
    assert len(csv) == 14 and csv.loc[csv["file"] == "cat/moved_dog_001.png", "correct"].item() == False  # noqa: E712
    assert "14 images" in summary_line(result) and "1 could not be read" in summary_line(result)
    assert "accuracy 83.3 % on 12 labelled images" in summary_line(result)


def test_without_class_folders_there_is_no_truth_column(model, workspace):
    root = workspace.root / "flat"
    for i in range(3):
        write_bytes(root / f"{i}.png", image_bytes((12, 12), seed=i))
    with open_folder(root, ws=workspace) as src:
        result = predict_batch(model, src)
    assert not result.has_truth and result.accuracy is None
    assert "correct" not in result.table().columns and "accuracy" not in summary_line(result)


def test_a_zip_is_read_in_memory_like_the_folder(model, tree, workspace, tmp_path):
    archive = zip_tree(tree, tmp_path / "photos.zip", top="photos")  # one top folder: unwrapped
    with open_folder(tree, ws=workspace) as src:
        expected = predict_batch(model, src)
    with open_zip(archive.read_bytes(), name="photos.zip") as src:
        assert src.description == "zip photos.zip"
        got = predict_batch(model, src, workers=1)
    assert [(r.file, r.true_label, r.correct) for r in got.rows] == [
        (r.file, r.true_label, r.correct) for r in expected.rows]
    assert got.accuracy == expected.accuracy
    assert not list(tmp_path.glob("photos/*"))  # nothing extracted


def test_a_zip_without_images(tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("data/table.csv", "a,b")
    with pytest.raises(DatasetError, match=r"holds no images \(2 other files\)"):
        open_zip(archive)
    with pytest.raises(DatasetError, match="not a valid zip"):
        open_zip(b"plain bytes, no archive")


def test_zip_slip_is_refused_and_links_are_skipped_unread(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("cat/ok.png", image_bytes(seed=1))
        zf.writestr("../../outside.png", image_bytes(seed=2))
    with pytest.raises(UnsafeArchiveError) as info:
        open_zip(evil)
    # In a reader's words: "would be written outside the target folder" told of an extraction that never happens.
    assert "leaves the archive's folder" in info.value.message and "extracts nothing" in info.value.message
    assert info.value.received == "'../../outside.png'" and "zip -r photos.zip photos" in info.value.fix
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        zf.writestr("cat/ok.png", image_bytes(seed=1))
        info = zipfile.ZipInfo("cat/link.png")
        info.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(info, "/etc/passwd")
    with open_zip(link) as src:
        assert [i.name for i in src.items] == ["ok.png"] and src.skipped == 1


def test_a_folder_outside_the_data_roots_is_refused(model, workspace, tmp_path):
    outside = write_tinted_tree(tmp_path / "elsewhere", per_class=1)
    with pytest.raises(PathNotAllowedError) as exc:
        open_folder(outside, ws=workspace)
    text = str(exc.value)
    assert "outside the allowed data roots" in text and str(workspace.root) in text and "allow-root" in text
    with open_folder(outside) as src:  # the command line passes no workspace: no check
        assert len(src) == 3
    with pytest.raises(NotFoundError, match="No folder there"):
        open_folder(workspace.root / "missing", ws=workspace)
    (workspace.root / "afile.txt").write_text("hello")
    with pytest.raises(NotFoundError, match="That is a file, not a folder"):
        open_folder(workspace.root / "afile.txt", ws=workspace)
    (workspace.root / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        open_folder(workspace.root / "empty", ws=workspace)


def test_a_link_out_of_the_data_roots_is_not_read(model, workspace, tmp_path):
    secret = write_bytes(tmp_path / "secret.png", image_bytes(seed=9))
    root = write_tinted_tree(workspace.root / "linked", per_class=1)
    (root / "cat" / "sneaky.png").symlink_to(secret)
    with open_folder(root, ws=workspace) as src:
        assert "cat/sneaky.png" not in [i.name for i in src.items] and src.skipped == 1


def test_missing_files_are_rows_with_an_error(model, tmp_path):
    good = write_bytes(tmp_path / "a.png", image_bytes(seed=3))
    with open_files([good, tmp_path / "gone.png"]) as src:
        result = predict_batch(model, src, top_k=1)
    assert result.rows[0].error is None and result.rows[1].error
    assert len(result.failed) == 1


def test_flip_average_is_the_mean_of_the_image_and_its_mirror():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    assert np.array_equal(mirror(x)[:, :, 0], x[:, :, 2])

    def predict(a):
        return a[:, 0, :, 0]  # the first row's red values: changes under a mirror
    expected = (predict(x) + predict(x[:, :, ::-1])) / 2
    assert np.allclose(flip_average(predict, x), expected)
    with pytest.raises(ValueError, match="N×H×W×C"):
        mirror(x[0])


def test_tta_on_a_tiny_model(tmp_path):
    m = loaded(mirror_sensitive_model(2, 4), ["left", "right"])
    x = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3)).astype(np.uint8)
    plain, flipped = predict_arrays(m, x), predict_arrays(m, x[:, :, ::-1])
    assert not np.allclose(plain, flipped)  # the model does see the difference
    assert np.allclose(flip_average(lambda a: predict_arrays(m, a), x), (plain + flipped) / 2, atol=1e-6)
    for i, arr in enumerate(x):  # through predict_batch: the same averaged probabilities
        from PIL import Image

        Image.fromarray(arr).save(tmp_path / f"{i}.png")
    with open_folder(tmp_path) as src:
        result = predict_batch(m, src, top_k=2, tta=True)
    assert result.tta
    for row, want in zip(result.rows, (plain + flipped) / 2):
        assert row.predictions[0].probability == pytest.approx(float(want.max()), abs=1e-5)


def test_bad_arguments(model, tree):
    with open_folder(tree) as src:
        with pytest.raises(Exception, match="top_k"):
            predict_batch(model, src, top_k=4)
        with pytest.raises(Exception, match="chunk_size"):
            predict_batch(model, src, chunk_size=0)


# ------------------------------------------------- true labels at any depth (the scanner's class folders)
NESTED_CLASSES = ["bird", "猫 cat", "  spaced  name "]  # channel k wins for class k (channel_model)


def _tinted(path, channel: int, seed: int):
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 156, size=(12, 10, 3), dtype=np.uint8)
    arr[..., channel] += 100
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def nested_tree(workspace):
    """<workspace>/nested: '猫 cat' with 2 images at its top, 2 in sub/ and 2 in sub/deeper/ (18 → 6 + 12 before
    the fix); '  spaced  name ' (2, one level down); 'spaced  name' (the same name stripped: no class, 3);
    'owl' (no class, 4, below owl/x/); bird (1)."""
    root = workspace.root / "nested"
    seed = 0
    for rel, channel, n in [("猫 cat", 1, 2), ("猫 cat/sub", 1, 2), ("猫 cat/sub/deeper", 1, 2),
                            ("  spaced  name /x", 2, 2), ("spaced  name", 2, 3), ("owl/x", 0, 4), ("bird", 0, 1)]:
        for i in range(n):
            seed += 1
            _tinted(root / rel / f"img_{i}.png", channel, seed)
    return root


def _labels(result):
    return {r.file: r.true_label for r in result.rows}


def test_images_at_any_depth_under_a_class_folder_take_its_class(model, nested_tree, workspace):
    m = loaded(channel_model(3, 8), NESTED_CLASSES)
    with open_folder(nested_tree, ws=workspace) as src:
        result = predict_batch(m, src, top_k=1)
    labels = _labels(result)
    assert len(labels) == 16
    assert labels["猫 cat/sub/deeper/img_1.png"] == "猫 cat" and labels["猫 cat/img_0.png"] == "猫 cat"
    assert sum(v == "猫 cat" for v in labels.values()) == 6
    assert labels["  spaced  name /x/img_0.png"] == "  spaced  name "  # compared exactly, spaces and all
    assert labels["spaced  name/img_0.png"] is None and labels["owl/x/img_3.png"] is None
    assert len(result.labelled) == 9 and result.accuracy == 1.0
    assert result.unmatched == {"owl": 4, "spaced  name": 3}
    assert result.accuracy_basis == "on 9 of 16 images"
    line = summary_line(result)
    assert "accuracy 100.0 % on 9 labelled images of the 16" in line
    assert "7 images are in folders that name no class of the model ('owl' (4), 'spaced  name' (3))" in line
    # The same tree zipped, wrapped in one top folder (unwrapped) or not: the same labels.
    for top in ("wrapper", None):
        archive = zip_tree(nested_tree, workspace.root / f"nested-{top}.zip", top=top)
        with open_zip(archive) as src:
            got = predict_batch(m, src, top_k=1, workers=1)
        assert _labels(got) == labels and got.unmatched == result.unmatched


def test_a_split_folder_or_one_class_folder_given_still_labels_its_images(model, workspace):
    m = loaded(channel_model(3, 8), NESTED_CLASSES)
    root = workspace.root / "presplit"
    _tinted(root / "test" / "猫 cat" / "a.png", 1, 1)
    _tinted(root / "Test" / "猫 cat" / "sub" / "b.png", 1, 2)
    _tinted(root / "test" / "owl" / "c.png", 0, 3)
    _tinted(root / "test" / "d.png", 0, 4)  # directly in the split folder: no class folder
    with open_folder(root) as src:
        result = predict_batch(m, src, top_k=1)
    assert _labels(result) == {"Test/猫 cat/sub/b.png": "猫 cat", "test/d.png": None, "test/owl/c.png": None,
                               "test/猫 cat/a.png": "猫 cat"}
    assert result.unmatched == {"test": 1, "test/owl": 1}
    # One class's folder given itself: every image under it is of that class (its sub-folders name none).
    with open_folder(root / "test" / "猫 cat") as src:
        assert _labels(predict_batch(m, src, top_k=1)) == {"a.png": "猫 cat"}
    with open_folder(root / "Test" / "猫 cat") as src:
        inner = predict_batch(m, src, top_k=1)
    assert _labels(inner) == {"sub/b.png": "猫 cat"} and inner.unmatched == {}
    archive = zip_tree(root / "Test" / "猫 cat", workspace.root / "one.zip", top="猫 cat")
    with open_zip(archive) as src:  # the zip's single top folder, unwrapped, is the class
        assert _labels(predict_batch(m, src, top_k=1, workers=1)) == {"sub/b.png": "猫 cat"}
    # Only a folder that names no class given: no label, no accuracy.
    with open_folder(root / "test" / "owl") as src:
        none = predict_batch(m, src, top_k=1)
    assert none.accuracy is None and none.unmatched == {} and none.accuracy_basis == ""


def test_a_class_folder_written_in_decomposed_unicode_names_the_class(workspace):
    """macOS (and its zips) writes "é" as e + a combining accent; the model's class has one character.
    The folder named no class of the model, though the two names look alike."""
    import unicodedata

    composed, decomposed = "T shirt é", unicodedata.normalize("NFD", "T shirt é")
    assert composed != decomposed
    m = loaded(channel_model(2, 8), [composed, "bag"])
    write_bytes(workspace.root / "batch" / decomposed / "a.png", image_bytes((20, 20), seed=1))
    with open_folder(workspace.root / "batch", ws=workspace) as src:
        result = predict_batch(m, src)
    [row] = result.rows
    assert row.true_label == composed and result.unmatched == {}  # the model's own spelling
