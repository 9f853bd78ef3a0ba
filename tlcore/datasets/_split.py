"""Deterministic, stratified train/val/test splits that stay put.

Each image's split is a pure function of (seed, its content hash): a seeded hash
gives it a number ``u`` in [0, 1), and the fractions cut [0, 1) into test, val
and train. So

- the same seed always gives the same split;
- adding or removing other images never moves an image (no ranking involved);
- exact duplicates always land in the same split (no leakage from train to test), and so
  do the near-duplicate groups an audit found (``group_keys``, from ``_groups``);
- every class is split in the same proportions in expectation (stratified).

Two exceptions keep small classes usable. A class that would get no train image
(a class of one or two images, or of a few that all hashed into val and test) gets
its image with the largest ``u`` (the one nearest train's share) moved to train: a
class the model never trains on could only count as errors. Then, when a class
with at least three usable images (exact duplicates count once) would get no validation or no test image, its
train image nearest it in ``u`` is moved there (from val or test when train has a
single image; a split's last image never moves).
Such a forced image may move back when the class later grows a naturally assigned
one; classes of a few dozen images or more are practically never affected.

Pre-split datasets (``train/``, ``val/``, ``test/`` folders) keep the split their
folders give; when they have no ``val/`` folder, validation is carved out of
``train/`` by the same hash rule.

Entry points: ``assign_splits(index, spec)`` (a ``split`` value per row: "train",
"val", "test", or "" for unusable rows) and ``split_counts``; ``_ops.dataset_splits``
applies them with the dataset's saved ``SplitSpec`` (``tlcore.config``; its file,
``split.yaml``, read by ``read_split_spec``), and the trainer trains on the result.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tlcore._fsutil import read_text
from tlcore.config import SplitSpec
from tlcore.errors import ConfigError

__all__ = ["assign_splits", "split_counts", "read_split_spec", "SPLITS"]

SPLITS = ("train", "val", "test")


def _unit_hash(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_splits(index: pd.DataFrame, spec: SplitSpec | None = None, *,
                  group_keys: pd.Series | None = None) -> pd.Series:
    """Give each usable image of ``index`` a split; unusable ones get ``""``.

    Args:
        index: a dataset index (columns ``relpath``, ``label``, ``sha1``, ``usable``
            and, for pre-split datasets, ``split``).
        spec: fractions and seed. Defaults to ``SplitSpec()`` (70/15/15, seed 0).
        group_keys: per row, a key that replaces its content hash ("" keeps its own):
            rows sharing a key land in the same split, as exact duplicates do (the
            near-duplicate groups of ``_groups``). Defaults to None.

    Returns:
        A string Series aligned with ``index``: "train", "val", "test" or "".
    """
    spec = spec or SplitSpec()
    out = pd.Series([""] * len(index), index=index.index, dtype=object)
    if len(index) == 0:
        return out
    usable = index["usable"].astype(bool) if "usable" in index else pd.Series(True, index=index.index)
    given = index["split"].fillna("").astype(str) if "split" in index else pd.Series("", index=index.index)
    keys = index["sha1"].fillna("").astype(str) if "sha1" in index else pd.Series("", index=index.index)
    keys = keys.where(keys != "", index["relpath"].astype(str))
    if group_keys is not None:
        grouped = group_keys.reindex(index.index).fillna("").astype(str)
        keys = keys.where(grouped == "", grouped)
    u = pd.Series([_unit_hash(spec.seed, k) for k in keys], index=index.index, dtype=float)

    if given[usable].ne("").all() and usable.any():
        out[usable] = given[usable]
        if not (out == "val").any() and spec.val_fraction > 0:
            # Pre-split without a val/ folder: carve validation out of train.
            share = spec.val_fraction / (1.0 - spec.test_fraction) if (out == "test").any() else spec.val_fraction
            out[(out == "train") & (u < share)] = "val"
        return out

    t_cut = spec.test_fraction
    v_cut = spec.test_fraction + spec.val_fraction
    labels = np.where(u < t_cut, "test", np.where(u < v_cut, "val", "train"))
    out[usable] = pd.Series(labels, index=index.index)[usable]

    for _, rows in index[usable].groupby("label", sort=False):
        ids = rows.index
        # Small classes (an image moves with its exact duplicates): every class trains, with its
        # image nearest train's share; then val and test are not empty when the fraction asks, taken
        # from train, or from the other evaluation split, but never a split's last image.
        if not (out[ids] == "train").any():
            chosen = u[ids].idxmax()
            out[ids[keys[ids] == keys[chosen]]] = "train"
        if keys[ids].nunique() < 3:
            continue
        for split, frac in (("val", spec.val_fraction), ("test", spec.test_fraction)):
            if frac <= 0 or (out[ids] == split).any():
                continue
            for source in ("train", "test" if split == "val" else "val"):
                src = ids[out[ids] == source]
                if keys[src].nunique() > 1:
                    # The image nearest the split's share of [0, 1): test < val < train.
                    chosen = u[src].idxmax() if source == "test" else u[src].idxmin()
                    out[src[keys[src] == keys[chosen]]] = split
                    break
    return out


def split_counts(index: pd.DataFrame, splits: pd.Series) -> pd.DataFrame:
    """A class × split table of image counts (rows: classes, columns: train/val/test/total)."""
    df = pd.DataFrame({"label": index["label"], "split": splits})
    df = df[df["split"] != ""]
    table = pd.crosstab(df["label"], df["split"]).reindex(columns=list(SPLITS), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.index.name = "class"
    return table


def read_split_spec(path: str | os.PathLike[str]) -> SplitSpec:
    """A dataset's saved split settings (``split.yaml``); the default ``SplitSpec()`` when it has none.

    Raises:
        ConfigError: the file is not UTF-8 text, not valid YAML, or not valid split settings; the
            message names the file, which is left as it is.
    """
    path = Path(path)
    fix = (f"Set the split again on the Datasets page (it rewrites {path.name}), or delete the file to use the "
           "default split (70/15/15, seed 0), which may move images between splits.")
    text = read_text(path, what="The dataset's split settings", plural=True, error=ConfigError, fix=fix,
                     folder_fix=fix, denied_fix=fix, other_fix=fix)
    if text is None:
        return SplitSpec()
    try:
        return SplitSpec.from_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"The dataset's split settings are invalid: {exc.message[:1].lower()}{exc.message[1:]}",
                          received=f"{path}: {exc.received}" if exc.received is not None else str(path),
                          fix=fix) from exc
