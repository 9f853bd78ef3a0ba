"""Import IDX files (the MNIST / Fashion-MNIST format) into a folder-per-class dataset.

IDX layout: two zero bytes, a type code, the number of dimensions, each dimension
as a big-endian int32, then the data in big-endian order. Files may be gzipped.

Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (under
``/usr/share/datasets/fashion-mnist/``) is found automatically; ``TLCORE_FASHION_MNIST``
points at another folder holding the four standard files.

Entry points: ``read_idx`` (one file to a numpy array), ``import_idx`` (an
images/labels pair to PNG files, one folder per class), ``find_fashion_mnist`` and
``import_fashion_mnist`` (train/ and test/ folders, a pre-split dataset).
``_ops.add_idx_dataset`` / ``add_fashion_mnist`` write them under
``<workspace>/data/<name>/`` and register them; the CLI's ``datasets import-idx`` /
``import-fashion-mnist`` and the Datasets page call those.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tlcore._fsutil import atomic_directory
from tlcore.errors import ConfigError, DatasetError

__all__ = [
    "read_idx",
    "import_idx",
    "find_fashion_mnist",
    "import_fashion_mnist",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
]

FASHION_MNIST_CLASSES = (
    "T-shirt-top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array.

    Raises:
        DatasetError: the file is missing, not IDX, or shorter than its header says.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read the IDX file: {exc.strerror}.", received=str(path)) from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError("The gzipped IDX file is corrupt.", received=str(path), fix="Download it again.") from exc
    fix = "Give an MNIST-style IDX file such as train-images-idx3-ubyte(.gz)."
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetError("This is not an IDX file (bad magic number).", received=str(path), fix=fix)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError("The IDX header is incomplete.", received=str(path), fix=fix)
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]]).newbyteorder(">")
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header < expected:
        raise DatasetError(
            f"The IDX file is truncated: its header promises shape {shape} ({expected} bytes of data), "
            f"but only {len(raw) - header} bytes follow.",
            received=str(path),
            fix="Download it again.",
        )
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _write_images(
    images: np.ndarray,
    labels: np.ndarray,
    out: Path,
    class_names: Sequence[str],
    *,
    per_class: int | None,
    prefix: str,
    progress: Callable[[int, int], None] | None,
) -> int:
    counts = {c: 0 for c in range(len(class_names))}
    for name in class_names:
        (out / name).mkdir(parents=True, exist_ok=True)
    total = len(images)
    written = 0
    for i, (img, lab) in enumerate(zip(images, labels)):
        lab = int(lab)
        if per_class is not None and counts[lab] >= per_class:
            continue
        counts[lab] += 1
        Image.fromarray(np.ascontiguousarray(img)).save(out / class_names[lab] / f"{prefix}{i:05d}.png", optimize=True)
        written += 1
        if progress and written % 500 == 0:
            progress(i + 1, total)
        if per_class is not None and all(v >= per_class for v in counts.values()):
            break
    return written


def _check_pair(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DatasetError(
            "The images file must hold N×H×W (grayscale) or N×H×W×3 images.", received=f"shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise DatasetError("The images file must hold unsigned bytes (IDX type 0x08).", received=str(images.dtype))
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(
            "The labels file must hold one label per image.",
            received=f"{len(images)} images, labels of shape {labels.shape}",
            fix="Pair each images file with its own labels file.",
        )
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    names = list(class_names) if class_names else [str(i) for i in range(n_classes)]
    if len(names) < n_classes:
        raise DatasetError(
            f"The labels go up to {n_classes - 1}, but only {len(names)} class names were given.",
            received=names,
            fix=f"Give {n_classes} names, one per label, in label order.",
        )
    for n in names:
        if not n or n.startswith(".") or "/" in n or "\\" in n or n in ("..",):
            raise DatasetError("Class names must be usable as folder names.", received=repr(n))
    if len(set(names)) != len(names):
        raise DatasetError("Class names must be distinct.", received=names)
    return names


def import_idx(
    splits: dict[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    out_dir: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    per_class: int | dict[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write IDX image/label pairs as PNG files in a folder-per-class tree.

    Args:
        splits: ``{"train": (images, labels), ...}``. With one entry named ``"all"``
            the result is a plain folder-per-class dataset; otherwise a pre-split one
            (``out_dir/train/<class>/...``).
        out_dir: the folder to create. It must not exist; it appears complete or not at all.
        class_names: one name per label. Defaults to the label numbers.
        per_class: keep at most this many images per class (the first ones in file
            order), or a dict of such limits per split (a split it leaves out: all). 0 for
            a split writes its class folders empty: with ``{"test": 0}`` a pre-split
            dataset without test images (the benchmarks' training subsets); 0 for the
            ``train`` split is refused (nothing could be trained on). Defaults to all.

    Returns:
        ``out_dir``.
    """
    limits = {split: per_class.get(split) if isinstance(per_class, dict) else per_class for split in splits}
    for split, limit in limits.items():
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ConfigError("The number of images to keep per class must be a whole number, 0 or more.",
                              received=f"per_class={limit!r}" + (f" ({split})" if isinstance(per_class, dict) else ""),
                              fix="Leave it out to keep every image; 0 keeps none of that split.")
    if limits and all(limit == 0 for limit in limits.values()):
        raise ConfigError("Nothing would be imported: the limit is 0 images per class for every split.",
                          received=f"per_class={per_class!r}", fix="Leave it out to keep every image.")
    if limits.get("train") == 0:  # a pre-split dataset without training images: nothing could learn from it
        raise ConfigError(
            "A dataset without training images cannot be trained on: the limit is 0 training images per class.",
            received=f"per_class={per_class!r}",
            fix="Leave it out to keep every training image, or keep 1 or more a class (--train-per-class N). "
                "To import fewer images, leave out the test images instead (--test-per-class 0): the validation "
                "and test images then come from the training ones.")
    out = Path(out_dir)
    if out.exists():
        raise DatasetError(
            "The target folder already exists.", received=str(out), fix="Choose a new dataset name or remove it first."
        )
    arrays = {}
    for split, (img_path, lab_path) in splits.items():
        images, labels = read_idx(img_path), read_idx(lab_path)
        names = _check_pair(images, labels, class_names)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        arrays[split] = (images, labels, names)
    with atomic_directory(out) as tmp:
        for split, (images, labels, names) in arrays.items():
            target = tmp if split == "all" else tmp / split
            limit = per_class.get(split) if isinstance(per_class, dict) else per_class
            _write_images(images, labels, target, names, per_class=limit, prefix="", progress=progress)
    return out


def find_fashion_mnist(extra_dirs: Sequence[str | os.PathLike[str]] = ()) -> dict[str, tuple[Path, Path]] | None:
    """Locate the four Fashion-MNIST IDX files (gzipped or not), or return None."""
    dirs = [Path(d) for d in extra_dirs]
    if os.environ.get("TLCORE_FASHION_MNIST"):
        dirs.append(Path(os.environ["TLCORE_FASHION_MNIST"]))
    dirs += list(FASHION_MNIST_DIRS)
    for d in dirs:
        found: dict[str, tuple[Path, Path]] = {}
        for split, (img, lab) in _FILES.items():
            pair = []
            for stem in (img, lab):
                cand = [d / f"{stem}.gz", d / stem]
                hit = next((c for c in cand if c.is_file()), None)
                if hit is None:
                    break
                pair.append(hit)
            if len(pair) == 2:
                found[split] = (pair[0], pair[1])
        if len(found) == 2:
            return found
    return None


def import_fashion_mnist(
    out_dir: str | os.PathLike[str],
    *,
    per_class: int | dict[str, int] | None = None,
    splits: Sequence[str] = ("train", "test"),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Import Fashion-MNIST (found by ``find_fashion_mnist``) as a pre-split dataset."""
    found = find_fashion_mnist()
    if found is None:
        raise DatasetError(
            "Fashion-MNIST was not found.",
            received=", ".join(str(d) for d in FASHION_MNIST_DIRS),
            fix="Install it with 'apt-get install dataset-fashion-mnist', or set TLCORE_FASHION_MNIST "
            "to a folder holding the four IDX files.",
        )
    unknown = [s for s in splits if s not in found]
    if unknown:
        raise DatasetError("Unknown Fashion-MNIST split.", received=unknown, fix="Use 'train' and/or 'test'.")
    return import_idx(
        {s: found[s] for s in splits}, out_dir, class_names=FASHION_MNIST_CLASSES, per_class=per_class, progress=progress
    )
