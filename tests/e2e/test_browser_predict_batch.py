"""Batch prediction in Chromium: upload a zip of demo images in class folders, watch the progress bar,
read the table with its correct column, download the CSV.

The model is made by hand (``tests.helpers.handmodel``: a real Keras model over the demo's ten
classes, no training), so the test spends its time on the page, not on training.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tests.helpers.handmodel import channel_model, write_model_folder
from tlcore.datasets import DEMO_PATH
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

CLASSES = sorted(p.name for p in DEMO_PATH.iterdir() if p.is_dir())
PER_CLASS = 3
PICKED = CLASSES[:4]


@pytest.fixture(scope="module")
def hand_run(app) -> Path:
    ws = Workspace(app.workspace)
    return write_model_folder(ws.models_dir / "demo-hand", channel_model(len(CLASSES), 16), CLASSES,
                              spec={"dataset": "demo"})


@pytest.fixture
def demo_zip(tmp_path) -> Path:
    """``PER_CLASS`` demo images of each of ``PICKED`` in one folder per class, plus a file that is no image."""
    out = tmp_path / "demo-batch.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for cls in PICKED:
            for img in sorted((DEMO_PATH / cls).iterdir())[:PER_CLASS]:
                zf.write(img, f"demo-batch/{cls}/{img.name}")
        zf.writestr("demo-batch/README.txt", "not an image")
    return out


def test_batch_zip_progress_table_and_csv(page, app, hand_run, demo_zip):
    n = PER_CLASS * len(PICKED)
    ui.goto(page, app.url, "Predict?model=run:demo-hand", timeout=180)  # the first visit imports TensorFlow
    expect(page.get_by_role("heading", name="Predict")).to_be_visible()
    page.get_by_text("Batch: a folder or a zip", exact=True).click()
    ui.wait_idle(page)
    ui.upload(page, "Zip of images", [demo_zip])
    page.get_by_role("button", name="Classify every image").click()
    progress = page.locator('[data-testid="stProgress"]').first
    expect(progress).to_be_visible(timeout=60_000)
    ui.wait_idle(page, 120)
    expect(progress).to_contain_text(f"Classified {n} of {n} images")
    ui.assert_no_errors(page)
    expect(page.locator('[data-testid="stDataFrame"]').last).to_be_visible()
    accuracy = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text("Accuracy", exact=True))
    expect(accuracy).to_contain_text(re.compile(r"\d+\.\d %"))
    expect(page.get_by_text(re.compile(rf"{n} images in .*; 1 other file skipped; accuracy"))).to_be_visible()
    button = page.locator('[data-testid="stDownloadButton"]').first
    expect(button).to_be_visible()
    with page.expect_download() as info:
        button.get_by_role("button").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert len(rows) == n and {"file", "label_1", "confidence_1", "true_label", "correct"} <= set(rows[0])
    assert {r["true_label"] for r in rows} == set(PICKED)
    assert {r["correct"] for r in rows} <= {"True", "False"}
