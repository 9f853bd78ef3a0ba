"""Browser fixtures: a real ``streamlit run`` server and Debian's Chromium driven by Playwright.

``app`` starts ``streamlit run streamlit_app.py`` on a free localhost port over a fresh
workspace and waits for ``/_stcore/health``; ``page`` opens a Chromium tab. When a test
fails, a full-page screenshot and the server's log are kept under
``test-artifacts/e2e/<test>/`` (or ``$TLCORE_E2E_ARTIFACTS``).

Without Playwright or Chromium the browser tests are skipped, except where
``TLCORE_REQUIRE_BROWSER=1`` (CI sets it): there they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.server import StreamlitServer

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TLCORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("TLCORE_E2E_ARTIFACTS", ROOT / "test-artifacts" / "e2e"))


def _unavailable(reason: str) -> None:
    if os.environ.get("TLCORE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (TLCORE_REQUIRE_BROWSER=1: the browser tests must run here)")
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -r requirements-dev.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TLCORE_CHROMIUM)")
    # The app shares two cores with the other tests: give every assertion the patience that
    # actions already have (Playwright's own default for expect() is 5 s).
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, browser) -> Iterator[StreamlitServer]:
    """One server per test module, over a workspace of its own."""
    server = StreamlitServer(tmp_path_factory.mktemp("e2e-ws"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo_model(app) -> Path:
    """A short real run in the module's workspace: the demo data, EfficientNet-Lite0 with its
    ImageNet weights, feature extraction, 3 epochs at 64 px (with its test report)."""
    from tlcore.config import TrainSpec
    from tlcore.datasets import ensure_demo
    from tlcore.trainer import train
    from tlcore.workspace import Workspace

    ws = Workspace(app.workspace)
    ensure_demo(ws)
    run = ws.models_dir / "demo-e2e"
    if not (run / "model.keras").is_file():
        train(TrainSpec(dataset="demo", image_size=64, method="feature_extraction", epochs=3), ws, run_dir=run)
    return run


def _artifact_dir(nodeid: str) -> Path:
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:120]


@pytest.fixture
def page(request, browser, app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        out = _artifact_dir(request.node.nodeid)
        out.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(out / "page.png"), full_page=True)
        except Exception as exc:  # the page may be gone; keep the log anyway
            (out / "screenshot-error.txt").write_text(str(exc))
        if app.log_path.is_file():
            shutil.copy(app.log_path, out / "server.log")
        (out / "browser-errors.txt").write_text("\n".join(errors))
    context.close()
