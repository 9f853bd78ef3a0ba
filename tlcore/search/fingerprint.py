"""A study's dataset fingerprint: what its trials train on, small enough to keep in the study.

Workers on several machines share a study (PostgreSQL), each training on the dataset registered in
its own workspace under the study's dataset name. Nothing made those copies alike: a machine with
two images of 500 replaced, another relabel decision or another split trained without a word, and
the study's trials, compared as if alike, came from different data. ``search create`` therefore
keeps this fingerprint in the study (``attrs.DATA_FINGERPRINT``), and ``study.check_dataset_here`` compares
each worker's workspace with it before the worker starts.

The fingerprint is computed from what a trial trains on: ``tlcore.datasets.dataset_splits`` (the
scan index after the override manifest's relabels and exclusions, split with the study's split
settings), the images of the train, val and test splits only. Each is one line
``split, label, relpath, sha1`` (the content hash the scan stored), so a changed file, label,
split or name changes it; the image files themselves are not read (a file changed on disk since
the last scan is seen after ``datasets rescan``). 60,000 images (a synthetic index): about 0.2-0.3 s,
of which 0.04 s is the hashing and the rest ``dataset_splits``, which every trial runs anyway.

It holds the overall digest, the image count and, per split and class, a count and a digest: the
per-class entries say compactly where two copies differ (``compare``), and no per-image list is
kept, so the study's attribute stays small: about 60 bytes per split and class (some 18 kB for a
hundred classes in three splits).

Example:

>>> a = {"version": 1, "images": 2, "digest": "x",
...      "classes": {"train/cat": {"n": 1, "digest": "a"}, "val/cat": {"n": 1, "digest": "b"}}}
>>> b = {"version": 1, "images": 2, "digest": "y",
...      "classes": {"train/cat": {"n": 1, "digest": "c"}, "val/cat": {"n": 1, "digest": "b"}}}
>>> compare(a, b)
['train/cat: same count (1), different files or labels']
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tlcore.config import SplitSpec
from tlcore.workspace import Workspace

__all__ = ["VERSION", "dataset_fingerprint", "fingerprint_of", "compare", "same", "usable_fingerprint"]

VERSION = 1  # the format; a stored fingerprint of another version is not compared
_SPLITS = ("train", "val", "test")
_CLASS_DIGEST = 16  # hex digits kept per class: ample to tell two copies apart, and small


def dataset_fingerprint(ws: Workspace, dataset: str, split: SplitSpec | None = None) -> dict[str, Any]:
    """The fingerprint of ``dataset`` as a trial in workspace ``ws`` trains on it (``fingerprint_of``).

    ``split``: the split the trials use (a study's ``val_fraction``/``test_fraction``/``split_seed``
    over the dataset's saved split); None: the dataset's saved split, as ``dataset_splits`` reads it.

    Raises:
        NotFoundError: the dataset is not registered. ConfigError: its override manifest has a bad
            line. (Both as ``dataset_splits`` raises them: a trial would fail on them too.)
    """
    from tlcore.datasets import dataset_splits

    return fingerprint_of(dataset_splits(ws, dataset, split))


def fingerprint_of(index: pd.DataFrame) -> dict[str, Any]:
    """The fingerprint of a split index (columns ``relpath``, ``label``, ``split``, ``sha1``).

    Returns ``{"version", "images", "digest", "classes": {"SPLIT/CLASS": {"n", "digest"}}}``: the
    images in the train, val and test splits (unusable ones, split "", train nothing), the sha1 of
    their sorted lines, and per split and class their count and a shortened digest.
    """
    rows = index[index["split"].fillna("").astype(str).isin(_SPLITS)]
    sha = rows["sha1"].fillna("").astype(str) if "sha1" in rows else pd.Series("", index=rows.index)
    key = rows["split"].astype(str) + "/" + rows["label"].astype(str)
    lines = (key + "\t" + rows["relpath"].astype(str) + "\t" + sha + "\n").sort_values(kind="stable")
    overall = hashlib.sha1()
    classes: dict[str, dict[str, Any]] = {}
    # sorted lines are grouped by their "split/class" prefix; one pass hashes both levels
    for k, group in lines.groupby(key.loc[lines.index], sort=True):
        text = "".join(group.tolist()).encode()
        overall.update(text)
        classes[str(k)] = {"n": int(len(group)), "digest": hashlib.sha1(text).hexdigest()[:_CLASS_DIGEST]}
    return {"version": VERSION, "images": int(len(rows)), "digest": overall.hexdigest(), "classes": classes}


def usable_fingerprint(raw: Any) -> dict[str, Any] | None:
    """``raw`` when it is a fingerprint this module can compare (this version, the fields typed);
    else None (none stored, another version, a storage written by other code): nothing to check."""
    if not isinstance(raw, Mapping) or raw.get("version") != VERSION:
        return None
    classes = raw.get("classes")
    if not isinstance(raw.get("digest"), str) or not isinstance(classes, Mapping):
        return None
    if not all(isinstance(v, Mapping) and isinstance(v.get("n"), int) for v in classes.values()):
        return None
    return dict(raw)


def same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two fingerprints describe the same training data."""
    return a.get("digest") == b.get("digest") and a.get("images") == b.get("images")


def _order(key: str) -> tuple[int, str]:
    split, _, label = key.partition("/")
    return (_SPLITS.index(split) if split in _SPLITS else len(_SPLITS), label)


def compare(stored: Mapping[str, Any], here: Mapping[str, Any], *, here_word: str = "here",
            stored_word: str = "on the study's machine") -> list[str]:
    """Where fingerprint ``here`` differs from ``stored``: one line per split and class, train first.

    "train/Shirt: 40 images here, 42 on the study's machine"; "val/Bag: same count (12), different
    files or labels"; [] when they are the same. ``here_word``/``stored_word`` name the two sides
    ("now"/"before" for a dataset changed in its own workspace).
    """
    if same(stored, here):
        return []
    mine, theirs = here.get("classes") or {}, stored.get("classes") or {}
    out = []
    for key in sorted(set(mine) | set(theirs), key=_order):
        a, b = mine.get(key), theirs.get(key)
        n_here, n_stored = (a or {}).get("n", 0), (b or {}).get("n", 0)
        if n_here != n_stored:
            out.append(f"{key}: {_images(n_here)} {here_word}, {n_stored or 'none'} {stored_word}")
        elif a is not None and b is not None and a.get("digest") != b.get("digest"):
            out.append(f"{key}: same count ({n_here}), different files or labels")
    if not out:  # the per-class digests are shortened: they could agree where the whole does not
        out.append(f"same classes and counts ({here.get('images')} images), different files")
    return out


def _images(n: int) -> str:
    return "no images" if n == 0 else f"{n} image{'s' if n != 1 else ''}"
