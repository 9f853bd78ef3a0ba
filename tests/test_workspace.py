import os
import threading

import pytest

from tlcore._fsutil import atomic_write_json, atomic_write_text, read_json
from tlcore.config import SplitSpec
from tlcore.errors import ConfigError, NotFoundError, PathNotAllowedError, WorkspaceError
from tlcore.workspace import DEMO_DATA_DIR, DatasetRecord, Workspace, default_root, validate_name


def test_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TLCORE_HOME", raising=False)
    assert default_root() == tmp_path / "workspace"
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "home"))
    assert Workspace().root == (tmp_path / "home").resolve()
    assert Workspace(tmp_path / "explicit").root == (tmp_path / "explicit").resolve()


def test_workspace_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace(f)


def test_registry_survives_restart(tmp_path):
    ws = Workspace(tmp_path)
    ws.put_dataset(DatasetRecord(name="pets", path=str(tmp_path / "pets"), num_images=3))
    again = Workspace(tmp_path)
    assert [r.name for r in again.list_datasets()] == ["pets"]
    assert again.get_dataset("pets").num_images == 3
    again.remove_dataset("pets")
    assert Workspace(tmp_path).list_datasets() == []


def test_missing_dataset_names_known_ones(tmp_path):
    ws = Workspace(tmp_path)
    ws.put_dataset(DatasetRecord(name="a", path="/x"))
    with pytest.raises(NotFoundError, match="Registered datasets: a"):
        ws.get_dataset("zzz")


def test_put_without_overwrite_refuses_duplicates(tmp_path):
    ws = Workspace(tmp_path)
    ws.put_dataset(DatasetRecord(name="a", path="/x"))
    with pytest.raises(ConfigError, match="already registered"):
        ws.put_dataset(DatasetRecord(name="a", path="/y"), overwrite=False)


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "-x", "x" * 65, "a b", "ä"])
def test_invalid_names(bad):
    with pytest.raises(ConfigError, match="Invalid"):
        validate_name(bad)


def test_concurrent_registry_writers_lose_nothing(tmp_path):
    ws = Workspace(tmp_path)

    def add(i):
        Workspace(tmp_path).put_dataset(DatasetRecord(name=f"d{i}", path=f"/p{i}"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ws.list_datasets()) == 16


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "registry.json"
    atomic_write_json(target, {"v": 1})

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(WorkspaceError, match="disk is full"):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]  # no temp files left


def test_unwritable_folder_gives_clear_error(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(WorkspaceError, match="not writable"):
        atomic_write_text(tmp_path / "x.txt", "hello")


def test_corrupt_registry_is_reported(tmp_path):
    ws = Workspace(tmp_path)
    (ws.datasets_dir / "registry.json").write_text("{not json")
    with pytest.raises(WorkspaceError, match="not valid JSON"):
        ws.list_datasets()


def test_data_roots_confine_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    ws = Workspace(tmp_path / "ws")
    inside = ws.data_dir / "pets"
    inside.mkdir(parents=True)
    assert ws.check_data_path(inside) == inside.resolve()
    assert ws.check_data_path(DEMO_DATA_DIR) == DEMO_DATA_DIR.resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for bad in [outside, "/etc", str(inside) + "/../../../elsewhere", ""]:
        with pytest.raises(PathNotAllowedError):
            ws.check_data_path(bad)
    # A symlink inside the workspace that points outside is refused too.
    link = ws.data_dir / "escape"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathNotAllowedError, match="outside the allowed data roots"):
        ws.check_data_path(link)
    # Allowing a root (workspace.yaml) or via the environment.
    ws.add_data_root(outside)
    assert ws.check_data_path(link) == outside.resolve()
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("TLCORE_DATA_ROOTS", str(other))
    assert ws.check_data_path(other) == other.resolve()


def test_prefix_sibling_is_not_inside_root(tmp_path):
    ws = Workspace(tmp_path / "ws")
    sibling = tmp_path / "ws-evil"
    sibling.mkdir()
    with pytest.raises(PathNotAllowedError):
        ws.check_data_path(sibling)


def test_bad_settings_file(tmp_path):
    ws = Workspace(tmp_path)
    ws.settings_path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        _ = ws.data_roots


def test_split_spec_round_trip_and_validation():
    spec = SplitSpec(val_fraction=0.2, test_fraction=0.1, seed=3)
    assert SplitSpec.from_yaml(spec.to_yaml()) == spec
    assert SplitSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="val_fraction"):
        SplitSpec(val_fraction=1.5)
    with pytest.raises(ConfigError, match="leave something"):
        SplitSpec(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="Unknown SplitSpec field"):
        SplitSpec.from_dict({"val": 0.1})
    with pytest.raises(ConfigError, match="seed"):
        SplitSpec(seed="x")


def test_atomic_directory_never_replaces_a_folder_made_meanwhile(tmp_path):
    """Two exports to one name at once: the second to finish must not swap out the first's folder."""
    from tlcore._fsutil import atomic_directory

    target = tmp_path / "export"
    with pytest.raises(WorkspaceError, match="created by someone else"):
        with atomic_directory(target) as tmp:
            (tmp / "mine.txt").write_text("mine")
            target.mkdir()  # another process got there first
            (target / "theirs.txt").write_text("theirs")
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no partial folder left
    with atomic_directory(target, replace=True) as tmp:  # asked for: replaced
        (tmp / "mine.txt").write_text("mine")
    assert [p.name for p in target.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("content", ['null', '[]', '{"Datasets": {}}', '{"datasets": {"fm": null}}',
                                     '{"datasets": {"x": {"name": "x"}}}'])
def test_a_registry_of_the_wrong_shape_is_an_error_and_left_alone(tmp_path, content):
    # Read as empty, it was rewritten with the demo alone by the next listing: every registration lost.
    from tlcore.datasets import ensure_demo

    ws = Workspace(tmp_path / "ws")
    reg = ws.root / "datasets" / "registry.json"
    reg.parent.mkdir(parents=True)
    reg.write_text(content)
    for call in (ws.list_datasets, lambda: ensure_demo(ws)):  # what a listing does
        with pytest.raises(WorkspaceError, match="registry cannot be read"):
            call()
    assert reg.read_text() == content


def test_a_settings_file_that_is_not_utf8_is_an_error_naming_it_and_left_alone(tmp_path):
    from tlcore.datasets import ensure_demo

    ws = Workspace(tmp_path / "ws")
    ws.settings_path.parent.mkdir(parents=True)
    content = "data_roots: [/données]\n".encode("latin-1")  # saved by an editor in another encoding
    ws.settings_path.write_bytes(content)
    for call in (lambda: ws.data_roots, lambda: ws.add_data_root(tmp_path), lambda: ensure_demo(ws, force=True)):
        with pytest.raises(WorkspaceError, match=r"workspace.yaml is not UTF-8 text \(byte 0xe9 at offset 18\)") as e:
            call()
        assert e.value.received == str(ws.settings_path) and "delete it" in e.value.fix
    assert ws.settings_path.read_bytes() == content


@pytest.mark.parametrize(("text", "shown"), [
    ("data_roots: 5\n", "holds 5"),
    ("data_roots: true\n", "holds True"),
    ("data_roots: {photos: /data}\n", "holds {'photos': '/data'}"),
    ("data_roots: [/data, 7]\n", "holds 7 as entry 2"),
    ("data_roots: [/data, null]\n", "holds None as entry 2"),
    ("data_roots: ['']\n", "holds '' as entry 1"),  # read as the current folder, it would have allowed it
])
def test_data_roots_that_are_not_a_list_of_folders_are_an_error_and_left_alone(tmp_path, text, shown):
    ws = Workspace(tmp_path / "ws")
    ws.settings_path.parent.mkdir(parents=True)
    ws.settings_path.write_text(text)
    for call in (lambda: ws.data_roots, lambda: ws.check_data_path(ws.root), lambda: ws.add_data_root(tmp_path)):
        with pytest.raises(ConfigError, match="data_roots must be a list of folders") as e:
            call()
        assert str(ws.settings_path) in str(e.value.received) and shown in str(e.value.received)
    assert ws.settings_path.read_text() == text  # allow-root did not rewrite it


def test_one_data_root_given_as_text_is_kept_when_another_is_added(tmp_path, monkeypatch):
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    ws = Workspace(tmp_path / "ws")
    ws.save_settings({"data_roots": str(first)})
    assert first.resolve() in ws.data_roots
    ws.add_data_root(second)  # it was split into one root per character
    assert ws.settings()["data_roots"] == [str(first), str(second.resolve())]


def test_a_workspace_below_a_file_is_refused_at_once(tmp_path):
    f = tmp_path / "somefile"
    f.write_text("x")
    for root in (f / "ws", f / "a" / "b" / "ws"):
        with pytest.raises(WorkspaceError, match="cannot be a folder") as e:
            Workspace(root)
        assert f"{f} above it is a file" in e.value.message and e.value.received == str(root)
    assert f.read_text() == "x"


@pytest.mark.parametrize("value", ["5", "'no'", "[true]"])
def test_demo_removed_that_is_not_true_or_false_is_an_error_until_restore_demo(workspace, value):
    from tlcore.datasets import ensure_demo

    workspace.settings_path.write_text(f"demo_removed: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="demo_removed must be true or false") as e:
        ensure_demo(workspace)  # 'no' read as true kept the demo away for good, without a word
    assert str(workspace.settings_path) in str(e.value.received)
    assert workspace.settings_path.read_text(encoding="utf-8") == f"demo_removed: {value}\n"
    assert ensure_demo(workspace, force=True) is not None  # restore-demo mends it
    assert "demo_removed" not in workspace.settings() and workspace.has_dataset("demo")
