"""The Train page in Chromium: a one-epoch feature-extraction run on the demo data, from the form to
the finished run with its epoch row and links; the page after a reload.

A server of its own over a fresh workspace. With ``TLCORE_SCREENSHOTS=DIR`` the finished page is
saved as ``train.png`` there (the README's picture).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tlcore import train_jobs as tj
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

RUN_TIMEOUT = 480  # seconds: the process loads TensorFlow, decodes 500 images, caches features, trains


def test_train_one_epoch_of_feature_extraction_and_watch_it_finish(page, app):
    ui.goto(page, app.url, "Train")
    expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
    ui.open_expander(page, "New training run")
    ui.fill(page, "Image size (px)", 64)
    ui.fill(page, "Epochs", 1)
    page.get_by_role("button", name="Train", exact=True).click()
    ui.wait_idle(page)
    ui.wait_for_text(page, re.compile(r"Started job \d{8}-\d{6}-[0-9a-f]{4}"), timeout=60)
    ui.assert_no_errors(page)
    # The page rereads the job every few seconds; the epoch comes, then the finished run.
    ui.wait_for_text(page, "Finished: 1 epoch.", timeout=RUN_TIMEOUT)
    ui.wait_idle(page)
    [job] = tj.list_jobs(Workspace(app.workspace))
    assert job.status == "finished", job.error
    [epoch] = tj.read_progress(job.job).epochs
    assert epoch["epoch"] == 1 and epoch["epoch_seconds"] > 0
    assert re.search(rf"[?&]job={job.id}", page.url)
    expect(page.locator('[data-testid="stDataFrame"]').filter(visible=True).first).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
    results = page.get_by_role("link", name="Open in Results")
    expect(results).to_have_attribute("href", re.compile(rf"Results\?run={re.escape(job.run_dir.name)}"))
    expect(page.get_by_role("link", name="Try it on Predict")).to_have_attribute(
        "href", re.compile(r"Predict\?model=run(%3A|:)"))
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Test accuracy")).to_have_count(1)
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Test accuracy")).to_contain_text("%")
    ui.assert_no_errors(page)
    ui.shot(page, "train")

    # Everything is read from the job's folder: a reload shows the same run.
    page.reload()
    ui.wait_idle(page, 90)
    ui.wait_for_text(page, "Finished: 1 epoch.", timeout=60)
    ui.assert_no_errors(page)
