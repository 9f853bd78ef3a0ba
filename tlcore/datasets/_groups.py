"""Near-duplicate groups that the split keeps on one side.

The split (``_split.assign_splits``) gives each image a place from a seeded hash of its
content, so exact duplicates always land together. Near-duplicates (a resized,
re-encoded or cropped copy) have different bytes; once ``tlcore.audit`` has found them,
it saves their groups here, and every later split hashes each group member by the
group's key (the smallest content hash among its members) instead of its own: the whole
group lands on one side, train, val or test. Images in no group keep their place.

``<workspace>/datasets/<name>/split_groups.json``::

    {"groups": [["train/a/1.png", "train/a/1-copy.jpg"], ...], "source": {...}}

written atomically (a concurrent reader sees the old groups or the new ones). Pre-split
datasets (``train/``, ``val/``, ``test/`` folders) keep the split their folders give; only a
validation part carved out of ``train/`` follows the groups, and the audit reports
near-duplicates across the folders as leakage to resolve by hand.

Entry points: ``save_split_groups`` (the audit), ``load_split_groups`` and ``group_keys``
(``_ops.dataset_splits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tlcore._fsutil import atomic_write_json, read_json
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace

__all__ = ["save_split_groups", "load_split_groups", "group_keys", "split_groups_path"]

GROUPS_FILE = "split_groups.json"


def split_groups_path(ws: Workspace, name: str) -> Path:
    return ws.dataset_dir(name, create=False) / GROUPS_FILE


def save_split_groups(ws: Workspace, name: str, groups: Sequence[Sequence[str]], *,
                      source: dict[str, Any] | None = None) -> Path:
    """Store the near-duplicate groups (lists of relpaths; groups of one are dropped) that the split
    keeps together from now on; an empty list removes every grouping."""
    ws.get_dataset(name)
    clean = [sorted({str(r) for r in g}) for g in groups]
    clean = sorted((g for g in clean if len(g) > 1), key=lambda g: g[0])
    path = split_groups_path(ws, name)
    atomic_write_json(path, {"groups": clean, "source": source or {}})
    return path


def load_split_groups(ws: Workspace, name: str) -> list[list[str]]:
    """The saved groups ([] when none; a damaged file counts as none: the split then falls back to
    each image's own hash, as before any audit)."""
    try:
        data = read_json(split_groups_path(ws, name), default=None)
    except TLCoreError:
        return []
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        return []
    return [[str(r) for r in g] for g in groups if isinstance(g, list)]


def group_keys(index: pd.DataFrame, groups: Sequence[Sequence[str]]) -> pd.Series | None:
    """Per row of ``index``, the split key of its group ("" for an image in no group), or None when no
    group has two members in the index. The key is the smallest ``sha1`` (else relpath) among the
    members present, so it does not depend on which audit found the group."""
    if not groups or len(index) == 0:
        return None
    rel = index["relpath"].astype(str)
    own = index["sha1"].fillna("").astype(str) if "sha1" in index else pd.Series("", index=index.index)
    own = own.where(own != "", rel)
    key_of = dict(zip(rel, own))
    out: dict[str, str] = {}
    for g in groups:
        members = [r for r in g if r in key_of]
        if len(members) < 2:
            continue
        key = min(key_of[r] for r in members)  # that member stays put; the others follow it
        for r in members:
            out[r] = key
    if not out:
        return None
    return rel.map(lambda r: out.get(r, "")).astype(object)
