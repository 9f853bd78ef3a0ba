"""The override manifest: people's decisions about single images (keep, relabel, exclude).

Image files are never touched or moved. A decision is a line of
``<workspace>/datasets/<name>/overrides.jsonl``, one JSON object per line::

    {"seq": 3, "relpath": "train/Shirt/12.png", "action": "relabel", "label": "T-shirt",
     "flag": "label_issue", "note": "", "at": "2026-12-02T10:00:00+00:00"}

- ``exclude``: the image disappears from the split, training, search and evaluation;
- ``relabel``: its label becomes ``label`` (a class of the dataset);
- ``keep``: nothing changes; the flag it answers (``flag``: "label_issue",
  "near_duplicate", "blurry", ...) is marked reviewed.

Several decisions about one image stack: the latest counts (``current_overrides``), and
undoing it brings back the one before, if any. The file is written atomically
(``tlcore._fsutil``) and the file as it was is kept beside it as ``overrides.jsonl.prev``.
A line that is not a valid decision is refused with its line number (``load_overrides``,
and so ``dataset_splits`` and everything that trains on the dataset). A decision about a
file that is no longer in the index is reported (``stale_overrides``, and
``apply_overrides``' ``attrs["overrides"]``) and skipped, never fatal.

This module is the format, the reader and ``apply_overrides``; the operations that change
the manifest (``add_overrides``, ``undo_overrides``, ``import_overrides_csv``: they check
the images and classes against the index) are ``_overrides``. Readers: ``_ops.dataset_splits``
applies the current decisions, so the split, the trainer, the search, the scout, the audit
and the export checks all see them; ``tlcore.audit`` marks reviewed images.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tlcore._fsutil import atomic_write_text
from tlcore.errors import ConfigError
from tlcore.workspace import Workspace

__all__ = [
    "OVERRIDE_ACTIONS",
    "OVERRIDE_COLUMNS",
    "Override",
    "overrides_path",
    "load_overrides",
    "current_overrides",
    "apply_overrides",
    "stale_overrides",
    "overrides_csv",
]

OVERRIDE_ACTIONS = ("keep", "relabel", "exclude")
OVERRIDE_COLUMNS = ("seq", "relpath", "action", "label", "flag", "note", "at")
MANIFEST = "overrides.jsonl"
_MAX_TEXT = 500


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class Override:
    """One decision about one image (see the module docstring)."""

    seq: int
    relpath: str
    action: str
    label: str = ""
    flag: str = ""
    note: str = ""
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Override:
        """A validated decision; ``ValueError`` (with a short reason) when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(OVERRIDE_COLUMNS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(OVERRIDE_COLUMNS)})")
        seq = data.get("seq")
        if isinstance(seq, str) and seq.strip().isdigit():
            seq = int(seq)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ValueError(f"seq must be a whole number from 1 up, got {seq!r}")
        relpath = data.get("relpath")
        if not isinstance(relpath, str) or not relpath.strip() or relpath.startswith("/") or "\x00" in relpath:
            raise ValueError(f"relpath must be a path inside the dataset folder, got {relpath!r}")
        action = data.get("action")
        if action not in OVERRIDE_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(OVERRIDE_ACTIONS)}, got {action!r}")
        text = {}
        for key in ("label", "flag", "note", "at"):
            v = data.get(key) or ""
            if not isinstance(v, str) or len(v) > _MAX_TEXT:
                raise ValueError(f"{key} must be text of at most {_MAX_TEXT} characters")
            text[key] = v
        if action == "relabel" and not text["label"].strip():
            raise ValueError("a relabel decision needs the new label")
        if action != "relabel" and text["label"]:
            raise ValueError(f"only relabel decisions carry a label, not {action}")
        return cls(seq=seq, relpath=relpath, action=action, **text)


def overrides_path(ws: Workspace, name: str) -> Path:
    """``<workspace>/datasets/<name>/overrides.jsonl`` (it may not exist yet)."""
    return ws.dataset_dir(name, create=False) / MANIFEST


def line_error(where: str, lineno: int, line: str, why: str, fix: str) -> ConfigError:
    """The error for line ``lineno`` of a manifest or an imported CSV: which line, what is wrong."""
    shown = line if len(line) <= 200 else line[:200] + "..."
    return ConfigError(f"Line {lineno} of {where} is not a valid decision: {why}.", received=repr(shown), fix=fix)


def _corrupt(path: Path, lineno: int, line: str, why: str) -> ConfigError:
    return line_error(f"the override manifest {path}", lineno, line, why,
                      f"Correct or delete that line (the file as it was before its last change is {path.name}.prev "
                      "beside it); nothing trains on this dataset until the manifest reads.")


def _parse(text: str, path: Path) -> list[Override]:
    out: list[Override] = []
    seen: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = Override.from_dict(json.loads(line))
        except json.JSONDecodeError as exc:
            raise _corrupt(path, lineno, line, f"not JSON ({exc.msg})") from exc
        except ValueError as exc:
            raise _corrupt(path, lineno, line, str(exc)) from exc
        if item.seq in seen:
            raise _corrupt(path, lineno, line, f"seq {item.seq} appears twice")
        seen.add(item.seq)
        out.append(item)
    return out


def load_overrides(ws: Workspace, name: str) -> list[Override]:
    """Every decision in the manifest, oldest first ([] when there is none).

    Raises:
        NotFoundError: the dataset is not registered.
        ConfigError: a line is not a valid decision (the message names the line).
    """
    ws.get_dataset(name)
    path = overrides_path(ws, name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as exc:
        raise ConfigError("The override manifest is not UTF-8 text.", received=str(path),
                          fix=f"Restore it from {path.name}.prev beside it, or delete it.") from exc
    return _parse(text, path)


def current_overrides(decisions: Iterable[Override]) -> dict[str, Override]:
    """The decision that counts for each image: its latest."""
    out: dict[str, Override] = {}
    for d in sorted(decisions, key=lambda d: d.seq):
        out[d.relpath] = d
    return out


def write_overrides(ws: Workspace, name: str, decisions: list[Override]) -> None:
    """Replace the manifest with ``decisions`` (atomically; the old file kept as ``.prev``). The caller
    holds the dataset's overrides lock (``_overrides``)."""
    path = overrides_path(ws, name)
    if path.exists():
        atomic_write_text(path.with_name(MANIFEST + ".prev"), path.read_text(encoding="utf-8"))
    atomic_write_text(path, "".join(json.dumps(d.to_dict(), sort_keys=False) + "\n" for d in decisions))


def apply_overrides(index: pd.DataFrame, decisions: Iterable[Override]) -> pd.DataFrame:
    """The index as the decisions make it: excluded images dropped, relabelled ones with their new
    ``label`` (the old one in ``original_label``), and ``override`` naming each image's current
    decision ("" for none). Without decisions the index comes back unchanged.

    ``attrs["overrides"]`` says what happened: ``{"applied": n, "excluded": n, "relabelled": n,
    "kept": n, "missing": [relpath, ...]}`` (decisions about files the index no longer holds:
    skipped).
    """
    cur = current_overrides(decisions)
    if not cur:
        return index
    out = index.copy()
    rel = out["relpath"].astype(str)
    present = set(rel)
    missing = sorted(r for r in cur if r not in present)
    actions = rel.map(lambda r: cur[r].action if r in cur else "")
    new_labels = rel.map(lambda r: cur[r].label if r in cur and cur[r].action == "relabel" else None)
    out["original_label"] = out["label"]
    out["override"] = actions.to_numpy()
    relabel = new_labels.notna().to_numpy()
    out.loc[relabel, "label"] = new_labels[relabel].to_numpy()
    out = out[actions.to_numpy() != "exclude"].reset_index(drop=True)
    out.attrs["overrides"] = {
        "applied": int(sum(1 for r in cur if r in present)),
        "excluded": int((actions == "exclude").sum()),
        "relabelled": int(relabel.sum()),
        "kept": int((actions == "keep").sum()),
        "missing": missing,
    }
    return out


def stale_overrides(index: pd.DataFrame, decisions: Iterable[Override]) -> list[Override]:
    """The current decisions about files the index no longer holds (reported, then skipped)."""
    present = set(index["relpath"].astype(str))
    return [d for r, d in current_overrides(decisions).items() if r not in present]


def overrides_csv(ws: Workspace, name: str) -> str:
    """Every decision as CSV text (header ``seq,relpath,action,label,flag,note,at``), oldest first."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(OVERRIDE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for d in load_overrides(ws, name):
        writer.writerow(d.to_dict())
    return buf.getvalue()


