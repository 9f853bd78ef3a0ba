"""Navigation in Chromium: the sidebar menu (st.navigation over tlui.common.PAGES, a page link each), the
URLs, the browser tab's title, and the frame on a page that is the server's first request.

A server of its own: its first request is a page other than Home, which Streamlit runs
without streamlit_app.py (tlui.common.workspace draws the frame then).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tlui.common import APP_TITLE, PAGES

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def _menu(page):
    return page.locator(".st-key-tl_menu")  # tlui.common.frame's menu of page links


def test_a_page_asked_for_first_has_the_frame_and_the_menu(page, app):
    ui.goto(page, app.url, "Augmentations")
    expect(page.get_by_role("heading", name="Augmentations", exact=True)).to_be_visible()
    expect(page).to_have_title(f"Augmentations · {APP_TITLE}")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text(str(app.workspace.resolve()), exact=True)).to_be_visible()
    for spec in PAGES:
        expect(_menu(page).get_by_role("link", name=spec.title, exact=True)).to_be_visible()
    ui.assert_no_errors(page)


def test_the_menu_leads_to_every_page_at_its_url(page, app):
    ui.goto(page, app.url)
    expect(page).to_have_title(APP_TITLE)
    for spec in [*PAGES[1:], PAGES[0]]:
        _menu(page).get_by_role("link", name=spec.title, exact=True).click()
        heading = APP_TITLE if spec.is_home else spec.title
        # Generous: the two cores are shared with the other test processes (first paint is timed by
        # test_browser_first_paint, not here).
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=120_000)
        expect(page).to_have_url(re.compile(rf"{re.escape(app.url)}/{spec.url_path}(\?.*)?$"))
        expect(page).to_have_title(APP_TITLE if spec.is_home else f"{spec.title} · {APP_TITLE}")
        ui.wait_idle(page, 120)
        ui.assert_no_errors(page)


def test_home_links_each_page_with_its_line(page, app):
    ui.goto(page, app.url)
    main = page.locator('[data-testid="stMain"]')
    for i, spec in enumerate(PAGES[1:], start=1):
        expect(main.get_by_role("link", name=f"{i}. {spec.title}")).to_be_visible()
    main.get_by_role("link", name="1. Datasets").click()
    ui.wait_idle(page, 90)
    assert page.url.startswith(f"{app.url}/Datasets")
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()


def test_back_leaves_each_page_with_one_press(page, app):
    # A page that wrote its default choice into the URL on arrival (?dataset=demo) made a second
    # history entry of its own, and Back then stayed on the page once before leaving it.
    ui.goto(page, app.url)
    visited = ["Datasets", "Augmentations"]
    for title in visited:
        _menu(page).get_by_role("link", name=title, exact=True).click()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=120_000)
        ui.wait_idle(page, 120)
    for title in [visited[0], APP_TITLE]:
        page.go_back()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=120_000)
        ui.wait_idle(page, 120)
        ui.assert_no_errors(page)
