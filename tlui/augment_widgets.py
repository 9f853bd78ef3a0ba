"""Widgets and cached helpers for the Augmentations page.

- ``param_widget`` draws the widget for one catalogue parameter (slider, range
  slider, checkbox or selectbox), keyed, its value held in ``st.session_state``;
  ``to_widget`` / ``from_widget`` convert between spec values and widget values.
- ``source_from_file`` / ``source_from_upload`` decode and resize a preview source
  image once (``st.cache_data``); ``augmented`` caches the preview images themselves.

Everything here may import streamlit; the augmentation logic stays in ``tlcore.augment``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from tlcore import augment as au
from tlcore.datasets import load_rgb, resize_to

__all__ = [
    "to_widget",
    "from_widget",
    "param_widget",
    "source_from_file",
    "source_from_upload",
    "augmented",
]


def to_widget(ps: au.ParamSchema, value: Any) -> Any:
    """The widget value for a spec value (ranges as tuples, numbers of the widget's type)."""
    if ps.kind == "float_range":
        return (float(value[0]), float(value[1]))
    if ps.kind == "int_range":
        return (int(value[0]), int(value[1]))
    if ps.kind == "float":
        return float(value)
    if ps.kind == "int":
        return int(value)
    if ps.kind == "bool":
        return bool(value)
    return value


def from_widget(ps: au.ParamSchema, value: Any) -> Any:
    """The spec value for a widget value; floats are rounded to hide slider binary noise."""
    if ps.kind == "float_range":
        return [round(float(value[0]), 6), round(float(value[1]), 6)]
    if ps.kind == "int_range":
        return [int(value[0]), int(value[1])]
    if ps.kind == "float":
        return round(float(value), 6)
    if ps.kind == "int":
        return int(value)
    if ps.kind == "bool":
        return bool(value)
    return value


def param_widget(ps: au.ParamSchema, key: str) -> Any:
    """Draw the widget for ``ps`` under ``key`` (whose value must already be in session state)."""
    label, help_ = ps.label, ps.help or None
    if ps.kind == "bool":
        return st.checkbox(label, key=key, help=help_)
    if ps.kind == "choice":
        return st.selectbox(label, options=list(ps.choices), key=key, help=help_)
    if ps.kind in ("float", "float_range"):
        return st.slider(label, min_value=float(ps.min), max_value=float(ps.max), step=float(ps.step or 0.01),
                         key=key, help=help_)
    step = int(ps.step or 1)
    return st.slider(label, min_value=int(ps.min), max_value=int(ps.max), step=step, key=key, help=help_)


def _fit(image: np.ndarray, size: int | None, mode: str) -> np.ndarray:
    return image if size is None else resize_to(image, int(size), mode=mode)  # type: ignore[arg-type]


@st.cache_data(show_spinner=False, max_entries=64)
def source_from_file(path: str, mtime_ns: int, size: int | None, mode: str) -> np.ndarray:
    """A dataset image decoded (``load_rgb``) and resized to ``size`` as training does.

    ``mtime_ns`` is the cache version: an edited file is decoded again.
    Raises ``ImageDecodeError`` (not cached) when it cannot be decoded.
    """
    return _fit(load_rgb(path), size, mode)


@st.cache_data(show_spinner=False, max_entries=16)
def source_from_upload(data: bytes, size: int | None, mode: str) -> np.ndarray:
    """An uploaded image decoded and resized; raises ``ImageDecodeError`` for bad bytes."""
    return _fit(load_rgb(bytes(data)), size, mode)


@st.cache_data(show_spinner=False, max_entries=32)
def augmented(spec_json: str, image: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``tlcore.augment.preview`` of the spec given as JSON (a cheap, stable cache key)."""
    spec = au.AugmentSpec.from_dict(json.loads(spec_json))
    return au.preview(image, spec, n=n, seed=seed)
