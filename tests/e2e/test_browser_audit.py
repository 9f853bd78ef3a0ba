"""The Datasets page's Audit tab in Chromium: run an audit, relabel one flagged image, exclude
another, undo, and check the override manifest on disk each time.

One ``streamlit run`` server serves the module over a fresh workspace; the test registers a
small synthetic dataset in it and runs the audit from the page (the background job, with the
bundled ImageNet weights, at 32 px).
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tests.helpers import auditgen as ag
from tlcore.audit import load_audit
from tlcore.datasets import add_dataset, dataset_splits, overrides_path
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

NAME = "pets"
CLASSES = ("cat", "dog", "owl")


def manifest(ws: Workspace) -> list[tuple[str, str, str]]:
    """The decisions as the file on disk holds them: (relpath, action, label) per line."""
    path = overrides_path(ws, NAME)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [(d["relpath"], d["action"], d["label"]) for d in map(json.loads, lines)]


def card(page, i: int):
    """The ``i``-th card of the Labels list (its container's key, ``tlui.audit_widgets``)."""
    return page.locator(f".st-key-aud_card_lab_{i}")


def choose_in(page, where, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` inside ``where`` (the first click on a card's
    selectbox may only focus it; the arrow key then opens its list)."""
    box = where.get_by_label(label)
    box.click()
    page.wait_for_timeout(300)
    if box.get_attribute("aria-expanded") != "true":
        box.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).click()
    ui.wait_idle(page)
    expect(box).to_have_value(option)


def test_run_the_audit_then_relabel_and_exclude_from_the_audit_tab(page, app):
    ws = Workspace(app.workspace)
    root = ag.photo_tree(ws.root / "pets", {c: 6 for c in CLASSES}, size=(48, 40))
    add_dataset(ws, NAME, root)

    ui.goto(page, app.url, f"Datasets?dataset={NAME}")
    ui.open_tab(page, "Audit")
    expect(page.get_by_text(f"{NAME} has not been audited yet")).to_be_visible()
    ui.fill(page, "Image size (px)", 32)
    ui.fill(page, "Folds", 3)
    ui.click(page, "Run audit")
    ui.wait_for_text(page, re.compile(r"Audit finished in"), timeout=300)
    ui.wait_idle(page)
    ui.assert_no_errors(page)
    issues = load_audit(ws, NAME).label_issues()
    assert len(issues) >= 2, "the random photos should give the audit flags to show"
    first, second = (issues.iloc[i] for i in range(2))

    # The first flag: its thumbnail, given and suggested class; relabel it to the class not suggested.
    one = card(page, 0)
    expect(one).to_contain_text(first["relpath"])
    expect(one).to_contain_text(f"given {first['label']} → suggested {first['suggested']}")
    expect(one.locator('[data-testid="stImage"] img')).to_have_count(1)
    target = next(c for c in CLASSES if c not in (first["label"], first["suggested"]))
    choose_in(page, one, "Relabel as", target)
    one.get_by_role("button", name="Relabel", exact=True).click()
    ui.wait_idle(page)
    expect(card(page, 0)).to_contain_text(f"Relabelled to {target}")
    assert manifest(ws) == [(first["relpath"], "relabel", target)]
    ui.tab(page, "Audit").scroll_into_view_if_needed()
    expect(ui.tab(page, "Audit")).to_have_attribute("aria-selected", "true")  # the tab kept its place

    # The second: exclude it.
    card(page, 1).get_by_role("button", name="Exclude", exact=True).click()
    ui.wait_idle(page)
    expect(card(page, 1)).to_contain_text("Excluded")
    assert manifest(ws) == [(first["relpath"], "relabel", target), (second["relpath"], "exclude", "")]
    splits = dataset_splits(ws, NAME).set_index("relpath")
    assert splits.loc[first["relpath"], "label"] == target and second["relpath"] not in splits.index
    assert (root / second["relpath"]).is_file()  # the image file is never touched
    ui.shot(page, "datasets-audit")

    # Undo the exclusion: gone from the manifest, the card's actions are back.
    card(page, 1).get_by_role("button", name="Undo", exact=True).click()
    ui.wait_idle(page)
    expect(card(page, 1).get_by_role("button", name="Exclude", exact=True)).to_be_visible()
    assert manifest(ws) == [(first["relpath"], "relabel", target)]
    ui.open_tab(page, re.compile(r"^Decisions"))
    expect(page.get_by_role("button", name="Download the decisions (CSV)")).to_be_enabled()
    ui.assert_no_errors(page)
