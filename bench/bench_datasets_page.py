"""Benchmark the Datasets page on a 10,000-image dataset, after its first scan.

Makes (once, then reuses) a folder-per-class tree of 10,000 small JPEGs, registers
it in a throw-away workspace (allowed through ``TLCORE_DATA_ROOTS``), then renders
``pages/1_Datasets.py`` with that dataset selected through Streamlit's AppTest, the
way the server runs the script, and times:

- cold: the first render in the process (empty ``st.cache_data`` caches: the index
  is read from parquet, the summary and split computed, the thumbnails decoded);
- warm rerun: the same session again (every read comes from the caches);
- warm, new session: a second visitor (caches shared, session state fresh);
- other samples: "Show other images" clicked, so 40 new thumbnails are decoded.

The target is under 2 s after the first scan. Two times per render: "script", the
page's run in Streamlit's script thread (what a user waits for on a server before
the browser draws), and "AppTest", the whole ``at.run()`` call including AppTest's
own overhead (an upper bound). Module imports, which a server pays once at
start-up, are timed separately.

Usage::

    python bench/bench_datasets_page.py                 # 10,000 images
    python bench/bench_datasets_page.py -n 2000 --dir /tmp/bench2k
    python bench/bench_datasets_page.py --dir /data/photos --no-generate
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

WIDTH, HEIGHT = 200, 150
CLASSES = 10
MARKER = ".bench-complete"  # hidden: ignored by the scan
REUSE = (Path("/tmp/bench10k"), Path("/tmp/tlcore-bench-scan-10000"))  # made by bench_scan.py, if complete


def _write_chunk(args: tuple[Path, int, int, int]) -> None:
    root, start, stop, per_class = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        cls = i // per_class
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        base = rng.uniform(40, 215, 3).astype(np.float32)
        grad = (xx / WIDTH)[..., None] * rng.uniform(-60, 60, 3) + (yy / HEIGHT)[..., None] * rng.uniform(-60, 60, 3)
        img = base + grad + rng.normal(0, 12, (HEIGHT, WIDTH, 3))
        arr = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"class_{cls:02d}" / f"img_{i:05d}.jpg", quality=85)


def ensure_images(root: Path, n: int, generate: bool) -> Path:
    """Reuse ``root`` if complete (or a complete 10k folder from bench_scan.py), else generate it."""
    if (root / MARKER).exists() or not generate:
        return root
    if n == 10_000:
        for other in REUSE:
            if (other / MARKER).exists():
                return other
    print(f"Generating {n:,} {WIDTH}x{HEIGHT} JPEGs in {root} ...", flush=True)
    t0 = time.perf_counter()
    per_class = -(-n // CLASSES)
    for c in range(CLASSES):
        (root / f"class_{c:02d}").mkdir(parents=True, exist_ok=True)
    step = 250
    chunks = [(root, s, min(n, s + step), per_class) for s in range(0, n, step)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_chunk, chunks))
    (root / MARKER).write_text("ok\n")
    print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return root


_SCRIPT_SECONDS: list[float] = []


def _time_script_runs() -> None:
    """Record how long each script run takes inside Streamlit's script thread, apart
    from AppTest's own set-up (e.g. its ~0.5 s component scan when an AppTest first runs)."""
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    original = ScriptRunner._run_script

    def timed(self, rerun_data):
        t0 = time.perf_counter()
        try:
            return original(self, rerun_data)
        finally:
            _SCRIPT_SECONDS.append(time.perf_counter() - t0)

    ScriptRunner._run_script = timed


def timed_run(at, label: str, results: list[tuple[str, float, float]]):
    _SCRIPT_SECONDS.clear()
    t0 = time.perf_counter()
    at.run(timeout=300)
    dt = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"{label}: the page raised: {[e.value for e in at.exception]}")
    if at.error:
        raise SystemExit(f"{label}: the page showed errors: {[e.value for e in at.error]}")
    results.append((label, sum(_SCRIPT_SECONDS), dt))
    return at


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000, help="images to generate (default 10,000)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench10k_pages"), help="the dataset folder")
    ap.add_argument("--no-generate", action="store_true", help="use --dir as it is")
    args = ap.parse_args()

    root = ensure_images(args.dir, args.n, not args.no_generate).resolve()
    ws_root = Path(tempfile.mkdtemp(prefix="tlcore-bench-page-"))
    os.environ["TLCORE_HOME"] = str(ws_root)
    os.environ["TLCORE_DATA_ROOTS"] = str(root)

    t0 = time.perf_counter()
    import plotly.express  # noqa: F401
    import streamlit  # noqa: F401
    from streamlit.testing.v1 import AppTest

    from tlcore.datasets import add_dataset, ensure_demo
    from tlcore.workspace import Workspace
    imports = time.perf_counter() - t0
    _time_script_runs()

    ws = Workspace(ws_root)
    ensure_demo(ws)  # what the first page view of a new workspace does, once
    t0 = time.perf_counter()
    result = add_dataset(ws, "bench", root)
    first_scan = time.perf_counter() - t0
    n_images = int(result.index["usable"].sum())

    results: list[tuple[str, float, float]] = []
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=300)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = "bench"
    timed_run(at, "cold (first render, empty caches)", results)
    thumbs = sum(len(img.proto.imgs) for img in at.get("image"))
    assert at.selectbox(key="ds_selected").value == "bench"
    timed_run(at, "warm rerun, same session", results)
    timed_run(at, "warm rerun, same session (again)", results)
    other = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=300)
    other.switch_page("pages/1_Datasets.py")
    other.query_params["dataset"] = "bench"
    timed_run(other, "warm, new session", results)
    at.button(key="ds_shuffle_btn").click()
    timed_run(at, f"other samples ({thumbs} new thumbnails)", results)

    print(f"\nDatasets page, dataset of {n_images:,} images ({root}), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"  module imports (once per server process): {imports:6.2f} s")
    print(f"  first scan (add_dataset, not part of the page): {first_scan:6.2f} s")
    print(f"  thumbnails shown per render: {thumbs}")
    print(f"  {'render':<45} {'script':>8} {'AppTest':>8}")
    for label, script, wall in results:
        flag = "ok" if wall < 2.0 else "OVER 2 s"
        print(f"  {label:<45} {script:6.2f} s {wall:6.2f} s  {flag}")
    print("  (script: the page's run in Streamlit's script thread; AppTest: the whole at.run() call, an upper bound)")
    return 0 if all(wall < 2.0 for _, _, wall in results) else 1


if __name__ == "__main__":
    sys.exit(main())
