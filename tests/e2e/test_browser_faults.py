"""Faults seen through the browser: the Streamlit server restarts while a study runs, a worker crashes."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from playwright.sync_api import expect

from tests.e2e import ui
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.search import create_study, launch_workers, list_workers
from tlcore.workspace import Workspace

# One Streamlit server and browser at a time: with pytest-xdist (scripts/test.sh) every browser
# test runs on the same worker, in file order.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_search_page_reattaches_after_a_server_restart(page, app):
    ws = Workspace(app.workspace)
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec("restart-study", n_trials=3, epochs=3))
    launch_workers(ws, "restart-study", 1)

    ui.goto(page, app.url, "Search?study=restart-study")
    ui.wait_for_text(page, re.compile(r"Searching: \d+ trial\(s\) running|Finished: 3 of 3"), timeout=180)

    app.restart()  # the server goes down and comes back; its workers run in their own sessions
    assert any(w.alive for w in list_workers(ws, "restart-study")) or _finished(ws, "restart-study")
    page.reload()
    ui.wait_idle(page, 90)
    # The same study is selected again (from the URL) and its progress keeps coming in.
    assert "study=restart-study" in page.url
    ui.wait_for_text(page, "Finished: 3 of 3 trials are done.", timeout=600)
    ui.assert_no_errors(page)


def _finished(ws: Workspace, name: str) -> bool:
    from tlcore.search import list_studies

    return any(s.name == name and s.finished >= 3 for s in list_studies(ws))


def test_a_crashed_worker_is_shown_with_its_log(page, app):
    ws = Workspace(app.workspace)
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec("crash-study", n_trials=50, epochs=50))
    [wid] = launch_workers(ws, "crash-study", 1)
    deadline = time.monotonic() + 180
    worker = None
    while time.monotonic() < deadline:  # wait until it is training, then kill it without warning
        worker = next(w for w in list_workers(ws, "crash-study") if w.worker_id == wid)
        if worker.trial is not None:
            break
        time.sleep(0.5)
    assert worker is not None and worker.trial is not None, "the worker never started a trial"
    os.kill(worker.pid, signal.SIGKILL)

    ui.goto(page, app.url, "Search?study=crash-study")
    warning = page.locator('[data-testid="stAlertContentWarning"]').filter(has_text=f"Worker {wid} crashed")
    expect(warning).to_be_visible(timeout=60_000)
    # It quotes the last line of the worker's log and says what to do.
    last_line = worker.log_path.read_text().strip().splitlines()[-1].strip()
    expect(warning).to_contain_text(last_line[:60])
    expect(warning).to_contain_text("start workers again")
    ui.assert_no_errors(page)
