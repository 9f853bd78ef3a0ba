"""A double click on the Search page's Create study: the second press finds the study the first
press created. It must select that study (and say so), not show "already exists ... delete the
old study first" for the study the user has just made."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest


def _script(root: str) -> None:
    import streamlit as st

    from tlcore.search import StudySpec
    from tlcore.workspace import Workspace
    from tlui import place
    from tlui import search_form as sf

    ws = Workspace(root)
    place.banners()
    spec = StudySpec(name="dbl", dataset="tiny", image_size=64, weights=None, epochs=1, n_trials=2, scout=None)
    presses = st.session_state.get("presses", 0)
    if presses < 2:  # the first press, then the second of the double click
        st.session_state["presses"] = presses + 1
        sf.create_and_start(ws, spec, 0)
    st.write(f"selected: {st.session_state.get('se_pending_select')}")
    sf.page_drawn()  # as the Search page does at the end of a whole run


def _later_press(root: str) -> None:
    """Create, a whole run of the page, then Create again with the same spec: a second press."""
    import streamlit as st

    from tlcore.search import StudySpec
    from tlcore.workspace import Workspace
    from tlui import place
    from tlui import search_form as sf

    place.banners()
    spec = StudySpec(name="dbl", dataset="tiny", image_size=64, weights=None, epochs=1, n_trials=2, scout=None)
    if st.session_state.get("press"):
        st.session_state["press"] = False
        sf.create_and_start(Workspace(root), spec, 0)
    sf.page_drawn()


def _workspace(tmp_path: Path) -> str:
    from tests.helpers.searchfix import add_tiny_dataset
    from tlcore.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    add_tiny_dataset(ws)
    return str(ws.root)


def test_a_double_click_on_create_selects_the_new_study_without_an_error(tmp_path: Path):
    at = AppTest.from_function(_script, args=(_workspace(tmp_path),), default_timeout=60)
    at.run()  # the first press creates the study and reruns; the rerun is the second press (AppTest follows st.rerun)
    assert not at.exception, at.exception
    assert at.session_state["presses"] == 2
    assert not [e.value for e in at.error], [e.value for e in at.error]
    assert [m.value for m in at.info] == [
        "Study dbl was created by your first press of Create; it is selected below."]
    assert "selected: dbl" in [m.value for m in at.markdown]


def test_creating_an_existing_study_later_or_with_other_settings_is_still_refused(tmp_path: Path):
    from tlcore.search import StudySpec, create_study
    from tlcore.workspace import Workspace

    ws = Workspace(_workspace(tmp_path))
    create_study(ws, StudySpec(name="dbl", dataset="tiny", image_size=96, weights=None, scout=None))
    at = AppTest.from_function(_script, args=(str(tmp_path / "ws"),), default_timeout=60)
    at.run()
    assert any("already exists" in e.value for e in at.error)


def test_a_second_create_after_the_page_showed_the_first_is_refused(tmp_path: Path):
    at = AppTest.from_function(_later_press, args=(_workspace(tmp_path),), default_timeout=60)
    at.session_state["press"] = True
    at.run()
    assert not at.error
    at.session_state["press"] = True
    at.run()
    assert any("already exists" in e.value for e in at.error)
