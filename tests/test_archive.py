import io
import stat
import zipfile

import pytest

from tests.helpers.zips import zip_with_a_link_and_an_empty_class
from tlcore.datasets import _archive, add_zip_dataset, extract_zip, load_problems, problems_advice, rescan_dataset
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


def odd_zip(files, *, special=(), folders=(), encrypted=()):
    """A zip of ``files`` (name -> bytes), plus ``special`` entries ((name, unix mode)), bare folder
    entries, and ``encrypted`` entries (flagged so in the central directory, as readers see them)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in folders:
            zf.writestr(zipfile.ZipInfo(name), b"")
        for name, data in files.items():
            zf.writestr(name, data)
        for name, mode in special:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, b"/etc/passwd")
        for name in encrypted:
            zf.writestr(name, b"ciphertext")
    raw = bytearray(buf.getvalue())
    for name in encrypted:  # zipfile cannot write encrypted entries: set the flag bit by hand
        header = raw.rindex(name.encode()) - 46  # the central directory's entry for it
        assert raw[header:header + 4] == b"PK\x01\x02"
        raw[header + 8] |= 0x1
    return io.BytesIO(bytes(raw))


def _files(folder):
    """The files extracted into ``folder`` (hidden ones, such as the skipped-entries note, left out)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                  and not p.name.startswith("."))


LINK, FIFO, DEVICE = stat.S_IFLNK | 0o777, stat.S_IFIFO | 0o644, stat.S_IFCHR | 0o600


def test_links_and_special_files_are_skipped_and_noted_not_refused(tmp_path):
    z = odd_zip({"pets/cat/a.png": b"x", "pets/dog/b.png": b"y"},
                special=[("pets/cat/link.png", LINK), ("pets/dog/pipe.png", FIFO), ("pets/dog/tty.png", DEVICE)],
                encrypted=["pets/cat/secret.png"])
    out = extract_zip(z, tmp_path / "out")
    assert _files(out) == ["cat/a.png", "dog/b.png"]  # unwrapped as before; nothing else written
    skipped = {s.relpath: s for s in _archive.read_skipped_note(out)}
    assert set(skipped) == {"cat/link.png", "dog/pipe.png", "dog/tty.png", "cat/secret.png"}
    assert "symbolic link" in skipped["cat/link.png"].reason
    assert "not a regular file" in skipped["dog/pipe.png"].reason
    assert "encrypted" in skipped["cat/secret.png"].reason
    assert skipped["cat/link.png"].entry == "pets/cat/link.png" and skipped["cat/link.png"].fix


def test_absurd_names_and_a_file_where_a_folder_is_are_skipped(tmp_path):
    long = "x" * 300 + ".png"
    out = extract_zip(odd_zip({"cat/a.png": b"x", f"cat/{long}": b"y", "dog/b\x01.png": b"z", "dog/c.png": b"w",
                               "cat": b"a file named like the folder", "o\x02wl/d.png": b"v"},
                              folders=["o\x02wl/"]), tmp_path / "out")
    assert _files(out) == ["cat/a.png", "dog/c.png"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["cat", "dog"]
    skipped = {s.relpath: s.reason for s in _archive.read_skipped_note(out)}
    assert set(skipped) == {f"cat/{long}", "dog/b\x01.png", "cat", "o\x02wl/d.png"}
    assert "could not be written" in skipped["cat"]


def test_an_escaping_entry_still_refuses_the_archive_with_skippable_ones(tmp_path):
    z = odd_zip({"cat/a.png": b"x", "../evil.png": b"bad"}, special=[("cat/link.png", LINK)])
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        extract_zip(z, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_nothing_but_skipped_entries_is_refused_saying_why(tmp_path):
    with pytest.raises(DatasetError, match="symbolic link"):
        extract_zip(odd_zip({}, special=[("cat/link.png", LINK)]), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_empty_class_folders_are_kept(tmp_path):
    z = odd_zip({"pets/cat/a.png": b"x", "pets/dog/b.png": b"y", "pets/fish/.DS_Store": b""},
                folders=["pets/", "pets/cat/", "pets/dog/", "pets/owl/", "__MACOSX/", ".git/"])
    out = extract_zip(z, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cat", "dog", "fish", "owl"]
    assert _files(out) == ["cat/a.png", "dog/b.png"]
    assert _archive.read_skipped_note(out) == []


def test_an_upload_reports_skipped_entries_and_empty_classes_like_a_folder_scan(workspace, tmp_path, make_image_tree):
    pets = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    buf = zip_with_a_link_and_an_empty_class(pets)
    result = add_zip_dataset(workspace, "pets", buf)
    assert result.classes == ["cat", "dog"]
    rows = {(p.kind, p.relpath): p for p in result.problems.itertuples()}
    assert ("empty_class", "owl") in rows
    link = rows[("archive_skipped", "cat/link.png")]
    assert link.severity == "warning" and "symbolic link" in link.message and link.fix
    assert "not extracted" in problems_advice(result, "upload")
    # Stored like any scan's problems (the page's Problems tab, the CLI), and kept by a rescan.
    stored = load_problems(workspace, "pets")
    assert {("archive_skipped", "cat/link.png"), ("empty_class", "owl")} <= set(zip(stored["kind"], stored["relpath"]))
    assert workspace.get_dataset("pets").num_problems == len(stored)
    again = rescan_dataset(workspace, "pets")
    assert ("archive_skipped", "cat/link.png") in set(zip(again.problems["kind"], again.problems["relpath"]))
    # Putting the missing file in place answers it.
    (workspace.data_dir / "pets" / "cat" / "link.png").write_bytes((pets / "dog" / "dog_000.png").read_bytes())
    fixed = rescan_dataset(workspace, "pets")
    assert "archive_skipped" not in set(fixed.problems["kind"])


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


def test_a_repeated_path_keeps_the_first_entry_and_reports_the_second(workspace, tmp_path, make_image_tree):
    pets = make_image_tree(tmp_path / "pets", {"cat": 3, "dog": 3})
    first = (pets / "cat" / "cat_000.png").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(pets.rglob("*.png")):
            zf.write(f, f.relative_to(pets.parent).as_posix())
        with pytest.warns(UserWarning, match="Duplicate name"):  # what an appending zip tool leaves
            zf.writestr("pets/cat/cat_000.png", (pets / "dog" / "dog_000.png").read_bytes())
    buf.seek(0)
    result = add_zip_dataset(workspace, "pets", buf)
    # The first entry stays: a later one of the same path never overwrites a file silently.
    assert (workspace.data_dir / "pets" / "cat" / "cat_000.png").read_bytes() == first
    rows = {(p.kind, p.relpath): p for p in result.problems.itertuples()}
    twice = rows[("archive_skipped", "cat/cat_000.png")]
    assert "twice" in twice.message and "kept" in twice.message and "rename" in twice.fix
    again = rescan_dataset(workspace, "pets")  # still said by a rescan, although the path exists
    assert ("archive_skipped", "cat/cat_000.png") in set(zip(again.problems["kind"], again.problems["relpath"]))


@pytest.mark.parametrize("named", [True, False])
def test_an_unusable_upload_names_the_zip_not_its_extraction_folder(workspace, named):
    """A zip of loose images: the message is about the zip the user gave, and nothing is left behind."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photo.png", b"\x89PNG not really")
    buf.seek(0)
    if named:
        buf.name = "/home/me/holiday.zip"  # as the page's UploadedFile carries its name
    with pytest.raises(DatasetError) as exc:
        add_zip_dataset(workspace, "flat", buf)
    text = str(exc.value)
    assert text.startswith("This zip file cannot be used as a dataset: it has no class sub-folders (1 image lies "
                           "directly in it)")
    assert ("Received: holiday.zip." if named else "Received: the uploaded zip file.") in text
    assert "inside the zip" in text and str(workspace.data_dir) not in text
    assert not workspace.has_dataset("flat") and not (workspace.data_dir / "flat").exists()
