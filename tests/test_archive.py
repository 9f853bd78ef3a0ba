import io
import stat
import zipfile

import pytest

from tlcore.datasets import extract_zip
from tlcore.errors import DatasetError, UnsafeArchiveError


def make_zip(entries, *, symlink=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink[1])
    buf.seek(0)
    return buf


def test_extracts_and_unwraps_single_top_folder(tmp_path):
    z = make_zip({"pets/cat/a.png": b"x", "pets/dog/b.png": b"y", "__MACOSX/._junk": b"z", "pets/.DS_Store": b""})
    out = extract_zip(z, tmp_path / "out")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["cat/a.png", "dog/b.png"]


@pytest.mark.parametrize("evil", ["../evil.png", "/abs/evil.png", "cat/../../evil.png", "C:/evil.png", "..\\evil.png"])
def test_escaping_entries_are_refused_and_nothing_is_left(tmp_path, evil):
    z = make_zip({"cat/a.png": b"x", evil: b"bad"})
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        extract_zip(z, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_symlinks_are_refused(tmp_path):
    z = make_zip({"cat/a.png": b"x"}, symlink=("cat/link.png", "/etc/passwd"))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_limits(tmp_path):
    z = make_zip({f"c/{i}.png": b"x" for i in range(20)})
    with pytest.raises(UnsafeArchiveError, match="too many entries"):
        extract_zip(z, tmp_path / "a", max_files=10)
    z = make_zip({"c/a.png": b"x" * 5000, "d/b.png": b"y" * 5000})
    with pytest.raises(UnsafeArchiveError, match="limit"):
        extract_zip(z, tmp_path / "b", max_bytes=6000)
    bomb = make_zip({"c/zeros.png": b"\0" * (8 << 20), "d/x.png": b"1"})
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        extract_zip(bomb, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_lying_header_is_caught_while_extracting(tmp_path, monkeypatch):
    z = make_zip({"c/a.png": b"x" * 10_000, "d/b.png": b"y"})
    real = zipfile.ZipFile.infolist

    def lying(self):
        infos = real(self)
        for i in infos:
            i.file_size = 1
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying)
    with pytest.raises((UnsafeArchiveError, DatasetError)):
        extract_zip(z, tmp_path / "out", max_bytes=5000)
    assert list(tmp_path.iterdir()) == []


def test_not_a_zip_and_empty_zip(tmp_path):
    with pytest.raises(DatasetError, match="not a valid zip"):
        extract_zip(io.BytesIO(b"this is not a zip"), tmp_path / "a")
    with pytest.raises(DatasetError, match="holds no files"):
        extract_zip(make_zip({}), tmp_path / "b")


def test_target_must_not_exist(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        extract_zip(make_zip({"c/a": b"x"}), tmp_path / "out")
