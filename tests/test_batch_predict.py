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
    with pytest.raises(UnsafeArchiveError, match="outside the target folder"):
        open_zip(evil)
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
