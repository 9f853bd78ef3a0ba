"""Cached loaders for the pages: dataset indexes, problem reports, summaries, thumbnails.

Every loader takes plain strings and numbers so Streamlit hashes its key cheaply.
A dataset's cached data is keyed by ``(workspace root, name, version)`` where the
version (``dataset_version``) changes whenever the dataset is scanned again, so a
rescan, from the page or from the CLI in another process, is picked up on the next
rerun without clearing anything. Thumbnails are keyed by ``(path, mtime_ns, size)``
with the file's *current* modification time, so an edited image gets a new one.

Streamlit returns a fresh copy of ``st.cache_data`` values on every call, but the
pages still treat them as read-only: copy before adding columns or rows.

The registry itself is not cached: ``Workspace.list_datasets`` reads one small
JSON file (well under a millisecond), so listings are always current.

``cached_model`` (``st.cache_resource``, keyed by path and the run folder's version,
``RunFolder.load_version``: the model file's time with its labels' and metrics') loads a
trained model once per server with ``tlcore.predict.load_model`` and its
``tlcore.gradcam.GradCam``; the Predict and Results pages share it. The data comes
from ``tlcore.datasets``; ``ensure_demo_registered`` registers the demo dataset once
per server and workspace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from tlcore.config import SplitSpec
from tlcore.datasets import (
    apply_overrides,
    assign_splits,
    dataset_summary,
    ensure_demo,
    group_keys,
    identical_copies,
    load_index,
    load_overrides,
    load_problems,
    load_split_groups,
    overrides_path,
    split_counts,
    split_groups_path,
    thumbnail,
)
from tlcore.errors import TLCoreError
from tlcore.runfolder import RunFolder
from tlcore.workspace import DatasetRecord, Workspace

__all__ = [
    "cached_model",
    "GRADCAM_MISSING",
    "ensure_demo_registered",
    "dataset_version",
    "dataset_token",
    "index",
    "problems",
    "problems_csv",
    "copies",
    "overview",
    "samples",
    "split_table",
    "decisions_version",
    "thumb",
    "thumbs",
    "forget_dataset",
]

_SIZE_POINTS = 2000  # distinct (width, height) pairs drawn at most
_ASPECT_BINS = 40


@st.cache_resource(show_spinner="Registering the demo dataset…")
def _demo_once(ws_root: str) -> str | None:
    rec = ensure_demo(Workspace(ws_root))
    return rec.name if rec is not None else None


def ensure_demo_registered(ws: Workspace) -> str | None:
    """Register the bundled demo dataset once per workspace and server process.

    Returns the demo's name, or None when the demo folder is not installed.
    Failures are not cached (the next rerun tries again) and raise ``TLCoreError``.
    """
    return _demo_once(str(ws.root))


def dataset_version(ws: Workspace, rec: DatasetRecord) -> str:
    """A token that changes whenever the dataset is (re)scanned: the registry's
    ``scanned_at`` (whole seconds) plus the index file's modification time."""
    try:
        mtime = (ws.root / "datasets" / rec.name / "index.parquet").stat().st_mtime_ns
    except OSError:
        mtime = 0
    return f"{rec.scanned_at}|{mtime}"


@st.cache_data(show_spinner=False, max_entries=16)
def index(ws_root: str, name: str, scanned_at: str) -> pd.DataFrame:
    """The dataset's index (``tlcore.datasets.load_index``); ``scanned_at`` is the cache version."""
    return load_index(Workspace(ws_root), name)


@st.cache_data(show_spinner=False, max_entries=16)
def problems(ws_root: str, name: str, scanned_at: str) -> pd.DataFrame:
    """The dataset's problem report (``tlcore.datasets.load_problems``)."""
    return load_problems(Workspace(ws_root), name)


@st.cache_data(show_spinner=False, max_entries=16)
def problems_csv(ws_root: str, name: str, scanned_at: str) -> bytes:
    """The problem report as UTF-8 CSV, for the download button."""
    return problems(ws_root, name, scanned_at).to_csv(index=False).encode("utf-8")


@st.cache_data(show_spinner=False, max_entries=16)
def copies(ws_root: str, name: str, scanned_at: str) -> pd.DataFrame:
    """The files of the problem report's duplicates and label conflicts, grouped by content
    (``tlcore.datasets.identical_copies``, over the whole report)."""
    return identical_copies(problems(ws_root, name, scanned_at), index(ws_root, name, scanned_at))


@st.cache_data(show_spinner=False, max_entries=32)
def overview(ws_root: str, name: str, scanned_at: str) -> dict[str, Any]:
    """Everything the Overview tab draws, reduced to small tables.

    Returns a dict with ``summary`` (``dataset_summary``), ``classes`` (class,
    images), ``sizes`` (distinct width × height pairs with their image counts, the
    most common ``_SIZE_POINTS``), ``aspect`` (an aspect-ratio histogram: bin
    start, bin end, images) and ``modes`` / ``formats`` (value, images).
    """
    idx = index(ws_root, name, scanned_at)
    summary = dataset_summary(idx)
    usable = idx[idx["usable"].astype(bool)] if len(idx) else idx
    classes = pd.DataFrame(
        {"class": list(summary["class_counts"]), "images": list(summary["class_counts"].values())}
    )
    if len(usable):
        sizes = (
            usable.groupby(["width", "height"]).size().rename("images").reset_index()
            .sort_values("images", ascending=False).head(_SIZE_POINTS).reset_index(drop=True)
        )
        w = usable["width"].to_numpy(dtype=float)
        h = usable["height"].to_numpy(dtype=float)
        ratio = w[h > 0] / h[h > 0]
        lo, hi = float(ratio.min()), float(ratio.max())
        if hi - lo < 1e-6:
            lo, hi = lo - 0.05, hi + 0.05
        counts, edges = np.histogram(ratio, bins=_ASPECT_BINS, range=(lo, hi))
        aspect = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "images": counts})
        aspect = aspect[aspect["images"] > 0].reset_index(drop=True)
    else:
        sizes = pd.DataFrame({"width": [], "height": [], "images": []})
        aspect = pd.DataFrame({"from": [], "to": [], "images": []})
    modes = pd.DataFrame(list(summary.get("modes", {}).items()), columns=["mode", "images"])
    formats = pd.DataFrame(list(summary.get("formats", {}).items()), columns=["format", "images"])
    return {"summary": summary, "classes": classes, "sizes": sizes, "aspect": aspect,
            "modes": modes, "formats": formats}


@st.cache_data(show_spinner=False, max_entries=64)
def samples(
    ws_root: str, name: str, scanned_at: str, classes: tuple[str, ...], n: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Up to ``n`` usable images of each class in ``classes``, a seeded random pick.

    Returns ``{class: {"total": usable images, "files": [(relpath, path), ...]}}``,
    files sorted by relpath. Only the index is read; no image is opened.
    """
    idx = index(ws_root, name, scanned_at)
    usable = idx[idx["usable"].astype(bool)] if len(idx) else idx
    out: dict[str, dict[str, Any]] = {}
    for cls in classes:
        rows = usable[usable["label"] == cls]
        total = len(rows)
        if total > n:
            rows = rows.sample(n=n, random_state=seed)
        rows = rows.sort_values("relpath")
        out[cls] = {"total": total, "files": list(zip(rows["relpath"].astype(str), rows["path"].astype(str)))}
    return out


def decisions_version(ws_root: str, name: str) -> str:
    """Changes whenever the dataset's override manifest or near-duplicate groups do (a cache key)."""
    ws = Workspace(ws_root)
    stamps = []
    for path in (overrides_path(ws, name), split_groups_path(ws, name)):
        try:
            st_ = path.stat()
            stamps.append(f"{st_.st_mtime_ns}:{st_.st_size}")
        except OSError:
            stamps.append("-")
    return "/".join(stamps)


def dataset_token(ws: Workspace, run_dir: str | os.PathLike[str]) -> str:
    """The version of the dataset a run was trained on, a cache key of what is measured on its test
    split (Results' evaluation, Predict's TTA check): it changes when the dataset is rescanned, and
    when a keep, relabel or exclude decision changes which test images count and how; "" when unknown."""
    try:
        name = RunFolder(run_dir).read_data().get("dataset")
        rec = next((r for r in ws.list_datasets() if r.name == name), None)
    except (TLCoreError, OSError, AttributeError):
        return ""
    if rec is None:
        return ""
    return f"{name}|{dataset_version(ws, rec)}|{decisions_version(str(ws.root), name)}"


@st.cache_data(show_spinner=False, max_entries=64)
def split_table(ws_root: str, name: str, scanned_at: str, val: float, test: float, seed: int,
                decisions: str) -> pd.DataFrame:
    """The class × split table (train/val/test/total) for these split settings, as training splits:
    the override manifest applied and near-duplicate groups kept on one side. ``decisions`` is
    ``decisions_version``'s.

    Raises:
        ConfigError: the override manifest has a line that is not a valid decision.
    """
    # What ``dataset_splits`` does, on the cached index instead of a second parquet read.
    ws = Workspace(ws_root)
    idx = apply_overrides(index(ws_root, name, scanned_at), load_overrides(ws, name))
    keys = group_keys(idx, load_split_groups(ws, name))
    splits = assign_splits(idx, SplitSpec(val_fraction=val, test_fraction=test, seed=seed), group_keys=keys)
    keep = splits != ""
    return split_counts(idx[keep], splits[keep])


@st.cache_data(show_spinner=False, max_entries=2048)
def thumb(path: str, mtime_ns: int, size: int = 128) -> np.ndarray | None:
    """``tlcore.datasets.thumbnail(path, size, box=True)``: a ``size`` × ``size`` letter-boxed preview
    (so a very narrow or very wide image cannot stretch a grid), or None when the file cannot be decoded."""
    try:
        return thumbnail(path, size=size, box=True)
    except (TLCoreError, OSError):
        return None


def thumbs(paths: Sequence[str], size: int = 128) -> list[np.ndarray | None]:
    """Thumbnails of ``paths`` (None for a file that is gone or cannot be decoded)."""
    out: list[np.ndarray | None] = []
    for p in paths:
        try:
            mtime = os.stat(p).st_mtime_ns
        except OSError:
            out.append(None)
            continue
        out.append(thumb(p, mtime, size))
    return out


def forget_dataset() -> None:
    """Drop the cached data of every dataset (after a removal, so nothing of it lingers)."""
    for fn in (index, problems, problems_csv, copies, overview, samples, split_table):
        fn.clear()


@st.cache_resource(show_spinner="Loading the model (the first one after the server started starts TensorFlow too)…",
                   max_entries=4)
def cached_model(path: str, run_version: int):
    """A trained model and its Grad-CAM explainer, shared by all sessions and pages: read-only.

    ``run_version`` (``RunFolder.load_version``: the model file's and its companions' times) is
    part of the key so a replaced model, label file or temperature is loaded again; failures
    are not cached. Returns ``(LoadedModel, GradCam | None)``: None for a model without the
    workbench's head (a ``.keras`` file made elsewhere), which still predicts;
    ``gradcam_missing`` says why.
    """
    from tlcore.errors import ConfigError
    from tlcore.gradcam import GradCam
    from tlcore.predict import load_model

    loaded = load_model(path)
    try:
        return loaded, GradCam(loaded.model, temperature=loaded.temperature)  # calibrated probabilities
    except ConfigError:
        return loaded, None


GRADCAM_MISSING = ("Grad-CAM is not available for this model: it needs the workbench's head (a global average "
                   "pooling 'pool' and a linear 'classifier'), which a model made elsewhere may not have. "
                   "Its predictions are not affected.")
"""What the pages say where a model (``cached_model`` gave no explainer) cannot be explained."""

