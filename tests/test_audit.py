"""The audit: confident learning worked out by hand, near-duplicates, quality flags, the whole audit.

The confident-learning cases are small enough to check on paper (the comments give the
arithmetic); near-duplicates and quality flags run on synthetic photos (``tests/helpers/
auditgen.py``); the whole audit runs on a few tiny images with random backbone weights at 32 px.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from tests.helpers import auditgen as ag
from tlcore.audit import (
    AuditSpec,
    audit_dataset,
    calibrate_joint,
    confident_joint,
    confused_pairs,
    dhash,
    find_label_issues,
    group_pairs,
    hamming_matrix,
    image_measures,
    label_quality_scores,
    list_audits,
    load_audit,
    near_duplicate_pairs,
    out_of_fold_probabilities,
    per_class_thresholds,
    phash,
    pixel_similarity,
    quality_flags,
    small_gray,
    stratified_folds,
    suggested_labels,
)
from tlcore.audit._confident import check_foldable, out_of_class_thresholds
from tlcore.audit._quality import luminance
from tlcore.datasets import add_dataset, dataset_splits, load_split_groups
from tlcore.errors import ConfigError, DatasetError, NotFoundError

# ------------------------------------------------------------------ confident learning by hand
# Ten images, three classes. Image 9 is labelled 0 but looks like 1.
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
PROBS = np.array([
    [.90, .05, .05],
    [.80, .10, .10],
    [.70, .20, .10],
    [.10, .80, .10],
    [.20, .70, .10],
    [.10, .50, .40],
    [.10, .10, .80],
    [.05, .15, .80],
    [.20, .10, .70],
    [.05, .90, .05],
])


def test_thresholds_by_hand():
    # t0 = (.9 + .8 + .7 + .05) / 4, t1 = (.8 + .7 + .5) / 3, t2 = (.8 + .8 + .7) / 3
    np.testing.assert_allclose(per_class_thresholds(LABELS, PROBS), [0.6125, 2 / 3, 2.3 / 3])
    # u0 = mean p0 over images 3..8 = (.1 + .2 + .1 + .1 + .05 + .2) / 6
    np.testing.assert_allclose(out_of_class_thresholds(LABELS, PROBS)[0], 0.125)


def test_confident_joint_by_hand():
    # 0, 1, 2: p0 >= t0 -> C[0,0]. 3: .8 >= t1, 4: .7 >= t1 -> C[1,1]; 5: .5 < t1 and .4 < t2: nowhere.
    # 6, 7: .8 >= t2 -> C[2,2]; 8: .7 < t2: nowhere. 9: p1 = .9 >= t1 -> C[0,1].
    expected = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 2]])
    np.testing.assert_array_equal(confident_joint(LABELS, PROBS), expected)


def test_calibrated_joint_by_hand():
    # Rows rescaled to the label counts (4, 3, 3): [3, 1, 0], [0, 3, 0], [0, 0, 3]; then / 10.
    q = calibrate_joint(confident_joint(LABELS, PROBS), np.bincount(LABELS))
    np.testing.assert_allclose(q, [[.3, .1, 0], [0, .3, 0], [0, 0, .3]])
    # A row without any confident image counts as correct: its label count on the diagonal.
    q2 = calibrate_joint(np.array([[2, 0], [0, 0]]), np.array([2, 2]))
    np.testing.assert_allclose(q2, [[.5, 0], [0, .5]])


@pytest.mark.parametrize("method", ["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"])
def test_every_method_finds_the_wrong_label(method):
    # n Q[0,1] = 1: the one image labelled 0 with the largest margin p1 - p0 (image 9), or with the
    # lowest self-confidence; image 9 is also the only one off the diagonal and the only disagreement.
    assert np.flatnonzero(find_label_issues(LABELS, PROBS, method=method)).tolist() == [9]
    assert np.flatnonzero(find_label_issues(LABELS, PROBS, method=method, out_of_class=True)).tolist() == [9]


def test_agreeing_and_out_of_class_rules():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[.6, .4], [.45, .55], [.3, .7], [.2, .8]])
    # t = (.525, .75): image 1 is above neither threshold; argmax disagrees only for image 1.
    assert find_label_issues(labels, probs, method="argmax").tolist() == [False, True, False, False]
    # u0 = mean p0 over images 2, 3 = .25: image 1 keeps .45 of its label, more than class 0 gets elsewhere.
    assert not find_label_issues(labels, probs, method="argmax", out_of_class=True).any()
    # An image whose label is the model's top choice is never flagged unless asked.
    agreeing = np.array([[.55, .45], [.9, .1], [.1, .9], [.2, .8]])
    assert not find_label_issues(labels, agreeing, method="prune_by_class").any()


def test_rankings_by_hand():
    labels = np.array([0, 0])
    probs = np.array([[.2, .8, 0.0], [.1, .45, .45]])
    # self-confidence .2 and .1: image 1 first; normalized margin .2 - .8 = -.6 and .1 - .45 = -.35: image 0 first.
    np.testing.assert_allclose(label_quality_scores(labels, probs, method="self_confidence"), [.2, .1])
    np.testing.assert_allclose(label_quality_scores(labels, probs, method="normalized_margin"), [-.6, -.35])
    assert suggested_labels(labels, probs).tolist() == [1, 1]
    with pytest.raises(ConfigError, match="Unknown ranking"):
        label_quality_scores(labels, probs, method="loss")


def test_confused_pairs_sentence():
    c = np.array([[50, 30, 1], [11, 60, 0], [0, 0, 40]])
    pairs = confused_pairs(c, ["Shirt", "T-shirt", "Bag"])
    assert pairs[0]["text"] == "Shirt vs T-shirt: 41 images look swapped"
    assert (pairs[0]["a_as_b"], pairs[0]["b_as_a"]) == (30, 11)
    assert pairs[1]["text"] == "Shirt vs Bag: 1 image looks swapped"
    assert confused_pairs(c, ["Shirt", "T-shirt", "Bag"], min_count=2) == pairs[:1]


def test_bad_labels_and_probs_are_refused():
    with pytest.raises(ConfigError, match="one row per label"):
        confident_joint(LABELS[:3], PROBS)
    with pytest.raises(ConfigError, match=r"integers in \[0, 3\)"):
        confident_joint(LABELS + 1, PROBS)
    with pytest.raises(ConfigError, match="Unknown label-issue method"):
        find_label_issues(LABELS, PROBS, method="magic")


def test_stratified_folds_deal_every_class_round():
    y = np.array([0] * 10 + [1] * 7)
    folds = stratified_folds(y, 5, seed=3)
    for c in (0, 1):
        counts = np.bincount(folds[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(folds, stratified_folds(y, 5, seed=3))


def test_out_of_fold_probabilities_find_flipped_labels():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (3, 8))
    y_true = np.repeat([0, 1, 2], 30)
    x = centres[y_true] + rng.normal(0, 1, (90, 8))
    y = y_true.copy()
    flipped = [3, 40, 75]
    y[flipped] = (y[flipped] + 1) % 3
    probs, info = out_of_fold_probabilities(x, y, num_classes=3, folds=5, dims=None)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(axis=1), 1)
    assert info["folds"] == 5 and info["oof_accuracy"] > 0.9
    flags = np.flatnonzero(find_label_issues(y, probs, out_of_class=True))
    assert set(flipped) <= set(flags) and len(flags) <= 5
    assert set(np.argsort(label_quality_scores(y, probs))[:3]) == set(flipped)


def test_too_few_images_for_the_folds_says_what_to_do():
    with pytest.raises(DatasetError, match="at least two classes"):
        check_foldable(np.zeros(10, int), num_classes=1, folds=5, class_names=["cat"])
    with pytest.raises(DatasetError, match=r"too few in dog \(3\)") as err:
        check_foldable(np.array([0] * 10 + [1] * 3), num_classes=2, folds=5, class_names=["cat", "dog"])
    assert "3 would fit" in str(err.value)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        check_foldable(np.array([0, 1]), num_classes=2, folds=1)


# ------------------------------------------------------------------ near-duplicates
def _thumbs(images):
    thumbs = [small_gray(luminance(a)) for a in images]
    scales = [max(t.shape) / max(a.shape[:2]) for t, a in zip(thumbs, images)]
    return thumbs, scales


def test_hashes_survive_resizing_and_tell_pictures_apart():
    a, b = ag.photo(1), ag.photo(2)
    ga, gr, gb = luminance(a), luminance(ag.resized(a, 1.5)), luminance(b)
    for h in (phash, dhash):
        assert hamming_matrix(np.array([h(ga)]), np.array([h(gr)]))[0, 0] <= 6
        assert hamming_matrix(np.array([h(ga)]), np.array([h(gb)]))[0, 0] >= 12
    assert int(phash(np.full((8, 8), 3.0))) == int(phash(np.full((20, 30), 3.0)))


def test_near_duplicates_of_synthetic_copies():
    originals = [ag.photo(s) for s in range(24)]
    copies = {0: ag.resized(originals[0], 0.7), 1: ag.resized(originals[1], 1.6), 2: ag.reencoded(originals[2], 60),
              3: ag.cropped(originals[3], 5, 3, 2, 6), 4: ag.reencoded(ag.resized(originals[4], 0.8), 80)}
    images = originals + list(copies.values())
    thumbs, scales = _thumbs(images)
    pairs = near_duplicate_pairs(thumbs, scales, floor=0.9)
    expected = {(k, 24 + n) for n, k in enumerate(copies)}
    assert {(int(i), int(j)) for i, j in zip(pairs["i"], pairs["j"])} == expected  # nothing else above 0.9
    found = pairs[pairs["similarity"] >= 0.995]  # the default threshold
    # Shrunk and then re-encoded, a small noisy photo loses more: found once the threshold moves to 0.99.
    assert {(int(i), int(j)) for i, j in zip(found["i"], found["j"])} == expected - {(4, 28)}
    assert pairs.set_index(["i", "j"]).loc[(4, 28), "similarity"] >= 0.99
    # A copy scores near 1; two different photos far below.
    assert pixel_similarity(thumbs[0], thumbs[1]) < 0.9
    groups = group_pairs(len(images), pairs)
    assert groups[24] == groups[0] and groups[0] != groups[1]


def test_flat_images_and_features_only():
    flat = [np.full((10, 12), 7, np.uint8), np.full((20, 24), 7, np.uint8), np.full((10, 12), 200, np.uint8)]
    assert pixel_similarity(flat[0], flat[1]) == 1.0
    assert pixel_similarity(flat[0], small_gray(luminance(ag.photo(3)))) == 0.0
    feats = np.eye(4)[[0, 1, 2, 3]] + 0.01
    pairs = near_duplicate_pairs([small_gray(luminance(ag.photo(s))) for s in range(4)], [1.0] * 4, features=feats,
                                 hashes=np.zeros(4, np.uint64), floor=0.99)
    assert pairs.empty and list(pairs.columns) == ["i", "j", "similarity", "cosine", "hamming"]


def test_group_pairs_joins_chains():
    pairs = pd.DataFrame({"i": [0, 1, 5], "j": [1, 2, 6]})
    assert group_pairs(7, pairs).tolist() == [0, 0, 0, 3, 4, 5, 5]


# ------------------------------------------------------------------ quality
def test_quality_flags_on_synthetic_images():
    base = ag.photo(7)
    images = {"sharp": base, "blurred": ag.blurred(base), "dark": ag.darkened(base), "bright": ag.brightened(base),
              "uniform": ag.uniform()}
    measures = pd.DataFrame([image_measures(v) for v in images.values()], index=list(images))
    flags = quality_flags(measures)
    assert flags.loc["sharp", "flags"] == ""
    assert flags.loc["blurred", "flags"] == "blurry"
    assert flags.loc["dark", "dark"] and flags.loc["bright", "bright"]
    assert flags.loc["uniform", "flags"] == "uniform"  # no edges either, but uniform says why
    assert measures.loc["blurred", "sharpness"] < 50 < measures.loc["sharp", "sharpness"]
    assert measures.loc["dark", "highlights"] < 40 and measures.loc["bright", "shadows"] > 225
    # Each flag is a measured value against a threshold the user can move.
    from tlcore.audit import QualityThresholds

    assert quality_flags(measures, QualityThresholds(blur=0.5))["blurry"].sum() == 0
    with pytest.raises(ConfigError, match="dark threshold"):
        QualityThresholds(dark=300)


def test_a_thin_object_on_black_is_not_uniform():
    img = np.zeros((28, 28, 3), np.uint8)
    img[4:24, 12:15] = 220  # a thin strap, 8 % of the picture
    img[6:10, 6:22] = 180
    m = image_measures(img)
    assert m["entropy"] > 0.5 and quality_flags(pd.DataFrame([m]))["flags"][0] == ""


# ------------------------------------------------------------------ the whole audit
SPEC = AuditSpec(weights=None, image_size=32, folds=3, batch_size=16)


@pytest.fixture
def photos(workspace):
    """A dataset of 3 classes x 8 photos plus a resized, re-encoded copy of one; registered as 'photos'."""
    from PIL import Image

    root = ag.photo_tree(workspace.root / "photos", {"cat": 8, "dog": 8, "owl": 8}, size=(48, 40))
    original = np.asarray(Image.open(root / "cat" / "cat_001.png").convert("RGB"))
    ag.save(root / "cat" / "copy_of_cat_001.jpg", ag.reencoded(ag.resized(original, 1.5), 90))
    add_dataset(workspace, "photos", root)
    return root


def test_audit_end_to_end_saves_and_reloads(workspace, photos):
    calls = []
    result = audit_dataset(workspace, "photos", SPEC, progress=lambda t, d, n: calls.append(t))
    s = result.summary
    assert s["images"]["total"] == 25 and set(s["spec"]["splits"]) == {"train", "val"}
    assert s["labels"]["audited"] == len(result.labels) == s["images"]["by_split"].get("train", 0) + \
        s["images"]["by_split"].get("val", 0)
    assert "test" not in set(result.labels["split"])  # never the test split's labels by default
    assert result.probabilities.shape == (len(result.labels), 3)
    assert list(result.labels["rank"]) == list(range(1, len(result.labels) + 1))
    pair = result.near_duplicates()
    assert {"cat/cat_001.png", "cat/copy_of_cat_001.jpg"} == set(pair[["relpath_a", "relpath_b"]].iloc[0])
    assert any("Features" in t for t in calls) and not s["cached"]["features"]
    # Saved, listed, and read back identically.
    assert [a["id"] for a in list_audits(workspace, "photos")] == [result.id]
    again = load_audit(workspace, "photos")
    pd.testing.assert_frame_equal(again.labels, result.labels)
    pd.testing.assert_frame_equal(again.pairs, result.pairs)
    np.testing.assert_array_equal(again.probabilities, result.probabilities)
    # A second audit reads the features from the cache: no forward pass.
    second = audit_dataset(workspace, "photos", SPEC)
    assert second.summary["cached"] == {"features": True, "image_stats": True}
    assert second.id != result.id and len(list_audits(workspace, "photos")) == 2


def test_leaking_near_duplicates_are_kept_on_one_side(workspace, photos):
    from PIL import Image

    from tlcore.datasets import rescan_dataset

    # Add copies of every cat until one lands in another split than its original.
    splits = dataset_splits(workspace, "photos").set_index("relpath")["split"]
    for i in range(8):
        src = photos / "cat" / f"cat_{i:03d}.png"
        ag.save(photos / "cat" / f"big_cat_{i:03d}.png", ag.resized(np.asarray(Image.open(src).convert("RGB")), 1.25))
    rescan_dataset(workspace, "photos")
    splits = dataset_splits(workspace, "photos").set_index("relpath")["split"]
    leaking = [i for i in range(8) if splits[f"cat/cat_{i:03d}.png"] != splits[f"cat/big_cat_{i:03d}.png"]]
    assert leaking, "the seeded split should separate at least one copy from its original"
    result = audit_dataset(workspace, "photos", SPEC)
    leak = result.leakage()
    assert len(leak) >= len(leaking) and not leak["leakage_after"].any()
    after = dataset_splits(workspace, "photos").set_index("relpath")["split"]
    for i in range(8):
        assert after[f"cat/cat_{i:03d}.png"] == after[f"cat/big_cat_{i:03d}.png"]
    assert any(f"cat/big_cat_{leaking[0]:03d}.png" in g for g in load_split_groups(workspace, "photos"))
    assert result.summary["near_duplicates"]["leakage"] >= len(leaking)


def test_one_class_and_too_few_images_are_refused_before_any_forward_pass(workspace, make_image_tree):
    from tlcore.datasets import add_overrides, load_index

    add_dataset(workspace, "few", make_image_tree(workspace.root / "few", {"a": 12, "b": 3}))
    with pytest.raises(DatasetError, match="needs at least 5 images in every class") as err:
        audit_dataset(workspace, "few", AuditSpec(weights=None, image_size=32))
    assert "b (" in str(err.value) and "fewer folds" in str(err.value)
    # Excluding every image of one class leaves one: refused with what to do.
    index = load_index(workspace, "few")
    add_overrides(workspace, "few", index[index["label"] == "b"]["relpath"], "exclude")
    with pytest.raises(DatasetError, match="at least two classes") as err:
        audit_dataset(workspace, "few", AuditSpec(weights=None, image_size=32, folds=2))
    assert "Add a folder of images" in str(err.value)
    assert not (workspace.cache_dir / "features").exists()  # refused before any forward pass


def test_a_bad_spec_is_refused():
    with pytest.raises(ConfigError, match="splits"):
        AuditSpec(splits=["holdout"])
    with pytest.raises(ConfigError, match="folds"):
        AuditSpec(folds=1)
    with pytest.raises(ConfigError, match="Unknown AuditSpec field"):
        AuditSpec.from_dict({"colour": "red"})
    assert AuditSpec.from_yaml(AuditSpec(image_size=64).to_yaml()) == AuditSpec(image_size=64)


def test_load_audit_without_one(workspace, photos):
    with pytest.raises(NotFoundError, match="not been audited"):
        load_audit(workspace, "photos")


def test_two_audits_at_once_both_land_whole(workspace, photos):
    audit_dataset(workspace, "photos", SPEC)  # features cached: the two below are numpy only
    results, errors = [], []

    def run():
        try:
            results.append(audit_dataset(workspace, "photos", SPEC))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = {a["id"] for a in list_audits(workspace, "photos")}
    assert {r.id for r in results} <= ids and len(ids) == 3
    for r in results:
        assert len(load_audit(workspace, "photos", r.id).labels) == len(r.labels)




def test_background_job_runs_and_is_found_again(workspace, photos):
    import time

    from tlcore.audit import audit_jobs, audit_status, launch_audit

    job = launch_audit(workspace, "photos", SPEC)
    deadline = time.time() + 240
    while (status := audit_status(workspace, "photos", job))["state"] not in ("finished", "failed"):
        assert time.time() < deadline, status
        time.sleep(0.5)
    assert status["state"] == "finished", status
    assert load_audit(workspace, "photos", status["audit"]).id == status["audit"]
    assert [j["id"] for j in audit_jobs(workspace, "photos")] == [job]  # a reload finds it again
    with pytest.raises(NotFoundError):
        audit_status(workspace, "photos", "../../etc")


def test_background_job_that_fails_says_why(workspace, make_image_tree):
    import time

    from tlcore.audit import audit_status, launch_audit

    add_dataset(workspace, "few", make_image_tree(workspace.root / "few", {"a": 9, "b": 2}))
    job = launch_audit(workspace, "few", SPEC)
    deadline = time.time() + 240
    while (status := audit_status(workspace, "few", job))["state"] not in ("finished", "failed"):
        assert time.time() < deadline, status
        time.sleep(0.5)
    assert status["state"] == "failed" and "fold cross-validation needs" in status["error"]
