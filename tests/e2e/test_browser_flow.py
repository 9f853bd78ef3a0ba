"""The whole flow in Chromium, as a new user goes through it: Home, Datasets, Augmentations,
Search (create and run a two-trial study), Results, Predict.

One ``streamlit run`` server serves the module over a fresh workspace; the tests run in
file order and later pages use what earlier ones made (the search's study), falling back
to making it themselves when run alone. With ``TLCORE_SCREENSHOTS=DIR`` each page's
screenshot is saved there (the README's pictures come from this).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tlcore.workspace import Workspace

# One Streamlit server and browser at a time: with pytest-xdist (scripts/test.sh) every browser
# test runs on the same worker, in file order.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

STUDY = "e2e-search"
SHOTS = os.environ.get("TLCORE_SCREENSHOTS")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def loaded_images(page) -> int:
    """How many <img> of st.image elements have actually loaded their picture."""
    return page.eval_on_selector_all('[data-testid="stImage"] img',
                                     "els => els.filter(e => e.complete && e.naturalWidth > 0).length")


def test_home(page, app):
    ui.goto(page, app.url)
    expect(page.get_by_role("heading", name="Transfer-learning workbench")).to_be_visible()
    sidebar = page.locator('[data-testid="stSidebar"]')
    for label in ("Home", "Datasets", "Augmentations", "Search", "Results", "Predict"):
        expect(sidebar.get_by_role("link", name=label, exact=True)).to_be_visible()
    # The demo dataset is registered on the first visit.
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Datasets registered")).to_contain_text("1")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Images")).to_contain_text("500")
    ui.assert_no_errors(page)
    shot(page, "home")


def test_datasets_shows_the_demo_chart_and_samples(page, app):
    ui.goto(page, app.url)  # registers the demo when this test runs alone
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Datasets", exact=True).click()
    ui.wait_idle(page, 90)
    assert re.search(r"/Datasets", page.url)
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart).to_be_visible()
    expect(chart.locator(".main-svg").first).to_be_attached()
    page.get_by_text("Samples", exact=True).first.scroll_into_view_if_needed()
    ui.wait_idle(page)
    assert loaded_images(page) >= 10, "the sample grid did not show its images"
    ui.assert_no_errors(page)
    shot(page, "datasets")


def test_augmentations_preset_preview_seed_and_save(page, app):
    ui.goto(page, app.url, "Augmentations")
    ui.choose(page, "Start from", "light (preset)")
    expect(page.get_by_text("Horizontal flips", exact=False).first).to_be_visible()
    previews = page.locator('[data-testid="stImage"] img')
    expect(previews.nth(2)).to_be_visible()
    before = [previews.nth(i).get_attribute("src") for i in range(1, 5)]
    ui.fill(page, "Seed", 1234)
    after = [previews.nth(i).get_attribute("src") for i in range(1, 5)]
    assert before != after, "changing the seed did not change the preview"
    ui.fill(page, "Name", "e2e-light", enter=False)  # in the save form
    ui.click(page, "Save")
    ui.wait_for_text(page, re.compile("Saved"), timeout=30)
    assert (app.workspace / "augmentations" / "e2e-light.yaml").is_file()
    ui.assert_no_errors(page)
    shot(page, "augmentations")


def create_study_with_widgets(page, app) -> None:
    ui.goto(page, app.url, "Search")
    ui.open_expander(page, "New study")
    ui.fill(page, "Study name", STUDY)
    ui.fill(page, "Image size (px)", 64)
    # Both ends of the freeze-depth range at the top: feature extraction, quick on a CPU.
    depth = page.locator('[data-testid="stSlider"]').filter(has_text="Frozen blocks").get_by_role("slider")
    depth.first.focus()
    depth.first.press("End")
    ui.wait_idle(page)
    ui.fill(page, "Epochs per trial", 2)
    ui.fill(page, "Trials", 2)
    ui.click(page, "Create study")


def test_search_create_launch_and_finish(page, app):
    ui.goto(page, app.url)  # the demo dataset
    create_study_with_widgets(page, app)
    ui.wait_for_text(page, re.compile(rf"Created study {STUDY}"), timeout=60)
    ui.assert_no_errors(page)
    # The page refreshes itself while the workers run; wait for the budget to be met.
    ui.wait_for_text(page, "Finished: 2 of 2 trials are done.", timeout=600)
    ui.wait_idle(page)
    # (visible: the Scout step's table of the study's own scout sits in a closed expander above)
    expect(page.locator('[data-testid="stDataFrame"]').filter(visible=True).first).to_be_visible()
    ui.assert_no_errors(page)
    shot(page, "search")


def ensure_study(app) -> None:
    """The search test's study, or (when this test runs alone) the same study run here."""
    from tlcore.search import StudySpec, create_study, list_studies, run_worker

    ws = Workspace(app.workspace)
    if any(s.name == STUDY and s.finished >= 2 for s in list_studies(ws)):
        return
    from tlcore.datasets import ensure_demo

    ensure_demo(ws)
    create_study(ws, StudySpec(name=STUDY, dataset="demo", image_size=64, freeze_depth=[18, 18], epochs=2,
                               n_trials=2))
    run_worker(ws, STUDY, log=lambda s: None)


def test_results_every_view_renders(page, app):
    ensure_study(app)
    ui.goto(page, app.url, f"Results?study={STUDY}")
    expect(page.get_by_role("heading", name="Optuna's views")).to_be_visible()
    views = page.locator('[data-testid="stTabs"]').first
    tabs = views.get_by_role("tab")
    names = [t.strip() for t in tabs.all_inner_texts()]
    assert names == ["Optimization history", "Parameter importances", "Parallel coordinates", "Contour", "Slice",
                     "Intermediate values", "Timeline"], names
    for i in range(tabs.count()):
        tabs.nth(i).click()
        # The open tab's panel (the others are hidden): a drawn plotly figure, or why it cannot be
        # drawn (e.g. too few trials for parameter importances).
        panel = views.get_by_role("tabpanel")
        expect(panel.locator('.main-svg, [data-testid="stAlertContentInfo"]').first).to_be_visible()
    ui.assert_no_errors(page)
    # The learning curves and the trial table.
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    charts = page.locator('[data-testid="stPlotlyChart"]')
    assert charts.count() >= 3
    # The best trial's mistakes, with Grad-CAM.
    ui.click(page, "Evaluate on the test split", timeout=180)
    ui.wait_for_text(page, re.compile("Top losses|most confident mistakes", re.I), timeout=180)
    assert loaded_images(page) >= 1
    expect(page.locator('[data-testid="stDownloadButton"]').first).to_be_visible()
    ui.assert_no_errors(page)
    shot(page, "results")


def demo_image(name: str = "Sneaker") -> Path:
    root = Path(__file__).resolve().parents[2] / "demo_data" / "fashion-mnist-demo" / name
    return sorted(root.iterdir())[0]


def test_predict_upload_shows_top_k(page, app, demo_model):
    ui.goto(page, app.url, "Predict")
    ui.upload(page, "Images to classify", [demo_image()])
    ui.wait_for_text(page, re.compile(r"\(\d+(\.\d+)?\s?%\)"), timeout=120)  # "label (confidence %)"
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
    ui.assert_no_errors(page)
    shot(page, "predict")


def test_predict_keeps_an_upload_after_a_visit_to_another_page(page, app, demo_model):
    ui.goto(page, app.url, "Predict")
    ui.upload(page, "Images to classify", [demo_image("Bag")])
    ui.wait_for_text(page, re.compile(r"\(\d+(\.\d+)?\s?%\)"), timeout=120)
    menu = page.locator('[data-testid="stSidebar"]')
    menu.get_by_role("link", name="Home", exact=True).click()
    expect(page.get_by_role("heading", name="Transfer-learning workbench")).to_be_visible(timeout=120_000)
    ui.wait_idle(page, 120)
    menu.get_by_role("link", name="Predict", exact=True).click()
    ui.wait_idle(page, 120)
    expect(page.locator('[data-testid="stFileChip"]')).to_have_count(0)  # the browser has dropped the file
    ui.wait_for_text(page, f"before leaving this page: {demo_image('Bag').name}", timeout=60)
    ui.wait_for_text(page, re.compile(r"\(\d+(\.\d+)?\s?%\)"), timeout=120)  # still classified
    ui.assert_no_errors(page)
    ui.click(page, "Forget it")
    ui.wait_idle(page, 60)
    expect(page.get_by_text(re.compile(r"\(\d+(\.\d+)?\s?%\)"))).to_have_count(0)


def test_predict_bad_upload_then_a_good_one(page, app, demo_model, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_text("<html>this is not a picture</html>")
    ui.goto(page, app.url, "Predict")
    ui.upload(page, "Images to classify", [fake])
    expect(page.locator(ui.ERROR_BOXES).first).to_contain_text("holiday.png was not classified")
    # The app keeps working: the next upload is classified, the bad one stays reported.
    ui.upload(page, "Images to classify", [demo_image("Trouser")])
    ui.wait_for_text(page, re.compile(r"\(\d+(\.\d+)?\s?%\)"), timeout=120)
    assert all("holiday.png" in e for e in ui.error_texts(page))
    # Removing the bad file clears its error.
    page.locator('[data-testid="stFileChip"]').filter(has_text="holiday.png").locator(
        '[data-testid="stFileChipDeleteBtn"] button, button[data-testid="stFileChipDeleteBtn"]').first.click()
    ui.wait_idle(page)
    assert not ui.error_texts(page)
    ui.wait_for_text(page, re.compile(r"\(\d+(\.\d+)?\s?%\)"), timeout=60)
