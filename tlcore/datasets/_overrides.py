"""Changing the override manifest: record, undo, import decisions about single images.

The manifest's format, its reader and how it is applied are ``_manifest``'s; here are the
operations that change it, each checked against the dataset (the images must be in its
index, a new label must be one of its classes) and each made under the dataset's
overrides lock (``Workspace.lock``): read, change, write atomically. Two processes
deciding at once therefore both land, one after the other, and a crash leaves the old
manifest or the new one, never half of either.

- ``add_overrides(ws, name, relpaths, action, label=..., flag=..., note=...)``: a decision that
  changes nothing (excluding an excluded image, relabelling one to the label it has) is skipped,
  ``unchanged_decisions`` says which and why; an absolute path inside the dataset's folder names
  the image too (``dataset_relpath``), one outside it is refused
- ``undo_overrides(ws, name, relpaths=... | seqs=... | last=True)``: the latest decision of
  an image goes, its earlier one (if any) counts again
- ``import_overrides_csv(ws, name, text, replace=False)``: every row checked first; one bad
  row refuses the whole file, naming its line, and the manifest stays as it was
  (``overrides_csv`` in ``_manifest`` writes the same format)

Users: ``python -m tlcore datasets relabel | exclude | keep | overrides`` (``cli._audit``, which says
which images were skipped),
the Datasets page's Audit tab.

Example:

>>> add_overrides(ws, "fmnist", ["train/Shirt/12.png"], "relabel", label="T-shirt/top", flag="label_issue")
>>> add_overrides(ws, "fmnist", ["train/Bag/7.png"], "exclude", note="two bags in one photo")
>>> undo_overrides(ws, "fmnist", relpaths=["train/Bag/7.png"])
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterable
from pathlib import Path

from tlcore.datasets._manifest import (
    OVERRIDE_ACTIONS,
    OVERRIDE_COLUMNS,
    Override,
    _now,
    current_overrides,
    line_error,
    load_overrides,
    write_overrides,
)
from tlcore.datasets._ops import load_index, load_scan_info
from tlcore.errors import ConfigError
from tlcore.workspace import Workspace

__all__ = ["add_overrides", "dataset_relpath", "import_overrides_csv", "unchanged_decisions", "undo_overrides"]


def _classes(ws: Workspace, name: str) -> list[str]:
    classes = list(load_scan_info(ws, name).get("classes") or [])
    return classes or sorted(load_index(ws, name)["label"].astype(str).unique())


def dataset_relpath(ws: Workspace, name: str, path: str | os.PathLike[str]) -> str:
    """``path`` as the index of dataset ``name`` names an image: a relative path as it is (relative to
    the dataset's folder); an absolute one (``~`` expanded) inside the dataset's folder, its folders'
    links followed, relative to that folder.

    Raises:
        ConfigError: an absolute path outside the dataset's folder.
    """
    text = os.fspath(path)
    given = Path(text).expanduser()
    if not given.is_absolute():
        return text
    root = Path(ws.get_dataset(name).path).expanduser()
    # as typed first; then with the folders' links followed (the image itself may be a link the scan follows)
    for base, image in ((Path(os.path.normpath(root)), Path(os.path.normpath(given))),
                        (Path(os.path.realpath(root)), Path(os.path.realpath(given.parent)) / given.name)):
        if image != base and image.is_relative_to(base):
            return image.relative_to(base).as_posix()
    raise ConfigError(f"This image is not inside the folder of dataset {name!r}, {root}.", received=text,
                      fix=f"Name images inside {root}: relative to it, as 'python -m tlcore datasets audit {name}' "
                          "lists them (e.g. cat/1.jpg), or as absolute paths inside it.")


def _checked_relpaths(ws: Workspace, name: str, relpaths: Iterable[str], action: str, label: str) -> list[str]:
    """``relpaths`` (absolute ones made relative: ``dataset_relpath``), once each, after checking the
    decision: a known action, a label only for relabel (and one of the classes), images of the index.

    Raises:
        ConfigError: as ``add_overrides``.
    """
    rels = list(dict.fromkeys(dataset_relpath(ws, name, str(r)) for r in relpaths))
    if not rels:
        raise ConfigError("Name at least one image to decide about.", received="no images",
                          fix="Give the image paths as the audit lists them (relative to the dataset folder).")
    if action not in OVERRIDE_ACTIONS:
        raise ConfigError("Unknown decision.", received=repr(action), fix=f"Use one of {', '.join(OVERRIDE_ACTIONS)}.")
    if action == "relabel":
        classes = _classes(ws, name)
        if label not in classes:
            raise ConfigError("Relabel needs one of the dataset's classes as the new label.", received=repr(label),
                              fix=f"Choose one of: {', '.join(classes)}.")
    elif label:
        raise ConfigError(f"Only relabel decisions take a label, not {action}.", received=f"label={label!r}",
                          fix="Leave the label out.")
    known = set(load_index(ws, name)["relpath"].astype(str))
    unknown = [r for r in rels if r not in known]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        which = ("This image is" if len(rels) == 1 else
                 f"{len(unknown)} of these images {'is' if len(unknown) == 1 else 'are'}")
        raise ConfigError(f"{which} not in the dataset's index.",
                          received=", ".join(unknown[:3]) + more,
                          fix=f"Use paths relative to the dataset folder, as 'python -m tlcore datasets audit {name}' "
                              "lists them; rescan the dataset if the files are new.")
    return rels


def _unchanged(ws: Workspace, name: str, rels: list[str], action: str, label: str,
               decisions: list[Override]) -> dict[str, str]:
    """The images of ``rels`` that the decision would leave as they are, each with why ("is already
    excluded"): an exclusion of an excluded image; a relabel to the label an image has now (its
    own, or the one a relabel gave it; an excluded image is not unchanged: the relabel brings it back)."""
    if action not in ("exclude", "relabel"):
        return {}
    cur = current_overrides(decisions)
    if action == "exclude":
        return {r: "is already excluded" for r in rels if r in cur and cur[r].action == "exclude"}
    index = load_index(ws, name)
    own = dict(zip(index["relpath"].astype(str), index["label"].astype(str)))
    out = {}
    for r in rels:
        d = cur.get(r)
        if d is not None and d.action == "relabel":
            if d.label == label:
                out[r] = f"is already relabelled as {label!r}"
        elif (d is None or d.action == "keep") and own.get(r) == label:
            out[r] = f"already has the label {label!r}"
    return out


def unchanged_decisions(ws: Workspace, name: str, relpaths: Iterable[str], action: str, *,
                        label: str = "") -> dict[str, str]:
    """The images of ``relpaths`` that ``add_overrides`` would skip, as the index names them, each with
    why, to follow the path in a sentence ("is already excluded", "already has the label 'Bag'"), for a
    caller to say so.

    Raises:
        ConfigError: as ``add_overrides`` (an unknown action or class, no images, unknown images).
    """
    rels = _checked_relpaths(ws, name, relpaths, action, label)
    return _unchanged(ws, name, rels, action, label, load_overrides(ws, name))


def add_overrides(ws: Workspace, name: str, relpaths: Iterable[str], action: str, *, label: str = "",
                  flag: str = "", note: str = "") -> list[Override]:
    """Record one decision for each image of ``relpaths`` (paths inside the dataset folder, as in
    the index's ``relpath`` column; an absolute path inside the folder is taken too: ``dataset_relpath``).

    A decision that would change nothing is not recorded (``unchanged_decisions`` says which and
    why): excluding an image already excluded, relabelling one to the label it has.

    Args:
        ws: the workspace.
        name: a registered dataset.
        relpaths: the images.
        action: "keep", "relabel" or "exclude".
        label: the new label (relabel only): one of the dataset's classes.
        flag: which flag the decision answers ("label_issue", "near_duplicate", "blurry", ...).
        note: free text.

    Returns:
        The new decisions (fewer than the images when some were unchanged).

    Raises:
        ConfigError: an unknown action or class, no images, images the index does not hold, an
            absolute path outside the dataset's folder; or every image would be unchanged (nothing is
            recorded; the message says why).
    """
    rels = _checked_relpaths(ws, name, relpaths, action, label)
    with ws.lock(f"overrides-{name}"):
        decisions = load_overrides(ws, name)
        same = _unchanged(ws, name, rels, action, label, decisions)
        if same and len(same) == len(rels):
            shown = "; ".join(f"{r} {why}" for r, why in list(same.items())[:3])
            more = f"; and {len(same) - 3} more images would not change either" if len(same) > 3 else ""
            raise ConfigError(f"Nothing was recorded: {shown}{more}.", received=", ".join(list(same)[:3]) + (" …" if more else ""),
                              fix=f"See the decisions with 'python -m tlcore datasets overrides {name} --list'.")
        seq = max((d.seq for d in decisions), default=0)
        at = _now()
        new = []
        for r in rels:
            if r in same:
                continue
            seq += 1
            try:
                item = Override.from_dict({"seq": seq, "relpath": r, "action": action, "label": label,
                                           "flag": flag, "note": note, "at": at})
            except ValueError as exc:
                raise ConfigError(f"This decision cannot be recorded: {exc}.", received=r,
                                  fix="Shorten the note or the flag.") from exc
            new.append(item)
        write_overrides(ws, name, decisions + new)
    return new


def undo_overrides(ws: Workspace, name: str, *, relpaths: Iterable[str] | None = None,
                   seqs: Iterable[int] | None = None, last: bool = False) -> list[Override]:
    """Remove decisions: the latest one of each image of ``relpaths``, the ones numbered ``seqs``, or
    (``last``) the most recent of all. An image's earlier decision, if any, counts again.

    Returns:
        The removed decisions.

    Raises:
        ConfigError: nothing to undo (none of the images has a decision, an unknown number).
    """
    with ws.lock(f"overrides-{name}"):
        decisions = load_overrides(ws, name)
        drop: set[int] = set()
        if last and decisions:
            drop.add(max(d.seq for d in decisions))
        if seqs is not None:
            wanted = {int(s) for s in seqs}
            missing = sorted(wanted - {d.seq for d in decisions})
            if missing:
                raise ConfigError("No decision has that number.", received=", ".join(map(str, missing)),
                                  fix=f"See the numbers with 'python -m tlcore datasets overrides {name} --list'.")
            drop |= wanted
        if relpaths is not None:
            cur = current_overrides(decisions)
            rels = [dataset_relpath(ws, name, str(r)) for r in relpaths]
            none = [r for r in rels if r not in cur]
            if none:
                raise ConfigError("These images have no decision to undo.", received=", ".join(none[:3]),
                                  fix=f"See the decisions with 'python -m tlcore datasets overrides {name} --list'.")
            drop |= {cur[r].seq for r in rels}
        if not drop:
            raise ConfigError("There is no decision to undo.", received=f"dataset {name!r}",
                              fix="Name images (relpaths), decision numbers, or undo the last one.")
        removed = [d for d in decisions if d.seq in drop]
        write_overrides(ws, name, [d for d in decisions if d.seq not in drop])
    return removed




def _same_decision(a: Override, b: Override) -> bool:
    return (a.action, a.label, a.flag, a.note) == (b.action, b.label, b.flag, b.note)


def _bad_row(lineno: int, line: str, why: str) -> ConfigError:
    return line_error("the imported CSV", lineno, line, why,
                      "Correct that row and import the file again; the manifest was not changed.")


def import_overrides_csv(ws: Workspace, name: str, text: str, *, replace: bool = False) -> list[Override]:
    """Add the decisions of a CSV (as ``overrides_csv`` writes it; ``seq`` and ``at`` may be left
    empty), or with ``replace`` make them the whole manifest. Every row is checked first: one bad
    row (a malformed field, an unknown class, an image the dataset's index does not hold) refuses
    the whole file, naming its line, and the manifest stays as it was. A file without a row does
    not replace decisions (it would delete them all). When adding, the rows of an image whose last
    row repeats the decision that counts now for it are left out, so importing the same file twice
    adds nothing.

    Returns:
        The decisions added (renumbered after the existing ones unless ``replace``).
    """
    ws.get_dataset(name)
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in OVERRIDE_COLUMNS]
        missing = [c for c in ("relpath", "action") if c not in header]
        if unknown or missing:
            raise ConfigError("The CSV's header is not that of an override export.",
                              received=f"columns {header}",
                              fix=f"The header must be: {','.join(OVERRIDE_COLUMNS)} (seq, label, flag, note and "
                                  "at may be left out).")
        classes = set(_classes(ws, name))
        known = set(load_index(ws, name)["relpath"].astype(str))
        parsed: list[Override] = []
        for row in reader:
            k = reader.line_num
            shown = ",".join("" if v is None else str(v) for v in row.values() if not isinstance(v, list))
            if None in row:
                raise _bad_row(k, shown, "more fields than the header has")
            data = {key: (v or "") for key, v in row.items()}
            data["seq"] = data.get("seq") or len(parsed) + 1
            try:
                item = Override.from_dict(data)
            except ValueError as exc:
                raise _bad_row(k, shown, str(exc)) from exc
            if item.action == "relabel" and item.label not in classes:
                raise _bad_row(k, shown, f"{item.label!r} is not a class of the dataset "
                                         f"({', '.join(sorted(classes))})")
            if item.relpath not in known:
                raise _bad_row(k, shown, f"{item.relpath!r} is not an image of the dataset's index (paths are "
                                         "relative to the dataset folder, as the export writes them; rescan the "
                                         "dataset if the file is new)")
            parsed.append(item)
    except csv.Error as exc:
        raise ConfigError(f"Line {reader.line_num} of the imported CSV cannot be read: {exc}.",
                          received="the imported CSV",
                          fix=f"Export the decisions with 'datasets overrides {name} --export FILE' to see the "
                              "format.") from exc
    with ws.lock(f"overrides-{name}"):
        current = load_overrides(ws, name)
        if replace and not parsed and current:
            raise ConfigError(f"The imported CSV holds no decision: replacing with it would delete all "
                              f"{len(current)} current decisions of {name!r}.",
                              received="a CSV with no rows",
                              fix="Import it without replacing, or undo the decisions one by one.")
        existing = [] if replace else current
        now, wanted = current_overrides(existing), current_overrides(parsed)
        settled = {r for r, d in wanted.items() if r in now and _same_decision(now[r], d)}
        seq = max((d.seq for d in existing), default=0)
        at = _now()
        new = []
        for item in parsed:
            if item.relpath in settled:
                continue  # the file would end where the image stands now (the same file imported again)
            seq += 1
            new.append(dataclasses.replace(item, seq=seq, at=item.at or at))
        write_overrides(ws, name, existing + new)
    return new
