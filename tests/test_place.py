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


# ------------------------------------------------------------------ uploads
def _upload_app():
    import streamlit as st

    from tlui import place

    if st.toggle("here", value=True, key="here"):  # off: the page was left, its uploader not drawn
        files = place.uploader("Photos", key="up", accept_multiple_files=True)
        st.markdown("got: " + (",".join(f"{f.name}={f.getvalue().decode()}" for f in files or []) or "none"))
        one = place.uploader("One", key="one")
        st.markdown(f"one: {one.name if one is not None else None}")
        st.markdown(f"callback sees: {getattr(place.upload_of('one'), 'name', None)}")


def _got(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("got:"))


def _leave_and_return(at: AppTest) -> AppTest:
    at.toggle(key="here").set_value(False).run()
    return at.toggle(key="here").set_value(True).run()


def test_an_upload_is_still_there_after_the_page_was_left():
    at = AppTest.from_function(_upload_app).run()
    assert _got(at) == "got: none"
    at.file_uploader(key="up").set_value([("a.png", b"AAA", "image/png"), ("b*.png", b"BB", "image/png")]).run()
    at.file_uploader(key="one").set_value(("spec.yaml", b"x: 1", "text/yaml")).run()
    assert not at.exception
    assert _got(at) == "got: a.png=AAA,b*.png=BB" and not at.caption
    _leave_and_return(at)
    assert not at.exception
    assert at.file_uploader(key="up").value == []  # the browser has dropped the files
    assert _got(at) == "got: a.png=AAA,b*.png=BB"
    assert "one: spec.yaml" in [m.value for m in at.markdown]
    assert "callback sees: spec.yaml" in [m.value for m in at.markdown]
    said = [c.value for c in at.caption]
    assert len(said) == 2 and "before leaving this page: a\\.png, b\\*\\.png." in said[0]  # each name shown as typed
    at.button(key="up::forget").click().run()
    assert _got(at) == "got: none" and len(at.caption) == 1
    assert "one: spec.yaml" in [m.value for m in at.markdown]  # the other uploader's copy is its own


def test_new_files_replace_the_copy_and_removing_them_forgets_it():
    at = AppTest.from_function(_upload_app).run()
    at.file_uploader(key="up").set_value([("a.png", b"AAA", "image/png")]).run()
    _leave_and_return(at)
    at.file_uploader(key="up").set_value([("c.png", b"C", "image/png")]).run()
    assert _got(at) == "got: c.png=C" and not at.caption
    _leave_and_return(at)
    assert _got(at) == "got: c.png=C"
    at.file_uploader(key="up").set_value([("c.png", b"C", "image/png")]).run()
    at.file_uploader(key="up").set_value([]).run()  # the user removes it from the uploader
    assert _got(at) == "got: none"
    _leave_and_return(at)
    assert _got(at) == "got: none" and not at.caption


def test_an_upload_too_large_to_keep_says_to_upload_it_again(monkeypatch):
    monkeypatch.setattr(place, "KEEP_UPLOAD_MB", 1)
    at = AppTest.from_function(_upload_app).run()
    at.file_uploader(key="up").set_value([("big.tif", b"x" * (3 * 1024 * 1024), "image/tiff")]).run()
    assert _got(at) == "got: big.tif=" + "x" * (3 * 1024 * 1024)
    _leave_and_return(at)
    assert _got(at) == "got: none"
    assert [i.value for i in at.info] == [
        "The upload (3 MB) was too large to keep when you left this page (over 1 MB): upload it again."]
    at.run()
    assert not at.info  # said once
