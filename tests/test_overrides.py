"""The override manifest: decisions stack and undo, the split and training read them, bad input.

Keep / relabel / exclude decisions live in ``<workspace>/datasets/<name>/overrides.jsonl``;
``dataset_splits`` (what the split, training, search, the scout and the audit read) applies
them. Also the near-duplicate groups the split keeps on one side.
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from tlcore.config import SplitSpec, TrainSpec
from tlcore.datasets import (
    Override,
    add_dataset,
    add_overrides,
    apply_overrides,
    assign_splits,
    current_overrides,
    dataset_splits,
    group_keys,
    import_overrides_csv,
    load_index,
    load_overrides,
    overrides_csv,
    overrides_path,
    rescan_dataset,
    save_split_groups,
    stale_overrides,
    undo_overrides,
)
from tlcore.errors import ConfigError


@pytest.fixture
def pets(workspace, make_image_tree):
    root = make_image_tree(workspace.root / "pets", {"cat": 10, "dog": 10, "owl": 10}, size=(16, 12))
    add_dataset(workspace, "pets", root)
    return root


def test_decisions_stack_and_undo(workspace, pets):
    add_overrides(workspace, "pets", ["cat/cat_000.png"], "relabel", label="dog", flag="label_issue")
    add_overrides(workspace, "pets", ["cat/cat_000.png", "dog/dog_001.png"], "exclude", note="blurry")
    decisions = load_overrides(workspace, "pets")
    assert [(d.seq, d.action) for d in decisions] == [(1, "relabel"), (2, "exclude"), (3, "exclude")]
    cur = current_overrides(decisions)
    assert cur["cat/cat_000.png"].action == "exclude"  # the latest counts
    removed = undo_overrides(workspace, "pets", relpaths=["cat/cat_000.png"])
    assert [d.seq for d in removed] == [2]
    assert current_overrides(load_overrides(workspace, "pets"))["cat/cat_000.png"].action == "relabel"  # back
    undo_overrides(workspace, "pets", last=True)
    assert "dog/dog_001.png" not in current_overrides(load_overrides(workspace, "pets"))
    undo_overrides(workspace, "pets", seqs=[1])
    assert load_overrides(workspace, "pets") == []
    with pytest.raises(ConfigError, match="no decision to undo"):
        undo_overrides(workspace, "pets", last=True)
    with pytest.raises(ConfigError, match="no decision to undo"):
        undo_overrides(workspace, "pets", relpaths=["owl/owl_000.png"])


def test_split_and_training_read_the_manifest(workspace, pets):
    from tlcore.trainer import prepare_data

    before = dataset_splits(workspace, "pets").set_index("relpath")
    add_overrides(workspace, "pets", ["cat/cat_003.png"], "relabel", label="owl")
    add_overrides(workspace, "pets", ["dog/dog_004.png", "dog/dog_005.png"], "exclude")
    add_overrides(workspace, "pets", ["owl/owl_001.png"], "keep", flag="blurry")
    after = dataset_splits(workspace, "pets").set_index("relpath")
    assert "dog/dog_004.png" not in after.index and "dog/dog_005.png" not in after.index
    assert after.loc["cat/cat_003.png", "label"] == "owl" and after.loc["cat/cat_003.png", "original_label"] == "cat"
    assert after.loc["owl/owl_001.png", "override"] == "keep" and after.loc["owl/owl_001.png", "label"] == "owl"
    # No other image moves between splits (each image's split is a hash of its content).
    same = before.loc[after.index, "split"]
    assert (same == after["split"]).all()
    report = after.attrs["overrides"]
    assert report == {"applied": 4, "excluded": 2, "relabelled": 1, "kept": 1, "missing": []}
    # The trainer's data: exclusions are gone from every split, the relabel is the label it trains on.
    data = prepare_data(workspace, TrainSpec(dataset="pets", image_size=32))
    rows = pd.concat(data.rows.values())
    assert not rows["relpath"].isin(["dog/dog_004.png", "dog/dog_005.png"]).any()
    where = {s: r for s, r in data.rows.items() if (r["relpath"] == "cat/cat_003.png").any()}
    (split, r), = where.items()
    pos = int(r.index[r["relpath"] == "cat/cat_003.png"][0])
    assert data.class_names[data.y[split][pos]] == "owl"


def test_without_decisions_the_index_is_untouched(workspace, pets):
    index = load_index(workspace, "pets")
    assert apply_overrides(index, []) is index
    assert "override" not in dataset_splits(workspace, "pets")


def test_a_decision_about_a_vanished_file_is_reported_and_skipped(workspace, pets):
    add_overrides(workspace, "pets", ["cat/cat_001.png", "cat/cat_002.png"], "exclude")
    (pets / "cat" / "cat_001.png").unlink()
    rescan_dataset(workspace, "pets")
    splits = dataset_splits(workspace, "pets")
    assert splits.attrs["overrides"]["missing"] == ["cat/cat_001.png"]
    assert "cat/cat_002.png" not in set(splits["relpath"])
    assert [d.relpath for d in stale_overrides(load_index(workspace, "pets"), load_overrides(workspace, "pets"))] == \
        ["cat/cat_001.png"]


def test_a_corrupt_manifest_is_refused_with_its_line_and_kept(workspace, pets):
    add_overrides(workspace, "pets", ["cat/cat_001.png"], "exclude")
    path = overrides_path(workspace, "pets")
    good = path.read_text()
    path.write_text(good + '{"seq": 2, "relpath": "dog/dog_000.png", "action": "delete"}\n')
    with pytest.raises(ConfigError, match="Line 2 of the override manifest") as err:
        load_overrides(workspace, "pets")
    assert "action must be one of keep, relabel, exclude" in str(err.value) and ".prev" in str(err.value)
    with pytest.raises(ConfigError, match="Line 2"):
        dataset_splits(workspace, "pets")  # nothing trains on a manifest that does not read
    bad = path.read_text()
    with pytest.raises(ConfigError, match="Line 2"):
        add_overrides(workspace, "pets", ["owl/owl_000.png"], "exclude")
    assert path.read_text() == bad  # a refused change writes nothing
    path.write_text(good + "not json at all\n")
    with pytest.raises(ConfigError, match=r"Line 2 .*not JSON"):
        load_overrides(workspace, "pets")
    path.write_text(good + good)
    with pytest.raises(ConfigError, match="seq 1 appears twice"):
        load_overrides(workspace, "pets")


def test_every_change_keeps_the_previous_manifest(workspace, pets):
    add_overrides(workspace, "pets", ["cat/cat_001.png"], "exclude")
    first = overrides_path(workspace, "pets").read_text()
    add_overrides(workspace, "pets", ["cat/cat_002.png"], "keep")
    assert overrides_path(workspace, "pets").with_name("overrides.jsonl.prev").read_text() == first


def test_bad_decisions_are_refused(workspace, pets):
    with pytest.raises(ConfigError, match="one of the dataset's classes") as err:
        add_overrides(workspace, "pets", ["cat/cat_001.png"], "relabel", label="horse")
    assert "cat, dog, owl" in str(err.value)
    with pytest.raises(ConfigError, match="not in the dataset's index"):
        add_overrides(workspace, "pets", ["cat/nope.png"], "exclude")
    with pytest.raises(ConfigError, match="Unknown decision"):
        add_overrides(workspace, "pets", ["cat/cat_001.png"], "delete")
    with pytest.raises(ConfigError, match="Only relabel decisions take a label"):
        add_overrides(workspace, "pets", ["cat/cat_001.png"], "exclude", label="dog")
    with pytest.raises(ConfigError, match="at least one image"):
        add_overrides(workspace, "pets", [], "exclude")
    with pytest.raises(ConfigError, match="cannot be recorded"):
        add_overrides(workspace, "pets", ["cat/cat_001.png"], "keep", note="x" * 1000)
    assert not overrides_path(workspace, "pets").exists()


def test_csv_export_and_import(workspace, pets):
    add_overrides(workspace, "pets", ["cat/cat_001.png"], "relabel", label="dog", note="looks like a dog, really")
    add_overrides(workspace, "pets", ["owl/owl_002.png"], "exclude", flag="blurry")
    text = overrides_csv(workspace, "pets")
    assert text.splitlines()[0] == "seq,relpath,action,label,flag,note,at"
    undo_overrides(workspace, "pets", seqs=[1, 2])
    added = import_overrides_csv(workspace, "pets", text)
    assert [(d.relpath, d.action, d.label) for d in added] == [("cat/cat_001.png", "relabel", "dog"),
                                                               ("owl/owl_002.png", "exclude", "")]
    # A bad row refuses the whole file, naming its line; the manifest stays as it was.
    before = overrides_path(workspace, "pets").read_text()
    bad = "relpath,action,label\ncat/cat_003.png,exclude,\ncat/cat_004.png,relabel,horse\n"
    with pytest.raises(ConfigError, match=r"Line 3 of the imported CSV.*'horse' is not a class"):
        import_overrides_csv(workspace, "pets", bad)
    with pytest.raises(ConfigError, match="Line 2 of the imported CSV.*action must be one of"):
        import_overrides_csv(workspace, "pets", "relpath,action\ncat/cat_003.png,remove\n")
    with pytest.raises(ConfigError, match="header"):
        import_overrides_csv(workspace, "pets", "path,what\nx,y\n")
    assert overrides_path(workspace, "pets").read_text() == before
    # Replace makes the CSV the whole manifest.
    import_overrides_csv(workspace, "pets", "relpath,action\ncat/cat_005.png,keep\n", replace=True)
    assert [(d.seq, d.relpath) for d in load_overrides(workspace, "pets")] == [(1, "cat/cat_005.png")]


def test_an_import_checks_the_images_adds_nothing_twice_and_never_empties_by_replace(workspace, pets):
    add_overrides(workspace, "pets", ["cat/cat_001.png"], "relabel", label="dog")
    add_overrides(workspace, "pets", ["owl/owl_002.png"], "exclude")
    add_overrides(workspace, "pets", ["owl/owl_002.png"], "keep")  # a history: exclude, then keep
    text = overrides_csv(workspace, "pets")
    before = overrides_path(workspace, "pets").read_text()
    assert import_overrides_csv(workspace, "pets", text) == []  # the same file again: nothing new
    assert overrides_path(workspace, "pets").read_text() == before
    # A path the index does not hold (a typo, another dataset's file) refuses the file, naming its line.
    for path in ("nope/doesnotexist.png", "../../etc/passwd", " cat/cat_003.png", "./cat/cat_003.png"):
        with pytest.raises(ConfigError, match=r"Line 3 of the imported CSV.*not an image of the dataset's index"):
            import_overrides_csv(workspace, "pets", f"relpath,action\ncat/cat_003.png,keep\n\"{path}\",exclude\n")
    # Replacing with a file of no rows would delete every decision: refused.
    with pytest.raises(ConfigError, match="would delete all 3 current decisions"):
        import_overrides_csv(workspace, "pets", "seq,relpath,action,label,flag,note,at\n", replace=True)
    assert overrides_path(workspace, "pets").read_text() == before
    # A changed decision for one image is added; the unchanged one is not.
    changed = text.replace(",keep,", ",exclude,")
    added = import_overrides_csv(workspace, "pets", changed)
    assert [(d.relpath, d.action) for d in added] == [("owl/owl_002.png", "exclude"), ("owl/owl_002.png", "exclude")]


def test_decisions_from_two_processes_at_once_all_land(workspace, pets):
    errors = []

    def decide(k: int) -> None:
        try:
            for i in range(5):
                add_overrides(workspace, "pets", [f"{['cat', 'dog'][k]}/{['cat', 'dog'][k]}_{i:03d}.png"], "keep")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    decisions = load_overrides(workspace, "pets")
    assert sorted(d.seq for d in decisions) == list(range(1, 11)) and len({d.relpath for d in decisions}) == 10


def test_override_validation_names_the_problem():
    with pytest.raises(ValueError, match="relabel decision needs the new label"):
        Override.from_dict({"seq": 1, "relpath": "a.png", "action": "relabel"})
    with pytest.raises(ValueError, match="unknown field"):
        Override.from_dict({"seq": 1, "relpath": "a.png", "action": "keep", "colour": "red"})
    with pytest.raises(ValueError, match="relpath"):
        Override.from_dict({"seq": 1, "relpath": "/etc/passwd", "action": "keep"})


# ------------------------------------------------------------------ near-duplicate groups and the split
def test_groups_land_on_one_side():
    index = pd.DataFrame({"relpath": [f"{i}.png" for i in range(200)], "label": ["a"] * 200,
                          "sha1": [f"h{i}" for i in range(200)], "usable": True})
    plain = assign_splits(index, SplitSpec(seed=1))
    a = plain.index[plain == "train"][0]
    b = plain.index[plain == "test"][0]
    groups = [[f"{a}.png", f"{b}.png"]]
    keys = group_keys(index, groups)
    grouped = assign_splits(index, SplitSpec(seed=1), group_keys=keys)
    assert grouped[a] == grouped[b]
    others = plain.index.difference([a, b])
    assert (grouped[others] == plain[others]).all()  # nobody else moves
    assert group_keys(index, []) is None and group_keys(index, [["999.png", "x.png"]]) is None


def test_saved_groups_change_the_datasets_split(workspace, pets):
    splits = dataset_splits(workspace, "pets").set_index("relpath")["split"]
    a = splits.index[splits == "train"][0]
    b = splits.index[splits != "train"][0]
    save_split_groups(workspace, "pets", [[a, b]])
    after = dataset_splits(workspace, "pets").set_index("relpath")["split"]
    assert after[a] == after[b]
    save_split_groups(workspace, "pets", [])
    assert (dataset_splits(workspace, "pets").set_index("relpath")["split"] == splits).all()


def test_a_relabel_refits_the_cached_linear_probe(workspace, pets):
    from tlcore.trainer import train

    spec = TrainSpec(dataset="pets", image_size=32, epochs=1, weights=None)
    train(spec, workspace)
    assert train(spec, workspace).metrics["linear_probe"]["fitted_here"] is False  # the probe is cached
    train_rows = dataset_splits(workspace, "pets")
    image = train_rows[(train_rows["split"] == "train") & (train_rows["label"] == "cat")]["relpath"].iloc[0]
    add_overrides(workspace, "pets", [image], "relabel", label="owl")
    # Same images, same content fingerprint, other labels: the probe of the old labels must not be reused.
    assert train(spec, workspace).metrics["linear_probe"]["fitted_here"] is True
