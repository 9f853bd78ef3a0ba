"""First paint of every page in Chromium, on a fresh server over the demo workspace.

Two ways of arriving at a page, both "cold" for the page (its modules are imported in that
visit, as on a person's first visit after the server started; the operating system's file
cache is warm, as on a machine that has run the app before):

- ``first visit``: one fresh ``streamlit run streamlit_app.py`` over a fresh workspace; Home
  is opened first (it pays the server's warm-up: the first script run of the process, and it
  registers the demo dataset after its title), then every other page in menu order, each in a
  new tab of the same browser (a new Streamlit session; Streamlit's scripts come from the
  browser's cache after Home). The browser test
  ``tests/e2e/test_browser_first_paint.py`` asserts these are under 2 s.
- ``cold server``: with ``--cold-server``, also one fresh server per page, the page being its
  first request (a bookmark opened right after the server started: Streamlit runs the page
  file without ``streamlit_app.py`` then, and the process imports everything for it), in a new
  browser context (nothing cached).

Per page two figures, from the start of the navigation (``tests/e2e/paint.py``): first paint
(the page's title heading drawn) and done (the page's script run ended). With ``--runs N``
each figure is the median of N rounds, each round on new servers and a new workspace.

Usage::

    python bench/bench_first_paint.py                 # 3 rounds, first visits
    python bench/bench_first_paint.py --runs 1 --cold-server
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.paint import PaintTimes, open_timed  # noqa: E402
from tests.e2e.server import StreamlitServer  # noqa: E402
from tlui.common import APP_TITLE, PAGES  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def heading(spec) -> str:
    return APP_TITLE if spec.is_home else spec.title


def first_visits(browser, root: Path) -> dict[str, PaintTimes]:
    server = StreamlitServer(root / "first-visit")
    server.start()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # one browser: tabs share its cache
    try:
        return {spec.title: open_timed(context, f"{server.url}/{spec.url_path}", heading(spec)) for spec in PAGES}
    finally:
        context.close()
        server.stop()


def cold_servers(browser, root: Path) -> dict[str, PaintTimes]:
    out = {}
    for spec in PAGES:
        server = StreamlitServer(root / "cold-server")  # one workspace: the demo is registered once
        server.start()
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            out[spec.title] = open_timed(context, f"{server.url}/{spec.url_path}", heading(spec))
        finally:
            context.close()
            server.stop()
    return out


def table(title: str, rounds: list[dict[str, PaintTimes]]) -> str:
    lines = [f"{title} (median of {len(rounds)}; every round in s)", "",
             "| page | first paint | done | first paint, each round |", "| --- | --- | --- | --- |"]
    for spec in PAGES:
        paints = [r[spec.title].first_paint for r in rounds]
        dones = [r[spec.title].done for r in rounds]
        lines.append(f"| {spec.title} | {statistics.median(paints):.2f} s | {statistics.median(dones):.2f} s "
                     f"| {', '.join(f'{p:.2f}' for p in paints)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds; each figure is their median (default 3)")
    parser.add_argument("--cold-server", action="store_true", help="also a fresh server for each page")
    args = parser.parse_args()
    visits, colds = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for i in range(args.runs):
                with tempfile.TemporaryDirectory(prefix="tl-paint-") as tmp:
                    visits.append(first_visits(browser, Path(tmp)))
                    print(f"round {i + 1}: " + ", ".join(f"{k} {v.first_paint:.2f}/{v.done:.2f}"
                                                         for k, v in visits[-1].items()), flush=True)
                    if args.cold_server:
                        colds.append(cold_servers(browser, Path(tmp)))
                        print(f"round {i + 1}, cold servers: " + ", ".join(
                            f"{k} {v.first_paint:.2f}/{v.done:.2f}" for k, v in colds[-1].items()), flush=True)
        finally:
            browser.close()
    print()
    print(table("First visit of each page in one fresh server, Home first", visits))
    if colds:
        print()
        print(table("Each page as the first request of a fresh server", colds))


if __name__ == "__main__":
    main()
