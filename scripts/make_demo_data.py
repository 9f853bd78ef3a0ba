"""Rebuild demo_data/fashion-mnist-demo from Debian's dataset-fashion-mnist package.

Development-time only (the result is committed): 50 training images per class.
Usage: python scripts/make_demo_data.py
"""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tlcore.datasets._idx import FASHION_MNIST_CLASSES, find_fashion_mnist, import_idx  # noqa: E402

out = ROOT / "demo_data" / "fashion-mnist-demo"
found = find_fashion_mnist()
if found is None:
    sys.exit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist")
if out.exists():
    shutil.rmtree(out)
import_idx({"all": found["train"]}, out, class_names=FASHION_MNIST_CLASSES, per_class=50)
n = sum(1 for _ in out.rglob("*.png"))
size = sum(p.stat().st_size for p in out.rglob("*.png"))
print(f"wrote {n} images, {size / 1024:.0f} KiB, to {out}")
