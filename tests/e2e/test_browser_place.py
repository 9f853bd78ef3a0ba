"""The dashboard keeps your place across a banner, in Chromium.

A one-shot banner ("Rescanned …", "Saved …", "Created study …") shows on one run and not on
the next. Each test makes one appear, then does what a user does next inside an open
expander, a form or a tab other than the first, and checks that it stayed open and where
it was, and that the banner showed once. One ``streamlit run`` server serves the module
over a fresh workspace.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def is_open(locator) -> None:
    expect(locator).to_have_attribute("open", re.compile(".*"))


def is_selected(locator) -> None:
    expect(locator).to_have_attribute("aria-selected", "true")


def test_datasets_tabs_and_the_remove_expander_stay_across_banners(page, app):
    ui.goto(page, app.url, "Datasets")
    ui.click(page, "Rescan")
    ui.wait_for_text(page, "Rescanned demo", timeout=60)

    # The Split tab: an edit after the banner, then the save, which brings its own banner.
    ui.open_tab(page, "Split")
    ui.fill(page, "Validation fraction", "0.25")
    is_selected(ui.tab(page, "Split"))
    expect(page.get_by_text("Rescanned demo")).to_have_count(0)  # shown once
    ui.click(page, "Save split settings")
    ui.wait_for_text(page, "Saved the split settings of demo", timeout=60)
    is_selected(ui.tab(page, "Split"))
    expect(ui.widget(page, "Validation fraction")).to_have_value("0.25")

    # The Samples tab: the first click after that banner.
    ui.open_tab(page, "Samples")
    ui.click(page, "Show other images")
    is_selected(ui.tab(page, "Samples"))
    expect(page.get_by_text("Saved the split settings of demo")).to_have_count(0)

    # Remove this dataset: the confirmation ticked after a banner.
    ui.click(page, "Rescan")
    ui.wait_for_text(page, "Rescanned demo", timeout=60)
    ui.open_expander(page, "Remove this dataset")
    ui.tick(page, "I understand")
    is_open(ui.expander(page, "Remove this dataset"))
    expect(page.get_by_role("button", name="Remove", exact=True)).to_be_enabled()
    is_selected(ui.tab(page, "Samples"))
    ui.assert_no_errors(page)


@pytest.fixture(scope="module")
def a_study(app) -> str:
    """A study without workers, so that the Search page shows one and settles ``?study=``."""
    from tlcore.datasets import ensure_demo
    from tlcore.search import StudySpec, create_study

    ws = Workspace(app.workspace)
    ensure_demo(ws)
    create_study(ws, StudySpec(name="place-a", dataset="demo", image_size=64, freeze_depth=[18, 18], epochs=1,
                               n_trials=1))
    return "place-a"


def test_search_new_study_form_stays_open_across_banners(page, app, a_study):
    # A study name in the URL that is not a study: a warning, once; the page then shows the newest.
    ui.goto(page, app.url, "Search?study=nope")
    ui.wait_for_text(page, "There is no study named nope", timeout=60)
    ui.open_expander(page, "New study")
    ui.fill(page, "Study name", "place-b")
    form = ui.expander(page, "New study")
    is_open(form)
    expect(page.get_by_text("There is no study named nope")).to_have_count(0)
    ui.fill(page, "Trials", 1)
    is_open(form)
    if ui.widget(page, "Start now").is_checked():
        ui.tick(page, "Start now")  # created without workers
    ui.click(page, "Create study")
    ui.wait_for_text(page, re.compile("Created study place-b"), timeout=60)

    # The next entry into the form, after the "Created study" banner.
    ui.open_expander(page, "New study")
    ui.fill(page, "Study name", "place-c")
    is_open(form)
    ui.open_tab(page, "Upload a spec (YAML)")
    ui.open_expander(page, "Example")
    is_selected(ui.tab(page, "Upload a spec (YAML)"))
    is_open(form)
    ui.assert_no_errors(page)


def test_augmentations_step_stays_open_after_a_save(page, app):
    ui.goto(page, app.url, "Augmentations")
    step = re.compile(r"(^|[^0-9])1\. \w")  # the first step (its summary text follows an icon name)
    ui.open_expander(page, step)
    ui.fill(page, "Name", "place-light", enter=False)  # in the save form
    ui.click(page, "Save")
    ui.wait_for_text(page, re.compile("Saved the pipeline place-light"), timeout=60)
    is_open(ui.expander(page, step))
    # An edit in the open step after the banner: the step stays open, the banner goes.
    slider = ui.expander(page, step).get_by_role("slider").first
    slider.focus()
    slider.press("ArrowLeft")
    ui.wait_idle(page)
    is_open(ui.expander(page, step))
    expect(page.get_by_text(re.compile("Saved the pipeline place-light"))).to_have_count(0)
    ui.assert_no_errors(page)
