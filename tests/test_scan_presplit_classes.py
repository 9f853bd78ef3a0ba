"""The scanner on the folders a careless user has (helper B)."""

from __future__ import annotations

from tlcore.datasets import scan_dataset


def test_a_presplit_class_with_no_training_images_is_reported(tmp_path, make_image_tree):
    """train/ holds cat and dog; test/ also holds bird and val/ also holds fox (3 images): neither
    can be learned, and each of their evaluation images counts as an error. The scan said nothing about fox
    and, for bird, that 3 images are needed to put one in each split, which is not what is wrong."""
    root = tmp_path / "photos"
    make_image_tree(root / "train", {"cat": 4, "dog": 4})
    make_image_tree(root / "val", {"cat": 2, "dog": 2, "fox": 3}, seed=1)
    make_image_tree(root / "test", {"cat": 2, "dog": 2, "bird": 2}, seed=2)
    result = scan_dataset(root)
    assert result.layout == "presplit"
    probs = result.problems
    for label in ("bird", "fox"):
        rows = probs[probs["message"].str.contains(f"'{label}'")]
        assert len(rows) == 1, (label, probs[["kind", "message"]].to_string())
        message = rows["message"].iloc[0]
        assert "train" in message and "cannot learn" in message, message
        assert f"train/{label}" in rows["fix"].iloc[0]
    assert not probs["message"].str.contains("'cat'|'dog'").any()
