"""Helpers shared by the AppTest page tests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

__all__ = ["assert_ok", "shown_text"]


def assert_ok(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown_text(elements) -> str:
    """The elements' text as shown: Markdown escapes removed."""
    return " ".join(str(e.value) for e in elements).replace("\\", "")
