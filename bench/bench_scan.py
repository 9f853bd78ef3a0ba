"""Benchmark ``scan_dataset``: a first scan and a no-change rescan of N realistic JPEGs.

Generates (once, then reuses) a folder-per-class tree of photo-like 400x300
JPEGs — smooth gradients, blobs and sensor-like noise, so each file is a
realistic 20-60 KB rather than a few hundred bytes — then times:

- the first scan (every file read, hashed, header parsed, decoded at 1/8 scale);
- a rescan with the first scan's index as ``previous`` (nothing changed: no file
  should be read).

Usage::

    python bench/bench_scan.py                  # 10,000 images in /tmp/tlcore-bench-scan-10000
    python bench/bench_scan.py -n 2000 --workers 1
    python bench/bench_scan.py --dir /data/big --no-generate   # an existing dataset

Note: the generated files are in the OS page cache right after generation, so the
first scan measures CPU cost (what dominates on an SSD); a cold spinning disk adds
its own read time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tlcore.datasets._scan import ScanOptions, scan_dataset  # noqa: E402

WIDTH, HEIGHT = 400, 300
MARKER = ".bench-complete"  # hidden: ignored by the scan


def _textures(seed: int, count: int = 24) -> np.ndarray:
    """Photo-like base textures: low-frequency blobs plus finer detail, uint8 (count, H, W, 3)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, HEIGHT, WIDTH, 3), np.uint8)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for i in range(count):
        coarse = rng.normal(0, 40, (HEIGHT // 25 + 1, WIDTH // 25 + 1, 3)).astype(np.float32)
        blobs = np.asarray(
            Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((WIDTH, HEIGHT), Image.BICUBIC),
            np.float32,
        )
        medium = rng.normal(0, 18, (HEIGHT // 4, WIDTH // 4, 3)).astype(np.float32)
        medium = np.asarray(
            Image.fromarray(np.clip(medium + 128, 0, 255).astype(np.uint8)).resize((WIDTH, HEIGHT), Image.BILINEAR),
            np.float32,
        ) - 128
        angle = rng.uniform(0, np.pi)
        grad = (np.cos(angle) * xx / WIDTH + np.sin(angle) * yy / HEIGHT)[..., None] * rng.uniform(-90, 90, 3)
        out[i] = np.clip(blobs + medium + grad, 0, 255).astype(np.uint8)
    return out


def _make_chunk(args: tuple[str, int, int, int]) -> int:
    """Write images ``start..stop-1`` of a class folder; returns the bytes written."""
    folder, start, stop, seed = args
    rng = np.random.default_rng(seed)
    textures = _textures(seed % 7)
    total = 0
    for i in range(start, stop):
        base = textures[rng.integers(len(textures))]
        img = np.roll(base, (int(rng.integers(HEIGHT)), int(rng.integers(WIDTH))), axis=(0, 1))
        tint = rng.integers(-40, 40, 3).astype(np.int16)
        noise = rng.integers(-6, 7, (HEIGHT, WIDTH, 1), dtype=np.int16)
        img = np.clip(img.astype(np.int16) + tint + noise, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=int(rng.integers(80, 93)))
        data = buf.getvalue()
        Path(folder, f"img_{i:06d}.jpg").write_bytes(data)
        total += len(data)
    return total


def generate(root: Path, n: int, classes: int = 10) -> None:
    """Write ``n`` JPEGs in ``classes`` folders under ``root`` (skipped when already complete)."""
    marker = root / MARKER
    if marker.exists() and json.loads(marker.read_text()).get("n") == n:
        print(f"reusing {n} generated images in {root}")
        return
    t0 = time.perf_counter()
    jobs = []
    per_class = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    for c, count in enumerate(per_class):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, count, 250):
            jobs.append((str(folder), start, min(count, start + 250), 1000 * c + start))
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        total = sum(pool.map(_make_chunk, jobs))
    marker.write_text(json.dumps({"n": n, "bytes": total}))
    print(f"generated {n} images ({total / n / 1024:.0f} KB on average) in {root} in {time.perf_counter() - t0:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--images", type=int, default=10_000, help="number of images (default 10000)")
    parser.add_argument("--dir", type=Path, default=None, help="dataset folder (default /tmp/tlcore-bench-scan-N)")
    parser.add_argument("--workers", type=int, default=None, help="scan threads (default: CPU count)")
    parser.add_argument("--no-generate", action="store_true", help="scan --dir as it is")
    args = parser.parse_args(argv)

    root = args.dir or Path(f"/tmp/tlcore-bench-scan-{args.images}")
    if not args.no_generate:
        generate(root, args.images)
    load = os.getloadavg()
    options = ScanOptions(workers=args.workers)

    t0, c0 = time.perf_counter(), time.process_time()
    first = scan_dataset(root, options=options)
    t_first, c_first = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    again = scan_dataset(root, previous=first.index, options=options)
    t_again = time.perf_counter() - t0

    n = len(first.index)
    print(f"cpus: {os.cpu_count()}, scan workers: {first.stats['workers']}, load average before: {load[0]:.1f}")
    print(f"images:              {n} ({int(first.index['usable'].sum())} usable, {len(first.problems)} problems)")
    print(f"first scan:          {t_first:.2f} s  ({n / t_first:.0f} images/s, files_read={first.stats['files_read']}, "
          f"{c_first:.1f} CPU-s used: {1000 * c_first / max(n, 1):.2f} ms per image)")
    print(f"rescan (no change):  {t_again:.2f} s  (files_read={again.stats['files_read']}, "
          f"files_reused={again.stats['files_reused']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
