"""Datasets described for people: the registry as a table, what a scan found, the problem report.

What the Datasets and Home pages show about datasets, as plain data and plain sentences, so the
pages only lay them out (and Markdown-escape them: nothing here escapes anything):

- ``registry_table``       the registered datasets, one row each (``REGISTRY_COLUMNS``)
- ``scan_summary``         "N images in C classes, P problems." for a scan that just finished
- ``problems_advice``      what the problems of a new dataset's scan mean and what to do
- ``problem_counts``       the problem report summed by kind and severity, with what to do
- ``identical_copies``     the files behind its duplicate and label-conflict rows, grouped by content
- ``filter_problems``      the rows of the problem report a person asked to see
- ``name_from_filename``   a valid dataset name from an uploaded archive's file name
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from tlcore.datasets._scan import ScanResult
from tlcore.workspace import DatasetRecord

__all__ = [
    "REGISTRY_COLUMNS",
    "registry_table",
    "scan_summary",
    "problems_advice",
    "problem_counts",
    "identical_copies",
    "COPY_KINDS",
    "filter_problems",
    "name_from_filename",
]

REGISTRY_COLUMNS = ("name", "images", "classes", "problems", "source", "layout", "scanned", "path")
COPY_KINDS = ("conflicting_labels", "duplicate")  # the problem kinds about files with identical content


def registry_table(records: Iterable[DatasetRecord], columns: Sequence[str] = REGISTRY_COLUMNS) -> pd.DataFrame:
    """The registered datasets as a table, one row each, with ``columns`` (a subset of
    ``REGISTRY_COLUMNS``, in that order); empty, with the columns, when there are none."""
    unknown = [c for c in columns if c not in REGISTRY_COLUMNS]
    if unknown:
        raise ValueError(f"Unknown registry columns. Received: {unknown}; expected some of {list(REGISTRY_COLUMNS)}.")
    rows = [
        {"name": r.name, "images": r.num_images, "classes": r.num_classes, "problems": r.num_problems,
         "source": r.source, "layout": r.layout, "scanned": r.scanned_at or "", "path": r.path}
        for r in records
    ]
    return pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=list(columns))


def scan_summary(result: ScanResult) -> str:
    """``"500 images in 10 classes, 0 problems."``: the usable images, classes and problems a scan found."""
    idx = result.index
    images = int(idx["usable"].sum()) if len(idx) else 0
    return f"{images:,} images in {len(result.classes)} classes, {len(result.problems):,} problems."


def problems_advice(result: ScanResult, source: str, *, cli_name: str | None = None) -> str | None:
    """What the problems a new dataset's scan found mean and what to do about them; None when
    there were none. ``source`` is the dataset's source ("upload" for an uploaded archive: the
    fix is a new archive; otherwise the folder is fixed in place and rescanned). ``cli_name``:
    the dataset's name, for the CLI's advice, which names commands instead of the Datasets
    page's Problems tab and Rescan button."""
    probs = result.problems
    errors = int((probs["severity"] == "error").sum()) if len(probs) else 0
    warnings = len(probs) - errors
    if not errors and not warnings:
        return None
    if errors:
        found = (f"{errors:,} file(s) it cannot use (damaged, unreadable or not images), left out; "
                 "the good images were added")
        if warnings:
            found += f", with {warnings:,} warning(s)"
    else:
        found = f"{warnings:,} warning(s) (such as skipped non-image files or duplicates)"
    skipped = int((probs["kind"] == "archive_skipped").sum()) if len(probs) else 0
    if skipped:
        found += (f"; {skipped:,} entr{'y' if skipped == 1 else 'ies'} of the zip file {'was' if skipped == 1 else 'were'}"
                  " not extracted (links, devices, encrypted files or impossible names)")
    if cli_name is None:
        redo = ("remove this dataset, fix or delete those files in the archive and upload it again"
                if source == "upload" else "fix or delete those files in the folder, then press Rescan")
        return f"The scan found {found}. The Problems tab below names each file and what to do: {redo}."
    redo = (f"'python -m tlcore datasets remove {cli_name}', fix or delete those files in the zip file and add it "
            "again" if source == "upload" else
            f"fix or delete those files in the folder, then 'python -m tlcore datasets rescan {cli_name}'")
    return (f"The scan found {found}. 'python -m tlcore datasets inspect {cli_name}' names each file and what to "
            f"do: {redo}.")


def problem_counts(problems: pd.DataFrame) -> pd.DataFrame:
    """The problem report summed: one row per (kind, severity) with its ``count``, errors
    first, the most frequent first within a severity; and, when the report has its ``fix``
    column, what to do about that kind (its most common ``fix``)."""
    counts = (
        problems.groupby(["kind", "severity"]).size().rename("count").reset_index()
        .sort_values(["severity", "count"], ascending=[True, False])
    )
    if "fix" in problems.columns and len(problems):
        common = problems.groupby("kind")["fix"].agg(lambda f: f.value_counts().index[0])
        counts["fix"] = counts["kind"].map(common)
    return counts


def identical_copies(problems: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """The files behind the ``duplicate`` and ``conflicting_labels`` rows of ``problems``,
    grouped by content, so a person sees every copy of an image together.

    Args:
        problems: the problem report, or the part of it shown (a group is kept when any of
            its files has a row here; all its copies are listed).
        index: the dataset's index (``load_index``: with its ``path`` column).

    Returns:
        One row per file: ``group`` (0, 1, …: groups whose copies disagree on the class first,
        then by their first file), ``kind`` ("conflicting_labels" when the classes differ,
        else "duplicate"), ``relpath``, ``label``, ``split``, ``path`` and ``fix`` (what the
        report says to do about that kind); files sorted by path within a group. Empty, with
        those columns, when there are none.
    """
    columns = ["group", "kind", "relpath", "label", "split", "path", "fix"]
    rows = problems[problems["kind"].isin(COPY_KINDS)] if len(problems) else problems
    if not len(rows) or not len(index):
        return pd.DataFrame(columns=columns)
    usable = index[index["usable"].astype(bool) & index["sha1"].astype(str).ne("")]
    wanted = usable.loc[usable["relpath"].isin(rows["relpath"]), "sha1"].unique()
    copies = usable[usable["sha1"].isin(wanted)]
    copies = copies[copies["sha1"].duplicated(keep=False)]
    by_content = copies.groupby("sha1")
    conflict = by_content["label"].transform("nunique").gt(1)
    copies = copies.assign(
        kind=conflict.map({True: "conflicting_labels", False: "duplicate"}),
        _agree=~conflict,
        _first=by_content["relpath"].transform("min"),
    ).sort_values(["_agree", "_first", "relpath"], kind="stable")
    copies["group"] = pd.factorize(copies["sha1"])[0]
    copies["fix"] = copies["kind"].map(rows.groupby("kind")["fix"].first()).fillna("")
    return copies[columns].reset_index(drop=True)


def filter_problems(
    problems: pd.DataFrame, severities: Iterable[str], kinds: Iterable[str], text: str = ""
) -> pd.DataFrame:
    """The problems of one of ``severities`` and one of ``kinds`` whose file path contains
    ``text`` (case-insensitive, taken literally; blank matches every file)."""
    view = problems[problems["severity"].isin(list(severities)) & problems["kind"].isin(list(kinds))]
    text = text.strip()
    if text:
        view = view[view["relpath"].astype(str).str.contains(text, case=False, regex=False, na=False)]
    return view


def name_from_filename(filename: str) -> str:
    """A dataset name from an upload's file name: ``My pets (2).zip`` → ``My-pets-2``.

    Runs of characters a name cannot hold become one ``-``, leading and trailing
    separators go, and the result is cut to 64 characters. It may still be invalid
    (empty, for ``().zip``): registering it says so.
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(filename).stem).strip("-._")
    return stem[:64]
