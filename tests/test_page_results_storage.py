"""The Results page's Study storage field never shows a password typed in a storage URL.

The field shows the URL with ``***`` for the password; the URL as typed stays in the session's
state and is the storage the page reads. Everything the page draws (every element's protobuf:
text, captions, code, errors, widget labels and values) and its URL are searched for the password.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import assert_ok, shown_text
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec

PAGE = "pages/5_Results.py"
SECRET = "Hunter2pass"
REFUSED = f"postgresql://tl:{SECRET}@127.0.0.1:1/studies"  # nothing listens on port 1: refused at once
SHOWN = "postgresql://tl:***@127.0.0.1:1/studies"


def _page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    at.switch_page(PAGE)
    return at.run()


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def _drawn(at: AppTest) -> str:
    """Everything the page sent to the browser: each element's and block's protobuf (values, labels,
    help, captions, code, messages), main area and sidebar, and the page's URL parameters."""
    protos = [str(n.proto) for area in (at.main, at.sidebar) for n in _nodes(area) if getattr(n, "proto", None)]
    params = [f"{k}={at.query_params[k]}" for k in at.query_params]
    return "\n".join(protos + params)


@pytest.fixture
def storages(monkeypatch) -> list[str | None]:
    """The storages the page lists studies of, as ``list_studies`` receives them."""
    import tlcore.search

    seen: list[str | None] = []
    real = tlcore.search.list_studies

    def spy(ws, storage=None):
        seen.append(storage)
        return real(ws, storage)

    monkeypatch.setattr(tlcore.search, "list_studies", spy)  # the page imports it from there on each run
    return seen


def test_a_password_typed_in_the_storage_url_is_never_shown(workspace, storages):
    at = _page()
    field = at.text_input(key="rs_storage")
    field.set_value(REFUSED).run()
    assert not at.exception
    assert storages[-1] == REFUSED  # the page reads the storage typed, password included
    assert at.text_input(key="rs_storage").value == SHOWN  # the field shows *** for it
    errors = shown_text(at.error)
    assert "Cannot open the study storage" in errors and SHOWN in errors
    assert "kept for this session and not shown" in shown_text(at.sidebar.caption)
    assert SECRET not in _drawn(at)

    at.run()  # a rerun reads the same storage, and still shows none of the password
    assert storages[-1] == REFUSED and SECRET not in _drawn(at)

    # Editing the rest of the URL keeps the password, which *** stands for.
    at.text_input(key="rs_storage").set_value("postgresql://tl:***@127.0.0.1:1/other").run()
    assert storages[-1] == f"postgresql://tl:{SECRET}@127.0.0.1:1/other"
    assert at.text_input(key="rs_storage").value == "postgresql://tl:***@127.0.0.1:1/other"
    assert SECRET not in _drawn(at)

    # A password given as a query parameter is hidden the same way.
    at.text_input(key="rs_storage").set_value(f"postgresql://tl@127.0.0.1:1/studies?password={SECRET}").run()
    assert storages[-1] == f"postgresql://tl@127.0.0.1:1/studies?password={SECRET}"
    assert at.text_input(key="rs_storage").value == "postgresql://tl@127.0.0.1:1/studies?password=***"
    assert "Cannot open the study storage" in shown_text(at.error) and SECRET not in _drawn(at)

    at.text_input(key="rs_storage").set_value("").run()  # back to the workspace's studies
    assert_ok(at)
    assert storages[-1] is None and "No studies in this workspace yet" in shown_text(at.info)
    assert "kept for this session" not in shown_text(at.sidebar.caption)


def test_the_password_stays_hidden_after_another_page(workspace, storages):
    at = _page()
    at.text_input(key="rs_storage").set_value(REFUSED).run()
    at.switch_page("pages/1_Datasets.py").run()
    assert SECRET not in _drawn(at)
    at.switch_page(PAGE).run()
    assert at.text_input(key="rs_storage").value == SHOWN  # persist_state keeps the field's text...
    assert storages[-1] == REFUSED  # ...and the storage it stands for
    assert SECRET not in _drawn(at)


def test_a_journal_path_shows_as_typed(workspace, storages):
    journal = f"  {workspace.root / 'shared' / 'studies.log'}"  # spaces too: the field keeps what was typed
    at = _page()
    at.text_input(key="rs_storage").set_value(journal).run()
    assert_ok(at)
    assert at.text_input(key="rs_storage").value == journal
    assert storages[-1] == journal.strip()
    assert "No studies in this storage yet" in shown_text(at.info)
    assert "kept for this session" not in shown_text(at.sidebar.caption)


def test_a_postgresql_storage_with_a_password_is_read(workspace, fresh_postgres_url, storages):
    """A server that takes the URL: its study is listed, and the password shows nowhere, not in the
    optuna-dashboard command either. The private test server trusts local connections, so the test
    gives it SECRET; a server of CI's (TLCORE_TEST_POSTGRES_URL) keeps its own password."""
    from sqlalchemy.engine import make_url

    from tlcore.search import create_study

    server = make_url(fresh_postgres_url)
    password = server.password or SECRET
    url = server.set(password=password).render_as_string(hide_password=False)
    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("on-server"), storage=url)
    at = _page()
    at.text_input(key="rs_storage").set_value(url).run()
    assert_ok(at)
    assert storages[-1] == url
    assert at.text_input(key="rs_storage").value == url.replace(f":{password}@", ":***@")
    assert at.multiselect(key="rs_studies").value == ["on-server"]
    assert any("optuna-dashboard" in c.value and server.host in c.value for c in at.code)
    drawn = _drawn(at)
    assert f":{password}@" not in drawn and (password != SECRET or SECRET not in drawn)
