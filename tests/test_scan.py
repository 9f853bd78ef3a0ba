"""Scanning folder-per-class trees: layouts, every problem kind, symlinks, rescans."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from tests.helpers.imagegen import (
    corrupt_file,
    make_exif_jpeg,
    make_image,
    make_png_bomb,
    make_tree,
    truncate_file,
    write_bytes,
)
from tlcore.datasets import _scan
from tlcore.datasets._archive import SKIPPED_NOTE
from tlcore.datasets._scan import INDEX_COLUMNS, PROBLEM_COLUMNS, PROBLEM_KINDS, ScanOptions, scan_dataset
from tlcore.errors import ConfigError, PathNotAllowedError


def scan(root, **kwargs):
    with warnings.catch_warnings():  # Pillow warns about the bombs some tests plant
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return scan_dataset(root, **kwargs)


def problems_of(result, kind: str) -> pd.DataFrame:
    return result.problems[result.problems["kind"] == kind]


def row(result, relpath: str) -> pd.Series:
    rows = result.index[result.index["relpath"] == relpath]
    assert len(rows) == 1, f"{relpath} not indexed: {result.index['relpath'].tolist()}"
    return rows.iloc[0]


def kinds_of(result, relpath: str) -> set[str]:
    return set(result.problems.loc[result.problems["relpath"] == relpath, "kind"])


# ------------------------------------------------------------------ basics
def test_class_folders_index_and_columns(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 4})
    result = scan(tmp_path)
    assert result.usable and result.reason is None
    assert result.layout == "class_folders"
    assert result.classes == ["cat", "dog"]
    assert result.root == tmp_path
    assert tuple(result.index.columns) == INDEX_COLUMNS
    assert tuple(result.problems.columns) == PROBLEM_COLUMNS
    assert len(result.problems) == 0
    idx = result.index
    assert len(idx) == 7 and idx["usable"].all()
    assert idx["relpath"].tolist() == sorted(idx["relpath"])
    r = row(result, "cat/0.png")
    assert r[["label", "split", "width", "height", "mode", "format"]].tolist() == ["cat", "", 32, 32, "RGB", "PNG"]
    assert r["bytes"] == (tmp_path / "cat/0.png").stat().st_size
    assert r["mtime_ns"] == (tmp_path / "cat/0.png").stat().st_mtime_ns
    assert len(r["sha1"]) == 40 and r["issues"] == ""
    st = result.stats
    assert (st["files_seen"], st["files_read"], st["files_reused"]) == (7, 7, 0)
    assert isinstance(st["seconds"], float)


def test_index_round_trips_through_parquet(tmp_path):
    make_tree(tmp_path / "d", {"a": 3, "b": 3})
    write_bytes(tmp_path / "d/a/bad.jpg", b"")
    result = scan(tmp_path / "d")
    result.index.to_parquet(tmp_path / "i.parquet")
    result.problems.to_parquet(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "i.parquet")
    assert back["usable"].dtype == bool and back["width"].dtype == np.int64
    assert back["relpath"].tolist() == result.index["relpath"].tolist()


def test_scan_options_validated():
    with pytest.raises(ConfigError, match="max_aspect"):
        ScanOptions(max_aspect=0.5)
    with pytest.raises(ConfigError, match="workers"):
        ScanOptions(workers=0)
    with pytest.raises(ConfigError, match="min_side"):
        ScanOptions(min_side=-1)


def test_every_problem_kind_has_a_severity():
    assert set(PROBLEM_KINDS.values()) == {"error", "warning"}


# ------------------------------------------------------------ per-file errors
def test_unreadable_file_simulated(tmp_path, monkeypatch):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    denied = str(tmp_path / "cat" / "1.png")
    real_read = _scan._read_file

    def read(path: str) -> bytes:
        if path == denied:
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    monkeypatch.setattr(_scan, "_read_file", read)
    result = scan(tmp_path)
    r = row(result, "cat/1.png")
    assert not r["usable"] and r["sha1"] == "" and r["issues"] == "unreadable"
    p = problems_of(result, "unreadable").iloc[0]
    assert p["severity"] == "error" and "cat/1.png" in p["message"] and "Permission denied" in p["message"]
    assert "readable" in p["fix"]


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not stop root; "
                    "test_unreadable_file_simulated covers this case")
def test_unreadable_file_chmod(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    target = tmp_path / "cat" / "1.png"
    target.chmod(0)
    try:
        result = scan(tmp_path)
    finally:
        target.chmod(0o644)
    assert kinds_of(result, "cat/1.png") == {"unreadable"}


def test_unreadable_file_is_retried_on_rescan(tmp_path, monkeypatch):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    real_read = _scan._read_file
    monkeypatch.setattr(_scan, "_read_file", lambda p: (_ for _ in ()).throw(PermissionError(13, "denied"))
                        if p.endswith("cat/1.png") else real_read(p))
    first = scan(tmp_path)
    monkeypatch.setattr(_scan, "_read_file", real_read)  # permissions fixed: size and mtime unchanged
    second = scan(tmp_path, previous=first.index)
    assert second.stats["files_read"] == 1
    assert row(second, "cat/1.png")["usable"]


def test_empty_file(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    write_bytes(tmp_path / "cat" / "zero.jpg", b"")
    result = scan(tmp_path)
    assert kinds_of(result, "cat/zero.jpg") == {"empty_file"}
    assert not row(result, "cat/zero.jpg")["usable"]
    assert problems_of(result, "empty_file").iloc[0]["severity"] == "error"


def test_not_an_image(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    write_bytes(tmp_path / "cat" / "note.jpg", b"this is text, not a JPEG\n")
    result = scan(tmp_path)
    assert kinds_of(result, "cat/note.jpg") == {"not_an_image"}
    assert "text" in problems_of(result, "not_an_image").iloc[0]["message"]


def test_corrupt(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    corrupt_file(make_image(tmp_path / "cat" / "c.png", size=(64, 64), seed=5))
    result = scan(tmp_path)
    assert kinds_of(result, "cat/c.png") == {"corrupt"}
    assert row(result, "cat/c.png")["width"] == 64  # the header was still readable


@pytest.mark.parametrize(
    ("name", "keep"),
    [("t.jpg", 0.6), ("end.jpg", -2), ("t.png", 0.6), ("noiend.png", -12)],
    ids=["jpeg-half", "jpeg-no-FFD9", "png-half", "png-no-IEND"],
)
def test_truncated(tmp_path, name, keep):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    truncate_file(make_image(tmp_path / "cat" / name, size=(64, 64), seed=9), keep)
    result = scan(tmp_path)
    assert kinds_of(result, f"cat/{name}") == {"truncated"}
    assert not row(result, f"cat/{name}")["usable"]


def test_decompression_bomb_refused_from_header(tmp_path, monkeypatch):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    make_png_bomb(tmp_path / "cat" / "huge.png", 100_000, 100_000)
    make_png_bomb(tmp_path / "cat" / "big.png", 10_000, 10_000)
    decoded_sizes = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        decoded_sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    t0 = time.perf_counter()
    result = scan(tmp_path, options=ScanOptions(workers=1))
    assert time.perf_counter() - t0 < 5
    assert all(w * h <= 89_478_485 for w, h in decoded_sizes)  # the bombs were never decoded
    assert kinds_of(result, "cat/huge.png") == {"decompression_bomb"}
    assert kinds_of(result, "cat/big.png") == {"decompression_bomb"}
    big = row(result, "cat/big.png")
    assert (big["width"], big["height"], big["usable"]) == (10_000, 10_000, False)
    assert "10000x10000" in problems_of(result, "decompression_bomb").set_index("relpath").loc["cat/big.png", "message"]


def test_large_bomb_is_refused_before_being_read_whole(tmp_path, monkeypatch):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    bomb = make_png_bomb(tmp_path / "cat" / "huge.png", 50_000, 50_000)
    with open(bomb, "ab") as fh:
        fh.write(b"\x00" * 4096)  # bulk, as a real bomb would have
    monkeypatch.setattr(_scan, "_HEADER_FIRST_BYTES", 1024)  # "large" = over 1 KiB here
    real_read = _scan._read_file
    monkeypatch.setattr(_scan, "_read_file", lambda p: real_read(p) if not p.endswith("huge.png") else 1 / 0)
    result = scan(tmp_path)
    r = row(result, "cat/huge.png")
    assert r["issues"] == "decompression_bomb" and len(r["sha1"]) == 40
    assert all(row(result, f"cat/{i}.png")["usable"] for i in range(3))  # small files read as usual


# ------------------------------------------------------------ per-file warnings
def test_tiny_image_but_not_fashion_mnist_size(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3}, size=(28, 28))
    make_image(tmp_path / "cat" / "icon.png", size=(8, 12), seed=77)
    result = scan(tmp_path)
    assert kinds_of(result, "cat/icon.png") == {"tiny_image"}
    tiny = problems_of(result, "tiny_image")
    assert len(tiny) == 1 and tiny.iloc[0]["severity"] == "warning"
    assert row(result, "cat/icon.png")["usable"] and row(result, "cat/icon.png")["issues"] == "tiny_image"


def test_extreme_aspect(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    make_image(tmp_path / "cat" / "banner.png", size=(300, 40), seed=1)  # 7.5:1
    make_image(tmp_path / "cat" / "tall.png", size=(20, 120), seed=2)  # 1:6
    make_image(tmp_path / "cat" / "ok.png", size=(100, 20), seed=3)  # exactly 5:1 is allowed
    result = scan(tmp_path)
    assert set(problems_of(result, "extreme_aspect")["relpath"]) == {"cat/banner.png", "cat/tall.png"}
    assert row(result, "cat/banner.png")["usable"]


def test_exif_rotated_size_is_as_displayed(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    make_exif_jpeg(tmp_path / "cat" / "phone.jpg", 6, size=(40, 20))
    r = row(scan(tmp_path), "cat/phone.jpg")
    assert (r["width"], r["height"]) == (20, 40)


# ------------------------------------------------------------ several files
def test_duplicate_within_a_class(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    shutil.copy(tmp_path / "cat" / "0.png", tmp_path / "cat" / "copy.png")
    result = scan(tmp_path)
    dups = problems_of(result, "duplicate")
    assert set(dups["relpath"]) == {"cat/0.png", "cat/copy.png"}
    assert "cat/copy.png" in dups.set_index("relpath").loc["cat/0.png", "message"]
    assert (dups["severity"] == "warning").all()
    assert row(result, "cat/copy.png")["usable"] and "duplicate" in row(result, "cat/copy.png")["issues"]


def test_conflicting_labels_across_classes(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    shutil.copy(tmp_path / "cat" / "0.png", tmp_path / "dog" / "stray.png")
    result = scan(tmp_path)
    conf = problems_of(result, "conflicting_labels").set_index("relpath")
    assert set(conf.index) == {"cat/0.png", "dog/stray.png"}
    assert "'dog'" in conf.loc["cat/0.png", "message"] and "dog/stray.png" in conf.loc["cat/0.png", "message"]
    assert "'cat'" in conf.loc["dog/stray.png", "message"]
    assert "move" in conf.loc["cat/0.png", "fix"]
    assert (conf["severity"] == "warning").all()
    assert len(problems_of(result, "duplicate")) == 0
    assert row(result, "dog/stray.png")["usable"]


def test_empty_class_and_class_too_small(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 2})
    (tmp_path / "bird").mkdir()
    write_bytes(tmp_path / "fish" / "broken.jpg", b"")
    result = scan(tmp_path)
    empty = problems_of(result, "empty_class").set_index("relpath")
    assert set(empty.index) == {"bird", "fish"}
    assert "no image files" in empty.loc["bird", "message"]
    assert "cannot be used" in empty.loc["fish", "message"]
    small = problems_of(result, "class_too_small")
    assert small["relpath"].tolist() == ["dog"] and "2 usable images" in small.iloc[0]["message"]
    assert result.classes == ["cat", "dog"]  # classes without usable images are left out
    assert result.usable
    assert len(problems_of(scan(tmp_path, options=ScanOptions(min_class_size=2)), "class_too_small")) == 0


def test_nested_folders_belong_to_their_class(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    make_image(tmp_path / "cat" / "2019" / "a.png", seed=101)
    make_image(tmp_path / "cat" / "2019" / "deeper" / "b.png", seed=102)
    result = scan(tmp_path)
    assert row(result, "cat/2019/deeper/b.png")["label"] == "cat"
    nested = problems_of(result, "nested_folder")
    assert len(nested) == 1 and nested.iloc[0]["relpath"] == "cat"
    assert nested.iloc[0]["message"].startswith("2 images in sub-folders of cat")
    assert nested.iloc[0]["severity"] == "warning"


def test_root_files_are_skipped_and_reported(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    make_image(tmp_path / "stray.jpg", seed=1)
    write_bytes(tmp_path / "README.md", b"# my data")
    result = scan(tmp_path)
    assert "stray.jpg" not in set(result.index["relpath"])
    roots = problems_of(result, "root_file")
    assert roots["relpath"].tolist() == ["stray.jpg"] and roots.iloc[0]["severity"] == "warning"
    assert len(result.problems) == 1  # README.md at the root is normal


def test_non_image_files_aggregated_and_system_files_ignored(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    for name in ("notes.txt", "labels.csv", "sub/more.txt"):
        write_bytes(tmp_path / "cat" / name, b"x")
    for name in (".DS_Store", "Thumbs.db", "desktop.ini", ".hidden.jpg", "._0.png"):
        write_bytes(tmp_path / "cat" / name, b"junk")
    write_bytes(tmp_path / "dog" / "__MACOSX" / "._x.jpg", b"junk")
    make_image(tmp_path / ".git" / "obj.png")  # a hidden folder at the root is not a class
    make_image(tmp_path / "__MACOSX" / "cat" / "0.png")
    result = scan(tmp_path)
    non = problems_of(result, "non_image_file")
    assert len(non) == 1 and non.iloc[0]["relpath"] == "cat"
    assert non.iloc[0]["message"].startswith("3 files in cat")
    assert len(result.problems) == 1
    assert result.classes == ["cat", "dog"] and len(result.index) == 6


def test_folder_named_like_an_image_and_odd_names(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    make_image(tmp_path / "cat" / "album.jpg" / "inside.png", seed=50)
    make_image(tmp_path / "dog" / "PHOTO ONE.JPG", seed=51, fmt="JPEG")
    make_image(tmp_path / "chat été" / "été 1.png", seed=52)
    make_image(tmp_path / "chat été" / "猫.PNG", seed=53, fmt="PNG")
    make_image(tmp_path / "chat été" / "x.Jpeg", seed=54, fmt="JPEG")
    result = scan(tmp_path)
    assert row(result, "cat/album.jpg/inside.png")["label"] == "cat"
    assert row(result, "dog/PHOTO ONE.JPG")["usable"]
    assert row(result, "chat été/猫.PNG")["label"] == "chat été"
    assert result.classes == ["cat", "chat été", "dog"]
    assert len(problems_of(result, "class_too_small")) == 0


def test_fifo_with_image_name_does_not_hang(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    os.mkfifo(tmp_path / "cat" / "pipe.jpg")
    result = scan(tmp_path)
    assert "cat/pipe.jpg" not in set(result.index["relpath"])
    assert len(problems_of(result, "non_image_file")) == 1


# ------------------------------------------------------------------ symlinks
def test_symlink_loop_finishes(tmp_path):
    data = make_tree(tmp_path / "data", {"cat": 3, "dog": 3})
    os.symlink(data / "cat", data / "cat" / "again")  # a folder linking to itself
    os.symlink(data, data / "dog" / "up")  # ... and to the dataset root
    os.symlink(data / "dog" / "self.jpg", data / "dog" / "self.jpg")  # a link to itself (ELOOP)
    t0 = time.perf_counter()
    result = scan(data, allowed_roots=[tmp_path])
    assert time.perf_counter() - t0 < 10
    loops = problems_of(result, "symlink_loop")
    assert set(loops["relpath"]) == {"cat/again", "dog/up", "dog/self.jpg"}
    assert (loops["severity"] == "warning").all()
    assert len(result.index) == 6


def test_symlink_escaping_allowed_roots_is_skipped(tmp_path):
    outside = make_tree(tmp_path / "outside", {"secret": 2})
    data = make_tree(tmp_path / "data", {"cat": 3, "dog": 3})
    os.symlink(outside / "secret" / "0.png", data / "cat" / "leak.png")
    os.symlink(outside / "secret", data / "dog" / "leakdir")
    os.symlink(outside / "secret", data / "secret")
    make_image(tmp_path / "data2" / "x.png", seed=9)
    os.symlink(tmp_path / "data2" / "x.png", data / "cat" / "allowed.png")

    result = scan(data, allowed_roots=[data, tmp_path / "data2"])
    esc = problems_of(result, "symlink_escape")
    assert set(esc["relpath"]) == {"cat/leak.png", "dog/leakdir", "secret"}
    assert (esc["severity"] == "error").all()
    assert not any("leak" in r or r.startswith("secret") for r in result.index["relpath"])
    assert row(result, "cat/allowed.png")["usable"]
    assert result.classes == ["cat", "dog"]

    free = scan(data)  # without allowed_roots nothing is confined
    assert "cat/leak.png" in set(free.index["relpath"]) and "secret" in free.classes


def test_root_outside_allowed_roots_is_refused(tmp_path):
    make_tree(tmp_path / "data", {"cat": 3, "dog": 3})
    with pytest.raises(PathNotAllowedError):
        scan(tmp_path / "data", allowed_roots=[tmp_path / "elsewhere"])


def test_dangling_symlink_is_unreadable(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    os.symlink(tmp_path / "gone.png", tmp_path / "cat" / "dangling.png")
    result = scan(tmp_path)
    assert kinds_of(result, "cat/dangling.png") == {"unreadable"}
    assert "does not exist" in problems_of(result, "unreadable").iloc[0]["message"]


def test_follow_symlinks_off(tmp_path):
    data = make_tree(tmp_path / "data", {"cat": 3, "dog": 3})
    make_image(tmp_path / "x.png", seed=3)
    os.symlink(tmp_path / "x.png", data / "cat" / "link.png")
    result = scan(data, options=ScanOptions(follow_symlinks=False))
    assert "cat/link.png" not in set(result.index["relpath"])
    assert result.stats["symlinks_skipped"] == 1


# ------------------------------------------------------------------ layouts
def test_presplit_layout(tmp_path):
    make_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    make_tree(tmp_path / "Validation", {"cat": 1, "dog": 1})
    make_tree(tmp_path / "test", {"cat": 1, "bird": 1})
    make_image(tmp_path / "train" / "loose.png", seed=4)
    result = scan(tmp_path)
    assert result.layout == "presplit"
    assert result.classes == ["bird", "cat", "dog"]
    assert row(result, "Validation/cat/0.png")["split"] == "val"
    assert row(result, "train/dog/2.png")[["label", "split"]].tolist() == ["dog", "train"]
    assert set(result.index["split"]) == {"train", "val", "test"}
    assert problems_of(result, "root_file")["relpath"].tolist() == ["train/loose.png"]
    assert problems_of(result, "class_too_small")["message"].str.contains("'bird'").all()


def test_presplit_duplicate_across_splits_is_flagged_as_leak(tmp_path):
    make_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    make_tree(tmp_path / "valid", {"cat": 1, "dog": 1})
    shutil.copy(tmp_path / "train" / "cat" / "0.png", tmp_path / "valid" / "cat" / "same.png")
    result = scan(tmp_path)
    dup = problems_of(result, "duplicate").set_index("relpath")
    assert "leaks between splits" in dup.loc["valid/cat/same.png", "message"]


def test_nested_folder_in_presplit(tmp_path):
    make_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    make_tree(tmp_path / "test", {"cat": 1, "dog": 1})
    make_image(tmp_path / "train" / "cat" / "sub" / "n.png", seed=8)
    nested = problems_of(scan(tmp_path), "nested_folder")
    assert nested["relpath"].tolist() == ["train/cat"]


def test_not_presplit_when_other_folders_present(tmp_path):
    make_tree(tmp_path, {"train": 3, "cats": 3})
    result = scan(tmp_path)
    assert result.layout == "class_folders" and result.classes == ["cats", "train"]


def test_only_train_is_not_presplit(tmp_path):
    make_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    result = scan(tmp_path)
    assert result.layout == "class_folders"
    assert not result.usable and "only one class" in result.reason
    assert "scan that folder" in result.reason


# ------------------------------------------------------------------ unusable
def test_unusable_missing_path_and_file(tmp_path):
    missing = scan(tmp_path / "nope")
    assert not missing.usable and "does not exist" in missing.reason
    assert len(missing.index) == 0 and tuple(missing.index.columns) == INDEX_COLUMNS
    f = make_image(tmp_path / "a.png")
    assert "not a folder" in scan(f).reason


def test_unusable_no_class_folders(tmp_path):
    for i in range(3):
        make_image(tmp_path / f"{i}.jpg", seed=i)
    result = scan(tmp_path)
    assert not result.usable and "no class sub-folders (3 images lie directly in it)" in result.reason
    assert len(problems_of(result, "root_file")) == 3
    for i in (1, 2):
        (tmp_path / f"{i}.jpg").unlink()
    assert "(1 image lies directly in it)" in scan(tmp_path).reason


def test_many_root_files_are_summed_up(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    for i in range(25):
        write_bytes(tmp_path / f"loose_{i:02d}.jpg", b"never read")
    roots = problems_of(scan(tmp_path), "root_file")
    assert len(roots) == 21
    summary = roots[roots["relpath"] == ""]
    assert len(summary) == 1 and summary.iloc[0]["message"].startswith("5 more image files")


def test_unusable_empty_folder(tmp_path):
    result = scan(tmp_path)
    assert not result.usable and "no class sub-folders" in result.reason


def test_unusable_one_class(tmp_path):
    make_tree(tmp_path, {"cat": 5})
    result = scan(tmp_path)
    assert not result.usable and "only one class ('cat')" in result.reason
    assert result.classes == ["cat"]


def test_unusable_no_images(tmp_path):
    (tmp_path / "cat").mkdir()
    write_bytes(tmp_path / "dog" / "notes.txt", b"x")
    result = scan(tmp_path)
    assert not result.usable and "no image files" in result.reason
    write_bytes(tmp_path / "cat" / "z.jpg", b"")
    write_bytes(tmp_path / "dog" / "z.jpg", b"text")
    result = scan(tmp_path)
    assert not result.usable and "none of its 2 image files can be used" in result.reason


# ----------------------------------------------------------------- rescans
def test_rescan_reuses_unchanged_rows(tmp_path, monkeypatch):
    make_tree(tmp_path, {"cat": 4, "dog": 4})
    truncate_file(make_image(tmp_path / "cat" / "broken.jpg", seed=3, size=(64, 64)), 0.5)
    make_image(tmp_path / "dog" / "icon.png", size=(8, 8), seed=4)
    first = scan(tmp_path)
    previous = first.index.copy()
    previous.to_parquet(tmp_path.parent / "prev.parquet")
    previous = pd.read_parquet(tmp_path.parent / "prev.parquet")

    def no_read(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(_scan, "_read_file", no_read)
    again = scan(tmp_path, previous=previous)
    assert again.stats["files_read"] == 0 and again.stats["files_reused"] == len(first.index)
    pd.testing.assert_frame_equal(again.index, first.index)
    pd.testing.assert_frame_equal(again.problems, first.problems)
    assert kinds_of(again, "cat/broken.jpg") == {"truncated"}  # regenerated from the row

    # Thresholds may change between scans: size warnings follow the current options.
    relaxed = scan(tmp_path, previous=previous, options=ScanOptions(min_side=4))
    assert len(problems_of(relaxed, "tiny_image")) == 0
    assert row(relaxed, "dog/icon.png")["issues"] == ""


def test_rescan_reads_changed_and_new_files_and_drops_removed(tmp_path):
    make_tree(tmp_path, {"cat": 4, "dog": 4})
    first = scan(tmp_path)
    target = tmp_path / "cat" / "0.png"
    old_sha = row(first, "cat/0.png")["sha1"]
    make_image(target, size=(48, 40), seed=999)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    (tmp_path / "dog" / "3.png").unlink()
    make_image(tmp_path / "dog" / "new.png", seed=1000)

    progress = []
    second = scan(tmp_path, previous=first.index, progress=lambda d, t: progress.append((d, t)))
    assert second.stats["files_read"] == 2 and second.stats["files_reused"] == 6
    changed = row(second, "cat/0.png")
    assert changed["sha1"] != old_sha and (changed["width"], changed["height"]) == (48, 40)
    assert "dog/3.png" not in set(second.index["relpath"])
    assert row(second, "dog/new.png")["usable"]
    assert progress[0] == (6, 8) and progress[-1] == (8, 8)


def test_previous_without_issues_column_is_ignored(tmp_path):
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    old = scan(tmp_path).index.drop(columns=["issues"])
    assert scan(tmp_path, previous=old).stats["files_read"] == 6


# --------------------------------------------------------- workers, progress
def test_threads_and_serial_agree_and_progress_is_reported(tmp_path):
    make_tree(tmp_path, {"a": 30, "b": 30, "c": 30}, ext=".jpg")
    truncate_file(tmp_path / "a" / "3.jpg", 0.5)
    calls = []
    serial = scan(tmp_path, options=ScanOptions(workers=1))
    threaded = scan(tmp_path, options=ScanOptions(workers=4), progress=lambda d, t: calls.append((d, t)))
    pd.testing.assert_frame_equal(serial.index.drop(columns="mtime_ns"), threaded.index.drop(columns="mtime_ns"))
    pd.testing.assert_frame_equal(serial.problems, threaded.problems)
    assert threaded.stats["workers"] > 1
    assert calls[0] == (0, 90) and calls[-1] == (90, 90)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# ------------------------------------------------------------- all at once
def test_kitchen_sink_reports_every_kind(tmp_path, monkeypatch):
    """One messy dataset that triggers every problem kind the scan knows."""
    outside = make_tree(tmp_path / "outside", {"x": 1})
    data = make_tree(tmp_path / "data", {"cat": 4, "dog": 4, "fox": 2}, ext=".jpg")
    d = Path(data)
    write_bytes(d / "cat" / "denied.png", b"irrelevant")
    write_bytes(d / "cat" / "zero.png", b"")
    write_bytes(d / "cat" / "text.jpg", b"hello")
    corrupt_file(make_image(d / "cat" / "corrupt.png", size=(64, 64), seed=11))
    truncate_file(make_image(d / "cat" / "trunc.jpg", size=(64, 64), seed=12), 0.5)
    make_png_bomb(d / "cat" / "bomb.png")
    make_image(d / "dog" / "tiny.png", size=(6, 6), seed=13)
    make_image(d / "dog" / "wide.png", size=(200, 20), seed=14)
    shutil.copy(d / "cat" / "0.jpg", d / "cat" / "dup.jpg")
    shutil.copy(d / "dog" / "0.jpg", d / "cat" / "conflict.jpg")
    (d / "FOX").mkdir()  # an empty class folder, and one that looks like fox
    make_image(d / "dog" / "nested" / "n.png", seed=15)
    make_image(d / "loose.png", seed=16)
    os.symlink(outside / "x" / "0.png", d / "cat" / "escape.png")
    os.symlink(d / "dog", d / "dog" / "loop")
    write_bytes(d / "fox" / "readme.txt", b"notes")
    skipped = {"entry": "data/fox/link.png", "relpath": "fox/link.png", "reason": "it is a symbolic link",
               "fix": "Put the file it points to in the archive."}
    write_bytes(d / SKIPPED_NOTE, json.dumps({"skipped": [skipped]}).encode())  # what a zip extraction left out

    real_read = _scan._read_file
    monkeypatch.setattr(
        _scan, "_read_file",
        lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied")) if p.endswith("denied.png")
        else real_read(p),
    )
    result = scan(d, allowed_roots=[d])
    assert set(result.problems["kind"]) == set(PROBLEM_KINDS)
    for kind, severity in PROBLEM_KINDS.items():
        assert (problems_of(result, kind)["severity"] == severity).all(), kind
    errors = result.problems[result.problems["severity"] == "error"]
    assert result.problems.index[: len(errors)].tolist() == errors.index.tolist()  # errors come first
    assert result.usable and result.classes == ["cat", "dog", "fox"]
    assert all(p["message"] and p["fix"] for p in result.problems.to_dict("records"))


def _bytes_name(folder: Path, name: bytes) -> bytes:
    """``folder``/``name`` as bytes, for names that are not UTF-8 (skips where the file system refuses them)."""
    path = os.fsencode(folder) + b"/" + name
    try:
        os.mkdir(path + b".probe")
        os.rmdir(path + b".probe")
    except OSError as exc:  # pragma: no cover - e.g. APFS
        pytest.skip(f"this file system refuses names that are not UTF-8: {exc}")
    return path


def test_names_that_are_not_utf8_are_problems_not_a_crash(tmp_path):
    # Such a name (Latin-1 from an old program or archive) made the index's parquet conversion raise.
    make_tree(tmp_path, {"cat": 3, "dog": 3})
    shutil.copy(tmp_path / "cat" / "0.png", _bytes_name(tmp_path / "cat", b"\xff.png"))
    os.mkdir(_bytes_name(tmp_path, b"d\xe9j\xe0"))
    shutil.copy(tmp_path / "dog" / "0.png", _bytes_name(tmp_path, b"d\xe9j\xe0/x.png"))
    write_bytes(os.fsdecode(_bytes_name(tmp_path / "cat", b"n\xf6tes.txt")), b"a note")
    result = scan(tmp_path)
    assert result.usable and result.classes == ["cat", "dog"]
    assert sorted(result.index["relpath"]) == ["cat/0.png", "cat/1.png", "cat/2.png", "dog/0.png", "dog/1.png",
                                               "dog/2.png"]
    bad = problems_of(result, "unreadable").set_index("relpath")
    assert sorted(bad.index) == ["cat/\\xff.png", "d\\xe9j\\xe0"]
    assert (bad["severity"] == "error").all()
    assert "cat/\\xff.png has a name that is not valid UTF-8 text" in bad.loc["cat/\\xff.png", "message"]
    assert "it is excluded" in bad.loc["cat/\\xff.png", "message"] and "Rename it" in bad.loc["cat/\\xff.png", "fix"]
    assert "skipped with everything in it" in bad.loc["d\\xe9j\\xe0", "message"]
    [note] = problems_of(result, "non_image_file")["message"]
    assert "n\\xf6tes.txt" in note  # a file never opened keeps its place in the report, its name shown
    result.index.to_parquet(tmp_path / "i.parquet")  # what failed before
    result.problems.to_parquet(tmp_path / "p.parquet")
    assert os.path.exists(_bytes_name(tmp_path / "cat", b"\xff.png"))  # nothing renamed or removed


def test_class_names_that_only_look_different_are_one_warning(tmp_path, make_image_tree):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    root = make_image_tree(tmp_path / "data", {nfc: 3, nfd: 3, "Dog": 3, "dog": 3, "bird": 3})
    result = scan_dataset(root)
    warned = result.problems[result.problems["kind"] == "look_alike_classes"]
    assert len(warned) == 2 and set(warned["severity"]) == {"warning"}
    messages = " ".join(warned["message"])
    assert repr(nfc) in messages and repr(nfd) in messages and "'Dog', 'dog'" in messages
    assert "bird" not in messages
    assert len(result.classes) == 5  # said, not merged: the user decides
