"""The Home page (streamlit_app.py), run headlessly with AppTest."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from tlcore.datasets import add_dataset


def _home() -> AppTest:
    return AppTest.from_file("../streamlit_app.py", default_timeout=60)


def test_home_registers_demo_and_shows_workspace(workspace):
    at = _home().run()
    assert not at.exception
    assert not at.error
    registry = json.loads((workspace.root / "datasets" / "registry.json").read_text())
    assert "demo" in registry["datasets"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets registered"] == "1"
    assert metrics["Images"] == "500"
    assert metrics["Saved augmentation pipelines"] == "0"
    table = at.dataframe[0].value
    assert list(table["name"]) == ["demo"]
    assert {"name", "images", "classes", "problems", "source", "path"} <= set(table.columns)
    assert str(workspace.root) in [c.value for c in at.code]  # workspace location
    assert str(workspace.root) in [c.value for c in at.sidebar.code]  # sidebar note
    links = at.get("page_link")
    assert any(link.proto.page.endswith("1_Datasets.py") or "Datasets" in link.value for link in links)


def test_home_counts_datasets_and_pipelines(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    (workspace.augmentations_dir / "mine.yaml").write_text("transforms: []\n")
    at = _home().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets registered"] == "2"
    assert metrics["Images"] == f"{500 + 15:,}"
    assert metrics["Saved augmentation pipelines"] == "1"
    assert sorted(at.dataframe[0].value["name"]) == ["demo", "tiny"]


def test_home_demo_registered_once_per_workspace(workspace):
    at = _home().run()
    index_file = workspace.root / "datasets" / "demo" / "index.parquet"
    written = index_file.stat().st_mtime_ns
    at.run()  # a rerun must not scan the demo again
    assert not at.exception
    assert index_file.stat().st_mtime_ns == written


def test_home_bad_workspace_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("TLCORE_HOME", str(not_a_folder))
    at = _home().run()
    assert not at.exception
    assert at.error and "not a folder" in at.error[0].value
