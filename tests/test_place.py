"""tlui.place: banners in fixed slots, expanders and tabs that keep their state.

``AppTest.from_function`` runs tiny apps that flash, draw slots, expanders and tabs, so what
they draw is what a page draws. The browser tells unkeyed elements apart by their place
(``tests.helpers.pagetest.path_of``): a banner must never move what follows it.
"""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.pagetest import expander_path, is_open, open_tab, tab_path
from tlui import place


def _banner_app():
    import streamlit as st

    from tlui import place

    if st.button("act", key="act"):
        place.flash("success", "done once")
        place.flash("warning", "and a warning")
        place.flash("info", "for the side", slot="side")
        st.rerun()
    st.title("A page")
    place.banners()
    with place.expander("Form", key="form"):
        st.text_input("Name", key="name")
    st.markdown(f"side pending: {place.pending('side')}")
    place.banners("side")


def test_a_banner_shows_once_in_its_slot_and_moves_nothing_after_it():
    at = AppTest.from_function(_banner_app).run()
    assert not at.success and not at.info
    form = expander_path(at, "Form")
    at.button(key="act").click().run()
    assert not at.exception
    assert [m.value for m in at.success] == ["done once"] and [m.value for m in at.warning] == ["and a warning"]
    assert [m.value for m in at.info] == ["for the side"]  # in its own slot, below
    assert at.markdown[0].value == "side pending: True"
    assert expander_path(at, "Form") == form  # the banners took no place of their own
    at.run()
    assert not at.success and not at.warning and not at.info  # shown once
    assert at.markdown[0].value == "side pending: False"
    assert expander_path(at, "Form") == form


def _timed_app():
    import streamlit as st

    from tlui import place

    said = st.session_state.pop("say", None)
    if said:
        place.flash("info", said, slot="live", seconds=st.session_state.get("seconds", 60))
    place.banners("live")


def test_a_timed_banner_stays_its_time_and_a_new_one_replaces_it():
    at = AppTest.from_function(_timed_app)
    at.session_state["say"] = "Stop requested."
    at.run()
    at.run()
    assert [m.value for m in at.info] == ["Stop requested."]  # still there on the next refresh
    at.session_state["say"] = "Resumed."
    at.run()
    assert [m.value for m in at.info] == ["Resumed."]  # the old one went: it had been shown
    at.session_state["say"], at.session_state["seconds"] = "Started 1 worker.", 0.2
    at.run()
    assert [m.value for m in at.info] == ["Started 1 worker."]
    time.sleep(0.3)
    at.run()
    assert not at.info  # its time is up


def _places_app():
    import streamlit as st

    from tlui import place

    n = st.session_state.get("n", 0)
    place.banners()
    with place.expander(f"Remove ({n})", key="rm", expanded=st.session_state.get("start_open", False)):
        st.checkbox("I understand", key="ok")
    place.tabs(["Overview", f"Problems ({n})", "Split"], key="tab")


def test_expanders_and_tabs_keep_their_state_across_reruns_and_new_labels():
    at = AppTest.from_function(_places_app).run()
    assert not is_open(at, "Remove (0)") and open_tab(at, "Split") == "Overview"
    at.session_state["rm"], at.session_state["tab"] = True, 2  # what opening them leaves
    at.run()
    assert is_open(at, "Remove (0)") and open_tab(at, "Split") == "Split"
    at.session_state["n"] = 3  # the labels change
    at.run()
    assert is_open(at, "Remove (3)") and open_tab(at, "Split") == "Split"
    at.checkbox(key="ok").check().run()
    assert is_open(at, "Remove (3)") and open_tab(at, "Split") == "Split"
    assert tab_path(at, "Split") is not None
    at.session_state["rm"] = False  # code closes it
    at.run()
    assert not is_open(at, "Remove (3)")


def test_expanded_is_only_where_an_expander_starts():
    at = AppTest.from_function(_places_app)
    at.session_state["start_open"] = True
    at.run()
    assert is_open(at, "Remove (0)")
    at.session_state["start_open"] = False  # a page whose default changed (a first study now exists)
    at.run()
    assert is_open(at, "Remove (0)")  # left as it was


def test_a_banner_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match=r"Received: kind='note'"):
        place.flash("note", "hello")  # type: ignore[arg-type]
