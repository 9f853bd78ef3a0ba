"""Driving Streamlit widgets from Playwright the way a user does (click, type, pick, upload)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ERROR_BOXES = '[data-testid="stAlertContentError"], [data-testid="stException"]'


def wait_idle(page: Page, timeout: float = 60.0, settle: float = 0.5) -> None:
    """Wait until the script run triggered by the last action has finished and nothing is
    still loading (the app stays idle for ``settle`` seconds)."""
    deadline = time.monotonic() + timeout
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    quiet_since = None
    while time.monotonic() < deadline:
        idle = page.locator(IDLE).count() == 1 and page.locator('[data-testid="stSkeleton"]').count() == 0
        if idle:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(100)
    raise AssertionError(f"the app was still running after {timeout:.0f} s")


def goto(page: Page, base_url: str, path: str = "", timeout: float = 90.0) -> None:
    page.goto(f"{base_url}/{path.lstrip('/')}")
    wait_idle(page, timeout)


def error_texts(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(ERROR_BOXES).all_inner_texts()]


def assert_no_errors(page: Page) -> None:
    errors = error_texts(page)
    assert not errors, f"error boxes on {page.url}: {errors}"


def widget(page: Page, label: str) -> Locator:
    """The input of the widget labelled ``label`` (exactly)."""
    return page.get_by_label(label, exact=True)


def fill(page: Page, label: str, value: object, *, enter: bool = True) -> None:
    """Type into a text or number input and commit it with Enter, as a user does. Inside a
    form Enter submits the form, so there pass ``enter=False`` and click the form's button."""
    box = widget(page, label)
    box.fill(str(value))
    if enter:
        box.press("Enter")
        wait_idle(page)


def choose(page: Page, label: str, option: str | re.Pattern) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    widget(page, label).click()
    page.get_by_role("option", name=option).first.click()
    wait_idle(page)


def click(page: Page, name: str | re.Pattern, *, timeout: float = 60.0) -> None:
    """Click the button named ``name``: the one named exactly so when there is one, else the first whose
    name contains it (a widget's help button is named "Help for <its label>", and "Save" is in "Help for
    Overwrite a pipeline saved under that name")."""
    exact = page.get_by_role("button", name=name, exact=True) if isinstance(name, str) else None
    (exact if exact is not None and exact.count() else page.get_by_role("button", name=name)).first.click()
    wait_idle(page, timeout)


def open_expander(page: Page, title: str | re.Pattern) -> None:
    # The run under way first: an expander the run is about to close still shows open until the
    # run reaches it (e.g. right after a banner above it appeared), and would then not be clicked.
    wait_idle(page)
    summary = page.locator('[data-testid="stExpander"] summary').filter(has_text=title).first
    details = summary.locator("xpath=..")
    if details.get_attribute("open") is None:
        summary.click()
        wait_idle(page)


def upload(page: Page, label: str, files: list[Path]) -> None:
    """Set the files of the uploader labelled ``label``."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label).first
    uploader.locator('input[type="file"]').set_input_files([str(f) for f in files])
    wait_idle(page, 120)


def wait_for_text(page: Page, text: str | re.Pattern, timeout: float = 120.0) -> None:
    expect(page.get_by_text(text).first).to_be_visible(timeout=timeout * 1000)


def shot(page: Page, name: str) -> None:
    """A full-page screenshot ``<name>.png`` in ``$TLCORE_SCREENSHOTS`` (the README's pictures), when it is set."""
    folder = os.environ.get("TLCORE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def expander(page: Page, title: str | re.Pattern) -> Locator:
    """The ``<details>`` of the expander whose summary shows ``title``."""
    return page.locator('[data-testid="stExpander"] details').filter(
        has=page.locator("summary").filter(has_text=title)).first


def tab(page: Page, name: str | re.Pattern) -> Locator:
    return page.get_by_role("tab", name=name, exact=isinstance(name, str)).first


def open_tab(page: Page, name: str | re.Pattern) -> None:
    tab(page, name).click()
    wait_idle(page)


def tick(page: Page, label: str) -> None:
    """Click the checkbox labelled ``label``, as a user does (on its label)."""
    page.locator('[data-testid="stCheckbox"]').filter(has_text=label).first.locator("label").click()
    wait_idle(page)
