"""Timing a page's first paint in Chromium: the browser test and ``bench/bench_first_paint.py`` share it.

``open_timed(context, url, heading)`` opens ``url`` in a new tab of a browser context (a new
Streamlit session, as a person opening a link or a bookmark in a new tab) and returns a ``PaintTimes``, both figures
measured by the browser's own clock from the start of the navigation (``performance.now()``,
whose origin is the navigation start):

- ``first_paint``: the page's title heading (an ``<h1>`` reading exactly ``heading``) is in
  the page, visible, and a frame has been drawn since (``requestAnimationFrame``);
- ``done``: the page's script run has ended (``stApp``'s ``data-test-script-state`` turned
  ``notRunning`` for the last time before the app stayed idle, ``ui.wait_idle``).

Both include loading Streamlit's own page and scripts from the server, the websocket
connection and the page's script run on the server, which on a page's first visit in a
server process includes importing its modules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.e2e import ui

__all__ = ["PaintTimes", "open_timed"]

_WATCH = """
(() => {
  const heading = %s;
  const t = {heading: null, painted: null, done: null, ran: false};
  window.__tlPaint = t;
  let state = null;
  const check = () => {
    const now = performance.now();
    if (t.heading === null) {
      for (const h of document.querySelectorAll('h1')) {
        if (h.textContent.trim() === heading && h.getClientRects().length > 0) {
          t.heading = now;
          requestAnimationFrame(() => { t.painted = performance.now(); });
          break;
        }
      }
    }
    const app = document.querySelector('[data-testid="stApp"]');
    const s = app ? app.getAttribute('data-test-script-state') : null;
    if (s !== state) {
      state = s;
      if (s === 'running') t.ran = true;
      if (s === 'notRunning' && t.ran) t.done = now;
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true,
                                                 characterData: true});
})();
"""


@dataclass(frozen=True)
class PaintTimes:
    """Seconds from the start of the navigation: the heading drawn, the script run ended."""

    first_paint: float
    done: float


def open_timed(context, url: str, heading: str, *, timeout: float = 180.0) -> PaintTimes:
    """Open ``url`` in a new tab of ``context`` and time its first paint and its end (``PaintTimes``).

    Each tab is a new Streamlit session; the tabs of one context share the browser's cache,
    as the tabs of a person's browser do (Streamlit's scripts come from the server once).

    Args:
        context: a Playwright ``BrowserContext``.
        url: the page's full URL.
        heading: the text of the page's title (``st.title``).
        timeout: seconds to wait for the heading and for the run to end. Defaults to 180.
    """
    page = context.new_page()
    try:
        page.add_init_script(_WATCH % json.dumps(heading))
        page.goto(url, wait_until="commit", timeout=timeout * 1000)
        page.wait_for_function("() => window.__tlPaint && window.__tlPaint.painted !== null",
                               timeout=timeout * 1000)
        ui.wait_idle(page, timeout)
        t = page.evaluate("() => window.__tlPaint")
        return PaintTimes(first_paint=t["painted"] / 1000, done=max(t["done"] or 0, t["painted"]) / 1000)
    finally:
        page.close()
