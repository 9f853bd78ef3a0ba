"""tlcore.datasets._report: the registry table, scan sentences and problem views the pages show."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from tlcore.datasets import (
    REGISTRY_COLUMNS,
    add_dataset,
    filter_problems,
    identical_copies,
    load_index,
    load_problems,
    name_from_filename,
    problem_counts,
    problems_advice,
    registry_table,
    scan_dataset,
    scan_summary,
)


def _problems(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["severity", "kind", "relpath"])


def test_registry_table_has_a_row_per_dataset_and_the_columns_asked_for(workspace, tiny_dataset):
    add_dataset(workspace, "tiny", tiny_dataset)
    records = workspace.list_datasets()
    full = registry_table(records)
    assert list(full.columns) == list(REGISTRY_COLUMNS)
    row = full.set_index("name").loc["tiny"]
    assert (row["images"], row["classes"], row["problems"], row["source"]) == (15, 3, 0, "folder")
    assert row["scanned"] and row["path"] == str(tiny_dataset.resolve())
    some = registry_table(records, ("name", "images"))
    assert list(some.columns) == ["name", "images"] and list(some["name"]) == list(full["name"])


def test_registry_table_of_nothing_is_empty_with_its_columns():
    table = registry_table([], ("name", "path"))
    assert table.empty and list(table.columns) == ["name", "path"]


def test_registry_table_refuses_an_unknown_column():
    with pytest.raises(ValueError, match=r"Unknown registry columns\. Received: \['size'\]"):
        registry_table([], ("name", "size"))


def test_scan_summary_and_advice_for_a_clean_scan(tiny_dataset):
    result = scan_dataset(tiny_dataset)
    assert scan_summary(result) == "15 images in 3 classes, 0 problems."
    assert problems_advice(result, "folder") is None


def test_advice_names_what_was_left_out_and_the_way_to_fix_it(tiny_dataset):
    (tiny_dataset / "cat" / "broken.png").write_bytes(b"not a png")
    (tiny_dataset / "dog" / "notes.txt").write_text("hello")
    result = scan_dataset(tiny_dataset)
    assert scan_summary(result) == f"15 images in 3 classes, {len(result.problems)} problems."
    folder = problems_advice(result, "folder")
    assert "1 file(s) it cannot use" in folder and "warning(s)" in folder
    assert folder.endswith("fix or delete those files in the folder, then press Rescan.")
    assert "upload it again" in problems_advice(result, "upload")


def test_advice_for_warnings_only(tiny_dataset):
    (tiny_dataset / "dog" / "notes.txt").write_text("hello")
    advice = problems_advice(scan_dataset(tiny_dataset), "folder")
    assert advice.startswith("The scan found 1 warning(s) (such as skipped non-image files")
    assert "cannot use" not in advice


def test_problem_counts_put_errors_first_then_the_most_frequent():
    probs = _problems(("warning", "duplicate", "a"), ("error", "corrupt", "b"), ("warning", "skipped", "c"),
                      ("warning", "skipped", "d"))
    counts = problem_counts(probs)
    assert counts.values.tolist() == [["corrupt", "error", 1], ["skipped", "warning", 2],
                                      ["duplicate", "warning", 1]]


def test_problem_counts_say_what_to_do_about_each_kind():
    probs = _problems(("warning", "duplicate", "a"), ("warning", "duplicate", "b"), ("error", "corrupt", "c"))
    probs["fix"] = ["Delete the extra copies.", "Delete the extra copies.", "Replace it."]
    counts = problem_counts(probs).set_index("kind")
    assert counts.loc["duplicate", "fix"] == "Delete the extra copies." and counts.loc["corrupt", "fix"] == "Replace it."


def test_identical_copies_group_duplicates_and_label_conflicts_with_their_classes(workspace, tiny_dataset):
    shutil.copy(tiny_dataset / "cat" / "cat_000.png", tiny_dataset / "cat" / "copy.png")  # a duplicate in cat
    shutil.copy(tiny_dataset / "cat" / "cat_001.png", tiny_dataset / "dog" / "clash.png")  # in cat and in dog
    add_dataset(workspace, "tiny", tiny_dataset)
    copies = identical_copies(load_problems(workspace, "tiny"), load_index(workspace, "tiny"))
    groups = [g for _, g in copies.groupby("group", sort=True)]
    assert [(g["kind"].iloc[0], list(zip(g["relpath"], g["label"]))) for g in groups] == [
        ("conflicting_labels", [("cat/cat_001.png", "cat"), ("dog/clash.png", "dog")]),  # conflicts first
        ("duplicate", [("cat/cat_000.png", "cat"), ("cat/copy.png", "cat")]),
    ]
    assert "Decide which class" in groups[0]["fix"].iloc[0] and "Delete the extra copies" in groups[1]["fix"].iloc[0]
    assert copies["path"].map(os.path.isfile).all()
    assert identical_copies(load_problems(workspace, "tiny").iloc[0:0], load_index(workspace, "tiny")).empty


def test_filter_problems_by_severity_kind_and_literal_text():
    probs = _problems(("error", "corrupt", "cat/Broken(1).png"), ("warning", "skipped", "dog/notes.txt"),
                      ("error", "truncated", "dog/half.jpg"))
    assert list(filter_problems(probs, ["error"], ["corrupt", "truncated"])["relpath"]) == [
        "cat/Broken(1).png", "dog/half.jpg"]
    assert list(filter_problems(probs, ["error", "warning"], ["corrupt", "skipped"], " DOG/ ")["relpath"]) == [
        "dog/notes.txt"]
    assert list(filter_problems(probs, ["error"], ["corrupt"], "broken(1)")["relpath"]) == ["cat/Broken(1).png"]
    assert filter_problems(probs, [], ["corrupt"]).empty


@pytest.mark.parametrize("filename, name", [
    ("pets.zip", "pets"),
    ("My pets (2).zip", "My-pets-2"),
    ("../../etc/passwd.zip", "passwd"),
    ("__weird__.zip", "weird"),
    ("(1).zip", "1"),
    ("().zip", ""),
    ("()..zip", ""),
    ("x" * 100 + ".zip", "x" * 64),
])
def test_name_from_filename(filename, name):
    assert name_from_filename(filename) == name
