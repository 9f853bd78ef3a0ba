"""Helpers shared by the AppTest page tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Expander, Tab

__all__ = ["open_page", "assert_ok", "shown_text", "path_of", "tab_path", "expander_path", "open_tab", "is_open"]


APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"  # the app's entry script


def open_page(script: str, *, timeout: float = 180, **params: str) -> AppTest:
    """The app run once on ``script`` (e.g. "pages/6_Predict.py"), its URL holding ``params``."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(script)
    return at.run()


def assert_ok(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown_text(elements) -> str:
    """The elements' text as shown: Markdown escapes removed."""
    return " ".join(str(e.value) for e in elements).replace("\\", "")


def _walk(node, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Any]]:
    yield path, node
    for i, child in getattr(node, "children", {}).items():
        yield from _walk(child, (*path, i))


def path_of(at: AppTest, match: Callable[[Any], bool]) -> tuple[int, ...] | None:
    """Where the first element of the main area that ``match``es sits: its indexes from the main
    area down (the browser tells unkeyed elements apart by this path); None when there is none."""
    return next((path for path, node in _walk(at.main) if match(node)), None)


def tab_path(at: AppTest, label: str) -> tuple[int, ...] | None:
    """``path_of`` the tab labelled ``label``."""
    return path_of(at, lambda n: isinstance(n, Tab) and n.label == label)


def expander_path(at: AppTest, label: str) -> tuple[int, ...] | None:
    """``path_of`` the expander labelled ``label``."""
    return path_of(at, lambda n: isinstance(n, Expander) and n.label == label)


def open_tab(at: AppTest, label: str) -> str:
    """The label of the open tab of the tabs that hold the tab ``label``."""
    for _, node in _walk(at.main):
        tabs = [c for c in getattr(node, "children", {}).values() if isinstance(c, Tab)]
        if any(t.label == label for t in tabs):
            return tabs[node.proto.tab_container.default_tab_index].label
    raise LookupError(f"no tab labelled {label!r} on the page")


def is_open(at: AppTest, label: str) -> bool:
    """Whether the expander labelled ``label`` is open."""
    found = [e for e in at.expander if e.label == label]
    if not found:
        raise LookupError(f"no expander labelled {label!r} on the page; there are {[e.label for e in at.expander]}")
    return bool(found[0].proto.expanded)
