import numpy as np
import pandas as pd
import pytest

from tlcore.config import SplitSpec
from tlcore.datasets import assign_splits, split_counts
from tlcore.datasets._split import read_split_spec
from tlcore.errors import ConfigError


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


@pytest.mark.parametrize(("content", "words"), [
    (b"seed: 3\nval_fraction: 0.2\xff\n", r"not UTF-8 text \(byte 0xff at offset 25\)"),
    (b"val_fraction: [\n", "invalid: the SplitSpec is not valid YAML"),
    (b"val_fraction: 2\n", r"invalid: val_fraction must be a number in \[0.0, 1.0\)"),
    (b"- 0.2\n", "invalid: a SplitSpec must be a mapping"),
])
def test_a_damaged_split_file_is_an_error_naming_it_and_left_alone(tmp_path, content, words):
    # Not UTF-8, it raised UnicodeDecodeError; other errors did not say which file was wrong.
    path = tmp_path / "split.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^The dataset's split settings are " + words) as e:
        read_split_spec(path)
    assert str(e.value.received).startswith(str(path)) and "Datasets page" in e.value.fix
    assert path.read_bytes() == content


def test_a_split_file_is_read_and_a_missing_one_is_the_default(tmp_path):
    path = tmp_path / "split.yaml"
    assert read_split_spec(path) == SplitSpec()
    path.write_text(SplitSpec(val_fraction=0.2, seed=5).to_yaml())
    assert read_split_spec(path) == SplitSpec(val_fraction=0.2, seed=5)


def test_a_split_yaml_that_is_not_utf8_is_an_error_naming_it(workspace):
    from tlcore.datasets import dataset_splits, ensure_demo, load_split_spec
    ensure_demo(workspace)
    path = workspace.dataset_dir("demo") / "split.yaml"
    path.write_bytes(b"seed: \xff\n")
    for call in (lambda: load_split_spec(workspace, "demo"), lambda: dataset_splits(workspace, "demo")):
        with pytest.raises(ConfigError, match="split settings are not UTF-8 text") as e:
            call()
        assert e.value.received == str(path)
    assert path.read_bytes() == b"seed: \xff\n"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_class_gets_a_train_image_whatever_its_hash(n):
    # A class of one image hashed into val or test (30 % of seeds at 70/15/15) could not be trained:
    # training refused it, though the scan had only warned that the class is small.
    idx = make_index(n, classes=("tiny",))
    seen = set()
    for seed in range(60):
        s = assign_splits(idx, SplitSpec(seed=seed))
        assert (s == "train").any(), (seed, list(s))
        seen.add(tuple(s))
        if n == 3:
            assert set(s) == {"train", "val", "test"}, (seed, list(s))
    if n > 1:
        assert len(seen) > 1  # the rule moves one image; it does not put the whole class in train


def test_a_class_without_train_images_moves_its_duplicates_together():
    idx = make_index(2, classes=("tiny",))
    idx.loc[1, "sha1"] = idx.loc[0, "sha1"]
    for seed in range(40):
        s = assign_splits(idx, SplitSpec(seed=seed))
        assert list(s) == ["train", "train"], (seed, list(s))
