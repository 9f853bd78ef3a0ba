"""Dark mode in Chromium: the app follows the browser's colour scheme unless the user picks one.

``.streamlit/config.toml`` sets no ``[theme] base``, only an accent colour per theme
(``[theme.light]``, ``[theme.dark]``), so Streamlit starts in the browser's preference and
its menu (top right) offers System, Light and Dark. The charts use Streamlit's Plotly theme
(no background of their own), so they read on either background.
"""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.e2e import ui

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

_BACKGROUND = "() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"
_CHART_BACKGROUNDS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] svg.main-svg')]
    .map(svg => getComputedStyle(svg).backgroundColor)"""


def _channels(css_colour: str) -> list[float]:
    """The numbers of an ``rgb(r, g, b)`` or ``rgba(r, g, b, a)`` colour."""
    return [float(x) for x in css_colour[css_colour.index("(") + 1:css_colour.index(")")].split(",")]


_RGB_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])  # relative luminance of red, green and blue (Rec. 709)


def _luminance(css_colour: str) -> float:
    """0 (black) to 1 (white)."""
    return float(np.asarray(_channels(css_colour)[:3]) @ _RGB_WEIGHTS / 255)


def _alpha(css_colour: str) -> float:
    channels = _channels(css_colour)
    return channels[3] if len(channels) == 4 else 1.0


def _open(browser, app, scheme: str, path: str = ""):
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    ui.goto(page, app.url, path)
    return context, page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_app_follows_the_browsers_colour_scheme(browser, app, scheme):
    context, page = _open(browser, app, scheme)
    try:
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        background = page.evaluate(_BACKGROUND)
        if scheme == "dark":
            assert _luminance(background) < 0.2, background
        else:
            assert _luminance(background) > 0.9, background
        ui.assert_no_errors(page)
    finally:
        context.close()


def test_the_menu_lets_a_dark_browser_choose_light(browser, app):
    context, page = _open(browser, app, "dark")
    try:
        dark = page.evaluate(_BACKGROUND)
        assert _luminance(dark) < 0.2, dark
        page.locator('[data-testid="stMainMenu"]').click()
        theme = page.get_by_role("group", name="Theme")
        for choice in ("System", "Light", "Dark"):
            expect(theme.get_by_role("menuitemradio", name=choice)).to_be_visible()
        expect(theme.get_by_role("menuitemradio", name="System")).to_be_checked()
        theme.get_by_role("menuitemradio", name="Light").click()
        page.wait_for_function(f"() => ({_BACKGROUND})() !== {dark!r}")
        assert _luminance(page.evaluate(_BACKGROUND)) > 0.9, page.evaluate(_BACKGROUND)
    finally:
        context.close()


def test_charts_have_no_background_of_their_own_in_dark_mode(browser, app):
    """The Datasets page's Plotly charts (the demo dataset's classes, sizes, aspect ratios) on the dark page."""
    context, page = _open(browser, app, "dark", "Datasets")
    try:
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        backgrounds = page.evaluate(_CHART_BACKGROUNDS)
        assert backgrounds, "no Plotly chart on the Datasets page"
        assert all(_alpha(c) == 0 or _luminance(c) < 0.2 for c in backgrounds), backgrounds
    finally:
        context.close()


def _heatmap_luminance(page) -> float:
    """The mean luminance of the confusion matrix's cells, from a screenshot of the heatmap."""
    import io

    from PIL import Image

    cells = page.locator('[data-testid="stPlotlyChart"] .heatmaplayer image').first
    cells.wait_for()
    pixels = np.asarray(Image.open(io.BytesIO(cells.screenshot())).convert("RGB"), dtype=float) / 255
    return float((pixels @ _RGB_WEIGHTS).mean())


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_confusion_matrix_follows_the_theme(browser, app, demo_model, scheme):
    """Its empty cells (most of them) take the page's side of the scale: a fixed light scale
    painted them near-white on the dark page."""
    context, page = _open(browser, app, scheme, f"Results?run={demo_model.name}")
    try:
        luminance = _heatmap_luminance(page)
        if scheme == "dark":
            assert luminance < 0.45, luminance
        else:
            assert luminance > 0.55, luminance
        ui.assert_no_errors(page)
    finally:
        context.close()
