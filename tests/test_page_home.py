"""The app's frame (streamlit_app.py: st.navigation over tlui.common.PAGES, its menu) and the Home page
(pages/0_Home.py), run headlessly with AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.source_util import page_icon_and_name
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import assert_ok
from tlcore.datasets import add_dataset
from tlui.common import PAGES, page

REPO = Path(__file__).resolve().parent.parent


def _home() -> AppTest:
    return AppTest.from_file("../streamlit_app.py", default_timeout=60)


# -------------------------------------------------------------- the pages
def test_every_page_file_is_declared_once_and_every_declared_file_exists():
    declared = [p.script for p in PAGES]
    assert len(set(declared)) == len(declared)
    assert all((REPO / script).is_file() for script in declared), declared
    assert sorted(declared) == sorted(f"pages/{f.name}" for f in (REPO / "pages").glob("*.py"))


def test_pages_are_found_by_title_and_no_page_names_another_page_file():
    assert page("Train").script == "pages/3_Train.py" and page("Home").is_home
    with pytest.raises(KeyError, match="no page titled 'Nope'"):
        page("Nope")
    sources = [*(REPO / "pages").glob("*.py"), *(REPO / "tlui").glob("*.py")]
    named = {f.name: [p.script for p in PAGES if p.script in f.read_text()] for f in sources}
    assert {f: scripts for f, scripts in named.items() if scripts} == {"common.py": [p.script for p in PAGES]}


def test_home_comes_first_and_every_url_is_the_one_the_file_name_gave():
    assert [p.is_home for p in PAGES] == [True] + [False] * (len(PAGES) - 1)
    assert PAGES[0].title == "Home" and PAGES[0].url_path == ""
    for p in PAGES[1:]:  # /Datasets, /Search, ...: links and bookmarks from before st.navigation still work
        assert p.url_path == page_icon_and_name(REPO / p.script)[1] == p.title
    titles = [p.title for p in PAGES]
    assert len(set(titles)) == len(titles)
    assert all(p.icon.startswith(":material/") and p.what.strip() for p in PAGES)


def test_the_menu_links_every_page_and_brings_back_the_place_left(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    at = _home().run()
    assert_ok(at)
    links = at.sidebar.get("page_link")
    assert [link.proto.label for link in links] == [p.title for p in PAGES]
    assert not any(link.proto.query_string for link in links)
    at.switch_page(page("Datasets").script).run()
    at.selectbox(key="ds_selected").set_value("tiny").run()
    at.query_params.clear()  # as the browser's URL for Home (AppTest keeps the last page's)
    at.switch_page(page("Home").script).run()
    assert_ok(at)
    by_title = {link.proto.label: link.proto for link in at.sidebar.get("page_link")}
    # One history entry to go back there, at the URL that shows tiny (Back used to stay put once).
    assert by_title["Datasets"].query_string == "dataset=tiny"
    assert by_title["Home"].query_string == "" and by_title["Search"].query_string == ""


@pytest.mark.parametrize("spec", PAGES[1:], ids=lambda p: p.title)
def test_every_page_runs_in_the_frame(workspace, spec):
    at = _home()
    at.switch_page(spec.script).run()
    assert_ok(at)
    assert at.title[0].value == spec.title
    assert str(workspace.root) in [c.value for c in at.sidebar.code]  # the frame's sidebar note


def test_a_page_file_runs_on_its_own_and_opens_the_workspace(workspace):
    at = AppTest.from_file("../pages/1_Datasets.py", default_timeout=60).run()
    assert_ok(at)
    assert at.title[0].value == "Datasets"
    assert at.selectbox(key="ds_selected").value == "demo"
    assert not at.sidebar.code  # no frame: no sidebar note


# ------------------------------------------------------------------ Home
def test_home_registers_demo_and_shows_workspace(workspace):
    at = _home().run()
    assert_ok(at)
    assert at.title[0].value == "Transfer-learning workbench"
    registry = json.loads((workspace.root / "datasets" / "registry.json").read_text())
    assert "demo" in registry["datasets"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets registered"] == "1"
    assert metrics["Images"] == "500"
    assert metrics["Saved augmentation pipelines"] == "0"
    table = at.dataframe[0].value
    assert list(table["name"]) == ["demo"]
    assert list(table.columns) == ["name", "images", "classes", "problems", "source", "path"]
    assert str(workspace.root) in [c.value for c in at.main.code]  # workspace location
    assert str(workspace.root) in [c.value for c in at.sidebar.code]  # sidebar note


def test_where_to_start_lists_every_other_page_from_the_declaration(workspace):
    at = _home().run()
    assert_ok(at)
    others = [p for p in PAGES if not p.is_home]
    links = at.main.get("page_link")
    assert [link.proto.label for link in links] == [f"{i}. {p.title}" for i, p in enumerate(others, start=1)]
    assert [link.proto.icon for link in links] == [p.icon for p in others]
    # Each link leads to its page's URL.
    assert [link.proto.page.strip("/") for link in links] == [p.url_path for p in others]
    shown = [m.value for m in at.main.markdown]
    assert all(p.what in shown for p in others)


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


@pytest.mark.parametrize("script", ["pages/0_Home.py", "pages/1_Datasets.py"])
def test_a_bad_workspace_is_an_error_not_a_traceback(tmp_path, monkeypatch, script):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("TLCORE_HOME", str(not_a_folder))
    at = _home()
    at.switch_page(script).run()
    assert not at.exception
    assert at.error and "not a folder" in at.error[0].value
    assert not at.title  # the frame stopped before the page ran
