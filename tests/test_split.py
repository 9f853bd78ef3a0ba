import numpy as np
import pandas as pd

from tlcore.config import SplitSpec
from tlcore.datasets import assign_splits, split_counts


def make_index(n_per_class, classes=("a", "b", "c"), start=0):
    rows = []
    for c in classes:
        for i in range(start, start + n_per_class):
            rows.append({"relpath": f"{c}/{i}.png", "label": c, "sha1": f"{c}-{i}", "usable": True})
    return pd.DataFrame(rows)


def test_deterministic_and_seeded():
    idx = make_index(200)
    a = assign_splits(idx, SplitSpec(seed=1))
    b = assign_splits(idx, SplitSpec(seed=1))
    c = assign_splits(idx, SplitSpec(seed=2))
    assert (a == b).all()
    assert (a != c).any()


def test_stratified_fractions_per_class():
    idx = make_index(1000)
    s = assign_splits(idx, SplitSpec(val_fraction=0.2, test_fraction=0.1))
    table = split_counts(idx, s)
    for cls in ("a", "b", "c"):
        assert abs(table.loc[cls, "val"] / 1000 - 0.2) < 0.04
        assert abs(table.loc[cls, "test"] / 1000 - 0.1) < 0.03
        assert table.loc[cls, "total"] == 1000


def test_split_is_stable_when_images_are_added_or_removed():
    idx = make_index(100)
    before = assign_splits(idx).set_axis(idx["relpath"])
    grown = pd.concat([idx, make_index(50, start=100)], ignore_index=True)
    after = assign_splits(grown).set_axis(grown["relpath"])
    assert (after[before.index] == before).all()
    shrunk = idx.iloc[::2].reset_index(drop=True)
    after2 = assign_splits(shrunk).set_axis(shrunk["relpath"])
    assert (after2 == before[after2.index]).all()


def test_duplicates_share_a_split_and_unusable_get_none():
    idx = make_index(50)
    idx.loc[5, "sha1"] = idx.loc[40, "sha1"]
    idx.loc[7, "usable"] = False
    s = assign_splits(idx)
    assert s[5] == s[40]
    assert s[7] == ""


def test_small_class_gets_val_and_test():
    idx = make_index(4, classes=("tiny",))
    for seed in range(20):
        s = assign_splits(idx, SplitSpec(seed=seed))
        assert set(s) >= {"train", "val", "test"}, (seed, list(s))


def test_presplit_kept_and_val_carved_from_train():
    idx = make_index(300)
    idx["split"] = np.where(np.arange(len(idx)) % 5 == 0, "test", "train")
    s = assign_splits(idx, SplitSpec(val_fraction=0.15, test_fraction=0.15))
    assert (s[idx["split"] == "test"] == "test").all()
    carved = (s == "val").sum()
    assert 0.1 * 720 < carved < 0.3 * 720
    assert not ((idx["split"] == "test") & (s == "val")).any()


def test_empty_index():
    assert len(assign_splits(pd.DataFrame(columns=["relpath", "label", "sha1", "usable"]))) == 0
